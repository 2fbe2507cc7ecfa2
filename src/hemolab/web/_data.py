"""The server's only door to the patient store: one ``Store`` per request, under the user's
name, every read audited; patients named by per-session handles, never by pseudonym.

A handle is HMAC-SHA256(session's handle key, pseudonym), cut to 20 hex digits: the same
patient has another handle in every session, a handle means nothing outside its session, and
a URL, a browser history or a Referer header never carries a pseudonym. Resolving a handle
looks only among the patients granted to the user; a handle of a patient not granted
answers exactly like an unknown one, and the denial is audited.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hemolab.audit import Actor
from hemolab.web._users import Session

__all__ = ["Busy", "NotFound", "handle_of", "make_actor", "open_store", "resolve"]

# one Store open at a time in the server process: requests and job results take turns (each
# holds it for milliseconds); other processes (a CLI import) are waited for by the Store
_ONE_AT_A_TIME = threading.Lock()


class NotFound(Exception):
    """No such patient for this user (unknown, or not granted: the same answer)."""


class Busy(Exception):
    """The patient store stayed locked by another process (an import running)."""


def make_actor(user: str, origin: str) -> Actor:
    """The audit trail's actor of a web request: the signed-in user at the client's address."""
    return Actor(user=user, via="web", origin=origin)


@contextmanager
def open_store(store_dir: str | os.PathLike[str], actor: Actor) -> Iterator[Any]:
    """The patient store opened under ``actor`` for one request, closed after it."""
    from hemolab._errors import HemolabError
    from hemolab.store import Store

    with _ONE_AT_A_TIME:
        try:
            store = Store(store_dir, actor=actor)
        except HemolabError as exc:
            if "locked" in str(exc):
                raise Busy() from None
            raise
        try:
            yield store
        finally:
            store.close()


def handle_of(session: Session, pseudonym: str) -> str:
    return hmac.new(session.handle_key, pseudonym.encode(), hashlib.sha256).hexdigest()[:20]


def resolve(store: Any, session: Session, handle: str, granted: list[str], action: str) -> str:
    """The pseudonym behind ``handle`` if granted; else NotFound, the denial audited."""
    for pseudonym in granted:
        if hmac.compare_digest(handle_of(session, pseudonym), handle):
            return pseudonym
    other = None
    if len(handle) == 20:
        for (pseudonym,) in store._db.execute("SELECT pseudonym FROM patients").fetchall():
            if hmac.compare_digest(handle_of(session, pseudonym), handle):
                other = pseudonym
                break
    store.audit(f"denied {action}", other, "not granted" if other else "unknown handle")
    raise NotFound()


def patients(store: Any, granted: list[str]) -> list[dict[str, Any]]:
    """The granted patients that are in the store: sex, age bucket, counts (no values)."""
    if not granted:
        return []
    marks = ", ".join("?" * len(granted))
    rows = store._db.execute(
        f"SELECT p.pseudonym, p.sex, p.age, count(l.pseudonym), "
        f"string_agg(DISTINCT l.analyte, ', ' ORDER BY l.analyte), max(l.time_h) "
        f"FROM patients p LEFT JOIN lab_values l USING (pseudonym) "
        f"WHERE p.pseudonym IN ({marks}) GROUP BY p.pseudonym, p.sex, p.age "
        f"ORDER BY p.pseudonym",
        granted,
    ).fetchall()
    store.audit("list patients", None, f"{len(rows)} granted patients")
    return [
        {"pseudonym": p, "sex": s, "age": a, "n_values": n, "analytes": an or "", "last_h": t}
        for p, s, a, n, an, t in rows
    ]


def audit_trail(store: Any, limit: int = 500) -> list[dict[str, Any]]:
    rows = store.audit_trail()
    return rows[-limit:]
