"""Users, grants and sessions of ``hemolab serve``: ``users.sqlite`` in the store directory.

A file of its own, opened for one transaction at a time (SQLite's locking lets the CLI's
``hemolab users ...`` and the server write it side by side; the patients' DuckDB file is
never held for a session look-up). Passwords are kept only as argon2id hashes
(argon2-cffi's ``PasswordHasher``; a hash made with older parameters is replaced at the next
successful login). A session token is 256 random bits; only its SHA-256 is stored, so a copy
of the file does not let anyone in. Design note 030.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hemolab._errors import HemolabError

__all__ = ["ROLES", "Session", "User", "UserError", "UserStore"]

ROLES = ("viewer", "analyst", "admin")
_RANK = {r: k for k, r in enumerate(ROLES)}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
_PSEUDONYM = re.compile(r"P[0-9A-F]{10}")
MIN_PASSWORD = 10
SESSION_HOURS = 8.0  # absolute lifetime of a session
IDLE_MINUTES = 60.0  # a session unused this long ends

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS users (
        name TEXT PRIMARY KEY, role TEXT NOT NULL, hash TEXT NOT NULL, created REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS grants (
        user TEXT NOT NULL, pseudonym TEXT NOT NULL, granted REAL NOT NULL,
        PRIMARY KEY (user, pseudonym))""",
    """CREATE TABLE IF NOT EXISTS sessions (
        token_sha256 TEXT PRIMARY KEY, user TEXT NOT NULL, csrf TEXT NOT NULL,
        handle_key TEXT NOT NULL, created REAL NOT NULL, expires REAL NOT NULL,
        last_seen REAL NOT NULL)""",
)


class UserError(HemolabError, ValueError):
    """A user, role, password or grant that cannot be accepted; the message says why."""


@dataclass(frozen=True)
class User:
    name: str
    role: str

    def can(self, role: str) -> bool:
        """Whether this user's role includes ``role`` (viewer < analyst < admin)."""
        return _RANK[self.role] >= _RANK[role]


@dataclass(frozen=True)
class Session:
    """A signed-in user: the CSRF token of the session, and the key of its patient handles."""

    user: User
    token_sha256: str
    csrf: str
    handle_key: bytes
    expires: float


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise UserError(
            "a user name is 1-64 characters: letters, digits and _ . @ - (starting with a "
            "letter or digit)"
        )
    return name


def check_pseudonym(pseudonym: str) -> str:
    if not _PSEUDONYM.fullmatch(pseudonym):
        raise UserError("a pseudonym looks like P3F09A1C2B7 (`hemolab import` prints them)")
    return pseudonym


class UserStore:
    """``users.sqlite`` of a store directory (created on first use, mode 0600).

    ``hasher`` is an argon2 ``PasswordHasher`` (its defaults unless given: RFC 9106's
    low-memory profile)."""

    FILE = "users.sqlite"

    def __init__(self, store_dir: str | os.PathLike[str], *, hasher: Any = None) -> None:
        from argon2 import PasswordHasher

        self.path = Path(store_dir) / self.FILE
        self.hasher = hasher if hasher is not None else PasswordHasher()
        Path(store_dir).mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        with self._db() as db:
            for statement in _SCHEMA:
                db.execute(statement)
        # a password that fails still costs one hash: the time does not tell names apart
        self._dummy = self.hasher.hash(secrets.token_urlsafe(16))

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            db.close()

    # users ----------------------------------------------------------------------------------
    def add(self, name: str, role: str, password: str) -> User:
        check_name(name)
        if role not in ROLES:
            raise UserError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        if len(password) < MIN_PASSWORD:
            raise UserError(f"a password has at least {MIN_PASSWORD} characters")
        digest = self.hasher.hash(password)
        with self._db() as db:
            if db.execute("SELECT 1 FROM users WHERE name = ?", [name]).fetchone():
                raise UserError(f"user {name!r} exists already")
            db.execute("INSERT INTO users VALUES (?, ?, ?, ?)", [name, role, digest, time.time()])
        return User(name, role)

    def remove(self, name: str) -> None:
        with self._db() as db:
            if not db.execute("DELETE FROM users WHERE name = ? RETURNING name", [name]).fetchall():
                raise UserError(f"no user {name!r}")
            db.execute("DELETE FROM grants WHERE user = ?", [name])
            db.execute("DELETE FROM sessions WHERE user = ?", [name])

    def users(self) -> list[dict[str, Any]]:
        with self._db() as db:
            rows = db.execute(
                "SELECT u.name, u.role, count(g.pseudonym) FROM users u LEFT JOIN grants g "
                "ON g.user = u.name GROUP BY u.name, u.role ORDER BY u.name"
            ).fetchall()
        return [{"name": n, "role": r, "n_patients": k} for n, r, k in rows]

    def get(self, name: str) -> User | None:
        with self._db() as db:
            row = db.execute("SELECT name, role FROM users WHERE name = ?", [name]).fetchone()
        return None if row is None else User(row[0], row[1])

    def verify(self, name: str, password: str) -> User | None:
        """The user if ``password`` is theirs (rehashed when the parameters changed)."""
        from argon2.exceptions import InvalidHashError, VerificationError

        with self._db() as db:
            row = db.execute("SELECT role, hash FROM users WHERE name = ?", [name]).fetchone()
        if row is None:
            with suppress(VerificationError):
                self.hasher.verify(self._dummy, password + "x")
            return None
        role, digest = row
        try:
            self.hasher.verify(digest, password)
        except (VerificationError, InvalidHashError):
            return None
        if self.hasher.check_needs_rehash(digest):
            new = self.hasher.hash(password)
            with self._db() as db:
                db.execute("UPDATE users SET hash = ? WHERE name = ? AND hash = ?",
                           [new, name, digest])  # fmt: skip
        return User(name, role)

    # grants ---------------------------------------------------------------------------------
    def grant(self, name: str, pseudonym: str) -> None:
        check_pseudonym(pseudonym)
        with self._db() as db:
            if not db.execute("SELECT 1 FROM users WHERE name = ?", [name]).fetchone():
                raise UserError(f"no user {name!r} (add one with hemolab users add)")
            db.execute("INSERT OR IGNORE INTO grants VALUES (?, ?, ?)",
                       [name, pseudonym, time.time()])  # fmt: skip

    def revoke(self, name: str, pseudonym: str) -> bool:
        """Remove a grant; False when there was none."""
        check_pseudonym(pseudonym)
        with self._db() as db:
            gone = db.execute("DELETE FROM grants WHERE user = ? AND pseudonym = ? "
                              "RETURNING user", [name, pseudonym]).fetchall()  # fmt: skip
        return bool(gone)

    def granted(self, name: str) -> list[str]:
        with self._db() as db:
            rows = db.execute("SELECT pseudonym FROM grants WHERE user = ? ORDER BY pseudonym",
                              [name]).fetchall()  # fmt: skip
        return [r[0] for r in rows]

    # sessions -------------------------------------------------------------------------------
    def open_session(self, user: User) -> str:
        """A new session for ``user``; returns its token (only its hash is kept)."""
        token = secrets.token_urlsafe(32)  # 256 bits
        now = time.time()
        with self._db() as db:
            db.execute("DELETE FROM sessions WHERE expires < ? OR last_seen < ?",
                       [now, now - IDLE_MINUTES * 60])  # fmt: skip
            db.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?)",
                [_sha256(token), user.name, secrets.token_urlsafe(32), secrets.token_hex(32),
                 now, now + SESSION_HOURS * 3600, now],
            )  # fmt: skip
        return token

    def session(self, token: str) -> Session | None:
        """The live session of ``token`` (its idle clock restarted), or None."""
        if not token or len(token) > 100:
            return None
        now = time.time()
        with self._db() as db:
            row = db.execute(
                "SELECT s.token_sha256, s.csrf, s.handle_key, s.expires, s.last_seen, u.name, "
                "u.role FROM sessions s JOIN users u ON u.name = s.user WHERE s.token_sha256 = ?",
                [_sha256(token)],
            ).fetchone()
            if row is None:
                return None
            digest, csrf, key, expires, seen, name, role = row
            if expires < now or seen < now - IDLE_MINUTES * 60:
                db.execute("DELETE FROM sessions WHERE token_sha256 = ?", [digest])
                return None
            db.execute("UPDATE sessions SET last_seen = ? WHERE token_sha256 = ?", [now, digest])
        return Session(User(name, role), digest, csrf, bytes.fromhex(key), expires)

    def close_session(self, token_sha256: str) -> None:
        with self._db() as db:
            db.execute("DELETE FROM sessions WHERE token_sha256 = ?", [token_sha256])


def same(a: str, b: str) -> bool:
    """Constant-time comparison of two tokens."""
    return hmac.compare_digest(a.encode(), b.encode())
