"""Every EVID end to end through ``hl.simulate`` against hand-computed closed forms.

The ``one_cmt`` fixture is one-compartment PK with first-order absorption:

    d depot/dt   = -ka·depot                       (F1, ALAG on depot)
    d central/dt =  ka·depot - (CL/V)·central      (model rate R2, duration D2 on central)

with ka = 1 h⁻¹, CL = 2 L/h, V = 10 L, so k = CL/V = 0.2 h⁻¹. Between events the solution is
known in closed form (Bateman function, zero-order input); :func:`advance` below writes it
once, and every test walks its dataset by hand with it. Solver tolerance rtol 1e-8; the
assertions are 1e-6 relative (plus 1e-9 mg absolute for exact zeros).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest

import hemolab as hl
from hemolab import DatasetError, HemolabWarning

KA, K = 1.0, 0.2  # h⁻¹: ka, CL/V at the fixture's typical values
SOLVER = {"rtol": 1e-8, "atol": 1e-10}
RTOL, ATOL = 1e-6, 1e-9


# --- closed forms ---------------------------------------------------------------------------


def advance(
    depot: float,
    central: float,
    tau: float,
    *,
    k: float = K,
    r_depot: float = 0.0,
    r_central: float = 0.0,
) -> tuple[float, float]:
    """Exact (depot, central) after ``tau`` h with zero-order inputs ``r_*`` (mg/h).

    depot(τ)   = a·e^{-ka τ} + r_a/ka·(1 − e^{-ka τ})
    central(τ) = c·e^{-kτ} + a·ka/(ka−k)·(e^{-kτ} − e^{-ka τ})          (Bateman)
                 + r_c/k·(1 − e^{-kτ})                                 (infusion)
                 + r_a·[ka(1 − e^{-kτ})/(k(ka−k)) − (1 − e^{-ka τ})/(ka−k)]
    """
    ea, ek = math.exp(-KA * tau), math.exp(-k * tau)
    a = depot * ea + r_depot / KA * (1 - ea)
    c = (
        central * ek
        + depot * KA / (KA - k) * (ek - ea)
        + r_central / k * (1 - ek)
        + r_depot * (KA * (1 - ek) / (k * (KA - k)) - (1 - ea) / (KA - k))
    )
    return a, c


def bateman(t: np.ndarray, dose: float, *, f: float = 1.0, lag: float = 0.0) -> np.ndarray:
    """Central amount after an oral (depot) bolus at time 0: F·D·ka/(ka−k)·(e^{-kτ} − e^{-ka τ})."""
    tau = np.maximum(np.asarray(t, dtype=float) - lag, 0.0)
    return f * dose * KA / (KA - K) * (np.exp(-K * tau) - np.exp(-KA * tau))


def piecewise(
    times: Sequence[float], changes: Sequence[tuple[float, str, float | tuple[int, float]]]
) -> np.ndarray:
    """Walk (time, what, value) changes in order and report (depot, central) at ``times``.

    ``what``: ``depot``/``central`` add a bolus, ``r_depot``/``r_central`` add to a rate,
    ``k`` sets CL/V, ``reset`` zeroes everything, ``replace``/``multiply`` act on central. A
    report at a change time is taken *after* that change (use distinct times for pre-dose).
    """
    out = []
    for t_out in times:
        a = c = ra = rc = 0.0
        k, now = K, 0.0
        for t_ch, what, value in changes:
            if t_ch > t_out:
                break
            a, c = advance(a, c, t_ch - now, k=k, r_depot=ra, r_central=rc)
            now = t_ch
            v = float(value)  # type: ignore[arg-type]
            if what == "depot":
                a += v
            elif what == "central":
                c += v
            elif what == "r_depot":
                ra += v
            elif what == "r_central":
                rc += v
            elif what == "k":
                k = v
            elif what == "reset":
                a = c = ra = rc = 0.0
            elif what == "replace":
                c = v
            elif what == "multiply":
                c *= v
        a, c = advance(a, c, t_out - now, k=k, r_depot=ra, r_central=rc)
        out.append((a, c))
    return np.array(out)


# --- helpers --------------------------------------------------------------------------------


def dataset(rows: list[dict[str, object]]) -> pd.DataFrame:
    """A §A dataset as text, as read from a CSV; absent cells are missing ('.')."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    return pd.DataFrame([[str(row.get(c, ".")) for c in columns] for row in rows], columns=columns)


def dose(t: float, amt: float, cmt: object, **extra: object) -> dict[str, object]:
    return {"ID": 1, "TIME": t, "EVID": 1, "AMT": amt, "CMT": cmt, **extra}


def obs(t: float, **extra: object) -> dict[str, object]:
    return {"ID": 1, "TIME": t, "EVID": 0, "AMT": 0, **extra}


def simulate(model: hl.Model, rows: list[dict[str, object]], **kw: object) -> hl.Results:
    res = hl.simulate(model, dataset(rows), **SOLVER, **kw)  # type: ignore[arg-type]
    assert res.status_labels == ["ok"] * res.n_patients
    return res


def outputs(res: hl.Results, i: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(times, depot, central) of patient ``i``, padding removed."""
    keep = ~np.isnan(res.time[i])
    return (
        res.time[i][keep],
        res.variable("depot")[i][keep],
        res.variable("central")[i][keep],
    )


def close(actual: np.ndarray, expected: np.ndarray) -> None:
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL)


# --- EVID 0 and 1 ---------------------------------------------------------------------------


def test_bolus_into_depot_with_observations_and_grid(one_cmt: hl.Model) -> None:
    rows = [dose(0, 100, 1), *(obs(t) for t in (0.5, 1.0, 2.5, 7.0, 30.0))]
    res = simulate(one_cmt, rows, t_end=24.0, dt=4.0)
    t, depot, central = outputs(res)
    # union of the grid 0:4:24 and the observations (30 h lies beyond the grid)
    np.testing.assert_array_equal(t, [0, 0.5, 1, 2.5, 4, 7, 8, 12, 16, 20, 24, 30])
    np.testing.assert_array_equal(res.is_observation[0][: len(t)], np.isin(t, [0.5, 1, 2.5, 7, 30]))
    close(depot, 100 * np.exp(-KA * t))
    close(central, bateman(t, 100))
    close(res.variable("Cc")[0][: len(t)], bateman(t, 100) / 10.0)  # observable central/V
    assert res.time_unit == "h"


def test_bolus_into_central_by_state_name(one_cmt: hl.Model) -> None:
    res = simulate(one_cmt, [dose(0, 50, "central"), obs(3.0)], t_end=12.0, dt=6.0)
    t, depot, central = outputs(res)
    np.testing.assert_array_equal(t, [0, 3, 6, 12])
    close(depot, np.zeros_like(t))
    close(central, 50 * np.exp(-K * t))


def test_observation_tied_with_a_dose_is_pre_dose_by_default(one_cmt: hl.Model) -> None:
    # central boluses at 0 and 12 h; observations at 0 and 12 h (trough) and 13 h
    rows = [obs(0.0), dose(0, 100, 2), dose(12, 100, 2), obs(12.0), obs(13.0)]
    with pytest.warns(HemolabWarning, match="pre-dose"):
        res = simulate(one_cmt, rows)
    t, _, central = outputs(res)
    np.testing.assert_array_equal(t, [0, 12, 13])
    trough = 100 * math.exp(-K * 12)
    close(central, [0.0, trough, (trough + 100) * math.exp(-K)])


def test_dose_before_obs_reports_the_post_dose_value(one_cmt: hl.Model) -> None:
    rows = [obs(0.0), dose(0, 100, 2), dose(12, 100, 2), obs(12.0), obs(13.0)]
    with pytest.warns(HemolabWarning, match="post-dose"):
        res = simulate(one_cmt, rows, dose_before_obs=True)
    _, _, central = outputs(res)
    trough = 100 * math.exp(-K * 12)
    close(central, [100.0, trough + 100, (trough + 100) * math.exp(-K)])


def test_addl_implied_dose_tie_is_pre_dose_too(one_cmt: hl.Model) -> None:
    rows = [dose(0, 100, 2, II=12, ADDL=1), obs(12.0), obs(14.0)]
    with pytest.warns(HemolabWarning, match="pre-dose"):
        res = simulate(one_cmt, rows)
    _, _, central = outputs(res)
    trough = 100 * math.exp(-K * 12)
    close(central, [trough, (trough + 100) * math.exp(-2 * K)])


def test_ii_addl_repeats_depot_doses(one_cmt: hl.Model) -> None:
    rows = [dose(0, 100, 1, II=8, ADDL=3), obs(40.0)]
    res = simulate(one_cmt, rows, t_end=36.0, dt=3.0)
    t, depot, central = outputs(res)
    doses = [0.0, 8.0, 16.0, 24.0]
    close(central, sum(bateman(t - d, 100) * (t >= d) for d in doses))
    close(depot, sum(100 * np.exp(-KA * (t - d)) * (t >= d) for d in doses))
    ev = res.events.to_pandas()
    assert ev["time"].tolist() == doses and set(ev["kind"]) == {"bolus"}


# --- infusions ------------------------------------------------------------------------------


def test_infusion_with_rate_into_central(one_cmt: hl.Model) -> None:
    # 100 mg at 20 mg/h: 5 h
    res = simulate(one_cmt, [dose(1, 100, 2, RATE=20), obs(30.0)], t_end=12.0, dt=0.5)
    t, _, central = outputs(res)
    close(central, piecewise(t, [(1, "r_central", 20), (6, "r_central", -20)])[:, 1])
    close(central[t == 6.0], 100 * (1 - math.exp(-5 * K)) / 5 / K)


def test_infusion_with_dur_into_central(one_cmt: hl.Model) -> None:
    # 100 mg over 4 h: 25 mg/h
    res = simulate(one_cmt, [dose(0, 100, 2, DUR=4), obs(30.0)], t_end=12.0, dt=0.5)
    t, _, central = outputs(res)
    close(central, piecewise(t, [(0, "r_central", 25), (4, "r_central", -25)])[:, 1])


def test_model_rate_rate_minus_1(one_cmt: hl.Model) -> None:
    # R2 = 5 mg/h (typical): 20 mg runs 4 h; with R2 = 4 mg/h it runs 5 h
    for r2, length in ((5.0, 4.0), (4.0, 5.0)):
        res = simulate(
            one_cmt, [dose(0, 20, 2, RATE=-1), obs(30.0)], t_end=12.0, dt=0.5, params={"R2": r2}
        )
        t, _, central = outputs(res)
        close(central, piecewise(t, [(0, "r_central", r2), (length, "r_central", -r2)])[:, 1])


def test_model_duration_rate_minus_2(one_cmt: hl.Model) -> None:
    # D2 = 2 h (typical): 20 mg at 10 mg/h; with D2 = 3 h, at 20/3 mg/h
    for d2 in (2.0, 3.0):
        res = simulate(
            one_cmt, [dose(0, 20, 2, RATE=-2), obs(30.0)], t_end=12.0, dt=0.5, params={"D2": d2}
        )
        t, _, central = outputs(res)
        r = 20 / d2
        close(central, piecewise(t, [(0, "r_central", r), (d2, "r_central", -r)])[:, 1])


def test_rate_infusion_into_depot_lasts_f_amt_over_rate(one_cmt: hl.Model) -> None:
    # NONMEM: with F1 = 0.5, 100 mg at 10 mg/h runs F·AMT/RATE = 5 h (50 mg absorbed)
    res = simulate(
        one_cmt, [dose(0, 100, 1, RATE=10), obs(30.0)], t_end=12.0, dt=0.5, params={"F1": 0.5}
    )
    t, depot, central = outputs(res)
    expected = piecewise(t, [(0, "r_depot", 10), (5, "r_depot", -10)])
    close(depot, expected[:, 0])
    close(central, expected[:, 1])


# --- lag and bioavailability ---------------------------------------------------------------


def test_lag_and_bioavailability_from_params(one_cmt: hl.Model) -> None:
    rows = [dose(0, 100, 1), obs(1.0), obs(2.25)]
    res = simulate(one_cmt, rows, t_end=12.0, dt=3.0, params={"F1": 0.6, "ALAG": 1.5})
    t, depot, central = outputs(res)
    np.testing.assert_array_equal(t, [0, 1, 2.25, 3, 6, 9, 12])
    close(central, bateman(t, 100, f=0.6, lag=1.5))
    close(depot, np.where(t >= 1.5, 60 * np.exp(-KA * (t - 1.5)), 0.0))
    ev = res.events.to_pandas()
    assert ev["time"].tolist() == [1.5]  # the dose is applied (and recorded) after the lag


def test_bioavailability_scales_central_dur_infusion_only_where_declared(
    one_cmt: hl.Model,
) -> None:
    # F1 belongs to depot; central has none, so a central infusion is unaffected by F1
    res = simulate(
        one_cmt, [dose(0, 100, 2, DUR=4), obs(30.0)], t_end=8.0, dt=2.0, params={"F1": 0.3}
    )
    t, _, central = outputs(res)
    close(central, piecewise(t, [(0, "r_central", 25), (4, "r_central", -25)])[:, 1])


# --- EVID 2, 3, 4, 5, 6 ----------------------------------------------------------------------


def test_evid2_param_event_changes_cl_from_that_time_on(one_cmt: hl.Model) -> None:
    rows = [
        dose(0, 100, 1),
        {"ID": 1, "TIME": 4, "EVID": 2, "EVENT": "param", "PARAM": "CL", "VALUE": 4},
        obs(30.0),
    ]
    res = simulate(one_cmt, rows, t_end=12.0, dt=0.5)
    t, depot, central = outputs(res)
    expected = piecewise(t, [(0, "depot", 100), (4, "k", 0.4)])  # CL/V = 4/10 after 4 h
    close(depot, expected[:, 0])
    close(central, expected[:, 1])
    ev = res.events.to_pandas()
    param = ev[ev["kind"] == "param"]
    assert param["time"].tolist() == [4.0] and param["amount"].tolist() == [4.0]


def test_evid3_reset_zeroes_states_and_cancels_pending_addl(one_cmt: hl.Model) -> None:
    # central doses at 0, 4, 8 (ADDL 5 would continue at 12, 16, 20: cancelled by the reset)
    rows = [
        dose(0, 100, 2, II=4, ADDL=5),
        {"ID": 1, "TIME": 10, "EVID": 3},
        obs(10.0),
        dose(14, 30, 2),
        obs(15.0),
    ]
    res = simulate(one_cmt, rows, t_end=24.0, dt=2.0)
    t, _, central = outputs(res)
    occ = res.occasion[0][: len(t)]
    expected = piecewise(
        t,
        [
            (0, "central", 100),
            (4, "central", 100),
            (8, "central", 100),
            (10, "reset", 0),
            (14, "central", 30),
        ],
    )
    close(central, expected[:, 1])
    np.testing.assert_array_equal(occ, np.where(t < 10, 1, 2))
    assert sorted(set(res.events.to_pandas()["time"])) == [0, 4, 8, 10, 14]


def test_evid4_reset_and_dose_opens_a_new_occasion(one_cmt: hl.Model) -> None:
    # occasion 1: depot 100 mg; at 12 h everything is reset and 30 mg go into central
    rows = [
        dose(0, 100, 1),
        obs(2.0),
        obs(10.0),
        {"ID": 1, "TIME": 12, "EVID": 4, "AMT": 30, "CMT": 2},
        obs(14.0),
    ]
    res = simulate(one_cmt, rows, t_end=20.0, dt=4.0)
    t, depot, central = outputs(res)
    occ = res.occasion[0][: len(t)]
    np.testing.assert_array_equal(t, [0, 2, 4, 8, 10, 12, 14, 16, 20])
    np.testing.assert_array_equal(occ, np.where(t < 12, 1, 2))  # the grid at 12 is post-reset
    expected = piecewise(t, [(0, "depot", 100), (12, "reset", 0), (12, "central", 30)])
    close(depot, expected[:, 0])
    close(central, expected[:, 1])
    long = res.to_pandas()
    assert sorted(set(long["occasion"])) == [1, 2]


def test_evid4_with_the_clock_going_back(one_cmt: hl.Model) -> None:
    # occasion 2 restarts the dataset clock at 0: its outputs report times from 0 again
    rows = [
        dose(0, 100, 1),
        obs(2.0),
        obs(10.0),
        {"ID": 1, "TIME": 0, "EVID": 4, "AMT": 30, "CMT": 2},
        obs(2.0),
        obs(5.0),
    ]
    with warnings.catch_warnings():
        # the observation at 10 h shares its *solver* time with the reset (see
        # test_no_tie_warning_across_a_reset_that_restarts_the_clock)
        warnings.simplefilter("ignore", HemolabWarning)
        res = simulate(one_cmt, rows)
    t, depot, central = outputs(res)
    occ = res.occasion[0][: len(t)]
    np.testing.assert_array_equal(t, [2, 10, 2, 5])
    np.testing.assert_array_equal(occ, [1, 1, 2, 2])
    close(central[:2], bateman(t[:2], 100))
    close(central[2:], 30 * np.exp(-K * t[2:]))
    close(depot[2:], [0.0, 0.0])
    # the long table sorts by occasion, then time, and carries both occasions
    long = res.to_pandas()
    cen = long[long["variable"] == "central"]
    assert cen["occasion"].tolist() == [1, 1, 2, 2]
    assert cen["time"].tolist() == [2.0, 10.0, 2.0, 5.0]


def test_no_tie_warning_across_a_reset_that_restarts_the_clock(one_cmt: hl.Model) -> None:
    rows = [dose(0, 100, 1), obs(10.0), {"ID": 1, "TIME": 0, "EVID": 4, "AMT": 30, "CMT": 2}]
    with warnings.catch_warnings():
        warnings.simplefilter("error", HemolabWarning)
        simulate(one_cmt, rows)


def test_evid5_replace_sets_the_central_amount(one_cmt: hl.Model) -> None:
    rows = [dose(0, 100, 1), {"ID": 1, "TIME": 5, "EVID": 5, "AMT": 40, "CMT": 2}, obs(30.0)]
    res = simulate(one_cmt, rows, t_end=12.0, dt=0.5)
    t, depot, central = outputs(res)
    expected = piecewise(t, [(0, "depot", 100), (5, "replace", 40)])
    close(depot, expected[:, 0])  # the depot keeps absorbing
    close(central, expected[:, 1])


def test_evid6_multiply_scales_the_central_amount(one_cmt: hl.Model) -> None:
    rows = [dose(0, 100, 1), {"ID": 1, "TIME": 5, "EVID": 6, "AMT": 0.5, "CMT": 2}, obs(30.0)]
    res = simulate(one_cmt, rows, t_end=12.0, dt=0.5)
    t, depot, central = outputs(res)
    expected = piecewise(t, [(0, "depot", 100), (5, "multiply", 0.5)])
    close(depot, expected[:, 0])
    close(central, expected[:, 1])


# --- units, clocks, subjects ---------------------------------------------------------------


def test_amt_unit_mg_per_kg_is_scaled_by_wt(one_cmt: hl.Model) -> None:
    # 2 mg/kg × 80 kg = 160 mg; 500 ug = 0.5 mg
    rows = [
        dose(0, 2, 2, AMT_UNIT="mg/kg", WT=80),
        dose(6, 500, 2, AMT_UNIT="ug", WT=80),
        obs(30.0, WT=80),
    ]
    res = simulate(one_cmt, rows, t_end=12.0, dt=3.0)
    t, _, central = outputs(res)
    close(central, piecewise(t, [(0, "central", 160), (6, "central", 0.5)])[:, 1])
    assert res.events.to_pandas()["amount"].tolist() == [160.0, 0.5]


def test_per_kg_dose_without_wt_uses_the_model_default_with_a_warning(
    one_cmt: hl.Model,
) -> None:
    with pytest.warns(HemolabWarning, match="WT"):
        res = simulate(one_cmt, [dose(0, 1, 2, AMT_UNIT="mg/kg"), obs(2.0)])
    _, _, central = outputs(res)
    close(central, [70 * math.exp(-2 * K)])  # default WT 70 kg


def test_dataset_in_days_on_an_hours_model(one_cmt: hl.Model) -> None:
    # TIME and DUR in days: infusion of 60 mg over 0.125 d = 3 h; observations 6 h and 12 h;
    # the grid (t_end, dt) and the results stay in the model's unit (h)
    rows = [dose(0, 60, 2, DUR=0.125), obs(0.25), obs(0.5)]
    res = simulate(one_cmt, rows, time_unit="d", t_end=4.0, dt=2.0)
    t, _, central = outputs(res)
    np.testing.assert_array_equal(t, [0, 2, 4, 6, 12])
    assert res.time_unit == "h"
    close(central, piecewise(t, [(0, "r_central", 20), (3, "r_central", -20)])[:, 1])


def test_two_subjects_with_different_covariates(one_cmt: hl.Model) -> None:
    rows = [
        dose(0, 1, 2, AMT_UNIT="mg/kg", WT=60),
        obs(1.0, WT=60),
        obs(5.0, WT=60),
        {**dose(0, 1, 2, AMT_UNIT="mg/kg", WT=90), "ID": "B"},
        {**obs(2.0, WT=90), "ID": "B"},
    ]
    res = simulate(one_cmt, rows, t_end=4.0, dt=4.0)
    assert res.patient_ids == ("T0000000", "T0000001")
    t0, _, c0 = outputs(res, 0)
    t1, _, c1 = outputs(res, 1)
    np.testing.assert_array_equal(t0, [0, 1, 4, 5])
    np.testing.assert_array_equal(t1, [0, 2, 4])
    close(c0, 60 * np.exp(-K * t0))
    close(c1, 90 * np.exp(-K * t1))
    long = res.to_pandas()
    wt_long = long[long["variable"] == "central"].groupby("patient_id")["time"].apply(list)
    assert wt_long.to_dict() == {"T0000000": [0, 1, 4, 5], "T0000001": [0, 2, 4]}


def test_bad_dataset_raises_listing_every_issue(one_cmt: hl.Model) -> None:
    rows = [
        dose(0, -5, 1),  # negative AMT
        dose(1, 100, "liver"),  # unknown state
        obs(3.0),
        obs(2.0),  # time goes back
        {"ID": 1, "TIME": 4, "EVID": 9, "AMT": 0},  # unknown EVID
    ]
    with pytest.raises(DatasetError) as exc:
        hl.simulate(one_cmt, dataset(rows))
    where = {(i.row, i.column) for i in exc.value.issues}
    assert where == {(1, "AMT"), (2, "CMT"), (4, "TIME"), (5, "EVID")}
    message = str(exc.value)
    assert message.startswith("4 problems in the event dataset")
    assert "<DataFrame>, row 2, column CMT" in message


@pytest.mark.parametrize("n_grid", [14, 15, 16, 30, 31])
def test_action_table_exactly_filling_its_bucket(one_cmt: hl.Model, n_grid: int) -> None:
    # one bolus + 15 (31) grid outputs fill the 16 (32) action bucket exactly: the solver's
    # pointer must still find the end of the table (regression: it ran to max_steps)
    res = hl.simulate(one_cmt, dataset([dose(1, 100, 2)]), grid=np.arange(n_grid), **SOLVER)
    assert res.status_labels == ["ok"]
    t, _, central = outputs(res)
    close(central, np.where(t >= 1, 100 * np.exp(-K * (t - 1)), 0.0))


def test_one_subject_regimen_shared_by_a_population(one_cmt: hl.Model) -> None:
    """A dataset of one subject and N parameter rows: N virtual patients on that regimen."""
    ev = pd.DataFrame(
        {"ID": [1, 1], "TIME": [0.0, 12.0], "EVID": 1, "CMT": "depot", "AMT": [100.0, 50.0]}
    )
    cl = np.array([1.0, 2.0, 4.0])
    pop = hl.simulate(one_cmt, ev, params={"CL": cl}, grid=[6.0, 18.0], rtol=1e-10, atol=1e-12)
    assert pop.patient_ids == ("V0000000", "V0000001", "V0000002")
    for i, c in enumerate(cl):
        alone = hl.simulate(one_cmt, ev, params={"CL": c}, grid=[6.0, 18.0], rtol=1e-10, atol=1e-12)
        np.testing.assert_array_equal(pop.values[i], alone.values[0])
    events = pop.events.to_pandas()
    assert sorted(set(events["patient_id"])) == list(pop.patient_ids)
    assert len(events) == 3 * 2


def test_population_with_patient_specific_lag_gets_its_own_event_times(one_cmt: hl.Model) -> None:
    ev = pd.DataFrame({"ID": [1], "TIME": [0.0], "EVID": 1, "CMT": "depot", "AMT": [100.0]})
    lags = np.array([0.0, 2.0])
    pop = hl.simulate(one_cmt, ev, params={"ALAG": lags}, grid=[1.0, 3.0], rtol=1e-10, atol=1e-12)
    depot = pop.variable("depot")
    assert depot[1, 0] == 0.0  # the dose has not arrived at t = 1 for the lagged patient
    np.testing.assert_allclose(depot[1, 1], 100 * np.exp(-1.0), rtol=1e-8)
    np.testing.assert_allclose(depot[0, 0], 100 * np.exp(-1.0), rtol=1e-8)


def test_covariate_interpolation_nocb_and_locf() -> None:
    """x' = g·WT with WT 50 at t = 0 and 100 at t = 2: NOCB uses 100 on (0, 2] (x(2) = 200 g),
    LOCF uses 50 on [0, 2) (x(2) = 100 g), linear interpolation 50 + 25 t."""
    m = hl.Model(
        "growth",
        time_unit="h",
        states=[hl.State("x", "g*WT", unit="mg")],
        parameters=[hl.Parameter("g", 1.0, unit="mg/kg/h")],
        covariates=[hl.Covariate("WT", default=70.0, unit="kg")],
    )
    ev = pd.DataFrame({"ID": 1, "TIME": [0.0, 2.0], "EVID": 2, "WT": [50.0, 100.0]})
    nocb = hl.simulate(m, ev, grid=[2.0], covariate_interp="nocb", rtol=1e-10, atol=1e-12)
    locf = hl.simulate(m, ev, grid=[2.0], covariate_interp="locf", rtol=1e-10, atol=1e-12)
    assert nocb.variable("x")[0, 0] == pytest.approx(200.0, rel=1e-9)
    assert locf.variable("x")[0, 0] == pytest.approx(100.0, rel=1e-9)
    # linear: WT(t) = 50 + 25 t on [0, 2], then 100: x(2) = 150 g, x(3) = 250 g (exact)
    linear = hl.simulate(m, ev, grid=[1.0, 2.0, 3.0], covariate_interp="linear", rtol=1e-10)
    np.testing.assert_allclose(linear.variable("x")[0], [62.5, 150.0, 250.0], rtol=1e-9)


@pytest.fixture(scope="module")
def absorption() -> hl.Model:
    return hl.Model(
        "absorption",
        time_unit="h",
        states=[
            hl.State("depot", "-ka*depot", unit="mg"),
            hl.State("c", "ka*depot - k*c", unit="mg"),
        ],
        parameters=[hl.Parameter("ka", 1.0, unit="h-1"), hl.Parameter("k", 0.1, unit="h-1")],
    )


def test_negative_cmt_turns_a_compartment_off_until_turned_on(absorption: hl.Model) -> None:
    """EVID 2, CMT -2 at t = 2: c is 0 and receives nothing (the depot still empties); EVID 2,
    CMT 2 at t = 4 turns it on again, from 0, fed by what is left in the depot."""
    ev = pd.DataFrame(
        {
            "ID": 1,
            "TIME": [0.0, 2.0, 4.0],
            "EVID": [1, 2, 2],
            "CMT": [1, -2, 2],
            "AMT": [10.0, 0, 0],
        }
    )
    res = hl.simulate(absorption, ev, grid=[1.0, 3.0, 4.0, 6.0], rtol=1e-10, atol=1e-12)
    depot, c = res.variable("depot")[0], res.variable("c")[0]
    np.testing.assert_allclose(depot, 10 * np.exp(-np.array([1.0, 3.0, 4.0, 6.0])), rtol=1e-9)
    assert c[1] == 0.0 and c[2] == 0.0
    d4 = 10 * np.exp(-4.0)  # Bateman from t = 4 with c(4) = 0
    expected = d4 * 1.0 / (1.0 - 0.1) * (np.exp(-0.1 * 2) - np.exp(-1.0 * 2))
    assert c[3] == pytest.approx(expected, rel=1e-8)


def test_a_dose_into_an_off_compartment_turns_it_on(absorption: hl.Model) -> None:
    ev = pd.DataFrame(
        {"ID": 1, "TIME": [0.0, 1.0], "EVID": [2, 1], "CMT": [-2, 2], "AMT": [0.0, 5.0]}
    )
    res = hl.simulate(absorption, ev, grid=[0.5, 3.0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(res.variable("c")[0], [0.0, 5 * np.exp(-0.2)], rtol=1e-9)


def test_a_positive_state_cannot_be_turned_off() -> None:
    m = hl.Model(
        "pos",
        time_unit="h",
        states=[hl.State("x", "-k*x", initial=1.0, positive=True)],
        parameters=[hl.Parameter("k", 0.1, unit="h-1")],
    )
    ev = pd.DataFrame({"ID": 1, "TIME": [1.0], "EVID": [2], "CMT": [-1]})
    with pytest.raises(hl.ScheduleError, match="row 1: state 'x' is declared positive"):
        hl.simulate(m, ev, grid=[2.0])
