"""Protocol search (issue 8): a template's placeholders filled from a search space, each point
run over one seeded population, the limits as chance constraints, and the CLI's record and
rerun. The searches are tiny (a few points, eight patients) and share one compiled loop."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import hemolab as hl
from hemolab.cli._app import app
from hemolab.cli._schemas import load_schema
from hemolab.protocols import ProtocolError, read_protocol
from hemolab.search import SearchSpaceError, read_protocol_search, run_protocol_search

ROOT = Path(__file__).resolve().parents[1]

TEMPLATE = """\
[protocol]
name = "doc {dose} every {interval} d"
model = "friberg_docetaxel"
time_unit = "d"

[population]
n = 8
seed = 5

[monitoring]
observables = ["ANC"]
every = "1d"

[[phase]]
name = "treatment"
duration = "{2 * interval}d"

[[phase.dose]]
cmt = "A1"
amount = "{dose}"
every = "{interval}d"
count = 2
duration = "1h"

[[limit]]
name = "g4"
when = "ANC < 0.5"
longer_than = "3d"
max_probability = 0.25
"""

SPACE = """\
[search]
name = "tiny"
protocol = "template.toml"
method = "grid"
per_axis = 2
seed = 0

[objective]
maximise = "dose_intensity(A1)"

[variables.dose]
type = "continuous"
low = 80
high = 400

[variables.interval]
type = "integer"
low = 14
high = 21
"""


@pytest.fixture()
def files(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "template.toml").write_text(TEMPLATE)
    space = tmp_path / "space.toml"
    space.write_text(SPACE)
    return space, tmp_path / "template.toml"


def test_a_template_is_filled_with_arithmetic(files) -> None:
    _, template = files
    p = read_protocol(template, values={"dose": 120.5, "interval": 14}).protocol
    assert p.name == "doc 120.5 every 14 d"
    assert p.end == 28 * 24.0
    dose = p.phases[0].doses[0]
    assert (dose.amount, dose.every, dose.count) == (120.5, 14 * 24.0, 2)
    with pytest.raises(ProtocolError, match=r"template.toml:2: placeholder \{dose\}"):
        read_protocol(template, values={"interval": 14})
    with pytest.raises(ProtocolError, match="no value: this protocol is a template"):
        read_protocol(template)
    bad = template.with_name("bad.toml")
    bad.write_text(TEMPLATE.replace("{2 * interval}d", "{interval ** 2}d"))
    with pytest.raises(ProtocolError, match=r"bad.toml:16: placeholder \{interval \*\* 2\}"):
        read_protocol(bad, values={"dose": 1.0, "interval": 14})


@pytest.mark.parametrize(
    ("old", "new", "where", "message"),
    [
        ('maximise = "dose_intensity(A1)"', 'maximise = "happiness"', "space.toml:9",
         "not a metric"),
        ('maximise = "dose_intensity(A1)"', 'minimise = "probability(g5)"', "space.toml:9",
         "names limit 'g5'"),
        ('maximise = "dose_intensity(A1)"', 'maximise = "median_nadir(PLT)"', "space.toml:9",
         "not monitored"),
        ('method = "grid"', 'method = "annealing"', "space.toml:4", "not one of grid"),
        ("per_axis = 2\n", "", "space.toml:1", "needs per_axis"),
        ('method = "grid"', 'method = "cma-es"\nbudget = 4', "space.toml:1",
         "a cma-es search needs seed"),
        ("[variables.interval]", "[variables.gap]", "template.toml",
         "placeholder {interval} is not a variable"),
        ("high = 21\n", 'high = 21\n\n[variables.unused]\ntype = "integer"\nlow = 1\nhigh = 2\n',
         "space.toml:21", "'unused' is not used"),
        ('protocol = "template.toml"', 'protocol = "missing.toml"', "space.toml:3",
         "does not exist"),
    ],
)  # fmt: skip
def test_bad_searches_are_refused_before_anything_runs(files, old, new, where, message) -> None:
    space, _ = files
    assert old in SPACE
    text = SPACE.replace(old, new, 1)
    if "cma-es" in new:
        text = text.replace("seed = 0\n", "")
    space.write_text(text)
    with pytest.raises(SearchSpaceError) as err:
        read_protocol_search(space)
    assert where in str(err.value) and message in str(err.value), str(err.value)


def test_grid_search_over_a_population(files) -> None:
    space, _ = files
    ps = read_protocol_search(space)
    model = hl.get_model("friberg_docetaxel")
    pop = hl.Population(model, n=8, seed=5)
    seen: list[tuple[int, int]] = []
    found = run_protocol_search(ps, model, pop, progress=lambda k, n, b: seen.append((k, n)))
    frame = found.to_pandas()
    assert len(frame) == 4 and seen[-1] == (4, 4)
    # the metric is the dose intensity of the point, exactly
    np.testing.assert_allclose(
        frame["dose_intensity(A1)"], frame["dose"] * 2 * 7 / (2 * frame["interval"]), rtol=1e-12
    )
    # feasibility is the limit's probability against its max_probability, point by point
    for summary, feasible in zip(found.summaries, frame["feasible"], strict=True):
        assert summary is not None
        (lim,) = summary["limits"]
        assert feasible == (lim["probability"] <= 0.25)
    assert not frame["feasible"].all(), "400 mg every 14 d must break the limit"
    best = found.result.best_index
    assert best is not None
    ok = frame[frame["feasible"]]
    assert frame.loc[best, "dose_intensity(A1)"] == ok["dose_intensity(A1)"].max()
    assert found.best_summary is not None and found.best_summary["safe"]


def test_cli_search_records_and_reruns_identically(files, tmp_path) -> None:
    space, _ = files
    space.write_text(
        SPACE.replace('method = "grid"', 'method = "cma-es"\nbudget = 4').replace(
            "seed = 0", "seed = 3"
        )
    )
    runner = CliRunner()
    store, out = tmp_path / "store", tmp_path / "points.parquet"
    res = runner.invoke(
        app, ["search", str(space), "--json", "--store", str(store), "--out", str(out)]
    )
    assert res.exit_code in (0, 1), res.output
    doc = json.loads(res.stdout)
    jsonschema.Draft202012Validator(load_schema("search")).validate(doc)
    assert doc["method"] == "cma-es" and doc["n_points"] == 4 and doc["seed"] == 3
    assert doc["population"] == {"n": 8, "seed": 5}
    assert len(pd.read_parquet(out)) == 4
    again = runner.invoke(
        app, ["experiments", "rerun", doc["experiment"], "--store", str(store), "--json"]
    )
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["identical"] is True


def test_cli_search_bad_input_exits_2(files, tmp_path) -> None:
    space, _ = files
    space.write_text(SPACE.replace('method = "grid"', 'method = "annealing"'))
    res = CliRunner().invoke(app, ["search", str(space)])
    assert res.exit_code == 2 and f"{space}:4" in res.output
    res = CliRunner().invoke(app, ["search", str(tmp_path / "nope.toml")])
    assert res.exit_code == 2 and "does not exist" in res.output


def test_the_shipped_example_reads() -> None:
    ps = read_protocol_search(ROOT / "examples" / "docetaxel-search.toml")
    assert ps.space.names == ("dose", "interval", "cycles") and ps.method == "cma-es"
    assert ps.objective.text == "dose_intensity(A1)" and ps.objective.sense == "maximise"
