"""Row-by-row checks of an event dataset against a model (DATA-FORMATS §0 and §A).

One pass over the rows collects every violation as a :class:`~hemolab.DatasetIssue` and, for
rows without one, builds the normalized :class:`~hemolab.events.EventRecord`. Messages name the
file, the row and the column, say what was found and what is expected; they never quote an
``ID`` or a ``DATETIME`` value (both identify a patient).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from hemolab._errors import DatasetError, DatasetIssue, UnitError
from hemolab.events._common import (
    EVENT_KINDS,
    PRODUCT_DEFAULTS,
    PRODUCTS,
    RESERVED_COLUMNS,
    TRANSFUSION_DEFAULT_DURATION_H,
    warn,
)
from hemolab.events._dataset import EventDataset, EventRecord, SubjectEvents, _normalize_id
from hemolab.model import Model
from hemolab.model._units import TIME_UNITS, conversion_factor, time_factor

__all__ = ["check_table"]

_MISSING_TEXT = frozenset({"", ".", "NA"})
_EVID_MEANING = (
    "0 observation, 1 dose, 2 other event, 3 reset, 4 reset and dose, 5 replace, 6 multiply"
)
_FOREIGN_EVID = {
    7: "EVID 7 is rxode2's code (phantom event for transit compartments), not supported",
    8: "EVID 8 is mrgsolve's code (replace the amount); hemolab writes that as EVID 5",
}
_DOSE_EVIDS = (1, 4)
_CMT_EVIDS = (1, 4, 5, 6)
_ABO = frozenset({"O", "A", "B", "AB"})
_RHD = frozenset({"POS", "NEG", "+", "-"})
_BODY_SIZE = {"/kg": ("WT", "kg"), "/m2": ("BSA", "m2")}


class _Bad:
    """Marker for a cell that could not be read (its issue is already recorded)."""


BAD = _Bad()


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() in _MISSING_TEXT
    try:
        return bool(value != value)  # NaN, pandas NA
    except (TypeError, ValueError):
        return False


@dataclass
class _Checker:
    file: str
    columns: dict[str, list[Any]]  # upper-case name -> cells
    model: Model
    n_rows: int
    issues: list[DatasetIssue] = field(default_factory=list)
    patients: dict[str, Any] = field(default_factory=dict)
    allow_incompatible: bool = False

    def issue(self, row: int | None, column: str | None, message: str) -> None:
        self.issues.append(DatasetIssue(self.file, row, column, message))

    def has(self, column: str) -> bool:
        return column in self.columns

    def raw(self, i: int, column: str) -> Any:
        """The cell, or ``None`` when the column is absent or the cell is missing."""
        cells = self.columns.get(column)
        if cells is None or _is_missing(cells[i]):
            return None
        value = cells[i]
        return value.strip() if isinstance(value, str) else value

    def number(self, i: int, column: str, *, integer: bool = False) -> float | _Bad:
        """A finite number, NaN when missing, :data:`BAD` (issue recorded) otherwise."""
        value = self.raw(i, column)
        if value is None:
            return math.nan
        kind = "an integer" if integer else "a number"
        try:
            x = float(value)
        except (TypeError, ValueError, OverflowError):
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
            self.issue(i + 1, column, f"{shown} is not {kind}")
            return BAD
        if not math.isfinite(x) or (integer and not x.is_integer()):
            self.issue(i + 1, column, f"{value!r} is not {kind}")
            return BAD
        return x

    def text(self, i: int, column: str) -> str | None:
        value = self.raw(i, column)
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value).strip()


def _num(x: float | _Bad, default: float) -> float:
    """The value, ``default`` when missing (NaN); callers check for :data:`BAD` first."""
    if isinstance(x, _Bad) or math.isnan(x):
        return default
    return x


def _parse_datetime(text: str) -> datetime | None:
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return None
    return stamp if stamp.utcoffset() is not None else None


def _allowed_states(model: Model) -> str:
    names = ", ".join(model.state_names)
    return f"1..{len(model.state_names)} or a state name ({names})"


def check_table(
    raw_columns: dict[str, list[Any]],
    *,
    model: Model,
    time_unit: str | None,
    file: str,
    patients: Mapping[str, Any] | None = None,
    allow_incompatible: bool = False,
) -> EventDataset:
    """Check a table read by :func:`~hemolab.events.read_events` and normalize its rows.

    Parameters
    ----------
    raw_columns
        Column name as written in the file → its cells (text or numbers).

    Other Parameters
    ----------------
    model
        The model the dataset is checked against.
    time_unit
        The dataset's time unit; ``None`` means the model's.
    file
        Name used in every issue.
    patients
        Patient records (``Demographics``) by source ID, for the ABO/RhD check.

    Returns
    -------
    EventDataset
        Normalized records.

    Raises
    ------
    DatasetError
        With every violation found.
    """
    issues: list[DatasetIssue] = []
    columns: dict[str, list[Any]] = {}
    written: dict[str, str] = {}
    ignored: list[str] = []
    model_covs = {c.upper(): c for c in model.covariate_names}
    for name, cells in raw_columns.items():
        key = name.upper()
        if key in written:
            issues.append(
                DatasetIssue(
                    file,
                    None,
                    name,
                    f"columns {written[key]!r} and {name!r} differ only in case; column names "
                    "are case-insensitive, keep one",
                )
            )
            continue
        written[key] = name
        columns[key] = list(cells)
        if key not in RESERVED_COLUMNS and key not in model_covs:
            ignored.append(name)
    for key, cov in model_covs.items():
        if key in RESERVED_COLUMNS and key in columns:
            issues.append(
                DatasetIssue(
                    file,
                    None,
                    written[key],
                    f"model covariate {cov!r} has the name of a reserved column "
                    "(DATA-FORMATS §A); it is never read as a covariate — rename the covariate",
                )
            )
    n_rows = max((len(c) for c in columns.values()), default=0)
    checker = _Checker(
        file,
        columns,
        model,
        n_rows,
        issues,
        patients=dict(patients or {}),
        allow_incompatible=allow_incompatible,
    )
    source_unit = time_unit if time_unit is not None else model.time_unit
    if source_unit not in TIME_UNITS:
        checker.issue(
            None,
            None,
            f"time unit {source_unit!r} is not one of {', '.join(TIME_UNITS)}",
        )
        tf = 1.0
    else:
        tf = time_factor(source_unit, model.time_unit)
    if "ID" not in columns:
        checker.issue(None, "ID", "the dataset has no ID column")
    has_time, has_datetime = "TIME" in columns, "DATETIME" in columns
    if not has_time and not has_datetime:
        checker.issue(None, "TIME", "the dataset has neither a TIME nor a DATETIME column")
    if has_time and has_datetime:
        checker.issue(
            None,
            "DATETIME",
            "the dataset has both TIME and DATETIME; keep one (DATETIME is converted to the "
            "patient clock, TIME is read as is)",
        )
    if n_rows == 0:
        checker.issue(None, None, "the dataset has no rows")
    if checker.issues:
        raise DatasetError(checker.issues)
    rows = _RowReader(checker, tf, source_unit)
    return rows.run(ignored)


@dataclass
class _Subject:
    temp_id: str
    records: list[EventRecord] = field(default_factory=list)
    last_row: int = 0
    last_time: float = -math.inf
    last_evid: int = 0
    anchor: datetime | None = None


class _RowReader:
    """One pass over the rows: per-row checks, subject grouping, time order."""

    def __init__(self, checker: _Checker, tf: float, source_unit: str):
        self.c = checker
        self.m = checker.model
        self.tf = tf  # dataset time unit -> model time unit
        self.h_to_model = time_factor("h", self.m.time_unit)
        self.source_unit = source_unit
        self.subjects: dict[str, _Subject] = {}
        self.current: str | None = None
        self.ss3_rows: list[int] = []
        self.default_size_rows: dict[str, list[int]] = {}
        self.mix_rows: list[int] = []
        self.cov_columns = tuple(
            k if k in checker.columns and k not in RESERVED_COLUMNS else None
            for k in (n.upper() for n in self.m.covariate_names)
        )

    # -- driver ---------------------------------------------------------------------------------
    def run(self, ignored: Sequence[str]) -> EventDataset:
        c = self.c
        for i in range(c.n_rows):
            self.row(i)
        if self.mix_rows:
            self.resolve_donors()
        if c.issues:
            raise DatasetError(c.issues)
        if self.ss3_rows:
            warn(
                f"{c.file}: SS=3 read as SS=1 (hemolab has no SS=3) on row(s) "
                f"{_rows_text(self.ss3_rows)}"
            )
        for cov, rows in self.default_size_rows.items():
            default = next(x.default for x in self.m.covariates if x.name == cov)
            warn(
                f"{c.file}: a per-body-size AMT_UNIT on row(s) {_rows_text(rows)} has no {cov} "
                f"on its row; used model {self.m.name!r}'s default {cov} = {default}"
            )
        subjects = tuple(SubjectEvents(s.temp_id, tuple(s.records)) for s in self.subjects.values())
        return EventDataset(
            file=c.file,
            model_name=self.m.name,
            time_unit=self.m.time_unit,
            source_time_unit=self.source_unit,
            state_names=self.m.state_names,
            covariate_names=self.m.covariate_names,
            subjects=subjects,
            columns=tuple(c.columns),
            ignored_columns=tuple(ignored),
            _id_map={k: s.temp_id for k, s in self.subjects.items()},
            _anchors={s.temp_id: s.anchor for s in self.subjects.values() if s.anchor},
        )

    def resolve_donors(self) -> None:
        """DONOR source keys → temporary pseudonyms; unknown donors, self-donation and donor
        cycles are errors naming the rows (DATA-FORMATS §A: solves run in dependency order)."""
        c = self.c
        if c.has("DATETIME"):
            c.issue(
                self.mix_rows[0],
                "DATETIME",
                "EVENT=mix needs one clock shared by the subjects it links: give TIME (a common "
                "clock) instead of DATETIME",
            )
            return
        gives: dict[str, list[tuple[str, int]]] = {}  # donor -> (recipient, row)
        for key, subj in self.subjects.items():
            for k, rec in enumerate(subj.records):
                if rec.event != "mix" or rec.donor is None:
                    continue
                donor = self.subjects.get(rec.donor)
                if donor is None:  # the cell's text is an identifier: never shown
                    c.issue(rec.row, "DONOR", "DONOR names no ID of this dataset")
                    continue
                if rec.donor == key:
                    c.issue(
                        rec.row, "DONOR", "DONOR is the row's own ID (a subject mixed into itself)"
                    )
                    continue
                subj.records[k] = replace(rec, donor=donor.temp_id)
                gives.setdefault(donor.temp_id, []).append((subj.temp_id, rec.row))
        cycle = _find_cycle(gives)
        if cycle:
            c.issue(
                min(cycle),
                "DONOR",
                f"donor cycle: the mixes on rows {_rows_text(sorted(cycle))} make subjects "
                "donors of each other (directly or through others); solves run donors first",
            )

    # -- one row --------------------------------------------------------------------------------
    def row(self, i: int) -> None:
        c = self.c
        n_before = len(c.issues)
        row = i + 1
        subject = self.subject(i)
        evid = self.evid(i)
        time = self.time(i, subject)
        if subject is not None and evid is not None and not math.isnan(time):
            if time < subject.last_time and evid not in (3, 4) and subject.last_evid not in (3, 4):
                col = "TIME" if c.has("TIME") else "DATETIME"
                c.issue(
                    row,
                    col,
                    f"time goes back: row {subject.last_row} of the same ID is later; times "
                    "must be non-decreasing per ID except on or right after a reset (EVID 3/4)",
                )
            subject.last_time, subject.last_row, subject.last_evid = time, row, evid
        if evid is None:
            return
        fields_ = self.fields(i, evid)
        covariates = self.covariates(i)
        if len(c.issues) > n_before or subject is None:
            return
        subject.records.append(
            EventRecord(row=row, time=time, evid=evid, covariates=covariates, **fields_)
        )

    def subject(self, i: int) -> _Subject | None:
        c = self.c
        raw = c.raw(i, "ID")
        if raw is None:
            c.issue(i + 1, "ID", "ID is missing")
            return None
        key = _normalize_id(raw)
        subject = self.subjects.get(key)
        if subject is None:
            subject = _Subject(f"T{len(self.subjects):07d}")
            self.subjects[key] = subject
        elif self.current != key:
            c.issue(
                i + 1,
                "ID",
                f"the rows of one ID must be contiguous; this ID's earlier rows end at row "
                f"{subject.last_row}",
            )
        self.current = key
        return subject

    def evid(self, i: int) -> int | None:
        c = self.c
        row = i + 1
        if not c.has("EVID"):  # derived as NONMEM does
            amt = c.number(i, "AMT")
            if not isinstance(amt, _Bad) and amt > 0:
                return 1
            if c.raw(i, "EVENT") is not None:
                return 2
            mdv = c.number(i, "MDV", integer=True)
            return 2 if mdv == 1 else 0
        value = c.number(i, "EVID", integer=True)
        if isinstance(value, _Bad):
            return None
        if math.isnan(value):
            c.issue(row, "EVID", f"EVID is missing; expected one of {_EVID_MEANING}")
            return None
        evid = int(value)
        if evid in _FOREIGN_EVID:
            c.issue(row, "EVID", _FOREIGN_EVID[evid])
            return None
        if not 0 <= evid <= 6:
            c.issue(row, "EVID", f"EVID {evid} is not one of {_EVID_MEANING}")
            return None
        return evid

    def time(self, i: int, subject: _Subject | None) -> float:
        c = self.c
        row = i + 1
        if c.has("TIME"):
            t = c.number(i, "TIME")
            if isinstance(t, _Bad):
                return math.nan
            if math.isnan(t):
                c.issue(row, "TIME", "TIME is missing")
            return t * self.tf
        text = c.text(i, "DATETIME")
        if text is None:
            c.issue(row, "DATETIME", "DATETIME is missing")
            return math.nan
        stamp = _parse_datetime(text)
        if stamp is None:  # the value is not quoted: a date identifies a patient
            c.issue(
                row,
                "DATETIME",
                "not an ISO 8601 date-time with a UTC offset (e.g. 2024-03-01T08:30:00+01:00)",
            )
            return math.nan
        if subject is None:
            return math.nan
        if subject.anchor is None:
            subject.anchor = stamp  # temporary anchor: the subject's first DATETIME
        hours = (stamp - subject.anchor).total_seconds() / 3600.0
        return hours * self.h_to_model

    def covariates(self, i: int) -> tuple[float, ...]:
        values = []
        for col in self.cov_columns:
            x = math.nan if col is None else self.c.number(i, col)
            values.append(math.nan if isinstance(x, _Bad) else x)
        return tuple(values)

    # -- columns by EVID ------------------------------------------------------------------------
    def fields(self, i: int, evid: int) -> dict[str, Any]:
        """Every column's rules for this row; the record's fields (valid if no new issue)."""
        c = self.c
        row = i + 1
        out: dict[str, Any] = {}
        nums = {
            col: c.number(i, col, integer=col in ("ADDL", "SS", "MDV", "CENS", "OCC"))
            for col in (
                "AMT",
                "RATE",
                "DUR",
                "II",
                "ADDL",
                "SS",
                "MDV",
                "DV",
                "CENS",
                "LIMIT",
                "OCC",
            )
        }
        bad = {col for col, v in nums.items() if isinstance(v, _Bad)}
        amt, rate, dur, ii, addl, ss, mdv, dv, cens, limit, occ = (
            math.nan if isinstance(v, _Bad) else v for v in nums.values()
        )
        is_dose = evid in _DOSE_EVIDS
        # rules across dose columns only when every one of them could be read
        cross = not bad & {"AMT", "RATE", "DUR", "II", "ADDL", "SS"}

        cmt, cmt_off = self.cmt(i, evid)
        out["cmt"], out["cmt_off"] = cmt, cmt_off

        # MDV: derived if absent; if present, 1 on every EVID != 0
        if not math.isnan(mdv):
            if mdv not in (0, 1):
                c.issue(row, "MDV", f"MDV {mdv:g} is not 0 or 1")
            elif evid != 0 and mdv != 1:
                c.issue(row, "MDV", f"MDV must be 1 on a non-observation row (EVID {evid})")
        out["mdv"] = int(_num(mdv, 0 if evid == 0 else 1))

        # SS, II, ADDL
        ss_v = int(_num(ss, 0))
        if ss_v not in (0, 1, 2, 3):
            c.issue(row, "SS", f"SS {ss_v} is not 0, 1 or 2 (3 is read as 1)")
            ss_v = 0  # reported; no follow-up SS checks
        elif ss_v == 3:
            if is_dose:
                self.ss3_rows.append(row)
            ss_v = 1
        ii_v, addl_v = _num(ii, 0.0), _num(addl, 0.0)
        if ii_v < 0:
            c.issue(row, "II", f"II {ii_v:g} is negative; the dosing interval must be > 0")
        if addl_v < 0:
            c.issue(
                row,
                "ADDL",
                f"ADDL {addl_v:g} is negative (NONMEM's empirical steady state), which hemolab "
                "does not support; use SS=1 with II instead",
            )
        if not is_dose:
            for col, v in (("SS", ss_v), ("II", ii_v), ("ADDL", addl_v)):
                if v != 0:
                    c.issue(row, col, f"{col} must be 0 or empty on EVID {evid} (dose rows only)")
        elif cross and ss_v == 0 and addl_v >= 0 and (ii_v > 0) != (addl_v > 0):
            col = "ADDL" if ii_v > 0 else "II"
            c.issue(
                row,
                col,
                f"II {ii_v:g} and ADDL {addl_v:g}: without SS, II > 0 if and only if ADDL > 0",
            )
        out["ss"], out["ii"], out["addl"] = ss_v, ii_v * self.tf, int(addl_v)

        # RATE, DUR
        rate_v = _num(rate, 0.0)
        dur_v = dur
        if rate_v < 0 and rate_v not in (-1.0, -2.0):
            c.issue(row, "RATE", f"RATE {rate_v:g} is not 0, > 0, -1 or -2")
        if rate_v != 0 and not is_dose:
            c.issue(row, "RATE", f"RATE must be 0 or empty on EVID {evid} (dose rows only)")
        if is_dose and cmt is not None and rate_v in (-1.0, -2.0):
            st = self.m.states[cmt]
            attr, what = (
                ("infusion_rate", "rate") if rate_v == -1 else ("infusion_duration", "duration")
            )
            if getattr(st, attr) is None:
                c.issue(
                    row,
                    "RATE",
                    f"RATE={rate_v:g} asks for the model's infusion {what}, but state "
                    f"{st.name!r} declares none (State(..., {attr}=...))",
                )
        if not math.isnan(dur_v):
            if dur_v < 0:
                c.issue(row, "DUR", f"DUR {dur_v:g} is negative")
            if cross and rate_v != 0 and is_dose:
                c.issue(
                    row,
                    "DUR",
                    f"DUR {dur_v:g} and RATE {rate_v:g} on the same row; give one of them",
                )
        event = self.event(i, evid)
        if not math.isnan(dur_v) and dur_v != 0 and not is_dose and event != "transfusion":
            c.issue(row, "DUR", "DUR applies to doses (EVID 1/4) and transfusions only")

        # AMT
        amt_v = amt
        if "AMT" in bad:
            pass
        elif is_dose:
            if math.isnan(amt_v):
                c.issue(row, "AMT", f"AMT is missing on a dose (EVID {evid})")
            elif amt_v < 0:
                c.issue(row, "AMT", f"AMT {amt_v:g} is negative")
            elif cross and amt_v == 0 and not (ss_v != 0 and rate_v > 0 and ii_v == 0):
                c.issue(
                    row,
                    "AMT",
                    "AMT is 0 on a dose; only a steady-state infusion (SS≠0, RATE>0, II 0) "
                    "has AMT 0",
                )
        elif evid in (5, 6):
            if math.isnan(amt_v):
                what = "new amount" if evid == 5 else "factor"
                c.issue(row, "AMT", f"AMT (the {what}) is missing on EVID {evid}")
        elif not math.isnan(amt_v) and amt_v != 0:
            c.issue(row, "AMT", f"AMT must be 0 or empty on EVID {evid}")
        if ss_v != 0 and is_dose:
            if self.m.has_delays:
                c.issue(
                    row,
                    "SS",
                    f"steady state (SS={ss_v}) is not available for model {self.m.name!r}, "
                    "which has delays; simulate the run-in doses explicitly",
                )
            if cross and ii_v <= 0 and not (amt_v == 0 and rate_v > 0):
                c.issue(
                    row,
                    "II",
                    f"SS={ss_v} needs II > 0 (or a steady-state infusion: AMT 0, RATE>0, II 0)",
                )
        factor = self.amount_factor(i, evid, cmt)
        if factor is None:  # issue recorded
            factor = 1.0
        out["amt"] = _num(amt_v, 0.0) * factor
        out["rate"] = rate_v * factor / self.tf if rate_v > 0 else rate_v
        out["dur"] = dur_v * self.tf if not math.isnan(dur_v) else math.nan

        # observation fields
        out["dv"] = dv
        out["dvid"] = self.dvid(i, evid)
        cens_v = int(_num(cens, 0))
        if cens_v not in (-1, 0, 1):
            c.issue(row, "CENS", f"CENS {cens_v} is not -1, 0 or 1")
        out["cens"], out["limit"] = cens_v, limit
        if not math.isnan(occ) and occ < 0:
            c.issue(row, "OCC", f"OCC {occ:g} is negative")
        out["occ"] = None if math.isnan(occ) else int(occ)

        # hemolab events
        out["event"] = event
        if event == "transfusion":
            out.update(self.transfusion(i))
        elif event == "phlebotomy":
            out.update(self.phlebotomy(i))
        elif event == "param":
            out.update(self.param(i))
        elif event == "mix":
            out.update(self.mix(i))
        return out

    def cmt(self, i: int, evid: int) -> tuple[int | None, bool]:
        c, m = self.c, self.m
        row = i + 1
        n = len(m.state_names)
        value = c.raw(i, "CMT")
        if value is None:
            if evid in _CMT_EVIDS:
                if n == 1:
                    return 0, False
                c.issue(row, "CMT", f"CMT is missing on EVID {evid}; expected {_allowed_states(m)}")
            return None, False
        text = str(value).strip()
        try:
            number = float(text)
        except ValueError:
            if text in m.state_names:
                return m.state_names.index(text), False
            c.issue(row, "CMT", f"CMT {text!r} is not a state; expected {_allowed_states(m)}")
            return None, False
        if not number.is_integer():
            c.issue(row, "CMT", f"CMT {text!r} is not an integer; expected {_allowed_states(m)}")
            return None, False
        k = int(number)
        if k == 0:
            if evid in _CMT_EVIDS:
                c.issue(row, "CMT", f"CMT 0 is not a state; expected {_allowed_states(m)}")
            return None, False
        if k < 0 and evid != 2:
            c.issue(
                row,
                "CMT",
                f"CMT {k} is negative, which only EVID 2 allows (turn a compartment off); "
                f"expected {_allowed_states(m)}",
            )
            return None, False
        if abs(k) > n:
            c.issue(row, "CMT", f"CMT {k} is out of range; expected {_allowed_states(m)}")
            return None, False
        return abs(k) - 1, k < 0

    def dvid(self, i: int, evid: int) -> str | None:
        c, m = self.c, self.m
        text = c.text(i, "DVID")
        if text is None or evid != 0:
            return None
        names = (*m.observable_names, *m.state_names)
        if text in names:
            return text
        if text.isdigit() and 1 <= int(text) <= len(m.observable_names):
            return m.observable_names[int(text) - 1]
        allowed = ", ".join(names)
        extra = f" or 1..{len(m.observable_names)}" if m.observable_names else ""
        c.issue(i + 1, "DVID", f"DVID {text!r} is not an observable or state ({allowed}){extra}")
        return None

    def event(self, i: int, evid: int) -> str | None:
        c = self.c
        row = i + 1
        text = c.text(i, "EVENT")
        if text is None:
            return None
        kind = text.lower()
        if evid != 2:
            c.issue(row, "EVENT", f"EVENT is set on EVID {evid}; hemolab events need EVID 2")
            return None
        if kind not in EVENT_KINDS:
            c.issue(row, "EVENT", f"EVENT {text!r} is not one of {', '.join(EVENT_KINDS)}")
            return None
        if kind in ("transfusion", "phlebotomy", "mix") and self.m.blood is None:
            c.issue(
                row,
                "EVENT",
                f"EVENT={kind} needs a model that accepts blood products; model "
                f"{self.m.name!r} declares no blood (Model(..., blood=BloodSpec(...)))",
            )
            return None
        return kind

    def positive(
        self,
        i: int,
        column: str,
        default: float,
        *,
        upper: float | None = None,
        strict: bool = False,
    ) -> float:
        c = self.c
        x = c.number(i, column)
        if isinstance(x, _Bad):
            return math.nan
        if math.isnan(x):
            return default
        if x < 0 or (strict and x == 0) or (upper is not None and x > upper):
            bound = "> 0" if strict else ">= 0"
            if upper is not None:
                bound = f"between 0 and {upper:g}"
            c.issue(i + 1, column, f"{column} {x:g} must be {bound}")
        return x

    def transfusion(self, i: int) -> dict[str, Any]:
        c = self.c
        row = i + 1
        product = c.text(i, "PRODUCT")
        defaults: dict[str, float] = {"VOLUME": math.nan, "HCT": 0.0, "HB_G": 0.0, "PLT_E9": 0.0}
        if product is None:
            c.issue(row, "PRODUCT", f"PRODUCT is missing; expected one of {', '.join(PRODUCTS)}")
        elif product.upper() not in PRODUCTS:
            c.issue(row, "PRODUCT", f"PRODUCT {product!r} is not one of {', '.join(PRODUCTS)}")
            product = None
        else:
            product = product.upper()
            defaults = dict(PRODUCT_DEFAULTS[product])
        out: dict[str, Any] = {"product": product}
        out["units"] = self.positive(i, "UNITS", 1.0, strict=True)
        out["volume"] = self.positive(i, "VOLUME", defaults["VOLUME"], strict=True)
        out["hct"] = self.positive(i, "HCT", defaults["HCT"], upper=1.0)
        out["hb_g"] = self.positive(i, "HB_G", defaults["HB_G"])
        out["plt_e9"] = self.positive(i, "PLT_E9", defaults["PLT_E9"])
        dur = c.number(i, "DUR")
        if not isinstance(dur, _Bad) and math.isnan(dur):
            # the default duration is 2 h whatever the dataset's time unit
            out["dur"] = TRANSFUSION_DEFAULT_DURATION_H * self.h_to_model
        abo = c.text(i, "ABO")
        if abo is not None and abo.upper() not in _ABO:
            c.issue(row, "ABO", f"ABO {abo!r} is not one of O, A, B, AB")
            abo = None
        rhd = c.text(i, "RHD")
        if rhd is not None and rhd.upper() not in _RHD:
            c.issue(row, "RHD", f"RHD {rhd!r} is not one of POS, NEG, +, -")
            rhd = None
        out["abo"] = None if abo is None else abo.upper()
        out["rhd"] = None if rhd is None else ("POS" if rhd.upper() in ("POS", "+") else "NEG")
        out["incompatible"] = False
        if product is not None and out["abo"] is not None:
            out["incompatible"] = self.abo_check(i, product, out["abo"], out["rhd"])
        return out

    def abo_check(self, i: int, product: str, abo: str, rhd: str | None) -> bool:
        """The product's group against the patient's (MODELS.md §7d): an incompatible unit
        is an issue (accepted with a warning under ``allow_incompatible``: then True); a
        permitted but not preferred one, or an unknown patient group, warns."""
        from hemolab.events._abo import BloodGroup, compatibility, destroys_red_cells

        c = self.c
        raw = c.raw(i, "ID")
        record = None if raw is None else c.patients.get(_normalize_id(raw))
        group = None if record is None else record.blood_group
        if record is None or group is None:
            if c.patients:  # records were given, but not this patient's group
                warn(
                    f"{c.file} row {i + 1}: the patient's blood group is not in the patient "
                    "records; the unit's ABO/RhD was not checked"
                )
            return False
        donor = BloodGroup(abo, None if rhd is None else rhd == "POS")
        verdict = compatibility(
            product, donor, group, female_of_childbearing_potential=record.childbearing_potential
        )
        if not verdict.ok:
            if c.allow_incompatible:
                if destroys_red_cells(product, donor, group):
                    warn(
                        f"{c.file} row {i + 1}: incompatible unit accepted to be modelled "
                        f"(haemolysis): {verdict.reason}"
                    )
                    return True
                warn(
                    f"{c.file} row {i + 1}: incompatible unit accepted: {verdict.reason}; "
                    "its red cells are not destroyed (only ABO-incompatible red cells are)"
                )
                return False
            c.issue(
                i + 1,
                "ABO",
                f"incompatible unit: {verdict.reason} (to model the reaction instead: "
                "allow_incompatible with hemolab.model.haemolysis)",
            )
        elif verdict.warning:
            warn(f"{c.file} row {i + 1}: {verdict.warning}")
        return False

    def phlebotomy(self, i: int) -> dict[str, Any]:
        c = self.c
        x = c.number(i, "VOLUME")
        if isinstance(x, _Bad):
            return {}
        if math.isnan(x):
            c.issue(i + 1, "VOLUME", "VOLUME (mL of whole blood removed) is missing")
        elif x <= 0:
            c.issue(i + 1, "VOLUME", f"VOLUME {x:g} must be > 0 (mL of whole blood removed)")
        return {"volume": x}

    def mix(self, i: int) -> dict[str, Any]:
        """``EVENT=mix``: DONOR (resolved once every ID is known), VOLUME xor FRACTION, PART,
        DEPLETE. ``donor`` holds the donor's source key until :meth:`resolve_donors`."""
        c, m = self.c, self.m
        row = i + 1
        out: dict[str, Any] = {}
        donor = c.raw(i, "DONOR")
        if donor is None:
            c.issue(row, "DONOR", "DONOR (the ID of the subject giving blood) is missing")
        else:
            out["donor"] = _normalize_id(donor)
            self.mix_rows.append(row)
        volume, fraction = c.number(i, "VOLUME"), c.number(i, "FRACTION")
        if not isinstance(volume, _Bad) and not isinstance(fraction, _Bad):
            if math.isnan(volume) == math.isnan(fraction):
                c.issue(
                    row,
                    "VOLUME",
                    "give exactly one of VOLUME (mL of donor blood) and FRACTION (of the "
                    "recipient's blood volume)",
                )
            elif not math.isnan(volume) and volume <= 0:
                c.issue(row, "VOLUME", f"VOLUME {volume:g} must be > 0 (mL of donor blood)")
            elif not math.isnan(fraction) and not 0 < fraction <= 1:
                c.issue(
                    row,
                    "FRACTION",
                    f"FRACTION {fraction:g} must be in (0, 1] (of the recipient's blood volume)",
                )
            out["volume"], out["fraction"] = volume, fraction
        part = c.text(i, "PART") or "whole"
        blood = m.blood
        keyword = part.lower()
        if blood is None:
            return out  # reported by event()
        if keyword in ("whole", "plasma", "cells"):
            names = {
                "whole": (*blood.cell_states, *blood.plasma_states),
                "plasma": blood.plasma_states,
                "cells": blood.cell_states,
            }[keyword]
            if not names:
                c.issue(
                    row,
                    "PART",
                    f"PART {keyword} selects no state: model {m.name!r} declares no "
                    f"{'blood' if keyword == 'whole' else keyword} states (BloodSpec)",
                )
            out["part"] = keyword
        else:
            names = tuple(x.strip() for x in part.split(";") if x.strip())
            unknown = [x for x in names if x not in m.state_names]
            if unknown or not names:
                c.issue(
                    row,
                    "PART",
                    f"PART {part!r} is not whole, plasma, cells or a ;-list of states of model "
                    f"{m.name!r} ({', '.join(m.state_names)})",
                )
                return out
            out["part"] = ";".join(names)
        out["part_states"] = tuple(sorted({m.state_names.index(x) for x in names}))
        deplete = c.number(i, "DEPLETE", integer=True)
        if not isinstance(deplete, _Bad):
            if not math.isnan(deplete) and deplete not in (0, 1):
                c.issue(row, "DEPLETE", f"DEPLETE {deplete:g} is not 0 or 1")
            out["deplete"] = deplete == 1
        return out

    def param(self, i: int) -> dict[str, Any]:
        c, m = self.c, self.m
        row = i + 1
        name = c.text(i, "PARAM")
        allowed = ", ".join(m.inputs)
        if name is None:
            c.issue(
                row, "PARAM", f"PARAM is missing; expected a parameter or covariate ({allowed})"
            )
        elif name not in m.inputs:
            c.issue(
                row,
                "PARAM",
                f"PARAM {name!r} is not a parameter or covariate of model {m.name!r} ({allowed})",
            )
            name = None
        x = c.number(i, "VALUE")
        if not isinstance(x, _Bad) and math.isnan(x):
            c.issue(row, "VALUE", "VALUE (the new value of PARAM) is missing")
        if name in m.parameter_names and isinstance(x, float) and not math.isnan(x):
            lo, hi = m.parameter(name).bounds
            if not lo <= x <= hi:
                c.issue(row, "VALUE", f"VALUE {x:g} is outside {name}'s bounds [{lo}, {hi}]")
        return {"param": name, "value": x if isinstance(x, float) else math.nan}

    # -- units ----------------------------------------------------------------------------------
    def amount_factor(self, i: int, evid: int, cmt: int | None) -> float | None:
        """Factor from AMT_UNIT to the dosed state's unit (1 when absent); None on an issue."""
        c, m = self.c, self.m
        row = i + 1
        unit = c.text(i, "AMT_UNIT")
        if unit is None or evid not in (1, 4, 5, 6) or cmt is None:
            return 1.0
        if evid == 6:
            if unit != "1":
                c.issue(
                    row,
                    "AMT_UNIT",
                    f"EVID 6 multiplies by a number; AMT_UNIT {unit!r} must be '1' or empty",
                )
                return None
            return 1.0
        state = m.states[cmt]
        if state.unit is None:
            c.issue(
                row,
                "AMT_UNIT",
                f"AMT_UNIT {unit!r} cannot be converted: state {state.name!r} declares no unit",
            )
            return None
        try:
            return conversion_factor(unit, state.unit)
        except UnitError as direct:
            error = direct
        for suffix, (cov, size_unit) in _BODY_SIZE.items():
            if not unit.endswith(suffix):
                continue
            try:
                base = conversion_factor(unit[: -len(suffix)], state.unit)
            except UnitError as exc:
                error = exc
                break
            size = self.body_size(i, cov, size_unit)
            return None if size is None else base * size
        c.issue(
            row, "AMT_UNIT", f"AMT_UNIT {unit!r} for state {state.name!r} ({state.unit}): {error}"
        )
        return None

    def body_size(self, i: int, name: str, unit: str) -> float | None:
        """WT (kg) or BSA (m2) of this row, else the model's default (warned), else None."""
        c, m = self.c, self.m
        cov = next((x for x in m.covariates if x.name.upper() == name), None)
        to_unit = 1.0
        if cov is not None and cov.unit is not None:
            try:
                to_unit = conversion_factor(cov.unit, unit)
            except UnitError:
                to_unit = 1.0
        x = c.number(i, name)
        if isinstance(x, _Bad):
            return None
        if not math.isnan(x):
            if x <= 0:
                c.issue(i + 1, name, f"{name} {x:g} must be > 0 to scale a per-{unit} dose")
                return None
            return x * to_unit
        if cov is not None and cov.default is not None:
            self.default_size_rows.setdefault(cov.name, []).append(i + 1)
            return cov.default * to_unit
        c.issue(
            i + 1,
            "AMT_UNIT",
            f"a per-{unit} dose needs {name}: give a {name} column or declare a default for "
            f"covariate {name} in model {m.name!r}",
        )
        return None


def _find_cycle(gives: Mapping[str, Sequence[tuple[str, int]]]) -> list[int]:
    """The rows of one cycle in the donor → recipient graph (empty: none), by depth-first
    search with colours."""
    colour: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[tuple[str, int]] = []  # (subject, row of the edge into it)

    def visit(node: str) -> list[int]:
        colour[node] = 1
        for nxt, row in gives.get(node, ()):
            if colour.get(nxt) == 1:
                rows = [row]
                for subj, r in reversed(stack):
                    if subj == nxt:
                        break
                    rows.append(r)
                return rows
            if nxt not in colour:
                stack.append((nxt, row))
                found = visit(nxt)
                stack.pop()
                if found:
                    return found
        colour[node] = 2
        return []

    for start in list(gives):
        if start not in colour:
            found = visit(start)
            if found:
                return found
    return []


def _rows_text(rows: Sequence[int]) -> str:
    shown = ", ".join(str(r) for r in rows[:20])
    return shown + (f" and {len(rows) - 20} more" if len(rows) > 20 else "")
