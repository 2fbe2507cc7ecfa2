"""The command line, in-process (Typer's CliRunner: JAX must not fork).

Flags and ``--json`` outputs are a contract: every ``--json`` document is validated against
its committed JSON Schema (``hemolab/schemas/``), and bad input exits with code 2 and one
``error:`` line (no traceback).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner, Result

import hemolab as hl
from hemolab.cli import app
from hemolab.cli._schemas import load_schema, schema_names

RESULT_COLUMNS = [
    "run_id",
    "scenario",
    "patient_id",
    "replicate",
    "occasion",
    "time",
    "variable",
    "value",
    "unit",
    "kind",
    "status",
]

# 100 mg/m² docetaxel as a 1-h infusion (BSA 1.8 m²: 180 mg), ANC observed on a few days; the
# observation at 182.4 h is day 7.6, the cycle-1 nadir of MODELS.md §1 target 2.
DOCETAXEL_CSV = """\
ID,TIME,EVID,AMT,AMT_UNIT,CMT,DUR,BSA,DVID
1,0,1,100,mg/m2,A1,1,1.8,.
1,24,0,.,.,.,.,1.8,ANC
1,120,0,.,.,.,.,1.8,ANC
1,182.4,0,.,.,.,.,1.8,ANC
1,300,0,.,.,.,.,1.8,ANC
"""


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    return CliRunner()


def run(runner: CliRunner, *args: str | Path) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def validated(result: Result, schema: str) -> dict[str, Any]:
    """The command succeeded and printed one JSON document valid against ``schema``."""
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    jsonschema.Draft202012Validator(load_schema(schema)).validate(doc)
    return doc


def assert_bad_input(result: Result, *fragments: str) -> str:
    """Exit code 2, one ``error:`` message naming what was wrong, no traceback."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    err = result.stderr
    assert "Traceback" not in result.output and "Traceback" not in err
    assert err.lstrip().startswith("error:") and err.count("error:") == 1, err
    flat = " ".join(err.split())
    for fragment in fragments:
        assert fragment in flat, (fragment, err)
    return flat


# --- schemas --------------------------------------------------------------------------------


def test_schemas_ship_for_every_json_command() -> None:
    assert schema_names() == [
        "audit-report",
        "audit-verify",
        "calibrate",
        "demo",
        "experiments-list",
        "experiments-rerun",
        "experiments-show",
        "forecast",
        "import",
        "models",
        "patients-delete",
        "report",
        "run",
        "sbml-suite",
        "search",
        "simulate",
        "simulate-sedml",
        "store-backup",
        "store-restore",
        "users-list",
    ]
    for name in schema_names():
        schema = load_schema(name)
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert load_schema(f"{name}.schema.json") == schema
    available = "available: audit-report, audit-verify, calibrate, demo, experiments-list"
    with pytest.raises(hl.HemolabError, match=available):
        load_schema("no-such-command")


# --- models ---------------------------------------------------------------------------------


def test_models_json(runner: CliRunner) -> None:
    doc = validated(run(runner, "models", "--json"), "models")
    names = [m["name"] for m in doc["models"]]
    assert {"friberg_docetaxel", "mackey_glass"} <= set(names)
    assert names == sorted(names) == hl.list_models()
    mg = next(m for m in doc["models"] if m["name"] == "mackey_glass")
    assert mg["time_unit"] == "d" and mg["has_delays"] is True
    assert [p["name"] for p in mg["parameters"]] == ["beta", "gamma", "n", "tau", "x0"]
    assert mg["parameters"][0]["bounds"] == [0, "inf"]
    fr = next(m for m in doc["models"] if m["name"] == "friberg_docetaxel")
    assert fr["covariates"] == [{"name": "BSA", "default": 1.8, "unit": "m2"}]
    assert {"name": "ANC", "unit": "10*9/L"} in fr["observables"]
    assert "doi:10.1200/JCO.2002.02.140" in fr["citation"]


def test_models_json_schema_catches_drift(runner: CliRunner) -> None:
    doc = json.loads(run(runner, "models", "--json").stdout)
    validator = jsonschema.Draft202012Validator(load_schema("models"))
    doc["models"][0]["surprise"] = 1
    assert not validator.is_valid(doc)
    del doc["models"][0]["surprise"]
    del doc["models"][0]["citation"]
    assert not validator.is_valid(doc)


def test_models_table(runner: CliRunner) -> None:
    result = run(runner, "models")
    assert result.exit_code == 0
    assert "friberg_docetaxel" in result.stdout and "mackey_glass" in result.stdout


# --- simulate -------------------------------------------------------------------------------


def test_simulate_mackey_glass_json_and_parquet(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "mg.parquet"
    args = ["simulate", "mackey_glass", "--t-end", "50d", "--dt", "1d", "--out", out, "--json"]
    doc = validated(run(runner, *args), "simulate")
    assert doc["model"] == "mackey_glass" and doc["time_unit"] == "d"
    assert doc["n_patients"] == 1 and doc["n_times"] == 51
    assert doc["status"]["ok"] == 1 and doc["out"] == str(out)
    assert set(doc["variables"]) == {"x", "cells"}
    table = pq.read_table(out)
    assert table.column_names == RESULT_COLUMNS
    x = table.filter(pc.equal(table.column("variable"), "x"))
    assert x.column("time").to_pylist() == [float(t) for t in range(51)]
    assert x.column("value")[0].as_py() == 0.5  # the constant history x0
    assert math.isclose(doc["variables"]["x"]["max"], max(x.column("value").to_pylist()))
    meta = hl.read_metadata(out)
    assert meta["hemolab.model"] == "mackey_glass"
    assert meta["hemolab.model_hash"] == doc["model_hash"]
    assert meta["hemolab.time_unit"] == "d"
    assert meta["hemolab.version"] == hl.__version__
    assert "method-of-steps" in meta["hemolab.solver"]
    assert not (tmp_path / "mg.events.parquet").exists()  # no dataset, no events

    # --param changes the result
    out2 = tmp_path / "mg_beta.parquet"
    doc2 = validated(
        run(runner, *args[:-3], "--out", out2, "--json", "--param", "beta=0.25"), "simulate"
    )
    assert doc2["model_hash"] == doc["model_hash"]
    x2 = pq.read_table(out2).to_pandas().query("variable == 'x'")["value"].to_numpy()
    assert x2[0] == 0.5 and np.max(np.abs(x2 - np.asarray(x.column("value")))) > 1e-2


def test_simulate_friberg_with_an_events_file(runner: CliRunner, tmp_path: Path) -> None:
    events = tmp_path / "docetaxel.csv"
    events.write_text(DOCETAXEL_CSV)
    out = tmp_path / "res" / "docetaxel.parquet"
    args = ["simulate", "friberg_docetaxel", "--events", events, "--out", out]
    doc = validated(run(runner, *args, "--t-end", "21d", "--dt", "1d", "--json"), "simulate")
    # the grid 0:24:504 h plus the observations off the grid (182.4 h, 300 h)
    assert doc["time_unit"] == "h" and doc["n_times"] == 22 + 2
    df = pq.read_table(out).to_pandas()
    anc = df[df["variable"] == "ANC"].set_index("time")["value"]
    assert {24.0, 120.0, 182.4, 300.0} <= set(anc.index)
    assert anc[182.4] == pytest.approx(0.90, rel=0.03)  # MODELS.md §1 target 2
    assert anc[0.0] == pytest.approx(5.05)
    ev = pq.read_table(out.with_name("docetaxel.events.parquet")).to_pandas()
    assert ev["amount"].tolist() == [pytest.approx(180.0)]  # 100 mg/m² × 1.8 m²
    assert ev["kind"].tolist() == ["infusion"] and ev["unit"].tolist() == ["mg"]

    # the human summary: model, patients, a table of variables, the file written
    result = run(runner, *args)
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "friberg_docetaxel: 1 patient(s), 4 output times (h), status ok=1" in text
    assert "ANC" in text and "Cdoc" in text and f"written: {out}" in text


def test_simulate_shows_dataset_warnings_as_one_line(runner: CliRunner, tmp_path: Path) -> None:
    # an observation at the dose time is a trough: the rule that applied is shown
    events = tmp_path / "tie.csv"
    events.write_text("ID,TIME,EVID,AMT,CMT\n1,0,0,.,.\n1,0,1,100,A1\n1,24,0,.,.\n")
    result = run(
        runner, "simulate", "friberg_docetaxel", "--events", events, "--out",
        tmp_path / "t.parquet", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stderr.count("warning:") == 1 and "pre-dose" in result.stderr
    validated(result, "simulate")


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["simulate", "no_such_model", "--t-end", "5"], ["'no_such_model'", "mackey_glass"]),
        (["simulate", "mackey_glass", "--events", "missing.csv"], ["missing.csv", "not exist"]),
        (["simulate", "mackey_glass", "--t-end", "5", "--param", "beta"], ["NAME=VALUE"]),
        (["simulate", "mackey_glass", "--t-end", "5", "--param", "beta=abc"], ["not a number"]),
        (["simulate", "mackey_glass", "--t-end", "5", "--param", "beta=-1"], ["bounds"]),
        (["simulate", "mackey_glass", "--t-end", "5", "--param", "beta=nan"], ["finite"]),
        (["simulate", "mackey_glass", "--t-end", "5", "--param", "nope=1"], ["nope"]),
        (["simulate", "mackey_glass", "--t-end", "garbage"], ["'garbage'", "600h"]),
        (["simulate", "mackey_glass", "--t-end", "5", "--dt", "0"], ["dt must be > 0"]),
        (["simulate", "mackey_glass", "--t-end", "5", "--rtol", "0"], ["--rtol"]),
        (["simulate", "mackey_glass"], ["--t-end"]),
    ],
)
def test_simulate_bad_input_exits_2_with_one_message(
    runner: CliRunner, tmp_path: Path, args: list[str], fragments: list[str]
) -> None:
    out = tmp_path / "x.parquet"
    assert_bad_input(run(runner, *args, "--out", out), *fragments)
    assert not out.exists()


def test_simulate_bad_out_and_empty_events(runner: CliRunner, tmp_path: Path) -> None:
    base = ["simulate", "mackey_glass", "--t-end", "5"]
    assert_bad_input(run(runner, *base, "--out", tmp_path / "x.csv"), "*.parquet")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    result = run(runner, "simulate", "friberg_docetaxel", "--events", empty, "--out",
                 tmp_path / "x.parquet")  # fmt: skip
    assert_bad_input(result, "empty")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert_bad_input(run(runner, *base, "--out", blocker / "x.parquet"), "cannot write")


def test_simulate_dataset_errors_name_row_and_column(runner: CliRunner, tmp_path: Path) -> None:
    events = tmp_path / "bad.csv"
    events.write_text(
        "ID,TIME,EVID,AMT,CMT,DVID\n"
        "1,0,1,100,A9,.\n"  # row 1: no state A9
        "1,24,0,.,.,Hb\n"  # row 2: no observable Hb
        "1,12,7,.,.,.\n"  # row 3: rxode2's EVID, and time goes back
    )
    result = run(runner, "simulate", "friberg_docetaxel", "--events", events, "--out",
                 tmp_path / "x.parquet")  # fmt: skip
    flat = assert_bad_input(
        result,
        "problems in the event dataset",
        "bad.csv, row 1, column CMT",
        "bad.csv, row 2, column DVID",
        "bad.csv, row 3, column EVID",
    )
    assert "rxode2" in flat


# --- show, demo -----------------------------------------------------------------------------


def test_show_prints_the_citation(runner: CliRunner) -> None:
    result = run(runner, "show", "friberg_docetaxel")
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "citation: Friberg LE, Henningsson A" in text
    assert "doi:10.1200/JCO.2002.02.140" in text
    assert "dCirc/dt" in text and "observable ANC" in text
    assert_bad_input(run(runner, "show", "no_such_model"), "no_such_model")


def _check_interventions(iv: dict, out: Path) -> None:
    """Issue 8's story: the diseases, the too-potent limit, the search, every step stored."""
    samples = iv["samples"]
    a0, d0 = (samples["untreated"]["samples"][w]["Hb"] for w in "AD")
    a1, d1 = (samples["treated"]["samples"][w]["Hb"] for w in "AD")
    assert a0["day 89"] > 17 and d0["day 89"] < 9  # too many red cells; red cells destroyed
    assert samples["untreated"]["samples"]["A"]["ANC"]["day 89"] < 2  # white cells destroyed
    assert 12 < a1["day 120"] < a0["day 120"] and d0["day 120"] < 12 < d1["day 120"]
    assert samples["diseases_cancel_while_mixing"]
    tp = iv["too_potent"]
    assert tp["broken"] == ["maximum exposure: Cdoc > 6 umol/L"]
    exposure = tp["limits"][0]
    assert (
        exposure["probability"] == 1.0 and 0 < exposure["broken_from"] < 1.0
    )  # in the 1-h infusion
    assert exposure["exceeded_by"] > 0
    pos, neg = iv["rejection"]["O+"]["rejection"], iv["rejection"]["O-"]["rejection"]
    # O+ cells: every D-negative patient (about 15 %) at risk, none haemolysed; O-: nobody
    assert pos["n_incompatible"] == sum(pos["blood_groups"][g] for g in ("O-", "A-", "B-", "AB-"))
    assert 0.08 < pos["probability"] < 0.25 and pos["n_haemolytic"] == 0
    assert neg["n_incompatible"] == 0 and neg["n_patients"] == 200
    assert iv["rejection"]["O+"]["limits"][0]["met"] is False
    se, ch = iv["search"], iv["chosen"]
    assert se["n_patients"] == 1000 and se["n_feasible"] >= 1 and se["best"] is not None
    assert ch["safe"] and [p["name"] for p in ch["phases"]] == ["conscious", "deep sedation",
                                                                "follow-up"]  # fmt: skip
    assert [p["end"] for p in ch["phases"]][:2] == [48.0, 120.0]  # two days, then three
    kinds = [e["kind"] for e in iv["experiments"]]  # the showcase patient's two come first
    assert kinds == ["calibrate", "forecast", "simulate", "simulate", "protocol", "protocol",
                     "protocol", "search", "protocol"]  # fmt: skip
    assert {e["status"] for e in iv["experiments"]} == {"complete"}
    ids = {e["id"] for e in iv["experiments"]}
    assert {samples["treated"]["experiment"], tp["experiment"], se["experiment"],
            ch["experiment"]} <= ids  # fmt: skip
    assert Path(iv["store"]) == out / "interventions" / "experiments"
    import io

    from rich.console import Console

    from hemolab.cli._demo import _print_interventions

    buf = io.StringIO()
    _print_interventions(Console(file=buf, width=120), iv)
    text = " ".join(buf.getvalue().split())
    assert "Do the diseases cancel? Day 120: both within 12-17.5 g/dL" in text
    assert "Cdoc > 6 umol/L: P = 1.00 (allowed 0.00) BROKEN, first at" in text
    assert "Rejection risk, Sample D's anaemia, two emergency units of group O+" in text
    assert text.count("complete") == 9


def _check_report(doc: dict, out: Path) -> None:
    """The story's report: the patient's forecast and fit, then every intervention, each
    with at least one figure, in that order, in one file that needs no network."""
    import re

    rep = doc["report"]
    path = Path(rep["path"])
    assert path == out / "report.html" and path.is_file() and Path(doc["files"][9]) == path
    assert rep["bytes"] == path.stat().st_size
    sc = doc["showcase"]["experiments"]
    stored = [e["id"] for e in doc["interventions"]["experiments"]]
    assert rep["experiments"][:2] == [sc["forecast"], sc["calibrate"]]
    assert sorted(rep["experiments"]) == sorted(stored)  # every experiment of the story
    text = path.read_text(encoding="utf-8")
    keys = re.findall(r'class="figure-data" data-figure="([^"]+)"', text)
    assert len(keys) == rep["n_figures"]
    first = [next(i for i, k in enumerate(keys) if k.startswith(e)) for e in rep["experiments"]]
    assert first == sorted(first)  # a figure per experiment, in story order
    assert f"{sc['forecast']}-hb-forecast" in keys and f"{sc['forecast']}-time-to-threshold" in keys
    assert not re.search(r'<script[^>]+src=|<link[^>]+href="?https?:', text)
    assert "MRN" not in text and "Lovelace" not in text


def _check_serve(doc: dict, out: Path) -> None:
    """The story's store serves the patient to a demo user whose password is in a file of
    its own (owner-only), never in the summary."""
    from hemolab.store import Store
    from hemolab.web import UserStore

    sv = doc["serve"]
    store = out / "interventions" / "experiments"
    assert sv["command"] == f"hemolab serve --store {store}"
    secret = Path(sv["password_file"])
    assert secret.stat().st_mode & 0o077 == 0
    password = secret.read_text().split("password: ")[-1].strip()
    assert len(password) >= 12 and password not in json.dumps(doc)
    users = UserStore(store)
    assert users.verify("demo", password) is not None
    assert users.granted("demo") == [doc["showcase"]["patient"]]
    with Store(store) as st:
        assert st.is_patient(doc["showcase"]["patient"])


@pytest.mark.slow
def test_demo_json(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    doc = validated(run(runner, "demo", "--json", "--out", out), "demo")
    files = [Path(f) for f in doc["files"]]
    assert [f.name for f in files[:4]] == ["results.parquet", "anc.png", "summary.json",
                                           "library.png"]  # fmt: skip
    assert all(f.parent == out and f.is_file() for f in files[:4])
    assert [f.name for f in files[4:]] == ["patient_bundle.json", "fit.json", "hb_forecast.png",
                                           "goodness_of_fit.png", "samples.png",
                                           "report.html"]  # fmt: skip
    assert all(f.parent == out / "showcase" and f.is_file() for f in files[4:8])
    assert files[8].parent == out / "interventions" and files[8].is_file()
    _check_interventions(doc["interventions"], out)
    _check_report(doc, out)
    _check_serve(doc, out)
    # what `make demo` prints at its end: the report to open, and how to serve the story
    import io

    from rich.console import Console

    from hemolab.cli._demo import _print

    buf = io.StringIO()
    _print(Console(file=buf, width=400), doc)
    said = " ".join(buf.getvalue().split())
    password = Path(doc["serve"]["password_file"]).read_text().split("password: ")[-1].strip()
    assert (out / "report.html").resolve().as_uri() in said
    assert f".venv/bin/hemolab serve --store {out / 'interventions' / 'experiments'}" in said
    assert f"sign in as demo / {password}" in said
    # the showcase: Hb < 7 g/dL forecast after six monthly CBCs, the truth inside the posterior
    sc = doc["showcase"]
    assert sc["n_observations"] == 7 and sc["divergences"] == 0 and sc["max_rhat"] < 1.01
    assert sc["t_last_observation"] < sc["lower"] < sc["median"] < sc["upper"]
    for name, (lo, hi) in sc["posterior"].items():
        assert lo < sc["truth"][name] < hi, name
    for png in files[6:9]:  # forecast, goodness of fit, samples
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "MRN" not in files[5].read_text()
    for png in (files[1], files[3]):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(files[2].read_text()) == doc
    assert doc["status"] == "ok" and len(doc["cycles"]) == 4
    first = doc["cycles"][0]
    # MODELS.md §1 target 2: ANC nadir 0.90 ×10⁹/L at day 7.6 (derived; ±3 %)
    assert first["nadir_anc"] == pytest.approx(0.90, rel=0.03)
    assert first["nadir_day"] == pytest.approx(7.6, rel=0.03)
    assert first["ctcae_grade"] == 3
    # the population: 1,000 virtual patients with the Kloft IIV, in one long result file
    pop = doc["population"]
    assert pop["n_patients"] == 1000 and pop["status"] == {"ok": 1000}
    assert pop["omega"]["parameters"] == ["Circ0", "MTT", "Slope"]
    assert 1.4 <= pop["bsa_m2"]["min"] < pop["bsa_m2"]["max"] <= 2.4
    table = pq.read_table(files[0])
    assert table.column_names == RESULT_COLUMNS
    ids = pc.unique(table.column("patient_id")).to_pylist()
    assert len(ids) == 1000 and ids[0] == "V0000000" and ids[-1] == "V0000999"
    anc = table.filter(pc.equal(table.column("variable").cast(pa.string()), "ANC"))
    by_patient = anc.group_by("patient_id").aggregate([("value", "min")])
    nadirs = np.asarray(by_patient.column("value_min"))
    # the printed incidence is the fraction of patients whose ANC fell below the CTCAE cut-offs
    any_cycle = pop["any_cycle"]
    assert any_cycle["grade3_or_4_pct"] == pytest.approx(100 * np.mean(nadirs < 1.0))
    assert any_cycle["grade4_pct"] == pytest.approx(100 * np.mean(nadirs < 0.5))
    c1 = pop["cycles"][0]
    assert c1["nadir_q05"] < c1["nadir_median"] < c1["nadir_q95"]
    assert 6.5 < c1["nadir_day_median"] < 9.0  # nadir ≈ MTT + a few days (MODELS.md §1)
    # every other library model ran once under its typical regimen
    names = [r["model"] for r in doc["library"]]
    assert names == [n for n in hl.list_models() if not n.startswith("friberg_docetaxel")]
    assert all(r["status"] == "ok" for r in doc["library"])


# --- simulate --population --------------------------------------------------------------------


def test_show_prints_variability_units_and_experimental_status(runner: CliRunner) -> None:
    text = " ".join(run(runner, "show", "friberg_docetaxel").stdout.split())
    assert "covariate BSA [m2], default 1.8" in text
    assert "observable Cdoc = Cp [umol/L]" in text
    assert "log-normal IIV, diagonal omega on Circ0, MTT, Slope" in text
    assert "residual error of ANC: exponential, SD 0.424 on the log scale" in text
    assert "25.7" in text  # CV % of Circ0: sqrt(exp(0.064) - 1)
    text = " ".join(run(runner, "show", "colijn_mackey").stdout.split())
    assert "Experimental" in text and "none published" in text


def test_simulate_population_writes_one_long_file(runner: CliRunner, tmp_path: Path) -> None:
    events = tmp_path / "regimen.csv"
    events.write_text("ID,TIME,EVID,CMT,AMT,AMT_UNIT,DUR\n1,0,1,A1,100,mg/m2,1\n")
    out = tmp_path / "pop.parquet"
    args = ["simulate", "friberg_docetaxel", "--out", out, "--events", events, "--t-end", "10d"]
    args += ["--dt", "1d", "--population", "40", "--seed", "7", "--param", "BSA=2.0"]
    doc = validated(
        run(runner, *args, "--json", "--residual-error", "--chunk-size", "16"), "simulate"
    )
    assert doc["n_patients"] == 40 and doc["status"]["ok"] == 40
    assert doc["population"]["seed"] == 7 and doc["population"]["chunks"] == 3
    assert doc["variables"]["ANC_obs"]["kind"] == "derived"
    table = pq.read_table(out)
    ids = pc.unique(table.column("patient_id")).to_pylist()
    assert ids == [f"V{i:07d}" for i in range(40)]
    assert json.loads(pq.read_schema(out).metadata[b"hemolab.seed"]) == 7
    ev = pq.read_table(out.with_name("pop.events.parquet")).to_pandas()
    np.testing.assert_allclose(ev["amount"], 200.0)  # 100 mg/m2 × BSA 2.0
    again = validated(run(runner, *args, "--json", "--residual-error"), "simulate")
    assert again["variables"]["ANC"] == doc["variables"]["ANC"]  # seeded: same population
    assert again["variables"]["ANC_obs"] == doc["variables"]["ANC_obs"]


def test_simulate_outputs_selects_variables(runner: CliRunner, tmp_path: Path) -> None:
    """--outputs writes the named variables only, with the values of the full run."""
    base = ["simulate", "mackey_glass", "--t-end", "30d", "--dt", "1d", "--json"]
    full = validated(run(runner, *base, "--out", tmp_path / "a.parquet"), "simulate")
    part = validated(
        run(runner, *base, "--out", tmp_path / "b.parquet", "--outputs", "cells"), "simulate"
    )
    assert set(part["variables"]) == {"cells"}
    assert part["variables"]["cells"] == full["variables"]["cells"]
    table = pq.read_table(tmp_path / "b.parquet")
    assert pc.unique(table.column("variable")).to_pylist() == ["cells"]
    bad = run(runner, *base, "--out", tmp_path / "c.parquet", "--outputs", "x,platelets")
    assert_bad_input(bad, "no variable 'platelets'")
    assert not (tmp_path / "c.parquet").exists()


def test_simulate_population_outputs(runner: CliRunner, tmp_path: Path) -> None:
    events = tmp_path / "regimen.csv"
    events.write_text("ID,TIME,EVID,CMT,AMT,AMT_UNIT,DUR\n1,0,1,A1,100,mg/m2,1\n")
    args = ["simulate", "friberg_docetaxel", "--events", events, "--t-end", "5d", "--dt", "1d"]
    args += ["--population", "6", "--seed", "2", "--json"]
    out = tmp_path / "p.parquet"
    doc = validated(run(runner, *args, "--out", out, "--outputs", "ANC,Circ"), "simulate")
    assert set(doc["variables"]) == {"ANC", "Circ"} and doc["status"]["ok"] == 6
    assert set(pc.unique(pq.read_table(out).column("variable")).to_pylist()) == {"ANC", "Circ"}
    bad = run(
        runner, *args, "--out", tmp_path / "q.parquet", "--outputs", "Circ", "--residual-error"
    )
    assert_bad_input(bad, "residual error is added to ANC: include it in outputs")


def test_simulate_population_with_a_user_omega(runner: CliRunner, tmp_path: Path) -> None:
    omega = tmp_path / "omega.csv"
    omega.write_text(",x0\nx0,0.04\n")
    out = tmp_path / "mg.parquet"
    doc = validated(
        run(runner, "simulate", "mackey_glass", "--out", out, "--t-end", "20d", "--dt", "1d",
            "--population", "8", "--seed", "1", "--omega", omega, "--json"),
        "simulate",
    )  # fmt: skip
    assert doc["population"]["omega"]["parameters"] == ["x0"]
    x0 = doc["variables"]["x"]
    assert x0["min"] < 0.5 < x0["max"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--population", "5"], "--population needs --seed"),
        (["--seed", "3"], "need --population N"),
        (["--population", "0", "--seed", "1"], "--population must be >= 1"),
        (["--population", "5", "--seed", "1", "--chunk-size", "0"], "--chunk-size must be >= 1"),
        (["--population", "5", "--seed", "1", "--omega", "missing.csv"], "does not exist"),
    ],
)
def test_simulate_population_bad_options(runner: CliRunner, tmp_path: Path, extra, message):
    out = tmp_path / "x.parquet"
    result = run(runner, "simulate", "friberg_docetaxel", "--out", out, "--t-end", "1d", *extra)
    assert_bad_input(result, message)
    assert not out.exists()


def test_population_of_a_model_without_published_iiv_refuses(runner: CliRunner, tmp_path):
    result = run(runner, "simulate", "michor_cml", "--out", tmp_path / "m.parquet", "--t-end",
                 "10d", "--population", "5", "--seed", "1")  # fmt: skip
    assert_bad_input(result, "declares no inter-individual variability")
