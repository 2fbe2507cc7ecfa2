"""A patient's calibration and forecast recorded as experiments (kinds ``calibrate`` and
``forecast``) in the store that holds the patient, for ``hemolab report`` and ``experiments``.

What is kept never names the patient beyond its pseudonym (design notes 014, 022): the spec
holds the model, the options and the seed; a forecast keeps a copy of its fit file (which
holds the pseudonym and the de-identified observations on the patient's clock) and of any
planned regimen. Results are Parquet tables a report draws:

- ``calibrate``: ``fit.json`` (the fit as written), ``observations.parquet`` (observable,
  time, value, censored, lloq), ``curve.parquet`` (the typical curve: each observed
  observable at the MAP, from time 0 to the last observation) and ``parameters.parquet``
  (MAP, posterior median and 90 % interval of each estimated parameter).
- ``forecast``: ``fan.parquet`` (per time of the forecast grid, the 5/25/50/75/95 %
  quantiles of the observable over the draws that solved), ``observations.parquet`` and
  ``crossings.parquet`` (per draw: the first crossing time after the last observation, null
  when it is not within the horizon or the draw failed, and which of these it is).

A forecast reruns from its record (the stored fit, options and seed: the same draws, the
same rows). A calibration does not: it read the labs from the patient store, which may have
changed since, and :func:`rerun_calibrate` says so.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hemolab._errors import HemolabError

__all__ = [
    "add_calibration_results",
    "add_forecast_results",
    "calibrate_spec",
    "forecast_spec",
    "no_store_for_temporary",
    "parameter_summary",
    "recording_patient",
    "rerun_calibrate",
    "rerun_forecast",
]

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
CURVE_POINTS = 401
SOLVER = "hemolab adaptive (auto)"


@contextlib.contextmanager
def recording_patient(
    store: Path | None,
    kind: str,
    *,
    label: str,
    spec: Mapping[str, Any],
    model_spec: str,
    model: Any,
    seed: int,
    inputs: Mapping[str, Path | None] | None = None,
    parent: str | None = None,
) -> Iterator[Any]:
    """Record the block as a ``kind`` experiment in ``store`` (yield None when there is no
    store): its model (a library model's SBML for reference, or a copy of its file) and
    ``inputs``; complete when the block ends, failed with the error when it raises."""
    if store is None:
        yield None
        return
    from hemolab.cli._record import add_model, finishing
    from hemolab.experiments import ExperimentStore

    exp = ExperimentStore(store).begin(
        kind, label=label, spec=spec, model=model, seed=seed, solver=SOLVER, parent=parent
    )
    with finishing(exp):
        add_model(exp, model_spec, model)
        for name, path in (inputs or {}).items():
            if path is not None:
                exp.add_input(name, path)
        yield exp


def _library(model_spec: str) -> str | None:
    return None if Path(model_spec).suffix else model_spec


# --- calibrate -------------------------------------------------------------------------


def calibrate_spec(
    model_spec: str, patient: str, *, method: str, chains: int, warmup: int, draws: int, seed: int
) -> dict[str, Any]:
    """What a calibration was asked to do (the pseudonym, never a source identifier)."""
    options: dict[str, Any] = {"patient": patient, "method": method, "seed": seed}
    if method == "nuts":
        options.update(chains=chains, warmup=warmup, draws=draws)
    return {"command": "calibrate", "model": _library(model_spec), "options": options}


def parameter_summary(record: Any, post: Any, level: float = 0.9) -> dict[str, dict[str, float]]:
    """Per estimated parameter: the MAP, the posterior median and the ``level`` interval
    (NUTS: of the draws; Laplace: log-normal around the MAP; MAP alone: the MAP)."""
    z = float(_normal_quantile(0.5 + level / 2.0))
    params = {}
    for k, name in enumerate(record.names):
        if post is not None:
            lo, hi = post.interval(name, level)
            med = float(np.median(post.samples()[name]))
        else:
            med = record.estimate[name]
            sd = math.sqrt(record.log_covariance[k, k]) if record.method == "laplace" else 0.0
            lo, hi = med * math.exp(-z * sd), med * math.exp(z * sd)
        params[name] = {"map": record.estimate[name], "median": med, "lower": lo, "upper": hi}
    return params


def _normal_quantile(p: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(p)


def add_calibration_results(exp: Any, record: Any, post: Any, model: Any, fit_path: Path) -> None:
    """The fit file, the observations, the typical (MAP) curve and the parameter table."""
    import pyarrow as pa

    from hemolab._simulate import simulate

    obs = record.observations
    exp.add_result("fit.json", fit_path)
    observables = list(dict.fromkeys(obs.observable))
    grid = np.union1d(np.linspace(0.0, record.t_last_observation, CURVE_POINTS), obs.time)
    events = None
    if record.events:
        import pandas as pd

        events = pd.DataFrame(record.events)
    res = simulate(model, events, params=record.estimate, grid=grid, outputs=observables,
                   throw=True)  # fmt: skip
    units = dict(zip(res.variables, res.units, strict=True))
    curve: dict[str, list[Any]] = {"observable": [], "unit": [], "time": [], "value": []}
    for name in observables:
        values = np.asarray(res.variable(name)[0], dtype=np.float64)
        curve["observable"] += [name] * len(values)
        curve["unit"] += [units.get(name) or ""] * len(values)
        curve["time"] += list(np.asarray(res.time[0], dtype=np.float64))
        curve["value"] += list(values)
    params = parameter_summary(record, post)
    table = {
        "parameter": list(params),
        "map": [p["map"] for p in params.values()],
        "median": [p["median"] for p in params.values()],
        "lower": [p["lower"] for p in params.values()],
        "upper": [p["upper"] for p in params.values()],
    }
    meta = {"hemolab.time_unit": record.time_unit, "hemolab.method": record.method,
            "hemolab.level": "0.9"}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="hemolab-calibrate-") as tmp:
        for name, cols in (
            ("observations.parquet", _observation_columns(obs, units)),
            ("curve.parquet", curve),
            ("parameters.parquet", table),
        ):
            _write(Path(tmp) / name, pa.table(cols), meta)
            exp.add_result(name, Path(tmp) / name)


def _observation_columns(obs: Any, units: Mapping[str, str | None]) -> dict[str, Any]:
    import pyarrow as pa

    return {
        "observable": pa.array(list(obs.observable), pa.string()),
        "unit": pa.array([units.get(o) or "" for o in obs.observable], pa.string()),
        "time": pa.array(np.asarray(obs.time, dtype=np.float64)),
        "value": pa.array(np.asarray(obs.value, dtype=np.float64), from_pandas=True),
        "censored": pa.array(np.asarray(obs.censored, dtype=bool)),
        "lloq": pa.array(np.asarray(obs.lloq, dtype=np.float64), from_pandas=True),
    }


def _write(path: Path, table: Any, meta: Mapping[str, str]) -> None:
    import pyarrow.parquet as pq

    table = table.replace_schema_metadata({k.encode(): v.encode() for k, v in meta.items()})
    pq.write_table(table, path)


def rerun_calibrate(store: Any, record: Any) -> str:
    """A calibration is not rerun: say why, and what to do instead."""
    from hemolab.experiments import ExperimentError

    raise ExperimentError(
        f"experiment {record.id} is a calibration, which hemolab does not rerun: it read the "
        "patient's labs from the patient store, which may have changed since, and its fit file "
        "records when it was made; calibrate again (hemolab calibrate --store DIR --patient "
        "PSEUDONYM), or rerun a forecast made from the fit"
    )


# --- forecast --------------------------------------------------------------------------


def forecast_spec(
    fit: Any, model: Any, tf: Any | None, *, threshold: str, horizon: str, span: float,
    n_draws: int, level: float, seed: int, regimen: bool,
) -> dict[str, Any]:  # fmt: skip
    """What a forecast was asked to do, and what a report needs to draw it (the threshold
    parsed, the horizon in the model's time unit, the level, the last observation)."""
    from hemolab.forecast import Threshold

    th = Threshold.parse(threshold)
    return {
        "command": "forecast",
        "model": _library(fit.model),
        "options": {
            "threshold": threshold,
            "horizon": horizon,
            "n_draws": n_draws,
            "level": level,
            "seed": seed,
        },
        "files": ["fit"] + (["regimen"] if regimen else []),
        "patient": fit.patient,
        "method": fit.method,
        "threshold": {"observable": th.observable, "op": th.op, "value": th.value},
        "horizon": span,
        "level": level,
        "time_unit": model.time_unit,
        "t_last_observation": fit.t_last_observation,
    }


def add_forecast_results(exp: Any, tf: Any, observations: Any, model: Any) -> None:
    """The fan (quantiles per grid time), the observations and each draw's crossing."""
    import pyarrow as pa

    fc, tt = tf.forecast, tf.time_to
    from hemolab.forecast import first_crossing

    draws = np.asarray(fc.draws, dtype=np.float64)
    ok = ~np.isnan(draws).any(axis=1)
    q = (np.nanquantile(draws[ok], QUANTILES, axis=0) if ok.any()
         else np.full((len(QUANTILES), len(fc.time)), np.nan))  # fmt: skip
    fan: dict[str, Any] = {"time": np.asarray(fc.time, dtype=np.float64)}
    for level, row in zip(QUANTILES, q, strict=True):
        fan[f"q{round(100 * level):02d}"] = row
    cross = first_crossing(fc.time, draws, tt.threshold, start=tt.start)
    within = np.isfinite(cross) & (cross <= tt.start + tt.horizon)
    status = np.where(np.isnan(cross), "failed", np.where(within, "crossed", "not within horizon"))
    crossings = {
        "draw": pa.array(np.arange(len(cross), dtype=np.int64)),
        "time": pa.array(np.where(within, cross, np.nan), from_pandas=True),
        "status": pa.array(status.tolist(), pa.string()),
    }
    units = {o.name: o.unit or "" for o in model.observables}
    meta = {
        "hemolab.time_unit": tf.time_unit,
        "hemolab.observable": fc.observable,
        "hemolab.unit": units.get(fc.observable, ""),
        "hemolab.threshold": str(tt.threshold),
    }
    with tempfile.TemporaryDirectory(prefix="hemolab-forecast-") as tmp:
        for name, cols in (
            ("fan.parquet", fan),
            ("observations.parquet", _observation_columns(observations, units)),
            ("crossings.parquet", crossings),
        ):
            _write(Path(tmp) / name, pa.table(cols), meta)
            exp.add_result(name, Path(tmp) / name)


def rerun_forecast(store: Any, record: Any) -> str:
    """Forecast again from the stored fit, options and seed (a new experiment whose parent
    is ``record``; the patient's forecast history is left alone); return its id."""
    import pandas as pd

    from hemolab.calibrate._fitfile import load_fit
    from hemolab.cli._app import load_model
    from hemolab.compile import model_hash
    from hemolab.experiments import ExperimentError
    from hemolab.forecast import threshold_forecast

    inputs, spec = record.inputs, record.spec
    if "fit.json" not in inputs:
        raise ExperimentError(f"experiment {record.id} has no stored fit")
    model_spec = spec.get("model")
    if not model_spec:
        stored = [f for name, f in inputs.items() if name.startswith("model.")]
        if not stored:
            raise ExperimentError(f"experiment {record.id} has no stored model file")
        model_spec = str(stored[0].path)
    mdl = load_model(model_spec)
    current = model_hash(mdl)
    if current != record.model_hash:
        raise ExperimentError(
            f"experiment {record.id}: model {record.model_name} changed since it was recorded "
            f"(hash {record.model_hash} then, {current} now); a rerun would not reproduce it"
        )
    fit_path = inputs["fit.json"].path
    fit = load_fit(fit_path)
    opts = spec["options"]
    regimen = inputs["regimen.csv"].path if "regimen.csv" in inputs else None
    with recording_patient(
        store.path, "forecast", label=f"rerun of {record.label}", spec=spec,
        model_spec=model_spec, model=mdl, seed=opts["seed"],
        inputs={"fit.json": fit_path, "regimen.csv": regimen}, parent=record.id,
    ) as exp:  # fmt: skip
        tf = threshold_forecast(
            fit, mdl, opts["threshold"], horizon=float(spec["horizon"]),
            regimen=None if regimen is None else pd.read_csv(regimen),
            n_draws=int(opts["n_draws"]), seed=int(opts["seed"]), level=float(opts["level"]),
        )  # fmt: skip
        add_forecast_results(exp, tf, fit.observations, mdl)
    return exp.id


def no_store_for_temporary(fit: Any) -> None:
    """A fit of a temporary pseudonym (a lab file given directly) is not kept in a store."""
    if fit.temporary_patient:
        raise HemolabError(
            "this fit was made from a file under a temporary pseudonym; import the patient "
            "and calibrate with --store --patient to keep a forecast history"
        )
