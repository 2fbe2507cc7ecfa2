"""Published variability of a model: inter-individual (omega) and residual (sigma) error.

A model may declare the inter-individual variability (IIV) its paper estimated, so that a
virtual population of it needs nothing from the user, and the residual error model of its
observations. Parameters vary log-normally, ``θᵢ = θ·exp(ηᵢ)`` with ``η ~ N(0, Ω)``, as in
NONMEM's exponential IIV; ``Ω`` is a covariance matrix (variances on the diagonal, the
numbers papers print as "IIV variance" or ω²).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from hemolab._errors import ModelError

__all__ = ["ResidualError", "Variability"]

ResidualKind = Literal["additive", "proportional", "combined", "exponential"]


@dataclass(frozen=True)
class Variability:
    """Log-normal inter-individual variability: ``θᵢ = θ·exp(ηᵢ)``, ``η ~ N(0, omega)``.

    Attributes
    ----------
    parameters
        Names of the varying parameters, in the order of ``omega``'s rows.
    omega
        Covariance of ``η`` (square, symmetric, positive semi-definite): variances on the
        diagonal (ω², not CV), covariances off it.
    source
        Where the numbers come from (paper, table), shown by ``hemolab show``.

    Examples
    --------
    >>> v = Variability.diagonal({"MTT": 0.019, "Slope": 0.128}, source="Kloft 2006")
    >>> v.cv_percent()["MTT"]  # sqrt(exp(ω²) - 1)
    13.85...
    """

    parameters: tuple[str, ...]
    omega: tuple[tuple[float, ...], ...]
    source: str = ""

    def __post_init__(self) -> None:
        names = tuple(self.parameters)
        object.__setattr__(self, "parameters", names)
        try:
            om = np.asarray(self.omega, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):  # ragged rows, text, huge integers
            raise ModelError(
                f"omega must be a {len(names)}×{len(names)} matrix of numbers for parameters "
                f"{list(names)}"
            ) from None
        if om.ndim == 0 and len(names) == 1:
            om = om.reshape(1, 1)
        if om.shape != (len(names), len(names)):
            raise ModelError(
                f"omega must be a {len(names)}×{len(names)} matrix for parameters {list(names)}, "
                f"got shape {om.shape}"
            )
        if len(set(names)) != len(names):
            raise ModelError(f"omega names a parameter twice: {list(names)}")
        if not np.all(np.isfinite(om)):
            raise ModelError("omega has a non-finite entry")
        if not np.allclose(om, om.T, rtol=1e-12, atol=1e-15):
            raise ModelError("omega must be symmetric (a covariance matrix of the etas)")
        bad = [n for n, v in zip(names, np.diag(om), strict=True) if v < 0]
        if bad:
            raise ModelError(f"omega has negative variance(s) for {bad}")
        if names and np.linalg.eigvalsh(om).min() < -1e-12 * max(1.0, float(np.abs(om).max())):
            raise ModelError(
                "omega is not positive semi-definite: its correlations are impossible "
                f"(smallest eigenvalue {np.linalg.eigvalsh(om).min():.3g})"
            )
        object.__setattr__(self, "omega", tuple(tuple(float(x) for x in row) for row in om))

    @classmethod
    def diagonal(cls, variances: Mapping[str, float], source: str = "") -> Variability:
        """Independent etas with the given variances (ω²)."""
        names = tuple(variances)
        matrix = np.diag([float(variances[n]) for n in names])
        return cls(names, tuple(tuple(float(x) for x in row) for row in matrix), source)

    @classmethod
    def from_cv(cls, cv_percent: Mapping[str, float], source: str = "") -> Variability:
        """Independent etas from CVs in percent: ``ω² = ln(1 + CV²)``."""
        return cls.diagonal(
            {k: math.log1p((v / 100.0) ** 2) for k, v in cv_percent.items()}, source
        )

    @property
    def matrix(self) -> np.ndarray:
        """``omega`` as a NumPy array."""
        return np.asarray(self.omega, dtype=np.float64).reshape(len(self.parameters), -1)

    def cv_percent(self) -> dict[str, float]:
        """The log-normal CV of each parameter, ``100·sqrt(exp(ω²) − 1)``."""
        return {
            n: 100.0 * math.sqrt(math.expm1(v))
            for n, v in zip(self.parameters, np.diag(self.matrix), strict=True)
        }


@dataclass(frozen=True)
class ResidualError:
    """Residual (measurement) error of one observable.

    ``additive``: ``y = f + a·ε``; ``proportional``: ``y = f·(1 + b·ε)``; ``combined``:
    ``y = f + sqrt(a² + b²f²)·ε`` (NONMEM's combined variance form); ``exponential``
    (log-additive): ``y = f·exp(a·ε)``. ``ε ~ N(0, 1)``; ``a`` in the observable's unit (SD on the
    log scale for ``exponential``), ``b`` a fraction (0.286 is 28.6 %).
    """

    observable: str
    kind: ResidualKind = "proportional"
    additive: float = 0.0
    proportional: float = 0.0
    source: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("additive", "proportional", "combined", "exponential"):
            raise ModelError(
                f"residual error of {self.observable!r}: kind must be additive, proportional, "
                f"combined or exponential, got {self.kind!r}"
            )
        for name in ("additive", "proportional"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ModelError(
                    f"residual error of {self.observable!r}: {name} must be a finite SD >= 0, "
                    f"got {v}"
                )
        needs = {
            "additive": ("additive",),
            "proportional": ("proportional",),
            "combined": ("additive", "proportional"),
            "exponential": ("additive",),
        }[self.kind]
        if all(getattr(self, n) == 0 for n in needs):
            raise ModelError(
                f"residual error of {self.observable!r} ({self.kind}): give "
                f"{' and/or '.join(needs)} > 0"
            )

    def sample(self, values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Noisy observations of ``values`` (NaN stays NaN); draws one ε per value, in order."""
        f = np.asarray(values, dtype=np.float64)
        eps = rng.standard_normal(f.shape)
        return self.apply(f, eps)

    def apply(self, f: np.ndarray, eps: np.ndarray) -> np.ndarray:
        """``y`` for given predictions ``f`` and standard-normal draws ``eps``."""
        a, b = self.additive, self.proportional
        if self.kind == "additive":
            return f + a * eps
        if self.kind == "proportional":
            return f * (1.0 + b * eps)
        if self.kind == "combined":
            return f + np.sqrt(a * a + (b * f) ** 2) * eps
        return f * np.exp(a * eps)

    def sd(self, f: np.ndarray) -> np.ndarray:
        """Standard deviation of ``y`` given ``f`` (on the log scale for ``exponential``)."""
        f = np.asarray(f, dtype=np.float64)
        a, b = self.additive, self.proportional
        if self.kind == "additive" or self.kind == "exponential":
            return np.full_like(f, a)
        if self.kind == "proportional":
            return np.abs(b * f)
        return np.sqrt(a * a + (b * f) ** 2)


def validate_variability(
    model_name: str,
    parameters: Sequence[str],
    observables: Sequence[str],
    variability: Variability | None,
    residual: Sequence[ResidualError],
    bounds: Mapping[str, tuple[float, float]] | None = None,
) -> None:
    """Check that declared variability refers to the model's own names."""
    if variability is not None:
        unknown = [n for n in variability.parameters if n not in parameters]
        if unknown:
            raise ModelError(
                f"model {model_name!r}: variability names unknown parameter(s) {unknown}; "
                f"parameters: {list(parameters)}"
            )
        for n in variability.parameters:
            lo, _hi = (bounds or {}).get(n, (0.0, math.inf))
            if lo < 0:
                raise ModelError(
                    f"model {model_name!r}: log-normal variability on {n!r} needs a positive "
                    f"parameter (its lower bound is {lo})"
                )
    seen: set[str] = set()
    for r in residual:
        if r.observable not in observables:
            raise ModelError(
                f"model {model_name!r}: residual error for unknown observable {r.observable!r}; "
                f"observables: {list(observables)}"
            )
        if r.observable in seen:
            raise ModelError(f"model {model_name!r}: two residual errors for {r.observable!r}")
        seen.add(r.observable)
