"""A calibration written to disk: what ``hemolab calibrate`` writes and ``forecast`` reads.

One JSON document (``hemolab-fit/1``): the model (spec and hash), the method, the estimate
and Laplace covariance, the posterior draws (NUTS), diagnostics, the de-identified
observations (pseudonym, times on the patient's clock), the past dosing with its subject
column replaced, and provenance (versions, seed, settings, time). Nothing identifying: a file
given directly was de-identified in memory under a temporary pseudonym, marked as such.
Written atomically (a temporary name, then a rename), so a reader never sees half a fit.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from hemolab.calibrate._problem import CalibrationError, Observations

__all__ = ["FIT_FORMAT", "FitRecord", "calibrate_record", "load_fit"]

FIT_FORMAT = "hemolab-fit/1"
METHODS = ("map", "laplace", "nuts")


@dataclass(frozen=True)
class FitRecord:
    """A stored calibration of one patient."""

    model: str  # library name or model file, as given
    model_hash: str
    method: str
    names: tuple[str, ...]
    estimate: dict[str, float]  # the MAP
    log_covariance: np.ndarray  # Laplace (d, d)
    draws: np.ndarray | None  # (D, d) posterior draws of θ (NUTS), else None
    patient: str  # pseudonym (temporary ``T…`` when not from a store)
    temporary_patient: bool
    time_unit: str
    observations: Observations
    events: list[dict[str, Any]] | None = None  # past dosing, subject column replaced
    diagnostics: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def t_last_observation(self) -> float:
        return float(np.max(self.observations.time))

    def parameter_draws(self, n: int, seed: int) -> dict[str, np.ndarray]:
        """``n`` parameter sets: the MAP repeated (``map``), seeded Laplace draws, or the
        posterior draws resampled without replacement when there are more (``nuts``)."""
        if self.method == "map":
            return {k: np.full(1, v) for k, v in self.estimate.items()}
        if self.method == "laplace":
            from hemolab.forecast import laplace_draws

            return laplace_draws(self, n, seed)
        assert self.draws is not None
        rows = self.draws
        if n < len(rows):
            rows = rows[np.sort(np.random.default_rng(seed).choice(len(rows), n, replace=False))]
        return {k: rows[:, j].copy() for j, k in enumerate(self.names)}

    def save(self, path: str | os.PathLike[str]) -> Path:
        out = Path(path)
        doc = {
            "format": FIT_FORMAT,
            "label": "research use — not for clinical decisions",
            "model": self.model,
            "model_hash": self.model_hash,
            "method": self.method,
            "names": list(self.names),
            "estimate": self.estimate,
            "log_covariance": _finite_or_none(self.log_covariance),
            "draws": None if self.draws is None else self.draws.tolist(),
            "patient": self.patient,
            "temporary_patient": self.temporary_patient,
            "time_unit": self.time_unit,
            "t_last_observation": self.t_last_observation,
            "observations": {
                "observable": list(self.observations.observable),
                "time": self.observations.time.tolist(),
                "value": _finite_or_none(self.observations.value),
                "censored": self.observations.censored.tolist(),
                "lloq": _finite_or_none(self.observations.lloq),
            },
            "events": self.events,
            "diagnostics": self.diagnostics,
            "warnings": list(self.warnings),
            "provenance": self.provenance,
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(doc, indent=1, allow_nan=False))
        os.replace(tmp, out)
        return out


def calibrate_record(
    model: Any,
    model_spec: str,
    observations: Observations,
    *,
    pseudonym: str,
    temporary: bool,
    method: str = "nuts",
    events: list[dict[str, Any]] | None = None,
    chains: int = 4,
    warmup: int = 1000,
    draws: int = 1000,
    seed: int = 0,
) -> tuple[FitRecord, Any]:
    """Fit one patient (MAP, then NUTS if asked) and return the record and the posterior."""
    from hemolab.calibrate._map import fit_map_batch
    from hemolab.calibrate._nuts import NUTS_RTOL, sample_nuts
    from hemolab.calibrate._problem import Patient
    from hemolab.compile._compiled import model_hash

    if method not in METHODS:
        raise CalibrationError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    frame = None
    if events is not None:
        import pandas as pd

        frame = pd.DataFrame(events)
    target = Patient(observations, frame)
    fit = fit_map_batch(model, [target])[0]
    post = None
    if method == "nuts":
        post = sample_nuts(model, [target], chains=chains, warmup=warmup, draws=draws,
                           seed=seed, start=[fit])[0]  # fmt: skip
    warnings = () if post is None else post.warnings
    if not fit.converged:
        warnings = (*warnings, "the MAP search did not converge")
    record = FitRecord(
        model=model_spec,
        model_hash=model_hash(model),
        method=method,
        names=fit.names,
        estimate=fit.estimate,
        log_covariance=fit.log_covariance,
        draws=None if post is None else post.draws.reshape(-1, len(fit.names)),
        patient=pseudonym,
        temporary_patient=temporary,
        time_unit=model.time_unit,
        observations=observations,
        events=events,
        diagnostics=_diagnostics(fit, post),
        warnings=warnings,
        provenance=provenance(
            seed=seed, chains=chains, warmup=warmup, draws=draws, rtol_map=1e-8, rtol_nuts=NUTS_RTOL
        ),
    )
    return record, post


def _diagnostics(fit: Any, post: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "map": {"converged": fit.converged, "iterations": fit.iterations,
                "gradient_norm": fit.gradient_norm, "objective": fit.objective,
                "newton_decrement": fit.newton_decrement
                if math.isfinite(fit.newton_decrement) else None},
    }  # fmt: skip
    if post is not None:
        names = post.names
        doc["nuts"] = {
            "rhat": dict(zip(names, map(float, post.rhat), strict=True)),
            "ess": dict(zip(names, map(float, post.ess), strict=True)),
            "divergences": post.divergences,
            "posterior_prior_sd_ratio": dict(zip(names, map(float, post.sd_ratio), strict=True)),
            "mean_tree_steps": post.mean_tree_steps,
        }
    return doc


def provenance(**settings: Any) -> dict[str, Any]:
    """Versions, time and the given settings (seed, tolerances, chain counts)."""
    from importlib.metadata import version

    versions = {p: version(p) for p in ("hemolab", "jax", "numpyro", "numpy")}
    return {"created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "versions": versions, **settings}  # fmt: skip


def _finite_or_none(a: Any) -> Any:
    """JSON has no NaN: non-finite entries become null (read back as NaN)."""
    arr = np.asarray(a, dtype=np.float64).astype(object)
    arr[~np.isfinite(arr.astype(np.float64))] = None
    return arr.tolist()


def _nan(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)  # null -> NaN


def load_fit(path: str | os.PathLike[str]) -> FitRecord:
    """Read a fit written by :meth:`FitRecord.save`; a clear error names what is wrong."""
    p = Path(path)
    name = p.name
    if not p.is_file():
        raise CalibrationError(f"fit {name!r} does not exist")
    try:
        doc = json.loads(p.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        msg = f"fit {name!r} is not a JSON document ({exc.__class__.__name__})"
        raise CalibrationError(msg) from None
    if not isinstance(doc, dict) or doc.get("format") != FIT_FORMAT:
        raise CalibrationError(f"fit {name!r} is not a {FIT_FORMAT} document")
    try:
        method = doc["method"]
        if method not in METHODS:
            raise CalibrationError(f"fit {name!r}: method must be one of {METHODS}")
        o = doc["observations"]
        obs = Observations.of(o["observable"], o["time"], _nan(o["value"]), o["censored"],
                              _nan(o["lloq"]))  # fmt: skip
        names = tuple(doc["names"])
        draws = None if doc["draws"] is None else np.asarray(doc["draws"], dtype=np.float64)
        if method == "nuts" and (draws is None or draws.ndim != 2 or draws.shape[1] != len(names)):
            msg = f"fit {name!r}: NUTS draws must be a (draws, {len(names)}) table"
            raise CalibrationError(msg)
        return FitRecord(
            model=str(doc["model"]),
            model_hash=str(doc["model_hash"]),
            method=method,
            names=names,
            estimate={k: float(doc["estimate"][k]) for k in names},
            log_covariance=_nan(doc["log_covariance"]),
            draws=draws,
            patient=str(doc["patient"]),
            temporary_patient=bool(doc["temporary_patient"]),
            time_unit=str(doc["time_unit"]),
            observations=obs,
            events=doc.get("events"),
            diagnostics=dict(doc.get("diagnostics") or {}),
            warnings=tuple(doc.get("warnings") or ()),
            provenance=dict(doc.get("provenance") or {}),
        )
    except (KeyError, TypeError, ValueError, OverflowError) as exc:  # Overflow: int > 1e308
        if isinstance(exc, CalibrationError):
            raise
        msg = f"fit {name!r} is missing or has a malformed field ({exc})"
        raise CalibrationError(msg) from None
