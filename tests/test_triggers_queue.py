"""Delayed triggers, priorities, persistence and values taken when a condition turns true:
the pending-firing queue of the engine (SBML L3 event semantics), checked analytically."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import hemolab as hl
from hemolab.model._expr import TIME

X = sp.Symbol("x", real=True)
V = sp.Symbol("v", real=True)


def _decay(**kw) -> hl.Model:
    """x' = -k x + r, x(0) = 1, k = 0.5; ``v``/``w`` are parameters for triggers to set."""
    return hl.Model(
        "decay_queue",
        time_unit="h",
        states=[hl.State("x", "-k*x + r", initial=1.0)],
        parameters=[
            hl.Parameter("k", 0.5),
            hl.Parameter("r", 0.0),
            hl.Parameter("v", 1.0),
            hl.Parameter("w", 0.0),
        ],
        observables=[hl.Observable("R", "r"), hl.Observable("V", "v"), hl.Observable("W", "w")],
        **kw,
    )


def _run(triggers, **kw):
    kw.setdefault("t_end", 10.0)
    kw.setdefault("dt", 0.5)
    return hl.simulate(_decay(), triggers=triggers, rtol=1e-10, atol=1e-12, **kw)


def test_delayed_trigger_acts_delay_after_the_crossing():
    """x = e^{-t/2} crosses 0.5 at t* = 2 ln 2; r = 1 from t* + 2 on (closed form after)."""
    res = _run([hl.Trigger("x < 0.5", {"r": 1.0}, delay=2.0)])
    t_star, t_act = 2 * np.log(2), 2 * np.log(2) + 2
    assert res.trigger_first_time[0, 0] == pytest.approx(t_act, rel=1e-9)
    t, x = res.time[0], res.variable("x")[0]
    x_act = np.exp(-0.5 * t_act)
    exact = np.where(t < t_act, np.exp(-0.5 * t), 2 + (x_act - 2) * np.exp(-0.5 * (t - t_act)))
    np.testing.assert_allclose(x, exact, rtol=1e-8)
    assert t_star < t_act


@pytest.mark.parametrize(("values_at_trigger", "expected"), [(True, 0.5), (False, None)])
def test_values_at_trigger_or_when_acting(values_at_trigger, expected):
    """r = x: 0.5 when computed at the crossing, x(t* + 1) = 0.5 e^{-1/2} when acting."""
    res = _run([hl.Trigger("x < 0.5", {"r": "x"}, delay=1.0, values_at_trigger=values_at_trigger)])
    r_end = res.variable("R")[0, -1]
    if expected is None:
        expected = 0.5 * np.exp(-0.5)
    assert r_end == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(
    ("prio_a", "prio_b", "values_at_trigger", "v_end"),
    [
        (2, 1, False, 6.0),  # v + 1, then 3 v
        (1, 2, False, 4.0),  # 3 v, then v + 1
        (2, 1, True, 3.0),  # both computed at the crossing (v = 1): the last to act wins
        (1, 2, True, 2.0),
    ],
)
def test_priorities_order_simultaneous_triggers(prio_a, prio_b, values_at_trigger, v_end):
    common = dict(values_at_trigger=values_at_trigger)
    a = hl.Trigger(TIME > 1, {"v": "v + 1"}, name="a", priority=prio_a, **common)
    b = hl.Trigger(TIME > 1, {"v": "3*v"}, name="b", priority=prio_b, **common)
    res = _run([a, b], t_end=2.0)
    assert res.variable("V")[0, -1] == pytest.approx(v_end)
    assert list(res.trigger_count[0]) == [1, 1]


@pytest.mark.parametrize(("persistent", "w_end"), [(True, 1.0), (False, 0.0)])
def test_a_trigger_that_turns_false_before_acting_is_cancelled_unless_persistent(persistent, w_end):
    """b's condition (t > 1 and v < 2) is true at t = 1; a (higher priority) sets v = 5
    first, so b's condition is false when b would act."""
    a = hl.Trigger(TIME > 1, {"v": 5.0}, name="a", priority=10)
    b = hl.Trigger(sp.And(TIME > 1, V < 2), {"w": 1.0}, name="b", priority=1, persistent=persistent)
    res = _run([a, b], t_end=2.0)
    assert res.variable("W")[0, -1] == w_end
    # a delayed trigger whose window closes before it is due: cancelled unless persistent
    window = hl.Trigger(sp.And(TIME > 1, TIME < 1.5), {"w": 1.0}, delay=1.0, persistent=persistent)
    res = _run([window], t_end=3.0)
    assert res.variable("W")[0, -1] == w_end


def test_a_window_condition_is_not_jumped_over():
    """x' = -1 is integrated exactly in very long steps; the window 3 <= x <= 4.3 still fires
    (steps stop where either comparison changes sign), with the delay counted from x = 4.3."""
    m = hl.Model(
        "ramp",
        time_unit="h",
        states=[hl.State("x", "-1", initial=10.0)],
        parameters=[hl.Parameter("hit", 0.0)],
        triggers=[hl.Trigger(sp.And(X <= 4.3, X >= 3), {"x": 10.0}, delay=2.0)],
    )
    res = hl.simulate(m, t_end=10.0, dt=1.0, rtol=1e-10, atol=1e-12)
    assert res.trigger_first_time[0, 0] == pytest.approx(7.7, rel=1e-9)
    np.testing.assert_allclose(res.variable("x")[0, 8:], [9.7, 8.7, 7.7], rtol=1e-10)


def test_pending_firings_beyond_the_queue_are_retried_with_a_larger_queue():
    """A sawtooth clock (c' = 1, reset to 0 at 1) crosses 0.5 every hour; with a 25 h delay
    ~25 firings are pending at once (the default queue holds 18): every one still acts, at
    its own time."""
    c = sp.Symbol("c", real=True)
    m = hl.Model(
        "clock",
        time_unit="h",
        states=[hl.State("c", "1", initial=0.0)],
        parameters=[hl.Parameter("n", 0.0)],
        observables=[hl.Observable("N", "n")],
        triggers=[
            hl.Trigger(c > 1, {"c": 0.0}, name="reset"),
            hl.Trigger(c > 0.5, {"n": "n + 1"}, name="count", delay=25.0, values_at_trigger=False),
        ],
    )
    res = hl.simulate(m, t_end=40.0, dt=1.0, rtol=1e-10, atol=1e-12)
    # rises at k + 1/2, acts at k + 1/2 + 25 <= 40: k = 0..14
    assert res.trigger_count[0, 1] == 15
    assert res.variable("N")[0, -1] == 15
    assert res.trigger_first_time[0, 1] == pytest.approx(25.5, rel=1e-9)


def test_a_delay_that_is_negative_is_refused():
    with pytest.raises(hl.ModelError, match="delay must be >= 0"):
        _run([hl.Trigger("x < 0.5", {"r": 1.0}, delay=-1.0)])
    # negative only while solving: that patient does not solve, and says so
    res = hl.simulate(
        _decay(),
        triggers=[hl.Trigger("x < 0.5", {"r": 1.0}, delay="x - 1")],
        t_end=5.0,
        dt=1.0,
        throw=False,
    )
    assert res.status[0] != 0
