"""The marrow-failure showcase model against MODELS.md §4 and an exact linear solution.

§4 target 1 (derived, exact): at Hb 15 g/dL and a 120-day lifespan, k_in = 0.125 g/dL/day;
when production stops, a transit-chain (gamma lifespan) model gives an S-shaped decline, not
the point-lifespan's straight line. With production stopped (M = 0 from the start) the model
is linear with constant coefficients, so its exact solution is a matrix exponential (SciPy),
independent of hemolab's solver.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import expm

import hemolab as hl
from hemolab.library import get_model


def test_production_stop_gives_the_gamma_lifespan_decline_exactly() -> None:
    model = get_model("marrow_failure_hb")
    hb0, ls, pt = 15.0, 120.0, 4.68
    kin = hb0 / ls
    assert kin == pytest.approx(0.125)  # MODELS.md §4 target 1
    grid = np.arange(0.0, 241.0, 10.0)
    # production stops within minutes: capacity lost at 1000/day
    kfail = 1000.0
    params = {"Hb0": hb0, "RBCLS": ls, "RBCPT": pt, "kfail": kfail}
    res = hl.simulate(model, None, params=params, grid=grid, rtol=1e-10, atol=1e-12)
    hb = res.variable("Hb")[0]
    # exact: x' = K x on (M, prog, Hb1..Hb4), all linear with constant coefficients
    k = 4.0 / ls
    K = np.zeros((6, 6))
    K[0, 0] = -kfail
    K[1, 0], K[1, 1] = kin, -1 / pt
    K[2, 1], K[2, 2] = 1 / pt, -k
    for i in (3, 4, 5):
        K[i, i - 1], K[i, i] = k, -k
    x0 = np.array([1.0, kin * pt, hb0 / 4, hb0 / 4, hb0 / 4, hb0 / 4])
    exact = np.array([expm(K * t) @ x0 for t in grid])[:, 2:].sum(axis=1)
    np.testing.assert_allclose(hb, exact, rtol=1e-7)
    slope = np.diff(exact) / np.diff(grid)
    # S-shaped: slower at first (no cell is old yet), steepest near k_in, slower again;
    # the point lifespan would fall at k_in throughout and reach 0 at day 120
    assert slope[0] > -0.1 and -0.125 * 1.02 < slope.min() < -0.125 * 0.95
    assert 0 < np.argmin(slope) < len(slope) // 2 and slope[-1] > -0.01
    assert exact[grid == 120.0][0] > 3.0


def test_typical_course_crosses_7_g_dl_about_three_months_after_six_months() -> None:
    model = get_model("marrow_failure_hb")
    res = hl.simulate(model, None, t_end=400.0, dt=1.0)
    hb = res.variable("Hb")[0]
    assert hb[0] == pytest.approx(13.0)
    assert 9.0 < hb[180] < 9.5  # a third lost over six months
    crossing = int(np.argmax(hb < 7.0))
    assert 240 < crossing < 290  # "about three months" after the sixth monthly CBC
