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
    # the read-back model does not carry the library's solver hint: one compilation each
    kw = {"grid": grid, "rtol": 1e-9, "atol": 1e-12, "throw": True,
          "history_size": model.history_segments}  # fmt: skip
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


def _triggered() -> hl.Model:
    """A decay with a delayed, prioritised trigger and a non-persistent one acting at once."""
    import sympy as sp

    from hemolab.model._expr import TIME

    x = sp.Symbol("x", real=True)
    return hl.Model(
        "triggered",
        time_unit="h",
        states=[hl.State("x", "-k*x + r", initial=1.0)],
        parameters=[hl.Parameter("k", 0.5), hl.Parameter("r", 0.0), hl.Parameter("v", 1.0)],
        triggers=[
            hl.Trigger(x < 0.5, {"r": "x"}, name="late", delay=2.0, priority=1),
            hl.Trigger(TIME > 1, {"v": "v + 1"}, name="first", priority=2, persistent=False),
            hl.Trigger(TIME > 1, {"v": "3*v"}, name="second", priority=1, values_at_trigger=False),
        ],
    )


@pytest.mark.slow
@pytest.mark.peers
def test_triggers_with_delays_and_priorities_round_trip() -> None:
    """Delays, priorities, persistence and useValuesFromTriggerTime survive the SBML form:
    the same course read back into hemolab and in libRoadRunner."""
    model = _triggered()
    grid = np.linspace(0.0, 10.0, 21)
    text = write_sbml(model)
    assert "<delay>" in text and "<priority>" in text and 'persistent="false"' in text
    ref = hl.simulate(model, grid=grid, rtol=1e-10, atol=1e-12, throw=True)
    again = hl.simulate(import_sbml(text).model, grid=grid, rtol=1e-10, atol=1e-12, throw=True)
    np.testing.assert_allclose(again.variable("x"), ref.variable("x"), rtol=1e-8)
    roadrunner = _roadrunner()
    rr = roadrunner.RoadRunner(text)
    rr.integrator.relative_tolerance = 1e-10
    rr.integrator.absolute_tolerance = 1e-12
    out = rr.simulate(0.0, 10.0, len(grid), selections=["time", "x", "v", "r"])
    np.testing.assert_allclose(out[:, 1], ref.variable("x")[0], rtol=1e-6, atol=1e-9)
    assert out[-1, 2] == pytest.approx(6.0)  # v + 1, then 3 v
    x_cross = 0.5  # r = x at the crossing (values from trigger time)
    assert out[-1, 3] == pytest.approx(x_cross, rel=1e-6)
