"""The full posterior by NUTS (NumPyro), every chain of every patient in one vectorized run.

NumPyro differentiates the potential in reverse mode, which cannot pass the solver's
adaptive ``while_loop``; the potential is therefore a ``custom_jvp`` whose rule returns
``g·v`` with ``g`` from forward mode (linear in ``v``, so JAX can transpose it). The chains
run under ``vmap``, and a vmapped solver would turn the loop's branches into selects over
all lanes; a ``custom_vmap`` rule hands the whole batch of chains to the batched kernel
instead, so one solve serves all chains per leapfrog step (design note 015).

Chains start at the MAP (with a small seeded jitter), which spares warmup the search for the
typical set. Diagnostics per patient: split R-hat, bulk effective sample size, divergences
after warmup, and an identifiability ratio (posterior over prior SD of each log parameter).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hemolab.calibrate._kernel import get_kernel, residual_outputs
from hemolab.calibrate._map import _estimated, fit_map_batch
from hemolab.calibrate._problem import CalibrationError, Patient, pack_batch

__all__ = ["PosteriorFit", "sample_nuts"]

RHAT_MAX = 1.01
ESS_PER_CHAIN_MIN = 100  # bulk ESS >= 100 per chain (Vehtari et al. 2021)
UNINFORMED_RATIO = 0.9  # posterior SD above 90 % of the prior's: the data barely inform it
# The solver's tolerances for NUTS: its error is then 1e-4 of a count, against residual
# errors of several percent. On P3's first 8 patients (4 x (1000 + 1000)) the posterior means,
# 5 % and 95 % quantiles at 1e-4 and 1e-7 differed by 0.00-0.09 posterior SD (Monte Carlo
# noise: 0.024 SD for the means), the SDs by at most 3 %; P3 took 9.9 s instead of 15.7 s at
# 1e-6 (design note 019).
NUTS_RTOL = 1e-4
NUTS_ATOL = 1e-6


@dataclass(frozen=True)
class PosteriorFit:
    """Posterior draws of one patient's estimated parameters and their diagnostics."""

    names: tuple[str, ...]
    draws: np.ndarray  # (chains, draws, d) θ (not log)
    rhat: np.ndarray  # (d,) split R-hat
    ess: np.ndarray  # (d,) bulk effective sample size
    divergences: int
    sd_ratio: np.ndarray  # (d,) posterior / prior SD of log θ
    mean_tree_steps: float = math.nan  # leapfrog steps per iteration (cost indicator)
    method: str = "nuts"
    warnings: tuple[str, ...] = field(default=())

    def samples(self) -> dict[str, np.ndarray]:
        """All chains' draws, flattened, per parameter."""
        flat = self.draws.reshape(-1, len(self.names))
        return {n: flat[:, k] for k, n in enumerate(self.names)}

    def interval(self, name: str, level: float = 0.9) -> tuple[float, float]:
        x = self.samples()[name]
        lo, hi = np.quantile(x, [0.5 - level / 2, 0.5 + level / 2])
        return float(lo), float(hi)

    @property
    def ok(self) -> bool:
        return not self.warnings


def diagnose(
    names: Sequence[str], log_draws: np.ndarray, divergences: int, prior_sd: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
    """R-hat, ESS, SD ratio and the warnings for ``log_draws`` (chains, draws, d)."""
    from numpyro.diagnostics import effective_sample_size, split_gelman_rubin

    chains = log_draws.shape[0]
    rhat = np.asarray(split_gelman_rubin(log_draws)) if chains > 1 else np.full(len(names), np.nan)
    ess = np.asarray(effective_sample_size(log_draws))
    ratio = log_draws.reshape(-1, len(names)).std(axis=0) / prior_sd
    warn = []
    for k, n in enumerate(names):
        if chains > 1 and not rhat[k] < RHAT_MAX:
            warn.append(f"{n}: R-hat {rhat[k]:.3f} >= {RHAT_MAX} (chains disagree)")
        if not ess[k] >= ESS_PER_CHAIN_MIN * chains:
            warn.append(f"{n}: effective sample size {ess[k]:.0f} < {ESS_PER_CHAIN_MIN * chains}")
        if ratio[k] > UNINFORMED_RATIO:
            warn.append(f"{n}: the data barely inform it (posterior SD {ratio[k]:.0%} of prior)")
    if divergences:
        warn.append(f"{divergences} divergent transitions after warmup")
    return rhat, ess, ratio, tuple(warn)


def sample_nuts(
    model: Any,
    patients: Sequence[Patient],
    *,
    chains: int = 4,
    warmup: int = 1000,
    draws: int = 1000,
    seed: int = 0,
    estimate: Sequence[str] | None = None,
    rtol: float = NUTS_RTOL,
    atol: float = NUTS_ATOL,
    target_accept: float = 0.8,
    max_tree_depth: int = 8,
    start: Sequence[Any] | None = None,
) -> list[PosteriorFit]:
    """NUTS posterior of each patient (``chains`` × ``draws`` after ``warmup``), seeded.

    ``start``: MAP fits to start from (one per patient); None runs :func:`fit_map_batch`.
    """
    import jax
    import jax.numpy as jnp

    from hemolab._simulate import get_compiled

    if chains < 1 or warmup < 1 or draws < 2:
        raise CalibrationError("NUTS needs chains >= 1, warmup >= 1 and draws >= 2")
    cm = get_compiled(model)
    names = _estimated(cm.model, estimate)
    fits = list(start) if start is not None else fit_map_batch(model, patients, estimate=names)
    if len(fits) != len(patients):
        raise CalibrationError(f"{len(fits)} starting fits for {len(patients)} patients")
    arrays, T, spec = pack_batch(cm, patients, names, residual_outputs(cm.model), rtol=rtol,
                                 atol=atol, max_steps=NUTS_MAX_STEPS)  # fmt: skip
    kernel = get_kernel(cm, names, T, spec)
    n, d = len(patients), len(names)
    # whitening: sample z with φ = mode + L·z, L the Cholesky factor of the Laplace covariance;
    # every patient's posterior is then close to N(0, I), so one step size and short trees
    # serve every lane of the vectorized run (a lane's long tree holds up all the others)
    mode = np.log([[fit.estimate[nm] for nm in names] for fit in fits])
    chol = np.stack([_chol(f.log_covariance, d) for f in fits])
    per_lane = {f: np.repeat(np.asarray(getattr(arrays, f))[:n], chains, axis=0)
                for f in arrays._fields if f not in _SCALARS}  # fmt: skip
    per_lane["center"] = np.repeat(mode, chains, axis=0)
    per_lane["chol"] = np.repeat(chol, chains, axis=0)
    var = cm.model.variability
    assert var is not None  # checked by _estimated
    prior_sd = np.sqrt(np.diag(var.matrix)[[var.parameters.index(nm) for nm in names]])
    per_lane["prior_sd"] = np.broadcast_to(prior_sd, (n * chains, d))
    scalars = {f: getattr(arrays, f) for f in _SCALARS}
    z0 = 0.3 * np.random.default_rng(seed).standard_normal((n * chains, d))
    keys = jax.random.split(jax.random.PRNGKey(seed), n * chains)
    lanes = n * chains
    devices = len(jax.local_devices())
    n_dev = devices if devices > 1 and lanes % devices == 0 else 1
    run = _runner(kernel, type(arrays), warmup, draws, float(target_accept), int(max_tree_depth),
                  n_dev)  # fmt: skip
    zs, div, steps = run(
        {k: jnp.asarray(v) for k, v in per_lane.items()},
        {k: jnp.asarray(v) for k, v in scalars.items()},
        keys,
        jnp.asarray(z0),
    )
    zs = np.asarray(zs).reshape(n, chains, draws, d)
    phi = mode[:, None, None, :] + np.einsum("nij,ncsj->ncsi", chol, zs)
    div = np.asarray(div).reshape(n, chains, draws)
    if not np.all(np.isfinite(phi)):
        raise CalibrationError("NUTS produced non-finite draws (the model failed to solve)")
    out = []
    for i in range(n):
        rhat, ess, ratio, warn = diagnose(names, phi[i], int(div[i].sum()), prior_sd)
        out.append(PosteriorFit(names, np.exp(phi[i]), rhat, ess, int(div[i].sum()), ratio,
                                mean_tree_steps=float(np.asarray(steps).reshape(n, -1)[i].mean()),
                                warnings=warn))  # fmt: skip
    return out


_SCALARS = ("rtol", "atol", "max_steps")
_LANE_ONLY = ("center", "chol", "prior_sd")
Z_MAX = 30.0  # whitened coordinates: 30 posterior SDs (Laplace) from the mode
PRIOR_SD_MAX = 12.0  # log θ more than 12 prior SDs from the population value
NUTS_MAX_STEPS = 20_000  # solver steps per solve before a draw counts as failed
_RUNNERS: dict[tuple[Any, ...], Any] = {}


def _chol(cov: np.ndarray, d: int) -> np.ndarray:
    """Cholesky factor of a Laplace covariance, or the identity scaled small if unusable."""
    try:
        c = np.linalg.cholesky(0.5 * (cov + cov.T))
        if np.all(np.isfinite(c)):
            return c
    except np.linalg.LinAlgError:
        pass
    return 0.1 * np.eye(d)


def _runner(
    kernel: Any,
    batch_type: Any,
    warmup: int,
    draws: int,
    target_accept: float,
    depth: int,
    n_dev: int = 1,
) -> Any:
    """The jitted vectorized sampler, built once per kernel and settings (data as arguments).

    With ``n_dev`` > 1 host devices the chains are split in equal blocks, one per device
    (``shard_map``), each block a vectorized run of its own: the devices run on their own
    cores, with no communication (design note 009)."""
    key = (id(kernel), warmup, draws, target_accept, depth, n_dev)
    run = _RUNNERS.get(key)
    if run is not None:
        return run
    import jax
    from numpyro.infer.hmc import hmc

    potential = _potential(kernel, batch_type)

    def chain(row: Any, sc: Any, key: jax.Array, z: jax.Array) -> tuple[Any, Any, Any]:
        init_kernel, sample_kernel = hmc(potential_fn=lambda p: potential(p, row, sc), algo="NUTS")
        state = init_kernel(z, warmup, target_accept_prob=target_accept, max_tree_depth=depth,
                            rng_key=key)  # fmt: skip

        def step(s: Any, _: Any) -> tuple[Any, tuple[Any, Any, Any]]:
            s = sample_kernel(s)
            return s, (s.z, s.diverging, s.num_steps)

        _, (zs, div, steps) = jax.lax.scan(step, state, None, length=warmup + draws)
        return zs[warmup:], div[warmup:], steps

    run = jax.vmap(chain, in_axes=(0, None, 0, 0))
    if n_dev > 1:
        from jax.sharding import Mesh, PartitionSpec as P

        mesh = Mesh(np.array(jax.local_devices()[:n_dev]), ("d",))
        run = jax.shard_map(run, mesh=mesh, in_specs=(P("d"), P(), P("d"), P("d")),
                            out_specs=P("d"), check_vma=False)  # fmt: skip
    run = jax.jit(run)
    _RUNNERS[key] = run
    return run


def _potential(kernel: Any, batch_type: Any) -> Any:
    """``U(z, row, settings)``: the whitened negative log posterior of one chain, with a
    forward-mode ``custom_jvp`` and a ``custom_vmap`` onto the batched kernel."""
    import jax
    import jax.numpy as jnp

    def solve_batch(z: jax.Array, row: dict[str, Any], sc: dict[str, Any]) -> Any:
        phi = row["center"] + jnp.einsum("nij,nj->ni", row["chol"], z)
        # an exploding trajectory (early warmup, a divergence) must not reach the solver:
        # absurd parameters can cost it max_steps; outside the box the potential is +inf
        far = jnp.any(jnp.abs(z) > Z_MAX, axis=1) | jnp.any(
            jnp.abs(phi - row["log_pop"]) > PRIOR_SD_MAX * row["prior_sd"], axis=1
        )
        phi = jnp.where(far[:, None], row["center"], phi)
        data = {k: v for k, v in row.items() if k not in _LANE_ONLY}
        v, g = kernel.value_grad_raw(phi, batch_type(**data, **sc))
        g = jnp.einsum("nij,ni->nj", row["chol"], g)  # dU/dz = Lᵀ dU/dφ
        return jnp.where(far, jnp.inf, v), jnp.where(far[:, None], 0.0, g)

    @jax.custom_batching.custom_vmap
    def value_grad(z: jax.Array, row: dict[str, Any], sc: dict[str, Any]) -> Any:
        v, g = solve_batch(z[None], {k: x[None] for k, x in row.items()}, sc)
        return v[0], g[0]

    @value_grad.def_vmap
    def _value_grad_batched(axis_size: int, in_batched: Any, z: Any, row: Any, sc: Any) -> Any:
        z_b, row_b, sc_b = in_batched
        if any(jax.tree_util.tree_leaves(sc_b)):
            raise CalibrationError("internal: solver settings must not vary across chains")

        def full(x: jax.Array, b: bool) -> jax.Array:
            return x if b else jnp.broadcast_to(x, (axis_size, *jnp.shape(x)))

        rows = {k: full(x, row_b[k]) for k, x in row.items()}
        return solve_batch(full(z, z_b), rows, sc), (True, True)

    @jax.custom_jvp
    def potential(z: jax.Array, row: dict[str, Any], sc: dict[str, Any]) -> jax.Array:
        return value_grad(z, row, sc)[0]

    @potential.defjvp
    def _potential_jvp(primals: Any, tangents: Any) -> tuple[jax.Array, jax.Array]:
        v, g = value_grad(*primals)
        return v, jnp.dot(g, tangents[0])

    return potential
