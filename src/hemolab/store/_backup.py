"""Backups of a store directory and their restore, checked file by file.

A backup is one ``.tar.gz`` holding every file of the store (databases, key table, audit
log, experiments) and ``MANIFEST.json`` (each file's size and SHA-256, the store id, the
audit log's length). It is taken with every database of the store open read-write (nobody
writes meanwhile; DuckDB's WAL checkpointed into the file) and the audit lock held, written
to a temporary name and renamed. Restore checks every member (plain files under the store,
no links, no ``..``, hashes as listed) in a folder beside the target, then renames it into
place: a failed restore leaves the target as it was. A store already at the target is moved
aside, never deleted. The audit key is not in the backup (it is kept apart); restore chains
a ``restore`` entry that says which entries, made after the backup, the restored log lacks.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from hemolab.audit import Actor, AuditLog
from hemolab.audit._log import STORE_ID_FILE, store_id
from hemolab.store._connect import connect
from hemolab.store._store import StoreError

__all__ = ["backup_store", "restore_store"]

_MANIFEST = "MANIFEST.json"
_SKIP_SUFFIXES = (".tmp", ".wal", ".lock", "-journal", "-wal", "-shm")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def _quiet_databases(store: Path, timeout_s: float = 120.0) -> Iterator[None]:
    """Hold every DuckDB file of the store open read-write (checkpointed), so that no other
    process writes while the files are copied; wait while another holds one."""
    import sqlite3

    held: list[Any] = []
    try:
        for db in sorted(store.glob("*.duckdb")):
            con = connect(db, timeout_s=timeout_s)
            con.execute("CHECKPOINT")
            held.append(con)
        for db in sorted(store.glob("*.sqlite")):  # the web explorer's users
            lite = sqlite3.connect(db, timeout=timeout_s, isolation_level=None)
            held.append(lite)
            lite.execute("BEGIN IMMEDIATE")  # writers wait; the file holds no pending change
        yield
    finally:
        for con in held:
            con.close()


def _members(store: Path) -> list[Path]:
    files = []
    for path in sorted(store.rglob("*")):
        if path.is_symlink():
            raise StoreError(f"store {str(store)!r} holds a link ({path.name}); not backed up")
        if not path.is_file() or path.name.endswith(_SKIP_SUFFIXES):
            continue
        if any(part.startswith(".") for part in path.relative_to(store).parts):
            continue  # locks, half-written temporaries
        files.append(path)
    return files


def backup_store(store: str | os.PathLike[str], out: str | os.PathLike[str], *,
                 actor: Actor | None = None) -> dict[str, Any]:  # fmt: skip
    """Write a backup of ``store`` to ``out`` (``.tar.gz``); returns its manifest."""
    src, dest = Path(store), Path(out)
    if not (src / "hemolab.duckdb").is_file() and not (src / "experiments.duckdb").is_file():
        raise StoreError(f"{str(src)!r} is not a hemolab store (no hemolab.duckdb)")
    if dest.exists() and dest.is_dir():
        raise StoreError(f"backup target {str(dest)!r} is a directory; give a file name")
    if not dest.parent.is_dir():
        raise StoreError(f"the folder of backup target {str(dest)!r} does not exist")
    who = actor if actor is not None else Actor.cli()
    log = AuditLog(src)
    if (src / STORE_ID_FILE).is_file() or log.path.exists():
        log.append(who, "backup", None, f"backup to {dest.name}")
    with log._lock(), _quiet_databases(src):
        files = _members(src)
        manifest = {
            "format": "hemolab-store-backup 1",
            "created": datetime.now(UTC).isoformat(),
            "store_id": store_id(src, create=False),
            "audit_entries": len(log.entries()) if log.path.exists() else 0,
            "files": {str(PurePosixPath(*f.relative_to(src).parts)):
                      {"bytes": f.stat().st_size, "sha256": _sha256(f)} for f in files},
        }  # fmt: skip
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}-", suffix=".tmp")
        os.close(fd)
        try:
            with tarfile.open(tmp, "w:gz") as tar:
                data = json.dumps(manifest, indent=2).encode()
                info = tarfile.TarInfo(_MANIFEST)
                info.size, info.mtime = len(data), int(time.time())
                tar.addfile(info, io.BytesIO(data))
                for f in files:
                    tar.add(f, arcname=str(PurePosixPath(*f.relative_to(src).parts)),
                            recursive=False)  # fmt: skip
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return manifest


def _read_manifest(tar: tarfile.TarFile, name: str) -> dict[str, Any]:
    try:
        member = tar.getmember(_MANIFEST)
        fh = tar.extractfile(member)
        assert fh is not None
        manifest = json.loads(fh.read())
        if manifest.get("format") != "hemolab-store-backup 1" or not isinstance(
            manifest.get("files"), dict
        ):
            raise ValueError
        return manifest
    except (KeyError, ValueError, AssertionError, tarfile.TarError):
        raise StoreError(f"{name}: not a hemolab store backup (no valid {_MANIFEST})") from None


def _safe_name(name: str, backup: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts or "\\" in name:
        raise StoreError(f"{backup}: member {name!r} points outside the store; refused")
    return path


def restore_store(backup: str | os.PathLike[str], store: str | os.PathLike[str], *,
                  force: bool = False, actor: Actor | None = None) -> dict[str, Any]:  # fmt: skip
    """Restore ``backup`` into ``store`` (checked before anything is moved). An existing,
    non-empty ``store`` is refused unless ``force``, then moved aside to
    ``<store>.replaced-<time>``. Returns ``{"files", "moved_aside", "audit"}``."""
    src, dest = Path(backup), Path(store)
    label = src.name
    if not src.is_file():
        raise StoreError(f"backup {str(src)!r} does not exist")
    occupied = dest.exists() and any(dest.iterdir()) if dest.is_dir() else dest.exists()
    if occupied and not force:
        raise StoreError(
            f"{str(dest)!r} is not empty; restore into a new folder, or pass --force to move "
            "the present store aside (it is kept, never deleted)"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.restoring-"))
    try:
        try:
            tar = tarfile.open(src, "r:gz")  # noqa: SIM115  (entered just below)
        except (tarfile.TarError, OSError):
            raise StoreError(f"{label}: not a hemolab store backup (not a .tar.gz)") from None
        with tar:
            manifest = _read_manifest(tar, label)
            listed = manifest["files"]
            seen: set[str] = set()
            for member in tar.getmembers():
                if member.name == _MANIFEST:
                    continue
                path = _safe_name(member.name, label)
                if not member.isfile():
                    raise StoreError(f"{label}: member {member.name!r} is not a plain file")
                if member.name not in listed:
                    raise StoreError(f"{label}: member {member.name!r} is not in the manifest")
                target = staging.joinpath(*path.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                fh = tar.extractfile(member)
                assert fh is not None
                with target.open("wb") as out:
                    shutil.copyfileobj(fh, out)
                if _sha256(target) != listed[member.name]["sha256"]:
                    raise StoreError(f"{label}: {member.name} does not match its SHA-256 (damaged)")
                seen.add(member.name)
            missing = sorted(set(listed) - seen)
            if missing:
                raise StoreError(
                    f"{label}: {len(missing)} listed file(s) missing, e.g. {missing[0]}"
                )
        users = staging / "users.sqlite"
        if users.is_file():  # sessions signed in before the backup do not come back
            import sqlite3

            lite = sqlite3.connect(users)
            try:
                lite.execute("DELETE FROM sessions")
                lite.commit()
            except sqlite3.Error:
                pass
            finally:
                lite.close()
        who = actor if actor is not None else Actor.cli()
        sid = manifest.get("store_id")
        if sid is not None:  # the audit key must be there (it is kept apart, not backed up)
            staged_log = AuditLog(staging)
            staged_log._keys(staged_log._key_dir(create=False), create=False)
        moved = None
        if dest.exists():
            moved = dest.with_name(f"{dest.name}.replaced-{datetime.now(UTC):%Y%m%dT%H%M%S}")
            os.replace(dest, moved)
        os.replace(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    audit = None
    if sid is not None:
        audit = AuditLog(dest).note_restore(
            who, f"from {label} (taken {manifest.get('created', '?')[:19]}, "
            f"{manifest.get('audit_entries', 0)} entries)"
        )  # fmt: skip
    return {"files": len(listed), "moved_aside": None if moved is None else str(moved),
            "audit": audit}  # fmt: skip
