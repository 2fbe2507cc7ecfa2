"""Lab histories from CSV (DATA-FORMATS §B): units, censoring, status, and every bad input.

Conversions are checked against hand-computed values: 1 mmol/L of Hb monomer = 1.611 g/dL,
1 g/L = 0.1 g/dL, 1 L/L = 100 %, 10*3/uL = 10*3/mm3 = 10*9/L, 1 /uL = 1e-3 10*9/L.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from hemolab import DatasetError
from hemolab.patients import ANALYTES, analyte_for_loinc, read_labs

SECRET_ID = "MRN-0048151623"  # an identifier that must never appear in a message or repr
SECRET_STAMP = "1961-07-14T09:12:00+02:00"


def write(tmp_path: Path, text: str, name: str = "labs.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_units_convert_to_the_canonical_ones(tmp_path: Path) -> None:
    csv = f"""patient_id,datetime,loinc,value,unit,status,specimen
{SECRET_ID},2024-03-05T08:30:00+01:00,718-7,123,g/L,final,venous
{SECRET_ID},2024-04-05T08:30:00+01:00,718-7,7.2,mmol/L,,
{SECRET_ID},2024-05-05T08:30:00+00:00,30350-3,9.5,g/dL,amended,
{SECRET_ID},2024-05-05T08:30:00+00:00,751-8,1.8,10*3/uL,corrected,
{SECRET_ID},2024-05-05T08:30:00+00:00,26499-4,950,/uL,final,
{SECRET_ID},2024-05-05T08:30:00+00:00,777-3,85,10*3/mm3,preliminary,
{SECRET_ID},2024-05-05T08:30:00+00:00,4544-3,0.31,L/L,final,
P2,2024-05-06T10:00:00-05:00,789-8,3.9,10*6/uL,final,
"""
    labs = read_labs(write(tmp_path, csv))
    got = [(r.analyte, r.value, r.unit) for r in labs.records]
    expected = [
        ("hb", 12.3, "g/dL"),
        ("hb", 7.2 * 1.611, "g/dL"),
        ("hb", 9.5, "g/dL"),
        ("anc", 1.8, "10*9/L"),
        ("anc", 0.95, "10*9/L"),
        ("plt", 85.0, "10*9/L"),
        ("hct", 31.0, "%"),
        ("rbc", 3.9, "10*12/L"),
    ]
    assert [(a, u) for a, _, u in got] == [(a, u) for a, _, u in expected]
    for (_, v, _), (_, w, _) in zip(got, expected, strict=True):
        assert math.isclose(v, w, rel_tol=1e-12)
    first = labs.records[0]
    assert first.stamp == datetime(2024, 3, 5, 7, 30, tzinfo=UTC)  # offset applied
    assert first.specimen == "venous" and first.observable == "Hb" and first.row == 1
    assert [r.preliminary for r in labs.records].count(True) == 1
    assert labs.n_patients == 2 and labs.counts()["hb"] == 3
    assert SECRET_ID not in repr(labs)


def test_numeric_times_need_their_unit_and_convert_to_hours(tmp_path: Path) -> None:
    csv = "PATIENT_ID,TIME,LOINC,VALUE,UNIT\n1,0,718-7,12,g/dL\n1,2.5,718-7,11,g/dL\n"
    path = write(tmp_path, csv)
    assert [r.time_h for r in read_labs(path, time_unit="d").records] == [0.0, 60.0]
    with pytest.raises(DatasetError, match="numeric times need their unit: pass --time-unit"):
        read_labs(path)
    with pytest.raises(DatasetError, match=r"unknown time unit|fortnight"):
        read_labs(path, time_unit="fortnight")


def test_values_below_the_lloq_are_censored(tmp_path: Path) -> None:
    csv = """patient_id,time,loinc,value,unit,lloq
1,0,751-8,<0.1,10*9/L,
1,1,751-8,,10*3/uL,0.05
1,2,751-8,40,/uL,50
1,3,751-8,0.7,10*9/L,0.05
"""
    recs = read_labs(write(tmp_path, csv), time_unit="h").records
    assert [r.censored for r in recs] == [True, True, True, False]
    assert all(math.isnan(r.value) for r in recs[:3]) and recs[3].value == 0.7
    assert [r.lloq for r in recs] == [0.1, 0.05, pytest.approx(0.05), 0.05]


def test_status_rules_keep_flag_and_drop(tmp_path: Path) -> None:
    csv = """patient_id,time,loinc,value,unit,status
1,0,718-7,12,g/dL,final
1,1,718-7,11,g/dL,cancelled
1,2,718-7,10,g/dL,entered-in-error
1,3,718-7,9,g/dL,Preliminary
"""
    labs = read_labs(write(tmp_path, csv), time_unit="h")
    assert [r.time_h for r in labs.records] == [0.0, 3.0]
    assert labs.dropped == {"cancelled": 1, "entered-in-error": 1}
    assert labs.records[1].preliminary


def test_every_bad_row_is_reported_at_once_without_identifiers(tmp_path: Path) -> None:
    csv = f"""patient_id,datetime,loinc,value,unit,analyte,status
{SECRET_ID},{SECRET_STAMP},718-7,12,foo,,final
{SECRET_ID},{SECRET_STAMP},751-8,1.2,mg,,final
{SECRET_ID},{SECRET_STAMP},2951-2,140,mmol/L,,final
{SECRET_ID},2024-03,718-7,12,g/dL,,final
{SECRET_ID},2024-03-05T08:30:00,718-7,12,g/dL,,final
{SECRET_ID},{SECRET_STAMP},718-7,-3,g/dL,,final
{SECRET_ID},{SECRET_STAMP},718-7,,g/dL,,final
{SECRET_ID},{SECRET_STAMP},718-7,12,g/dL,plt,final
{SECRET_ID},{SECRET_STAMP},718-7,12,g/dL,,done
,{SECRET_STAMP},718-7,12,g/dL,,final
{SECRET_ID},{SECRET_STAMP},718-7,twelve,,,final
"""
    with pytest.raises(DatasetError) as info:
        read_labs(write(tmp_path, csv, "bad.csv"))
    where = {(i.row, i.column) for i in info.value.issues}
    assert {
        (1, "unit"),
        (2, "unit"),
        (3, "loinc"),
        (4, "datetime"),
        (5, "datetime"),
        (6, "value"),
        (7, "value"),
        (8, "analyte"),
        (9, "status"),
        (10, "patient_id"),
        (11, "unit"),
        (11, "value"),
    } <= where
    text = str(info.value)
    assert text.startswith("12 problems in the lab history:")
    assert "bad.csv, row 1, column unit: the unit is not a UCUM code hemolab reads" in text
    assert "absolute neutrophil count cannot be read in 'mg' (mass)" in text
    assert "row 3, column loinc: not a LOINC code hemolab reads (accepted: hb 718-7" in text
    assert SECRET_ID not in text and "1961" not in text and "foo" not in text


def test_an_identifier_in_any_column_is_never_echoed(tmp_path: Path) -> None:
    """A shifted column can put an identifier in any cell: no message may quote it."""
    header = ["patient_id", "time", "loinc", "value", "unit", "analyte", "lloq", "status"]
    good = ["p", "0", "718-7", "12", "g/dL", "hb", "1", "final"]
    rows = []
    for k in range(1, len(header)):
        row = list(good)
        row[k] = SECRET_ID
        rows.append(",".join(row))
    path = write(tmp_path, ",".join(header) + "\n" + "\n".join(rows) + "\n")
    with pytest.raises(DatasetError) as info:
        read_labs(path, time_unit="h")
    text = str(info.value)
    assert len(info.value.issues) == len(header) - 1, text  # one problem per poisoned column
    assert SECRET_ID not in text and "0048151623" not in text


@pytest.mark.parametrize(
    ("csv", "message"),
    [
        ("patient_id,loinc,value,unit\n1,718-7,12,g/dL\n", "give exactly one of the columns"),
        ("patient_id,time,datetime,loinc,value,unit\n", "give exactly one of the columns"),
        ("patient_id,time,loinc,value\n1,0,718-7,12\n", "column unit: this required column"),
        ("patient_id,time,loinc,value,unit,mrn\n", "unknown column(s) mrn"),
        ("patient_id,TIME,loinc,value,unit\n", "column names mix cases"),
        ("patient_id,time,loinc,value,unit,Time\n", "repeat when case is ignored"),
        ("patient_id,time,loinc,value,unit,status\n1,0,718-7,1,g/dL,cancelled\n", "no value"),
        ("", "the file is empty"),
    ],
)
def test_file_level_problems(tmp_path: Path, csv: str, message: str) -> None:
    with pytest.raises(DatasetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_labs(write(tmp_path, csv), time_unit="h")


def test_missing_file_and_dataframe_input(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"nope\.csv: the file does not exist"):
        read_labs(tmp_path / "nope.csv")
    frame = pd.DataFrame(
        {
            "patient_id": ["a", "a"],
            "time": [0.0, 24.0],
            "loinc": ["777-3", "777-3"],
            "value": [150.0, float("nan")],
            "unit": ["10*9/L", "10*9/L"],
            "lloq": [float("nan"), 5.0],
        }
    )
    recs = read_labs(frame, time_unit="h").records
    assert [r.value for r in recs[:1]] == [150.0] and recs[1].censored and recs[1].lloq == 5.0


def test_analyte_table_covers_the_data_formats_codes() -> None:
    for code in ("718-7", "30350-3", "4544-3", "20570-8", "789-8", "6690-2", "26464-8"):
        assert analyte_for_loinc(code) is not None
    for code in ("751-8", "26499-4", "777-3", "26515-7", "17849-1", "60474-4", "14196-0"):
        assert analyte_for_loinc(code) is not None
    assert analyte_for_loinc("2951-2") is None
    assert {a.observable for a in ANALYTES.values()} >= {"Hb", "ANC", "PLT", "Hct", "RBC"}
    assert ANALYTES["retic_abs"].factor("10*6/uL") == pytest.approx(1000.0)
