"""Steady-state dosing (SS=1/2, SS infusions) against closed forms and brute-force dosing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import hemolab as hl

K = 0.1  # 1/h


@pytest.fixture(scope="module")
def pk() -> hl.Model:
    return hl.Model(
        "pk_ss",
        time_unit="h",
        states=[hl.State("c", "-k*c", unit="mg")],
        parameters=[hl.Parameter("k", K, unit="h-1")],
    )


def dose(**cols) -> pd.DataFrame:
    base = {"ID": 1, "TIME": 0.0, "EVID": 1, "CMT": 1, "AMT": 10.0}
    base.update(cols)
    return pd.DataFrame([base])


def test_ss1_bolus_matches_the_geometric_series(pk):
    res = hl.simulate(pk, dose(SS=1, II=12.0), grid=[0.0, 6.0], rtol=1e-10, atol=1e-12)
    q = np.exp(-K * 12)
    peak = 10 / (1 - q)  # pre-dose 10q/(1-q) plus the dose
    np.testing.assert_allclose(res.variable("c")[0], [peak, peak * np.exp(-0.6)], rtol=1e-8)


def test_ss1_infusion_with_rate(pk):
    """10 mg over 2 h (RATE 5) every 12 h at steady state: closed form at the end of infusion."""
    res = hl.simulate(pk, dose(SS=1, II=12.0, RATE=5.0), grid=[2.0], rtol=1e-10, atol=1e-12)
    q = np.exp(-K * 12)
    # one cycle from the pre-dose level c_ss: c(2) = c_ss e^{-2k} + (5/k)(1 - e^{-2k})
    # and c(12) = c(2) e^{-10k} = c_ss  →  c_ss = (5/k)(1 - e^{-2k}) e^{-10k} / (1 - q)
    infused = 5 / K * (1 - np.exp(-2 * K))
    c_ss = infused * np.exp(-10 * K) / (1 - q)
    assert res.variable("c")[0, 0] == pytest.approx(c_ss * np.exp(-2 * K) + infused, rel=1e-7)


def test_steady_state_infusion_holds_its_level(pk):
    """AMT=0, RATE>0, II=0: the infusion's plateau rate/k from the start, and it keeps running."""
    ev = dose(SS=1, II=0.0, AMT=0.0, RATE=3.0)
    res = hl.simulate(pk, ev, grid=[0.0, 50.0, 500.0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(res.variable("c")[0], 3.0 / K, rtol=1e-7)


def test_ss2_adds_the_steady_state_to_the_current_state(pk):
    ev = pd.concat([dose(AMT=5.0), dose(TIME=6.0, SS=2, II=12.0)], ignore_index=True)
    res = hl.simulate(pk, ev, grid=[6.0], rtol=1e-10, atol=1e-12)
    q = np.exp(-K * 12)
    expected = 5 * np.exp(-0.6) + 10 / (1 - q)
    assert res.variable("c")[0, 0] == pytest.approx(expected, rel=1e-8)


def test_nonlinear_model_agrees_with_brute_force_dosing():
    """Michaelis–Menten elimination: SS=1 equals the state after 300 explicit doses."""
    mm = hl.Model(
        "mm",
        time_unit="h",
        states=[hl.State("c", "-vmax*c/(km + c)", unit="mg")],
        parameters=[hl.Parameter("vmax", 2.0, unit="mg/h"), hl.Parameter("km", 5.0, unit="mg")],
    )
    ss = hl.simulate(mm, dose(SS=1, II=12.0), grid=[6.0], rtol=1e-10, atol=1e-12)
    brute = hl.simulate(mm, dose(II=12.0, ADDL=299), grid=[299 * 12 + 6.0], rtol=1e-10, atol=1e-12)
    assert ss.variable("c")[0, 0] == pytest.approx(brute.variable("c")[0, 0], rel=1e-6)


def test_no_steady_state_is_an_error_naming_the_row():
    acc = hl.Model(
        "accumulate",
        time_unit="h",
        states=[hl.State("c", "0*c + k", unit="mg")],
        parameters=[hl.Parameter("k", 0.0, unit="mg/h")],
    )
    with pytest.raises(hl.ScheduleError, match=r"row 1: steady state not reached"):
        hl.simulate(acc, dose(SS=1, II=12.0), grid=[1.0])


def test_delay_models_refuse_steady_state():
    mg = hl.get_model("mackey_glass")
    with pytest.raises(hl.DatasetError, match=r"row 1, column SS: .*which has delays"):
        hl.simulate(mg, dose(SS=1, II=12.0), grid=[1.0])


def test_action_table_of_exactly_a_power_of_two(pk):
    """Regression: 16 actions (8 doses, 8 outputs) once made the pointer run off the table."""
    ev = dose(II=12.0, ADDL=7)
    res = hl.simulate(pk, ev, grid=np.arange(8) * 12.0 + 6.0, rtol=1e-10, atol=1e-12)
    assert res.status_labels == ["ok"]
    q = np.exp(-K * 12)
    expected = [10 * (1 - q ** (j + 1)) / (1 - q) * np.exp(-0.6) for j in range(8)]
    np.testing.assert_allclose(res.variable("c")[0], expected, rtol=1e-8)


def test_population_on_one_steady_state_regimen(pk):
    """One SS=1 regimen shared by patients with different k: each gets its own steady state."""
    k = np.array([0.1, 0.2])
    res = hl.simulate(pk, dose(SS=1, II=12.0), params={"k": k}, grid=[0.0], rtol=1e-10, atol=1e-12)
    expected = 10 / (1 - np.exp(-k * 12))
    np.testing.assert_allclose(res.variable("c")[:, 0], expected, rtol=1e-8)
    assert res.patient_ids == ("V0000000", "V0000001")
