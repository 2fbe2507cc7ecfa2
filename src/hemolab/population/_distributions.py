"""Covariate distributions for virtual populations (body size, age, sex...).

Each distribution draws ``n`` values from a NumPy ``Generator``; a plain array is resampled with
replacement (an empirical covariate distribution, e.g. the BSA of a trial population).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from hemolab._errors import HemolabError

__all__ = ["Categorical", "CovariateDistribution", "Empirical", "LogNormal", "Normal", "Uniform"]


class CovariateDistribution(Protocol):
    """Anything that draws ``n`` covariate values."""

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray: ...


@dataclass(frozen=True)
class Normal:
    """Normal ``N(mean, sd²)``, truncated to ``[low, high]`` by redrawing values outside."""

    mean: float
    sd: float
    low: float = -math.inf
    high: float = math.inf

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mean) and math.isfinite(self.sd) and self.sd >= 0):
            raise HemolabError(f"Normal needs a finite mean and sd >= 0, got {self}")
        if not self.low < self.high or not self.low <= self.mean <= self.high:
            raise HemolabError(f"Normal: need low < high and the mean inside, got {self}")

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        x = rng.normal(self.mean, self.sd, n)
        for _ in range(1000):  # acceptance >= ~16 % when the mean lies inside [low, high]
            bad = (x < self.low) | (x > self.high)
            if not bad.any():
                return x
            x[bad] = rng.normal(self.mean, self.sd, int(bad.sum()))
        raise HemolabError(f"Normal {self}: cannot draw inside [low, high]")  # pragma: no cover


@dataclass(frozen=True)
class LogNormal:
    """Log-normal with the given median and CV (percent): ``median·exp(N(0, ln(1+CV²)))``."""

    median: float
    cv_percent: float

    def __post_init__(self) -> None:
        if not (self.median > 0 and self.cv_percent >= 0 and math.isfinite(self.median)):
            raise HemolabError(f"LogNormal needs median > 0 and cv_percent >= 0, got {self}")

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        sd = math.sqrt(math.log1p((self.cv_percent / 100.0) ** 2))
        return self.median * np.exp(rng.normal(0.0, sd, n))


@dataclass(frozen=True)
class Uniform:
    """Uniform on ``[low, high)``."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise HemolabError(f"Uniform needs low < high, got {self}")

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.uniform(self.low, self.high, n)


@dataclass(frozen=True)
class Categorical:
    """Values with probabilities (e.g. ``Categorical((0, 1), (0.5, 0.5))`` for sex)."""

    values: Sequence[float]
    probabilities: Sequence[float]

    def __post_init__(self) -> None:
        p = np.asarray(self.probabilities, dtype=np.float64)
        if len(self.values) != len(p) or not len(p):
            raise HemolabError("Categorical needs as many probabilities as values (at least 1)")
        if np.any(p < 0) or not math.isclose(float(p.sum()), 1.0, rel_tol=1e-9):
            raise HemolabError(f"Categorical probabilities must be >= 0 and sum to 1, got {p}")

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        idx = rng.choice(len(self.values), size=n, p=np.asarray(self.probabilities, dtype=float))
        return np.asarray(self.values, dtype=np.float64)[idx]


@dataclass(frozen=True)
class Empirical:
    """Resampling with replacement from observed values."""

    values: Sequence[float]

    def __post_init__(self) -> None:
        v = np.asarray(self.values, dtype=np.float64)
        if v.ndim != 1 or v.size == 0 or not np.all(np.isfinite(v)):
            raise HemolabError("Empirical needs a non-empty 1-D array of finite values")

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        v = np.asarray(self.values, dtype=np.float64)
        return v[rng.integers(0, v.size, n)]


def as_distribution(name: str, spec: Any) -> CovariateDistribution:
    """A distribution from a distribution object, a constant, or an array to resample."""
    if hasattr(spec, "sample"):
        return spec
    arr = np.asarray(spec, dtype=np.float64)
    if arr.ndim == 0:
        if not np.isfinite(arr):
            raise HemolabError(f"covariate {name!r}: constant {spec!r} is not finite")
        return Empirical((float(arr),))
    try:
        return Empirical(tuple(arr.ravel().tolist()))
    except HemolabError as exc:
        raise HemolabError(f"covariate {name!r}: {exc}") from None
