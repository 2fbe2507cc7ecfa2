"""Searching a space: grid and Latin hypercube sweeps, and CMA-ES (the ``cma`` package).

The objective takes a batch of points (``name -> array``) and returns the values to minimise,
one per point (NaN where a point could not be evaluated), or ``(values, violations)`` where a
violation >= 0 measures how far a point is from meeting the objective's own constraints
(a chance constraint, a safety limit; 0 where they hold). Points that break the space's
declared constraints are never evaluated. Every evaluated point is kept, in order, so that a
search is reproducible from its seed and can be inspected afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from hemolab.search._space import SearchSpace, SearchSpaceError

__all__ = ["SearchResult", "cma_es", "grid_search", "latin_hypercube"]

Objective = Callable[[dict[str, np.ndarray]], Any]
Progress = Callable[[int, int, float], None]  # (evaluated, budget, best feasible value so far)


@dataclass(frozen=True)
class SearchResult:
    """Every point a search proposed, in order, with its value and constraint violation."""

    method: str
    space: SearchSpace
    points: dict[str, np.ndarray]
    values: np.ndarray  # NaN: not evaluated (infeasible in the space) or failed
    violation: np.ndarray  # 0: feasible (space and objective constraints)
    seed: int | None

    @property
    def n_evaluated(self) -> int:
        return int(np.sum(~np.isnan(self.values)))

    @property
    def best_index(self) -> int | None:
        """The feasible point with the lowest value (the first of equals), or None."""
        ok = (self.violation <= 0) & np.isfinite(self.values)
        if not ok.any():
            return None
        return int(np.flatnonzero(ok)[np.argmin(self.values[ok])])

    @property
    def best(self) -> dict[str, Any] | None:
        i = self.best_index
        return None if i is None else {k: _scalar(v[i]) for k, v in self.points.items()}

    @property
    def best_value(self) -> float | None:
        i = self.best_index
        return None if i is None else float(self.values[i])

    def to_pandas(self) -> Any:
        import pandas as pd

        frame = pd.DataFrame({k: list(v) for k, v in self.points.items()})
        frame["value"] = self.values
        frame["violation"] = self.violation
        frame["feasible"] = self.violation <= 0
        return frame


def _scalar(x: Any) -> Any:
    return x.item() if isinstance(x, np.generic) else x


def _evaluate(
    space: SearchSpace, objective: Objective, points: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Values and violations of ``points``; the space's infeasible points are not evaluated."""
    n = len(next(iter(points.values())))
    values = np.full(n, np.nan)
    violation = space.violation(points)
    ok = np.flatnonzero(violation <= 0)
    if ok.size:
        sub = {k: v[ok] for k, v in points.items()}
        out = objective(sub)
        extra = np.zeros(ok.size)
        if isinstance(out, tuple):
            out, extra = out
        out = np.asarray(out, dtype=np.float64).reshape(-1)
        extra = np.asarray(extra, dtype=np.float64).reshape(-1)
        if out.shape != (ok.size,) or extra.shape != (ok.size,):
            raise SearchSpaceError(
                f"the objective returned {out.shape[0]} values (and {extra.shape[0]} "
                f"violations) for {ok.size} points"
            )
        if np.any(extra < 0) or np.any(np.isnan(extra)):
            raise SearchSpaceError("the objective's violations must be >= 0 (0 where it holds)")
        values[ok] = out
        violation[ok] += extra
    return values, violation


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _sweep(
    method: str,
    space: SearchSpace,
    objective: Objective,
    points: dict[str, np.ndarray],
    batch_size: int | None,
    progress: Progress | None,
    seed: int | None,
) -> SearchResult:
    n = len(next(iter(points.values())))
    size = batch_size or n
    values, violation = np.full(n, np.nan), np.zeros(n)
    best = np.inf
    for start in range(0, n, size):
        sl = slice(start, min(start + size, n))
        values[sl], violation[sl] = _evaluate(
            space, objective, {k: v[sl] for k, v in points.items()}
        )
        ok = (violation[sl] <= 0) & np.isfinite(values[sl])
        if ok.any():
            best = min(best, float(np.min(values[sl][ok])))
        if progress is not None:
            progress(sl.stop, n, best)
    return SearchResult(method, space, points, values, violation, seed)


def grid_search(
    space: SearchSpace,
    objective: Objective,
    per_axis: int | Mapping[str, int],
    *,
    batch_size: int | None = None,
    progress: Progress | None = None,
) -> SearchResult:
    """Every combination of ``per_axis`` values per variable, in batches of ``batch_size``."""
    return _sweep("grid", space, objective, space.grid(per_axis), batch_size, progress, None)


def latin_hypercube(
    space: SearchSpace,
    objective: Objective,
    n: int,
    *,
    seed: int,
    batch_size: int | None = None,
    progress: Progress | None = None,
) -> SearchResult:
    """``n`` points of a Latin hypercube design (SciPy's, seeded) over the space."""
    from scipy.stats import qmc

    if n < 1:
        raise SearchSpaceError(f"a Latin hypercube needs n >= 1 points, got {n}")
    u = qmc.LatinHypercube(d=space.dim, rng=np.random.default_rng(seed)).random(n)
    return _sweep("latin_hypercube", space, objective, space.decode(u), batch_size, progress, seed)


def cma_es(
    space: SearchSpace,
    objective: Objective,
    *,
    budget: int,
    seed: int,
    start: Mapping[str, Any] | None = None,
    sigma0: float = 0.25,
    popsize: int | None = None,
    progress: Progress | None = None,
) -> SearchResult:
    """CMA-ES (Hansen's ``cma`` package) in the unit cube of the space, one generation per
    objective call, until ``budget`` points have been proposed.

    Points that break a constraint (the space's, unevaluated; or the objective's) rank behind
    every feasible one, ordered by their violation, so that the search is pulled back into
    the feasible region; failed evaluations (NaN) rank last.
    """
    import cma

    if budget < 1:
        raise SearchSpaceError(f"CMA-ES needs a budget >= 1, got {budget}")
    x0 = np.full(space.dim, 0.5) if start is None else space.encode(start)[0]
    opts: dict[str, Any] = {
        "bounds": [0.0, 1.0],
        "seed": int(seed) + 1,
        "verbose": -9,
        "verb_log": 0,
        "verb_disp": 0,
        "tolx": 1e-6,
        "tolfun": 0.0,
    }
    if popsize:
        opts["popsize"] = int(popsize)
    if space.dim == 1:  # cma needs two dimensions: a dummy one, ignored
        x0 = np.append(x0, 0.5)
    es = cma.CMAEvolutionStrategy(x0, sigma0, opts)
    parts: list[dict[str, np.ndarray]] = []
    vals: list[np.ndarray] = []
    viols: list[np.ndarray] = []
    done, best = 0, np.inf
    while done < budget and not es.stop():
        u = np.asarray(es.ask(), dtype=np.float64)
        u = u[: budget - done]
        pts = space.decode(u[:, : space.dim])
        values, violation = _evaluate(space, objective, pts)
        parts.append(pts)
        vals.append(values)
        viols.append(violation)
        done += len(u)
        ok = (violation <= 0) & np.isfinite(values)
        if ok.any():
            best = min(best, float(np.min(values[ok])))
        if progress is not None:
            progress(done, budget, best)
        if len(u) < es.popsize:
            break
        es.tell(list(u), list(_ranked(values, violation)))
    return SearchResult(
        "cma_es", space, _concat(parts), np.concatenate(vals), np.concatenate(viols), seed
    )


def _ranked(values: np.ndarray, violation: np.ndarray) -> np.ndarray:
    """Fitness for CMA-ES: feasible values as they are; infeasible ones after the worst
    feasible value by their violation; failures last."""
    ok = (violation <= 0) & np.isfinite(values)
    worst = float(np.max(values[ok])) if ok.any() else 0.0
    scale = 1.0 + abs(worst)
    out = np.where(ok, values, worst + scale * (1.0 + violation))
    failed = ~np.isfinite(values) & (violation <= 0)
    return np.where(failed, worst + scale * (2.0 + np.max(violation, initial=0.0)) * 10, out)
