"""The Rodas4 Rosenbrock stepper (linearly implicit, L-stable, stiffly accurate, order 4(3)).

A Rosenbrock method replaces the Newton iteration of an implicit Runge–Kutta method by a fixed
number of *linear* solves with one matrix ``I/(h*gamma) - J`` per step. For hemolab's small
stiff systems (a handful of states, a chunk of hundreds of patients) that means: one batched
Jacobian by forward-mode ``jvp``, one batched LU factorisation and six triangular solves per
step, with no convergence test and no per-patient iteration count. So patients stay in the
same lockstep as the explicit loop, and the whole step is differentiable in forward mode.
See design note 004.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np

from hemolab.solve._dopri5 import BatchedRHS, Step, Stepper

__all__ = ["RODAS"]

# Rodas4 in the transformed variables U_i = sum_j gamma_ij k_j (Hairer & Wanner, Solving ODEs II,
# 2nd ed., Springer 1996, §IV.7, eq. (7.25)); coefficients of ``ROCOE`` (METH=1) in Hairer's
# ``rodas.f`` (version of 1996, http://www.unige.ch/~hairer/prog/stiff/rodas.f), 16 digits.
# Stage i solves (I/(h*GAMMA) - J) U_i = f(t + ALPHA_i h, u + sum_j A_ij U_j)
#                                        + sum_j (C_ij / h) U_j + h * D_i * df/dt.
GAMMA = 0.25
ALPHA = (0.0, 0.386, 0.21, 0.63, 1.0, 1.0)
D = (0.25, -0.1043, 0.1035, -0.03620000000000023, 0.0, 0.0)
A = (
    (),
    (1.544,),
    (0.9466785280815826, 0.2557011698983284),
    (3.314825187068521, 2.896124015972201, 0.9986419139977817),
    (1.221224509226641, 6.019134481288629, 12.53708332932087, -0.687886036105895),
    # stiffly accurate: stage 6 starts from the embedded solution u + sum A5j U_j + U_5
    (1.221224509226641, 6.019134481288629, 12.53708332932087, -0.687886036105895, 1.0),
)
C = (
    (),
    (-5.6688,),
    (-2.430093356833875, -0.2063599157091915),
    (-0.1073529058151375, -9.594562251023355, -20.47028614809616),
    (7.496443313967647, -10.24680431464352, -33.99990352819905, 11.7089089320616),
    (
        8.083246795921522,
        -7.981132988064893,
        -31.52159432874371,
        16.31930543123136,
        -6.058818238834054,
    ),
)
# Dense output (``CONTRO`` in rodas.f): with s = theta,
#   u(t + s h) = (1 - s) u0 + s (u1 + (1 - s) (D2 + s D3)),   Dk = sum_j DENSE[k][j] U_j.
DENSE = (
    (
        10.12623508344586,
        -7.487995877610167,
        -34.80091861555747,
        -7.992771707568823,
        1.025137723295662,
    ),
    (
        -0.6762803392801253,
        6.087714651680015,
        16.43084320892478,
        24.76722511418386,
        -6.594389125716872,
    ),
)


def _comb(coefs: tuple[float, ...], ks: list[jax.Array]) -> jax.Array:
    """``sum_j coefs[j] * ks[j]`` over the first ``len(coefs)`` stages (at least one)."""
    out = coefs[0] * ks[0]
    for c, k in zip(coefs[1:], ks[1 : len(coefs)], strict=True):
        out = out + c * k
    return out


def _jacobian(f: BatchedRHS, t: jax.Array, u: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per-patient Jacobian ``df/du`` (C, n, n) and ``df/dt`` (C, n) by n + 1 ``jvp``s.

    ``f`` is row-wise (patient c's output depends only on row c), so a tangent equal to the
    unit vector e_j in every row gives column j of every patient's Jacobian at once. The n + 1
    directions are vmapped, so this is one batched forward-mode pass (as ``jax.jacfwd``).
    """
    n = u.shape[1]
    eye = jnp.eye(n + 1, dtype=u.dtype)
    du = jnp.broadcast_to(eye[:, None, :n], (n + 1, *u.shape))  # (n+1, C, n)
    dt = jnp.broadcast_to(eye[:, n, None], (n + 1, *t.shape))  # (n+1, C)

    def directional(vt: jax.Array, vu: jax.Array) -> jax.Array:
        return jax.jvp(f, (t, u), (vt, vu))[1]

    cols = jax.vmap(directional)(dt, du)  # (n+1, C, n): cols[j, c, i] = d f_i / d x_j
    jac = jnp.moveaxis(cols[:n], 0, -1)  # (C, n, n)
    return jac, cols[n]


class _Rodas4(Stepper):
    """Rodas4 (Hairer & Wanner 1996, §IV.7): 6 stages, order 4 with an order-3 embedded
    solution, L-stable and stiffly accurate, continuous extension of order 3.

    ``coef`` holds ``(u1 - u0, D2, D3)`` per state (``n_coef = 3``), so
    ``dense(u0, h, coef, 1) == u_new`` exactly. The step's error estimate is the last stage
    ``U_6``, the difference of the order-4 and order-3 solutions: its leading term is O(h^4),
    hence ``order = 4`` for the controller exponent.

    With ``dense_control`` (the default) the error estimate also covers the dense output,
    which ``U_6`` does not see: on stiff components that track a moving quasi-steady state
    (Prothero–Robinson, or a fast state slaved to a slow one) the interpolant loses an order
    and was measured 10-1000x less accurate than the step ends. At theta = 1/4 and 3/4 the
    interpolant's defect ``r = u'(theta) - f(t + theta h, u(theta))`` is mapped to an error
    estimate by the step's own LU, ``e = (I/(h gamma) - J)^-1 r``: for stiff components this
    is ``~ r / |lambda|``, for non-stiff ones ``~ h gamma r``, both the size of the
    interpolation error (design note 004). Cost: two more ``f`` evaluations and two solves.

    Examples
    --------
    >>> import hemolab as hl
    >>> res = hl.simulate(hl.get_model("friberg_docetaxel"), t_end=48.0, dt=24.0,
    ...                   solver="rodas")
    >>> res.metadata["hemolab.solver"], res.status_labels
    ('rodas', ['ok'])
    """

    name = "rodas"
    order = 4
    n_coef = 3
    stiff = True

    def __init__(self, *, dense_control: bool = True, name: str = "rodas") -> None:
        self.dense_control = dense_control
        self.name = name  # the solver cache is keyed by name: variants need their own

    def step(
        self,
        f: BatchedRHS,
        t: jax.Array,
        u: jax.Array,
        h: jax.Array,
        f0: jax.Array,
        cols: tuple[int, ...] | None = None,
    ) -> Step:
        n = u.shape[1]
        jac, dfdt = _jacobian(f, t, u)
        hc = h[:, None]
        matrix = jnp.eye(n, dtype=u.dtype) / (h * GAMMA)[:, None, None] - jac
        lu_piv = jsl.lu_factor(matrix)  # one batched LU per step

        def solve(b: jax.Array) -> jax.Array:
            return jsl.lu_solve(lu_piv, b[..., None])[..., 0]

        ks: list[jax.Array] = []
        for i in range(6):
            rhs = f0  # stage 1 evaluates f at the step's start (FSAL from the previous step)
            if i > 0:
                rhs = f(t + ALPHA[i] * h, u + _comb(A[i], ks)) + _comb(C[i], ks) / hc
            if D[i] != 0.0:
                rhs = rhs + (D[i] * hc) * dfdt
            ks.append(solve(rhs))
        # u1 = u + sum_j A6j U_j + U_6 (stiffly accurate); the increment is kept separately so
        # that the dense output reproduces u_new bit for bit at theta = 1.
        delta = _comb(A[5], ks) + ks[5]
        u_new = u + delta
        d2, d3 = _comb(DENSE[0], ks), _comb(DENSE[1], ks)
        coef = jnp.stack([delta, d2, d3], axis=-1)  # (C, n, 3)
        err = ks[5]
        if self.dense_control:
            for theta in (0.25, 0.75):
                th = jnp.full_like(h, theta)
                defect = self.derivative(h, coef, th) - f(t + theta * h, self.dense(u, h, coef, th))
                err = jnp.maximum(jnp.abs(err), jnp.abs(solve(defect)))
        if cols is not None:  # the error control above needed every column
            coef = coef[:, np.asarray(cols, dtype=np.int32)]
        return Step(u_new, err, coef, f(t + h, u_new))

    def dense(self, u0: jax.Array, h: jax.Array, coef: jax.Array, theta: jax.Array) -> jax.Array:
        # (1-s) u0 + s (u1 + (1-s)(D2 + s D3)) rewritten around u0: u0 + s du + s(1-s)(D2 + s D3)
        s = theta[..., None]
        delta, d2, d3 = coef[..., 0], coef[..., 1], coef[..., 2]
        return u0 + s * delta + (s * (1.0 - s)) * (d2 + s * d3)

    def derivative(self, h: jax.Array, coef: jax.Array, theta: jax.Array) -> jax.Array:
        """Time derivative of the dense output at ``t + theta*h`` (same broadcasting)."""
        s = theta[..., None]
        delta, d2, d3 = coef[..., 0], coef[..., 1], coef[..., 2]
        return (delta + (1.0 - 2.0 * s) * (d2 + s * d3) + (s * (1.0 - s)) * d3) / h[..., None]


RODAS: Stepper = _Rodas4()
"""The Rodas4 stepper (``solver="rodas"``)."""
