"""SBML export: every library model written as SBML L3V2 loads in libRoadRunner and gives
hemolab's trajectories (ODE models), and reads back into hemolab with the same trajectories
(every model, delay models included)."""

from __future__ import annotations

import os

import numpy as np
import pytest

import hemolab as hl
from hemolab.sbml import import_sbml, write_sbml

NAMES = hl.list_models()


def _moving(model: hl.Model) -> hl.Model:
    """The model started 20 % above its initial state (drug amounts at 1), so that models at
    steady state move and the comparison means something. Delay models keep their start:
    SBML's past is the initial value, which must stay equal to hemolab's history."""
    if model.has_delays:
        return model
    states = []
    for s in model.states:
        init = s.initial
        moved = f"1.2*({init})" if str(init) not in ("0", "0.0") else "1.0"
        states.append(s.__class__(**{**s.__dict__, "initial": moved}))
    return model.replace(states=states)


def _horizon(model: hl.Model) -> np.ndarray:
    end = {"h": 24.0 * 20, "d": 60.0}[model.time_unit]
    return np.linspace(0.0, end, 41)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_library_model_reads_back_into_hemolab(name: str) -> None:
    model = _moving(hl.get_model(name))
    grid = _horizon(model)
    again = import_sbml(write_sbml(model))
    kw = {"grid": grid, "rtol": 1e-9, "atol": 1e-12, "throw": True}
    ref = hl.simulate(model, **kw)
    got = hl.simulate(again.model, **kw)
    for s in model.state_names:
        np.testing.assert_allclose(got.variable(s), ref.variable(s), rtol=1e-6, atol=1e-9)
    assert "hemolab:citation" in write_sbml(model)


def _roadrunner():
    try:
        import roadrunner
    except ImportError:  # pragma: no cover - peers are installed by make test
        if os.environ.get("CI"):
            raise
        pytest.skip("libroadrunner is not installed")
    return roadrunner


@pytest.mark.slow
@pytest.mark.peers
@pytest.mark.parametrize("name", [n for n in NAMES if not hl.get_model(n).has_delays])
def test_library_model_runs_the_same_in_libroadrunner(name: str) -> None:
    roadrunner = _roadrunner()
    model = _moving(hl.get_model(name))
    grid = _horizon(model)
    rr = roadrunner.RoadRunner(write_sbml(model))
    rr.integrator.relative_tolerance = 1e-10
    rr.integrator.absolute_tolerance = 1e-12
    if model.stiff:
        rr.setIntegrator("cvode")
    out = rr.simulate(
        float(grid[0]), float(grid[-1]), len(grid), selections=["time", *model.state_names]
    )
    ref = hl.simulate(model, grid=grid, rtol=1e-10, atol=1e-12, throw=True)
    for k, s in enumerate(model.state_names, start=1):
        np.testing.assert_allclose(out[:, k], ref.variable(s)[0], rtol=1e-5, atol=1e-8, err_msg=s)
