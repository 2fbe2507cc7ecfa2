"""The key table: source identifier ↔ pseudonym ↔ clock anchor, encrypted at rest.

DATA-FORMATS §0: one random pseudonym per patient, fixed at the first import and reused by
every later import and every source of that patient; one time anchor, fixed at the first
import. The table is the only place where identifiers and pseudonyms meet, so it lives in
its own file (``keys.enc`` in the store), encrypted with Fernet (AES-128-CBC with an
HMAC-SHA256 tag, from ``cryptography``) under a key the user keeps apart (``--key-file`` or
``HEMOLAB_KEY_FILE``). Without the key nobody can re-identify a pseudonym; with a wrong key
the table refuses to open, and a tampered file fails its authentication tag.

Writes go to a temporary file renamed over the old one: a crash leaves the previous table.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from hemolab._errors import HemolabError

__all__ = ["KeyTable", "KeyTableError", "PatientKey", "generate_key", "read_key"]

_VERSION = 1


class KeyTableError(HemolabError):
    """The key file or the key table cannot be used (missing, wrong key, tampered)."""


@dataclass(frozen=True)
class PatientKey:
    """A patient's pseudonym and clock: ``anchor`` (UTC) for date-time sources, None when
    the patient's sources give numeric times (their own clock, in hours)."""

    pseudonym: str
    anchor: datetime | None


def generate_key(path: str | os.PathLike[str]) -> Path:
    """Write a new Fernet key to ``path`` (readable by its owner only); refuse to overwrite."""
    from cryptography.fernet import Fernet

    target = Path(path)
    if target.exists():
        raise KeyTableError(f"key file {str(target)!r} exists; hemolab never overwrites a key")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(Fernet.generate_key() + b"\n")
    return target


def read_key(path: str | os.PathLike[str] | None) -> bytes:
    """The key in ``path`` (or ``$HEMOLAB_KEY_FILE``), checked to be a Fernet key."""
    import base64

    chosen = path if path is not None else os.environ.get("HEMOLAB_KEY_FILE")
    if not chosen:
        raise KeyTableError(
            "patient data needs the store's key: pass --key-file PATH (or set "
            "HEMOLAB_KEY_FILE); create one with `hemolab keygen --key-file PATH`"
        )
    file = Path(chosen)
    if not file.is_file():
        raise KeyTableError(f"key file {str(file)!r} does not exist")
    key = file.read_bytes().strip()
    try:
        ok = len(base64.urlsafe_b64decode(key)) == 32
    except ValueError:
        ok = False
    if not ok:
        raise KeyTableError(f"key file {str(file)!r} does not hold a key made by `hemolab keygen`")
    return key


class KeyTable:
    """The store's key table, opened with its key. ``lookup`` and ``assign`` never log."""

    FILE = "keys.enc"

    def __init__(self, store: str | os.PathLike[str], key: bytes):
        from cryptography.fernet import Fernet, InvalidToken

        self._path = Path(store) / self.FILE
        self._fernet = Fernet(key)
        self._entries: dict[str, dict[str, str | None]] = {}
        if self._path.exists():
            try:
                plain = self._fernet.decrypt(self._path.read_bytes())
            except InvalidToken:
                raise KeyTableError(
                    "the key does not open this store's key table (wrong key file, or the "
                    "table was altered)"
                ) from None
            doc = json.loads(plain)
            if doc.get("version") != _VERSION:
                raise KeyTableError(f"key table version {doc.get('version')} is not supported")
            self._entries = doc["patients"]

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:  # never the identifiers
        return f"KeyTable({len(self)} patients)"

    def lookup(self, source_id: str) -> PatientKey | None:
        entry = self._entries.get(source_id)
        if entry is None:
            return None
        anchor = entry.get("anchor")
        return PatientKey(
            str(entry["pseudonym"]), datetime.fromisoformat(anchor) if anchor else None
        )

    def assign(self, source_id: str, anchor: datetime | None) -> PatientKey:
        """The patient's key, created (random pseudonym, this anchor) at the first import."""
        known = self.lookup(source_id)
        if known is not None:
            return known
        used = {str(e["pseudonym"]) for e in self._entries.values()}
        pseudonym = "P" + secrets.token_hex(5).upper()
        while pseudonym in used:
            pseudonym = "P" + secrets.token_hex(5).upper()
        self._entries[source_id] = {
            "pseudonym": pseudonym,
            "anchor": anchor.isoformat() if anchor is not None else None,
        }
        return PatientKey(pseudonym, anchor)

    def pseudonyms(self) -> set[str]:
        return {str(e["pseudonym"]) for e in self._entries.values()}

    def remove(self, pseudonym: str) -> int:
        """Forget every identifier mapped to ``pseudonym`` (a deleted patient); returns how
        many entries went. ``save`` writes the change."""
        gone = [sid for sid, e in self._entries.items() if e["pseudonym"] == pseudonym]
        for sid in gone:
            del self._entries[sid]
        return len(gone)

    def rekey(self, new_key: bytes) -> None:
        """Encrypt under ``new_key`` from now on (``save`` writes the table under it)."""
        from cryptography.fernet import Fernet

        self._fernet = Fernet(new_key)

    def save(self) -> None:
        """Encrypt and write the table atomically (temporary file, then rename)."""
        token = self._fernet.encrypt(
            json.dumps({"version": _VERSION, "patients": self._entries}).encode()
        )
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self._path.parent, prefix=".keys-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(token)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self._path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
