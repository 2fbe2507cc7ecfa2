"""Declared search spaces (Python and TOML, bad input refused with file, line and field) and
the optimisers (grid, Latin hypercube, CMA-ES) on problems with a known constrained optimum."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hemolab.search import (
    Categorical,
    Continuous,
    Integer,
    SearchSpace,
    SearchSpaceError,
    cma_es,
    grid_search,
    latin_hypercube,
    read_search_space,
)

SPACE_TOML = """\
[search]
name = "dose and interval"

[variables.dose]
type = "continuous"
low = 50
high = 150
unit = "mg/m2"

[variables.interval]
type = "integer"
low = 14
high = 28
unit = "d"

[variables.product]
type = "categorical"
choices = ["A", "B"]

[[constraints]]
expr = "dose * 7 / interval <= 35"
"""


def _space() -> SearchSpace:
    return SearchSpace(
        [
            Continuous("dose", 50, 150, "mg/m2"),
            Integer("interval", 14, 28, "d"),
            Categorical("product", ("A", "B")),
        ],
        constraints=["dose * 7 / interval <= 35"],
    )


def _objective(points: dict[str, np.ndarray]) -> np.ndarray:
    """Minimum 9 at dose 120, interval 24, product B (the constraint caps dose at 5 x interval)."""
    penalty = np.where(points["product"] == "B", 0.0, 50.0)
    return (points["dose"] - 120.0) ** 2 + (points["interval"] - 21.0) ** 2 + penalty


def test_a_toml_space_equals_the_python_one_and_decodes_into_its_bounds(tmp_path: Path) -> None:
    path = tmp_path / "space.toml"
    path.write_text(SPACE_TOML)
    space = read_search_space(path)
    assert space.name == "dose and interval" and space.names == ("dose", "interval", "product")
    assert space.variables == _space().variables
    u = np.random.default_rng(0).random((500, 3))
    pts = space.decode(u)
    assert pts["dose"].min() >= 50 and pts["dose"].max() <= 150
    assert set(pts["interval"]) <= set(range(14, 29)) and set(pts["product"]) == {"A", "B"}
    np.testing.assert_array_equal(space.decode(space.encode(pts))["interval"], pts["interval"])
    assert list(space.decode(np.array([[1.0, 1.0, 1.0]]))["interval"]) == [28]
    grid = space.grid({"dose": 3, "interval": 100, "product": 2})
    assert len(grid["dose"]) == 3 * 15 * 2
    ok = space.feasible({"dose": np.array([70.0, 71.0]), "interval": np.array([14, 14])})
    assert list(ok) == [True, False]
    log = Continuous("k", 0.1, 10.0, log=True)
    assert log.decode(np.array([0.5]))[0] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("low = 50", "low = 150"), r"space.toml:6: variable 'dose': infeasible bounds: low 150"),
        (
            ('expr = "dose * 7 / interval <= 35"', 'expr = "dose * 7 / intervall <= 35"'),
            r"space.toml:21: constraint .*: unknown variable 'intervall' \(variables: dose, "
            r"interval, product\)",
        ),
        (
            ('expr = "dose * 7 / interval <= 35"', 'expr = "dose * 7"'),
            r"space.toml:21: constraint 'dose \* 7': must be an inequality",
        ),
        (
            ('unit = "d"', 'unit = "d"\nstep = 2'),
            r"space.toml:15: variables.interval: unknown "
            r"field 'step' for a integer variable",
        ),
        (
            ('type = "categorical"', 'type = "ordinal"'),
            r"space.toml:17: variables.product.type "
            r"must be continuous, integer or categorical, got 'ordinal'",
        ),
        (("high = 150", 'high = "lots"'), r"space.toml:7: variables.dose.high must be a number"),
        (("low = 14", "low = 14.5"), r"space.toml:12: variable 'interval': integer bounds"),
        (
            ('choices = ["A", "B"]', 'choices = ["A", "A"]'),
            r"space.toml:18: variable "
            r"'product': choices must be distinct",
        ),
        (("[search]", "[serach]"), r"space.toml:1: unknown table \[serach\]"),
        (("high = 28", "high = 28\nhigh = 30"), r"space.toml: not valid TOML"),
        (("low = 50", "low = 0\nlog = true"), r"a log scale needs low > 0"),
    ],
)
def test_bad_spaces_are_refused_with_file_line_and_field(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    path = tmp_path / "space.toml"
    path.write_text(SPACE_TOML.replace(*change, 1))
    with pytest.raises(SearchSpaceError, match=message):
        read_search_space(path)


def test_bad_spaces_from_python_are_refused() -> None:
    with pytest.raises(SearchSpaceError, match="variable 'x' is declared twice"):
        SearchSpace([Continuous("x", 0, 1), Integer("x", 0, 3)])
    with pytest.raises(SearchSpaceError, match="no variables"):
        SearchSpace([])
    with pytest.raises(SearchSpaceError, match="not an identifier"):
        SearchSpace([Continuous("two words", 0, 1)])
    with pytest.raises(SearchSpaceError, match="does not exist"):
        read_search_space("/nonexistent/space.toml")


def test_sweeps_find_the_constrained_optimum_and_never_evaluate_infeasible_points() -> None:
    space = _space()
    evaluated: list[int] = []

    def objective(points: dict[str, np.ndarray]) -> np.ndarray:
        assert np.all(points["dose"] * 7 / points["interval"] <= 35 + 1e-12)
        evaluated.append(len(points["dose"]))
        return _objective(points)

    seen: list[tuple[int, int, float]] = []
    grid = grid_search(
        space,
        objective,
        {"dose": 101, "interval": 15, "product": 2},
        batch_size=500,
        progress=lambda *a: seen.append(a),
    )
    assert grid.best == {"dose": 120.0, "interval": 24, "product": "B"}
    assert grid.best_value == pytest.approx(9.0)
    assert grid.n_evaluated == sum(evaluated) < len(grid.values)  # infeasible: not evaluated
    assert seen[-1][:2] == (len(grid.values), len(grid.values)) and seen[-1][2] == 9.0
    lhs = latin_hypercube(space, objective, 400, seed=11)
    again = latin_hypercube(space, objective, 400, seed=11)
    np.testing.assert_array_equal(lhs.points["dose"], again.points["dose"])
    assert lhs.best_value is not None and lhs.best_value < 20.0
    frame = lhs.to_pandas()
    assert list(frame.columns) == ["dose", "interval", "product", "value", "violation", "feasible"]


def test_cma_es_is_seeded_and_reaches_the_optimum_through_objective_constraints() -> None:
    space = SearchSpace(
        [
            Continuous("dose", 50, 150),
            Integer("interval", 14, 28),
            Categorical("product", ("A", "B")),
        ]
    )

    def objective(points: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        # the same cap as a constraint of the objective (a safety limit it reports)
        return _objective(points), np.maximum(points["dose"] * 7 / points["interval"] - 35, 0)

    first = cma_es(space, objective, budget=1500, seed=3)
    again = cma_es(space, objective, budget=1500, seed=3)
    other = cma_es(space, objective, budget=60, seed=4)
    np.testing.assert_array_equal(first.points["dose"], again.points["dose"])
    assert not np.array_equal(first.points["dose"][:60], other.points["dose"])
    assert first.best is not None and first.best["interval"] == 24
    assert first.best["product"] == "B"
    assert first.best_value == pytest.approx(9.0, abs=0.05)
    assert len(first.values) <= 1500
    with pytest.raises(SearchSpaceError, match="returned 1 values"):
        cma_es(space, lambda p: np.zeros(1), budget=20, seed=1)
    with pytest.raises(SearchSpaceError, match="violations must be >= 0"):
        cma_es(
            space, lambda p: (np.zeros(len(p["dose"])), -np.ones(len(p["dose"]))), budget=20, seed=1
        )
