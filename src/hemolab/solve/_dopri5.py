"""The Dormand–Prince 5(4) stepper (explicit, FSAL, 4th-order dense output).

A *stepper* is the only method-specific piece of the solver loop: one attempted step for a
batch of patients, an error estimate, and a dense-output polynomial. The loop (``_loop.py``)
owns everything else (events, outputs, step control, statuses, delay history), so a stiff
stepper plugs in with the same interface.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from hemolab.solve import _tableau as tab

__all__ = ["DOPRI5", "Step", "Stepper"]

BatchedRHS = Callable[[jax.Array, jax.Array], jax.Array]  # f(t (C,), u (C, n)) -> (C, n)


class Step(NamedTuple):
    u_new: jax.Array  # (C, n) proposed solution at t + h
    err: jax.Array  # (C, n) local error estimate
    coef: jax.Array  # (C, n, q) dense-output coefficients (C, len(cols), q) with ``cols``
    f_new: jax.Array  # (C, n) f(t + h, u_new) (first stage of the next step, FSAL)


class Stepper:
    """Interface of a stepper (see :data:`DOPRI5`)."""

    name: str = ""
    order: int = 5  # order of the error estimate's leading term (controller exponent 1/order)
    n_coef: int = 4  # dense-output coefficients per state
    stiff: bool = False

    def step(
        self,
        f: BatchedRHS,
        t: jax.Array,
        u: jax.Array,
        h: jax.Array,
        f0: jax.Array,
        cols: tuple[int, ...] | None = None,
    ) -> Step:
        """One attempted step; ``cols``: the state columns whose dense-output coefficients
        are needed (None: all)."""
        raise NotImplementedError

    def dense(self, u0: jax.Array, h: jax.Array, coef: jax.Array, theta: jax.Array) -> jax.Array:
        """Solution at ``t + theta*h`` from a step's start value and coefficients.

        Shapes broadcast: ``u0 (..., n)``, ``h (...)``, ``coef (..., n, q)``, ``theta (...)``.
        """
        raise NotImplementedError


class _Dopri5(Stepper):
    name = "dopri5"
    order = tab.ORDER
    n_coef = 4

    def __init__(self) -> None:
        self.c = [float(c) for c in tab.C]
        self.a = [[float(a) for a in row] for row in tab.A]
        self.b = [float(b) for b in tab.B]
        self.e = [float(e) for e in tab.E]
        self.p_np = tab.P

    def step(
        self,
        f: BatchedRHS,
        t: jax.Array,
        u: jax.Array,
        h: jax.Array,
        f0: jax.Array,
        cols: tuple[int, ...] | None = None,
    ) -> Step:
        hc = h[:, None]
        ks = [f0]
        for i in range(1, 7):
            ui = u + hc * sum(self.a[i][j] * ks[j] for j in range(i) if self.a[i][j] != 0.0)
            ks.append(f(t + self.c[i] * h, ui))
        u_new = u + hc * sum(self.b[j] * ks[j] for j in range(6) if self.b[j] != 0.0)
        err = hc * sum(self.e[j] * ks[j] for j in range(7) if self.e[j] != 0.0)
        dk = ks if cols is None else [take_columns(k, cols) for k in ks]
        # sums of scaled stages, not an einsum: a dot is its own kernel per step, this fuses
        pn = self.p_np
        coef = jnp.stack(
            [sum(float(pn[k, q]) * dk[k] for k in range(7) if pn[k, q] != 0.0)
             for q in range(4)], axis=-1,
        )  # fmt: skip
        return Step(u_new, err, coef, ks[6])

    def dense(self, u0: jax.Array, h: jax.Array, coef: jax.Array, theta: jax.Array) -> jax.Array:
        # Horner in θ, elementwise (fuses into the caller; an einsum is a dot kernel)
        th = jnp.asarray(theta)[..., None]
        poly = th * (coef[..., 0] + th * (coef[..., 1] + th * (coef[..., 2] + th * coef[..., 3])))
        return u0 + h[..., None] * poly


def take_columns(a: jax.Array, cols: tuple[int, ...]) -> jax.Array:
    """Columns ``cols`` of ``a`` (C, n) as slices (fused into their consumer, not a gather);
    ``a`` itself when ``cols`` is every column in order."""
    if cols == tuple(range(a.shape[1])):
        return a
    if not cols:
        return a[:, :0]
    return jnp.concatenate([a[:, i : i + 1] for i in cols], axis=1)


DOPRI5: Stepper = _Dopri5()
