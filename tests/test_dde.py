"""The method-of-steps DDE solver against tight references (SciPy method of steps, jitcdde)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.integrate import solve_ivp

import hemolab as hl
from hemolab._simulate import get_compiled
from hemolab.events._ops import OP_BOLUS, OP_RESET
from hemolab.solve import Status, run_actions
from tests._actions import table


def mos_reference(f, history: float, taus: list[float], t_end: float, grid, *, jumps=()):
    """Method of steps with DOP853 (rtol 1e-11) for x' = f(t, x, [x(t - tau_k)]).

    ``jumps``: (time, delta) added to x. Intervals are split at every propagated
    discontinuity so each piece is smooth.
    """
    segs: list = []  # (t0, t1, dense)

    def past(s):
        if s <= 0:
            return history
        for a, b, d in reversed(segs):
            if a <= s <= b:
                return float(d(s)[0])
        raise AssertionError(s)

    breaks = {0.0, t_end}
    for j, _ in jumps:
        breaks.add(j)
    for base in list(breaks):
        for tau in taus:
            for k in range(1, 6):
                if base + k * tau < t_end:
                    breaks.add(base + k * tau)
    breaks = sorted(breaks)
    x = history
    for a, b in itertools.pairwise(breaks):
        for j, dx in jumps:
            if j == a:
                x += dx
        # subdivide so that every lag falls into already-computed history
        n_sub = int(np.ceil((b - a) / min(taus))) or 1
        edges = np.linspace(a, b, n_sub + 1)
        for c, d in itertools.pairwise(edges):
            sol = solve_ivp(
                lambda t, y: [f(t, y[0], [past(t - tau) for tau in taus])],
                (c, d),
                [x],
                method="DOP853",
                rtol=1e-11,
                atol=1e-13,
                dense_output=True,
            )
            segs.append((c, d, sol.sol))
            x = float(sol.y[0, -1])

    def value(s):
        if s == t_end:
            return x
        for a, b, d in segs:
            if a <= s < b:
                return float(d(s)[0])
        raise AssertionError(s)

    return np.array([value(s) for s in grid])


def test_mackey_glass_item0_published_anchor(mg_model):
    """BENCHMARKS.md P2: x(200) = 0.9426105152 for x0 = 0.5, beta = 0.2 (error ≤ 1e-5)."""
    res = hl.simulate(mg_model, t_end=200.0, dt=1.0)
    x = res.variable("x")[0]
    assert res.status_labels == ["ok"]
    assert abs(x[200] - 0.9426105152) < 1e-5


def test_mackey_glass_batch_against_method_of_steps(mg_model):
    x0 = np.array([0.5, 1.2, 0.3])
    beta = np.array([0.2, 0.21, 0.19])
    grid = np.arange(0.0, 101.0)
    res = hl.simulate(mg_model, params={"x0": x0, "beta": beta}, grid=grid)
    for i in range(3):
        ref = mos_reference(
            lambda t, x, z, b=beta[i]: b * z[0] / (1 + z[0] ** 10) - 0.1 * x,
            x0[i],
            [17.0],
            100.0,
            grid,
        )
        np.testing.assert_allclose(res.variable("x")[i], ref, atol=1e-5)


@pytest.fixture(scope="module")
def two_delays():
    return hl.Model(
        "two_delays",
        time_unit="d",
        states=[hl.State("x", "-a*x(t - tau1) + b*x(t - tau2)*x - c*x", initial=1.0, history=0.5)],
        parameters=[
            hl.Parameter("a", 0.5),
            hl.Parameter("b", 0.2),
            hl.Parameter("c", 0.1),
            hl.Parameter("tau1", 1.0),
            hl.Parameter("tau2", 2.5),
        ],
    )


def test_two_delays_and_a_jump_in_the_initial_value(two_delays):
    """History 0.5, initial 1.0 (a jump at t=0 that propagates through both delays)."""
    grid = np.linspace(0, 12, 25)
    res = hl.simulate(two_delays, grid=grid, rtol=1e-8, atol=1e-10)

    def f(t, x, z):
        return -0.5 * z[0] + 0.2 * z[1] * x - 0.1 * x

    # reference: history 0.5 for t<0, x(0)=1.0
    ref = mos_reference(f, 0.5, [1.0, 2.5], 12.0, grid, jumps=[(0.0, 0.5)])
    np.testing.assert_allclose(res.variable("x")[0], ref, atol=1e-7)


def test_dose_into_a_delayed_state_propagates(two_delays):
    cm = get_compiled(two_delays)
    grid = np.linspace(0, 10, 21)
    sol = run_actions(
        cm, cm.inputs_from(), table(grid, [(3.0, OP_BOLUS, 0, 0.7)]), rtol=1e-8, atol=1e-10
    )

    def f(t, x, z):
        return -0.5 * z[0] + 0.2 * z[1] * x - 0.1 * x

    ref = mos_reference(f, 0.5, [1.0, 2.5], 10.0, grid, jumps=[(0.0, 0.5), (3.0, 0.7)])
    np.testing.assert_allclose(sol.values[0, :, 0], ref, atol=1e-7)


def test_reset_restarts_the_history(two_delays):
    """After EVID 3 at t=4 the solution restarts exactly as from t=0 (shifted by 4)."""
    cm = get_compiled(two_delays)
    grid = np.array([4.0, 5.0, 6.5, 9.0])
    sol = run_actions(
        cm, cm.inputs_from(), table(grid, [(4.0, OP_RESET, 0, 0.0)]), rtol=1e-9, atol=1e-11
    )
    fresh = run_actions(cm, cm.inputs_from(), table(grid - 4.0), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(sol.values[0, :, 0], fresh.values[0, :, 0], atol=1e-8)


def test_history_overflow_is_reported_not_silent(mg_model):
    cm = get_compiled(mg_model)
    grid = np.arange(0, 101.0)
    tight = dict(rtol=1e-10, atol=1e-12)
    small = run_actions(
        cm, cm.inputs_from(), table(grid), history_size=16, grow_history=False, **tight
    )
    assert small.status[0] == Status.HISTORY_OVERFLOW
    assert np.isnan(small.values[0]).all()
    # by default the ring grows for the patients that overflowed, and the answer is right
    auto = run_actions(cm, cm.inputs_from(), table(grid), history_size=16, **tight)
    big = run_actions(cm, cm.inputs_from(), table(grid), history_size=4096, **tight)
    assert auto.status[0] == Status.OK
    np.testing.assert_allclose(auto.values[0], big.values[0], atol=1e-9)


@pytest.mark.slow
def test_against_jitcdde(mg_model):
    """An independent C solver (jitcdde) agrees with hemolab on Mackey-Glass to 1e-5 (t ≤ 150)."""
    from bench.peers import JitcddeMackeyGlass

    grid = np.arange(0.0, 151.0)
    with JitcddeMackeyGlass(rtol=1e-9, atol=1e-11) as peer:
        x_peer = peer.solve_one(0.5, 0.2, grid)
    res = hl.simulate(mg_model, grid=grid, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(res.variable("x")[0], x_peer, atol=1e-5)


def test_dde_convergence_order():
    """x' = -x(t-1), history 1: exact piecewise-polynomial solution; fixed steps h, h/2, h/4
    give an observed order ≥ 4 at a node and between nodes (DP5 + 4th-order history)."""
    import math

    m = hl.Model(
        "lag_decay",
        time_unit="d",
        states=[hl.State("x", "-a*x(t - tau)", initial=1.0, history=1.0)],
        parameters=[hl.Parameter("a", 1.0, unit="d-1"), hl.Parameter("tau", 1.0, unit="d")],
    )
    cm = get_compiled(m)

    def exact(t):
        n = math.floor(t) + 1
        return sum((-1) ** k * (t - (k - 1)) ** k / math.factorial(k) for k in range(n + 1))

    pts = [7.3, 8.0]
    ref = np.array([exact(t) for t in pts])
    errors = np.array(
        [
            np.abs(
                run_actions(cm, cm.inputs_from(), table(pts), fixed_step=h).values[0, :, 0] - ref
            )
            for h in (0.5, 0.25, 0.125)
        ]
    )
    orders = np.log2(errors[:-1] / errors[1:])
    assert np.all(orders > 3.9), orders


def test_a_model_may_declare_the_history_it_needs(mg_model):
    """``Model.history_segments`` is where the ring starts (one compilation, not one per
    growth); a bad value names the model and what was expected."""
    from hemolab.solve import _engine

    declared = mg_model.replace(history_segments=128)
    grid = np.arange(0, 21.0)
    res = hl.simulate(declared, grid=grid)
    assert res.status[0] == 0
    assert _engine._RING_HINTS[get_compiled(declared)] == 128  # started there, did not grow
    np.testing.assert_allclose(res.variable("x"), hl.simulate(mg_model, grid=grid).variable("x"),
                               rtol=1e-12)  # fmt: skip
    assert hl.get_model("colijn_mackey").history_segments == 1024
    for bad in (0, 2.5, "64"):
        with pytest.raises(hl.ModelError, match=r"mackey_glass.*history_segments must be"):
            mg_model.replace(history_segments=bad)
