"""Protocol search by gradient: dose amounts differentiated through the solver.

For a template whose variables only change dose amounts (continuous variables; the times,
phases and limits stay put), the action values of the schedule are an affine function of the
point, ``v(x) = v0 + J·(x − x0)``, and the solver is a JAX function of them
(``make_solve_fn(...)(inputs, act_value)``). Each limit's probability over the population is
replaced by a smooth version (BENCHMARKS.md P4: "a gradient-based search uses a smoothed
(sigmoid) version of the count and reports the exact one"):

- per patient, the time the condition holds on the monitoring grid, each grid point counted
  by ``sigmoid((c − X)/ε)`` (``X < c``; ``ε`` = 2 % of ``|c|``), times the grid step;
- broken when that time exceeds ``longer_than`` (or 0): ``sigmoid((time − L)/τ)``, ``τ`` one
  grid step;
- the smoothed probability is the mean over the population.

The total time in the condition is at least the longest episode, so the smoothed count leans
to the safe side. SLSQP (SciPy) maximises the objective (``dose_intensity``, exact and affine
in the doses) under ``smoothed P ≤ max_probability`` with forward-mode derivatives
(``jax.jacfwd``, one tangent per variable). The point found is then run exactly
(:func:`~hemolab.protocols.run_protocol`: limits at exact crossings) and both values are
reported. Design note 027.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hemolab._errors import HemolabError

__all__ = ["GradientSearchResult", "gradient_protocol_search"]


@dataclass(frozen=True)
class GradientSearchResult:
    """The point found, its exact run, and the path that led there."""

    point: dict[str, float]
    objective: float  # the objective's metric at ``point`` (exact)
    smoothed: dict[str, float]  # each limit's smoothed probability at ``point``
    exact: Any  # ProtocolResult at ``point``
    feasible: bool  # every limit held exactly
    history: list[dict[str, Any]] = field(default_factory=list)
    n_solves: int = 0
    message: str = ""

    def summary(self) -> dict[str, Any]:
        return {
            "point": self.point,
            "objective": self.objective,
            "smoothed_probability": self.smoothed,
            "exact_probability": {o.limit.name: o.probability for o in self.exact.limits},
            "feasible": self.feasible,
            "iterations": len(self.history),
            "n_solves": self.n_solves,
            "message": self.message,
        }


def _structure(proto: Any, model: Any, grid: np.ndarray) -> Any:
    from hemolab.events import build_schedule, read_events

    baseline = {n: model.parameter(n).value for p in proto.phases for n in p.parameters}
    events = proto.to_dataset(baseline)
    return build_schedule(read_events(events, model=model), model, grid=grid)


@dataclass(frozen=True)
class _Problem:
    """The smoothed limits as a JAX function of the point, and what the optimiser needs."""

    names: tuple[str, ...]
    lows: np.ndarray
    highs: np.ndarray
    limits: list[Any]
    smoothed: Callable[[Any], Any]  # x (k,) -> smoothed probability per limit
    protocol_at: Callable[[np.ndarray], Any]


def _problem(search: Any, model: Any, population: Any, *, rtol: float, atol: float) -> _Problem:
    """Check that the search suits a gradient and build its smoothed limits (module doc)."""
    import jax
    import jax.numpy as jnp

    from hemolab._simulate import get_compiled
    from hemolab.protocols import read_protocol
    from hemolab.search._space import Continuous
    from hemolab.solve import make_solve_fn
    from hemolab.solve._engine import ActionTable

    space = search.space
    bad = [v.name for v in space.variables if not isinstance(v, Continuous)]
    if bad:
        raise HemolabError(
            f"gradient search needs continuous variables; {bad[0]!r} is not (use cma-es)"
        )
    if search.objective.kind != "dose_intensity":
        raise HemolabError(
            f"gradient search maximises dose_intensity(CMT); {search.objective.text} is not "
            "differentiable here (use cma-es)"
        )
    if space.constraints:
        raise HemolabError("gradient search takes no [[constraints]] between variables yet")
    names = space.names
    lows = np.array([v.low for v in space.variables], dtype=np.float64)
    highs = np.array([v.high for v in space.variables], dtype=np.float64)

    def protocol_at(x: np.ndarray) -> Any:
        point = {n: float(v) for n, v in zip(names, x, strict=True)}
        return read_protocol(search.protocol, time_unit=model.time_unit, values=point).protocol

    x0 = 0.5 * (lows + highs)
    proto0 = protocol_at(x0)
    grid = proto0.grid()
    step = float(np.min(np.diff(grid))) if len(grid) > 1 else 1.0
    monitored = list(proto0.monitoring.observables)
    if proto0.rules:
        raise HemolabError(
            f"rule {proto0.rules[0].name!r}: gradient search differentiates a fixed schedule; "
            "dosing rules (hold, reduce, stop, move on) act at crossings it does not follow "
            "(use method = 'cma-es')"
        )
    if any(tr.group is not None for ph in proto0.phases for tr in ph.transfusions):
        raise HemolabError(
            "gradient search: a transfusion names its product's group, so the risk of "
            "rejection is a count over blood groups with no gradient (use method = 'cma-es')"
        )
    limits = []
    for lim in proto0.limits:
        lhs, op, rhs = lim.relation()
        try:
            c = float(rhs)
        except ValueError:
            c = math.nan
        if lhs not in monitored or op not in ("<", "<=", ">", ">=") or not math.isfinite(c):
            raise HemolabError(
                f"limit {lim.name!r}: gradient search needs 'OBS < c' or 'OBS > c' on a "
                f"monitored observable ({', '.join(monitored)})"
            )
        sign = 1.0 if op.startswith("<") else -1.0
        limits.append((lim, monitored.index(lhs), sign, c, lim.longer_than or 0.0))

    sched0 = _structure(proto0, model, grid)
    v0 = np.asarray(sched0.value[0], dtype=np.float64)
    jac = np.zeros((len(v0), len(names)))
    for k in range(len(names)):
        for frac in (0.25, 0.75):
            x = x0.copy()
            x[k] = lows[k] + frac * (highs[k] - lows[k])
            s = _structure(protocol_at(x), model, grid)
            same = (
                s.time.shape == sched0.time.shape
                and np.array_equal(s.time, sched0.time)
                and np.array_equal(s.op, sched0.op)
                and np.array_equal(s.target, sched0.target)
            )
            if not same:
                raise HemolabError(
                    f"variable {names[k]!r} changes the protocol's times or structure, not "
                    "only dose amounts: gradient search cannot follow it (use cma-es)"
                )
            slope = (np.asarray(s.value[0]) - v0) / (x[k] - x0[k])
            if frac == 0.25:
                jac[:, k] = slope
            elif not np.allclose(slope, jac[:, k], rtol=1e-9, atol=1e-12):
                raise HemolabError(
                    f"the dose amounts are not affine in {names[k]!r}: gradient search "
                    "needs amounts like '{dose}' or '{2 * dose}'"
                )

    cm = get_compiled(model)
    obs_idx = tuple(len(model.state_names) + model.observable_names.index(o) for o in monitored)
    table = ActionTable(
        time=sched0.time[:1],
        op=sched0.op[:1],
        target=sched0.target[:1],
        value=sched0.value[:1],
        n_outputs=int(sched0.out_time.shape[1]),
    )
    solve = make_solve_fn(cm, table, rtol=rtol, atol=atol, out_vars=obs_idx)
    inputs = jnp.asarray(cm.inputs_from(population.parameters(), n=population.n))
    out_times = np.asarray(sched0.out_time[0], dtype=np.float64)
    weights = jnp.asarray(np.gradient(out_times) if len(out_times) > 1 else np.ones(1))

    def smoothed(x: jax.Array) -> jax.Array:
        values = jnp.asarray(v0) + jnp.asarray(jac) @ (x - jnp.asarray(x0))
        y, _ = solve(inputs, values)
        probs = []
        for _lim, j, sign, c, longer in limits:
            eps = 0.02 * max(abs(c), 1e-12)
            inside = jax.nn.sigmoid(sign * (c - y[:, :, j]) / eps)
            time_in = inside @ weights
            probs.append(jnp.mean(jax.nn.sigmoid((time_in - longer - 0.5 * step) / step)))
        return jnp.stack(probs)

    return _Problem(tuple(names), lows, highs, [lim for lim, *_ in limits], smoothed,
                    protocol_at)  # fmt: skip


def gradient_protocol_search(
    search: Any,
    model: Any,
    population: Any,
    *,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    max_iter: int = 30,
    progress: Callable[[int, float], None] | None = None,
) -> GradientSearchResult:
    """Maximise (or minimise) ``search``'s ``dose_intensity`` objective under its template's
    limits, by gradient over ``population`` (a :class:`~hemolab.Population`).

    Raises
    ------
    HemolabError
        A variable that is not continuous, an objective other than ``dose_intensity``, a
        limit that is not ``OBS < c`` / ``OBS > c`` on a monitored observable, or a variable
        that changes more than dose amounts (times, counts, phases).
    """
    import jax
    import jax.numpy as jnp
    from scipy.optimize import minimize

    from hemolab.protocols import run_protocol

    prob = _problem(search, model, population, rtol=rtol, atol=atol)
    names, lows, highs = prob.names, prob.lows, prob.highs
    smoothed, protocol_at = prob.smoothed, prob.protocol_at
    limits = prob.limits
    value_and_jac = jax.jit(lambda x: (smoothed(x), jax.jacfwd(smoothed)(x)))
    cache: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}
    n_solves = 0

    def at(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        nonlocal n_solves
        key = np.asarray(u, dtype=np.float64).tobytes()
        if key not in cache:
            x = lows + np.clip(u, 0.0, 1.0) * (highs - lows)
            p, dp = value_and_jac(jnp.asarray(x))
            n_solves += 1
            cache[key] = (np.asarray(p), np.asarray(dp) * (highs - lows))
        return cache[key]

    week = 7.0 * _days(model.time_unit)
    cmt = search.objective.arg

    def intensity(x: np.ndarray) -> float:
        proto = protocol_at(x)
        return proto.total_amount(cmt) / proto.end * week

    d_lo = intensity(lows)
    d_grad = np.array(
        [intensity(lows + np.eye(len(names))[k] * (highs - lows)) - d_lo for k in range(len(names))]
    )  # affine in the doses: exact slopes per unit of u
    sense = 1.0 if search.objective.sense == "maximise" else -1.0
    scale = max(float(np.abs(d_grad).sum()), 1e-12)
    pmax = np.array([lim.max_probability for lim in limits])
    history: list[dict[str, Any]] = []

    def record(u: np.ndarray) -> None:
        x = lows + np.clip(u, 0.0, 1.0) * (highs - lows)
        p, _ = at(u)
        value = float(d_lo + d_grad @ np.clip(u, 0.0, 1.0))
        history.append({"point": dict(zip(names, x.tolist(), strict=True)), "objective": value,
                        "smoothed": p.tolist()})  # fmt: skip
        if progress is not None:
            progress(len(history), value)

    res = minimize(
        lambda u: -sense * float(d_lo + d_grad @ u) / scale,
        x0=np.full(len(names), 0.5),
        jac=lambda u: -sense * d_grad / scale,
        bounds=[(0.0, 1.0)] * len(names),
        constraints=[
            {"type": "ineq", "fun": lambda u: pmax - at(u)[0], "jac": lambda u: -at(u)[1]}
        ],
        method="SLSQP",
        callback=record,
        options={"maxiter": max_iter, "ftol": 1e-6},
    )
    u = np.clip(res.x, 0.0, 1.0)
    x = lows + u * (highs - lows)
    exact = run_protocol(protocol_at(x), model, population=population, rtol=rtol, atol=atol)
    p, _ = at(u)
    return GradientSearchResult(
        point=dict(zip(names, x.tolist(), strict=True)),
        objective=float(search.objective.value(exact)),
        smoothed={lim.name: float(pi) for lim, pi in zip(limits, p, strict=True)},
        exact=exact,
        feasible=all(o.met for o in exact.limits),
        history=history,
        n_solves=n_solves,
        message=str(res.message),
    )


def _days(time_unit: str) -> float:
    from hemolab.model._units import time_factor

    return time_factor("d", time_unit)
