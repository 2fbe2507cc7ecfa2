"""Bayesian individual calibration: the MAP estimate and its Laplace approximation.

The parameters with inter-individual variability in the model (``Model.variability``) are
estimated on the log scale, ``φ = log θ``, with the population prior ``φ ~ N(log θ_pop, Ω)``
(the library's typical values and omega); the rest stay at their given or typical values.
The data enter through the model's residual error models (``Model.residual_error``), with
values below the LLOQ as censored observations (NONMEM's M3: ``-log Φ``).

The objective is minimised by a damped Newton method (Levenberg–Marquardt on the exact
Hessian) with forward-over-forward derivatives through the solver (``make_solve_fn``):
reverse mode cannot pass the solver's adaptive ``while_loop``. The same exact Hessian at the
optimum gives the Laplace covariance of ``φ``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hemolab._errors import HemolabError

__all__ = ["CalibrationError", "MapFit", "Observations", "fit_map"]


class CalibrationError(HemolabError, ValueError):
    """The data or the model cannot be calibrated as asked."""


@dataclass(frozen=True)
class Observations:
    """One patient's observations, in the model's time unit and canonical units.

    ``value`` is NaN where ``censored`` (below ``lloq``).
    """

    observable: tuple[str, ...]
    time: np.ndarray
    value: np.ndarray
    censored: np.ndarray
    lloq: np.ndarray

    @classmethod
    def of(
        cls,
        observable: Sequence[str],
        time: Sequence[float],
        value: Sequence[float],
        censored: Sequence[bool] | None = None,
        lloq: Sequence[float] | None = None,
    ) -> Observations:
        n = len(observable)
        c = np.zeros(n, bool) if censored is None else np.asarray(censored, bool)
        lq = np.full(n, np.nan) if lloq is None else np.asarray(lloq, np.float64)
        return cls(tuple(observable), np.asarray(time, np.float64),
                   np.asarray(value, np.float64), c, lq)  # fmt: skip


@dataclass(frozen=True)
class MapFit:
    """The MAP estimate, its Laplace covariance (of log parameters) and how it was found."""

    names: tuple[str, ...]
    estimate: dict[str, float]  # θ at the MAP
    log_covariance: np.ndarray  # Laplace: inverse Hessian of the objective in φ = log θ
    objective: float  # negative log posterior at the MAP (constants dropped)
    iterations: int
    converged: bool
    gradient_norm: float

    def interval(self, name: str, level: float = 0.9) -> tuple[float, float]:
        """Equal-tailed Laplace interval of a parameter (log-normal)."""
        from scipy.stats import norm

        k = self.names.index(name)
        sd = math.sqrt(self.log_covariance[k, k])
        z = float(norm.ppf(0.5 + level / 2))
        m = math.log(self.estimate[name])
        return math.exp(m - z * sd), math.exp(m + z * sd)


def fit_map(
    model: Any,
    observations: Observations,
    events: Any = None,
    *,
    params: Mapping[str, float] | None = None,
    estimate: Sequence[str] | None = None,
    rtol: float = 1e-8,
    atol: float = 1e-10,
    max_iterations: int = 60,
    start: Mapping[str, float] | None = None,
) -> MapFit:
    """MAP fit of one patient (see the module docstring); ``events``: the dosing history."""
    import jax
    import jax.numpy as jnp
    from jax.scipy.stats import norm

    from hemolab._simulate import get_compiled

    cm = get_compiled(model)
    mdl = cm.model
    if mdl.variability is None:
        raise CalibrationError(f"model {mdl.name!r} declares no variability: no prior to use")
    names = tuple(estimate) if estimate is not None else tuple(mdl.variability.parameters)
    unknown = [n for n in names if n not in mdl.variability.parameters]
    if unknown:
        raise CalibrationError(
            f"{', '.join(unknown)}: no prior (the model's variability covers "
            f"{', '.join(mdl.variability.parameters)})"
        )
    idx = [mdl.variability.parameters.index(n) for n in names]
    omega = mdl.variability.matrix[np.ix_(idx, idx)]
    chol_inv = np.linalg.inv(np.linalg.cholesky(omega))
    inputs0 = cm.inputs_from(dict(params or {}))[0]
    cols = [mdl.inputs.index(n) for n in names]
    log_pop = np.log(inputs0[cols])

    solve, slots, var_of_obs = _solve_fn(cm, observations, events, inputs0, rtol, atol)
    errors = {e.observable: e for e in mdl.residual_error}
    missing = sorted({o for o in observations.observable if o not in errors})
    if missing:
        raise CalibrationError(f"no residual error model for {', '.join(missing)} in {mdl.name!r}")
    kinds = [errors[o] for o in observations.observable]
    y = jnp.asarray(observations.value)
    cens = np.asarray(observations.censored)
    lloq = jnp.asarray(np.where(cens, observations.lloq, 1.0))
    base = jnp.asarray(inputs0)
    slot_j, var_j = jnp.asarray(slots), jnp.asarray(var_of_obs)

    def objective(phi: jax.Array) -> jax.Array:
        values, _ = solve(base.at[jnp.asarray(cols)].set(jnp.exp(phi))[None, :])
        f = values[0, slot_j, var_j]
        total = 0.5 * jnp.sum((jnp.asarray(chol_inv) @ (phi - jnp.asarray(log_pop))) ** 2)
        for i, e in enumerate(kinds):
            fi, yi = f[i], y[i]
            if e.kind == "exponential":
                z_obs, z_lim, sd = (
                    jnp.log(yi) - jnp.log(fi),
                    jnp.log(lloq[i]) - jnp.log(fi),
                    e.additive,
                )
            else:
                sd = {
                    "additive": e.additive,
                    "proportional": e.proportional * fi,
                    "combined": jnp.sqrt(e.additive**2 + (e.proportional * fi) ** 2),
                }[e.kind]
                z_obs, z_lim = yi - fi, lloq[i] - fi
            if cens[i]:
                total = total - norm.logcdf(z_lim / sd)
            else:
                total = total + 0.5 * (z_obs / sd) ** 2 + jnp.log(sd)
        return total

    value_fn = jax.jit(objective)
    grad_fn = jax.jit(jax.jacfwd(objective))
    hess_fn = jax.jit(jax.jacfwd(jax.jacfwd(objective)))
    phi = np.log(
        [float((start or {}).get(n, math.exp(lp))) for n, lp in zip(names, log_pop, strict=True)]
    )
    fval = float(value_fn(jnp.asarray(phi)))
    if not math.isfinite(fval):
        raise CalibrationError(
            "the objective is not finite at the start (the model failed to solve)"
        )
    lam, converged, iterations = 1e-3, False, 0
    for iterations in range(1, max_iterations + 1):  # noqa: B007 (reported after the loop)
        small = False
        g = np.asarray(grad_fn(jnp.asarray(phi)))
        if np.max(np.abs(g)) < 1e-6:  # converged: the Hessian is taken once, below
            converged = True
            break
        h = np.asarray(hess_fn(jnp.asarray(phi)))
        while True:
            damped = h + lam * np.diag(np.maximum(np.abs(np.diag(h)), 1e-8))
            try:
                step = -np.linalg.solve(damped, g)
            except np.linalg.LinAlgError:
                step = -g / max(1.0, lam)
            trial = phi + np.clip(step, -2.0, 2.0)
            ft = float(value_fn(jnp.asarray(trial)))
            if math.isfinite(ft) and ft <= fval:
                small = np.max(np.abs(trial - phi)) < 1e-10
                phi, fval, lam = trial, ft, max(lam / 5.0, 1e-9)
                break
            lam *= 10.0
            if lam > 1e12:
                break
        if lam > 1e12 or small:
            converged = bool(np.max(np.abs(np.asarray(grad_fn(jnp.asarray(phi))))) < 1e-4)
            break
    h = np.asarray(hess_fn(jnp.asarray(phi)))
    g = np.asarray(grad_fn(jnp.asarray(phi)))
    try:
        cov = np.linalg.inv(h)
    except np.linalg.LinAlgError:
        cov = np.full_like(h, np.nan)
    return MapFit(
        names=names,
        estimate={n: float(math.exp(p)) for n, p in zip(names, phi, strict=True)},
        log_covariance=cov,
        objective=fval,
        iterations=iterations,
        converged=converged,
        gradient_norm=float(np.max(np.abs(g))),
    )


def _solve_fn(
    cm: Any, obs: Observations, events: Any, inputs0: np.ndarray, rtol: float, atol: float
):
    """The pure solve function over the observation times, the output slot of each
    observation and the index of its variable among the selected outputs."""
    from hemolab.events import Schedule, build_schedule, read_events
    from hemolab.events._schedule import DoseProperties
    from hemolab.solve import ActionTable, make_solve_fn

    mdl = cm.model
    variables = list(mdl.state_names + mdl.observable_names)
    bad = sorted({o for o in obs.observable if o not in variables})
    if bad:
        raise CalibrationError(f"model {mdl.name!r} has no variable {', '.join(bad)}")
    if not (len(obs.time) == len(obs.value) == len(obs.observable) > 0):
        raise CalibrationError("observations need equal numbers of times, values and names (> 0)")
    times = np.unique(obs.time)
    if events is None:
        sched = Schedule.from_grid(mdl, times, n_subjects=1)
        t0 = float(min(sched.start_time[0], 0.0))
    else:
        dataset = read_events(events, model=mdl)
        if dataset.n_subjects != 1:
            raise CalibrationError(
                f"the dosing history holds {dataset.n_subjects} subjects; fit_map fits one"
            )
        props = cm.host_dose_props(inputs0[None, :])
        sched = build_schedule(dataset, mdl, grid=times, dose_props=DoseProperties(**props))
        first = dataset.subjects[0].records[0].time
        t0 = float(min(sched.start_time[0], first))
    table = ActionTable(time=sched.time, op=sched.op, target=sched.target, value=sched.value,
                        n_outputs=int(sched.out_time.shape[1]))  # fmt: skip
    out_time = np.asarray(sched.out_time[0])
    slots = np.array([int(np.flatnonzero(np.isclose(out_time, t, rtol=0, atol=1e-9))[0])
                      for t in obs.time])  # fmt: skip
    chosen = sorted(set(obs.observable), key=variables.index)
    out_vars = tuple(variables.index(v) for v in chosen)
    var_of_obs = np.array([chosen.index(o) for o in obs.observable])
    solve = make_solve_fn(cm, table, t0=t0, rtol=rtol, atol=atol, out_vars=out_vars)
    return solve, slots, var_of_obs
