"""The store directory: de-identified patient data in DuckDB, keys apart, an audit trail.

One directory (``--store``, default ``./hemolab-store``) holds

* ``hemolab.duckdb``: the de-identified tables (``patients``, ``lab_values``, ``imports``)
  and ``audit``, one row per access to a patient's data (who, when, what, which pseudonym);
* ``keys.enc``: the encrypted key table (``hemolab.patients._keys``), the only file where a
  pseudonym meets an identifier.

An import writes the key table first (new pseudonyms), then every table in one DuckDB
transaction: a failure leaves the stored data as it was, and a retried import reuses the
pseudonyms. Re-importing values already stored adds nothing (idempotent).
"""

from __future__ import annotations

import getpass
import hashlib
import os
import re
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hemolab._errors import HemolabError
from hemolab.patients._keys import KeyTable
from hemolab.patients._labs import LabHistory

__all__ = ["DEFAULT_STORE", "ImportSummary", "Store", "StoreError"]

DEFAULT_STORE = "hemolab-store"
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS patients (
        pseudonym TEXT PRIMARY KEY, clock TEXT NOT NULL, sex TEXT, age INTEGER,
        created TIMESTAMPTZ NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS lab_values (
        pseudonym TEXT NOT NULL, time_h DOUBLE NOT NULL, analyte TEXT NOT NULL,
        observable TEXT NOT NULL, value DOUBLE, unit TEXT NOT NULL, censored BOOLEAN NOT NULL,
        lloq DOUBLE, preliminary BOOLEAN NOT NULL, specimen TEXT, import_id TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS imports (
        import_id TEXT PRIMARY KEY, created TIMESTAMPTZ NOT NULL, kind TEXT NOT NULL,
        source_sha256 TEXT NOT NULL, n_patients INTEGER NOT NULL, n_values INTEGER NOT NULL,
        actor TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS forecasts (
        pseudonym TEXT NOT NULL, made_at TIMESTAMPTZ NOT NULL, t_data DOUBLE NOT NULL,
        time_unit TEXT NOT NULL, model TEXT NOT NULL, method TEXT NOT NULL,
        threshold TEXT NOT NULL, median DOUBLE, lower DOUBLE, upper DOUBLE, level DOUBLE NOT NULL,
        p_within_horizon DOUBLE NOT NULL, horizon DOUBLE NOT NULL, fit_sha256 TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS audit (
        at_time TIMESTAMPTZ NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
        pseudonym TEXT, detail TEXT)""",
)
_PSEUDONYM = re.compile(r"P[0-9A-F]{10}")
_AGE_CAP = 90  # HIPAA Safe Harbor: ages over 89 are reported as 90


class StoreError(HemolabError):
    """The store cannot be used as asked (not a store, unknown pseudonym, clock mismatch)."""


@dataclass(frozen=True)
class ImportSummary:
    """What an import stored: per pseudonym the values added, and whether it is new."""

    import_id: str
    patients: dict[str, dict[str, Any]]  # pseudonym -> {"new", "n_values", "n_duplicates"}
    n_values: int
    dropped: dict[str, int]


def _actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name (containers)
        return f"uid {os.getuid()}"


def _age(birth_year: int | None, anchor: datetime | None) -> int | None:
    if birth_year is None:
        return None
    year = (anchor or datetime.now(UTC)).year
    return min(max(year - birth_year, 0), _AGE_CAP)


class Store:
    """A store directory; ``Store(path)`` creates it if needed."""

    DB = "hemolab.duckdb"

    def __init__(self, path: str | os.PathLike[str] = DEFAULT_STORE):
        import duckdb

        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise StoreError(f"store {str(self.path)!r} is a file, not a directory")
        self.path.mkdir(parents=True, exist_ok=True)
        self._db = duckdb.connect(str(self.path / self.DB))
        for statement in _SCHEMA:
            self._db.execute(statement)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def audit(self, action: str, pseudonym: str | None = None, detail: str = "") -> None:
        """Record an access (``detail`` must not identify anyone: pseudonyms and counts)."""
        self._db.execute(
            "INSERT INTO audit VALUES (?, ?, ?, ?, ?)",
            [datetime.now(UTC), _actor(), action, pseudonym, detail],
        )

    def audit_trail(self, pseudonym: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT at_time, actor, action, pseudonym, detail FROM audit"
        args: list[Any] = []
        if pseudonym is not None:
            sql += " WHERE pseudonym = ?"
            args.append(pseudonym)
        rows = self._db.execute(sql + " ORDER BY at_time, rowid", args).fetchall()
        return [
            dict(zip(("at", "actor", "action", "pseudonym", "detail"), r, strict=True))
            for r in rows
        ]

    def import_labs(
        self, history: LabHistory, keys: KeyTable, *, source_bytes: bytes
    ) -> ImportSummary:
        """De-identify ``history`` with ``keys`` and store it (see the module docstring)."""
        by_patient: dict[str, list[Any]] = defaultdict(list)
        for rec in history.records:
            by_patient[rec.source_id].append(rec)
        numeric = any(r.time_h is not None for r in history.records)
        plan: list[tuple[str, bool, list[tuple[Any, ...]], int | None, str | None]] = []
        for source_id, recs in by_patient.items():
            known = keys.lookup(source_id)
            first = min((r.stamp for r in recs if r.stamp is not None), default=None)
            if known is not None and (known.anchor is None) != numeric:
                raise StoreError(
                    f"patient {known.pseudonym} has a "
                    f"{'numeric' if known.anchor is None else 'date-time'} clock in the store, "
                    f"but this file gives {'numeric times' if numeric else 'date-times'}"
                )
            key = keys.assign(source_id, None if numeric else first)
            rows = []
            for r in recs:
                if r.time_h is not None:
                    t = r.time_h
                else:
                    assert r.stamp is not None and key.anchor is not None
                    t = (r.stamp - key.anchor).total_seconds() / 3600.0
                value = None if r.value != r.value else r.value  # NaN (censored) -> NULL
                rows.append(
                    (
                        key.pseudonym,
                        t,
                        r.analyte,
                        r.observable,
                        value,
                        r.unit,
                        r.censored,
                        r.lloq,
                        r.preliminary,
                        r.specimen,
                    )
                )
            demo = history.demographics.get(source_id)
            plan.append(
                (
                    key.pseudonym,
                    known is None,
                    rows,
                    _age(demo.birth_year if demo else None, key.anchor),
                    demo.sex if demo else None,
                )
            )
        keys.save()  # first: a failed transaction below leaves reusable pseudonyms, no orphans
        import_id = uuid.uuid4().hex[:12]
        now = datetime.now(UTC)
        patients: dict[str, dict[str, Any]] = {}
        db = self._db
        db.execute("BEGIN TRANSACTION")
        try:
            total = 0
            for pseudonym, new, rows, age, sex in plan:
                db.execute(
                    "INSERT INTO patients VALUES (?, ?, ?, ?, ?) ON CONFLICT (pseudonym) DO UPDATE "
                    "SET sex = coalesce(excluded.sex, patients.sex), "
                    "age = coalesce(excluded.age, patients.age)",
                    [pseudonym, "numeric" if numeric else "datetime", sex, age, now],
                )
                added = 0
                for row in rows:
                    dup = db.execute(
                        "SELECT count(*) FROM lab_values WHERE pseudonym = ? AND time_h = ? "
                        "AND analyte = ? AND value IS NOT DISTINCT FROM ? AND censored = ?",
                        [row[0], row[1], row[2], row[4], row[6]],
                    ).fetchone()
                    if dup and dup[0]:
                        continue
                    db.execute(
                        "INSERT INTO lab_values VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [*row, import_id],
                    )
                    added += 1
                total += added
                patients[pseudonym] = {
                    "new": new,
                    "n_values": added,
                    "n_duplicates": len(rows) - added,
                }
                db.execute(
                    "INSERT INTO audit VALUES (?, ?, 'import', ?, ?)",
                    [now, _actor(), pseudonym, f"import {import_id}: {added} lab values"],
                )
            db.execute(
                "INSERT INTO imports VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    import_id,
                    now,
                    "labs",
                    hashlib.sha256(source_bytes).hexdigest(),
                    len(plan),
                    total,
                    _actor(),
                ],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return ImportSummary(import_id, patients, total, dict(history.dropped))

    def lab_values(self, pseudonym: str, *, actor_action: str = "read") -> list[dict[str, Any]]:
        """A patient's stored values in time order (the access is audited)."""
        self._known(pseudonym)
        cols = (
            "time_h",
            "analyte",
            "observable",
            "value",
            "unit",
            "censored",
            "lloq",
            "preliminary",
            "specimen",
        )
        rows = self._db.execute(
            f"SELECT {', '.join(cols)} FROM lab_values WHERE pseudonym = ? "
            "ORDER BY time_h, analyte",
            [pseudonym],
        ).fetchall()
        self.audit(actor_action, pseudonym, f"{len(rows)} lab values")
        return [dict(zip(cols, r, strict=True)) for r in rows]

    _FORECAST_COLS = (
        "made_at", "t_data", "time_unit", "model", "method", "threshold", "median", "lower",
        "upper", "level", "p_within_horizon", "horizon", "fit_sha256",
    )  # fmt: skip

    def _known(self, pseudonym: str) -> None:
        known = self._db.execute(
            "SELECT count(*) FROM patients WHERE pseudonym = ?", [pseudonym]
        ).fetchone()
        if not known or not known[0]:
            # a source identifier given by mistake must not be echoed: only a well-formed
            # pseudonym is named in the message
            named = repr(pseudonym) if _PSEUDONYM.fullmatch(pseudonym) else "with that pseudonym"
            raise StoreError(
                f"no patient {named} in store {str(self.path)!r} (pseudonyms look like "
                "P3F09A1C2B7; `hemolab import` prints them)"
            )

    def record_forecast(self, pseudonym: str, forecast: dict[str, Any], fit_sha256: str) -> None:
        """Keep a forecast (``hemolab forecast --json`` fields) in the patient's history."""
        self._known(pseudonym)
        row = [datetime.now(UTC), forecast["t_last_observation"], forecast["time_unit"],
               forecast["model"], forecast["method"], forecast["threshold"], forecast["median"],
               forecast["lower"], forecast["upper"], forecast["level"],
               forecast["p_within_horizon"], forecast["horizon"], fit_sha256]  # fmt: skip
        self._db.execute("BEGIN TRANSACTION")
        try:
            self._db.execute(f"INSERT INTO forecasts VALUES (?, {', '.join('?' * len(row))})",
                             [pseudonym, *row])  # fmt: skip
            self.audit("forecast", pseudonym, f"{forecast['threshold']} from {fit_sha256[:12]}")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def forecasts(self, pseudonym: str, threshold: str | None = None) -> list[dict[str, Any]]:
        """The patient's forecast history, oldest first (the access is audited)."""
        self._known(pseudonym)
        sql = f"SELECT {', '.join(self._FORECAST_COLS)} FROM forecasts WHERE pseudonym = ?"
        args: list[Any] = [pseudonym]
        if threshold is not None:
            sql += " AND threshold = ?"
            args.append(threshold)
        rows = self._db.execute(sql + " ORDER BY made_at, t_data", args).fetchall()
        self.audit("read forecasts", pseudonym, f"{len(rows)} forecasts")
        return [dict(zip(self._FORECAST_COLS, r, strict=True)) for r in rows]
