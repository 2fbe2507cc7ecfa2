"""A patient's dosing and transfusion history (DATA-FORMATS §A) read for ``hemolab import``.

An import knows no model, so only what does not need one is checked and converted here: the
``ID`` (a source identifier, matched to the labs' patients through the key table), the clock
(``TIME`` with ``--time-unit``, or ``DATETIME`` with a UTC offset), the durations ``II`` and
``DUR`` (to hours, the store's unit), the numeric columns and the vocabularies of §A. What is
stored must not identify anyone, so a column that §A does not name is kept only when it is
numeric (a covariate): free text (a comment, a name) is refused, and so is sample mixing,
whose ``DONOR`` names another patient. The rows are checked against a model when one is
calibrated to them (``hemolab.events.read_events``, every rule of §A). Messages name file,
row and column, never a cell's text.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hemolab._errors import DatasetError, DatasetIssue
from hemolab.events._checks import _ABO, _RHD, _is_missing, _parse_datetime
from hemolab.events._common import EVENT_KINDS, PRODUCTS, RESERVED_COLUMNS
from hemolab.events._dataset import _load, _normalize_id
from hemolab.model._units import TIME_UNITS

__all__ = ["EventHistory", "EventRow", "read_event_history"]

_CLOCK = ("ID", "TIME", "DATETIME")
_DURATIONS = ("II", "DUR")
_EVIDS = frozenset({0, 1, 2, 3, 4, 5, 6})
_NUMERIC = frozenset({"EVID", "AMT", "RATE", "ADDL", "SS", "MDV", "DV", "CENS", "LIMIT", "OCC",
                      "VOLUME", "UNITS", "FRACTION", "DEPLETE", "HB_G", "HCT", "PLT_E9",
                      "VALUE"})  # fmt: skip
_VOCABULARY = {
    "EVENT": frozenset(k for k in EVENT_KINDS if k != "mix"),
    "PRODUCT": frozenset(PRODUCTS),
    "ABO": _ABO,
    "RHD": _RHD,
}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}|-?[0-9]+")  # CMT, DVID, PARAM
_UNIT = re.compile(r"[A-Za-z0-9_\[\]/.*^{}%'-]{1,32}")  # AMT_UNIT (UCUM), PART (state list)


def _is_ucum(text: str) -> bool:
    from hemolab._errors import UnitError
    from hemolab.model._units import parse_unit

    try:
        parse_unit(text)
    except UnitError:
        return False
    return True


@dataclass(frozen=True)
class EventRow:
    """One row: its patient (``source_id``, never logged), its time (``time_h`` on the file's
    numeric clock, or ``stamp``) and its other cells (``II``, ``DUR`` in hours)."""

    source_id: str
    row: int  # 1-based data row of the file
    time_h: float | None
    stamp: datetime | None
    fields: dict[str, Any]


@dataclass(frozen=True)
class EventHistory:
    """The rows of one events file, in file order."""

    file: str
    rows: tuple[EventRow, ...]
    numeric: bool  # TIME (the file's own clock) rather than DATETIME

    def first_stamp(self, source_id: str) -> datetime | None:
        stamps = [r.stamp for r in self.rows if r.source_id == source_id and r.stamp]
        return min(stamps, default=None)

    @property
    def source_ids(self) -> set[str]:
        return {r.source_id for r in self.rows}


def read_event_history(
    path: str | os.PathLike[str], *, time_unit: str | None = None
) -> EventHistory:
    """Read and check an events file for import (see the module docstring).

    Raises :class:`~hemolab.DatasetError` listing every problem found."""
    raw, _, name = _load(path, None)
    issues: list[DatasetIssue] = []

    def issue(row: int | None, column: str | None, message: str) -> None:
        issues.append(DatasetIssue(name, row, column, message))

    columns: dict[str, list[Any]] = {}
    for col, cells in raw.items():
        upper = col.upper()
        if upper in columns:
            issue(None, col, f"column {col!r} appears twice (names are not case-sensitive)")
        columns[upper] = cells
    n = len(next(iter(raw.values()), []))
    if "ID" not in columns:
        issue(None, "ID", "missing; expected the patient's identifier (the labs' patient_id "
              "or FHIR subject reference)")  # fmt: skip
    has_time, has_dt = "TIME" in columns, "DATETIME" in columns
    if has_time == has_dt:
        issue(None, "TIME", "expected exactly one of TIME (numeric, with --time-unit) and "
              "DATETIME (ISO 8601 with a UTC offset)")  # fmt: skip
    durations = [c for c in _DURATIONS if c in columns and not all(map(_is_missing, columns[c]))]
    if time_unit is not None and time_unit not in TIME_UNITS:
        issue(None, None, f"--time-unit {time_unit!r} is not a time unit "
              f"({', '.join(TIME_UNITS)})")  # fmt: skip
    elif time_unit is None and (has_time or durations):
        what = "TIME" if has_time else " and ".join(durations)
        issue(None, None, f"{what} is numeric: pass --time-unit (the unit it is written in)")
    if issues or n == 0:
        if n == 0 and not issues:
            issue(None, None, "no rows; expected one row per dose or transfusion")
        raise DatasetError(issues)
    to_h = TIME_UNITS[time_unit] if time_unit is not None else math.nan

    def number(i: int, col: str) -> float | None:
        cell = columns[col][i]
        if _is_missing(cell):
            return None
        try:
            x = float(cell)
        except (TypeError, ValueError):
            what = "a number" if col in RESERVED_COLUMNS else "a number (a covariate; free text "
            what += "" if col in RESERVED_COLUMNS else "is not stored)"
            issue(i + 1, col, f"expected {what}")
            return None
        if not math.isfinite(x):
            issue(i + 1, col, "is not a finite number")
            return None
        return x

    def _cell(i: int, col: str, text: str) -> str | None:
        """A cell as written, if §A allows it in the store; else None and an issue."""
        if col in _NUMERIC or col not in RESERVED_COLUMNS:
            if number(i, col) is None:
                return None
        elif col in _VOCABULARY:
            allowed = _VOCABULARY[col]
            if (text.lower() if col == "EVENT" else text.upper()) not in allowed:
                if col == "EVENT" and text.lower() == "mix":
                    issue(i + 1, col, "sample mixing cannot be imported: its DONOR names "
                          "another patient (simulate it from an events file instead)")  # fmt: skip
                else:
                    issue(i + 1, col, f"expected one of {', '.join(sorted(allowed))}")
                return None
        elif col == "DONOR":
            issue(i + 1, col, "sample mixing cannot be imported: DONOR names another patient")
            return None
        elif col != "PART" and not (_NAME if col in ("CMT", "DVID", "PARAM") else _UNIT).fullmatch(
            text
        ):
            issue(i + 1, col, "expected a state, observable or parameter name, or a unit")
            return None
        elif col == "PART" and not all(_NAME.fullmatch(p.strip()) for p in text.split(";")):
            issue(i + 1, col, "expected whole, plasma, cells or a ;-list of state names")
            return None
        elif col == "AMT_UNIT" and not _is_ucum(text):
            # the store keeps the cell: only a unit, never text that merely looks like one
            issue(i + 1, col, "expected a UCUM unit (mg, ug/kg, mg/m2, [iU]/kg, ...)")
            return None
        return text

    rows: list[EventRow] = []
    ended: set[str] = set()
    current: str | None = None
    for i in range(n):
        cell = columns["ID"][i]
        if _is_missing(cell):
            issue(i + 1, "ID", "missing; every row names its patient")
            continue
        sid = _normalize_id(cell)
        if sid != current:
            if sid in ended:
                issue(i + 1, "ID", "this patient's rows are not contiguous (rows of one ID "
                      "must follow each other)")  # fmt: skip
            if current is not None:
                ended.add(current)
            current = sid
        time_h = stamp = None
        if has_time:
            t = number(i, "TIME")
            if t is None and _is_missing(columns["TIME"][i]):
                issue(i + 1, "TIME", "missing")
            time_h = None if t is None else t * to_h
        else:
            text = columns["DATETIME"][i]
            stamp = None if _is_missing(text) else _parse_datetime(str(text).strip())
            if stamp is None:
                issue(i + 1, "DATETIME", "expected an ISO 8601 date-time with a UTC offset "
                      "(e.g. 2026-03-01T08:00:00+01:00)")  # fmt: skip
        evid = number(i, "EVID") if "EVID" in columns else 0.0
        if evid is not None and (not float(evid).is_integer() or int(evid) not in _EVIDS):
            issue(i + 1, "EVID", "expected 0 to 6 (DATA-FORMATS §A)")
            evid = None
        if evid is None and "EVID" in columns:
            columns["EVID"][i] = None  # reported once
        fields: dict[str, Any] = {}
        for col, cells in columns.items():
            if col in _CLOCK:
                continue
            if col in _DURATIONS:
                x = number(i, col)
                fields[col] = None if x is None else x * to_h
                continue
            value = cells[i]
            fields[col] = None if _is_missing(value) else _cell(i, col, str(value).strip())
        rows.append(EventRow(sid, i + 1, time_h, stamp, fields))
    if issues:
        raise DatasetError(issues)
    return EventHistory(name, tuple(rows), numeric=has_time)
