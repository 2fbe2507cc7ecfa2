"""The showcase patient: a FHIR bundle of seven monthly CBCs of a falling Hb, and its course
through hemolab (import → calibrate with NUTS → forecast the time to Hb < 7 g/dL).

The patient is fictional and simulated: the ``marrow_failure_hb`` model at known parameters
(``SHOWCASE_TRUTH``), with the model's own 4 % residual error (seeded), Hb reported to one
decimal as analysers do, and normal platelet and white-cell counts beside it (read, and left
out of the fit: the model does not describe them). The bundle carries a name, MRN and birth
date precisely so that de-identification has something to remove.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

SEED = 20261126
SHOWCASE_TRUTH = {"Hb0": 12.6, "kfail": 0.0042, "RBCLS": 112.0}
FIRST_CBC = datetime(2026, 5, 4, 8, 30, tzinfo=UTC)
N_CBC = 7  # monthly, May to November: six months of history
MRN = "MRN-7730021"
THRESHOLD = "Hb<7"


def cbc_dates() -> list[datetime]:
    return [FIRST_CBC.replace(month=FIRST_CBC.month + k) for k in range(N_CBC)]


def showcase_bundle(seed: int = SEED) -> dict[str, Any]:
    """The FHIR R4 ``collection`` bundle of the showcase patient."""
    from hemolab._simulate import simulate
    from hemolab.library import get_model

    model = get_model("marrow_failure_hb")
    dates = cbc_dates()
    days = np.array([(d - dates[0]).total_seconds() / 86400.0 for d in dates])
    res = simulate(model, None, params=SHOWCASE_TRUTH, grid=days, outputs=["Hb"], throw=True)
    rng = np.random.default_rng(seed)
    hb = model.residual_error[0].sample(np.asarray(res.variable("Hb")[0]), rng)
    plt = 180.0 + 25.0 * rng.standard_normal(N_CBC)
    wbc = 6.0 + 0.8 * rng.standard_normal(N_CBC)
    subject = {"reference": f"Patient/{MRN}"}
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": f"urn:uuid:{MRN.lower()}",
            "resource": {
                "resourceType": "Patient",
                "id": MRN,
                "identifier": [{"system": "urn:oid:2.16.840.1.113883.19.5", "value": MRN}],
                "name": [{"family": "Example-Lovelace", "given": ["Ada"]}],
                "gender": "female",
                "birthDate": "1961-09-14",
            },
        }
    ]

    def observation(k: int, loinc: str, value: float, code: str, digits: int) -> dict[str, Any]:
        return {
            "resource": {
                "resourceType": "Observation",
                "id": f"cbc-{k}-{loinc}",
                "status": "final",
                "category": [{"coding": [{"code": "laboratory"}]}],
                "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
                "subject": subject,
                "effectiveDateTime": dates[k].isoformat().replace("+00:00", "Z"),
                "valueQuantity": {"value": round(float(value), digits), "unit": code,
                                  "system": "http://unitsofmeasure.org", "code": code},
            }
        }  # fmt: skip

    for k in range(N_CBC):
        entries.append(observation(k, "718-7", hb[k], "g/dL", 1))
        entries.append(observation(k, "777-3", plt[k], "10*9/L", 0))
        entries.append(observation(k, "6690-2", wbc[k], "10*9/L", 1))
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def write_showcase_bundle(path: Path, seed: int = SEED) -> Path:
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(showcase_bundle(seed), indent=1))
    return path


def run_showcase(
    out: Path,
    *,
    chains: int = 4,
    warmup: int = 1000,
    draws: int = 1000,
    experiments: Path | None = None,
) -> dict[str, Any]:
    """Import the showcase bundle into a store under ``out``, fit it with NUTS, forecast the
    time to Hb < 7 g/dL and draw the fan chart; return the summary (pseudonyms only).

    ``experiments``: an experiment store in which the calibration and the forecast are
    recorded (kinds ``calibrate`` and ``forecast``, as ``hemolab calibrate|forecast --store``
    record them), so that a report can draw them; their ids are in the summary.

    The demo keeps its key beside its store for convenience; a real store's key lives
    elsewhere (design note 014)."""
    from hemolab.calibrate import calibrate_record, plot_gof
    from hemolab.cli._record_patient import (
        add_calibration_results,
        add_forecast_results,
        calibrate_spec,
        forecast_spec,
        recording_patient,
    )
    from hemolab.forecast import plot_fan, threshold_forecast
    from hemolab.library import get_model
    from hemolab.patients import read_fhir
    from hemolab.patients._keys import KeyTable, generate_key, read_key
    from hemolab.patients._observations import lab_observations
    from hemolab.store import Store

    out.mkdir(parents=True, exist_ok=True)
    bundle = write_showcase_bundle(out / "patient_bundle.json")
    key_file = out / "demo.key"
    if not key_file.exists():
        generate_key(key_file)
    model = get_model("marrow_failure_hb")
    # with an experiment store, the patient goes there too: one store holds the whole story
    # (patients, experiments, reports), as `hemolab serve --store` shows it
    with Store(experiments if experiments is not None else out / "store") as st:
        imported = st.import_labs(read_fhir(bundle), KeyTable(st.path, read_key(key_file)),
                                  source_bytes=bundle.read_bytes())  # fmt: skip
        (pseudonym,) = imported.patients
        rows = st.lab_values(pseudonym, actor_action="calibrate")
    lab = lab_observations(rows, model)
    spec = calibrate_spec(model.name, pseudonym, method="nuts", chains=chains, warmup=warmup,
                          draws=draws, seed=SEED)  # fmt: skip
    with recording_patient(
        experiments, "calibrate", label=f"calibrate {model.name} to {pseudonym} (nuts)",
        spec=spec, model_spec=model.name, model=model, seed=SEED,
    ) as calibration:  # fmt: skip
        record, post = calibrate_record(model, model.name, lab.observations, pseudonym=pseudonym,
                                        temporary=False, method="nuts", chains=chains,
                                        warmup=warmup, draws=draws, seed=SEED)  # fmt: skip
        fit_path = record.save(out / "fit.json")
        if calibration is not None:
            add_calibration_results(calibration, record, post, model, fit_path)
    horizon, n_draws = 180.0, 1000
    spec = forecast_spec(record, model, None, threshold=THRESHOLD, horizon=f"{horizon:g}d",
                         span=horizon, n_draws=n_draws, level=0.9, seed=SEED,
                         regimen=False)  # fmt: skip
    with recording_patient(
        experiments, "forecast", label=f"forecast {THRESHOLD} for {pseudonym} (nuts)",
        spec=spec, model_spec=model.name, model=model, seed=SEED,
        inputs={"fit.json": fit_path},
    ) as forecast:  # fmt: skip
        tf = threshold_forecast(record, model, THRESHOLD, horizon=horizon, n_draws=n_draws,
                                seed=SEED)  # fmt: skip
        if forecast is not None:
            add_forecast_results(forecast, tf, lab.observations, model)
    png = plot_fan(tf, lab.observations, out / "hb_forecast.png",
                   title=f"{pseudonym}: Hb forecast after six months of CBCs (NUTS)")  # fmt: skip
    gof = plot_gof(model, record, out / "goodness_of_fit.png", seed=SEED)
    tt = tf.time_to
    return {
        "patient": pseudonym,
        "model": model.name,
        "n_observations": len(lab.observations.time),
        "t_last_observation": tf.t_last,
        "time_unit": model.time_unit,
        "threshold": THRESHOLD,
        "horizon": horizon,
        "median": tt.median,
        "lower": tt.lower,
        "upper": tt.upper,
        "p_within_horizon": tt.p_within_horizon,
        "posterior": {n: [*post.interval(n, 0.9)] for n in post.names},
        "truth": SHOWCASE_TRUTH,
        "divergences": post.divergences,
        "max_rhat": float(np.nanmax(post.rhat)),
        "min_ess": float(np.min(post.ess)),
        "warnings": list(post.warnings),
        "experiments": {
            "calibrate": None if calibration is None else calibration.id,
            "forecast": None if forecast is None else forecast.id,
        },
        "files": [str(bundle), str(fit_path), str(png), str(gof)],
    }
