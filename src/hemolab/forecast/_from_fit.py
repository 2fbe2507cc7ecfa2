"""A stored fit's forecast: trajectories past the last observation and the time to a threshold.

The fit's parameter draws (NUTS posterior, Laplace draws, or the MAP alone) are simulated in
one batch from the patient's time origin under the past dosing plus any planned regimen, on a
fine grid to ``t_last + horizon``; the first crossing after the last observation is summarised
by :func:`time_to_threshold` (times on the patient's clock, the model's time unit).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hemolab._errors import HemolabError
from hemolab.forecast._forecast import RESEARCH_USE, Forecast, simulate_draws
from hemolab.forecast._threshold import Threshold, TimeToThreshold, time_to_threshold

__all__ = ["ThresholdForecast", "plot_fan", "threshold_forecast"]

GRID_POINTS = 2001


@dataclass(frozen=True)
class ThresholdForecast:
    forecast: Forecast
    time_to: TimeToThreshold
    t_last: float
    time_unit: str
    label: str = RESEARCH_USE


def threshold_forecast(
    fit: Any,
    model: Any,
    threshold: Threshold | str,
    *,
    horizon: float,
    regimen: Any = None,
    n_draws: int = 1000,
    seed: int = 0,
    level: float = 0.9,
) -> ThresholdForecast:
    """Forecast ``fit`` (a :class:`~hemolab.calibrate.FitRecord`) ``horizon`` past its last
    observation; ``regimen``: planned doses (an event frame, times on the patient's clock)."""
    import pandas as pd

    from hemolab.events import read_events

    th = Threshold.parse(threshold) if isinstance(threshold, str) else threshold
    variables = model.state_names + model.observable_names
    if th.observable not in variables:
        raise HemolabError(f"threshold on {th.observable!r}: {model.name} has "
                           f"{', '.join(variables)}")  # fmt: skip
    if not horizon > 0:
        raise HemolabError(f"the horizon must be > 0, got {horizon}")
    if not 0 < level < 1:
        raise HemolabError(f"the interval level must be in (0, 1), got {level}")
    if n_draws < 1:
        raise HemolabError(f"the number of draws must be >= 1, got {n_draws}")
    parts = [] if fit.events is None else [pd.DataFrame(fit.events)]
    if regimen is not None:
        future = pd.DataFrame(regimen).copy()
        future["ID"] = 1
        parts.append(future)
    events = pd.concat(parts, ignore_index=True) if parts else None
    if events is not None:
        read_events(events, model=model)  # a clear error before any solve
    t_last = fit.t_last_observation
    params = fit.parameter_draws(n_draws, seed)
    grid = np.union1d(np.linspace(0.0, t_last + horizon, GRID_POINTS), [t_last])
    time, values = simulate_draws(model, events, params, th.observable, grid=grid)
    tt = time_to_threshold(time, values, th, start=t_last, horizon=horizon, level=level)
    return ThresholdForecast(Forecast(th.observable, time, values, params), tt, t_last,
                             model.time_unit)  # fmt: skip


def plot_fan(tf: ThresholdForecast, observations: Any, path: Any, *, title: str = "") -> Any:
    """A fan chart: 50 % and 90 % bands and the median of the forecast, the observations,
    the threshold, and the crossing time's median and interval. Returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fc, tt = tf.forecast, tf.time_to
    q = fc.quantiles((0.05, 0.25, 0.5, 0.75, 0.95))
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    ax.fill_between(fc.time, q[0], q[4], color="tab:red", alpha=0.15, label="90 % band")
    ax.fill_between(fc.time, q[1], q[3], color="tab:red", alpha=0.3, label="50 % band")
    ax.plot(fc.time, q[2], color="tab:red", lw=1.5, label="median")
    sel = np.array([o == fc.observable for o in observations.observable])
    ax.plot(observations.time[sel], observations.value[sel], "ko", ms=4, label="observed")
    th = tt.threshold
    ax.axhline(th.value, color="k", ls="--", lw=1, label=f"{th.observable} {th.op} {th.value:g}")
    ax.axvline(tf.t_last, color="grey", lw=0.8)
    if tt.median is not None:
        lo = tt.lower if tt.lower is not None else tf.t_last
        hi = tt.upper if tt.upper is not None else fc.time[-1]
        ax.axvspan(lo, hi, color="tab:blue", alpha=0.12, label="crossing, 90 % interval")
        ax.axvline(tt.median, color="tab:blue", lw=1.2, label="crossing, median")
    ax.set_xlabel(f"time ({tf.time_unit}, patient's clock)")
    ax.set_ylabel(fc.observable)
    ax.set_title(title or f"{fc.observable} forecast", fontsize=10)
    ax.legend(fontsize=7, loc="best")
    fig.text(0.01, 0.01, tf.label, fontsize=7, color="grey")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
