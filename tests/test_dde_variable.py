"""Delays whose length changes with time or with the state (``x(t - tau)`` with ``tau`` an
assignment of ``t`` and states): analytic solutions, an independent RK4 method of steps, and
the error when a delay the equations read falls to zero."""

from __future__ import annotations

import numpy as np
import pytest

import hemolab as hl


def _model(tau: str, a: float = -0.5) -> hl.Model:
    return hl.Model(
        "variable_delay",
        time_unit="d",
        states=[hl.State("x", "a*x(t - tau)", initial=1.0, history=1.0)],
        parameters=[hl.Parameter("a", a)],
        assignments={"tau": tau},
        check_units=False,  # unitless numbers, as in the SBML Test Suite's cases
    )


def test_time_dependent_delay_matches_the_method_of_steps_by_hand():
    """x' = a x(t/2 - 1), x = 1 before 0: x = 1 + a t on [0, 2], then
    x = 1 + 2a + a (t - 2) + a² (t/2 - 1)² on [2, 6]."""
    a = -0.5
    grid = np.linspace(0.0, 6.0, 25)
    res = hl.simulate(_model("1 + t/2", a), grid=grid, rtol=1e-10, atol=1e-12, throw=True)
    exact = np.where(
        grid <= 2, 1 + a * grid, 1 + 2 * a + a * (grid - 2) + a**2 * (grid / 2 - 1) ** 2
    )
    np.testing.assert_allclose(res.variable("x")[0], exact, rtol=1e-9, atol=1e-10)


def _rk4_reference(a: float, t_end: float, h: float) -> tuple[np.ndarray, np.ndarray]:
    """x' = a x(t - (1 + x(t)²)), x = 1 in the past: classical RK4 on a fixed grid, the past
    read by cubic Hermite interpolation of the computed points (independent of hemolab)."""
    n = round(t_end / h)
    ts = np.linspace(0.0, t_end, n + 1)
    xs = np.empty(n + 1)
    fs = np.empty(n + 1)
    xs[0] = 1.0

    def past(q: float, upto: int) -> float:
        if q <= 0.0:
            return 1.0
        i = min(int(q / h), upto - 1)
        t0, x0, x1, f0, f1 = ts[i], xs[i], xs[i + 1], fs[i], fs[i + 1]
        s = (q - t0) / h
        h00, h10 = 2 * s**3 - 3 * s**2 + 1, s**3 - 2 * s**2 + s
        h01, h11 = -2 * s**3 + 3 * s**2, s**3 - s**2
        return h00 * x0 + h10 * h * f0 + h01 * x1 + h11 * h * f1

    def rhs(t: float, x: float, upto: int) -> float:
        return a * past(t - (1.0 + x * x), upto)

    fs[0] = rhs(0.0, 1.0, 1)
    for k in range(n):
        t, x = ts[k], xs[k]
        # the delay is >= 1 > h: every stage reads the already computed past
        k1 = rhs(t, x, k + 1) if k else fs[0]
        k2 = rhs(t + h / 2, x + h / 2 * k1, k + 1)
        k3 = rhs(t + h / 2, x + h / 2 * k2, k + 1)
        k4 = rhs(t + h, x + h * k3, k + 1)
        xs[k + 1] = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        fs[k + 1] = rhs(t + h, xs[k + 1], k + 1)
    return ts, xs


def test_state_dependent_delay_matches_an_independent_rk4():
    a = -0.8
    ts, xs = _rk4_reference(a, 8.0, 1e-3)
    grid = np.linspace(0.0, 8.0, 17)
    res = hl.simulate(_model("1 + x*x", a), grid=grid, rtol=1e-10, atol=1e-12, throw=True)
    ref = np.interp(grid, ts, xs)
    np.testing.assert_allclose(res.variable("x")[0], ref, rtol=2e-6, atol=1e-8)
    assert res.variable("x")[0, -1] < 0  # it crossed zero: the delay did move


def test_a_delay_the_equations_read_may_not_reach_zero():
    with pytest.raises(hl.SolveError, match="fell to 0"):
        hl.simulate(_model("1 - t/2"), t_end=4.0, dt=0.5, throw=True)


def test_a_delay_read_only_by_outputs_may_start_at_zero():
    """y = x(t - t/2) = x(t/2) with x = 1 + t (SBML test case 00982's construction)."""
    m = hl.Model(
        "pantograph_output",
        time_unit="d",
        states=[hl.State("x", "1", initial=1.0, history=1.0)],
        parameters=[],
        assignments={"tau": "t/2"},
        observables=[hl.Observable("y", "x(t - tau)")],
        check_units=False,
    )
    grid = np.linspace(0.0, 4.0, 9)
    res = hl.simulate(m, grid=grid, rtol=1e-10, atol=1e-12, throw=True)
    np.testing.assert_allclose(res.variable("y")[0], 1 + grid / 2, rtol=1e-10)
