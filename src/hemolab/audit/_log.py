"""The audit log: one JSON line per access to patient data, chained with an HMAC.

Each entry names who (``user``), through what (``via``: ``cli`` or ``web``), from where
(``origin``: the host and terminal, or the client's address), when (``at``, UTC), what
(``action``, ``detail``) and whose data (``pseudonym``). Its ``mac`` is an HMAC-SHA256 over
the entry and the previous entry's ``mac`` (``prev``), so an entry cannot be changed, removed
or inserted without the key. The key and the chain head (entry count and last MAC) live in a
folder apart from the store (``$HEMOLAB_AUDIT_DIR``, default ``~/.local/state/hemolab/audit``,
one subfolder per store id): cutting entries off the end of the log, which the chain alone
cannot show, disagrees with the head. Design note 028 has the threat model.

Appends take a lock on the store (``filelock``), write and ``fsync`` the line, then replace
the head atomically. A crash between the two leaves the log one valid entry ahead of its
head; the next append and ``verify`` recognise that entry by its MAC.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import json
import os
import secrets
import socket
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hemolab._errors import HemolabError

__all__ = [
    "Actor",
    "AuditError",
    "AuditLog",
    "AuditVerification",
    "audit_key_dir",
]

LOG_FILE = "audit.log"
STORE_ID_FILE = "store-id"
_LOCK_FILE = ".audit.lock"
_KEY_FILE = "key.json"
_HEAD_FILE = "head.json"
_GENESIS = "0" * 64
_FIELDS = ("seq", "at", "user", "via", "origin", "action", "pseudonym", "detail", "epoch", "prev")


class AuditError(HemolabError):
    """The audit log cannot be written or read as asked (no key, wrong store, bad entry)."""


@dataclass(frozen=True)
class Actor:
    """Who acts, through what and from where: the OS user on a host (``Actor.cli()``) or a
    web user at a client address."""

    user: str
    via: str
    origin: str

    @classmethod
    def cli(cls) -> Actor:
        """The OS user running this process, on this host (and terminal, when there is one)."""
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no user name (containers)
            user = f"uid {os.getuid()}"
        origin = socket.gethostname()
        for stream in (sys.stdin, sys.stdout):
            try:
                if stream is not None and stream.isatty():
                    origin += f" {os.ttyname(stream.fileno())}"
                    break
            except (OSError, ValueError, AttributeError):
                continue
        return cls(user, "cli", origin)


@dataclass(frozen=True)
class AuditVerification:
    """What ``AuditLog.verify`` found: ``ok`` when nobody without the key altered the log."""

    ok: bool
    n_entries: int
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "n_entries": self.n_entries,
            "problems": list(self.problems),
            "notes": list(self.notes),
        }


def _state_home() -> Path:
    chosen = os.environ.get("HEMOLAB_AUDIT_DIR")
    if chosen:
        return Path(chosen)
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(Path.home(), ".local", "state")
    return Path(base) / "hemolab" / "audit"


def store_id(store: Path, *, create: bool) -> str | None:
    """The store's random id (file ``store-id``), which names its audit key folder."""
    file = store / STORE_ID_FILE
    if file.is_file():
        text = file.read_text().strip()
        try:
            return str(uuid.UUID(text))
        except ValueError:
            raise AuditError(f"{str(file)!r} does not hold a store id") from None
    if not create:
        return None
    new = str(uuid.uuid4())
    _write_atomic(file, (new + "\n").encode(), mode=0o644)
    return new


def audit_key_dir(store: str | os.PathLike[str]) -> Path:
    """Where the audit key and the chain head of ``store`` are kept (apart from the store)."""
    sid = store_id(Path(store), create=False)
    if sid is None:
        raise AuditError(f"{str(store)!r} has no audit log yet (no store id)")
    return _state_home() / sid


def _write_atomic(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Write ``data`` to a temporary file beside ``path``, ``fsync`` it, rename it over."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _canonical(entry: dict[str, Any]) -> bytes:
    return json.dumps({k: entry[k] for k in _FIELDS}, sort_keys=True, ensure_ascii=True).encode()


def _mac(key: bytes, entry: dict[str, Any]) -> str:
    return hmac.new(key, _canonical(entry), hashlib.sha256).hexdigest()


class AuditLog:
    """The audit log of one store directory (``audit.log``), with its key folder apart.

    ``AuditLog(store)`` opens it; the first append creates the store id, the key (mode 0600)
    and the head. A log whose key folder is missing is refused: appending under a new key
    would break the chain and hide what came before.
    """

    def __init__(self, store: str | os.PathLike[str]):
        self.store = Path(store)
        self.path = self.store / LOG_FILE

    # -- key and head ------------------------------------------------------------------------
    def _key_dir(self, *, create: bool) -> Path:
        sid = store_id(self.store, create=create)
        if sid is None:
            raise AuditError(f"store {str(self.store)!r} has no audit log yet")
        return _state_home() / sid

    def _keys(self, key_dir: Path, *, create: bool) -> dict[str, Any]:
        file = key_dir / _KEY_FILE
        if not file.is_file():
            if not create or self.path.exists():
                raise AuditError(
                    f"the audit key of store {str(self.store)!r} is not in {str(key_dir)!r}: "
                    "set HEMOLAB_AUDIT_DIR to the folder that holds it (it is kept apart from "
                    "the store; without it nothing can be added to the trail)"
                )
            doc = {"version": 1, "current": 1, "keys": {"1": secrets.token_hex(32)}}
            key_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            _write_atomic(file, json.dumps(doc).encode())
            _write_atomic(key_dir / _HEAD_FILE, json.dumps(self._head_doc(0, _GENESIS)).encode())
            return doc
        try:
            doc = json.loads(file.read_text())
            int(doc["current"])
            {int(k): bytes.fromhex(v) for k, v in doc["keys"].items()}
        except (ValueError, KeyError, TypeError):
            raise AuditError(f"{str(file)!r} is not an audit key file") from None
        return doc

    @staticmethod
    def _head_doc(count: int, mac: str) -> dict[str, Any]:
        return {"version": 1, "count": count, "mac": mac}

    def _head(self, key_dir: Path) -> tuple[int, str]:
        file = key_dir / _HEAD_FILE
        try:
            doc = json.loads(file.read_text())
            return int(doc["count"]), str(doc["mac"])
        except FileNotFoundError:
            raise AuditError(f"the audit chain head {str(file)!r} is missing") from None
        except (ValueError, KeyError, TypeError):
            raise AuditError(f"{str(file)!r} is not an audit chain head") from None

    def _lock(self) -> Any:
        from filelock import FileLock

        self.store.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.store / _LOCK_FILE), timeout=120)

    # -- reading -----------------------------------------------------------------------------
    def _lines(self) -> Iterator[tuple[int, str]]:
        if not self.path.exists():
            return
        with self.path.open("r", encoding="utf-8", errors="replace", newline="\n") as fh:
            for n, line in enumerate(fh, start=1):
                if line.strip():
                    yield n, line

    def entries(self, pseudonym: str | None = None) -> list[dict[str, Any]]:
        """The entries as written (not verified: ``verify`` does that), oldest first."""
        out = []
        for n, line in self._lines():
            try:
                entry = json.loads(line)
            except ValueError:
                raise AuditError(f"{str(self.path)!r} line {n}: not an audit entry") from None
            if not isinstance(entry, dict):
                raise AuditError(f"{str(self.path)!r} line {n}: not an audit entry")
            if pseudonym is None or entry.get("pseudonym") == pseudonym:
                out.append(entry)
        return out

    def _last(self) -> dict[str, Any] | None:
        """The last entry of the log (read from the end), or None when it is empty."""
        if not self.path.exists():
            return None
        with self.path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            chunk = 4096
            data = b""
            while size > 0:
                step = min(chunk, size)
                size -= step
                fh.seek(size)
                data = fh.read(step) + data
                lines = [x for x in data.split(b"\n") if x.strip()]
                if len(lines) >= 2 or (lines and size == 0):
                    try:
                        doc = json.loads(lines[-1])
                    except ValueError:
                        return None
                    return doc if isinstance(doc, dict) else None
                chunk *= 2
        return None

    # -- writing -----------------------------------------------------------------------------
    def append(
        self,
        actor: Actor,
        action: str,
        pseudonym: str | None = None,
        detail: str = "",
        *,
        at: datetime | None = None,
    ) -> dict[str, Any]:
        """Add one entry (``detail`` must not identify anyone: pseudonyms and counts)."""
        with self._lock():
            key_dir = self._key_dir(create=True)
            keys = self._keys(key_dir, create=True)
            self._drop_torn_tail()
            count, prev = self._caught_up_head(key_dir, keys)
            epoch = int(keys["current"])
            entry = self._write_entry(keys, epoch, count + 1, prev, actor, action, pseudonym,
                                      detail, at)  # fmt: skip
            _write_atomic(
                key_dir / _HEAD_FILE, json.dumps(self._head_doc(count + 1, entry["mac"])).encode()
            )
            return entry

    def _caught_up_head(self, key_dir: Path, keys: dict[str, Any]) -> tuple[int, str]:
        """The head, moved over the one entry that an interrupted append wrote after it."""
        count, mac = self._head(key_dir)
        last = self._last()
        if (
            last is not None
            and last.get("seq") == count + 1
            and last.get("prev") == mac
            and self._valid(keys, last)
        ):
            return count + 1, str(last["mac"])
        return count, mac

    @staticmethod
    def _valid(keys: dict[str, Any], entry: dict[str, Any]) -> bool:
        try:
            key = bytes.fromhex(keys["keys"][str(int(entry["epoch"]))])
            return hmac.compare_digest(_mac(key, entry), str(entry["mac"]))
        except (KeyError, TypeError, ValueError):
            return False

    def _write_entry(
        self,
        keys: dict[str, Any],
        epoch: int,
        seq: int,
        prev: str,
        actor: Actor,
        action: str,
        pseudonym: str | None,
        detail: str,
        at: datetime | None,
    ) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "seq": seq,
            "at": (at or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="microseconds"),
            "user": actor.user,
            "via": actor.via,
            "origin": actor.origin,
            "action": action,
            "pseudonym": pseudonym,
            "detail": detail,
            "epoch": epoch,
            "prev": prev,
        }
        entry["mac"] = _mac(bytes.fromhex(keys["keys"][str(epoch)]), entry)
        line = json.dumps(entry, sort_keys=True, ensure_ascii=True) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        with os.fdopen(fd, "ab") as fh:
            fh.write(line.encode())
            fh.flush()
            os.fsync(fh.fileno())
        return entry

    def _drop_torn_tail(self) -> None:
        """Cut a last line that has no newline: an append that died mid-write (its entry
        never reached the head). Complete lines are never touched."""
        if not self.path.exists():
            return
        with self.path.open("r+b") as fh:
            size = fh.seek(0, os.SEEK_END)
            if size == 0:
                return
            fh.seek(size - 1)
            if fh.read(1) == b"\n":
                return
            pos = size
            while pos > 0:
                step = min(4096, pos)
                fh.seek(pos - step)
                block = fh.read(step)
                cut = block.rfind(b"\n")
                if cut >= 0:
                    pos = pos - step + cut + 1
                    break
                pos -= step
            fh.truncate(pos)
            fh.flush()
            os.fsync(fh.fileno())

    def rotate_key(self, actor: Actor) -> int:
        """Start a new key epoch: verify the chain under the old keys (refused when it does
        not verify), keep the old keys for the entries they signed, and sign from the next
        entry on with a new key. Returns the new epoch."""
        with self._lock():
            result = self._verify_locked()
            if not result.ok:
                raise AuditError(
                    "the audit log does not verify; rotating its key would hide that: "
                    + "; ".join(result.problems)
                )
            key_dir = self._key_dir(create=False)
            keys = self._keys(key_dir, create=False)
            old = int(keys["current"])
            new = max(int(k) for k in keys["keys"]) + 1
            keys["keys"][str(new)] = secrets.token_hex(32)
            keys["current"] = new
            _write_atomic(key_dir / _KEY_FILE, json.dumps(keys).encode())
            self._drop_torn_tail()
            count, prev = self._caught_up_head(key_dir, keys)
            entry = self._write_entry(keys, new, count + 1, prev, actor, "rotate audit key",
                                      None, f"key epoch {old} -> {new}", None)  # fmt: skip
            _write_atomic(
                key_dir / _HEAD_FILE, json.dumps(self._head_doc(count + 1, entry["mac"])).encode()
            )
            return new

    def note_restore(self, actor: Actor, detail: str) -> dict[str, Any]:
        """After a restore from backup: chain one entry that says which entries the restored
        log lacks (those after the backup), and move the head to it. Needs the key, so it
        cannot be used to hide a truncation by someone who lacks it."""
        with self._lock():
            key_dir = self._key_dir(create=False)
            keys = self._keys(key_dir, create=False)
            head_count, head_mac = self._head(key_dir)
            self._drop_torn_tail()
            last = self._last()
            count = int(last["seq"]) if last is not None else 0
            prev = str(last["mac"]) if last is not None else _GENESIS
            lost = (
                f"; entries {count + 1}-{head_count} (after the backup) are gone; the head "
                f"was {head_count} entries ending in MAC {head_mac[:16]}"
                if head_count > count
                else ""
            )
            entry = self._write_entry(keys, int(keys["current"]), count + 1, prev, actor,
                                      "restore", None, detail + lost, None)  # fmt: skip
            _write_atomic(
                key_dir / _HEAD_FILE, json.dumps(self._head_doc(count + 1, entry["mac"])).encode()
            )
            return entry

    # -- verifying ---------------------------------------------------------------------------
    def verify(self) -> AuditVerification:
        """Check every entry's MAC and link, and the log's end against the head."""
        with self._lock():
            return self._verify_locked()

    def _verify_locked(self) -> AuditVerification:
        key_dir = self._key_dir(create=False)
        keys = self._keys(key_dir, create=False)
        head_count, head_mac = self._head(key_dir)
        problems: list[str] = []
        notes: list[str] = []
        prev, expected, epoch, n = _GENESIS, 1, 0, 0
        last_mac = _GENESIS
        for line_no, line in self._lines():
            n += 1
            where = f"line {line_no}"
            try:
                entry = json.loads(line)
                if not isinstance(entry, dict):
                    raise ValueError
                seq = int(entry["seq"])
                entry_epoch = int(entry["epoch"])
            except (ValueError, KeyError, TypeError):
                if not line.endswith("\n"):  # the last line, cut short
                    notes.append(f"{where}: a torn last line (an append that died mid-write; "
                                 "the next append removes it)")  # fmt: skip
                    n -= 1
                else:
                    problems.append(f"{where}: not an audit entry (altered or inserted)")
                continue
            if not self._valid(keys, entry):
                problems.append(f"{where} (entry {seq}): its MAC does not match (altered)")
            if seq != expected:
                problems.append(
                    f"{where}: entry {seq} where entry {expected} was due "
                    + ("(entries removed)" if seq > expected else "(entry inserted or repeated)")
                )
            elif entry.get("prev") != prev:
                problems.append(f"{where} (entry {seq}): does not follow the entry before it")
            if entry_epoch < epoch:
                problems.append(f"{where} (entry {seq}): signed with an older key than before it")
            if entry.get("action") == "restore":
                notes.append(f"entry {seq}: restored from a backup: {entry.get('detail', '')}")
            epoch = max(epoch, entry_epoch)
            prev = last_mac = str(entry.get("mac"))
            expected = seq + 1
        count = expected - 1
        if count == head_count + 1 and not problems:
            notes.append(
                "the log is one entry ahead of its head (an append was interrupted before the "
                "head was updated); the next append moves the head"
            )
        elif count < head_count:
            problems.append(
                f"the log ends at entry {count} but its head says {head_count} entries "
                "(entries cut off the end)"
            )
        elif count > head_count:
            problems.append(
                f"the log has entries after entry {head_count}, where its head ends (appended "
                "without the head)"
            )
        elif not hmac.compare_digest(last_mac, head_mac):
            problems.append(f"entry {count} is not the entry the head recorded (replaced)")
        return AuditVerification(not problems, n, problems, notes)
