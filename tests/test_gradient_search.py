"""Protocol search by gradient: the smoothed chance constraint differentiated through the
solver, checked against finite differences; the point found checked exactly."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hemolab as hl
from hemolab import HemolabError
from hemolab.library import get_model
from hemolab.protocols import read_protocol, run_protocol
from hemolab.search._gradient import _problem, gradient_protocol_search
from hemolab.search._protocol_search import read_protocol_search

TEMPLATE = """[protocol]
name = "docetaxel {dose} mg once"
model = "friberg_docetaxel"
time_unit = "d"

[monitoring]
observables = ["ANC"]
every = "6h"

[[phase]]
name = "cycle"
duration = "21d"

[[phase.dose]]
cmt = "A1"
amount = "{dose}"
duration = "1h"

[[limit]]
name = "grade-4 neutropenia > 3 d"
when = "ANC < 0.5"
longer_than = "3d"
max_probability = 0.10
"""

SEARCH = """[search]
name = "gradient"
protocol = "template.toml"
method = "cma-es"
budget = 8
seed = 1

[objective]
maximise = "dose_intensity(A1)"

[variables.dose]
type = "continuous"
low = 60
high = 400
unit = "mg"
"""


def _write(folder: Path, template: str = TEMPLATE, search: str = SEARCH) -> Path:
    (folder / "template.toml").write_text(template)
    path = folder / "search.toml"
    path.write_text(search)
    return path


@pytest.fixture(scope="module")
def model() -> hl.Model:
    return get_model("friberg_docetaxel")


def test_the_smoothed_constraint_has_the_finite_difference_gradient(model, tmp_path) -> None:
    search = read_protocol_search(_write(tmp_path))
    prob = _problem(search, model, hl.Population(model, n=20, seed=4), rtol=1e-8, atol=1e-10)
    x = jnp.asarray([220.0])
    p, dp = jax.jit(lambda x: (prob.smoothed(x), jax.jacfwd(prob.smoothed)(x)))(x)
    f = jax.jit(prob.smoothed)

    def central(h: float) -> np.ndarray:
        return (np.asarray(f(x + h)) - np.asarray(f(x - h))) / (2 * h)

    fd = (4 * central(0.25) - central(0.5)) / 3  # Richardson: O(h^4)
    assert 0.02 < float(p[0]) < 0.98, "the check needs a constraint that moves"
    np.testing.assert_allclose(np.asarray(dp)[:, 0], fd, rtol=1e-3)


def test_the_point_found_keeps_the_exact_limit_near_its_edge(model, tmp_path) -> None:
    """``hemolab search`` with method gradient: SLSQP on the smoothed count; the exact count at
    the point holds, and the largest exact feasible dose (bisection) is not far above it."""
    import json

    import jsonschema
    from typer.testing import CliRunner

    from hemolab.cli._app import app
    from hemolab.cli._schemas import load_schema

    path = _write(tmp_path, search=SEARCH.replace('method = "cma-es"', 'method = "gradient"'))
    args = ["search", str(path), "--population", "50", "--seed", "4", "--json"]
    res = CliRunner().invoke(app, [*args, "--store", str(tmp_path / "store")])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    jsonschema.Draft202012Validator(load_schema("search")).validate(doc)
    g = doc["gradient"]
    assert g["feasible"] and g["exact_probability"]["grade-4 neutropenia > 3 d"] <= 0.10
    assert g["smoothed_probability"]["grade-4 neutropenia > 3 d"] <= 0.10 + 1e-6
    dose = g["point"]["dose"]
    assert doc["best"] == {"dose": pytest.approx(dose)} and doc["n_evaluated"] == 1
    assert g["objective"] == pytest.approx(dose / 21.0 * 7.0)  # mg/week: one dose in 21 d
    assert doc["best_value"] == pytest.approx(g["objective"])
    pop = hl.Population(model, n=50, seed=4)

    def exact_p(d: float) -> float:
        proto = read_protocol(tmp_path / "template.toml", time_unit="h", values={"dose": d})
        return run_protocol(proto.protocol, model, population=pop).limits[0].probability

    lo, hi = dose, 400.0
    assert exact_p(hi) > 0.10
    for _ in range(8):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if exact_p(mid) <= 0.10 else (lo, mid)
    assert 0.85 * lo <= dose <= lo  # the smoothed count leans to the safe side
    assert g["iterations"] >= 1 and g["n_solves"] >= g["iterations"]


CONTINUOUS = 'type = "continuous"\nlow = 60'
INTEGER = 'type = "integer"\nlow = 60'
INTENSITY = 'maximise = "dose_intensity(A1)"'
PROBABILITY = 'minimise = "probability(grade-4 neutropenia > 3 d)"'


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ((CONTINUOUS, INTEGER), "needs continuous variables"),
        ((INTENSITY, PROBABILITY), "not differentiable here"),
    ],
)
def test_searches_a_gradient_cannot_follow_are_refused(model, tmp_path, change, message) -> None:
    search = read_protocol_search(_write(tmp_path, search=SEARCH.replace(*change)))
    with pytest.raises(HemolabError, match=message):
        gradient_protocol_search(search, model, hl.Population(model, n=5, seed=1))


def test_a_variable_that_moves_times_is_refused(model, tmp_path) -> None:
    template = TEMPLATE.replace('duration = "1h"', 'duration = "{dose / 100}h"')
    search = read_protocol_search(_write(tmp_path, template=template))
    with pytest.raises(HemolabError, match="changes the protocol's times or structure"):
        gradient_protocol_search(search, model, hl.Population(model, n=5, seed=1))


def test_a_template_with_rules_is_refused(model, tmp_path) -> None:
    """The smoothed problem differentiates a fixed schedule: a rule acting at a crossing
    (here a hold) would make its probability wrong, so it is refused, not ignored."""
    rule = '\n[[rule]]\nname = "hold"\nwhen = "ANC < 1.0"\naction = "hold"\n'
    search = read_protocol_search(_write(tmp_path, template=TEMPLATE + rule))
    with pytest.raises(HemolabError, match="rule 'hold': gradient search differentiates"):
        gradient_protocol_search(search, model, hl.Population(model, n=5, seed=1))
