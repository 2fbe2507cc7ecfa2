"""Tests of reading and checking event datasets (DATA-FORMATS §0 and §A).

Expected numbers are worked out by hand in the comments next to them.
"""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import hemolab as hl
import hemolab.events as ev
from hemolab import DatasetError, HemolabWarning
from hemolab.events import EventDataset, build_schedule, read_events
from tests._models import blood_model, pk_model

DATA = Path(__file__).parent / "data" / "events"
SECRET = "MRN-SECRET-991"


def frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    return pd.DataFrame(rows)


def issues_of(exc: pytest.ExceptionInfo[DatasetError]) -> set[tuple[int | None, str | None]]:
    return {(i.row, i.column) for i in exc.value.issues}


# --- every violation at once, with file, row and column -------------------------------------------


def test_every_violation_is_listed_at_once_with_file_row_and_column():
    with pytest.raises(DatasetError) as exc:
        read_events(DATA / "bad_rows.csv", model=pk_model())
    assert {i.file for i in exc.value.issues} == {"bad_rows.csv"}
    assert issues_of(exc) == {
        (2, "EVID"),  # 7: rxode2's code
        (3, "EVID"),  # 8: mrgsolve's code
        (4, "CMT"),  # 9 out of range
        (5, "CMT"),  # unknown state name
        (6, "RATE"),  # -1 on a state without a model rate
        (7, "DUR"),  # DUR with RATE
        (8, "ADDL"),  # II > 0 but ADDL 0
        (9, "ADDL"),  # ADDL < 0
        (10, "SS"),  # SS 4
        (11, "AMT"),  # negative dose
        (12, "MDV"),  # MDV 0 on a dose
        (13, "WT"),  # non-numeric covariate
        (14, "EVENT"),  # transfusion on a model without blood
        (15, "EVENT"),  # mix not supported yet
        (16, "PARAM"),  # unknown parameter
        (16, "VALUE"),  # non-numeric value
        (17, "TIME"),  # time goes back
        (18, "DVID"),  # unknown observable
        (19, "AMT"),  # AMT on a reset
        (21, "ID"),  # rows of one ID not contiguous
    }
    text = str(exc.value)
    assert text.startswith("20 problems in the event dataset:")
    assert "bad_rows.csv, row 2, column EVID: EVID 7 is rxode2's code" in text
    assert "row 3, column EVID: EVID 8 is mrgsolve's code" in text
    assert "expected 1..2 or a state name (depot, central)" in text
    assert "state 'depot' declares none" in text


def test_no_identifier_in_any_message_warning_repr_or_log(caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    with pytest.raises(DatasetError) as exc:
        read_events(DATA / "bad_rows.csv", model=pk_model())
    texts += [str(exc.value), *(str(i) for i in exc.value.issues)]
    texts += [i.message for i in exc.value.issues]
    # a valid dataset that warns: SS=3, a per-kg dose without WT, a dose/observation tie
    good = frame(
        [
            {"ID": SECRET, "TIME": 0, "EVID": 0, "AMT": 0, "CMT": "depot", "SS": 0},
            {"ID": SECRET, "TIME": 0, "EVID": 1, "AMT": 2, "CMT": "depot", "AMT_UNIT": "mg/kg"},
            {"ID": SECRET, "TIME": 1, "EVID": 1, "AMT": 5, "CMT": "depot", "SS": 3, "II": 12},
        ]
    )
    with pytest.warns(HemolabWarning) as record:
        ds = read_events(good, model=pk_model())
    texts += [str(w.message) for w in record]
    no_ss = good.iloc[:2]
    with pytest.warns(HemolabWarning) as record:
        ds2 = read_events(no_ss, model=pk_model())
        sched = build_schedule(ds2, pk_model())
    texts += [str(w.message) for w in record]
    with pytest.warns(HemolabWarning) as record:
        sched_ss = build_schedule(ds, pk_model())  # steady state: placeholders and a request
    texts += [str(w.message) for w in record] + [repr(sched_ss), repr(sched_ss.ss_requests)]
    bad = frame([{"ID": SECRET, "TIME": 0, "EVID": 0}])
    with pytest.raises(hl.ScheduleError) as unsupported:
        build_schedule(read_events(bad, model=pk_model()), pk_model(), covariate_interp="spline")
    texts += [str(unsupported.value), repr(ds), repr(ds2), repr(sched), caplog.text]
    texts += [ds.to_pandas().to_string(), sched.events_to_pandas().to_string()]
    # a DATETIME is identifying too: never quoted
    when = "1961-07-04T10:00:00"  # no offset: rejected
    with pytest.raises(DatasetError) as bad_dt:
        read_events(frame([{"ID": SECRET, "DATETIME": when, "EVID": 0}]), model=pk_model())
    texts.append(str(bad_dt.value))
    for text in texts:
        assert SECRET not in text
        assert "OTHER-7" not in text
        assert "1961" not in text
    assert ds.temporary_id(SECRET) == "T0000000"  # the mapping stays in memory


# --- single rules ---------------------------------------------------------------------------------


def _row(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {"ID": 1, "TIME": 0, "EVID": 0}
    base.update(kw)
    return base


@pytest.mark.parametrize(
    ("row", "column", "message"),
    [
        (_row(EVID=9), "EVID", "EVID 9 is not one of 0 observation"),
        (_row(EVID=1.5), "EVID", "is not an integer"),
        (_row(EVID=1, AMT=1, CMT=0), "CMT", "CMT 0 is not a state"),
        (_row(EVID=1, AMT=1, CMT=-1), "CMT", "only EVID 2 allows"),
        (_row(EVID=1, AMT=1), "CMT", "CMT is missing on EVID 1"),
        (_row(EVID=1, CMT=1), "AMT", "AMT is missing on a dose"),
        (_row(EVID=1, CMT=1, AMT=0), "AMT", "only a steady-state infusion"),
        (_row(EVID=0, AMT=3), "AMT", "AMT must be 0 or empty on EVID 0"),
        (_row(EVID=5, CMT=1), "AMT", "AMT (the new amount) is missing on EVID 5"),
        (_row(EVID=1, CMT=2, AMT=1, RATE=-3), "RATE", "RATE -3 is not 0, > 0, -1 or -2"),
        (_row(EVID=0, RATE=2), "RATE", "dose rows only"),
        (_row(EVID=1, CMT=1, AMT=1, RATE=-2), "RATE", "declares none"),
        (_row(EVID=1, CMT=1, AMT=1, DUR=-1), "DUR", "DUR -1 is negative"),
        (_row(EVID=0, DUR=2), "DUR", "DUR applies to doses"),
        (_row(EVID=1, CMT=1, AMT=1, II=0, ADDL=2), "II", "II > 0 if and only if ADDL > 0"),
        (_row(EVID=1, CMT=1, AMT=1, II=-1), "II", "negative"),
        (_row(EVID=1, CMT=1, AMT=1, ADDL=1.5, II=2), "ADDL", "is not an integer"),
        (_row(EVID=0, ADDL=1), "ADDL", "dose rows only"),
        (_row(EVID=1, CMT=1, AMT=1, SS=1), "II", "SS=1 needs II > 0"),
        (_row(EVID=0, SS=1), "SS", "dose rows only"),
        (_row(EVID=0, MDV=2), "MDV", "MDV 2 is not 0 or 1"),
        (_row(EVID=0, CENS=2), "CENS", "CENS 2 is not -1, 0 or 1"),
        (_row(EVID=0, OCC=-1), "OCC", "OCC -1 is negative"),
        (_row(EVID=0, DVID="ANC"), "DVID", "DVID 'ANC' is not an observable or state"),
        (_row(EVID=1, AMT=1, CMT=1, EVENT="param"), "EVENT", "hemolab events need EVID 2"),
        (_row(EVID=2, EVENT="surgery"), "EVENT", "EVENT 'surgery' is not one of transfusion"),
        (_row(EVID=2, EVENT="param", VALUE=1), "PARAM", "PARAM is missing"),
        (_row(EVID=2, EVENT="param", PARAM="CL"), "VALUE", "VALUE (the new value of PARAM)"),
        (_row(EVID=2, EVENT="param", PARAM="CL", VALUE=-1), "VALUE", "outside CL's bounds"),
        (_row(EVID=1, AMT=1, CMT=1, AMT_UNIT="mL"), "AMT_UNIT", "the dimensions differ"),
        (_row(EVID=1, AMT=1, CMT=1, AMT_UNIT="mg/m2"), "AMT_UNIT", "needs BSA"),
        (_row(EVID=1, AMT=1, CMT=1, AMT_UNIT="mg/kg", WT=0), "WT", "WT 0 must be > 0"),
        (_row(EVID=1, AMT=1, CMT=1, AMT_UNIT="furlong"), "AMT_UNIT", "unknown unit atom"),
        (_row(EVID=6, AMT=2, CMT=1, AMT_UNIT="mg"), "AMT_UNIT", "must be '1' or empty"),
        (_row(TIME="noon"), "TIME", "'noon' is not a number"),
        (_row(TIME="."), "TIME", "TIME is missing"),
        (_row(ID="."), "ID", "ID is missing"),
        (_row(EVID="NA"), "EVID", "EVID is missing"),
        (_row(WT="heavy"), "WT", "'heavy' is not a number"),
    ],
)
def test_single_rule(row, column, message):
    with pytest.raises(DatasetError) as exc:
        read_events(frame([row]), model=pk_model(), file_name="one.csv")
    matches = [i for i in exc.value.issues if i.column == column and i.row == 1]
    assert matches, str(exc.value)
    assert any(message in i.message for i in matches), str(exc.value)
    assert len(exc.value.issues) == 1, str(exc.value)


def test_foreign_evid_codes_name_their_tool():
    rows = [_row(EVID=7), _row(TIME=1, EVID=8)]
    with pytest.raises(DatasetError) as exc:
        read_events(frame(rows), model=pk_model())
    m7, m8 = (i.message for i in exc.value.issues)
    assert "rxode2" in m7
    assert "mrgsolve" in m8


def test_steady_state_on_a_delay_model_is_an_error():
    dde = hl.Model(
        "dde",
        time_unit="d",
        states=[hl.State("x", "-k*x(t - tau)", initial=1.0, history="initial")],
        parameters=[hl.Parameter("k", 0.1), hl.Parameter("tau", 2.0)],
    )
    row = _row(EVID=1, AMT=1, CMT=1, SS=1, II=7)
    with pytest.raises(DatasetError, match="not available for model 'dde', which has delays"):
        read_events(frame([row]), model=dde)


def test_ss3_is_read_as_ss1_with_a_warning():
    row = _row(EVID=1, AMT=10, CMT="depot", SS=3, II=12)
    with pytest.warns(HemolabWarning, match=r"SS=3 read as SS=1 .* row\(s\) 1"):
        ds = read_events(frame([row]), model=pk_model())
    assert ds.subjects[0].records[0].ss == 1


def test_ss_infusion_accepts_amt_zero():
    row = _row(EVID=1, AMT=0, CMT="central", SS=1, RATE=5, II=0)
    rec = read_events(frame([row]), model=pk_model()).subjects[0].records[0]
    assert (rec.amt, rec.rate, rec.ss) == (0.0, 5.0, 1)


def test_mdv_is_derived_and_checked():
    rows = [_row(), _row(TIME=1, EVID=1, AMT=5, CMT=1), _row(TIME=2, MDV=1)]
    recs = read_events(frame(rows), model=pk_model()).subjects[0].records
    assert [r.mdv for r in recs] == [0, 1, 1]


def test_evid_is_derived_when_absent():
    rows = [
        {"ID": 1, "TIME": 0, "AMT": 5, "CMT": 1},
        {"ID": 1, "TIME": 1, "AMT": 0},
        {"ID": 1, "TIME": 2, "AMT": 0, "MDV": 1},
    ]
    recs = read_events(frame(rows), model=pk_model()).subjects[0].records
    assert [r.evid for r in recs] == [1, 0, 2]


def test_time_may_go_back_on_or_after_a_reset_only():
    rows = [
        _row(TIME=10),
        _row(TIME=0, EVID=4, AMT=5, CMT=1),  # on a reset: allowed
        _row(TIME=8),
        _row(TIME=9, EVID=3),
        _row(TIME=2),  # right after a reset: allowed
        _row(TIME=1),  # not allowed
    ]
    with pytest.raises(DatasetError) as exc:
        read_events(frame(rows), model=pk_model())
    assert issues_of(exc) == {(6, "TIME")}


def test_missing_values_and_case_insensitive_columns():
    df = pd.DataFrame(
        {
            "id": ["1", "1", "1"],
            "time": ["0", "1", "2"],
            "evid": ["1", "0", "0"],
            "amt": ["5", ".", "NA"],
            "cmt": ["central", "", "."],
            "extra": ["a", "b", "c"],
        }
    )
    ds = read_events(df, model=pk_model())
    recs = ds.subjects[0].records
    assert [r.amt for r in recs] == [5.0, 0.0, 0.0]
    assert recs[0].cmt == 1 and recs[1].cmt is None
    assert ds.ignored_columns == ("extra",)


def test_names_differing_only_in_case_are_an_issue():
    df = pd.DataFrame({"ID": [1], "TIME": [0], "time": [0]})
    with pytest.raises(DatasetError, match="differ only in case"):
        read_events(df, model=pk_model())


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"TIME": [0]}, "no ID column"),
        ({"ID": [1]}, "neither a TIME nor a DATETIME"),
        (
            {"ID": [1], "TIME": [0], "DATETIME": ["2024-01-01T00:00:00Z"]},
            "both TIME and DATETIME",
        ),
        ({"ID": [], "TIME": []}, "no rows"),
    ],
)
def test_file_level_issues(columns, message):
    with pytest.raises(DatasetError) as exc:
        read_events(pd.DataFrame(columns), model=pk_model())
    assert exc.value.issues[0].row is None
    assert message in str(exc.value)


def test_reserved_names_are_never_covariates():
    model = pk_model(covariates=[hl.Covariate("HCT", 0.4)])
    with pytest.raises(DatasetError, match="reserved column"):
        read_events(frame([_row(HCT=0.4)]), model=model)
    ds = read_events(frame([_row()]), model=model)
    assert ds.subjects[0].records[0].covariates == (math.nan,) or math.isnan(
        ds.subjects[0].records[0].covariates[0]
    )


def test_covariate_columns_match_model_covariates_case_insensitively():
    ds = read_events(frame([{"ID": 1, "TIME": 0, "wt": 81.5}]), model=pk_model())
    wt, bsa = ds.subjects[0].records[0].covariates
    assert wt == 81.5 and math.isnan(bsa)


# --- units and clocks -----------------------------------------------------------------------------


def test_amt_unit_is_converted_to_the_state_unit():
    rows = [
        _row(EVID=1, AMT=500, CMT="depot", AMT_UNIT="ug"),  # 0.5 mg
        _row(EVID=1, AMT=1, CMT="depot", AMT_UNIT="g"),  # 1000 mg
        _row(EVID=1, AMT=100, CMT="depot", AMT_UNIT="mg/m2", BSA=1.8),  # 180 mg
        _row(EVID=1, AMT=10, CMT="central", AMT_UNIT="mg/kg", RATE=5, WT=80),  # 800 mg, 400 mg/h
        _row(EVID=5, AMT=250, CMT="central", AMT_UNIT="ug"),  # replace by 0.25 mg
    ]
    recs = read_events(frame(rows), model=pk_model()).subjects[0].records
    assert [r.amt for r in recs] == pytest.approx([0.5, 1000.0, 180.0, 800.0, 0.25])
    assert recs[3].rate == pytest.approx(400.0)


def test_per_kg_dose_without_weight_uses_the_model_default_with_a_warning():
    rows = [_row(EVID=1, AMT=2, CMT="depot", AMT_UNIT="mg/kg")]
    with pytest.warns(HemolabWarning, match=r"row\(s\) 1 has no WT .* default WT = 70"):
        ds = read_events(frame(rows), model=pk_model())
    assert ds.subjects[0].records[0].amt == pytest.approx(140.0)  # 2 mg/kg x 70 kg


def test_amt_unit_on_a_state_without_unit_is_an_issue():
    model = pk_model(states=[hl.State("A", "-KA*A")])
    with pytest.raises(DatasetError, match="state 'A' declares no unit"):
        read_events(frame([_row(EVID=1, AMT=1, CMT=1, AMT_UNIT="mg")]), model=model)


def test_a_days_dataset_on_an_hours_model_is_converted():
    ds = read_events(DATA / "days.csv", model=pk_model(), time_unit="d")
    assert (ds.time_unit, ds.source_time_unit) == ("h", "d")
    infusion, dose, obs = ds.subjects[0].records
    assert infusion.rate == pytest.approx(1.0)  # 24 mg/d = 1 mg/h
    assert (dose.time, dose.dur, dose.ii) == pytest.approx((12.0, 6.0, 24.0))
    assert obs.time == pytest.approx(48.0)


def test_parquet_metadata_gives_the_time_unit(tmp_path):
    table = pa.Table.from_pandas(pd.read_csv(DATA / "days.csv", dtype=str))
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"time_unit": b"d"})
    path = tmp_path / "days.parquet"
    pq.write_table(table, path)
    ds = read_events(path, model=pk_model())
    assert ds.file == "days.parquet"
    assert ds.subjects[0].records[2].time == pytest.approx(48.0)
    with pytest.raises(DatasetError, match="disagrees with the file's metadata"):
        read_events(path, model=pk_model(), time_unit="h")


def test_unknown_time_unit_is_an_issue():
    with pytest.raises(DatasetError, match="time unit 'fortnight' is not one of"):
        read_events(frame([_row()]), model=pk_model(), time_unit="fortnight")


def test_datetime_becomes_hours_since_the_subjects_first_datetime():
    ds = read_events(DATA / "datetime.csv", model=pk_model())
    a, b = ds.subjects
    # 08:00+01:00 -> 20:30+01:00 is 12.5 h; -> 06:00Z next day (07:00Z anchor) is 23 h
    assert [r.time for r in a.records] == pytest.approx([0.0, 12.5, 23.0])
    assert [r.time for r in b.records] == pytest.approx([0.0, 24.0])
    assert ds.anchor("T0000000") is not None
    assert "anchor" not in repr(ds)
    days = read_events(DATA / "datetime.csv", model=pk_model(time_unit="d"))
    assert [r.time for r in days.subjects[1].records] == pytest.approx([0.0, 1.0])


# --- hemolab events -------------------------------------------------------------------------------


def test_transfusion_defaults_per_unit_and_duration():
    recs = read_events(DATA / "blood.csv", model=blood_model()).subjects[0].records
    rbc, plt = recs[1], recs[2]
    assert (rbc.product, rbc.units, rbc.volume, rbc.hct, rbc.hb_g, rbc.plt_e9) == (
        "RBC",
        2.0,
        287.0,
        0.67,
        55.0,
        0.0,
    )
    assert rbc.dur == 2.0  # default 2 h
    assert (plt.product, plt.volume, plt.plt_e9, plt.dur) == ("PLT_APH", 300.0, 252.0, 0.0)
    assert (recs[3].event, recs[3].volume) == ("phlebotomy", 450.0)
    assert (recs[4].param, recs[4].value) == ("kHb", 0.02)


def test_transfusion_default_duration_in_a_days_model():
    model = blood_model().replace(time_unit="d")
    row = _row(EVID=2, EVENT="transfusion", PRODUCT="PLASMA")
    rec = read_events(frame([row]), model=model).subjects[0].records[0]
    assert rec.dur == pytest.approx(2.0 / 24.0)
    assert rec.volume == 289.0


@pytest.mark.parametrize(
    ("extra", "column", "message"),
    [
        ({"PRODUCT": "FFP"}, "PRODUCT", "PRODUCT 'FFP' is not one of RBC, WB"),
        ({}, "PRODUCT", "PRODUCT is missing"),
        ({"PRODUCT": "RBC", "UNITS": 0}, "UNITS", "UNITS 0 must be > 0"),
        ({"PRODUCT": "RBC", "HCT": 1.5}, "HCT", "between 0 and 1"),
        ({"PRODUCT": "RBC", "VOLUME": -2}, "VOLUME", "must be > 0"),
        ({"PRODUCT": "RBC", "ABO": "C"}, "ABO", "not one of O, A, B, AB"),
        ({"PRODUCT": "RBC", "RHD": "maybe"}, "RHD", "not one of POS, NEG"),
    ],
)
def test_transfusion_rules(extra, column, message):
    row = _row(EVID=2, EVENT="transfusion", **extra)
    with pytest.raises(DatasetError) as exc:
        read_events(frame([row]), model=blood_model())
    (issue,) = exc.value.issues
    assert (issue.row, issue.column) == (1, column)
    assert message in issue.message


def test_phlebotomy_needs_a_volume():
    with pytest.raises(DatasetError, match=r"row 1, column VOLUME: VOLUME \(mL of whole"):
        read_events(frame([_row(EVID=2, EVENT="phlebotomy")]), model=blood_model())


def test_blood_events_on_a_model_without_blood_name_the_row():
    rows = [_row(), _row(TIME=1, EVID=2, EVENT="phlebotomy", VOLUME=450)]
    with pytest.raises(DatasetError) as exc:
        read_events(frame(rows), model=pk_model())
    (issue,) = exc.value.issues
    assert (issue.row, issue.column) == (2, "EVENT")
    assert "declares no blood" in issue.message


def test_mix_rows_name_their_donor_by_pseudonym():
    (rec,) = [r for r in read_events(DATA / "mix.csv", model=blood_model()).subjects[0].records
              if r.event == "mix"]  # fmt: skip
    assert (rec.donor, rec.volume, rec.part, rec.deplete) == ("T0000001", 10.0, "whole", False)
    assert rec.part_states == (0, 1, 2) and math.isnan(rec.fraction)


# --- the dataset object ---------------------------------------------------------------------------


def test_subjects_keep_file_order_under_temporary_ids():
    rows = [_row(ID="zeta"), _row(ID="alpha"), _row(ID=7), _row(ID=7.0, TIME=1)]
    ds = read_events(frame(rows), model=pk_model())
    assert ds.subject_ids == ("T0000000", "T0000001", "T0000002")
    assert [len(s.records) for s in ds.subjects] == [1, 1, 2]  # 7 and 7.0 are one subject
    assert ds.temporary_id("alpha") == "T0000001"
    assert ds.ids_are_temporary
    assert "zeta" not in repr(ds) and "alpha" not in repr(ds)
    assert repr(ds) == (
        "EventDataset(file='<DataFrame>', model_name='pk1', n_subjects=3, n_records=4, "
        "time_unit='h')"
    )


def test_to_pandas_is_a_tidy_table_without_source_ids():
    ds = read_events(DATA / "regimen.csv", model=pk_model())
    df = ds.to_pandas()
    assert list(df["ID"].unique()) == ["T0000000", "T0000001"]
    assert df.loc[1, "CMT"] == "depot"
    assert df.loc[1, "ADDL"] == 2
    assert list(df["WT"].iloc[:6]) == [70, 70, 70, 80, 80, 80]
    assert {"TIME", "EVID", "AMT", "RATE", "DUR", "II", "WT", "BSA"} <= set(df.columns)


def test_dataset_is_frozen():
    ds = read_events(DATA / "regimen.csv", model=pk_model())
    assert isinstance(ds, EventDataset)
    with pytest.raises(AttributeError):
        ds.file = "other"  # type: ignore[misc]


def test_no_warning_for_a_clean_dataset():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_events(DATA / "regimen.csv", model=pk_model())


def test_public_names_are_exported_explicitly():
    public = sorted(n for n in dir(ev) if not n.startswith("_"))
    assert public == [
        "Course",
        "DoseProperties",
        "EventDataset",
        "EventRecord",
        "OP_ADD",
        "OP_BOLUS",
        "OP_MULTIPLY",
        "OP_NAMES",
        "OP_NOP",
        "OP_OUTPUT",
        "OP_PARAM",
        "OP_PHLEBOTOMY",
        "OP_RATE",
        "OP_RATE_F",
        "OP_REPLACE",
        "OP_RESET",
        "Regimen",
        "RegimenError",
        "Schedule",
        "SubjectEvents",
        "Trigger",
        "build_schedule",
        "read_events",
    ]


def test_empty_file_is_a_dataset_error(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DatasetError, match=r"empty.csv: the file is empty"):
        read_events(empty, model=pk_model())
