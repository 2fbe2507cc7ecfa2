"""Sequential forecasts: how the prognosis changes as labs accumulate.

At each cut time the patient is refitted on the observations up to it (the posterior given
all data so far is the prior times every likelihood term, so refitting is exact, and every
cut is one "patient" of the same batched fit: one MAP run, and one NUTS run if asked), and
the first crossing of the threshold after that cut's last observation is forecast. The
result is the history a team reads: "about three months" at month three becoming "about six
weeks, narrower" at month six.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hemolab._errors import HemolabError
from hemolab.forecast._forecast import RESEARCH_USE, laplace_draws, simulate_draws
from hemolab.forecast._threshold import Threshold, time_to_threshold

__all__ = ["ForecastEntry", "forecast_history"]


@dataclass(frozen=True)
class ForecastEntry:
    """The forecast made with the data up to ``t_data`` (times on the patient's clock)."""

    t_data: float  # the last observation used
    n_observations: int
    median: float | None
    lower: float | None
    upper: float | None
    p_within_horizon: float
    method: str
    label: str = RESEARCH_USE

    @property
    def width(self) -> float | None:
        return None if self.lower is None or self.upper is None else self.upper - self.lower


def forecast_history(
    model: Any,
    observations: Any,
    *,
    cuts: Sequence[float],
    threshold: Threshold | str,
    horizon: float,
    events: Any = None,
    method: str = "laplace",
    n_draws: int = 500,
    seed: int = 0,
    level: float = 0.9,
    chains: int = 2,
    warmup: int = 500,
    draws: int = 500,
) -> list[ForecastEntry]:
    """One forecast per cut (see the module docstring); ``method`` ``laplace`` or ``nuts``."""
    from hemolab.calibrate import Patient, fit_map_batch, sample_nuts

    th = Threshold.parse(threshold) if isinstance(threshold, str) else threshold
    if method not in ("laplace", "nuts"):
        raise HemolabError(f"method must be laplace or nuts, got {method!r}")
    if not cuts:
        raise HemolabError("give at least one cut time")
    parts = [observations.until(c) for c in cuts]
    empty = [c for c, p in zip(cuts, parts, strict=True) if len(p.time) == 0]
    if empty:
        raise HemolabError(f"no observation at or before cut(s) {empty}")
    patients = [Patient(p, events) for p in parts]
    fits = fit_map_batch(model, patients)
    if method == "nuts":
        posts = sample_nuts(model, patients, chains=chains, warmup=warmup, draws=draws,
                            seed=seed, start=fits)  # fmt: skip
        sets = []
        for k, post in enumerate(posts):
            flat = post.draws.reshape(-1, len(post.names))
            pick = np.random.default_rng(seed + k).choice(len(flat), min(n_draws, len(flat)),
                                                          replace=False)  # fmt: skip
            sets.append({n: flat[pick, j] for j, n in enumerate(post.names)})
    else:
        sets = [laplace_draws(f, n_draws, seed + k) for k, f in enumerate(fits)]
    t_data = [float(p.time.max()) for p in parts]
    grid = np.union1d(np.linspace(0.0, max(t_data) + horizon, 2001), t_data)
    params = {n: np.concatenate([s[n] for s in sets]) for n in sets[0]}
    time, values = simulate_draws(model, events, params, th.observable, grid=grid)
    out, start = [], 0
    for k, s in enumerate(sets):
        m = len(next(iter(s.values())))
        tt = time_to_threshold(time, values[start:start + m], th, start=t_data[k],
                               horizon=horizon, level=level)  # fmt: skip
        start += m
        out.append(ForecastEntry(t_data[k], len(parts[k].time), tt.median, tt.lower, tt.upper,
                                 tt.p_within_horizon, method))  # fmt: skip
    return out
