"""The fuzz-count plugin (``tests/_fuzz_counts.py``, design note 031): the terminal summary
adds up the inputs that every process tried, also under pytest-xdist (workers hand their
counts to the controller)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests._fuzz_counts import summary_line

REPO = Path(__file__).resolve().parents[1]
CONFTEST = """
from tests import _fuzz_counts

def pytest_configure(config):
    _fuzz_counts.register(config)
"""
TESTS = """
import pytest
from tests._fuzz_counts import tried

@pytest.mark.parametrize("k", range(4))
def test_labs(k):
    tried("labs CSV", 250)

@pytest.mark.parametrize("k", range(3))
def test_fhir(k):
    tried("FHIR bundle", 3)
"""


def test_the_summary_line() -> None:
    line = summary_line({"labs CSV": 1000, "FHIR bundle": 9, "unused": 0})
    assert line == "fuzzing: 1,009 inputs tried — FHIR bundle 9, labs CSV 1,000"
    assert summary_line({}) == ""


@pytest.mark.parametrize("workers", [None, pytest.param("2", marks=pytest.mark.slow)])
def test_counts_reach_the_terminal_summary(tmp_path: Path, workers: str | None) -> None:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_tiny_fuzz.py").write_text(TESTS)
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"]
    args += ["--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path)]
    if workers:
        args += ["-n", workers]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    out = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "fuzzing: 1,009 inputs tried — FHIR bundle 9, labs CSV 1,000" in out.stdout, out.stdout
