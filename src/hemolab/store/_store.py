"""The store directory: de-identified patient data in DuckDB, keys apart, an audit trail.

One directory (``--store``, default ``./hemolab-store``) holds

* ``hemolab.duckdb``: the de-identified tables (``patients``, ``lab_values``, ``events``,
  ``imports``, ``forecasts``);
* ``keys.enc``: the encrypted key table (``hemolab.patients._keys``), the only file where a
  pseudonym meets an identifier;
* ``audit.log``: one entry per access to a patient's data (who, through what, from where,
  when, what, which pseudonym), chained with an HMAC whose key is kept apart
  (``hemolab.audit``). A ``Store`` acts for one ``Actor``: the OS user by default.

An import writes the key table first (new pseudonyms), then every table in one DuckDB
transaction: a failure leaves the stored data as it was, and a retried import reuses the
pseudonyms. Re-importing values already stored adds nothing (idempotent).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hemolab._errors import HemolabError
from hemolab.audit import Actor, AuditLog
from hemolab.patients._event_history import EventHistory
from hemolab.patients._keys import KeyTable
from hemolab.patients._labs import LabHistory
from hemolab.store._connect import connect

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
    """CREATE TABLE IF NOT EXISTS events (
        pseudonym TEXT NOT NULL, time_h DOUBLE NOT NULL, seq INTEGER NOT NULL,
        fields TEXT NOT NULL, import_id TEXT NOT NULL)""",
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
    n_events: int = 0


def _link_fhir_subjects(events: EventHistory, history: LabHistory, keys: KeyTable) -> EventHistory:
    """An events ``ID`` X names the FHIR patient whose subject reference is ``Patient/X`` when
    no patient has the identifier X itself (a hospital's dosing export carries the MRN)."""
    import dataclasses

    lab_ids = {r.source_id for r in history.records}

    def known(sid: str) -> bool:
        return sid in lab_ids or keys.lookup(sid) is not None

    alias = {sid: f"Patient/{sid}" for sid in events.source_ids
             if not known(sid) and known(f"Patient/{sid}")}  # fmt: skip
    if not alias:
        return events
    rows = tuple(dataclasses.replace(r, source_id=alias.get(r.source_id, r.source_id))
                 for r in events.rows)  # fmt: skip
    return dataclasses.replace(events, rows=rows)


def _rows_text(rows: list[int]) -> str:
    shown = ", ".join(map(str, rows[:10]))
    return shown + (f" and {len(rows) - 10} more" if len(rows) > 10 else "")


def _age(birth_year: int | None, anchor: datetime | None) -> int | None:
    if birth_year is None:
        return None
    year = (anchor or datetime.now(UTC)).year
    return min(max(year - birth_year, 0), _AGE_CAP)


class Store:
    """A store directory; ``Store(path)`` creates it if needed. Every access to a patient's
    data is audited under ``actor`` (default: the OS user, via the CLI, on this host)."""

    DB = "hemolab.duckdb"

    def __init__(self, path: str | os.PathLike[str] = DEFAULT_STORE, *, actor: Actor | None = None):

        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise StoreError(f"store {str(self.path)!r} is a file, not a directory")
        self.path.mkdir(parents=True, exist_ok=True)
        self.actor = actor if actor is not None else Actor.cli()
        self._log = AuditLog(self.path)
        self._db = connect(self.path / self.DB)
        for statement in _SCHEMA:
            self._db.execute(statement)
        self._migrate_audit_table()

    def _migrate_audit_table(self) -> None:
        """Stores made before the chained log kept the trail in a table: move its rows into
        the log (oldest first, their times kept), then drop the table."""
        has_table = self._db.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'audit'"
        ).fetchone()
        if not has_table or not has_table[0]:
            return
        rows = self._db.execute(
            "SELECT at_time, actor, action, pseudonym, detail FROM audit ORDER BY at_time, rowid"
        ).fetchall()
        if rows and not self._log.path.exists():
            for at, user, action, pseudonym, detail in rows:
                self._log.append(Actor(str(user), "cli", "(moved from the database's audit table)"),
                                 str(action), pseudonym, detail or "", at=at)  # fmt: skip
        self._db.execute("DROP TABLE audit")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def audit(self, action: str, pseudonym: str | None = None, detail: str = "") -> None:
        """Record an access by this store's actor in the audit log (``detail`` must not
        identify anyone: pseudonyms and counts)."""
        self._log.append(self.actor, action, pseudonym, detail)

    def audit_trail(self, pseudonym: str | None = None) -> list[dict[str, Any]]:
        """The audit entries (of one patient), oldest first: ``at`` (UTC), ``actor`` (the
        user), ``via``, ``origin``, ``action``, ``pseudonym``, ``detail``. Not verified:
        ``hemolab.audit.AuditLog(path).verify()`` checks the chain."""
        return [
            {
                "at": datetime.fromisoformat(e["at"]),
                "actor": e["user"],
                "via": e["via"],
                "origin": e["origin"],
                "action": e["action"],
                "pseudonym": e["pseudonym"],
                "detail": e["detail"],
            }
            for e in self._log.entries(pseudonym)
        ]

    def import_labs(
        self,
        history: LabHistory,
        keys: KeyTable,
        *,
        source_bytes: bytes,
        events: EventHistory | None = None,
        events_bytes: bytes = b"",
    ) -> ImportSummary:
        """De-identify ``history`` (and the patients' ``events``) with ``keys`` and store them
        (see the module docstring). An events row must belong to a patient of ``history`` or
        one already in the store; a new patient's anchor is the first of its labs and events."""
        by_patient: dict[str, list[Any]] = defaultdict(list)
        for rec in history.records:
            by_patient[rec.source_id].append(rec)
        numeric = any(r.time_h is not None for r in history.records)
        if events is not None:
            events = _link_fhir_subjects(events, history, keys)
            self._check_event_patients(history, events, keys, numeric)
        for source_id in by_patient:  # every check before the key table changes at all
            known = keys.lookup(source_id)
            if known is not None and (known.anchor is None) != numeric:
                raise StoreError(
                    f"patient {known.pseudonym} has a "
                    f"{'numeric' if known.anchor is None else 'date-time'} clock in the store, "
                    f"but this file gives {'numeric times' if numeric else 'date-times'}"
                )
        plan: list[tuple[str, bool, list[tuple[Any, ...]], int | None, str | None]] = []
        anchors: dict[str, Any] = {}
        for source_id, recs in by_patient.items():
            known = keys.lookup(source_id)
            first = min((r.stamp for r in recs if r.stamp is not None), default=None)
            if events is not None and first is not None:
                first_event = events.first_stamp(source_id)
                first = first if first_event is None else min(first, first_event)
            key = keys.assign(source_id, None if numeric else first)
            anchors[source_id] = key
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
        event_rows: dict[str, list[tuple[float, int, str]]] = defaultdict(list)
        for seq, ev in enumerate(events.rows if events is not None else ()):
            key = anchors.get(ev.source_id) or keys.lookup(ev.source_id)
            assert key is not None  # checked above
            if ev.time_h is not None:
                t = ev.time_h
            else:
                assert ev.stamp is not None and key.anchor is not None
                t = (ev.stamp - key.anchor).total_seconds() / 3600.0
            event_rows[key.pseudonym].append((t, seq, json.dumps(ev.fields, sort_keys=True)))
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
            n_events = self._insert_events(event_rows, patients, import_id)
            db.execute(
                "INSERT INTO imports VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    import_id,
                    now,
                    "labs",
                    hashlib.sha256(source_bytes).hexdigest(),
                    len(plan),
                    total,
                    self.actor.user,
                ],
            )
            if events is not None:
                db.execute(
                    "INSERT INTO imports VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [f"{import_id}-events", now, "events",
                     hashlib.sha256(events_bytes).hexdigest(), len(event_rows), n_events,
                     self.actor.user],
                )  # fmt: skip
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        for pseudonym, info in patients.items():  # after the commit: what is stored is logged
            self.audit("import", pseudonym, f"import {import_id}: {info['n_values']} lab values")
            if "n_events" in info:
                self.audit("import", pseudonym, f"import {import_id}: {info['n_events']} events")
        return ImportSummary(import_id, patients, total, dict(history.dropped), n_events)

    def _check_event_patients(
        self, history: LabHistory, events: EventHistory, keys: KeyTable, numeric: bool
    ) -> None:
        """Every events row belongs to a patient of the labs or of the store, on one clock."""
        lab_ids = {r.source_id for r in history.records}
        problems: list[str] = []
        orphans = [r.row for r in events.rows
                   if r.source_id not in lab_ids and keys.lookup(r.source_id) is None]  # fmt: skip
        if orphans:
            problems.append(
                f"rows {_rows_text(orphans)}: the ID is no patient of the lab history or of the "
                "store (it must be the labs' patient_id or FHIR subject reference)"
            )
        for sid in events.source_ids:
            known = keys.lookup(sid)
            lab_clock = numeric if sid in lab_ids else None
            store_clock = None if known is None else known.anchor is None
            for clock in (lab_clock, store_clock):
                if clock is not None and clock != events.numeric:
                    rows = [r.row for r in events.rows if r.source_id == sid]
                    problems.append(
                        f"rows {_rows_text(rows)}: the events give "
                        f"{'numeric times' if events.numeric else 'date-times'} but this "
                        f"patient's labs use {'numeric times' if clock else 'date-times'}; "
                        "one patient has one clock"
                    )
                    break
        if problems:
            raise StoreError(f"{events.file}: " + "; ".join(problems))

    def _insert_events(
        self,
        event_rows: dict[str, list[tuple[float, int, str]]],
        patients: dict[str, dict[str, Any]],
        import_id: str,
    ) -> int:
        total = 0
        for pseudonym, rows in event_rows.items():
            added = 0
            for t, seq, fields in rows:
                dup = self._db.execute(
                    "SELECT count(*) FROM events WHERE pseudonym = ? AND time_h = ? AND fields = ?",
                    [pseudonym, t, fields],
                ).fetchone()
                if dup and dup[0]:
                    continue
                self._db.execute(
                    "INSERT INTO events VALUES (?, ?, ?, ?, ?)",
                    [pseudonym, t, seq, fields, import_id],
                )
                added += 1
            info = patients.setdefault(pseudonym, {"new": False, "n_values": 0,
                                                   "n_duplicates": 0})  # fmt: skip
            info["n_events"] = added
            info["n_event_duplicates"] = len(rows) - added
            total += added
        return total

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

    def event_rows(self, pseudonym: str, *, actor_action: str = "read") -> list[dict[str, Any]]:
        """A patient's stored events (``TIME`` in hours on the patient's clock, then the cells
        as imported; ``II`` and ``DUR`` in hours), in time and file order (audited)."""
        self._known(pseudonym)
        rows = self._db.execute(
            "SELECT e.time_h, e.fields FROM events e JOIN imports i USING (import_id) "
            "WHERE e.pseudonym = ? ORDER BY e.time_h, i.created, e.seq",
            [pseudonym],
        ).fetchall()
        self.audit(actor_action, pseudonym, f"{len(rows)} events")
        return [{"TIME": t, **json.loads(fields)} for t, fields in rows]

    _FORECAST_COLS = (
        "made_at", "t_data", "time_unit", "model", "method", "threshold", "median", "lower",
        "upper", "level", "p_within_horizon", "horizon", "fit_sha256",
    )  # fmt: skip

    def is_patient(self, pseudonym: str) -> bool:
        """Whether ``pseudonym`` names a patient of this store (not audited: no data read)."""
        found = self._db.execute(
            "SELECT count(*) FROM patients WHERE pseudonym = ?", [pseudonym]
        ).fetchone()
        return bool(found and found[0])

    def delete_patient(self, pseudonym: str, keys: KeyTable) -> dict[str, int]:
        """Remove a patient: its rows in every table (one transaction), its key-table entry,
        the experiments made from its data and the store's reports that show them; the audit
        log keeps a ``delete`` entry.
        Repeating a delete that was interrupted finishes it."""
        from hemolab.experiments import ExperimentStore
        from hemolab.store._purge import purge

        if not _PSEUDONYM.fullmatch(pseudonym):
            raise StoreError("a patient is deleted by its pseudonym (P + 10 hex digits)")
        in_keys = pseudonym in keys.pseudonyms()
        if not self.is_patient(pseudonym) and not in_keys:
            self.require_patient(pseudonym)  # the same message as any unknown patient
        counts: dict[str, int] = {}
        self._db.execute("BEGIN TRANSACTION")
        try:
            for table in ("lab_values", "events", "forecasts", "patients"):
                row = self._db.execute(
                    f"SELECT count(*) FROM {table} WHERE pseudonym = ?", [pseudonym]
                ).fetchone()
                counts[table] = int(row[0]) if row else 0
                self._db.execute(f"DELETE FROM {table} WHERE pseudonym = ?", [pseudonym])
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        purge(self.path / self.DB, con=self._db)  # the deleted rows' bytes leave the disk
        self._db.close()
        self._db = connect(self.path / self.DB)
        counts["key_entries"] = keys.remove(pseudonym)
        keys.save()
        doomed: list[str] = []
        catalogue = self.path / "experiments.duckdb"
        if catalogue.exists():
            experiments = ExperimentStore(self.path)
            doomed = experiments.mentioning(pseudonym)
            experiments.delete(doomed)
            if doomed:
                purge(catalogue)
        counts["experiments"] = len(doomed)
        counts["reports"] = self._delete_reports([pseudonym, *doomed])
        detail = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items())
        self.audit("delete", pseudonym, f"deleted: {detail}")
        return counts

    def _delete_reports(self, names: list[str]) -> int:
        """Remove the report files of the store (``reports/*.html``, as the web explorer
        writes them) that name the patient or one of its experiments."""
        folder = self.path / "reports"
        gone = 0
        for report in sorted(folder.glob("*.html")) if folder.is_dir() else ():
            text = report.read_bytes()
            if any(n.encode() in text for n in names):
                report.unlink()
                gone += 1
        return gone

    def require_patient(self, pseudonym: str) -> None:
        """Refuse a pseudonym that names no patient of this store (a source identifier given
        by mistake is not echoed)."""
        self._known(pseudonym)

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
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self.audit("forecast", pseudonym, f"{forecast['threshold']} from {fit_sha256[:12]}")

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
