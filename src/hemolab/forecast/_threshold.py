"""Time to threshold: when does a count first cross a critical line, over forecast draws.

A forecast is a set of trajectories (posterior or population draws) of one observable on a
time grid. For each draw the first crossing after a start time is found by linear
interpolation between grid points (a draw already beyond the line at the start crosses
there); the summary gives the median and an equal-tailed interval of the crossing time and
the probability of crossing within a horizon. A quantile that the draws do not reach within
the grid is reported as ``None`` (the JSON ``null`` of ``hemolab forecast --json``), never
as the grid's end.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from hemolab._errors import HemolabError

__all__ = ["Threshold", "TimeToThreshold", "first_crossing", "time_to_threshold"]

_PATTERN = re.compile(
    r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|<|>)\s*([-+]?[0-9.]+(?:[eE][-+]?\d+)?)\s*$"
)


@dataclass(frozen=True)
class Threshold:
    """``observable op value``, e.g. ``Hb < 7`` (in the observable's canonical unit)."""

    observable: str
    op: str  # "<", "<=", ">", ">="
    value: float

    @classmethod
    def parse(cls, text: str) -> Threshold:
        """``"Hb<7"``, ``"ANC < 0.5"``, ``"PLT<=20"``; a clear error otherwise."""
        m = _PATTERN.match(text)
        if m is None:
            raise HemolabError(
                f"threshold {text!r} is not of the form OBSERVABLE<VALUE (or <=, >, >=), "
                "e.g. 'Hb<7' or 'ANC<0.5'"
            )
        try:
            value = float(m.group(3))
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise HemolabError(f"threshold {text!r}: the value must be a finite number")
        return cls(m.group(1), m.group(2), value)

    def beyond(self, x: np.ndarray) -> np.ndarray:
        """Where ``x`` is past the line (NaN is not)."""
        with np.errstate(invalid="ignore"):
            return {"<": x < self.value, "<=": x <= self.value, ">": x > self.value,
                    ">=": x >= self.value}[self.op]  # fmt: skip

    def __str__(self) -> str:
        return f"{self.observable}{self.op}{self.value:g}"


def first_crossing(
    times: np.ndarray, values: np.ndarray, threshold: Threshold, *, start: float | None = None
) -> np.ndarray:
    """First time each draw crosses ``threshold`` at or after ``start`` (``inf``: not on the grid).

    ``times`` (T,) increasing; ``values`` (D, T) or (T,). The crossing inside an interval is
    found by linear interpolation of the values; a draw with NaN values (a failed solve)
    gives NaN.
    """
    t = np.asarray(times, dtype=np.float64)
    v = np.atleast_2d(np.asarray(values, dtype=np.float64))
    if t.ndim != 1 or v.shape[1] != t.size or t.size == 0:
        raise HemolabError(f"values {v.shape} do not match the {t.size} times")
    if np.any(np.diff(t) <= 0):
        raise HemolabError("times must be strictly increasing")
    t0 = t[0] if start is None else float(start)
    keep = t >= t0
    if t0 > t[0] and t0 < t[-1] and t0 not in t:  # the value at the start, interpolated
        v0 = np.array([np.interp(t0, t, row) for row in v])[:, None]
        t = np.concatenate([[t0], t[keep]])
        v = np.concatenate([v0, v[:, keep]], axis=1)
    else:
        t, v = t[keep], v[:, keep]
    out = np.full(v.shape[0], np.inf)
    if t.size == 0:
        return out
    past = threshold.beyond(v)
    for d in range(v.shape[0]):
        if np.isnan(v[d]).any():
            out[d] = np.nan
            continue
        hit = np.flatnonzero(past[d])
        if hit.size == 0:
            continue
        k = int(hit[0])
        if k == 0:
            out[d] = t[0]
            continue
        a, b = v[d, k - 1], v[d, k]
        frac = (threshold.value - a) / (b - a) if b != a else 1.0
        out[d] = t[k - 1] + min(max(frac, 0.0), 1.0) * (t[k] - t[k - 1])
    return out


@dataclass(frozen=True)
class TimeToThreshold:
    """The distribution of the first crossing time over draws (times on the patient's clock)."""

    threshold: Threshold
    start: float  # crossings are counted from here (the last observation)
    horizon: float  # p_within_horizon counts crossings up to start + horizon
    median: float | None
    lower: float | None  # (1 - level)/2 quantile
    upper: float | None
    level: float
    p_within_horizon: float
    n_draws: int
    n_failed: int  # draws whose trajectory could not be computed (excluded)


def time_to_threshold(
    times: np.ndarray,
    values: np.ndarray,
    threshold: Threshold,
    *,
    start: float,
    horizon: float,
    level: float = 0.9,
) -> TimeToThreshold:
    """Summarise first crossings after ``start`` over the draws in ``values`` (D, T).

    Quantiles are of the crossing time with "no crossing on the grid" counted as later than
    every time; a quantile that falls among those is None. The grid must reach
    ``start + horizon`` so that ``p_within_horizon`` is not understated.
    """
    if not 0 < level < 1:
        raise HemolabError(f"level must be in (0, 1), got {level}")
    if not horizon > 0:
        raise HemolabError(f"horizon must be > 0, got {horizon}")
    t = np.asarray(times, dtype=np.float64)
    if t[-1] < start + horizon - 1e-9 * max(1.0, abs(start + horizon)):
        raise HemolabError(
            f"the forecast grid ends at {t[-1]:g}, before start + horizon = {start + horizon:g}"
        )
    cross = first_crossing(t, values, threshold, start=start)
    ok = cross[~np.isnan(cross)]
    if ok.size == 0:
        raise HemolabError("no draw could be computed: nothing to summarise")
    ordered = np.sort(ok)  # inf (never) sorts last

    def quantile(q: float) -> float | None:
        # the inverse empirical CDF, 'inverted_cdf' style: the smallest x with F(x) >= q
        k = max(math.ceil(q * ordered.size) - 1, 0)
        x = ordered[k]
        return None if not math.isfinite(x) else float(x)

    alpha = (1.0 - level) / 2.0
    return TimeToThreshold(
        threshold=threshold,
        start=float(start),
        horizon=float(horizon),
        median=quantile(0.5),
        lower=quantile(alpha),
        upper=quantile(1.0 - alpha),
        level=level,
        p_within_horizon=float(np.mean(ok <= start + horizon)),
        n_draws=int(ok.size),
        n_failed=int(cross.size - ok.size),
    )
