"""Wang 2010 romiplostim model (MODELS.md §6a): structural steady state, an independent SciPy
implementation of the published equations, and the qualitative shape of the platelet response."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.integrate import solve_ivp

import hemolab as hl
from hemolab.library._romiplostim import romiplostim_wang2010

DAY = 24.0
GRID = np.arange(0.0, 40 * DAY + 1e-9, 6.0)
# (route, µg/kg): single doses on day 0
REGIMENS = (("SC", 1.0), ("SC", 3.0), ("SC", 10.0), ("IV", 1.0))
WT = 70.0


@pytest.fixture(scope="module")
def model() -> hl.Model:
    return romiplostim_wang2010()


@pytest.fixture(scope="module")
def single_doses(model):
    """PLT (N, T) for REGIMENS, one subject each, in one batched call (hemolab rtol 1e-8)."""
    ev = pd.DataFrame(
        {
            "ID": np.arange(1, len(REGIMENS) + 1),
            "TIME": 0.0,
            "EVID": 1,
            "CMT": ["A_dep" if route == "SC" else "A_c" for route, _ in REGIMENS],
            "AMT": [amt for _, amt in REGIMENS],
            "AMT_UNIT": "ug/kg",
            "WT": WT,
        }
    )
    res = hl.simulate(model, ev, grid=GRID, rtol=1e-8, atol=1e-10, throw=True)
    np.testing.assert_allclose(res.time, np.broadcast_to(GRID, res.time.shape))
    return res.variable("PLT")


def _scipy_plt(p: dict[str, float], route: str, dose_ug_per_kg: float) -> np.ndarray:
    """The published equations (MODELS.md §6a) written out again, solved by LSODA."""
    n = 10
    vtot = p["Vc"] * WT
    kin = p["PLT0"] / p["T_PLT"]
    kp, kl = n / p["T_P"], n / p["T_PLT"]

    def rhs(_t, y):
        a_dep, a_c, a_p = y[:3]
        prec, plat = y[3 : 3 + n], y[3 + n :]
        ctot = a_c / vtot
        b = ctot - p["xi"] * plat.sum() - p["KD"]
        cf = 0.5 * (b + np.sqrt(b * b + 4 * p["KD"] * ctot))
        dr = ctot - cf
        stim = p["Smax"] * cf / (p["SC50"] + cf)
        dy = np.empty_like(y)
        dy[0] = -p["ka"] * a_dep
        dy[1] = (
            p["ka"] * a_dep
            - (p["kel"] + p["kcp"]) * cf * vtot
            + p["kpc"] * a_p
            - p["kint"] * dr * vtot
        )
        dy[2] = p["kcp"] * cf * vtot - p["kpc"] * a_p
        dy[3] = kin * (1 + stim) - kp * prec[0]
        dy[4 : 3 + n] = kp * (prec[:-1] - prec[1:])
        dy[3 + n] = kp * prec[-1] - kl * plat[0]
        dy[4 + n :] = kl * (plat[:-1] - plat[1:])
        return dy

    y0 = np.zeros(3 + 2 * n)
    if route == "SC":
        y0[0] = p["F"] * dose_ug_per_kg * WT
    else:
        y0[1] = dose_ug_per_kg * WT
    y0[3 : 3 + n] = p["PLT0"] * p["T_P"] / (n * p["T_PLT"])
    y0[3 + n :] = p["PLT0"] / n
    sol = solve_ivp(
        rhs, (GRID[0], GRID[-1]), y0, method="LSODA", t_eval=GRID, rtol=1e-10, atol=1e-12
    )
    assert sol.success, sol.message
    return sol.y[3 + n :].sum(axis=0)


def test_steady_state_without_drug(model):
    """MODELS.md §6 target 1 (derived, exact): P_i = PLT0·T_P/(10·T_PLT), L_i = PLT0/10 hold
    for 1000 h without drug; k_in = PLT0/T_PLT = 0.99 ×10⁹/L/h for PLT0 250."""
    p = {q.name: q.value for q in model.parameters}
    res = hl.simulate(model, t_end=1000.0, dt=50.0, rtol=1e-10, atol=1e-12)
    prec = p["PLT0"] * p["T_P"] / (10 * p["T_PLT"])
    for i in range(1, 11):
        np.testing.assert_allclose(res.variable(f"P{i}")[0], prec, rtol=1e-9)
        np.testing.assert_allclose(res.variable(f"L{i}")[0], p["PLT0"] / 10, rtol=1e-9)
    np.testing.assert_allclose(res.variable("PLT")[0], p["PLT0"], rtol=1e-9)
    # precursor pool = PLT0·T_P/T_PLT = 0.56·PLT0
    assert round(10 * prec / p["PLT0"], 2) == 0.56
    assert round(p["PLT0"] / p["T_PLT"], 2) == 0.99


def test_agrees_with_independent_scipy_implementation(model, single_doses):
    """derived: 1, 3, 10 µg/kg SC and 1 µg/kg IV (70 kg), PLT on a 6-h grid over 40 days agrees
    with a SciPy LSODA (rtol 1e-10) solution of the same published equations to 1e-5 rel."""
    p = {q.name: q.value for q in model.parameters}
    for (route, dose), plt in zip(REGIMENS, single_doses, strict=True):
        ref = _scipy_plt(p, route, dose)
        np.testing.assert_allclose(plt, ref, rtol=1e-5, err_msg=f"{dose} ug/kg {route}")


def test_platelet_response_shape(single_doses):
    """Qualitative (cf. Harker 2000 PEG-rHuMGDF, MODELS.md §6 target 2): the 10 µg/kg SC peak
    exceeds the 1 µg/kg one, SC peaks fall between day 10 and day 16, and the count is back
    within 20 % of baseline by day 28."""
    plt0 = 250.0
    days = GRID / DAY
    sc = {
        dose: plt
        for (route, dose), plt in zip(REGIMENS, single_doses, strict=True)
        if route == "SC"
    }
    assert sc[10.0].max() > sc[3.0].max() > sc[1.0].max() > 1.2 * plt0
    for dose, plt in sc.items():
        assert 10.0 <= days[plt.argmax()] <= 16.0, dose
        assert abs(plt[np.argmin(np.abs(days - 28))] / plt0 - 1) < 0.2, dose
