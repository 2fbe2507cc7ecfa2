"""``hemolab calibrate`` and ``hemolab forecast`` on the showcase patient, in-process.

The showcase bundle (a fictional patient with a name, MRN and birth date) is imported, fitted
from the store and directly from the file, and forecast; the ``--json`` documents follow
their schemas, no identifier reaches any output or file, and bad input exits with code 2 and
one clear line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
from typer.testing import CliRunner, Result

import hemolab as hl
from hemolab.calibrate import goodness_of_fit, load_fit
from hemolab.cli import app
from hemolab.cli._schemas import load_schema
from hemolab.cli._showcase import MRN, write_showcase_bundle
from hemolab.library import get_model

IDENTIFIERS = (MRN, "7730021", "Ada", "Lovelace", "1961-09-14", "2026-05-04")


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def validated(result: Result, schema: str) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    jsonschema.Draft202012Validator(load_schema(schema)).validate(doc)
    return doc


def no_identifier(*texts: str) -> None:
    for text in texts:
        for ident in IDENTIFIERS:
            assert ident not in text, ident


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | str]:
    d = tmp_path_factory.mktemp("showcase")
    bundle = write_showcase_bundle(d / "bundle.json")
    key = d / "key"
    assert run("keygen", "--key-file", key).exit_code == 0
    imp = validated(run("import", bundle, "--store", d / "store", "--key-file", key, "--json"),
                    "import")  # fmt: skip
    return {"dir": d, "bundle": bundle, "store": d / "store",
            "patient": imp["patients"][0]["pseudonym"]}  # fmt: skip


def test_calibrate_laplace_from_the_store_and_forecast(stored: dict[str, Any]) -> None:
    d = stored["dir"]
    fit = d / "fit-laplace.json"
    gof = d / "gof.png"
    res = run("calibrate", "marrow_failure_hb", "--store", stored["store"], "--patient",
              stored["patient"], "--method", "laplace", "--out", fit, "--gof", gof,
              "--json")  # fmt: skip
    doc = validated(res, "calibrate")
    assert gof.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # IPRED is the MAP trajectory; IWRES the proportional-error residual (4 %)
    model = get_model("marrow_failure_hb")
    record = load_fit(fit)
    g = goodness_of_fit(model, record)
    ipred = hl.simulate(model, None, params=record.estimate, grid=record.observations.time,
                        outputs=["Hb"], rtol=1e-10, atol=1e-12).variable("Hb")[0]  # fmt: skip
    np.testing.assert_allclose(g.ipred, ipred, rtol=1e-6)
    np.testing.assert_allclose(g.iwres, (g.dv - ipred) / (0.04 * ipred), rtol=1e-5)
    assert np.all(np.abs(g.iwres) < 3)
    assert doc["patient"] == stored["patient"] and not doc["temporary_patient"]
    assert doc["n_observations"] == 7 and doc["unused_lab_values"] == {"plt": 7, "wbc": 7}
    assert doc["t_last_observation"] == 184.0  # May 4 to November 4, on the patient's clock
    hb0 = doc["parameters"]["Hb0"]
    assert hb0["lower"] < 12.6 < hb0["upper"]  # the showcase truth
    png = d / "fan.png"
    out = run("forecast", fit, "--threshold", "Hb<7", "--horizon", "26w", "--plot", png, "--json")
    fc = validated(out, "forecast")
    assert fc["threshold"] == "Hb<7" and fc["time_unit"] == "d" and fc["horizon"] == 182.0
    assert fc["t_last_observation"] == 184.0 and fc["method"] == "laplace"
    assert fc["t_last_observation"] < fc["lower"] < fc["median"] < fc["upper"]
    assert fc["p_within_horizon"] > 0.9 and fc["n_failed"] == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a short horizon: the upper quantile is not reached, so it is null, not a guess
    short = validated(run("forecast", fit, "--threshold", "Hb<7", "--horizon", "7d", "--json"),
                      "forecast")  # fmt: skip
    assert short["upper"] is None and short["p_within_horizon"] < 0.5
    text = run("forecast", fit, "--threshold", "Hb < 7")
    assert text.exit_code == 0 and "research use" in text.output
    no_identifier(res.output, out.output, fit.read_text())


def test_calibrate_a_file_directly_keeps_nothing_identifying(stored: dict[str, Any]) -> None:
    fit = stored["dir"] / "fit-map.json"
    res = run("calibrate", "marrow_failure_hb", "--labs", stored["bundle"], "--method", "map",
              "--out", fit, "--json")  # fmt: skip
    doc = validated(res, "calibrate")
    assert doc["temporary_patient"] and doc["patient"].startswith("T")
    assert doc["patient"] != stored["patient"]
    stored_fit = json.loads(fit.read_text())
    assert stored_fit["temporary_patient"] is True and stored_fit["draws"] is None
    assert stored_fit["label"].startswith("research use")
    fc = validated(run("forecast", fit, "--threshold", "Hb<7", "--json"), "forecast")
    assert fc["n_draws"] == 1 and fc["lower"] == fc["median"] == fc["upper"]
    no_identifier(res.output, fit.read_text())


def test_forecasts_are_kept_in_the_patients_history(stored: dict[str, Any]) -> None:
    from hemolab.store import Store

    d, who = stored["dir"], stored["patient"]
    fit = d / "fit-history.json"
    args = ("--store", stored["store"], "--patient", who)
    assert run("calibrate", "marrow_failure_hb", *args, "--method", "map", "--out", fit
               ).exit_code == 0  # fmt: skip
    first = validated(run("forecast", fit, "--threshold", "Hb<7", "--store", stored["store"],
                          "--json"), "forecast")  # fmt: skip
    assert len(first["history"]) == 1 and first["history"][0]["median"] == first["median"]
    second = validated(run("forecast", fit, "--threshold", "Hb<7", "--store", stored["store"],
                           "--json"), "forecast")  # fmt: skip
    assert len(second["history"]) == 2
    assert second["history"][0]["fit_sha256"] == second["history"][1]["fit_sha256"]
    text = run("forecast", fit, "--threshold", "Hb<7", "--store", stored["store"])
    assert text.exit_code == 0 and "forecast history of" in text.output
    with Store(stored["store"]) as st:
        actions = [a["action"] for a in st.audit_trail(who)]
    assert actions.count("forecast") == 3 and "calibrate" in actions
    temp = d / "fit-temp.json"
    assert run("calibrate", "marrow_failure_hb", "--labs", stored["bundle"], "--method", "map",
               "--out", temp).exit_code == 0  # fmt: skip
    bad(run("forecast", temp, "--threshold", "Hb<7", "--store", stored["store"]),
        "temporary pseudonym")  # fmt: skip
    # a store that does not hold the fit's patient: refused before anything is recorded
    from hemolab.experiments import ExperimentStore

    other = d / "other-store"
    Store(other).close()
    bad(run("forecast", fit, "--threshold", "Hb<7", "--store", other), f"no patient {who!r}")
    assert not (other / "experiments.duckdb").exists() or not ExperimentStore(other).list()
    bad(run("forecast", fit, "--threshold", "Hb<7", "--store", d / "nowhere"),
        "is not a hemolab store")  # fmt: skip
    assert not (d / "nowhere").exists()


def test_a_dosing_history_from_a_file_joins_the_labs_clock(
    stored: dict[str, Any], tmp_path: Path
) -> None:
    # a red-cell top-up of 1.5 g/dL ten days after the fourth CBC (2026-08-14), as a dose into
    # the youngest red-cell compartment, given with date-times like the labs
    events = tmp_path / "events.csv"
    events.write_text(f"ID,DATETIME,EVID,AMT,CMT\n{MRN},2026-08-14T10:30:00Z,1,1.5,Hb1\n")
    with_dose, without = tmp_path / "with.json", tmp_path / "without.json"
    res = run("calibrate", "marrow_failure_hb", "--labs", stored["bundle"], "--events", events,
              "--method", "map", "--out", with_dose, "--json")  # fmt: skip
    validated(res, "calibrate")
    assert run("calibrate", "marrow_failure_hb", "--labs", stored["bundle"], "--method", "map",
               "--out", without).exit_code == 0  # fmt: skip
    doc = json.loads(with_dose.read_text())
    (dose,) = doc["events"]
    assert "DATETIME" not in dose and dose["ID"] == 1
    # May 4 08:30 to Aug 14 10:30 is 102 days and 2 hours, on the labs' clock
    assert dose["TIME"] == pytest.approx(102 + 2 / 24, abs=1e-9)
    # the fit explains part of the late Hb by the top-up: a faster underlying failure
    k_with = doc["estimate"]["kfail"]
    k_without = json.loads(without.read_text())["estimate"]["kfail"]
    assert k_with > k_without
    no_identifier(res.output, with_dose.read_text())
    numeric = tmp_path / "numeric.csv"
    numeric.write_text(f"ID,TIME,EVID,AMT,CMT\n{MRN},100,1,1.5,Hb1\n")
    bad(run("calibrate", "marrow_failure_hb", "--labs", stored["bundle"], "--events", numeric,
            "--out", tmp_path / "x.json"), "different clocks")  # fmt: skip
    bad(run("calibrate", "marrow_failure_hb", "--store", stored["store"], "--patient",
            stored["patient"], "--events", events, "--out", tmp_path / "x.json"),
        "--events goes with --labs")  # fmt: skip


@pytest.mark.slow
def test_calibrate_with_nuts_writes_draws_and_diagnostics(stored: dict[str, Any]) -> None:
    fit = stored["dir"] / "fit-nuts.json"
    res = run("calibrate", "marrow_failure_hb", "--store", stored["store"], "--patient",
              stored["patient"], "--chains", "2", "--warmup", "300", "--draws", "300",
              "--out", fit, "--json")  # fmt: skip
    doc = validated(res, "calibrate")
    nuts = doc["diagnostics"]["nuts"]
    assert nuts["divergences"] == 0 and max(nuts["rhat"].values()) < 1.05
    assert len(json.loads(fit.read_text())["draws"]) == 600
    fc = validated(run("forecast", fit, "--threshold", "Hb<7", "--draws", "200", "--json"),
                   "forecast")  # fmt: skip
    assert fc["n_draws"] == 200 and fc["lower"] < fc["median"] < fc["upper"]


def bad(result: Result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for f in fragments:
        assert f in result.output, (f, result.output)
    no_identifier(result.output)


def test_bad_calibrate_and_forecast_input_is_refused_clearly(
    stored: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "fit.json"
    bad(run("calibrate", "marrow_failure_hb", "--out", out), "either --labs FILE or --store")
    both = ("--labs", stored["bundle"], "--store", stored["store"], "--patient", stored["patient"])
    bad(run("calibrate", "marrow_failure_hb", *both, "--out", out), "either --labs")
    bad(run("calibrate", "marrow_failure_hb", "--store", stored["store"], "--patient",
            "P0000000000", "--out", out), "no patient 'P0000000000'")  # fmt: skip
    bad(run("calibrate", "marrow_failure_hb", "--labs", stored["bundle"], "--method", "mcmc",
            "--out", out), "--method must be one of map, laplace, nuts")  # fmt: skip
    bad(run("calibrate", "friberg_docetaxel", "--labs", stored["bundle"], "--method", "map",
            "--out", out), "no lab value is an observable of friberg_docetaxel")  # fmt: skip
    assert not out.exists()
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    bad(run("forecast", garbage, "--threshold", "Hb<7"), "'garbage.json' is not a JSON document")
    bad(run("forecast", tmp_path / "none.json", "--threshold", "Hb<7"), "does not exist")
    fit = tmp_path / "ok.json"
    assert run("calibrate", "marrow_failure_hb", "--labs", stored["bundle"], "--method", "map",
               "--out", fit).exit_code == 0  # fmt: skip
    bad(run("forecast", fit, "--threshold", "ANC<0.5"), "threshold on 'ANC'")
    bad(run("forecast", fit, "--threshold", "Hb<<7"), "threshold")
    bad(run("forecast", fit, "--threshold", "Hb<7", "--horizon", "soon"), "cannot read duration")
    doc = json.loads(fit.read_text())
    doc["model_hash"] = "0" * 16
    fit.write_text(json.dumps(doc))
    bad(run("forecast", fit, "--threshold", "Hb<7"), "has changed since the fit was made")
