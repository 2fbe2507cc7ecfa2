"""SBML Test Suite conformance over every shared case (``../shared/sbml-cases``).

Runs in its own lane of ``make test`` (marker ``conformance``; two spawned workers). The
cases that passed when the pass list was last recorded (``tests/data/sbml_expected_pass.txt``)
must all pass: a regression fails here. Every case that does not pass is listed with its reason
in the README's conformance section. The report is written to ``build/sbml-report.csv``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hemolab.sbml._suite import find_cases, read_ids, run_suite

ROOT = Path(__file__).resolve().parents[1]
SHARED_CASES = ROOT.parent / "shared" / "sbml-cases"
EXPECTED = ROOT / "tests" / "data" / "sbml_expected_pass.txt"
README = ROOT / "README.md"


@pytest.mark.slow
@pytest.mark.conformance
def test_every_recorded_case_still_passes() -> None:
    assert SHARED_CASES.is_dir(), (
        f"the SBML Test Suite cases are missing: expected {SHARED_CASES} (../shared/sbml-cases "
        "beside the clone)"
    )
    cases = find_cases(SHARED_CASES)
    report = run_suite(cases, workers=2)
    (ROOT / "build").mkdir(exist_ok=True)
    report.write_csv(ROOT / "build" / "sbml-report.csv")
    passed = {r.id for r in report.results if r.status == "passed"}
    expected = set(read_ids(EXPECTED))
    lost = sorted(expected - passed)
    reasons = {r.id: r.reason for r in report.results}
    assert not lost, "regressions: " + "; ".join(f"{i}: {reasons[i]}" for i in lost[:20])
    readme = README.read_text()
    unlisted = [r.id for r in report.results if r.status != "passed" and r.id not in readme]
    assert not unlisted, f"cases that do not pass and are missing from the README: {unlisted}"
    print(f"SBML conformance: {len(passed)}/{len(cases)} = {100 * len(passed) / len(cases):.1f} %")
