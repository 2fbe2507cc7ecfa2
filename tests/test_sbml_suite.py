"""The SBML Test Suite runner: case folders, the pass criterion, the driver and the CLI.

The simulator is faked (module-level functions, so spawned workers can import them); the real
case folders come from ``../shared/sbml-cases`` and their absence is a failure, not a skip.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import time
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from hemolab._errors import HemolabError, UnsupportedSBMLError
from hemolab.cli import app
from hemolab.cli._schemas import load_schema
from hemolab.sbml import _suite
from hemolab.sbml._suite import (
    CaseSettings,
    SuiteCase,
    SuiteReport,
    compare,
    find_cases,
    load_case,
    read_ids,
    run_suite,
)

SHARED_CASES = Path(__file__).resolve().parents[2] / "shared" / "sbml-cases"


@pytest.fixture(scope="module")
def cases_dir() -> Path:
    if not (SHARED_CASES / "00001").is_dir():
        pytest.fail(
            f"the SBML Test Suite cases are missing: expected {SHARED_CASES} (../shared/sbml-cases "
            "next to the project) with case folders such as 00001/"
        )
    return SHARED_CASES


@pytest.fixture(scope="module")
def case1(cases_dir: Path) -> SuiteCase:
    return load_case(cases_dir / "00001")


# --- fakes (module level: spawned workers import them by name) --------------------------------


def fake_exact(case: SuiteCase) -> pd.DataFrame:
    return case.expected.copy()


def fake_unsupported(case: SuiteCase) -> pd.DataFrame:
    raise UnsupportedSBMLError(f"case {case.id}: algebraic rule 'r1' is not supported")


def perturbed(case: SuiteCase, row: int = 3, factor: float = 1.01) -> pd.DataFrame:
    out = case.expected.copy()
    out.iloc[row, -1] = out.iloc[row, -1] * factor + 1e-3
    return out


def fake_mixed(case: SuiteCase) -> pd.DataFrame:
    """00001 passes, 00002 is unsupported, 00004 is off, 00005 raises, others pass."""
    if case.id == "00002":
        return fake_unsupported(case)
    if case.id == "00004":
        return perturbed(case)
    if case.id == "00005":
        raise ValueError("boom\nsecond line")
    return fake_exact(case)


def fake_crash_00004(case: SuiteCase) -> pd.DataFrame:
    if case.id == "00004":
        os._exit(3)  # a native crash, as far as the pool can tell
    return fake_exact(case)


def fake_slow(case: SuiteCase) -> pd.DataFrame:
    end = time.perf_counter() + 5.0
    while time.perf_counter() < end:  # Python bytecode: the alarm can interrupt it
        pass
    return fake_exact(case)


# --- settings ----------------------------------------------------------------------------------


def test_settings_of_case_1(cases_dir: Path) -> None:
    s = CaseSettings.read(cases_dir / "00001" / "00001-settings.txt")
    assert s == CaseSettings(
        start=0.0,
        duration=5.0,
        steps=50,
        variables=["S1", "S2"],
        absolute=1e-7,
        relative=1e-4,
        amount=["S1", "S2"],
        concentration=[],
    )
    assert s.times.shape == (51,)
    assert s.times[0] == 0.0 and s.times[-1] == 5.0
    np.testing.assert_allclose(np.diff(s.times), 0.1, rtol=1e-12)


def test_settings_with_concentrations_and_with_neither(cases_dir: Path) -> None:
    s = CaseSettings.read(cases_dir / "00374" / "00374-settings.txt")
    assert s.concentration == ["S1", "S2", "S3", "S4"] and s.amount == []
    assert (s.duration, s.absolute) == (2.0, 1e-6)
    s = CaseSettings.read(cases_dir / "00950" / "00950-settings.txt")  # parameters only
    assert s.variables == ["P", "Q", "R"] and s.amount == s.concentration == []


def test_settings_with_crlf_and_odd_variable_names(cases_dir: Path) -> None:
    s = CaseSettings.read(cases_dir / "01811" / "01811-settings.txt")
    assert s.variables == ["INF", "Inf", "inf", "a", "b", "c", "d"]
    s = CaseSettings.read(cases_dir / "01820" / "01820-settings.txt")
    assert s.variables == ["time", "Time", "TIME"]


def test_times_match_the_expected_grid_even_where_the_csv_rounds(cases_dir: Path) -> None:
    case = load_case(cases_dir / "00953")  # 1001 steps over 100: the CSV has 0.0999001
    assert case.settings.steps == 1001
    np.testing.assert_allclose(case.settings.times, case.expected_times, rtol=1e-7, atol=1e-8)
    assert compare(case, case.expected.assign(time=case.settings.times)) is None


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("start: 0\nduration 5\n", "line 2: expected 'key: value'"),
        (
            "start: 0\nduration: five\nsteps: 5\nvariables: S1\nabsolute: 1\nrelative: 1\n",
            "line 2: duration must be a number",
        ),
        ("start: 0\nstart: 1\n", "line 2: 'start' given twice (first on line 1)"),
        ("start: 0\nduration: 5\n", "missing steps, variables, absolute, relative"),
        ("start: 0\nduration: 5\nsteps: 0\nvariables: S1\nabsolute: 1\nrelative: 1\n", "line 3"),
        ("start: 0\nduration: 5\nsteps: 2.5\nvariables: S1\nabsolute: 1\nrelative: 1\n", "line 3"),
        ("start: 0\nduration: -5\nsteps: 5\nvariables: S1\nabsolute: 1\nrelative: 1\n", "> 0"),
        ("start: 0\nduration: 5\nsteps: 5\nvariables: S1\nabsolute: -1\nrelative: 1\n", "line 5"),
        ("start: x\nduration: 5\nsteps: 5\nvariables: S1\nabsolute: 1\nrelative: 1\n", "line 1"),
        ("start: 0\nduration: 5\nsteps: 5\nvariables: S1, S1\nabsolute: 1\nrelative: 1\n", "twice"),
        ("start: 0\nduration: 5\nsteps: 5\nvariables: S1,,S2\nabsolute: 1\nrelative: 1\n", "empty"),
        (
            "start: 0\nduration: 5\nsteps: 5\nvariables: S1\nabsolute: 1\nrelative: 1\n"
            "amount: S1\nconcentration: S1\n",
            "line 8: S1 listed as both amount and concentration",
        ),
    ],
)
def test_malformed_settings_name_file_and_line(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "00001-settings.txt"
    path.write_text(text)
    with pytest.raises(HemolabError) as info:
        CaseSettings.read(path)
    assert str(path) in str(info.value)
    assert fragment in str(info.value)


def test_settings_with_empty_variables_and_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "s.txt"
    path.write_text(
        "start: 1\nduration: 2\nsteps: 4\nvariables:\nabsolute: 0\nrelative: 0\noutput: x\n"
    )
    s = CaseSettings.read(path)
    assert s.variables == [] and s.amount == [] and s.concentration == []
    np.testing.assert_array_equal(s.times, [1.0, 1.5, 2.0, 2.5, 3.0])


# --- case folders ------------------------------------------------------------------------------


def test_load_case_1(case1: SuiteCase, cases_dir: Path) -> None:
    assert case1.id == "00001"
    assert case1.folder == cases_dir / "00001"
    assert case1.model_path == cases_dir / "00001" / "00001-sbml-l3v2.xml"
    assert case1.level == "l3v2"
    assert list(case1.expected.columns) == ["time", "S1", "S2"]
    assert case1.expected.shape == (51, 3)
    assert case1.expected.iloc[0].tolist() == [0.0, 0.00015, 0.0]
    assert case1.component_tags == ["Compartment", "Species", "Reaction", "Parameter"]
    assert case1.test_tags == ["Amount"]


def test_expected_headers_normalised(cases_dir: Path) -> None:
    assert list(load_case(cases_dir / "01219").expected.columns) == ["time", "S1", "c"]  # 'Time'
    case = load_case(cases_dir / "00950")  # 'time, P, Q, R' with INF, -INF, ' NaN'
    assert list(case.expected.columns) == ["time", "P", "Q", "R"]
    row = case.expected.iloc[0].to_numpy()
    assert row[1] == math.inf and row[2] == -math.inf and math.isnan(row[3])
    case = load_case(cases_dir / "01820")  # variables time, Time, TIME; header 'Time,time,...'
    assert list(case.expected.columns) == ["time", "time", "Time", "TIME"]
    np.testing.assert_array_equal(case.expected_times, np.arange(11.0))
    assert compare(case, case.expected) is None


def test_model_file_preference(tmp_path: Path, cases_dir: Path) -> None:
    assert load_case(cases_dir / "00059").model_path.name == "00059-sbml-l3v1.xml"
    assert load_case(cases_dir / "01784").model_path.name == "01784-sbml-l2v4.xml"
    folder = tmp_path / "00001"
    shutil.copytree(cases_dir / "00001", folder)
    model = folder / "00001-sbml-l3v2.xml"
    for name in ("00001-sbml-l2v4.xml", "00001-sbml-l3v1.xml", "00001-sbml-l1v2.xml"):
        shutil.copy(model, folder / name)
    assert load_case(folder).model_path.name == "00001-sbml-l3v2.xml"
    model.unlink()
    assert load_case(folder).model_path.name == "00001-sbml-l3v1.xml"
    (folder / "00001-sbml-l3v1.xml").unlink()
    assert load_case(folder).model_path.name == "00001-sbml-l2v4.xml"
    (folder / "00001-sbml-l2v4.xml").unlink()
    assert load_case(folder).model_path.name == "00001-sbml-l1v2.xml"
    (folder / "00001-sbml-l1v2.xml").unlink()
    with pytest.raises(HemolabError, match="no model file"):
        load_case(folder)


def test_malformed_results_are_named(tmp_path: Path, cases_dir: Path) -> None:
    folder = tmp_path / "00001"
    shutil.copytree(cases_dir / "00001", folder)
    results = folder / "00001-results.csv"
    lines = results.read_text().splitlines()
    results.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(HemolabError, match="50 rows of values, expected steps \\+ 1 = 51"):
        load_case(folder)
    results.write_text("\n".join(["time,S2,S1", *lines[1:]]) + "\n")
    with pytest.raises(HemolabError, match="line 1: header"):
        load_case(folder)
    results.write_text("\n".join([*lines[:3], "0.2,x,1", *lines[4:]]) + "\n")
    with pytest.raises(HemolabError, match="line 4, column S1: 'x' is not a number"):
        load_case(folder)
    with pytest.raises(HemolabError, match="5 digits"):
        load_case(tmp_path)


def test_find_cases_with_an_ids_file(tmp_path: Path, cases_dir: Path) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text("# a few\n00005\n1   # short ids are padded\n\n00002\n00001\n")
    assert read_ids(ids) == ["00005", "00001", "00002", "00001"]
    cases = find_cases(cases_dir, ids)
    assert [c.id for c in cases] == ["00001", "00002", "00005"]  # id order, once each
    assert [c.id for c in find_cases(cases_dir, ["00004", "00002"])] == ["00002", "00004"]
    ids.write_text("00001\n00003\n99999\n")
    with pytest.raises(HemolabError, match=r"2 case id\(s\) not found .*: 00003, 99999"):
        find_cases(cases_dir, ids)
    ids.write_text("00001\ncase2\n")
    with pytest.raises(HemolabError, match="line 2: 'case2' is not a case id"):
        find_cases(cases_dir, ids)
    with pytest.raises(HemolabError, match="cannot read ids file"):
        find_cases(cases_dir, tmp_path / "nope.txt")
    with pytest.raises(HemolabError, match="does not exist"):
        find_cases(tmp_path / "nope")
    with pytest.raises(HemolabError, match="no case folders"):
        find_cases(tmp_path)


def test_find_all_cases(cases_dir: Path) -> None:
    cases = find_cases(cases_dir)
    assert len(cases) > 900
    assert [c.id for c in cases] == sorted(c.id for c in cases)
    assert all(list(c.expected.columns[1:]) == c.settings.variables for c in cases)
    assert all(compare(c, c.expected) is None for c in cases)


# --- compare -----------------------------------------------------------------------------------


def test_compare_passes_within_tolerance(case1: SuiteCase) -> None:
    assert compare(case1, case1.expected) is None
    s = case1.settings
    e = case1.expected
    inside = e.copy()
    inside[["S1", "S2"]] = e[["S1", "S2"]] + 0.99 * (
        s.absolute + s.relative * e[["S1", "S2"]].abs()
    )
    assert compare(case1, inside) is None
    shuffled = inside[["S2", "time", "S1"]].assign(extra=1.0)  # order and extras do not matter
    assert compare(case1, shuffled) is None


def test_compare_names_the_earliest_failure(case1: SuiteCase) -> None:
    actual = perturbed(case1, row=7)
    actual.loc[20, "S1"] = -1.0
    reason = compare(case1, actual)
    e = case1.expected.loc[7, "S2"]
    assert reason is not None and "\n" not in reason
    assert reason.startswith(f"S2 at time 0.7: actual {e * 1.01 + 1e-3:.10g}, expected {e:.10g}")
    assert "tolerance" in reason and "absolute 1e-07 + relative 0.0001" in reason
    assert reason.endswith("2 of 102 values fail")
    just_out = case1.expected.copy()
    just_out.loc[0, "S1"] += 1.01 * (1e-7 + 1e-4 * 0.00015)
    assert (reason := compare(case1, just_out)) is not None and reason.startswith("S1 at time 0:")


def test_compare_nan_and_infinities(cases_dir: Path) -> None:
    case = load_case(cases_dir / "00950")  # P = INF, Q = -INF, R = NaN throughout
    assert compare(case, case.expected.copy()) is None
    for column, value in [("P", -math.inf), ("P", math.nan), ("P", 1e308), ("Q", math.inf),
                          ("R", 0.0), ("R", math.inf)]:  # fmt: skip
        actual = case.expected.copy()
        actual.loc[2, column] = value
        reason = compare(case, actual)
        assert reason is not None and reason.startswith(f"{column} at time 0.2:"), (column, value)
    case = load_case(cases_dir / "00001")
    actual = case.expected.copy()
    actual.loc[1, "S1"] = math.nan  # NaN where a number is expected
    assert (reason := compare(case, actual)) is not None and "actual nan" in reason


def test_compare_missing_columns_rows_and_times(case1: SuiteCase) -> None:
    e = case1.expected
    assert compare(case1, e.drop(columns="S2")) == "missing column(s) S2 in the simulation output"
    assert compare(case1, e.drop(columns=["time", "S1"])) == (
        "missing column(s) time, S1 in the simulation output"
    )
    assert compare(case1, e.iloc[:-1]) == "50 output rows, expected 51 (times 0 to 5 in 50 steps)"
    assert str(compare(case1, pd.concat([e, e.iloc[-1:]]))).startswith("52 output rows")
    shifted = e.assign(time=e["time"] + 0.05)
    assert compare(case1, shifted) == "output time 0 is 0.05, expected 0"
    assert compare(case1, e.assign(S1="x")) == ("non-numeric column(s) S1 in the simulation output")
    assert compare(case1, e.to_numpy()) == (  # type: ignore[arg-type]
        "the simulation returned ndarray, not a pandas DataFrame"
    )


def test_compare_repeated_time_label(cases_dir: Path) -> None:
    case = load_case(cases_dir / "01820")  # variables time, Time, TIME
    e = case.expected
    assert compare(case, e) is None
    # built with a dict, the variable 'time' overwrites the time column
    as_dict = pd.DataFrame({"time": e.iloc[:, 1], "Time": e.iloc[:, 2], "TIME": e.iloc[:, 3]})
    assert compare(case, as_dict) == "missing column(s) time in the simulation output"
    swapped = e.iloc[:, [1, 0, 2, 3]]  # the first 'time' column is the time
    assert (reason := compare(case, swapped)) is not None and reason.startswith("output time 0")


# --- run_suite ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def four(cases_dir: Path) -> list[SuiteCase]:
    return find_cases(cases_dir, ["00001", "00002", "00004", "00005"])


def test_run_suite_in_process(four: list[SuiteCase]) -> None:
    calls: list[tuple[int, int]] = []
    report = run_suite(
        four, workers=1, simulate=fake_exact, progress=lambda d, t: calls.append((d, t))
    )
    assert [r.id for r in report.results] == ["00001", "00002", "00004", "00005"]
    assert all(r.status == "passed" and r.reason is None for r in report.results)
    assert (report.passed, report.failed, report.unsupported, report.pass_rate) == (4, 0, 0, 1.0)
    assert calls == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]

    report = run_suite(four, workers=1, simulate=fake_unsupported)
    assert report.unsupported == 4 and report.pass_rate == 0.0
    assert report.results[0].reason == "case 00001: algebraic rule 'r1' is not supported"

    report = run_suite(four, workers=1, simulate=fake_mixed)
    by_id = {r.id: r for r in report.results}
    assert [by_id[i].status for i in ("00001", "00002", "00004", "00005")] == [
        "passed", "unsupported", "failed", "failed",
    ]  # fmt: skip
    assert by_id["00004"].reason is not None and by_id["00004"].reason.startswith(
        "S2 at time 0.6:"
    )  # row 3 of 00004 (dt 0.2)
    assert by_id["00005"].reason == "ValueError: boom second line"
    assert (report.passed, report.failed, report.unsupported) == (1, 2, 1)
    assert report.pass_rate == 0.25
    assert all(r.seconds >= 0 for r in report.results)


def test_report_json_and_csv(four: list[SuiteCase], tmp_path: Path) -> None:
    report = run_suite(four, workers=1, simulate=fake_mixed)
    doc = report.to_json()
    assert list(doc) == ["passed", "failed", "unsupported", "cases"]
    assert (doc["passed"], doc["failed"], doc["unsupported"]) == (1, 2, 1)
    assert doc["cases"]["00001"] == {"status": "passed", "reason": None}
    assert doc["cases"]["00002"]["status"] == "unsupported"
    assert set(doc["cases"]) == {"00001", "00002", "00004", "00005"}
    jsonschema.Draft202012Validator(load_schema("sbml-suite")).validate(json.loads(json.dumps(doc)))

    path = tmp_path / "sub" / "report.csv"
    report.write_csv(path)
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["id", "status", "reason", "seconds"]
    assert [(r["id"], r["status"]) for r in rows] == [
        ("00001", "passed"), ("00002", "unsupported"), ("00004", "failed"), ("00005", "failed"),
    ]  # fmt: skip
    assert rows[0]["reason"] == "" and rows[3]["reason"] == "ValueError: boom second line"
    assert all(float(r["seconds"]) >= 0 for r in rows)
    assert SuiteReport([]).pass_rate == 0.0


def test_schema_rejects_drift(four: list[SuiteCase]) -> None:
    validator = jsonschema.Draft202012Validator(load_schema("sbml-suite"))
    doc = run_suite(four, workers=1, simulate=fake_mixed).to_json()
    for bad in (
        doc | {"pass_rate": 0.25},
        {k: v for k, v in doc.items() if k != "unsupported"},
        doc | {"cases": {"1": {"status": "passed", "reason": None}}},
        doc | {"cases": {"00001": {"status": "error", "reason": "x"}}},
        doc | {"cases": {"00001": {"status": "failed", "reason": None}}},
        doc | {"cases": {"00001": {"status": "passed", "reason": "x"}}},
    ):
        assert not validator.is_valid(bad), bad


def test_run_suite_rejects_bad_arguments(four: list[SuiteCase]) -> None:
    with pytest.raises(HemolabError, match="workers must be >= 1"):
        run_suite(four, workers=0, simulate=fake_exact)
    with pytest.raises(HemolabError, match="timeout must be > 0"):
        run_suite(four, workers=1, simulate=fake_exact, timeout=0)
    with pytest.raises(HemolabError, match="picklable"):
        run_suite(four, workers=2, simulate=lambda case: case.expected)


def test_run_suite_timeout(case1: SuiteCase) -> None:
    t0 = time.perf_counter()
    (result,) = run_suite([case1], workers=1, simulate=fake_slow, timeout=0.3).results
    assert result.status == "failed"
    assert result.reason is not None and "0.3 s" in result.reason
    if result.reason.startswith("timed out"):  # SIGALRM usable here (main thread, no timer)
        assert time.perf_counter() - t0 < 3.0


def test_run_suite_with_spawned_workers(four: list[SuiteCase]) -> None:
    calls: list[tuple[int, int]] = []
    report = run_suite(
        four * 1,
        workers=2,
        simulate=fake_mixed,
        batch_size=1,
        progress=lambda d, t: calls.append((d, t)),
    )
    assert [(r.id, r.status) for r in report.results] == [
        ("00001", "passed"), ("00002", "unsupported"), ("00004", "failed"), ("00005", "failed"),
    ]  # fmt: skip
    assert calls[0] == (0, 4) and calls[-1] == (4, 4)
    assert report.results[3].reason == "ValueError: boom second line"


@pytest.mark.slow
def test_a_crashing_case_fails_alone(four: list[SuiteCase]) -> None:
    report = run_suite(four, workers=2, simulate=fake_crash_00004, batch_size=2)
    assert [(r.id, r.status) for r in report.results] == [
        ("00001", "passed"), ("00002", "passed"), ("00004", "failed"), ("00005", "passed"),
    ]  # fmt: skip
    assert (reason := report.results[2].reason) is not None and "worker process died" in reason


# --- the command line --------------------------------------------------------------------------


@pytest.fixture()
def fake_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_suite, "_default_simulate", fake_mixed)


def test_cli_json_on_three_ids(fake_cli: None, cases_dir: Path, tmp_path: Path) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text("00004\n00001\n# 00005\n00002\n")
    report = tmp_path / "report.csv"
    result = CliRunner().invoke(
        app,
        ["sbml-suite", str(cases_dir), "--ids", str(ids), "--json", "--workers", "1",
         "--report", str(report)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    jsonschema.Draft202012Validator(load_schema("sbml-suite")).validate(doc)
    assert (doc["passed"], doc["failed"], doc["unsupported"]) == (1, 1, 1)
    assert list(doc["cases"]) == ["00001", "00002", "00004"]
    assert doc["cases"]["00004"]["reason"].startswith("S2 at time 0.6:")  # row 3 of 00004 (dt 0.2)
    assert report.read_text().splitlines()[0] == "id,status,reason,seconds"


def test_cli_table(fake_cli: None, cases_dir: Path, tmp_path: Path) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text("1\n2\n4\n5\n")
    result = CliRunner().invoke(
        app, ["sbml-suite", str(cases_dir), "--ids", str(ids), "--workers", "1"]
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "pass rate 25.0 % (1/4)" in out
    assert "00004" in out and "00005" in out and "ValueError: boom second line" in out
    assert "00001" not in out  # passed cases are not listed


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["nope-dir"], "does not exist"),
        (["{cases}", "--ids", "nope.txt"], "ids file 'nope.txt' does not exist"),
        (["{cases}", "--ids", "{bad_ids}"], "99998, 99999"),
        (["{cases}", "--workers", "0"], "--workers must be >= 1"),
    ],
)
def test_cli_bad_input_exits_2(
    fake_cli: None, cases_dir: Path, tmp_path: Path, args: list[str], fragment: str
) -> None:
    bad_ids = tmp_path / "bad.txt"
    bad_ids.write_text("00001\n99999\n99998\n")
    argv = [a.format(cases=cases_dir, bad_ids=bad_ids) for a in args]
    result = CliRunner().invoke(app, ["sbml-suite", *argv])
    assert result.exit_code == 2, result.output
    assert "error:" in result.stderr and fragment in result.stderr
    assert "Traceback" not in result.output
