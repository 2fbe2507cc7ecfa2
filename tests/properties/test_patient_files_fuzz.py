"""Fuzzing the CSV readers of patient data: lab histories (DATA-FORMATS §B), patient records
and the events file of ``hemolab import`` (§A). Design note 031.

Two kinds of input per reader: tables generated cell by cell (plausible values mixed with
nasty ones, columns in any case, optional columns present or not) and mutated seed files
(``tests/data/fuzz``, ``tests/data/events``, ``examples``: lines cut, duplicated or swapped,
cells swapped, dropped or replaced, BOMs, CRLF, other encodings). The contract: the reader
returns a value or raises a ``HemolabError``, and the identifier planted in a data cell never
appears in a message, a warning or a ``repr`` (note 014: readers never echo a cell's text).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import pandas as pd
from hypothesis import example, given, settings, strategies as st

from hemolab.patients import read_labs, read_patient_records
from hemolab.patients._event_history import read_event_history
from tests.properties._fuzz import (
    DATA,
    EXAMPLES,
    FUZZ,
    NASTY,
    SECRET,
    check,
    header_holds,
    mutated_text,
    nasty_words,
    write,
)

LAB_SEEDS = [(DATA / "fuzz" / n).read_text() for n in ("labs-datetime.csv", "labs-hours.csv")]
RECORD_SEEDS = [(DATA / "fuzz" / "patients.csv").read_text()]
EVENT_SEEDS = [
    p.read_text().replace("MRN-SECRET-991", SECRET)
    for p in [*sorted((DATA / "events").glob("*.csv")), *sorted(EXAMPLES.glob("samples-*.csv"))]
]
TIME_UNITS = st.sampled_from([None, "h", "d", "w", "min", "s", "fortnight", ""])


def _csv(header: list[str], rows: list[list[object]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8", "surrogatepass")


def _secret_safe(data: bytes) -> str | None:
    """The identifier to look for: not when a mutation moved it into the header (column names
    are echoed, cells are not)."""
    return None if header_holds(data) else SECRET


# --- lab histories ------------------------------------------------------------------------

LAB_PLAUSIBLE = {
    "patient_id": st.sampled_from([SECRET, "2", "Patient/7", " 3 "]),
    "time": st.one_of(st.floats(-10, 1e4), st.sampled_from(["0", "24", "1e3"])),
    "datetime": st.sampled_from(
        ["2024-03-05T08:30:00+01:00", "2024-03-05 08:30:00Z", "2024-03-05T08:30", "2024-03-05"]
    ),
    "loinc": st.sampled_from(["718-7", "30350-3", "751-8", "777-3", "789-8", "17849-1", "1-1"]),
    "value": st.one_of(st.floats(0, 1e3), st.sampled_from(["<0.5", "< 2", "<", "<-1"])),
    "unit": st.sampled_from(["g/dL", "g/L", "mmol/L", "10*9/L", "10*3/uL", "%", "L/L", "mg"]),
    "analyte": st.sampled_from(["hb", "HB", "anc", "plt", "x"]),
    "lloq": st.sampled_from(["0.5", "0", "-1", "x"]),
    "status": st.sampled_from(["final", "preliminary", "cancelled", "FINAL", "draft"]),
    "specimen": st.sampled_from(["blood", SECRET, "x"]),
}
LAB_COLUMNS = sorted(LAB_PLAUSIBLE)


@st.composite
def lab_tables(draw: st.DrawFn) -> tuple[list[str], list[list[object]]]:
    columns = draw(st.lists(st.sampled_from(LAB_COLUMNS), min_size=1, max_size=9, unique=True))
    if draw(st.booleans()):
        columns.append(draw(st.sampled_from(["x", "PATIENT_ID", "Loinc", "value ", "comment"])))
    case = draw(st.sampled_from([str, str.upper, str.title]))
    cell = lambda c: st.one_of(  # noqa: E731
        LAB_PLAUSIBLE.get(c.strip().lower(), st.just("")),
        LAB_PLAUSIBLE.get(c.strip().lower(), st.just("")),
        st.sampled_from([".", ""]),
        nasty_words(),
    )
    rows = draw(st.lists(st.tuples(*(cell(c) for c in columns)).map(list), min_size=0, max_size=5))
    return [case(c) for c in columns], rows


@settings(FUZZ, max_examples=500)
@given(table=lab_tables(), time_unit=TIME_UNITS, as_frame=st.booleans())
# a DataFrame with a repeated column name: an AttributeError (a frame has no tolist)
@example(table=(["loinc", "loinc"], []), time_unit=None, as_frame=True)
def test_generated_lab_tables(
    tmp_path: Path, table: tuple[list[str], list[list[object]]], time_unit: str | None, as_frame
) -> None:
    header, rows = table
    if as_frame:  # cells of any type: the DataFrame path of read_labs
        frame = pd.DataFrame(rows, columns=pd.Index(header), dtype=object)
        check("labs CSV", lambda: read_labs(frame, time_unit=time_unit))
        return
    data = _csv(header, rows)
    path = write(tmp_path / "labs.csv", data)
    check("labs CSV", lambda: read_labs(path, time_unit=time_unit), secret=_secret_safe(data))


@settings(FUZZ, max_examples=600)
@given(data=mutated_text(LAB_SEEDS), time_unit=st.sampled_from([None, "h", "d", "x"]))
# a date-time whose UTC time is before year 1: an OverflowError
@example(
    data=LAB_SEEDS[0].replace("2024-03-05T08:30:00+01:00", "0001-01-01T00:00:00+01:00").encode(),
    time_unit=None,
)
def test_mutated_lab_files(tmp_path: Path, data: bytes, time_unit: str | None) -> None:
    path = write(tmp_path / "labs.csv", data)
    check("labs CSV", lambda: read_labs(path, time_unit=time_unit), secret=_secret_safe(data))


def test_lab_seeds_read() -> None:
    assert read_labs(DATA / "fuzz" / "labs-datetime.csv").n_patients == 2
    assert read_labs(DATA / "fuzz" / "labs-hours.csv", time_unit="h").n_patients == 2


# --- patient records ----------------------------------------------------------------------

RECORD_PLAUSIBLE = {
    "patient_id": st.sampled_from([SECRET, "2", "3"]),
    "sex": st.sampled_from(["female", "M", "other", "x"]),
    "age": st.one_of(st.floats(-1, 200), st.sampled_from(["44", "90", "1e400"])),
    "birth_year": st.sampled_from(["1950", "1869", "2200.5", "1e400", str(10**30)]),
    "weight_kg": st.floats(-1, 500),
    "height_cm": st.floats(-1, 300),
    "abo": st.sampled_from(["A", "ab", "O", "C"]),
    "rhd": st.sampled_from(["POS", "-", "+", "neg", "x"]),
}


@st.composite
def record_tables(draw: st.DrawFn) -> bytes:
    names = sorted(RECORD_PLAUSIBLE)
    columns = draw(st.lists(st.sampled_from(names), min_size=1, max_size=8, unique=True))
    rows = draw(
        st.lists(
            st.tuples(*(st.one_of(RECORD_PLAUSIBLE[c], nasty_words()) for c in columns)).map(list),
            max_size=4,
        )
    )
    return _csv(columns, rows)


@settings(FUZZ, max_examples=300)
@given(data=st.one_of(record_tables(), mutated_text(RECORD_SEEDS)))
def test_patient_records(tmp_path: Path, data: bytes) -> None:
    path = write(tmp_path / "patients.csv", data)
    check(
        "patient records CSV",
        lambda: read_patient_records(path),
        secret=_secret_safe(data),
        shows=lambda records: repr(list(records.values())),  # keyed by source id: never shown
    )


# --- events files for import --------------------------------------------------------------

EVENT_PLAUSIBLE = {
    "ID": st.sampled_from([SECRET, "2", 3, "Patient/9"]),
    "TIME": st.one_of(st.floats(-1, 100), st.just(math.inf)),
    "DATETIME": st.sampled_from(["2024-03-01T08:00:00+01:00", "2024-03-01T08:00:00", "x"]),
    "EVID": st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 1.5, -1]),
    "AMT": st.floats(-1, 1e3),
    "CMT": st.sampled_from(["depot", 1, "-2", "a b"]),
    "II": st.sampled_from([0, 12, -1]),
    "DUR": st.sampled_from([0, 2, "x"]),
    "EVENT": st.sampled_from(["transfusion", "mix", "phlebotomy", "param", "TRANSFUSION", "x"]),
    "PRODUCT": st.sampled_from(["RBC", "plt_aph", "x"]),
    "DONOR": st.sampled_from(["2", SECRET]),
    "ABO": st.sampled_from(["A", "x"]),
    "AMT_UNIT": st.sampled_from(["mg", "ug/kg", "mg m2"]),
    "WT": st.floats(0, 200),
    "COMMENT": st.sampled_from(["hello", SECRET]),
}


@st.composite
def event_tables(draw: st.DrawFn) -> bytes:
    names = sorted(EVENT_PLAUSIBLE)
    columns = draw(st.lists(st.sampled_from(names), min_size=1, max_size=8, unique=True))
    case = draw(st.sampled_from([str, str.lower]))
    rows = draw(
        st.lists(
            st.tuples(*(st.one_of(EVENT_PLAUSIBLE[c], nasty_words()) for c in columns)).map(list),
            max_size=5,
        )
    )
    return _csv([case(c) for c in columns], rows)


@settings(FUZZ, max_examples=500)
@given(data=st.one_of(event_tables(), mutated_text(EVENT_SEEDS)), time_unit=TIME_UNITS)
# an identifier shaped like a unit (AMT_UNIT) or a state list (PART) was kept as written,
# and the store saved it
@example(data=f"ID,TIME,EVID,AMT,AMT_UNIT\n1,0,1,5,{SECRET}\n".encode(), time_unit="h")
@example(data=f"ID,TIME,EVID,PART\n1,0,2,{SECRET}\n".encode(), time_unit="h")
def test_event_histories(tmp_path: Path, data: bytes, time_unit: str | None) -> None:
    path = write(tmp_path / "events.csv", data)
    history = check(
        "events file (import)",
        lambda: read_event_history(path, time_unit=time_unit),
        secret=_secret_safe(data),
    )
    if history is not None and _secret_safe(data):  # what the store would keep of each row
        assert all(SECRET not in repr(row.fields) for row in history.rows)


def test_the_fuzz_seeds_are_there() -> None:
    assert len(LAB_SEEDS) == 2 and RECORD_SEEDS and len(EVENT_SEEDS) >= 8
    assert NASTY.count(SECRET) == 1
