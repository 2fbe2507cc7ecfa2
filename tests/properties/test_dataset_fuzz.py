"""Fuzzing ``read_events`` and ``simulate`` with mutated event datasets (DATA-FORMATS §A).

Small valid datasets for the ``one_cmt`` model (doses; EVID 2-6 events; model rates, steady
state, units and covariates; a DATETIME clock) are mutated: cells replaced by text, numbers,
NaN, negative or huge values; columns dropped or added, reserved names among them; rows
duplicated, dropped or shuffled. A second, gentler mix keeps rows sorted so that more datasets
read and reach ``simulate``. The contract:

* ``read_events`` succeeds or raises :class:`hemolab.DatasetError`, never another exception,
  from a ``DataFrame`` and from the same table written to CSV;
* every :class:`~hemolab.DatasetIssue` has a message and a row within the table (or None);
* the source identifier in the ``ID`` column never appears in an error, a warning or a repr;
* a dataset that reads simulates, or raises a :class:`hemolab.HemolabError` subclass.

Bugs the fuzzer found are kept as explicit examples at the end (regressions); the main
strategy leaves their inputs out so that it keeps looking for new ones.
"""

from __future__ import annotations

import math
import os
import tempfile
import warnings
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest
from hypothesis import (
    HealthCheck,
    Phase,
    currently_in_test_context,
    event,
    example,
    given,
    settings,
    strategies as st,
)

import hemolab as hl
from hemolab.events import EventDataset, read_events
from hemolab.events._common import RESERVED_COLUMNS
from tests._fuzz_counts import tried
from tests._models import blood_model, pk_model
from tests.properties._fuzz import DATA, check as fuzz_check, header_holds, mutated_text, write

FILE_SEEDS = [p.read_text() for p in sorted((DATA / "events").glob("*.csv"))]
SECRET = "MRN-FUZZ-4242"  # a source identifier: must never reach a message

S, M = SECRET, "."  # M: a missing cell
# Small valid datasets for one_cmt, each within one compiled bucket (see n_actions).
BASES: dict[str, dict[str, list[Any]]] = {
    "doses": {  # boluses with ADDL, an infusion at a RATE, observations by DVID
        "ID": [S, S, S, 2, 2, 2],
        "TIME": [0, 0.5, 12, 0, 1, 24],
        "EVID": [1, 0, 0, 1, 0, 0],
        "AMT": [100, 0, 0, 50, 0, 0],
        "CMT": [1, 2, 2, "central", 2, 2],
        "RATE": [0, 0, 0, 10, 0, 0],
        "II": [12, 0, 0, 0, 0, 0],
        "ADDL": [1, 0, 0, 0, 0, 0],
        "DV": [M, 1.5, 0.7, M, 2.0, 0.1],
        "DVID": [M, "Cc", "central", M, 1, "Cc"],
    },
    "events": {  # a parameter change, reset, reset and dose, replace, multiply
        "ID": [S, S, S, S, S, S, S, S, S],
        "TIME": [0, 2, 4, 6, 6, 8, 10, 12, 14],
        "EVID": [1, 2, 0, 3, 4, 0, 5, 6, 0],
        "AMT": [100, 0, 0, 0, 50, 0, 10, 0.5, 0],
        "CMT": [1, M, M, M, 2, M, 2, 2, M],
        "EVENT": [M, "param", M, M, M, M, M, M, M],
        "PARAM": [M, "CL", M, M, M, M, M, M, M],
        "VALUE": [M, 4.0, M, M, M, M, M, M, M],
    },
    "model rates": {  # RATE -1/-2, DUR, steady state, covariate WT, AMT_UNIT, OCC
        "ID": [S, S, S, 2, 2, 2, 2],
        "TIME": [0, 4, 6, 0, 11.5, 12, 13],
        "EVID": [1, 1, 0, 1, 0, 1, 0],
        "AMT": [20, 20, 0, 100, 0, 5, 0],
        "CMT": [2, 2, 2, 1, 2, 2, 2],
        "RATE": [-1, -2, 0, 0, 0, M, 0],
        "DUR": [M, M, M, M, M, 2, M],
        "SS": [0, 0, 0, 1, 0, 0, 0],
        "II": [0, 0, 0, 12, 0, 0, 0],
        "AMT_UNIT": ["mg", "mg", M, "mg", M, "ug/kg", M],
        "WT": [60, 60, 60, 80, 80, 80, 80],
        "OCC": [1, 1, 1, 1, 1, 2, 2],
    },
    "datetime": {  # the clock from DATETIME, an unknown column
        "ID": [S, S, S, 7, 7],
        "DATETIME": [
            "2024-03-01T08:00:00+01:00",
            "2024-03-01T09:30:00+01:00",
            "2024-03-02T08:00:00+01:00",
            "2024-03-01T00:00:00Z",
            "2024-03-01T06:00:00+00:00",
        ],
        "EVID": [1, 0, 0, 1, 0],
        "AMT": [100, 0, 0, 10, 0],
        "CMT": [1, 2, 2, 2, 2],
        "SITE": ["a", "b", "c", "d", "e"],
    },
}
# the columns DATA-FORMATS reserves (the reader's own list) plus the model's covariate
RESERVED = (*sorted(RESERVED_COLUMNS), "WT")
MEANINGFUL = (
    *range(-2, 10),
    0.5,
    -1.5,
    "depot",
    "central",
    "Cc",
    "x",
    "param",
    "transfusion",
    "phlebotomy",
    "mix",
    "RBC",
    "PLASMA",
    "ka",
    "CL",
    "WT",
    "mg",
    "ug",
    "mg/kg",
    "mg/m2",
    "g/L",
    "2024-03-01T08:30:00+01:00",
    "2024-03-01",
)
SETTINGS = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Cells a user (or a buggy export) might produce. Python ints are kept within float range:
# larger ones are a known bug (see test_known_bug_int_beyond_float_range).
wild_cells = st.one_of(
    st.none(),
    st.just(math.nan),
    st.sampled_from(MEANINGFUL),
    st.sampled_from([".", "", "NA", " ", "nan", "inf", "-inf", "1e308", "1e400", "-0", "1_0"]),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=8),
    st.integers(-(10**18), 10**18),
    st.floats(),  # NaN, ±inf, subnormal, ±1.8e308
    st.floats(-1e6, 1e6),
    st.booleans(),
)

# Per column, values that often keep the dataset readable, so that simulate sees unusual
# but valid events (EVID 2-6, SS, model rates, lags, parameter changes, units...).
MISSING = st.sampled_from([".", "", None])
PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "ID": st.sampled_from([SECRET, 2, 3, "2"]),
    "TIME": st.one_of(st.sampled_from([0, 0.5, 1, 12, 24, 36]), st.floats(0.0, 48.0)),
    "EVID": st.integers(0, 6),
    "AMT": st.one_of(st.just(0), st.floats(0.0, 200.0)),
    "CMT": st.sampled_from([1, 2, -1, -2, "depot", "central"]),
    "RATE": st.sampled_from([0, -1, -2, 5, 20.5]),
    "DUR": st.sampled_from([0, 1, 2.5]),
    "II": st.sampled_from([0, 6, 12, 24]),
    "ADDL": st.integers(0, 3),
    "SS": st.integers(0, 3),
    "MDV": st.integers(0, 1),
    "DV": st.floats(0.0, 10.0),
    "DVID": st.sampled_from(["Cc", "central", "depot", 1, 2, "Hb"]),
    "EVENT": st.sampled_from(["param", "transfusion", "mix", "phlebotomy"]),
    "PARAM": st.sampled_from(["CL", "ka", "V", "F1", "ALAG", "WT", "R2", "D2", "k"]),
    "VALUE": st.floats(0.0, 20.0),
    "WT": st.floats(1.0, 150.0),
    "AMT_UNIT": st.sampled_from(["mg", "ug", "g", "mg/kg", "mg/m2", "mL"]),
    "OCC": st.integers(0, 3),
    "CENS": st.integers(-1, 1),
    "LIMIT": st.floats(0.0, 1.0),
}


def plausible_cells(column: str) -> st.SearchStrategy[Any]:
    values = PLAUSIBLE.get(str(column).strip().upper(), st.sampled_from(MEANINGFUL))
    return st.one_of(values, MISSING)


def wild(column: str) -> st.SearchStrategy[Any]:
    return wild_cells


reserved_names = st.sampled_from(RESERVED).flatmap(
    lambda n: st.sampled_from([n, n.lower(), n.capitalize()])
)
unknown_names = st.text("ABCXYZ_abc0123 ", min_size=1, max_size=6)
MUTATIONS = ("cell", "drop column", "duplicate row", "drop row", "shuffle", "add column")
"""Mutations of the wild fuzz; ``frames`` also knows gentler ones (``dose cell``, ``tie``,
``repeat row``) that keep rows sorted and IDs contiguous."""


@st.composite
def frames(
    draw: st.DrawFn,
    cells: Callable[[str], st.SearchStrategy[Any]] = wild,
    *,
    kinds: tuple[str, ...] = MUTATIONS,
    sparse: bool = False,
    max_changes: int = 6,
) -> pd.DataFrame:
    """The base dataset after up to ``max_changes`` random mutations of the given kinds.

    ``sparse``: an added column is missing except on one row (a single event's field).
    """
    df = pd.DataFrame(BASES[draw(st.sampled_from(sorted(BASES)))], dtype=object)
    for _ in range(draw(st.integers(0, max_changes))):
        kind = draw(st.sampled_from(kinds))
        n_rows, n_cols = df.shape
        if kind == "cell" and n_rows and n_cols:
            i, j = draw(st.integers(0, n_rows - 1)), draw(st.integers(0, n_cols - 1))
            df = df.copy()
            df.iat[i, j] = draw(cells(df.columns[j]))
        elif kind == "dose cell" and n_rows:
            # a dose or event field: ID and TIME stay as they are (sorted, contiguous)
            i = draw(st.integers(0, n_rows - 1))
            column = draw(st.sampled_from([c for c in df.columns if c not in ("ID", "TIME")]))
            df = df.copy()
            df.at[i, column] = draw(cells(column))
        elif kind == "tie" and n_rows > 1 and "TIME" in df.columns:
            i = draw(st.integers(1, n_rows - 1))  # the same time as the row before
            df = df.copy()
            df.at[i, "TIME"] = df.at[i - 1, "TIME"]
        elif kind == "repeat row" and n_rows:  # a copy right after the row
            i = draw(st.integers(0, n_rows - 1))
            df = pd.concat([df.iloc[: i + 1], df.iloc[[i]], df.iloc[i + 1 :]], ignore_index=True)
        elif kind == "drop column" and n_cols:
            df = df.drop(columns=df.columns[draw(st.integers(0, n_cols - 1))])
        elif kind == "duplicate row" and n_rows:
            i, at = draw(st.integers(0, n_rows - 1)), draw(st.integers(0, n_rows))
            df = pd.concat([df.iloc[:at], df.iloc[[i]], df.iloc[at:]], ignore_index=True)
        elif kind == "drop row" and n_rows:
            df = df.drop(index=df.index[draw(st.integers(0, n_rows - 1))])
            df = df.reset_index(drop=True)
        elif kind == "shuffle":
            df = df.iloc[draw(st.permutations(range(n_rows)))].reset_index(drop=True)
        elif kind == "add column":
            name = draw(st.one_of(reserved_names, unknown_names))
            if sparse and n_rows:
                values: list[Any] = ["."] * n_rows
                values[draw(st.integers(0, n_rows - 1))] = draw(cells(name))
            else:
                values = [draw(cells(name)) for _ in range(n_rows)]
            df = df.copy()
            df[name] = pd.Series(values, index=df.index, dtype=object)
    return df


# --- the contract ---------------------------------------------------------------------------


def note(text: str) -> None:
    """A Hypothesis event (``--hypothesis-show-statistics``), when inside a test."""
    if currently_in_test_context():
        event(text)


def read_checked(source: Any, model: hl.Model, n_rows: int) -> EventDataset | None:
    """``read_events`` under the contract; the dataset, or None on a DatasetError."""
    tried("event dataset")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            dataset = read_events(source, model=model)
        except hl.DatasetError as exc:
            assert exc.issues, "a DatasetError lists at least one issue"
            for issue in exc.issues:
                row = issue.row
                assert row is None or (isinstance(row, int) and 1 <= row <= n_rows), issue
                assert isinstance(issue.message, str) and issue.message.strip()
                assert SECRET not in str(issue)
            assert SECRET not in str(exc)
            dataset = None
    note("read: ok" if dataset is not None else "read: DatasetError")
    for w in caught:
        assert SECRET not in str(w.message)
    if dataset is not None:
        assert SECRET not in repr(dataset)
        assert SECRET not in dataset.subject_ids
    return dataset


def n_actions(dataset: EventDataset) -> int:
    """An upper bound of the widest subject's action table (doses, stops, outputs, grid)."""
    widest = 0
    for subject in dataset.subjects:
        n = 2  # the grid [0, 24]
        for rec in subject.records:
            if rec.evid in (1, 4):
                n += 2 * (rec.addl + 1) + 1 + (len(dataset.state_names) + 2) * (rec.ss != 0)
            else:
                n += 1
        widest = max(widest, n)
    return widest


def simulate_checked(model: hl.Model, dataset: EventDataset) -> None:
    # Only datasets that fit one compiled bucket (≤ 15 actions → 16, ≤ 8 outputs, ≤ 4
    # patients per call): large ones would compile new shapes, and a huge ADDL expands into
    # that many doses (minutes), which is outside this test's contract.
    if dataset.n_subjects > 4 or n_actions(dataset) > 15:
        note("simulate: skipped (too large for the bucket)")
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # recorded, not raised: checked for the ID below
        try:
            res = hl.simulate(model, dataset, grid=[0, 24])
        except hl.HemolabError as exc:
            note(f"simulate: {type(exc).__name__}")
            assert SECRET not in str(exc)
            return
    for w in caught:
        assert SECRET not in str(w.message)
    evids = sorted({rec.evid for subject in dataset.subjects for rec in subject.records})
    note(f"simulate: EVIDs {evids}")
    note(f"simulate: statuses {sorted(set(res.status_labels))}")
    assert res.n_patients == dataset.n_subjects
    assert SECRET not in res.patient_ids


def csv_rows(path: str) -> int:
    """Data rows of a CSV as hemolab's reader sees them (a bare CR in a cell ends a line)."""
    try:
        return len(pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        return 0


def check_contract(frame: pd.DataFrame, model: hl.Model, *, simulate: bool) -> None:
    dataset = read_checked(frame, model, len(frame))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "events.csv")
        frame.to_csv(path, index=False)
        read_checked(path, model, csv_rows(path))
    if simulate and dataset is not None:
        simulate_checked(model, dataset)


@pytest.mark.parametrize("name", sorted(BASES))
def test_base_datasets_are_valid(one_cmt: hl.Model, name: str) -> None:
    frame = pd.DataFrame(BASES[name], dtype=object)
    dataset = read_checked(frame, one_cmt, len(frame))
    assert dataset is not None
    assert n_actions(dataset) <= 15  # simulated by the fuzz below
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hl.HemolabWarning)
        res = hl.simulate(one_cmt, dataset, grid=[0, 24])
    assert res.status_labels == ["ok"] * dataset.n_subjects


@settings(SETTINGS, max_examples=300)
@given(frame=frames())
def test_wild_mutations_raise_only_hemolab_errors(one_cmt: hl.Model, frame: pd.DataFrame) -> None:
    check_contract(frame, one_cmt, simulate=True)


@settings(SETTINGS, max_examples=200)
@given(
    frame=frames(
        plausible_cells,
        kinds=("dose cell", "dose cell", "add column", "tie", "repeat row", "drop row"),
        sparse=True,
    )
)
def test_gentle_mutations_raise_only_hemolab_errors(one_cmt: hl.Model, frame: pd.DataFrame) -> None:
    check_contract(frame, one_cmt, simulate=True)


# --- known bugs -----------------------------------------------------------------------------

_EXPLICIT = settings(SETTINGS, phases=[Phase.explicit])


def _doses_with(cells: dict[tuple[str, int], Any] | None = None, **columns: Any) -> pd.DataFrame:
    """The ``doses`` base with some cells replaced and some columns added."""
    df = pd.DataFrame(BASES["doses"], dtype=object)
    for (column, row), value in (cells or {}).items():
        df.at[row, column] = value
    for name, values in columns.items():
        df[name] = pd.Series(values, dtype=object)
    return df


@_EXPLICIT
@given(frame=frames())
@example(frame=pd.concat([_doses_with(), _doses_with()[["AMT"]]], axis=1))
def test_duplicate_column_names_are_a_dataset_error(one_cmt: hl.Model, frame: pd.DataFrame) -> None:
    check_contract(frame, one_cmt, simulate=False)


@_EXPLICIT
@given(frame=frames())
@example(frame=_doses_with({("TIME", 1): 10**400}))
def test_int_beyond_float_range_is_a_dataset_error(one_cmt: hl.Model, frame: pd.DataFrame) -> None:
    check_contract(frame, one_cmt, simulate=False)


@_EXPLICIT
@given(frame=frames())
@example(frame=_doses_with(**{"AMT ": [999, 0, 0, 50, 0, 0]}))
def test_names_equal_after_stripping_are_a_dataset_error(
    one_cmt: hl.Model, frame: pd.DataFrame
) -> None:
    dataset = read_checked(frame, one_cmt, len(frame))
    assert dataset is None, "two AMT columns: one was dropped without a DatasetIssue"


# --- the seed files, mutated as text (design note 031) ---------------------------------------


@settings(SETTINGS, max_examples=200)
@given(data=mutated_text(FILE_SEEDS), time_unit=st.sampled_from([None, "h", "d", "x"]))
def test_mutated_dataset_files_raise_only_hemolab_errors(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, time_unit: str | None
) -> None:
    path = write(tmp_path_factory.mktemp("events") / "events.csv", data)
    model = blood_model() if b"EVENT" in data.upper() else pk_model()
    fuzz_check(
        "event dataset",
        lambda: read_events(path, model=model, time_unit=time_unit),
        secret=None if header_holds(data, "MRN-SECRET-991") else "MRN-SECRET-991",
    )
