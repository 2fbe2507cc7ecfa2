"""One contract every library model keeps (scikit-learn's check_estimator, for models)."""

from __future__ import annotations

import numpy as np
import pytest

import hemolab as hl
from hemolab.library._registry import _REGISTRY
from hemolab.model._units import parse_unit

NAMES = hl.list_models()


@pytest.mark.parametrize("name", NAMES)
def test_documented_and_cited(name: str) -> None:
    model = hl.get_model(name)
    factory = _REGISTRY[name].factory
    assert factory.__doc__ and len(factory.__doc__.strip()) > 40
    assert "doi" in model.citation.lower()
    assert model.description
    for p in model.parameters:
        assert p.bounds[0] <= p.value <= p.bounds[1], p.name


@pytest.mark.parametrize("name", NAMES)
def test_units_declared_and_parseable(name: str) -> None:
    model = hl.get_model(name)
    for kind, items in (("state", model.states), ("observable", model.observables)):
        for item in items:
            assert item.unit is not None, f"{kind} {item.name} has no unit"
            parse_unit(item.unit)
    assert model.observables, "a library model declares its clinical observables"


@pytest.mark.parametrize("name", NAMES)
def test_runs_untreated_and_stays_finite_and_positive(name: str) -> None:
    """From its initial state with no treatment: solves, finite, declared-positive states > 0."""
    model = hl.get_model(name)
    horizon = {"h": 24.0 * 14, "d": 14.0}.get(model.time_unit, 14.0)
    res = hl.simulate(model, t_end=horizon, dt=horizon / 14)
    assert res.status_labels == ["ok"]
    assert np.all(np.isfinite(res.values))
    for s in model.states:
        if s.positive:
            assert np.all(res.variable(s.name) > 0), s.name


@pytest.mark.parametrize("name", NAMES)
def test_models_listing_and_show_agree(name: str) -> None:
    from hemolab.cli._app import model_info

    info = model_info(hl.get_model(name))
    assert info["name"] == name
    assert [s["name"] for s in info["states"]] == list(hl.get_model(name).state_names)


@pytest.mark.parametrize("name", NAMES)
def test_steady_state_where_claimed(name: str) -> None:
    """Models whose initial state is a drug-free steady state stay there, untreated."""
    entry = _REGISTRY[name]
    model = hl.get_model(name)
    horizon = {"h": 24.0 * 60, "d": 60.0}[model.time_unit]
    res = hl.simulate(model, t_end=horizon, dt=horizon / 6, rtol=1e-10, atol=1e-12, throw=True)
    states = res.values[0, :, : len(model.states)]
    # relative drift; amounts that start at zero (drug) may carry atol-sized noise (< 1e-9)
    drift = np.abs(states - states[:1]) / (np.abs(states[:1]) + 1e-2)
    if entry.steady_state:
        assert drift.max() < 1e-7, (name, drift.max())
    else:  # the models that do not claim it really move (Mackey-Glass, Michor, Colijn-Mackey)
        assert drift.max() > 1e-3, (name, drift.max())


@pytest.mark.parametrize("name", NAMES)
def test_typical_regimen_runs(name: str) -> None:
    """The regimen ``hemolab demo`` runs: a valid dataset, the named observable, finite values."""
    run = hl.library.typical_run(name)
    model = hl.get_model(name)
    assert run.observable in model.observable_names
    assert len(run.description) > 10
    res = hl.simulate(model, run.events(), params=run.params, t_end=run.t_end, dt=run.dt)
    assert res.status_labels == ["ok"]
    assert np.isfinite(res.variable(run.observable)).all()


@pytest.mark.parametrize("name", NAMES)
def test_listed_in_the_library_docs(name: str) -> None:
    """docs/models.md says what each model's tests check and what is uncertain."""
    from pathlib import Path

    docs = (Path(__file__).resolve().parents[1] / "docs" / "models.md").read_text()
    assert f"| `{name}` |" in docs
    experimental = hl.get_model(name).description.lower().startswith("experimental")
    row = next(line for line in docs.splitlines() if line.startswith(f"| `{name}` |"))
    assert ("**experimental**" in row) == experimental
