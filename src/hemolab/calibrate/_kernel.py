"""The compiled negative log posterior of a batch of patients and its exact derivatives.

``objective(φ (N, d), arrays) -> (N,)``: patient i's value depends on row i of ``φ`` only, so
d forward-mode directions (one-hot in a column, all rows at once) give every patient's
gradient, and d(d+1)/2 second-order directions (forward over forward along e_i and
e_i + e_j) the exact Hessian by polarization: reverse mode cannot pass the solver's adaptive
``while_loop``. The same d first-order directions through the predictions alone give their
Jacobian J, hence the Gauss–Newton Hessian JᵀWJ + Ω⁻¹ the MAP search steers by (design note
017). One kernel is built per model, estimated set, output width and
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
    and exact Hessian ``(N, d, d)``; the whole MAP search and the Laplace step at its end
    (both exported when ``$HEMOLAB_JAX_CACHE`` is set, design note 018)."""

    names: tuple[str, ...]
    out_names: tuple[str, ...]
    value_grad: Callable[[Any, BatchArrays], tuple[Any, Any]]
    value_grad_hess: Callable[[Any, BatchArrays], tuple[Any, Any, Any]]
    value_grad_raw: Callable[[Any, BatchArrays], tuple[Any, Any]]  # un-jitted (for NUTS)
    # (φ0, real (N,) bool, max iterations, arrays) -> LmResult: the whole MAP search
    levenberg_marquardt: Callable[..., Any]
    # (φ, arrays) -> LaplaceResult: the exact Hessian at φ and the Newton decrement
    laplace: Callable[..., Any]
    model: Any  # keeps the compiled model (the cache key holds its id) alive


class LmResult(NamedTuple):
    """Where the MAP search ended, per patient (padding rows included)."""

    phi: Any  # (N, d)
    value: Any  # (N,)
    grad: Any  # (N, d)
    hess: Any  # (N, d, d) the Gauss–Newton Hessian JᵀWJ + Ω⁻¹
    iterations: Any  # (N,)
    start_value: Any  # (N,) the objective at φ0 (not finite: the model failed to solve)
    decrement: Any  # (N,) the Newton decrement gᵀH⁻¹g (inf: H not positive definite)


class LaplaceResult(NamedTuple):
    """Value, gradient, exact Hessian and Newton decrement at φ, per patient."""

    value: Any  # (N,)
    grad: Any  # (N, d)
    hess: Any  # (N, d, d)
    decrement: Any  # (N,)


GRAD_TOL = 1e-6  # stop when every |∂f/∂φ_k| is below this (f in log-likelihood units)
# ... or when the Newton decrement gᵀH⁻¹g is below this: the optimum is then within
# sqrt(DECREMENT_TOL) = 1e-4 posterior SDs, and the objective within DECREMENT_TOL / 2.
# Without it a patient whose gradient sits at the solver's noise floor (|g| ~ 1e-4 and
# gᵀH⁻¹g ~ 1e-10 at rtol 1e-6) spent ~20 more rejected trials raising the damping to its cap
# (P3's 50 patients: 3 to 29 iterations).
DECREMENT_TOL = 1e-8
# ... or when a trial is rejected this close to the optimum (0.001 SD): the solver's noise
REJECTED_DECREMENT_TOL = 1e-6


def newton_decrement(g: Any, h: Any) -> Any:
    """``gᵀH⁻¹g`` per patient (``g (N, d)``, ``h (N, d, d)``); inf where H is not positive
    definite (a Cholesky factor with NaN)."""
    import jax
    import jax.numpy as jnp

    chol = jnp.linalg.cholesky(h)
    w = jax.scipy.linalg.solve_triangular(chol, g[..., None], lower=True)[..., 0]
    dec = jnp.sum(w * w, axis=-1)
    return jnp.where(jnp.isfinite(dec), dec, jnp.inf)


def _levenberg_marquardt(vgn: Callable[..., Any]) -> Callable:
    """Levenberg–Marquardt on the Gauss–Newton Hessian (Marquardt's diagonal scaling), every
    patient with its own damping and stopping, all in one compiled loop. The exact Hessian
    (the Laplace covariance) is a separate kernel: a MAP estimate alone does not pay for it.

    Each iteration is one solve with d tangent directions at the trial point, giving its
    value, gradient and Gauss–Newton Hessian at once (kept if the trial is accepted). The
    Gauss–Newton Hessian is positive definite, so every damped step descends: the exact
    Hessian, indefinite far from the optimum, sent P3 patients towards saddles for 20
    iterations. A Python loop paid about a third of a P3 fit in dispatch."""
    import jax
    import jax.numpy as jnp

    def run(phi0: Any, real: Any, max_iterations: Any, a: BatchArrays) -> LmResult:
        N, d = phi0.shape
        eye = jnp.eye(d)

        def done(g: Any, h: Any) -> Any:
            return (jnp.max(jnp.abs(g), axis=1) < GRAD_TOL) | (
                newton_decrement(g, h) < DECREMENT_TOL
            )

        def body(state: tuple) -> tuple:
            k, phi, f, g, h, lam, nu, active, iterations = state
            iterations = iterations + active
            dec = newton_decrement(g, h)
            scale = jnp.maximum(jnp.abs(jnp.diagonal(h, axis1=1, axis2=2)), 1e-8)
            damped = h + lam[:, None, None] * (scale[:, :, None] * eye)
            delta = -jnp.linalg.solve(damped, g[..., None])[..., 0]
            fallback = -g / jnp.maximum(1.0, lam)[:, None]
            delta = jnp.where(jnp.all(jnp.isfinite(delta), axis=1, keepdims=True), delta, fallback)
            trial = jnp.where(active[:, None], phi + jnp.clip(delta, -2.0, 2.0), phi)
            step = trial - phi
            predicted = -jnp.sum(g * step, axis=1) - 0.5 * jnp.einsum("ni,nij,nj->n", step, h, step)
            ft, gt, ht = vgn(trial, a)
            accept = active & jnp.isfinite(ft) & (ft <= f)
            rho = (f - ft) / jnp.maximum(predicted, 1e-300)
            small = accept & (jnp.max(jnp.abs(trial - phi), axis=1) < 1e-10)
            phi = jnp.where(accept[:, None], trial, phi)
            f = jnp.where(accept, ft, f)
            g = jnp.where(accept[:, None], gt, g)
            h = jnp.where(accept[:, None, None], ht, h)
            # Nielsen's damping update (IMM DTU report, 1999): by the gain ratio on success,
            # by a doubling factor on failure
            shrink = jnp.maximum(1.0 / 3.0, 1.0 - (2.0 * jnp.clip(rho, 0.0, 1.0) - 1.0) ** 3)
            lam = jnp.where(accept, jnp.maximum(lam * shrink, 1e-12),
                            jnp.where(active, lam * nu, lam))  # fmt: skip
            nu = jnp.where(accept, 2.0, jnp.where(active, nu * 2.0, nu))
            noise = active & ~accept & (dec < REJECTED_DECREMENT_TOL)
            active = active & ~small & ~noise & (lam <= 1e12) & ~done(g, h)
            return k + 1, phi, f, g, h, lam, nu, active, iterations

        def cond(state: tuple) -> Any:
            return (state[0] < max_iterations) & jnp.any(state[7])

        f0, g0, h0 = vgn(phi0, a)
        active = real & jnp.isfinite(f0) & ~done(g0, h0)
        state = (jnp.asarray(0), phi0, f0, g0, h0, jnp.full(N, 1e-3), jnp.full(N, 2.0), active,
                 jnp.zeros(N, jnp.int32))  # fmt: skip
        _, phi, f, g, h, _, _, _, iterations = jax.lax.while_loop(cond, body, state)
        return LmResult(phi, f, g, h, iterations, f0, newton_decrement(g, h))

    return run


def residual_outputs(mdl: Any) -> tuple[str, ...]:
    """The variables with a residual error model, in the model's variable order."""
    variables = list(mdl.state_names + mdl.observable_names)
    have = {e.observable for e in mdl.residual_error}
    return tuple(v for v in variables if v in have)


Spec = tuple[frozenset[int] | None, frozenset[int]]


def get_kernel(cm: Any, names: Sequence[str], n_outputs: int, spec: Spec, n_dev: int = 1) -> Kernel:
    """The kernel of a model, estimated set, output width and operation spec; with
    ``n_dev`` > 1 the MAP search and the Laplace step split the patients in equal blocks
    over that many host devices (one core each, no communication: design note 009)."""
    key = (id(cm), tuple(names), n_outputs, spec, n_dev)
    k = _CACHE.get(key)
    if k is None:
        k = _build(cm, tuple(names), n_outputs, spec, n_dev)
        _CACHE[key] = k
    return k


def _on_devices(
    fn: Callable[..., Any], n_dev: int, rows: int, scalars: int = 0
) -> Callable[..., Any]:
    """``fn`` jitted, its patient rows split over ``n_dev`` host devices (``shard_map``).
    Its arguments: ``rows`` arrays split by rows, then ``scalars`` replicated values, and last
    the ``BatchArrays`` (its tolerances replicated)."""
    import jax

    if n_dev == 1:
        return jax.jit(fn)
    from jax.sharding import Mesh, PartitionSpec as P

    mesh = Mesh(np.array(jax.local_devices()[:n_dev]), ("d",))
    arrays = BatchArrays._make([P("d")] * 14 + [P()] * 3)
    specs = (*[P("d")] * rows, *[P()] * scalars, arrays)
    return jax.jit(jax.shard_map(fn, mesh=mesh, in_specs=specs, out_specs=P("d"),
                                 check_vma=False))  # fmt: skip


def _program_key(cm: Any, names: tuple[str, ...], n_outputs: int, spec: Spec) -> list[str]:
    """What determines the compiled search besides hemolab's code and the argument shapes."""
    from hemolab.compile import model_hash

    mdl = cm.model
    return [model_hash(mdl), repr(mdl.variability), repr(mdl.residual_error), repr(names),
            str(n_outputs), repr(sorted(spec[0] or ())), repr(spec[0] is None),
            repr(sorted(spec[1])), repr(list(cm.log_mask)), repr(cm.linear_states)]  # fmt: skip


def _build(cm: Any, names: tuple[str, ...], n_outputs: int, spec: Spec, n_dev: int) -> Kernel:
    import jax
    import jax.numpy as jnp
    from jax.scipy.stats import norm

    from hemolab._exported import ExportedKernel
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

    def predict(phi: jax.Array, a: BatchArrays) -> tuple[jax.Array, jax.Array]:
        """Each observation's prediction (N, M), on the scale its error model is additive
        on (log f for exponential errors, else f), and whether the patient solved (N,)."""
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
        e = is_exp[a.var]
        return jnp.where(e, jnp.log(jnp.where(e, f, 1.0)), f), res.status == 0

    def residual_parts(q: jax.Array, a: BatchArrays) -> tuple[Any, ...]:
        e, sa, sb = is_exp[a.var], sd_a[a.var], sd_b[a.var]
        f = jnp.where(e, 1.0, q)  # the natural value where the SD depends on it
        z_obs = jnp.where(e, jnp.log(a.y), a.y) - q
        z_lim = jnp.where(e, jnp.log(a.lloq), a.lloq) - q
        sd = jnp.where(e, sa, jnp.sqrt(sa**2 + (sb * f) ** 2))
        dsd = jnp.where(e, 0.0, sb**2 * f / sd)  # d sd / dq
        return z_obs, z_lim, sd, dsd

    def terms(q: jax.Array, a: BatchArrays) -> jax.Array:
        """Each observation's negative log-likelihood (N, M), an elementwise function of q;
        below the LLOQ NONMEM's M3, -log Φ."""
        z_obs, z_lim, sd, _ = residual_parts(q, a)
        term = jnp.where(
            a.censored, -norm.logcdf(z_lim / sd), 0.5 * (z_obs / sd) ** 2 + jnp.log(sd)
        )
        return jnp.where(a.mask, term, 0.0)

    def weights(q: jax.Array, a: BatchArrays) -> jax.Array:
        """Each term's Gauss–Newton curvature in q (N, M), never negative: the Fisher
        information of a normal with mean q and SD sd(q), and for -log Φ(x) (convex) its
        curvature r (x + r), r = φ/Φ, times (dx/dq)²."""
        _, z_lim, sd, dsd = residual_parts(q, a)
        fisher = 1.0 / sd**2 + 2.0 * (dsd / sd) ** 2
        x = z_lim / sd
        r = jnp.exp(norm.logpdf(x) - norm.logcdf(x))
        dx = -(1.0 + x * dsd) / sd
        w = jnp.where(a.censored, r * (x + r) * dx**2, fisher)
        return jnp.where(a.mask, w, 0.0)

    prior_precision = chol_inv.T @ chol_inv

    def prior(phi: jax.Array, a: BatchArrays) -> jax.Array:
        return 0.5 * jnp.sum(((phi - a.log_pop) @ chol_inv.T) ** 2, axis=1)

    def objective(phi: jax.Array, a: BatchArrays) -> jax.Array:
        q, ok = predict(phi, a)
        return jnp.where(ok, jnp.sum(terms(q, a), axis=1) + prior(phi, a), jnp.inf)

    def value_grad_gn(phi: jax.Array, a: BatchArrays) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Value, exact gradient and Gauss–Newton Hessian JᵀWJ + Ω⁻¹ from one solve with d
        tangent directions (J: the predictions' Jacobian)."""

        def along(t: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
            q, dq, ok = jax.jvp(lambda p: predict(p, a), (phi,), (t,), has_aux=True)
            return q, dq, ok

        q, jac, ok = jax.vmap(along)(directions(phi))  # jac (d, N, M)
        q, ok = q[0], ok[0]
        term, dterm = jax.jvp(lambda x: terms(x, a), (q,), (jnp.ones_like(q),))
        w = weights(q, a)
        value = jnp.where(ok, jnp.sum(term, axis=1) + prior(phi, a), jnp.inf)
        g = jnp.einsum("dnm,nm->nd", jac, dterm) + (phi - a.log_pop) @ prior_precision
        h = jnp.einsum("dnm,nm,enm->nde", jac, w, jac) + prior_precision
        return value, g, h

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

    def laplace(phi: jax.Array, a: BatchArrays) -> LaplaceResult:
        f, g, h = value_grad_hess(phi, a)
        return LaplaceResult(f, g, h, newton_decrement(g, h))

    key = [*_program_key(cm, names, n_outputs, spec), f"devices {n_dev}"]
    search = _on_devices(_levenberg_marquardt(value_grad_gn), n_dev, rows=2, scalars=1)
    return Kernel(
        names=names,
        levenberg_marquardt=ExportedKernel("map-search", search, key),
        laplace=ExportedKernel("laplace", _on_devices(laplace, n_dev, rows=1), key),
        out_names=out_names,
        value_grad=jax.jit(value_grad),
        value_grad_hess=jax.jit(value_grad_hess),
        value_grad_raw=value_grad,
        model=cm,
    )
