"""Virtual populations: typical values, log-normal IIV with a correlated omega, covariates.

Every random draw comes from a block of ``BLOCK`` rows with its own seed, derived from the
population seed and the block number (``SeedSequence(seed, spawn_key=(stream, block))``).
Row ``i`` of a population is therefore the same whether rows are drawn all at once, in
chunks of any size, or on another machine: streaming and distributed runs reproduce the
serial run exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from hemolab._errors import HemolabError
from hemolab.model._model import Model
from hemolab.model._variability import Variability
from hemolab.population._distributions import CovariateDistribution, as_distribution

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["BLOCK", "Population", "patient_ids"]

BLOCK = 1024
"""Rows per independently seeded block of random draws."""

_STREAM_ETA, _STREAM_COVARIATE, _STREAM_RESIDUAL = 0, 1, 2


def patient_ids(start: int, stop: int) -> list[str]:
    """Virtual patient ids ``V`` + 7-digit row (DATA-FORMATS §C)."""
    return [f"V{i:07d}" for i in range(start, stop)]


def block_rng(seed: int, *key: int) -> np.random.Generator:
    """The generator of one block of one random stream."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=tuple(key)))


@dataclass(frozen=True)
class Population:
    """``n`` virtual patients of ``model``: ``θᵢ = θ·exp(ηᵢ)``, ``ηᵢ ~ N(0, Ω)``, plus covariates.

    Parameters
    ----------
    model
        The model whose parameters vary.
    n
        Number of virtual patients (``V0000000`` … ``V{n-1:07d}``).
    seed
        Seed of every draw (IIV, covariates, residual error); the same seed gives the same
        population.
    variability
        The IIV (:class:`~hemolab.model.Variability`); default: the one the model declares
        (its paper's). A model that declares none needs one here.
    covariates
        ``name → distribution`` (:mod:`hemolab.population` distributions, a constant, or an
        array resampled with replacement) for the model's covariates.
    typical
        Typical values that differ from the model's (e.g. a dose-independent ``Circ0``).

    Examples
    --------
    >>> import hemolab as hl
    >>> pop = hl.Population(hl.get_model("friberg_docetaxel"), n=3, seed=1)
    >>> sorted(pop.parameters(0, 3))
    ['MTT', 'Slope']
    """

    model: Model
    n: int
    seed: int
    variability: Variability | None = None
    covariates: Mapping[str, Any] = field(default_factory=dict)
    typical: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.n, int | np.integer) or self.n < 1:
            raise HemolabError(f"a population needs n >= 1 patients, got {self.n!r}")
        if not isinstance(self.seed, int | np.integer) or self.seed < 0:
            raise HemolabError(f"seed must be an integer >= 0, got {self.seed!r}")
        var = self.variability if self.variability is not None else self.model.variability
        if var is None:
            raise HemolabError(
                f"model {self.model.name!r} declares no inter-individual variability (its paper "
                "publishes none, or it was fitted to mean data): give an omega "
                "(Population(variability=...), or --omega FILE on the command line)"
            )
        unknown = [p for p in var.parameters if p not in self.model.parameter_names]
        if unknown:
            raise HemolabError(
                f"omega names parameter(s) {unknown} that model {self.model.name!r} does not "
                f"have; parameters: {list(self.model.parameter_names)}"
            )
        object.__setattr__(self, "variability", var)
        names = set(self.model.covariate_names)
        bad = sorted(set(self.covariates) - names)
        if bad:
            raise HemolabError(
                f"covariate(s) {bad} are not covariates of model {self.model.name!r}; "
                f"its covariates: {sorted(names)}"
            )
        dists = {k: as_distribution(k, v) for k, v in self.covariates.items()}
        object.__setattr__(self, "covariates", dists)
        for k, v in self.typical.items():
            p = self.model.parameter(k)
            if not (math.isfinite(v) and p.bounds[0] <= v <= p.bounds[1]):
                raise HemolabError(f"typical value {k}={v} is outside the bounds {p.bounds}")
        for name in var.parameters:
            value = self.typical.get(name, self.model.parameter(name).value)
            if value <= 0:
                raise HemolabError(
                    f"log-normal variability on {name!r} needs a typical value > 0, got {value}"
                )

    @property
    def omega(self) -> Variability:
        assert self.variability is not None
        return self.variability

    def _factor(self) -> np.ndarray:
        """``L`` with ``L Lᵀ = Ω`` (Cholesky, or a symmetric square root if Ω is singular)."""
        om = self.omega.matrix
        try:
            return np.linalg.cholesky(om)
        except np.linalg.LinAlgError:
            w, v = np.linalg.eigh(om)
            return v * np.sqrt(np.clip(w, 0.0, None))

    def _blocks(self, stream: int, start: int, stop: int, draw: Any, *extra: int) -> np.ndarray:
        """Rows ``[start, stop)`` of a blockwise-seeded stream; ``draw(rng, rows)`` per block."""
        self._check_rows(start, stop)
        parts = []
        for b in range(start // BLOCK, -(-stop // BLOCK)):
            lo, hi = b * BLOCK, min((b + 1) * BLOCK, self.n)
            rows = draw(block_rng(self.seed, stream, *extra, b), hi - lo)
            parts.append(rows[max(start, lo) - lo : min(stop, hi) - lo])
        if not parts:
            return np.zeros((0,))
        return np.concatenate(parts, axis=0)

    def _check_rows(self, start: int, stop: int) -> None:
        if not 0 <= start <= stop <= self.n:
            raise HemolabError(f"rows [{start}, {stop}) outside the population of {self.n}")

    def etas(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """``(rows, k)`` etas of rows ``[start, stop)``, columns as ``variability.parameters``."""
        stop = self.n if stop is None else stop
        k = len(self.omega.parameters)
        L = self._factor()
        z = self._blocks(_STREAM_ETA, start, stop, lambda rng, m: rng.standard_normal((m, k)))
        return z.reshape(-1, k) @ L.T

    def covariate_values(self, start: int = 0, stop: int | None = None) -> dict[str, np.ndarray]:
        """Sampled covariates of rows ``[start, stop)``."""
        stop = self.n if stop is None else stop
        out = {}
        for j, name in enumerate(self.model.covariate_names):
            dist: CovariateDistribution | None = self.covariates.get(name)
            if dist is None:
                continue
            out[name] = self._blocks(
                _STREAM_COVARIATE, start, stop, lambda rng, m, d=dist: d.sample(rng, m), j
            )
        return out

    def parameters(self, start: int = 0, stop: int | None = None) -> dict[str, np.ndarray]:
        """Individual values of rows ``[start, stop)``: varying parameters and covariates."""
        stop = self.n if stop is None else stop
        eta = self.etas(start, stop)
        out: dict[str, np.ndarray] = {
            name: np.full(stop - start, float(v))
            for name, v in self.typical.items()
            if name not in self.omega.parameters
        }
        for j, name in enumerate(self.omega.parameters):
            theta = self.typical.get(name, self.model.parameter(name).value)
            out[name] = theta * np.exp(eta[:, j])
        out.update(self.covariate_values(start, stop))
        return out

    def residual_noise(self, start: int, stop: int, per_patient: int) -> np.ndarray:
        """``(rows, per_patient)`` standard-normal draws for residual error of rows."""
        return self._blocks(
            _STREAM_RESIDUAL,
            start,
            stop,
            lambda rng, m: rng.standard_normal((m, per_patient)),
            per_patient,
        ).reshape(-1, per_patient)

    def table(self, start: int = 0, stop: int | None = None) -> pd.DataFrame:
        """Rows as a DataFrame: ``patient_id``, then individual parameters and covariates."""
        import pandas as pd

        stop = self.n if stop is None else stop
        frame = pd.DataFrame({"patient_id": patient_ids(start, stop)})
        for name, values in self.parameters(start, stop).items():
            frame[name] = values
        return frame

    def describe(self) -> dict[str, Any]:
        """JSON-ready description (stored as provenance with every population result)."""
        return {
            "n": int(self.n),
            "seed": int(self.seed),
            "omega": {
                "parameters": list(self.omega.parameters),
                "matrix": [list(r) for r in self.omega.omega],
                "source": self.omega.source,
            },
            "covariates": {k: repr(v) for k, v in self.covariates.items()},
            "typical": dict(self.typical),
        }
