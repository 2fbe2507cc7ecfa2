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
