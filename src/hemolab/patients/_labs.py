"""Lab histories from CSV (DATA-FORMATS §B): one pass, every problem reported at once.

A lab file is long: one row per value, ``patient_id, time | datetime, loinc, value, unit``
and optionally ``analyte, lloq, status, specimen`` (a specimen type of ``SPECIMENS``: the
store keeps it, so free text is refused). Values are converted to each analyte's
canonical unit (``_analytes.py``); values below the lower limit of quantification (``<0.5``,
or a ``value`` under the row's ``lloq``, or a missing value with an ``lloq``) are kept as
censored observations. Observation status follows FHIR's rules: ``final``, ``amended`` and
``corrected`` are kept, ``preliminary`` is kept and flagged, ``registered``, ``cancelled``,
``entered-in-error`` and ``unknown`` are dropped (and counted).

Nothing that identifies a patient reaches a message: problems name the file, the row and
the column and never echo a cell's text, except a unit once it parses as UCUM (a shifted
column can put an identifier anywhere); :class:`LabHistory`'s ``repr`` shows counts only.
Source identifiers stay in the history until de-identification replaces them with
pseudonyms.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hemolab._errors import DatasetError, DatasetIssue, UnitError
from hemolab.model._units import TIME_UNITS, time_factor
from hemolab.patients._analytes import ANALYTES, analyte_for_loinc

__all__ = ["Demographics", "LabHistory", "LabRecord", "read_labs"]

_REQUIRED = ("patient_id", "loinc", "value", "unit")
_OPTIONAL = ("time", "datetime", "analyte", "lloq", "status", "specimen")
_MISSING = frozenset({"", ".", "NA"})
_KEEP = frozenset({"final", "amended", "corrected"})
_FLAG = frozenset({"preliminary"})
_DROP = frozenset({"registered", "cancelled", "entered-in-error", "unknown"})
_WHAT = "lab history"
# specimen types a haematology value comes from: a closed list, because the store keeps the
# cell and free text could be anything (a name or an MRN in a shifted column; note 014)
SPECIMENS = frozenset({"blood", "whole blood", "venous", "venous blood", "arterial",
                       "arterial blood", "capillary", "capillary blood", "cord blood", "serum",
                       "plasma", "bone marrow", "marrow"})  # fmt: skip


@dataclass(frozen=True)
class LabRecord:
    """One laboratory value, in its analyte's canonical unit.

    ``time_h`` is set when the file gives numeric times (hours on the source's clock);
    ``stamp`` (UTC) when it gives ``datetime``: the patient's clock is fixed later, at
    de-identification (DATA-FORMATS §0). A censored value has ``value`` NaN and its limit in
    ``lloq``.
    """

    source_id: str  # the file's patient identifier: never logged, replaced by a pseudonym
    analyte: str
    observable: str
    value: float
    unit: str
    censored: bool
    lloq: float | None
    preliminary: bool
    time_h: float | None
    stamp: datetime | None
    specimen: str | None
    row: int  # 1-based data row of the file


@dataclass(frozen=True)
class Demographics:
    """What a patient record may carry besides identifiers (DATA-FORMATS §B)."""

    sex: str | None = None  # FHIR administrative gender: female, male, other, unknown
    birth_year: int | None = None  # turned into an age (> 89 bucketed) at de-identification
    age: float | None = None  # years
    weight_kg: float | None = None
    height_cm: float | None = None
    abo: str | None = None  # O, A, B, AB
    rhd: str | None = None  # POS, NEG

    @property
    def blood_group(self) -> Any:
        """The :class:`~hemolab.events.BloodGroup` (None when ``abo`` is not known)."""
        from hemolab.events._abo import BloodGroup

        if self.abo is None:
            return None
        return BloodGroup(self.abo, None if self.rhd is None else self.rhd == "POS")

    @property
    def childbearing_potential(self) -> bool:
        """Female aged 12-50 (a convention: §7d names the group, not the ages); unknown
        age or sex counts as not."""
        return self.sex == "female" and self.age is not None and 12 <= self.age <= 50


@dataclass(frozen=True, repr=False)
class LabHistory:
    """The values read from one lab file, with what was dropped by status."""

    file: str
    records: tuple[LabRecord, ...]
    dropped: dict[str, int]  # status (or "resource <type>") -> rows or entries dropped
    demographics: dict[str, Demographics] = field(default_factory=dict)  # by source id

    @property
    def n_patients(self) -> int:
        return len({r.source_id for r in self.records})

    def counts(self) -> dict[str, int]:
        """Values per analyte key."""
        return dict(Counter(r.analyte for r in self.records))

    def __repr__(self) -> str:  # counts only: the records hold identifiers
        per = ", ".join(f"{k} {v}" for k, v in sorted(self.counts().items()))
        return (
            f"LabHistory({self.file!r}, {self.n_patients} patients, "
            f"{len(self.records)} values: {per or 'none'})"
        )


def read_labs(
    source: str | os.PathLike[str] | Any,
    *,
    time_unit: str | None = None,
    file_name: str | None = None,
) -> LabHistory:
    """Read a lab history CSV (or a pandas ``DataFrame`` of the same columns).

    ``time_unit`` is required when the file has a numeric ``time`` column (DATA-FORMATS §0);
    ``datetime`` values must be ISO 8601 with a UTC offset and at least a time of day.
    Raises :class:`~hemolab.DatasetError` listing every problem (file, row, column).
    """
    columns, name = _load(source, file_name)
    issues: list[DatasetIssue] = []

    def issue(row: int | None, column: str | None, message: str) -> None:
        issues.append(DatasetIssue(name, row, column, message))

    lower = {c.lower(): c for c in columns}
    if len(lower) != len(columns):
        issue(None, None, "column names repeat when case is ignored; keep one of each")
    cases = {
        ("lower" if c == c.lower() else "upper" if c == c.upper() else "mixed") for c in columns
    }
    if len(cases) > 1:
        issue(None, None, "column names mix cases; write them all in one case")
    unknown = sorted(c for c in lower if c not in _REQUIRED + _OPTIONAL)
    if unknown:
        issue(
            None,
            None,
            f"unknown column(s) {', '.join(unknown)}; a lab history has "
            f"{', '.join(_REQUIRED)}, time or datetime, and optionally "
            "analyte, lloq, status, specimen",
        )
    for c in _REQUIRED:
        if c not in lower:
            issue(None, c, "this required column is missing")
    has_time, has_dt = "time" in lower, "datetime" in lower
    if has_time == has_dt:
        issue(
            None,
            None,
            "give exactly one of the columns time (numbers, with time_unit) and datetime "
            "(ISO 8601 with offset)",
        )
    hours_per_unit = 1.0
    if has_time and not has_dt:
        if time_unit is None:
            issue(
                None,
                lower["time"],
                "numeric times need their unit: pass --time-unit (time_unit=) "
                f"as one of {', '.join(TIME_UNITS)}",
            )
        else:
            try:
                hours_per_unit = time_factor(time_unit, "h")
            except UnitError as exc:
                issue(None, lower["time"], str(exc))
    if issues:
        raise DatasetError(issues, what=_WHAT)

    def cell(i: int, key: str) -> str | None:
        col = lower.get(key)
        if col is None:
            return None
        raw = columns[col][i]
        if raw is None or (isinstance(raw, float) and math.isnan(raw)):
            return None
        text = str(raw).strip()
        return None if text in _MISSING else text

    n_rows = len(next(iter(columns.values()))) if columns else 0
    records: list[LabRecord] = []
    dropped: Counter[str] = Counter()
    for i in range(n_rows):
        row = i + 1
        before = len(issues)
        status = (cell(i, "status") or "final").lower()
        if status in _DROP:
            dropped[status] += 1
            continue
        if status not in _KEEP | _FLAG:
            issue(
                row,
                lower.get("status"),
                "not an observation status; expected one of "
                f"{', '.join(sorted(_KEEP | _FLAG | _DROP))}",
            )
        source_id = cell(i, "patient_id")
        if source_id is None:
            issue(row, lower["patient_id"], "missing; every value needs its patient")
        time_h, stamp = None, None
        if has_time:
            time_h = _number(cell(i, "time"))
            if time_h is None or not math.isfinite(time_h):
                issue(row, lower["time"], f"expected a number in {time_unit}")
                time_h = None
            else:
                time_h *= hours_per_unit
        else:
            stamp = _timestamp(cell(i, "datetime"))
            if stamp is None:
                issue(
                    row,
                    lower["datetime"],
                    "expected an ISO 8601 date and time with a UTC offset "
                    "(e.g. 2024-03-05T08:30:00+01:00); partial dates are not accepted",
                )
        code = cell(i, "loinc")
        analyte = analyte_for_loinc(code) if code else None
        if code is None:
            issue(row, lower["loinc"], "missing; expected the LOINC code of the analyte")
        elif analyte is None:
            accepted = "; ".join(f"{a.key} {', '.join(a.loinc)}" for a in ANALYTES.values())
            issue(row, lower["loinc"], f"not a LOINC code hemolab reads (accepted: {accepted})")
        named = cell(i, "analyte")
        if named is not None and analyte is not None and named.lower() != analyte.key:
            issue(
                row,
                lower["analyte"],
                f"does not match the LOINC code, which is {analyte.key} "
                f"({analyte.description}); write {analyte.key} or leave it empty",
            )
        unit = cell(i, "unit")
        factor = None
        if unit is None:
            issue(row, lower["unit"], "missing; expected a UCUM unit")
        elif analyte is not None:
            try:
                factor = analyte.factor(unit)
            except UnitError as exc:
                issue(row, lower["unit"], str(exc))
        text = cell(i, "value")
        below = text is not None and text.startswith("<")
        value = _number(text[1:].strip() if below and text else text)
        lloq = _number(cell(i, "lloq"))
        if cell(i, "lloq") is not None and (lloq is None or not lloq >= 0):
            issue(row, lower.get("lloq"), "expected a number >= 0 (in the row's unit)")
            lloq = None
        if text is None and lloq is None:
            issue(row, lower["value"], "missing; give a value, '<limit', or an lloq")
        elif text is not None and (value is None or not math.isfinite(value) or value < 0):
            issue(row, lower["value"], "expected a number >= 0 or '<limit' (below the LLOQ)")
        specimen = cell(i, "specimen")
        if specimen is not None and specimen.lower() not in SPECIMENS:
            issue(
                row,
                lower.get("specimen"),
                f"not a specimen type hemolab keeps; expected one of {', '.join(sorted(SPECIMENS))}"
                " or nothing",
            )
        if len(issues) > before or analyte is None or factor is None or source_id is None:
            continue
        censored = (
            below or text is None or (lloq is not None and value is not None and value < lloq)
        )
        limit = value if below else lloq
        records.append(
            LabRecord(
                source_id=source_id,
                analyte=analyte.key,
                observable=analyte.observable,
                value=math.nan if censored or value is None else value * factor,
                unit=analyte.unit,
                censored=censored,
                lloq=None if limit is None else limit * factor,
                preliminary=status in _FLAG,
                time_h=time_h,
                stamp=stamp,
                specimen=None if specimen is None else specimen.lower(),
                row=row,
            )
        )
    if issues:
        raise DatasetError(issues, what=_WHAT)
    if not records:
        raise DatasetError(
            [DatasetIssue(name, None, None, "no value to read (every row was dropped by status)")],
            what=_WHAT,
        )
    return LabHistory(name, tuple(records), dict(dropped))


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _timestamp(text: str | None) -> datetime | None:
    """An aware ISO 8601 date-time in UTC, or None (missing, partial, or without offset)."""
    if text is None or ("T" not in text.upper() and " " not in text):
        return None
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return None
    if stamp.utcoffset() is None:
        return None
    try:
        return stamp.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before year 1 in UTC
        return None


def _load(source: Any, file_name: str | None) -> tuple[dict[str, list[Any]], str]:
    """``{column as written: cells (text)}`` and the file's name for messages."""
    import pandas as pd

    if isinstance(source, pd.DataFrame):
        frame = source.astype(object)
        name = file_name or "<DataFrame>"
    else:
        path = os.fspath(source)
        name = file_name or os.path.basename(path)
        if not os.path.isfile(path):
            raise DatasetError(
                [DatasetIssue(name, None, None, "the file does not exist")], what=_WHAT
            )
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
        except pd.errors.EmptyDataError:
            raise DatasetError(
                [DatasetIssue(name, None, None, "the file is empty; expected a header row")],
                what=_WHAT,
            ) from None
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise DatasetError(
                [DatasetIssue(name, None, None, f"not a readable CSV file: {exc}")], what=_WHAT
            ) from None
    names = [str(c).strip() for c in frame.columns]
    if len(set(names)) != len(names):  # a DataFrame may repeat a name (a CSV gets "x.1")
        raise DatasetError(
            [DatasetIssue(name, None, None, "column names repeat; keep one column of each")],
            what=_WHAT,
        )
    return {c: frame.iloc[:, k].tolist() for k, c in enumerate(names)}, name
