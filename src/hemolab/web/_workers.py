"""What the server's worker processes run (``JobManager`` targets): ``fn(args, report)``.

Each runs in a spawned process and returns a JSON-ready dict. They get the data they need in
``args`` (the server reads the patient store, under the user's name, before starting them),
so a worker never opens the patient database and never holds its lock.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["fit_patient", "run_protocol_file"]

Report = Callable[..., None]


def _floats(a: Any) -> list[float | None]:
    return [None if not math.isfinite(x) else float(x) for x in np.asarray(a, dtype=float)]


def run_protocol_file(args: dict[str, Any], report: Report) -> dict[str, Any]:
    """``hemolab run PROTOCOL --population N --seed S --store DIR``, with progress."""
    import jax

    jax.config.update("jax_enable_x64", True)
    from hemolab.cli._run import _recording, _write_outcomes
    from hemolab.library import get_model
    from hemolab.population import Population
    from hemolab.protocols import protocol_model, read_protocol, run_protocol

    path = Path(args["protocol"])
    report("reading the protocol")
    model_spec = protocol_model(path)
    mdl = get_model(model_spec)  # a library model only: a model file would run its code
    pf = read_protocol(path, time_unit=mdl.time_unit, values=args.get("values") or None)
    n, seed = int(args["population"]), int(args["seed"])
    pop = Population(mdl, n=n, seed=seed)
    options = {"population": n, "seed": seed, "typical": False, "rtol": 1e-6, "atol": 1e-8,
               "values": [f"{k}={v}" for k, v in (args.get("values") or {}).items()],
               "draws": 200, "blood_group": None}  # fmt: skip
    report("compiling and solving", 0, n)
    with (
        tempfile.TemporaryDirectory(prefix="hemolab-web-") as tmp,
        _recording(Path(args["store"]), pf, model_spec, mdl, options, seed, 1e-6, 1e-8) as exp,
    ):
        result = run_protocol(
            pf.protocol,
            mdl,
            population=pop,
            chunk_size=max(16, math.ceil(n / 10)),
            progress=lambda done, total: report("solving", done, total),
            blood_groups=pf.blood_groups,
        )
        _write_outcomes(result, Path(tmp) / "outcomes.parquet", exp)
    summary = result.summary()
    summary["experiment"] = exp.id if exp is not None else None
    return summary


def fit_patient(args: dict[str, Any], report: Report) -> dict[str, Any]:
    """Laplace fit (MAP and its curvature) of a stored patient's labs, then a forecast of the
    time to a threshold with its interval; the curves on the patient's clock."""
    import jax

    jax.config.update("jax_enable_x64", True)
    from hemolab.calibrate._fitfile import calibrate_record
    from hemolab.cli._calibrate import _stored_events
    from hemolab.forecast import RESEARCH_USE, threshold_forecast
    from hemolab.library import get_model
    from hemolab.patients._observations import lab_observations

    mdl = get_model(args["model"])
    lab = lab_observations(args["rows"], mdl)
    events = _stored_events(args["events"], args["pseudonym"], mdl)
    report("fitting (MAP and Laplace; the first fit compiles)")
    record, _ = calibrate_record(mdl, args["model"], lab.observations, pseudonym=args["pseudonym"],
                                 temporary=False, method="laplace", events=events)  # fmt: skip
    report("forecasting")
    horizon = float(args["horizon"])
    tf = threshold_forecast(record, mdl, args["threshold"], horizon=horizon,
                            n_draws=int(args.get("draws", 300)), seed=0, level=0.9)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="hemolab-fit-") as tmp:
        fit_text = record.save(Path(tmp) / "fit.json").read_text()
    q = tf.forecast.quantiles((0.05, 0.25, 0.5, 0.75, 0.95))
    keep = np.unique(np.linspace(0, len(tf.forecast.time) - 1, 400).astype(int))
    obs = record.observations
    sel = np.array([o == tf.forecast.observable for o in obs.observable])
    tt, th = tf.time_to, tf.time_to.threshold
    return {
        "model": args["model"],
        "observable": tf.forecast.observable,
        "time_unit": mdl.time_unit,
        "observed": {"time": _floats(obs.time[sel]), "value": _floats(obs.value[sel])},
        "time": _floats(tf.forecast.time[keep]),
        "bands": {
            k: _floats(q[i][keep]) for i, k in enumerate(("q05", "q25", "q50", "q75", "q95"))
        },
        "estimate": {k: float(v) for k, v in record.estimate.items()},
        "forecast": {
            "threshold": f"{th.observable}{th.op}{th.value:g}",
            "time_unit": mdl.time_unit,
            "t_last_observation": tf.t_last,
            "median": tt.median,
            "lower": tt.lower,
            "upper": tt.upper,
            "level": 0.9,
            "p_within_horizon": tt.p_within_horizon,
            "horizon": horizon,
            "model": args["model"],
            "method": record.method,
        },
        "warnings": list(record.warnings),
        "fit": fit_text,
        "label": RESEARCH_USE,
    }


def write_report_file(args: dict[str, Any], report: Report) -> dict[str, Any]:
    """``hemolab report IDS --out <store>/reports/NAME``: one self-contained HTML file."""
    from hemolab.audit import Actor
    from hemolab.reports import write_report

    report("reading the experiments and drawing", 0, len(args["experiments"]))
    actor = Actor(*args["actor"]) if "actor" in args else None
    path = write_report(args["store"], args["experiments"], args["out"], actor=actor)
    return {"report": Path(path).name, "bytes": Path(path).stat().st_size}
