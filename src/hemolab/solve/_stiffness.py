"""Stiffness detection for ``solver="auto"``: a stiffness index from the model's Jacobian.

The rule (design note 004): for the first few patients, with ``J`` the Jacobian of the
right-hand side in natural coordinates,

* the **slow rate** ``mu`` is the smallest non-negligible ``|lambda|`` of ``J`` at the initial
  state (``|lambda| > 1e-9 * rho``; exact zeros are conservation laws), or the solution's own
  relative rate ``||f(y0)|| / ||y0||`` if that is larger (so a nearly-zero eigenvalue of a
  moving solution does not fake a long time scale); its inverse ``tau = 1/mu`` is the
  characteristic time of the solution;
* the **fast rate** ``nu`` is the largest decay rate ``max(-Re lambda)`` of ``J`` at the initial
  state *and* at the states reached by linearly implicit Euler probe steps of length
  ``tau * (1e-3, 1e-2, 1e-1, 1)`` (stiffness that only appears once the solution moves, as in
  Robertson's kinetics, is caught: there ``J`` at the start has eigenvalues 0, 0, -0.04);
* the model is stiff when the median over the probed patients of ``nu * tau`` exceeds
  ``STIFFNESS_THRESHOLD`` = 300. This is the measured break-even at ``rtol=1e-6``: DP5 is
  stability-bound to ``h <~ 3.3/nu``, i.e. ``nu*tau/3.3`` steps per characteristic time,
  while Rodas4 took ~35 steps per ``tau`` at ~2.6x DP5's cost per step (P1 Friberg, index
  ~150: DP5 1.6x faster; docetaxel Friberg, index ~660: Rodas4 2.4x faster; note 004).

States solved in closed form (``CompiledModel.linear_states``, typically the PK) are left out
of the eigenvalues: the integrator never sees their time scales. Delay models are reported
non-stiff: the stiff stepper does not support delays yet.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from hemolab.compile._compiled import CompiledModel

__all__ = ["STIFFNESS_THRESHOLD", "is_stiff", "stiffness_index"]

STIFFNESS_THRESHOLD = 300.0
_N_ROWS = 4  # patients probed
_PROBES = (1e-3, 1e-2, 1e-1, 1.0)  # probe step lengths, in units of tau
_NEGLIGIBLE = 1e-9  # |lambda| below this fraction of the spectral radius counts as zero


def stiffness_index(cm: CompiledModel, inputs: np.ndarray) -> np.ndarray:
    """Stiffness index ``nu * tau`` (see the module docstring) of the first rows of ``inputs``.

    Parameters
    ----------
    cm
        A compiled ODE model (delays are not evaluated).
    inputs
        Parameter and covariate rows ``(N, P)`` (or one row ``(P,)``); the first four are
        probed.

    Returns
    -------
    numpy.ndarray
        ``(min(N, 4),)`` stiffness indices; NaN where the Jacobian at the initial state is not
        finite.
    """
    p = jnp.asarray(np.atleast_2d(np.asarray(inputs, dtype=np.float64))[:_N_ROWS])
    n, nd = cm.n_states, cm.n_delays
    positive = np.asarray(cm.log_mask)

    def one(t: jax.Array, y: jax.Array, pr: jax.Array) -> tuple[jax.Array, jax.Array]:
        def rhs(yy: jax.Array) -> jax.Array:
            return cm.rhs(t, yy, pr, jnp.zeros(nd))

        return rhs(y), jax.jacfwd(rhs)(y)

    batched = jax.jit(jax.vmap(one))

    def f_and_jac(t: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        f, jac = batched(jnp.asarray(t), jnp.asarray(y), p)
        return np.asarray(f), np.asarray(jac)

    t = np.zeros(p.shape[0])
    y = np.asarray(jax.vmap(lambda pr: cm.initial(0.0, jnp.zeros(n), pr, jnp.zeros(nd)))(p))
    f, jac = f_and_jac(t, y)
    ok = _finite_rows(y, f, jac)
    # states solved in closed form (linear PK) carry no stiffness into the integrator
    keep = np.setdiff1d(np.arange(n), np.asarray(cm.linear_states, dtype=np.int64))
    if keep.size == 0:
        return np.where(ok, 0.0, np.nan)

    def integrated(j: np.ndarray) -> np.ndarray:
        return j[:, keep][:, :, keep]

    lam = _eigvals(integrated(jac), ok)
    rho = np.abs(lam).max(axis=1)
    slow = np.where(np.abs(lam) > _NEGLIGIBLE * rho[:, None], np.abs(lam), np.inf).min(axis=1)
    y_norm = np.linalg.norm(y, axis=1)
    moving = np.where(y_norm > 0, np.linalg.norm(f, axis=1) / np.where(y_norm > 0, y_norm, 1), 0)
    slow = np.maximum(np.where(np.isfinite(slow), slow, 0.0), moving)
    tau = np.where(slow > 0, 1.0 / np.where(slow > 0, slow, 1.0), 1.0)  # 1 time unit if static
    fast = _decay_rate(lam)

    alive = ok.copy()
    eye = np.eye(n)
    for frac in _PROBES:
        h = frac * tau
        # linearly implicit Euler: stable for stiff modes, so the probe lands near the slow
        # manifold instead of blowing up
        mat = np.where(alive[:, None, None], eye - h[:, None, None] * jac, eye)
        rhs = np.where(alive[:, None], h[:, None] * f, 0.0)
        y = y + np.linalg.solve(mat, rhs[..., None])[..., 0]
        t = t + h
        alive = alive & _finite_rows(y) & ~np.any((y <= 0) & positive, axis=1)
        if not np.any(alive):
            break
        f, jac = f_and_jac(t, y)
        alive = alive & _finite_rows(f, jac)
        fast = np.where(
            alive, np.maximum(fast, _decay_rate(_eigvals(integrated(jac), alive))), fast
        )
    return np.where(ok, fast * tau, np.nan)


def is_stiff(cm: CompiledModel, inputs: np.ndarray) -> bool:
    """Whether ``cm`` is stiff for the first patients of ``inputs`` (rule: module docstring).

    Parameters
    ----------
    cm
        The compiled model. Delay models are never reported stiff (no stiff DDE stepper yet).
    inputs
        Parameter and covariate rows ``(N, P)``.

    Returns
    -------
    bool
        True when the median stiffness index of the probed patients exceeds
        :data:`STIFFNESS_THRESHOLD` (the median, so that one atypical patient among the first
        four does not switch a whole population's solver).

    Examples
    --------
    >>> import hemolab as hl
    >>> from hemolab.solve._stiffness import is_stiff
    >>> m = hl.Model("decay", time_unit="d",
    ...     states=[hl.State("x", "-k*x", initial=1.0)], parameters=[hl.Parameter("k", 0.1)])
    >>> cm = hl.compile_model(m)
    >>> is_stiff(cm, cm.inputs_from())
    False
    """
    if cm.has_delays:
        return False
    index = stiffness_index(cm, inputs)
    index = index[np.isfinite(index)]
    return bool(index.size > 0 and np.median(index) > STIFFNESS_THRESHOLD)


def _finite_rows(*arrays: np.ndarray) -> np.ndarray:
    """``(R,)`` bool: rows (first axis) where every array is finite."""
    rows = np.ones(arrays[0].shape[0], dtype=bool)
    for a in arrays:
        rows &= np.isfinite(a).reshape(a.shape[0], -1).all(axis=1)
    return rows


def _eigvals(jac: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Eigenvalues ``(R, n)`` of the rows marked ``ok`` (zeros elsewhere)."""
    safe = np.where(ok[:, None, None], jac, 0.0)
    return np.asarray(np.linalg.eigvals(safe), dtype=np.complex128)


def _decay_rate(lam: np.ndarray) -> np.ndarray:
    """``(R,)`` largest decay rate ``max(-Re lambda, 0)`` per row."""
    return np.maximum(-np.real(lam), 0.0).max(axis=1)
