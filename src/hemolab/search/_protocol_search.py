"""Searching a protocol template over a virtual population: each point of the space fills the
template's ``{name}`` placeholders, the protocol runs over the same patients (common random
numbers: one seeded population for every point), the objective is a population metric and
the protocol's safety limits are the chance constraints::

    [search]
    name = "docetaxel dose and interval"
    protocol = "docetaxel-template.toml"   # relative to this file
    method = "cma-es"                      # or "grid", "latin-hypercube"
    budget = 40                            # cma-es, latin-hypercube
    per_axis = 5                           # grid
    seed = 1

    [objective]
    maximise = "dose_intensity(A1)"        # or minimise = "probability(<limit name>)";
                                           # median_nadir(ANC), median_final(ANC)
    [variables.dose]
    type = "continuous"
    low = 60
    high = 200

A point's constraint violation is the sum over the protocol's limits of how far the share of
patients breaking it exceeds its ``max_probability`` (0 when every limit holds).
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hemolab._toml import TomlLines
from hemolab.search._optimise import SearchResult, cma_es, grid_search, latin_hypercube
from hemolab.search._space import SearchSpace, SearchSpaceError, read_search_space

__all__ = [
    "Objective",
    "ProtocolSearch",
    "ProtocolSearchResult",
    "read_protocol_search",
    "run_protocol_search",
]

METHODS = ("grid", "latin-hypercube", "cma-es", "gradient")
_FIELDS = frozenset({"protocol", "method", "budget", "per_axis", "seed"})
_METRIC = re.compile(r"^\s*(?P<kind>[a-z_]+)\s*(\(\s*(?P<arg>[^()]*?)\s*\))?\s*$")
_KINDS = {
    "dose_intensity": "amount per week into a state (every dosed state without an argument)",
    "probability": "share of the patients breaking a limit (its name)",
    "median_nadir": "median over the patients of an observable's lowest monitored value",
    "median_final": "median over the patients of an observable's value at the end",
}


@dataclass(frozen=True)
class Objective:
    """``sense`` (``maximise``/``minimise``) of ``kind(arg)``, a population metric."""

    sense: str
    kind: str
    arg: str | None

    @property
    def text(self) -> str:
        return f"{self.kind}({self.arg})" if self.arg else self.kind

    def value(self, result: Any) -> float:
        """The metric of a :class:`~hemolab.protocols.ProtocolResult` (NaN if undefined)."""
        from hemolab.model._units import time_factor

        if self.kind == "dose_intensity":
            per = result.dose_intensity(7.0 * time_factor("d", result.time_unit))
            return float(per.get(self.arg, 0.0) if self.arg else sum(per.values()))
        if self.kind == "probability":
            outcome = next(o for o in result.limits if o.limit.name == self.arg)
            return float(outcome.probability)
        ok = result.patients["status"] == "ok"
        col = "nadir" if self.kind == "median_nadir" else "final"
        x = np.asarray(result.patients.loc[ok, f"{self.arg}_{col}"], dtype=np.float64)
        return float(np.median(x)) if x.size else math.nan

    def to_minimise(self, value: float) -> float:
        return -value if self.sense == "maximise" else value


@dataclass(frozen=True)
class ProtocolSearch:
    """A search read from a file: its space, protocol template, objective and settings."""

    space: SearchSpace
    protocol: Path
    objective: Objective
    method: str
    budget: int | None
    per_axis: int | None
    seed: int
    path: Path


def read_protocol_search(
    path: str | os.PathLike[str], *, protocol: str | os.PathLike[str] | None = None
) -> ProtocolSearch:
    """Read a protocol search (format in this module's docstring) and check it against its
    template before anything runs: every placeholder is a variable and every variable is
    used, the objective names a limit, state or observable that exists. ``protocol``: use
    this template instead of the one the file names."""
    from hemolab.protocols._read import placeholders, read_protocol

    p = Path(path)
    space = read_search_space(p, search_fields=_FIELDS, tables=frozenset({"objective"}))
    text = p.read_text(encoding="utf-8", errors="replace")
    lines = TomlLines(text, str(p))
    doc = tomllib.loads(text)
    head = doc.get("search", {})

    def fail(key: str | None, message: str, table: str = "search") -> SearchSpaceError:
        return SearchSpaceError(f"{lines.of(table, key)}: {message}")

    if protocol is None:
        if not isinstance(head.get("protocol"), str):
            raise fail(None, '[search] needs protocol = "FILE.toml" (the protocol template)')
        template = (p.parent / head["protocol"]).resolve()
    else:
        template = Path(protocol).resolve()
    if not template.is_file():
        raise fail("protocol", f"protocol template {str(template)!r} does not exist")
    method = head.get("method", "cma-es")
    if method not in METHODS:
        raise fail("method", f"method {method!r} is not one of {', '.join(METHODS)}")
    ints: dict[str, int | None] = {}
    for key, minimum in (("budget", 1), ("per_axis", 2), ("seed", 0)):
        v = head.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < minimum):
            raise fail(key, f"{key} must be an integer >= {minimum}, got {v!r}")
        ints[key] = v
    if method == "grid" and ints["per_axis"] is None:
        raise fail(None, "a grid search needs per_axis = N (values per variable)")
    if method != "grid" and ints["budget"] is None:
        raise fail(None, f"a {method} search needs budget = N (points to evaluate)")
    if method not in ("grid", "gradient") and ints["seed"] is None:
        raise fail(None, f"a {method} search needs seed = S (to be reproducible)")

    obj = doc.get("objective")
    if (
        not isinstance(obj, dict)
        or len(obj) != 1
        or next(iter(obj)) not in ("maximise", "minimise")
    ):
        raise SearchSpaceError(
            f'{lines.of("objective")}: [objective] needs one of maximise = "..." or '
            f'minimise = "..." (metrics: {", ".join(_KINDS)})'
        )
    sense, metric = next(iter(obj.items()))
    m = _METRIC.match(str(metric))
    if m is None or m.group("kind") not in _KINDS:
        raise fail(
            sense,
            f"objective {metric!r} is not a metric; expected one of "
            + "; ".join(f"{k}: {v}" for k, v in _KINDS.items()),
            table="objective",
        )
    objective = Objective(sense, m.group("kind"), m.group("arg") or None)

    used = placeholders(template)
    unused = sorted(set(space.names) - used)
    unknown = sorted(used - set(space.names))
    if unknown:
        raise SearchSpaceError(
            f"{template}: placeholder {{{unknown[0]}}} is not a variable of the search "
            f"space {p} (variables: {', '.join(space.names)})"
        )
    if unused:
        raise SearchSpaceError(
            f"{lines.of('variables.' + unused[0])}: variable {unused[0]!r} is not used by the "
            f"protocol template {template.name} (write {{{unused[0]}}} where it goes)"
        )
    # the template read with a mid point: its structure, limits and names
    mid = {k: v[0] for k, v in space.decode(np.full((1, space.dim), 0.5)).items()}
    proto = read_protocol(template, values=mid).protocol
    names = {lim.name for lim in proto.limits}
    if objective.kind == "probability" and objective.arg not in names:
        raise fail(
            sense,
            f"objective names limit {objective.arg!r}; the protocol's limits: "
            f"{', '.join(sorted(names)) or 'none'}",
            table="objective",
        )
    if objective.kind.startswith("median_") and objective.arg not in proto.monitoring.observables:
        raise fail(
            sense,
            f"objective {objective.text!r}: {objective.arg!r} is not monitored by the protocol "
            f"(monitoring: {', '.join(proto.monitoring.observables)})",
            table="objective",
        )
    return ProtocolSearch(
        space=space,
        protocol=template,
        objective=objective,
        method=method,
        budget=ints["budget"],
        per_axis=ints["per_axis"],
        seed=ints["seed"] or 0,
        path=p,
    )


@dataclass(frozen=True)
class ProtocolSearchResult:
    """The search's points and the protocol run summary of each evaluated point."""

    search: ProtocolSearch
    result: SearchResult
    summaries: list[dict[str, Any] | None]  # per proposed point, None where not evaluated
    metric: np.ndarray  # the objective's metric (not negated), NaN where not evaluated
    gradient: dict[str, Any] | None = None  # method "gradient": smoothed and exact values

    @property
    def best_summary(self) -> dict[str, Any] | None:
        i = self.result.best_index
        return None if i is None else self.summaries[i]

    def to_pandas(self) -> Any:
        frame = self.result.to_pandas()
        frame.insert(len(self.search.space.names), self.search.objective.text, self.metric)
        return frame


def run_protocol_search(
    search: ProtocolSearch,
    model: Any,
    population: Any,
    *,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    progress: Callable[[int, int, float], None] | None = None,
    draws: Any = None,
) -> ProtocolSearchResult:
    """Evaluate the search: each point's protocol over ``population`` (or the typical patient
    when None), minimising the objective (negated when maximised) under the limits.

    ``draws``: a calibrated patient (:func:`~hemolab.protocols.patient_now`) whose posterior
    draws, each from its state at the last observation, replace the population.
    """
    from hemolab.protocols import ProtocolError, read_protocol, run_protocol

    names = search.space.names
    evaluated: dict[tuple[Any, ...], tuple[dict[str, Any] | None, float]] = {}

    def evaluate(points: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        n = len(next(iter(points.values())))
        values, violation = np.empty(n), np.zeros(n)
        for i in range(n):
            point = {k: _plain(points[k][i]) for k in names}
            try:
                proto = read_protocol(search.protocol, time_unit=model.time_unit, values=point)
            except ProtocolError as exc:  # e.g. a dose that falls outside its phase
                values[i], violation[i] = math.nan, 1.0
                evaluated[tuple(point.values())] = ({"point": point, "error": str(exc)}, math.nan)
                continue
            res = run_protocol(
                proto.protocol,
                model,
                population=population,
                rtol=rtol,
                atol=atol,
                draws=None if draws is None else draws.draws,
                initial_states=None if draws is None else draws.states,
                blood_groups=proto.blood_groups if population is not None else None,
            )
            metric = search.objective.value(res)
            values[i] = search.objective.to_minimise(metric)
            violation[i] = sum(
                max(0.0, o.probability - o.limit.max_probability) if o.n else 1.0
                for o in res.limits
            )
            evaluated[tuple(point.values())] = (res.summary() | {"point": point}, metric)
        return values, violation

    if search.method == "gradient":
        if draws is not None:
            from hemolab._errors import HemolabError

            raise HemolabError("a gradient search runs over a population, not posterior draws")
        return _gradient(search, model, population, rtol=rtol, atol=atol, progress=progress)
    if search.method == "grid":
        assert search.per_axis is not None
        result = grid_search(search.space, evaluate, search.per_axis, progress=progress)
    elif search.method == "latin-hypercube":
        assert search.budget is not None
        result = latin_hypercube(
            search.space, evaluate, search.budget, seed=search.seed, progress=progress
        )
    else:
        assert search.budget is not None
        result = cma_es(
            search.space, evaluate, budget=search.budget, seed=search.seed, progress=progress
        )
    summaries: list[dict[str, Any] | None] = []
    metrics: list[float] = []
    for i in range(len(result.values)):
        key = tuple(_plain(result.points[k][i]) for k in names)
        summary, metric = evaluated.get(key, (None, math.nan))
        summaries.append(summary)
        metrics.append(metric)
    return ProtocolSearchResult(search, result, summaries, np.asarray(metrics))


def _gradient(
    search: ProtocolSearch,
    model: Any,
    population: Any,
    *,
    rtol: float,
    atol: float,
    progress: Callable[[int, int, float], None] | None,
) -> ProtocolSearchResult:
    """Method ``gradient``: the iterates (smoothed limits, not evaluated exactly) then the
    point found, run exactly (:mod:`hemolab.search._gradient`)."""
    from hemolab._errors import HemolabError
    from hemolab.search._gradient import gradient_protocol_search

    if population is None:
        raise HemolabError("a gradient search runs over a population: give [population] n, seed")
    assert search.budget is not None
    budget = search.budget

    def step(i: int, value: float) -> None:
        if progress is not None:
            progress(min(i, budget), budget, value)

    g = gradient_protocol_search(
        search, model, population, rtol=rtol, atol=atol, max_iter=budget, progress=step
    )
    names = search.space.names
    rows = [h["point"] for h in g.history] + [g.point]
    points = {k: np.array([r[k] for r in rows], dtype=np.float64) for k in names}
    pmax = np.array([o.limit.max_probability for o in g.exact.limits])
    smoothed_excess = [
        float(np.maximum(np.asarray(h["smoothed"]) - pmax, 0.0).sum()) for h in g.history
    ]
    exact_excess = sum(
        max(0.0, o.probability - o.limit.max_probability) if o.n else 1.0 for o in g.exact.limits
    )
    values = np.array([math.nan] * len(g.history) + [search.objective.to_minimise(g.objective)])
    violation = np.array([*smoothed_excess, exact_excess])
    result = SearchResult("gradient", search.space, points, values, violation, None)
    summaries: list[dict[str, Any] | None] = [None] * len(g.history)
    summaries.append(g.exact.summary() | {"point": g.point})
    metric = np.array([math.nan] * len(g.history) + [g.objective])
    return ProtocolSearchResult(search, result, summaries, metric, gradient=g.summary())


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v
