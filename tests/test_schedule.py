"""Tests of the expansion of event datasets into solver action tables.

Every expected table is computed by hand in the comments (model time unit: hours).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hemolab as hl
from hemolab import HemolabWarning, ScheduleError
from hemolab.events import (
    OP_ADD,
    OP_BOLUS,
    OP_MULTIPLY,
    OP_NAMES,
    OP_NOP,
    OP_OUTPUT,
    OP_PARAM,
    OP_PHLEBOTOMY,
    OP_RATE,
    OP_RATE_F,
    OP_REPLACE,
    OP_RESET,
    DoseProperties,
    Schedule,
    build_schedule,
    read_events,
)
from tests._models import blood_model, pk_model

DATA = Path(__file__).parent / "data" / "events"
DEPOT, CENTRAL = 0, 1
WT = 7  # index of WT in pk_model().inputs: KA CL V F1 TLAG R1 D1 WT BSA


def table(sched: Schedule, s: int = 0) -> list[tuple[float, str, int, float]]:
    """The used part of subject ``s``'s action table, with op names."""
    n = int(sched.n_actions[s])
    return [
        (float(t), OP_NAMES[int(o)], int(g), float(v))
        for t, o, g, v in zip(
            sched.time[s, :n], sched.op[s, :n], sched.target[s, :n], sched.value[s, :n], strict=True
        )
    ]


def approx_table(rows: list[tuple[float, str, int, float]]) -> list[object]:
    return [(pytest.approx(t), o, g, pytest.approx(v)) for t, o, g, v in rows]


def schedule_of(rows: list[dict[str, object]], model: hl.Model | None = None, **kw: object):
    model = model or pk_model()
    base = {"ID": 1, "EVID": 0}
    ds = read_events(pd.DataFrame([{**base, **r} for r in rows]), model=model)
    return build_schedule(ds, model, **kw)  # type: ignore[arg-type]


def test_op_codes_are_the_solver_contract():
    codes = (OP_NOP, OP_OUTPUT, OP_BOLUS, OP_RATE, OP_RATE_F, OP_REPLACE, OP_MULTIPLY)
    assert codes == (0, 1, 2, 3, 4, 5, 6)
    assert (OP_RESET, OP_PARAM, OP_PHLEBOTOMY, OP_ADD) == (7, 8, 9, 10)


# --- each EVID ------------------------------------------------------------------------------------


def test_each_evid_expands_to_its_actions():
    rows = [
        {"TIME": 0, "EVID": 1, "AMT": 100, "CMT": "depot"},  # bolus
        {"TIME": 1, "EVID": 0},  # output slot 0
        {"TIME": 2, "EVID": 2},  # plain record: nothing
        {"TIME": 3, "EVID": 5, "AMT": 7, "CMT": "central"},  # replace
        {"TIME": 4, "EVID": 6, "AMT": 0.5, "CMT": "central"},  # multiply
        {"TIME": 5, "EVID": 3},  # reset
        {"TIME": 6, "EVID": 4, "AMT": 20, "CMT": 2},  # reset, then dose
        {"TIME": 7, "EVID": 0, "DVID": "central"},  # output slot 1
    ]
    sched = schedule_of(rows)
    assert table(sched) == [
        (0.0, "bolus", DEPOT, 100.0),
        (1.0, "output", 0, 0.0),
        (3.0, "replace", CENTRAL, 7.0),
        (4.0, "multiply", CENTRAL, 0.5),
        (5.0, "reset", 0, 0.0),
        (6.0, "reset", 0, 0.0),
        (6.0, "bolus", CENTRAL, 20.0),
        (7.0, "output", 1, 0.0),
    ]
    assert sched.out_time[0].tolist() == [1.0, 7.0]
    assert sched.out_is_obs[0].tolist() == [True, True]
    assert sched.out_dvid[0].tolist() == [None, "central"]
    assert sched.out_occasion[0].tolist() == [1, 3]  # two resets before the second output
    assert [e["kind"] for e in sched.events] == [
        "bolus",
        "replace",
        "multiply",
        "reset",
        "reset",
        "bolus",
    ]


def test_regimen_file_hand_computed():
    model = pk_model()
    ds = read_events(DATA / "regimen.csv", model=model)
    with pytest.warns(HemolabWarning, match="2 observation"):
        sched = build_schedule(ds, model)
    # subject 1: obs 0, 100 mg depot q12h x3 (0, 12, 24), obs 6, WT 80 from row 4 (NOCB: from
    # t=6 on, after the output at 6), obs 12, 50 mg central over 2 h at 24 (25 mg/h), obs 30
    assert table(sched, 0) == [
        (0.0, "output", 0, 0.0),
        (0.0, "bolus", DEPOT, 100.0),
        (6.0, "output", 1, 0.0),
        (6.0, "param", WT, 80.0),
        (12.0, "output", 2, 0.0),
        (12.0, "bolus", DEPOT, 100.0),
        (24.0, "bolus", DEPOT, 100.0),
        (24.0, "rate_f", CENTRAL, 25.0),
        (26.0, "rate_f", CENTRAL, -25.0),
        (30.0, "output", 3, 0.0),
    ]
    # subject 2: 200 mg at 50 mg/h -> F*AMT/RATE = 4 h
    assert table(sched, 1) == [
        (0.0, "rate", CENTRAL, 50.0),
        (4.0, "rate", CENTRAL, -50.0),
        (8.0, "output", 0, 0.0),
    ]
    assert sched.n_actions.tolist() == [10, 3]
    assert sched.n_outputs.tolist() == [4, 1]
    assert sched.time.shape == (2, 10) and sched.out_time.shape == (2, 4)
    assert np.isinf(sched.time[1, 3:]).all() and (sched.op[1, 3:] == OP_NOP).all()
    assert np.isnan(sched.out_time[1, 1:]).all()
    np.testing.assert_array_equal(sched.initial_covariates, [[70.0, np.nan], [np.nan, np.nan]])
    np.testing.assert_array_equal(ds.initial_covariates(), sched.initial_covariates)
    assert sched.subject_ids == ("T0000000", "T0000001")
    assert sched.start_time.tolist() == [0.0, 0.0]


# --- infusions, F and lag -------------------------------------------------------------------------


def test_rate_infusion_ends_at_f_amt_over_rate_and_lag_shifts_doses():
    rows = [
        {"TIME": 0, "EVID": 1, "AMT": 100, "CMT": "depot", "RATE": 40},
        {"TIME": 10, "EVID": 1, "AMT": 100, "CMT": "depot", "DUR": 5},
        {"TIME": 20, "EVID": 1, "AMT": 100, "CMT": "depot"},
    ]
    props = DoseProperties(
        f=np.array([[0.8, 1.0]]),
        lag=np.array([[0.5, 0.0]]),
        rate=np.full((1, 2), np.nan),
        duration=np.full((1, 2), np.nan),
    )
    sched = schedule_of(rows, dose_props=props)
    assert table(sched) == approx_table(
        [
            (0.5, "rate", DEPOT, 40.0),  # RATE given: no F on the rate...
            (2.5, "rate", DEPOT, -40.0),  # ...F shortens it: 0.8 * 100 / 40 = 2 h
            (10.5, "rate_f", DEPOT, 20.0),  # DUR given: 100/5 per h, F applied by the solver
            (15.5, "rate_f", DEPOT, -20.0),
            (20.5, "bolus", DEPOT, 100.0),
        ]
    )
    assert [e["time"] for e in sched.events] == [0.5, 10.5, 20.5]
    assert [e["kind"] for e in sched.events] == ["infusion", "infusion", "bolus"]


def test_model_rate_and_model_duration():
    rows = [
        {"TIME": 0, "EVID": 1, "AMT": 100, "CMT": "central", "RATE": -1},
        {"TIME": 24, "EVID": 1, "AMT": 100, "CMT": "central", "RATE": -2},
    ]
    props = {
        "f": [[1.0, 0.5]],
        "lag": [[0.0, 0.0]],
        "rate": [[np.nan, 20.0]],
        "duration": [[np.nan, 4.0]],
    }
    sched = schedule_of(rows, dose_props=props)
    assert table(sched) == approx_table(
        [
            (0.0, "rate", CENTRAL, 20.0),  # model rate R1 = 20 mg/h
            (2.5, "rate", CENTRAL, -20.0),  # F*AMT/R = 0.5*100/20
            (24.0, "rate_f", CENTRAL, 25.0),  # model duration D1 = 4 h: 100/4
            (28.0, "rate_f", CENTRAL, -25.0),
        ]
    )
    with pytest.raises(ScheduleError, match="row 1: RATE=-1 uses state 'central'"):
        schedule_of(rows)  # default dose_props: no model rate


def test_dose_props_shapes_are_checked():
    rows = [{"TIME": 0, "EVID": 1, "AMT": 1, "CMT": 1}]
    bad = DoseProperties(np.ones((1, 3)), np.zeros((1, 2)), np.zeros((1, 2)), np.zeros((1, 2)))
    with pytest.raises(ScheduleError, match=r"dose_props.f has shape \(1, 3\)"):
        schedule_of(rows, dose_props=bad)
    neg = DoseProperties(np.ones((1, 2)), -np.ones((1, 2)), np.zeros((1, 2)), np.zeros((1, 2)))
    with pytest.raises(ScheduleError, match="lag must be finite and >= 0"):
        schedule_of(rows, dose_props=neg)


# --- ADDL and resets ------------------------------------------------------------------------------


def test_reset_cancels_pending_addl_doses_and_running_infusions():
    rows = [
        {"TIME": 0, "EVID": 1, "AMT": 100, "CMT": "depot", "II": 12, "ADDL": 3},  # 0 12 24 36
        {"TIME": 0, "EVID": 1, "AMT": 60, "CMT": "central", "RATE": 10},  # 0 -> 6 h
        {"TIME": 4, "EVID": 0},
        {"TIME": 4, "EVID": 3},  # cancels the doses at 12, 24, 36 and the infusion's end at 6
        {"TIME": 10, "EVID": 0},
        {"TIME": 0, "EVID": 4, "AMT": 80, "CMT": "depot"},  # new occasion, clock back to 0
        {"TIME": 0, "EVID": 0},  # after the reset (file order), before the dose (trough)
        {"TIME": 5, "EVID": 0},
    ]
    with pytest.warns(HemolabWarning, match="1 observation"):
        sched = schedule_of(rows, grid=[12.0])
    assert table(sched) == [
        (0.0, "bolus", DEPOT, 100.0),
        (0.0, "rate", CENTRAL, 10.0),
        (4.0, "output", 0, 0.0),
        (4.0, "reset", 0, 0.0),
        (10.0, "output", 1, 0.0),
        (10.0, "reset", 0, 0.0),  # the solver's clock keeps running: dataset 0 -> solver 10
        (10.0, "output", 2, 0.0),
        (10.0, "bolus", DEPOT, 80.0),
        (12.0, "output", 3, 0.0),  # grid time 12 on the solver clock = 2 h into occasion 3
        (15.0, "output", 4, 0.0),
    ]
    assert sched.out_time[0].tolist() == [4.0, 10.0, 0.0, 2.0, 5.0]
    assert sched.out_is_obs[0].tolist() == [True, True, True, False, True]
    assert sched.out_occasion[0].tolist() == [1, 2, 3, 3, 3]
    kinds = [(e["kind"], e["time"]) for e in sched.events]
    assert kinds == [
        ("bolus", 0.0),
        ("infusion", 0.0),
        ("reset", 4.0),
        ("reset", 0.0),
        ("bolus", 0.0),
    ]


def test_a_leading_reset_opens_occasion_1_and_wipes_same_time_changes_before_it():
    rows = [
        {"TIME": 0, "EVID": 4, "AMT": 10, "CMT": "depot"},
        {"TIME": 1, "EVID": 0},
        {"TIME": 2, "EVID": 5, "AMT": 3, "CMT": "depot"},  # same time, before the reset: wiped
        {"TIME": 2, "EVID": 4, "AMT": 20, "CMT": "depot"},
        {"TIME": 3, "EVID": 0},
    ]
    sched = schedule_of(rows)
    assert table(sched) == [
        (0.0, "reset", 0, 0.0),
        (0.0, "bolus", DEPOT, 10.0),
        (1.0, "output", 0, 0.0),
        (2.0, "reset", 0, 0.0),
        (2.0, "bolus", DEPOT, 20.0),
        (3.0, "output", 1, 0.0),
    ]
    assert sched.out_occasion[0].tolist() == [1, 2]


def test_occ_column_sets_the_occasions():
    rows = [
        {"TIME": 0, "EVID": 0, "OCC": 4},
        {"TIME": 5, "EVID": 0, "OCC": 7},
    ]
    sched = schedule_of(rows, grid=[2.0, 6.0])
    assert sched.out_time[0].tolist() == [0.0, 2.0, 5.0, 6.0]
    assert sched.out_occasion[0].tolist() == [4, 4, 7, 7]


# --- ties and the grid ----------------------------------------------------------------------------


TIE_ROWS = [
    {"TIME": 0, "EVID": 1, "AMT": 10, "CMT": "depot", "II": 24, "ADDL": 1},  # doses at 0 and 24
    {"TIME": 0, "EVID": 0},
    {"TIME": 24, "EVID": 0},  # tie with the ADDL-implied dose
]


def test_observation_at_a_dose_time_is_pre_dose_by_default():
    with pytest.warns(HemolabWarning) as record:
        sched = schedule_of(TIE_ROWS)
    assert len(record) == 1
    assert str(record[0].message) == (
        "<DataFrame>: 2 observation(s) share their time with a dose or event of the same "
        "subject; they report the pre-dose value (observation first, DATA-FORMATS §A; pass "
        "dose_before_obs=True for post-dose values)"
    )
    assert table(sched) == [
        (0.0, "output", 0, 0.0),
        (0.0, "bolus", DEPOT, 10.0),
        (24.0, "output", 1, 0.0),
        (24.0, "bolus", DEPOT, 10.0),
    ]


def test_dose_before_obs_gives_the_post_dose_value():
    with pytest.warns(HemolabWarning, match=r"post-dose value \(dose_before_obs=True\)"):
        sched = schedule_of(TIE_ROWS, dose_before_obs=True)
    assert table(sched) == [
        (0.0, "bolus", DEPOT, 10.0),
        (0.0, "output", 0, 0.0),
        (24.0, "bolus", DEPOT, 10.0),
        (24.0, "output", 1, 0.0),
    ]


def test_one_tie_warning_per_dataset():
    rows = [{**r, "ID": i} for i in (1, 2) for r in TIE_ROWS]
    ds = read_events(pd.DataFrame([{"EVID": 0, **r} for r in rows]), model=pk_model())
    with pytest.warns(HemolabWarning) as record:
        build_schedule(ds, pk_model())
    assert len(record) == 1
    assert "4 observation(s)" in str(record[0].message)


def test_grid_outputs_are_post_event_and_yield_to_observations():
    rows = [
        {"TIME": 0, "EVID": 1, "AMT": 10, "CMT": "depot"},
        {"TIME": 6, "EVID": 0},
        {"TIME": 12, "EVID": 5, "AMT": 3, "CMT": "depot"},
    ]
    sched = schedule_of(rows, grid=[12.0, 0.0, 6.0, 18.0, 6.0])
    assert table(sched) == [
        (0.0, "bolus", DEPOT, 10.0),
        (0.0, "output", 0, 0.0),  # grid: after the dose at its time
        (6.0, "output", 1, 0.0),  # the observation; grid time 6 dropped
        (12.0, "replace", DEPOT, 3.0),
        (12.0, "output", 2, 0.0),
        (18.0, "output", 3, 0.0),
    ]
    assert sched.out_is_obs[0].tolist() == [False, True, False, False]
    assert sched.out_dvid[0].tolist() == [None, None, None, None]


def test_mdv_1_observation_rows_are_not_outputs():
    sched = schedule_of([{"TIME": 1, "EVID": 0, "MDV": 1}, {"TIME": 2, "EVID": 0}])
    assert table(sched) == [(2.0, "output", 0, 0.0)]


# --- covariates -----------------------------------------------------------------------------------


COV_ROWS = [
    {"TIME": 0, "EVID": 0, "WT": 70},
    {"TIME": 10, "EVID": 0, "WT": 80},
    {"TIME": 20, "EVID": 0},  # missing: NOCB takes the next value, LOCF the previous
    {"TIME": 30, "EVID": 0, "WT": 90},
]


def test_covariates_nocb():
    sched = schedule_of(COV_ROWS)
    # NOCB: 80 applies on (0, 10], 90 on (10, 30] (row 3 filled backwards with 90)
    assert table(sched) == [
        (0.0, "output", 0, 0.0),
        (0.0, "param", WT, 80.0),
        (10.0, "output", 1, 0.0),
        (10.0, "param", WT, 90.0),
        (20.0, "output", 2, 0.0),
        (30.0, "output", 3, 0.0),
    ]
    assert sched.initial_covariates[0, 0] == 70.0


def test_covariates_locf():
    sched = schedule_of(COV_ROWS, covariate_interp="locf")
    # LOCF: 80 from 10 on (before the output at 10), 90 from 30 on
    assert table(sched) == [
        (0.0, "output", 0, 0.0),
        (10.0, "param", WT, 80.0),
        (10.0, "output", 1, 0.0),
        (20.0, "output", 2, 0.0),
        (30.0, "param", WT, 90.0),
        (30.0, "output", 3, 0.0),
    ]


def test_covariate_interp_is_checked():
    with pytest.raises(ScheduleError, match="must be 'nocb', 'locf' or 'linear'"):
        schedule_of(COV_ROWS, covariate_interp="spline")


# --- units ----------------------------------------------------------------------------------------


def test_days_dataset_on_an_hours_model():
    model = pk_model()
    ds = read_events(DATA / "days.csv", model=model, time_unit="d")
    sched = build_schedule(ds, model)
    # 240 mg at 24 mg/d = 1 mg/h over 240 h; 100 mg over 0.25 d = 6 h at 0.5 d = 12 h, q1d x2
    assert table(sched) == approx_table(
        [
            (0.0, "rate", CENTRAL, 1.0),
            (12.0, "rate_f", DEPOT, 100.0 / 6.0),
            (18.0, "rate_f", DEPOT, -100.0 / 6.0),
            (36.0, "rate_f", DEPOT, 100.0 / 6.0),
            (42.0, "rate_f", DEPOT, -100.0 / 6.0),
            (48.0, "output", 0, 0.0),
            (240.0, "rate", CENTRAL, -1.0),
        ]
    )


def test_mg_per_m2_dose_is_scaled_by_bsa():
    rows = [{"TIME": 0, "EVID": 1, "AMT": 75, "AMT_UNIT": "mg/m2", "CMT": "central", "BSA": 2}]
    assert table(schedule_of(rows)) == [(0.0, "bolus", CENTRAL, 150.0)]


def test_datetime_dataset():
    model = pk_model()
    sched = build_schedule(read_events(DATA / "datetime.csv", model=model), model)
    assert table(sched, 0) == approx_table(
        [(0.0, "bolus", DEPOT, 100.0), (12.5, "output", 0, 0.0), (23.0, "output", 1, 0.0)]
    )
    assert sched.out_time[1, :2].tolist() == [0.0, 24.0]


# --- hemolab events -------------------------------------------------------------------------------


def test_transfusion_phlebotomy_and_param_on_a_blood_model():
    model = blood_model()
    sched = build_schedule(read_events(DATA / "blood.csv", model=model), model)
    hb, plt, vp = 0, 1, 2
    # 2 RBC units over 2 h (default): Hb 2*55 g -> 55 g/h; plasma 2*287*(1-0.67) mL -> /2 h;
    # no platelets in RBC. 1 PLT_APH unit of 300 mL at DUR 0: PLT 252*0.67, plasma 300 mL.
    plasma = 2 * 287 * (1 - 0.67)
    assert table(sched) == approx_table(
        [
            (0.0, "output", 0, 0.0),
            (1.0, "rate", hb, 55.0),
            (1.0, "rate", vp, plasma / 2),
            (3.0, "rate", hb, -55.0),
            (3.0, "rate", vp, -plasma / 2),
            (10.0, "add", plt, 252 * 0.67),
            (10.0, "add", vp, 300.0),
            (20.0, "phlebotomy", 0, 450.0),
            (30.0, "param", 0, 0.02),
            (40.0, "output", 1, 0.0),
        ]
    )
    events = sched.events_to_pandas()
    assert events["kind"].tolist() == ["transfusion", "transfusion", "phlebotomy", "param"]
    assert events["product"].tolist()[:2] == ["RBC", "PLT_APH"]
    assert events["amount"].tolist() == pytest.approx([574.0, 300.0, 450.0, 0.02])
    assert events["unit"].tolist() == ["mL", "mL", "mL", "h-1"]
    assert list(events.columns) == [
        "patient_id",
        "time",
        "kind",
        "target",
        "product",
        "amount",
        "unit",
    ]


def test_param_event_targets_model_inputs():
    rows = [{"TIME": 5, "EVID": 2, "EVENT": "param", "PARAM": "BSA", "VALUE": 1.9}]
    assert table(schedule_of(rows)) == [(5.0, "param", 8, 1.9)]


def test_reset_cancels_a_running_transfusion():
    model = blood_model()
    rows = [
        {"TIME": 0, "EVID": 2, "EVENT": "transfusion", "PRODUCT": "PLASMA", "DUR": 4},
        {"TIME": 1, "EVID": 3},
    ]
    sched = schedule_of(rows, model=model)
    assert table(sched) == approx_table([(0.0, "rate", 2, 289.0 / 4), (1.0, "reset", 0, 0.0)])


# --- unsupported and mismatched -------------------------------------------------------------------


def test_steady_state_dose_emits_reset_placeholders_and_a_request():
    rows = [{"TIME": 3, "EVID": 1, "AMT": 5, "CMT": 1, "SS": 1, "II": 12}]
    sched = schedule_of(rows)
    n = sched.n_actions[0]
    ops = list(sched.op[0, :n])
    assert ops[0] == OP_RESET
    placeholders = [j for j in range(n) if ops[j] == OP_REPLACE]
    assert len(placeholders) == len(pk_model().states)
    assert np.isnan(sched.value[0, placeholders]).all()
    assert OP_BOLUS in ops[placeholders[-1] + 1 :]  # the dose comes after the steady state
    (req,) = sched.ss_requests
    assert (req["subject"], req["time"], req["mode"], req["ii"], req["amt"]) == (
        0,
        3.0,
        1,
        12.0,
        5.0,
    )


def test_negative_cmt_turns_a_compartment_off_and_a_positive_one_back_on():
    sched = schedule_of(
        [{"TIME": 0, "EVID": 2, "CMT": -2}, {"TIME": 3, "EVID": 2, "CMT": 2}], grid=[]
    )
    n = sched.n_actions[0]
    assert [OP_NAMES[o] for o in sched.op[0, :n]] == ["off", "on"]
    assert list(sched.target[0, :n]) == [1, 1]


def test_dataset_read_with_another_model_is_rejected():
    ds = read_events(DATA / "regimen.csv", model=pk_model())
    with pytest.raises(ScheduleError, match="checked against model 'pk1', not 'blood1'"):
        build_schedule(ds, blood_model())


# --- padding and grids without a dataset ----------------------------------------------------------


def test_pad_to_buckets():
    ds = read_events(DATA / "regimen.csv", model=pk_model())
    with pytest.warns(HemolabWarning):
        sched = build_schedule(ds, pk_model())
    padded = sched.pad_to(16, 8)
    assert padded.time.shape == (2, 16) and padded.out_time.shape == (2, 8)
    assert np.isinf(padded.time[:, 10:]).all() and (padded.op[:, 10:] == OP_NOP).all()
    assert (padded.target[:, 10:] == 0).all() and (padded.value[:, 10:] == 0).all()
    assert np.isnan(padded.out_time[:, 4:]).all() and not padded.out_is_obs[:, 4:].any()
    assert (padded.out_dvid[:, 4:] == None).all()  # noqa: E711 - elementwise on objects
    np.testing.assert_array_equal(padded.time[:, :10], sched.time)
    assert padded.n_actions.tolist() == sched.n_actions.tolist()
    assert padded.op.dtype == np.int32 and padded.out_occasion.dtype == np.int32
    bucket = sched.pad_to_bucket()
    assert (bucket.max_actions, bucket.max_outputs) == (16, 8)
    with pytest.raises(ScheduleError, match="must not shrink"):
        sched.pad_to(4, 8)
    with pytest.raises(ValueError, match="read-only"):
        sched.time[0, 0] = 1.0


def test_from_grid():
    sched = Schedule.from_grid(pk_model(), [2.0, 0.0, 1.0], n_subjects=2)
    assert table(sched, 1) == [
        (0.0, "output", 0, 0.0),
        (1.0, "output", 1, 0.0),
        (2.0, "output", 2, 0.0),
    ]
    assert sched.subject_ids == ("V0000000", "V0000001")
    assert sched.out_is_obs.sum() == 0
    assert sched.initial_covariates.shape == (2, 2) and np.isnan(sched.initial_covariates).all()
    with pytest.raises(ScheduleError, match="non-finite"):
        Schedule.from_grid(pk_model(), [0.0, math.inf])
