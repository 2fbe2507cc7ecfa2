"""The compiled negative log posterior of a batch of patients and its exact derivatives.

``objective(φ (N, d), arrays) -> (N,)``: patient i's value depends on row i of ``φ`` only, so
d forward-mode directions (one-hot in a column, all rows at once) give every patient's
gradient, and d(d+1)/2 second-order directions (forward over forward along e_i and
e_i + e_j) the exact Hessian by polarization: reverse mode cannot pass the solver's adaptive
``while_loop``. One kernel is built per model, estimated set, output width and
operation spec, and cached; the data are arguments (``BatchArrays``), so new patients,
tolerances or batch sizes in the same bucket never recompile.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from hemolab.calibrate._problem import BatchArrays, CalibrationError

__all__ = ["Kernel", "get_kernel"]

_CACHE: dict[tuple[Any, ...], Kernel] = {}


@dataclass(frozen=True)
class Kernel:
    """Jitted functions of ``(φ, arrays)``: value and gradient ``(N, d)``; value, gradient
    and Hessian ``(N, d, d)``; the whole MAP search."""

    names: tuple[str, ...]
    out_names: tuple[str, ...]
    value_grad: Callable[[Any, BatchArrays], tuple[Any, Any]]
    value_grad_hess: Callable[[Any, BatchArrays], tuple[Any, Any, Any]]
    value_grad_raw: Callable[[Any, BatchArrays], tuple[Any, Any]]  # un-jitted (for NUTS)
    # (φ0, n patients, max iterations, arrays) -> LmResult: the whole MAP search, compiled
    levenberg_marquardt: Callable[..., Any]
    model: Any  # keeps the compiled model (the cache key holds its id) alive


class LmResult(NamedTuple):
    """Where the MAP search ended, per patient (padding rows included)."""

    phi: Any  # (N, d)
    value: Any  # (N,)
    grad: Any  # (N, d)
    hess: Any  # (N, d, d)
    iterations: Any  # (N,)
    start_value: Any  # (N,) the objective at φ0 (not finite: the model failed to solve)


GRAD_TOL = 1e-6  # stop when every |∂f/∂φ_k| is below this (f in log-likelihood units)


def _levenberg_marquardt(objective: Callable[..., Any], vgh: Callable[..., Any]) -> Callable:
    """A damped Newton search on the exact Hessian (Levenberg–Marquardt with Marquardt's
    diagonal scaling), every patient with its own damping and stopping, all in one compiled
    loop: a Python loop paid about a third of a P3 fit in dispatch and conversions."""
    import jax
    import jax.numpy as jnp

    def run(phi0: Any, n: Any, max_iterations: Any, a: BatchArrays) -> LmResult:
        # Two phases share one loop, so that the program holds one copy of each solve: a
        # refresh (value, gradient and Hessian where a step was accepted, or at the start)
        # and a step (one damped Newton trial per active patient, judged by its value).
        N, d = phi0.shape
        eye = jnp.eye(d)
        real = jnp.arange(N) < n

        def refresh(state: tuple) -> tuple:
            k, phi, f, g, h, lam, active, iterations, need, f0 = state
            f_new, g_new, h_new = vgh(phi, a)
            f = jnp.where(need, f_new, f)
            g = jnp.where(need[:, None], g_new, g)
            h = jnp.where(need[:, None, None], h_new, h)
            f0 = jnp.where(k == 0, f_new, f0)
            active = active & jnp.isfinite(f) & (jnp.max(jnp.abs(g), axis=1) >= GRAD_TOL)
            return k, phi, f, g, h, lam, active, iterations, jnp.zeros_like(need), f0

        def step(state: tuple) -> tuple:
            k, phi, f, g, h, lam, active, iterations, _, f0 = state
            iterations = iterations + active
            scale = jnp.maximum(jnp.abs(jnp.diagonal(h, axis1=1, axis2=2)), 1e-8)
            damped = h + lam[:, None, None] * (scale[:, :, None] * eye)
            delta = -jnp.linalg.solve(damped, g[..., None])[..., 0]
            fallback = -g / jnp.maximum(1.0, lam)[:, None]
            delta = jnp.where(jnp.all(jnp.isfinite(delta), axis=1, keepdims=True), delta, fallback)
            trial = jnp.where(active[:, None], phi + jnp.clip(delta, -2.0, 2.0), phi)
            ft = objective(trial, a)
            accept = active & jnp.isfinite(ft) & (ft <= f)
            small = accept & (jnp.max(jnp.abs(trial - phi), axis=1) < 1e-10)
            phi = jnp.where(accept[:, None], trial, phi)
            f = jnp.where(accept, ft, f)
            lam = jnp.where(accept, jnp.maximum(lam / 5.0, 1e-9), jnp.where(active, lam * 10, lam))
            active = active & ~small & (lam <= 1e12)
            return k + 1, phi, f, g, h, lam, active, iterations, accept, f0

        def cond(state: tuple) -> Any:
            k, *_, active, _, need, _ = state
            return jnp.any(need) | ((k < max_iterations) & jnp.any(active))

        def body(state: tuple) -> tuple:
            return jax.lax.cond(jnp.any(state[8]), refresh, step, state)

        inf = jnp.full(N, jnp.inf)
        state = (jnp.asarray(0), phi0, inf, jnp.zeros((N, d)), jnp.zeros((N, d, d)),
                 jnp.full(N, 1e-3), real, jnp.zeros(N, jnp.int32), real, inf)  # fmt: skip
        _, phi, f, g, h, _, _, iterations, _, f0 = jax.lax.while_loop(cond, body, state)
        return LmResult(phi, f, g, h, iterations, f0)

    return run


def residual_outputs(mdl: Any) -> tuple[str, ...]:
    """The variables with a residual error model, in the model's variable order."""
    variables = list(mdl.state_names + mdl.observable_names)
    have = {e.observable for e in mdl.residual_error}
    return tuple(v for v in variables if v in have)


Spec = tuple[frozenset[int] | None, frozenset[int]]


def get_kernel(cm: Any, names: Sequence[str], n_outputs: int, spec: Spec) -> Kernel:
    key = (id(cm), tuple(names), n_outputs, spec)
    k = _CACHE.get(key)
    if k is None:
        k = _build(cm, tuple(names), n_outputs, spec)
        _CACHE[key] = k
    return k


def _build(cm: Any, names: tuple[str, ...], n_outputs: int, spec: Spec) -> Kernel:
    import jax
    import jax.numpy as jnp
    from jax.scipy.stats import norm

    from hemolab.solve._loop import ChunkInputs, make_chunk_solver

    mdl = cm.model
    var = mdl.variability
    if var is None:
        raise CalibrationError(f"model {mdl.name!r} declares no variability: no prior to use")
    idx = [var.parameters.index(n) for n in names]
    omega = var.matrix[np.ix_(idx, idx)]
    chol_inv = jnp.asarray(np.linalg.inv(np.linalg.cholesky(omega)))
    cols = jnp.asarray([mdl.inputs.index(n) for n in names])
    variables = list(mdl.state_names + mdl.observable_names)
    out_names = residual_outputs(mdl)
    errors = {e.observable: e for e in mdl.residual_error}
    is_exp = jnp.asarray([errors[o].kind == "exponential" for o in out_names])
    sd_a = jnp.asarray([errors[o].additive for o in out_names], dtype=jnp.float64)
    sd_b = jnp.asarray(
        [0.0 if errors[o].kind in ("additive", "exponential") else errors[o].proportional
         for o in out_names], dtype=jnp.float64)  # fmt: skip
    solver = make_chunk_solver(
        cm,
        n_outputs=n_outputs,
        history_size=1024,
        lanes=1 << 30,  # every patient in its own lane
        ops=spec[0],
        rate_targets=spec[1],
        out_vars=tuple(variables.index(v) for v in out_names),
    )

    def objective(phi: jax.Array, a: BatchArrays) -> jax.Array:
        N = phi.shape[0]
        inputs = jnp.asarray(a.inputs).at[:, cols].set(jnp.exp(phi))
        res = solver(
            ChunkInputs(
                inputs=inputs,
                act_time=a.act_time,
                act_op=a.act_op,
                act_target=a.act_target,
                act_value=a.act_value,
                act_stop=a.act_stop,
                t0=a.t0,
                y_init=jnp.full((N, cm.n_states), jnp.nan),
                n_valid=jnp.asarray(N, dtype=jnp.int32),
                rtol=a.rtol,
                atol=a.atol,
                max_steps=a.max_steps,
            )
        )
        f = res.outputs[jnp.arange(N)[:, None], a.slot, a.var]
        f = jnp.where(a.mask, f, 1.0)
        e, sa, sb = is_exp[a.var], sd_a[a.var], sd_b[a.var]
        log_f = jnp.log(jnp.where(e, f, 1.0))
        z_obs = jnp.where(e, jnp.log(a.y) - log_f, a.y - f)
        z_lim = jnp.where(e, jnp.log(a.lloq) - log_f, a.lloq - f)
        sd = jnp.where(e, sa, jnp.sqrt(sa**2 + (sb * f) ** 2))
        term = jnp.where(
            a.censored, -norm.logcdf(z_lim / sd), 0.5 * (z_obs / sd) ** 2 + jnp.log(sd)
        )
        data = jnp.sum(jnp.where(a.mask, term, 0.0), axis=1)
        prior = 0.5 * jnp.sum(((phi - a.log_pop) @ chol_inv.T) ** 2, axis=1)
        return jnp.where(res.status == 0, data + prior, jnp.inf)

    def directions(phi: jax.Array) -> jax.Array:
        d = phi.shape[1]
        return jnp.broadcast_to(jnp.eye(d)[:, None, :], (d, *phi.shape))

    def value_grad(phi: jax.Array, a: BatchArrays) -> tuple[jax.Array, jax.Array]:
        v, g = jax.vmap(lambda t: jax.jvp(lambda p: objective(p, a), (phi,), (t,)))(directions(phi))
        return v[0], g.T

    def value_grad_hess(phi: jax.Array, a: BatchArrays) -> tuple[jax.Array, jax.Array, jax.Array]:
        # Second directional derivatives uᵀHu along e_i and e_i + e_j (i < j): d(d+1)/2
        # forward-over-forward lanes instead of d², the Hessian by polarization,
        # H_ij = (s(e_i + e_j) - H_ii - H_jj) / 2, and the gradient from the e_i lanes.
        d = phi.shape[1]
        pairs = [(i, i) for i in range(d)] + [(i, j) for i in range(d) for j in range(i + 1, d)]
        u = np.zeros((len(pairs), d))
        for k, (i, j) in enumerate(pairs):
            u[k, i] = u[k, j] = 1.0

        def second(t: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
            def first(p: jax.Array) -> tuple[jax.Array, jax.Array]:
                return jax.jvp(lambda q: objective(q, a), (p,), (t,))

            (f, ft), (_, ftt) = jax.jvp(first, (phi,), (t,))
            return f, ft, ftt

        dirs = jnp.broadcast_to(jnp.asarray(u)[:, None, :], (len(pairs), *phi.shape))
        f, ft, ftt = jax.vmap(second)(dirs)
        diag = ftt[:d].T  # (N, d)
        h = jnp.zeros((phi.shape[0], d, d)).at[:, jnp.arange(d), jnp.arange(d)].set(diag)
        for k, (i, j) in enumerate(pairs[d:], start=d):
            off = 0.5 * (ftt[k] - diag[:, i] - diag[:, j])
            h = h.at[:, i, j].set(off).at[:, j, i].set(off)
        return f[0], ft[:d].T, h

    return Kernel(
        names=names,
        levenberg_marquardt=jax.jit(_levenberg_marquardt(objective, value_grad_hess)),
        out_names=out_names,
        value_grad=jax.jit(value_grad),
        value_grad_hess=jax.jit(value_grad_hess),
        value_grad_raw=value_grad,
        model=cm,
    )
