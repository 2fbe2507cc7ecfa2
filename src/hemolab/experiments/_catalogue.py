"""The experiment catalogue: one DuckDB file, opened for one short transaction at a time.

DuckDB lets one process open a database file for writing, and then no other process may open
it at all (not even read-only). So nobody holds it: every write opens the file, runs one
transaction, and closes it; every read opens it read-only, queries, and closes it. A process
that finds it locked waits a little (exponential back-off with jitter) and tries again, up to
a deadline. Two CLI runs, a Ray sweep and ``hemolab serve`` then share one store (design
note 022).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from hemolab._errors import HemolabError

__all__ = ["Catalogue", "ExperimentError"]

T = TypeVar("T")

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS experiments (
        id TEXT PRIMARY KEY, kind TEXT NOT NULL, label TEXT NOT NULL, status TEXT NOT NULL,
        started TIMESTAMPTZ NOT NULL, ended TIMESTAMPTZ, host TEXT NOT NULL,
        pid INTEGER NOT NULL, process_start TEXT NOT NULL, actor TEXT NOT NULL,
        model_name TEXT, model_hash TEXT, seed BIGINT, solver TEXT, rtol DOUBLE, atol DOUBLE,
        spec TEXT NOT NULL, versions TEXT NOT NULL, error TEXT, parent TEXT)""",
    """CREATE TABLE IF NOT EXISTS experiment_files (
        id TEXT NOT NULL, role TEXT NOT NULL, name TEXT NOT NULL, path TEXT NOT NULL,
        bytes BIGINT NOT NULL, sha256 TEXT NOT NULL, content_sha256 TEXT, n_rows BIGINT,
        PRIMARY KEY (id, role, name))""",
)


class ExperimentError(HemolabError):
    """The experiment store cannot do what was asked (unknown id, locked too long, a rerun
    whose inputs changed); the message names the experiment and what was expected."""


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text and ("conflicting" in text or "could not set" in text)


class Catalogue:
    """``experiments.duckdb`` of a store; every call is one short transaction."""

    def __init__(self, path: Path, timeout_s: float = 120.0) -> None:
        self.path = path
        self.timeout_s = timeout_s
        if not path.exists():
            self.write(lambda db: None)

    def write(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn(connection)`` in one transaction of a read-write connection."""

        def run() -> T:
            import duckdb

            db = duckdb.connect(str(self.path))
            try:
                for statement in _SCHEMA:
                    db.execute(statement)
                db.execute("BEGIN TRANSACTION")
                try:
                    out = fn(db)
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
                return out
            finally:
                db.close()

        return self._retry(run)

    def read(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn(connection)`` on a read-only connection (never a write lock)."""

        def run() -> T:
            import duckdb

            db = duckdb.connect(str(self.path), read_only=True)
            try:
                return fn(db)
            finally:
                db.close()

        return self._retry(run)

    def _retry(self, run: Callable[[], T]) -> T:
        import duckdb

        deadline = time.monotonic() + self.timeout_s
        wait = 0.005
        while True:
            try:
                return run()
            except (duckdb.IOException, duckdb.ConnectionException) as exc:
                if not _is_lock_error(exc):
                    raise ExperimentError(
                        f"experiment catalogue {str(self.path)!r} cannot be opened: {exc}"
                    ) from None
                if time.monotonic() > deadline:
                    raise ExperimentError(
                        f"experiment catalogue {str(self.path)!r} stayed locked by another "
                        f"process for {self.timeout_s:g} s"
                    ) from None
            time.sleep(wait * (0.5 + random.random()))
            wait = min(wait * 2, 0.25)
