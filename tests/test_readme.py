"""The README's tour runs as written (a tour that fails is worse than none)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.slow
def test_python_tour_runs(tmp_path, monkeypatch):
    text = README.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README has no python tour"
    monkeypatch.chdir(tmp_path)
    pd.DataFrame(
        {
            "ID": [1] * 4,
            "TIME": [0.0, 504.0, 1008.0, 1512.0],
            "EVID": 1,
            "CMT": "A1",
            "AMT": 100.0,
            "AMT_UNIT": "mg/m2",
            "DUR": 1.0,
            "BSA": 1.8,
        }
    ).to_csv("regimen.csv", index=False)
    pd.read_csv("regimen.csv").drop(columns=["BSA"]).to_csv("regimen_per_m2.csv", index=False)
    namespace: dict = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)
    assert (tmp_path / "results.parquet").is_file()
    assert namespace["res"].status_labels == ["ok"]
    assert namespace["run"].status_counts == {"ok": 500}
    assert (tmp_path / "population.parquet").is_file()


def test_readme_starts_with_the_two_commands():
    head = README.read_text().splitlines()[:6]
    assert any("make demo" in line for line in head)
    assert any("make test" in line for line in head)
