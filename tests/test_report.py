"""``hemolab report``: the files are rendered and read back, never checked by eye.

A module fixture records a few small experiments with the commands a user types (in-process,
Typer's CliRunner: JAX must not fork): a simulated population (fan chart), a handful of
patients (trajectories), a protocol run and a search; plus a failed and a running one made
with the store's API. The HTML is parsed (no external ``src``/``href``, plotly.js inlined
once, the label at the top, every figure's plotly JSON checked against the result tables and
its provenance against the record); PNGs decoded; the PDF's pages counted.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner, Result

from hemolab.cli import app
from hemolab.cli._schemas import load_schema
from hemolab.experiments import ExperimentError, ExperimentStore
from hemolab.reports import LABEL, ReportError, make_report, write_report
from hemolab.reports._print import PNG_DPI, PNG_SIZE_IN, to_png

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(runner: CliRunner, *args: str | Path) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def ok_json(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, runner: CliRunner) -> dict[str, Any]:
    """A store with one experiment of each kind (small: seconds each), a failed and a
    running one."""
    root = tmp_path_factory.mktemp("report")
    store = root / "store"
    ids: dict[str, str] = {}
    sim = ["simulate", "friberg_docetaxel", "--t-end", "10d", "--dt", "1d", "--seed", "1"]
    ids["population"] = ok_json(
        run(runner, *sim, "--population", "12", "--out", root / "pop.parquet",
            "--store", store, "--json")
    )["experiment"]  # fmt: skip
    ids["few"] = ok_json(
        run(runner, *sim, "--population", "3", "--out", root / "few.parquet",
            "--store", store, "--json")
    )["experiment"]  # fmt: skip
    ids["protocol"] = ok_json(
        run(runner, "run", EXAMPLES / "docetaxel-protocol.toml", "--population", "12",
            "--seed", "3", "--store", store, "--json")
    )["experiment"]  # fmt: skip
    space = (EXAMPLES / "five-day-search.toml").read_text()
    space = space.replace("budget = 16", "budget = 5").replace(
        '"five-day-template.toml"', json.dumps(str(EXAMPLES / "five-day-template.toml"))
    )
    (root / "search.toml").write_text(space)
    found = run(runner, "search", root / "search.toml", "--population", "8", "--seed", "1",
                "--store", store, "--json")  # fmt: skip
    assert found.exit_code in (0, 1), found.output  # 1: nothing feasible (still recorded)
    ids["search"] = json.loads(found.stdout)["experiment"]
    ids.update(_patient(runner, root, store))
    st = ExperimentStore(store)
    failed = st.begin("simulate", label="a simulation that failed", spec={"command": "simulate"})
    failed.fail("DatasetError: events.csv row 3, column TIME: decreasing time")
    ids["failed"] = failed.id
    ids["running"] = st.begin("simulate", label="still running", spec={}).id
    return {"root": root, "store": store, "ids": ids, "records": {r.id: r for r in st.list()}}


def _patient(runner: CliRunner, root: Path, store: Path) -> dict[str, Any]:
    """The showcase patient imported into the same store, calibrated (Laplace: seconds) and
    forecast over 40 draws, both recorded as experiments."""
    from hemolab.cli._showcase import write_showcase_bundle

    bundle = write_showcase_bundle(root / "bundle.json")
    assert run(runner, "keygen", "--key-file", root / "key").exit_code == 0
    imp = ok_json(run(runner, "import", bundle, "--store", store, "--key-file", root / "key",
                      "--json"))  # fmt: skip
    who = imp["patients"][0]["pseudonym"]
    cal = ok_json(run(runner, "calibrate", "marrow_failure_hb", "--store", store, "--patient",
                      who, "--method", "laplace", "--seed", "5", "--out", root / "fit.json",
                      "--json"))  # fmt: skip
    fc = ok_json(run(runner, "forecast", root / "fit.json", "--threshold", "Hb<7", "--draws",
                     "40", "--seed", "9", "--store", store, "--json"))  # fmt: skip
    return {"calibrate": cal["experiment"], "forecast": fc["experiment"], "docs": (cal, fc),
            "patient": who}  # fmt: skip


@pytest.fixture(scope="module")
def story(lab: dict[str, Any]) -> dict[str, Any]:
    """One report of every kind, in a given order, with PNG and PDF versions."""
    ids = lab["ids"]
    order = [ids["forecast"], ids["calibrate"], ids["protocol"], ids["population"],
             ids["search"], ids["few"], ids["failed"]]  # fmt: skip
    out = lab["root"] / "story" / "report.html"
    out.parent.mkdir()
    path = write_report(lab["store"], order, out, png_dir=out.parent / "png",
                        pdf=out.parent / "report.pdf")  # fmt: skip
    text = path.read_text(encoding="utf-8")
    figures = _json_scripts(text, "figure-data")
    provenance = _json_scripts(text, "figure-provenance")
    return {"order": order, "out": out, "html": text, "figures": figures,
            "provenance": provenance, "report": make_report(lab["store"], order)}  # fmt: skip


def _json_scripts(text: str, cls: str) -> dict[str, Any]:
    pattern = rf'<script type="application/json" class="{cls}" data-figure="([^"]+)">(.*?)</script>'
    return {key: json.loads(body) for key, body in re.findall(pattern, text, flags=re.S)}


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str, str]] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.scripts += tag == "script"
        for name, value in attrs:
            if name in ("src", "href", "data", "srcset", "action") and value:
                self.links.append((tag, name, value))


def _traces(fig: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in fig["data"]}


def _figure(story: dict[str, Any], experiment: str, slug: str) -> dict[str, Any]:
    return story["figures"][f"{experiment}-{slug}"]


# --- the HTML file ----------------------------------------------------------------------


def test_html_is_one_self_contained_file_with_the_label(story: dict[str, Any]) -> None:
    from plotly.offline import get_plotlyjs

    text = story["html"]
    parser = _Links()
    parser.feed(text)
    external = [x for x in parser.links if re.match(r"(https?:)?//", x[2], flags=re.I)]
    assert external == []
    assert all(v.startswith("#") for _, _, v in parser.links)  # only links within the page
    assert text.count(get_plotlyjs()[:2000]) == 1  # plotly.js inlined once, no CDN
    body = text.index("<body>")
    assert text.index(LABEL, body) < text.index("<h1>", body)  # the label above everything
    assert LABEL == "research use — not for clinical decisions"
    # the experiments in the order given, each a section
    sections = [text.index(f'id="exp-{i}"') for i in story["order"]]
    assert sections == sorted(sections)
    assert len(story["figures"]) == len(story["report"].figures) >= 16
    assert set(story["figures"]) == set(story["provenance"])


def test_failed_experiment_gets_a_section_saying_so(story: dict[str, Any], lab: dict) -> None:
    text = story["html"]
    fid = lab["ids"]["failed"]
    start = text.index(f'id="exp-{fid}"')
    section = text[start : text.index("</section>", start)]
    assert 'data-status="failed"' in section
    assert "<strong>failed</strong>" in section and "decreasing time" in section
    assert 'class="figure-data"' not in section


def test_population_fan_chart_matches_the_result_table(story: dict, lab: dict) -> None:
    eid = lab["ids"]["population"]
    table = pd.read_parquet(lab["records"][eid].results["result.parquet"].path)
    anc = table[table["variable"] == "ANC"]
    fig = _figure(story, eid, "anc-trajectories")
    traces = _traces(fig)
    assert {"90 % band", "50 % band", "median", "90 % band (upper)"} <= set(traces)
    times = np.sort(anc["time"].unique())
    for t in traces.values():
        assert len(t["x"]) == len(t["y"]) == len(times)
    np.testing.assert_allclose(traces["median"]["x"], times / 24.0)  # hours shown as days
    grid = anc.pivot_table(index="patient_id", columns="time", values="value")
    np.testing.assert_allclose(traces["median"]["y"], grid.median(axis=0).to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(
        traces["90 % band"]["y"], grid.quantile(0.05, axis=0).to_numpy(), rtol=1e-12
    )
    timeline = _traces(_figure(story, eid, "anc-ctcae-timeline"))
    assert list(timeline) == [f"grade {g}" for g in range(5)]
    total = np.sum([t["y"] for t in timeline.values()], axis=0)
    np.testing.assert_allclose(total, 100.0)  # every patient has one grade at every time
    assert f"{eid}-anc-time-to-grade-3" in story["figures"]


def test_few_patients_are_drawn_one_line_each(story: dict, lab: dict) -> None:
    eid = lab["ids"]["few"]
    table = pd.read_parquet(lab["records"][eid].results["result.parquet"].path)
    anc = table[table["variable"] == "ANC"]
    traces = _traces(_figure(story, eid, "anc-trajectories"))
    assert set(traces) == set(anc["patient_id"])  # virtual ids (pseudonyms), never a source id
    for pid, t in traces.items():
        rows = anc[anc["patient_id"] == pid].sort_values("time")
        np.testing.assert_allclose(t["y"], rows["value"].to_numpy())


def test_protocol_figures_match_outcomes_and_bands(story: dict, lab: dict) -> None:
    eid = lab["ids"]["protocol"]
    results = lab["records"][eid].results
    bands = pd.read_parquet(results["bands.parquet"].path)
    outcomes = pd.read_parquet(results["outcomes.parquet"].path)
    band = _traces(_figure(story, eid, "anc-bands"))
    median = bands[(bands["variable"] == "ANC") & (bands["stat"] == "q50")].sort_values("time")
    assert {"90 % band", "median"} <= set(band)
    np.testing.assert_allclose(band["median"]["y"], median["value"].to_numpy())
    assert len(band["median"]["x"]) == len(median) == len(band["90 % band"]["x"])
    shapes = _figure(story, eid, "anc-bands")["layout"]["shapes"]
    assert any(s["type"] == "rect" and (s["y0"], s["y1"]) == (1.5, 8.0) for s in shapes)
    assert {s["y0"] for s in shapes if s["type"] == "line" and s.get("xref") == "paper"} == {
        0.5,
        1.0,
    }  # the limits' thresholds
    phases = _traces(_figure(story, eid, "phases"))
    assert phases["phases"]["y"] == ["cycles 1-2", "rest", "cycle 3 (reduced)"]
    assert phases["phases"]["x"] == [42.0, 14.0, 21.0]  # days
    assert phases["phases"]["base"] == [0.0, 42.0, 56.0]
    assert phases["doses"]["x"] == [0.0, 21.0, 56.0]
    limits = _traces(_figure(story, eid, "limits"))
    names = ["grade-4 neutropenia > 7 d", "grade-3 neutropenia"]
    assert limits["P(broken)"]["x"] == names
    ok = outcomes["status"] == "ok"
    expected = [float(outcomes.loc[ok, f"{n} violated"].mean()) for n in names]
    np.testing.assert_allclose(limits["P(broken)"]["y"], expected)
    assert limits["allowed"]["y"] == [0.10, 0.5]
    first = _traces(_figure(story, eid, "time-to-threshold"))
    assert list(first) == names
    n_first = int(outcomes.loc[ok, f"{names[1]} first"].notna().sum())
    assert first[names[1]]["y"][-1] == pytest.approx(100.0 * n_first / ok.sum())
    worst = _traces(_figure(story, eid, "worst-grades"))["ANC"]
    assert sum(worst["y"]) == pytest.approx(100.0)
    assert f"{eid}-anc-ctcae-timeline" in story["figures"]


def test_search_figures_match_the_points(story: dict, lab: dict) -> None:
    eid = lab["ids"]["search"]
    points = pd.read_parquet(lab["records"][eid].results["points.parquet"].path)
    conv = _traces(_figure(story, eid, "convergence"))
    assert len(conv["feasible"]["x"]) + len(conv["infeasible"]["x"]) == len(points)
    assert len(conv["best feasible so far"]["x"]) == len(points)
    feasible = points[points["feasible"]]
    np.testing.assert_allclose(conv["feasible"]["y"], feasible["dose_intensity(A1)"].to_numpy())
    chosen = _traces(_figure(story, eid, "chosen-vs-alternatives"))
    n_drawn = sum(len(t["x"]) for t in chosen.values())
    assert n_drawn == len(points)
    if len(feasible):
        best = feasible.loc[feasible["value"].idxmin()]
        assert chosen["chosen"]["x"] == [best["load"]]
        assert chosen["chosen"]["y"] == [best["maintenance"]]
        assert conv["best feasible so far"]["y"][-1] == pytest.approx(best["dose_intensity(A1)"])
        assert f"{eid}-phases" in story["figures"]  # the chosen protocol's phases


def test_forecast_figures_match_the_forecast(story: dict, lab: dict) -> None:
    from hemolab.calibrate import load_fit
    from hemolab.forecast import threshold_forecast
    from hemolab.library import get_model

    eid = lab["ids"]["forecast"]
    record = lab["records"][eid]
    doc = lab["ids"]["docs"][1]
    assert record.kind == "forecast" and record.status == "complete"
    assert record.spec["threshold"] == {"observable": "Hb", "op": "<", "value": 7.0}
    assert record.spec["horizon"] == doc["horizon"] and record.spec["level"] == doc["level"]
    fan = pd.read_parquet(record.results["fan.parquet"].path)
    crossings = pd.read_parquet(record.results["crossings.parquet"].path)
    observations = pd.read_parquet(record.results["observations.parquet"].path)
    fig = _figure(story, eid, "hb-forecast")
    traces = _traces(fig)
    np.testing.assert_allclose(traces["median"]["x"], fan["time"].to_numpy())
    np.testing.assert_allclose(traces["median"]["y"], fan["q50"].to_numpy())
    np.testing.assert_allclose(traces["90 % band"]["y"], fan["q05"].to_numpy())
    np.testing.assert_allclose(traces["90 % band (upper)"]["y"], fan["q95"].to_numpy())
    np.testing.assert_allclose(traces["50 % band"]["y"], fan["q25"].to_numpy())
    np.testing.assert_allclose(traces["observed"]["y"], observations["value"].to_numpy())
    # the quantiles recomputed from the stored fit's own draws (same seed: same draws)
    fit = load_fit(record.inputs["fit.json"].path)
    tf = threshold_forecast(fit, get_model("marrow_failure_hb"), "Hb<7",
                            horizon=doc["horizon"], n_draws=40, seed=9)  # fmt: skip
    q = np.nanquantile(tf.forecast.draws, (0.05, 0.5, 0.95), axis=0)
    np.testing.assert_allclose(traces["median"]["y"], q[1], rtol=1e-12)
    np.testing.assert_allclose(traces["90 % band (upper)"]["y"], q[2], rtol=1e-12)
    assert len(crossings) == 40 == doc["n_draws"] + doc["n_failed"]
    shapes = fig["layout"]["shapes"]
    assert any(s["type"] == "line" and s["y0"] == 7.0 for s in shapes)  # the threshold
    vlines = {s["label"]["text"]: s["x0"] for s in shapes if s["type"] == "line" and s.get("yref")}
    assert vlines["last observation"] == doc["t_last_observation"]
    assert vlines["crossing, median"] == pytest.approx(doc["median"], rel=1e-12)
    # the time-to-threshold distribution: the forecast's own median, interval and P(within)
    ttt = _figure(story, eid, "time-to-threshold")
    (cdf,) = ttt["data"]
    crossed = np.sort(crossings.loc[crossings["status"] == "crossed", "time"].to_numpy())
    np.testing.assert_allclose(cdf["x"][1:-1], crossed)
    assert cdf["y"][-1] == pytest.approx(100.0 * doc["p_within_horizon"])
    lines = {s["label"]["text"]: s["x0"] for s in ttt["layout"]["shapes"]}
    for key in ("median", "lower", "upper"):
        if doc[key] is None:
            assert key not in lines
        else:
            assert lines[key] == pytest.approx(doc[key], rel=1e-12), key
    assert f"P(within {doc['horizon']:g} d) = {doc['p_within_horizon']:.2f}" in ttt["layout"][
        "title"]["text"]  # fmt: skip


def test_calibrate_figures_match_the_fit(story: dict, lab: dict) -> None:
    import hemolab as hl
    from hemolab.calibrate import load_fit
    from hemolab.library import get_model

    eid = lab["ids"]["calibrate"]
    record = lab["records"][eid]
    doc = lab["ids"]["docs"][0]
    assert record.kind == "calibrate" and record.spec["options"]["patient"] == doc["patient"]
    fit = load_fit(record.results["fit.json"].path)
    fig = _traces(_figure(story, eid, "hb-fit"))
    np.testing.assert_allclose(fig["observed"]["y"], fit.observations.value)
    np.testing.assert_allclose(fig["observed"]["x"], fit.observations.time)
    # the typical curve is the model at the MAP (an independent solve, tighter tolerances)
    curve = fig["typical curve (MAP)"]
    ref = hl.simulate(get_model("marrow_failure_hb"), None, params=fit.estimate,
                      grid=np.asarray(curve["x"]), outputs=["Hb"], rtol=1e-10,
                      atol=1e-12).variable("Hb")[0]  # fmt: skip
    np.testing.assert_allclose(curve["y"], ref, rtol=1e-5)
    post = _traces(_figure(story, eid, "posterior"))
    names = list(doc["parameters"])
    bars = post["median, 90 % interval"]
    assert bars["x"] == names and post["MAP"]["y"] == [1.0] * len(names)
    for k, name in enumerate(names):
        p = doc["parameters"][name]
        assert bars["y"][k] == pytest.approx(p["median"] / p["map"], rel=1e-12)
        assert bars["error_y"]["array"][k] == pytest.approx((p["upper"] - p["median"]) / p["map"])
        assert bars["error_y"]["arrayminus"][k] == pytest.approx(
            (p["median"] - p["lower"]) / p["map"]
        )


def test_patient_experiments_keep_no_identifier_and_rerun(
    runner: CliRunner, lab: dict, story: dict
) -> None:
    from hemolab.cli._showcase import MRN

    ids, store = lab["ids"], lab["store"]
    from plotly.offline import get_plotlyjs

    texts = [story["html"].replace(get_plotlyjs(), "")]  # plotly.js spells "Ada" somewhere
    for eid in (ids["calibrate"], ids["forecast"]):
        for f in (p for p in (store / "experiments" / eid).rglob("*") if p.is_file()):
            if f.suffix == ".parquet":
                texts.append(pd.read_parquet(f).to_csv() + json.dumps(_metadata(f)))
            else:
                texts.append(f.read_text(encoding="utf-8"))
        texts.append(json.dumps(lab["records"][eid].spec))
    for text in texts:
        for ident in (MRN, "7730021", "Ada", "Lovelace", "1961-09-14"):
            assert ident not in text
    cal, fc = ids["docs"]
    jsonschema.Draft202012Validator(load_schema("calibrate")).validate(cal)
    jsonschema.Draft202012Validator(load_schema("forecast")).validate(fc)
    again = ok_json(run(runner, "experiments", "rerun", ids["forecast"], "--store", store,
                        "--json"))  # fmt: skip
    assert again["identical"] and set(again["results"]) == {
        "fan.parquet", "observations.parquet", "crossings.parquet"}  # fmt: skip
    assert ExperimentStore(store).get(again["rerun"]).parent == ids["forecast"]
    _bad(run(runner, "experiments", "rerun", ids["calibrate"], "--store", store),
         "is a calibration", "calibrate again")  # fmt: skip


def _metadata(path: Path) -> dict[str, str]:
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    return {k.decode(): v.decode() for k, v in meta.items()}


def test_every_figure_carries_the_records_provenance(story: dict, lab: dict) -> None:
    records = lab["records"]
    for key, prov in story["provenance"].items():
        record = records[prov["experiment"]]
        assert key.startswith(record.id)
        assert prov["model"] == {"name": record.model_name, "hash": record.model_hash}
        assert prov["model"]["hash"]
        assert prov["inputs"] == [
            {"name": f.name, "sha256": f.sha256} for f in record.inputs.values()
        ]
        assert prov["results"] and all(
            r["sha256"] == record.results[r["name"]].sha256 for r in prov["results"]
        )
        assert prov["seed"] == record.seed
        assert prov["versions"] == record.versions and "hemolab" in prov["versions"]
        assert prov["created"] == record.started.isoformat()
        assert prov["command"] == f"hemolab {record.spec['command']}"
    # shown on the page too, not only in the JSON
    some = next(iter(lab["records"][lab["ids"]["protocol"]].inputs.values()))
    assert some.sha256 in story["html"]


# --- print versions ---------------------------------------------------------------------


def test_png_per_figure_decodes_with_pixels(story: dict) -> None:
    from matplotlib.image import imread

    pngs = sorted((story["out"].parent / "png").iterdir())
    assert [p.name for p in pngs] == story["report"].png_names()
    height, width = round(PNG_SIZE_IN[1] * PNG_DPI), round(PNG_SIZE_IN[0] * PNG_DPI)
    for p in pngs:
        pixels = imread(p)
        assert pixels.shape[:2] == (height, width), p.name
        rgb = pixels[..., :3]
        assert (rgb < 0.9).any(axis=2).mean() > 0.01, p.name  # not blank
        top = rgb[: height // 20]  # the label, in its dark red (#a50026)
        assert ((top[..., 0] > 0.5) & (top[..., 1] < 0.25) & (top[..., 2] < 0.3)).any(), p.name


def test_pdf_has_one_page_per_figure(story: dict) -> None:
    data = (story["out"].parent / "report.pdf").read_bytes()
    assert data.startswith(b"%PDF")
    pages = re.findall(rb"/Type\s*/Page(?![s\w])", data)
    assert len(pages) == len(story["report"].figures)


def test_label_is_drawn_on_an_empty_figure() -> None:
    from matplotlib.image import imread

    from hemolab.reports._figures import FigureSpec

    png = to_png(FigureSpec("k", "empty", "x", "y", traces=()))
    import io

    pixels = imread(io.BytesIO(png))[..., :3]
    top = pixels[: pixels.shape[0] // 20]
    assert ((top[..., 0] > 0.5) & (top[..., 1] < 0.25)).any()
    assert not ((pixels[pixels.shape[0] // 20 :, :, 0] > 0.5) & (
        pixels[pixels.shape[0] // 20 :, :, 1] < 0.25
    )).any()  # fmt: skip


# --- the command ------------------------------------------------------------------------


def test_cli_report_json(runner: CliRunner, lab: dict, tmp_path: Path) -> None:
    ids = lab["ids"]
    out = tmp_path / "r.html"
    doc = ok_json(
        run(runner, "report", ids["search"], ids["protocol"], "--store", lab["store"],
            "--out", out, "--json", "--pdf", tmp_path / "r.pdf")
    )  # fmt: skip
    jsonschema.Draft202012Validator(load_schema("report")).validate(doc)
    assert doc["out"] == str(out) and out.is_file()
    assert doc["pdf"] == str(tmp_path / "r.pdf") and doc["png"] == []
    assert [e["id"] for e in doc["experiments"]] == [ids["search"], ids["protocol"]]
    assert doc["figures"] == [t for e in doc["experiments"] for t in e["figures"]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html", "r.pdf"]  # no temp left


def _bad(result: Result, *fragments: str) -> str:
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    err = " ".join(result.stderr.split())
    assert err.startswith("error:"), err
    for f in fragments:
        assert f in err, err
    return err


def test_bad_inputs_give_one_clear_message_and_write_nothing(
    runner: CliRunner, lab: dict, tmp_path: Path
) -> None:
    ids, store = lab["ids"], lab["store"]
    out = tmp_path / "r.html"
    report = ["report", "--store", store, "--out", out]
    _bad(run(runner, *report, "E-nope"), "'E-nope'", str(store))
    _bad(run(runner, *report, ids["failed"]), "nothing to report", ids["failed"], "failed",
         "decreasing time")  # fmt: skip
    _bad(run(runner, *report, ids["running"]), "running")
    _bad(run(runner, *report, ids["protocol"], ids["protocol"]), "given twice")
    missing = tmp_path / "no-such-folder" / "r.html"
    _bad(run(runner, "report", ids["protocol"], "--store", store, "--out", missing),
         "does not exist")  # fmt: skip
    _bad(run(runner, "report", ids["protocol"], "--store", store, "--out", tmp_path),
         "is a directory")  # fmt: skip
    _bad(run(runner, "report", ids["protocol"], "--store", store, "--out", tmp_path / "r.txt"),
         "*.html")  # fmt: skip
    (tmp_path / "file.png").write_text("")
    _bad(run(runner, *report, ids["protocol"], "--png", tmp_path / "file.png"), "is a file")
    _bad(run(runner, *report, ids["protocol"], "--pdf", tmp_path / "x" / "r.pdf"),
         "does not exist")  # fmt: skip
    empty = tmp_path / "empty"
    empty.mkdir()
    for not_store in (empty, tmp_path / "file.png", tmp_path / "absent"):
        _bad(run(runner, "report", ids["protocol"], "--store", not_store, "--out", out),
             str(not_store))  # fmt: skip
    assert not (tmp_path / "absent").exists()  # never created
    assert list(empty.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "file.png"]


def test_api_errors(lab: dict, tmp_path: Path) -> None:
    with pytest.raises(ExperimentError, match="no experiment 'E-nope' in store"):
        write_report(lab["store"], "E-nope", tmp_path / "r.html")
    with pytest.raises(ReportError, match="at least one experiment"):
        write_report(lab["store"], [], tmp_path / "r.html")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_render_leaves_no_partial_file(
    lab: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hemolab.reports._print as printing

    def broken(*args: object, **kwargs: object) -> bytes:
        raise ReportError("the printer broke")

    monkeypatch.setattr(printing, "to_pdf", broken)
    (tmp_path / "r.html").write_text("the previous report")
    with pytest.raises(ReportError, match="printer broke"):
        write_report(lab["store"], lab["ids"]["few"], tmp_path / "r.html",
                     png_dir=tmp_path / "png", pdf=tmp_path / "r.pdf")  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]
    assert (tmp_path / "r.html").read_text() == "the previous report"
