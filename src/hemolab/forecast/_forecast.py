"""Forecasts from a calibration: trajectories of an observable over parameter draws.

Draws come from the fit's Laplace approximation (log-normal around the MAP, covariance of
``log θ``); each draw is simulated under the same dosing history (and any planned regimen
in it), all draws in one batched call. A forecast carries the research-use label: it is
not for clinical decisions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hemolab._errors import HemolabError
from hemolab.forecast._threshold import Threshold, TimeToThreshold, time_to_threshold

__all__ = ["RESEARCH_USE", "Forecast", "forecast_from_fit", "laplace_draws"]

RESEARCH_USE = "research use — not for clinical decisions"


@dataclass(frozen=True)
class Forecast:
    """Trajectories of ``observable`` (draws × times) on the patient's clock."""

    observable: str
    time: np.ndarray  # (T,)
    draws: np.ndarray  # (D, T); a failed draw is NaN
    parameters: dict[str, np.ndarray]  # the drawn values, (D,) each
    label: str = RESEARCH_USE

    def quantiles(self, levels: Sequence[float] = (0.05, 0.5, 0.95)) -> np.ndarray:
        """Pointwise quantiles over the draws, shape (len(levels), T)."""
        return np.nanquantile(self.draws, np.asarray(levels), axis=0)

    def time_to(
        self, threshold: Threshold | str, *, start: float, horizon: float, level: float = 0.9
    ) -> TimeToThreshold:
        """The first crossing of ``threshold`` after ``start`` (see :func:`time_to_threshold`)."""
        th = Threshold.parse(threshold) if isinstance(threshold, str) else threshold
        if th.observable != self.observable:
            raise HemolabError(
                f"the threshold is on {th.observable}, the forecast on {self.observable}"
            )
        return time_to_threshold(self.time, self.draws, th, start=start, horizon=horizon,
                                 level=level)  # fmt: skip


def laplace_draws(fit: Any, n: int, seed: int) -> dict[str, np.ndarray]:
    """``n`` parameter sets from the fit's Laplace approximation (log-normal), seeded."""
    if n < 1:
        raise HemolabError(f"n must be >= 1, got {n}")
    mean = np.log([fit.estimate[name] for name in fit.names])
    cov = np.asarray(fit.log_covariance, dtype=np.float64)
    if not np.all(np.isfinite(cov)):
        raise HemolabError("the fit has no usable covariance (its Hessian was singular)")
    # eigen-decomposition rather than Cholesky: a zero variance (fixed parameter) is allowed
    w, v = np.linalg.eigh(0.5 * (cov + cov.T))
    if w.min() < -1e-10 * max(1.0, float(abs(w).max())):
        raise HemolabError("the fit's covariance is not positive semi-definite")
    root = v * np.sqrt(np.clip(w, 0.0, None))
    z = np.random.default_rng(seed).standard_normal((n, len(mean)))
    phi = mean + z @ root.T
    return {name: np.exp(phi[:, k]) for k, name in enumerate(fit.names)}


def simulate_draws(
    model: Any, events: Any, params: Mapping[str, Any], observable: str, **grid: Any
) -> tuple[np.ndarray, np.ndarray]:
    """``(time (T,), values (D, T))`` of ``observable`` over parameter draws, one batched
    simulation; a draw whose solve failed is NaN. ``grid``: ``simulate``'s grid options."""
    from hemolab._simulate import simulate

    res = simulate(model, events, params=params, outputs=[observable], **grid)
    values = np.array(res.variable(observable), dtype=np.float64)
    values[np.asarray(res.status) != 0] = np.nan
    return np.asarray(res.time[0], dtype=np.float64), values


def forecast_from_fit(
    model: Any,
    fit: Any,
    events: Any = None,
    *,
    observable: str,
    t_end: float,
    dt: float,
    params: Mapping[str, float] | None = None,
    n_draws: int = 500,
    seed: int = 0,
    rtol: float = 1e-6,
    atol: float = 1e-8,
) -> Forecast:
    """Simulate ``n_draws`` Laplace draws of ``fit`` to ``t_end`` on a ``dt`` grid."""
    drawn = laplace_draws(fit, n_draws, seed)
    batch: dict[str, Any] = {**dict(params or {}), **drawn}
    time, values = simulate_draws(model, events, batch, observable, t_end=t_end, dt=dt,
                                  rtol=rtol, atol=atol)  # fmt: skip
    return Forecast(observable, time, values, drawn)
