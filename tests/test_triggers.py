"""State-triggered events: exact crossing times, discrete transitions, repeated firing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import hemolab as hl


@pytest.fixture(scope="module")
def production_model():
    return hl.Model(
        "decay_rescue",
        time_unit="h",
        states=[hl.State("x", "-k*x + r", initial=1.0, positive=True)],
        parameters=[hl.Parameter("k", 0.5), hl.Parameter("r", 0.0)],
        observables=[hl.Observable("X2", "2*x")],
    )


def test_crossing_time_is_exact_and_the_action_changes_the_course(production_model):
    """x = e^{-t/2} until X2 = 2x < 0.5, i.e. t* = 2 ln 4; then r = 1 (closed form after)."""
    rescue = hl.Trigger("X2 < 0.5", {"r": 1.0}, name="rescue")
    res = hl.simulate(
        production_model, t_end=10, dt=0.25, triggers=[rescue], rtol=1e-10, atol=1e-12
    )
    t_star = 2 * np.log(4)
    assert res.trigger_names == ("rescue",)
    assert res.trigger_first_time[0, 0] == pytest.approx(t_star, rel=1e-12)
    assert res.trigger_count[0, 0] == 1
    t, x = res.time[0], res.variable("x")[0]
    exact = np.where(t < t_star, np.exp(-0.5 * t), 2 + (0.25 - 2) * np.exp(-0.5 * (t - t_star)))
    np.testing.assert_allclose(x, exact, rtol=1e-8)


def test_batch_patients_fire_at_their_own_times(production_model):
    k = np.array([0.5, 0.25, 0.05])
    res = hl.simulate(
        production_model,
        params={"k": k},
        t_end=10,
        dt=1.0,
        triggers=[hl.Trigger("x < 0.25", {"r": 1.0})],
    )
    expected = np.log(4) / k
    fired = expected < 10
    np.testing.assert_allclose(res.trigger_first_time[fired, 0], expected[fired], rtol=1e-9)
    assert np.isnan(res.trigger_first_time[~fired, 0]).all()
    assert list(res.trigger_count[:, 0]) == [1, 1, 0]


def test_dose_that_makes_a_condition_true_fires_it_and_holds_the_next_dose():
    """'When x > 12, hold further doses' via bioavailability 1 - hold (a discrete transition)."""
    m = hl.Model(
        "held",
        time_unit="h",
        states=[hl.State("x", "-k*x", bioavailability="1 - hold")],
        parameters=[hl.Parameter("k", 0.01), hl.Parameter("hold", 0.0)],
    )
    ev = pd.DataFrame({"ID": 1, "TIME": [0.0, 10.0, 20.0], "EVID": 1, "CMT": 1, "AMT": 10.0})
    res = hl.simulate(
        m, ev, grid=[25.0], triggers=[hl.Trigger("x > 12", {"hold": 1})], rtol=1e-10, atol=1e-12
    )
    x10 = 10 * np.exp(-0.1) + 10  # > 12 right after the second dose: hold fires at t = 10
    assert res.trigger_first_time[0, 0] == pytest.approx(10.0)
    assert res.variable("x")[0, 0] == pytest.approx(x10 * np.exp(-0.15), rel=1e-8)


def test_repeated_firing_counts_every_upward_crossing():
    """x = sin t crosses 0.5 upward at π/6 + 2πk: four times on [0, 20]."""
    m = hl.Model(
        "sine",
        time_unit="h",
        states=[hl.State("x", "w*cos(w*t)", initial=0.0)],
        parameters=[hl.Parameter("c", 0.0), hl.Parameter("w", 1.0, unit="h-1")],
        observables=[hl.Observable("crossings", "c")],
    )
    res = hl.simulate(
        m, grid=[20.0], triggers=[hl.Trigger("x > 0.5", {"c": "c + 1"})], rtol=1e-10, atol=1e-12
    )
    assert res.trigger_count[0, 0] == 4
    assert res.variable("crossings")[0, 0] == 4
    assert res.trigger_first_time[0, 0] == pytest.approx(np.pi / 6, rel=1e-9)


@pytest.mark.parametrize(
    "trigger,match",
    [
        (hl.Trigger("ANC < 0.5", {"r": 1}), "undeclared name"),
        (hl.Trigger("x", {"r": 1}), "one comparison"),
        (hl.Trigger("x < 0.5", {"nope": 1}), "cannot assign 'nope'"),
        (hl.Trigger("x < 0.5", {}), "assign` is empty"),
        (hl.Trigger("x < 0.5", {"r": "q + 1"}), "undeclared"),
    ],
)
def test_invalid_triggers_are_rejected_with_the_element_named(production_model, trigger, match):
    with pytest.raises(hl.ModelError, match=match):
        hl.simulate(production_model, t_end=1.0, triggers=[trigger])


def _decay_with_trigger(**kw) -> hl.Model:
    return hl.Model(
        "decay_trig",
        time_unit="d",
        states=[hl.State("x", "-k*x", initial=1.0)],
        parameters=[hl.Parameter("k", 0.1)],
        **kw,
    )


def test_sympy_conditions_and_model_level_triggers():
    """A compound sympy condition (SBML-style) fires at the exact crossing; triggers declared
    on the model apply in every simulation."""
    import sympy as sp

    x, t = sp.Symbol("x", real=True), sp.Symbol("t", real=True)
    from hemolab.model._expr import TIME

    cond = sp.And(x < 0.5, TIME > 1)
    m = _decay_with_trigger(triggers=[hl.Trigger(cond, {"x": 1.0}, name="reset")])
    res = hl.simulate(m, t_end=10.0, dt=1.0, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(res.trigger_first_time[0, 0], 10 * np.log(2), rtol=1e-9)
    assert res.trigger_names == ("reset",)
    with pytest.raises(hl.UnknownSymbolError, match="undeclared"):
        _decay_with_trigger(triggers=[hl.Trigger(sp.Symbol("nope", real=True) > 1, {"x": 1.0})])
    del t


def test_initial_value_false_fires_at_the_start():
    """SBML initialValue: a condition true at t0 fires at t0 only when initial_value=False."""
    import sympy as sp

    x = sp.Symbol("x", real=True)
    for initial_value, fired in ((True, 0), (False, 1)):
        m = _decay_with_trigger(
            triggers=[hl.Trigger(x > 0.5, {"x": 2.0}, initial_value=initial_value)]
        )
        res = hl.simulate(m, grid=[0.0, 1.0], rtol=1e-10, atol=1e-12)
        assert res.trigger_count[0, 0] == fired
        expected = 2.0 if fired else 1.0
        np.testing.assert_allclose(res.variable("x")[0], expected * np.exp(-0.1 * np.array([0, 1])))
