"""Experiments in a store directory: a DuckDB catalogue and files that are never half-written.

Layout, beside the patient database of the same store::

    experiments.duckdb                  the catalogue (one row per experiment, one per file)
    experiments/<id>/inputs/<name>      copies of every input (model source, datasets)
    experiments/<id>/results/<name>     results (Parquet), written to a temporary name and
                                        renamed, then entered in the catalogue

An experiment is entered as ``running`` before it starts, and marked ``complete`` or
``failed`` when it ends. A process killed in between (SIGKILL, power loss) leaves it
``running`` with a process that no longer exists: readers report it as ``incomplete``, and
the next experiment started in the store marks it so. A result is listed only once its file
is complete, so every listed result can be read, and earlier experiments are never touched.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import platform
import re
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hemolab.experiments._catalogue import Catalogue, ExperimentError

__all__ = [
    "Experiment",
    "ExperimentRecord",
    "ExperimentStore",
    "StoredFile",
    "content_sha256",
    "patients_of",
]

STATUSES = ("running", "complete", "failed", "incomplete")
_CATALOGUE = "experiments.duckdb"
_FOLDER = "experiments"
_VERSIONED = ("hemolab", "jax", "jaxlib", "numpy", "scipy", "pyarrow", "duckdb")


@dataclass(frozen=True)
class StoredFile:
    """An input or result of an experiment: where it is and what it holds."""

    role: str  # "input" or "result"
    name: str
    path: Path
    bytes: int
    sha256: str  # of the file's bytes
    content_sha256: str | None = None  # of a Parquet table's rows (metadata excluded)
    n_rows: int | None = None


@dataclass(frozen=True)
class ExperimentRecord:
    """What the catalogue holds about one experiment."""

    id: str
    kind: str
    label: str
    status: str  # running, complete, failed, incomplete (its process died while running)
    started: datetime
    ended: datetime | None
    host: str
    pid: int
    actor: str
    model_name: str | None
    model_hash: str | None
    seed: int | None
    solver: str | None
    rtol: float | None
    atol: float | None
    spec: dict[str, Any]
    versions: dict[str, str]
    error: str | None
    parent: str | None
    files: tuple[StoredFile, ...] = field(default=())

    @property
    def inputs(self) -> dict[str, StoredFile]:
        return {f.name: f for f in self.files if f.role == "input"}

    @property
    def results(self) -> dict[str, StoredFile]:
        return {f.name: f for f in self.files if f.role == "result"}

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary (``hemolab experiments show --json``)."""

        def stamp(t: datetime | None) -> str | None:
            return t.astimezone(UTC).isoformat() if t is not None else None

        def file(f: StoredFile) -> dict[str, Any]:
            return {
                "name": f.name,
                "path": str(f.path),
                "bytes": f.bytes,
                "sha256": f.sha256,
                "content_sha256": f.content_sha256,
                "rows": f.n_rows,
            }

        return {
            "id": self.id,
            "kind": self.kind,
            "label": self.label,
            "status": self.status,
            "started": stamp(self.started),
            "ended": stamp(self.ended),
            "host": self.host,
            "actor": self.actor,
            "model": {"name": self.model_name, "hash": self.model_hash},
            "seed": self.seed,
            "solver": {"name": self.solver, "rtol": self.rtol, "atol": self.atol},
            "spec": self.spec,
            "versions": self.versions,
            "error": self.error,
            "parent": self.parent,
            "inputs": [file(f) for f in self.files if f.role == "input"],
            "results": [file(f) for f in self.files if f.role == "result"],
        }


_PSEUDONYM = re.compile(rb"(?<![0-9A-Za-z])P[0-9A-F]{10}(?![0-9A-Za-z])")
_TEXT_SUFFIXES = (".json", ".toml", ".csv", ".txt", ".ant", ".xml", ".py")


def patients_of(record: ExperimentRecord) -> set[str]:
    """The stored patients an experiment was made from: the pseudonyms in its spec and in its
    text inputs (a fit file names its patient). Such an experiment is that patient's data:
    who may see it, and its reading audited, follow the patient (design note 028)."""
    found = set(_PSEUDONYM.findall(json.dumps(record.spec).encode()))
    for f in record.inputs.values():
        if f.path.suffix.lower() in _TEXT_SUFFIXES:
            try:
                found |= set(_PSEUDONYM.findall(f.path.read_bytes()))
            except OSError:
                continue
    return {p.decode() for p in found}


def content_sha256(path: Path) -> tuple[str, int]:
    """SHA-256 of a Parquet file's rows and schema without its key-value metadata (creation
    time, host) and without its ``run_id`` column (the experiment's own id, DATA-FORMATS §C),
    and its row count: what "identical results" means for a rerun."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    if "run_id" in table.column_names:
        table = table.drop_columns(["run_id"])
    fields = []
    for f in table.schema:
        kind = f.type.value_type if pa.types.is_dictionary(f.type) else f.type
        fields.append(pa.field(f.name, kind, f.nullable))
    table = table.cast(pa.schema(fields)).replace_schema_metadata(None).combine_chunks()
    h = hashlib.sha256()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    h.update(sink.getvalue().to_pybytes())
    return h.hexdigest(), table.num_rows


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _process_start(pid: int) -> str:
    """When process ``pid`` started (Linux clock ticks since boot), to tell a dead process from
    a new one with the same id; "" where /proc is not available."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            text = fh.read().decode(errors="replace")
    except OSError:
        return ""
    return text.rsplit(")", 1)[-1].split()[19]


def _alive(pid: int, started: str) -> bool:
    if started:
        return _process_start(pid) == started
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def _actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def _new_id() -> str:
    now = datetime.now(UTC)
    return f"E{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def _write_atomically(src: Path | None, data: bytes | None, dest: Path) -> None:
    """Copy ``src`` (or write ``data``) to ``dest`` through a temporary file in its folder, made
    durable before the rename: ``dest`` is absent or complete, never partial."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            if src is not None:
                with open(src, "rb") as fh:
                    shutil.copyfileobj(fh, out, 1 << 20)
            else:
                out.write(data or b"")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(dest.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


_NAME_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def _check_name(name: str, what: str) -> None:
    if not name or name.startswith(".") or not set(name) <= _NAME_OK:
        raise ExperimentError(
            f"{what} name {name!r} must be letters, digits, '.', '_' or '-' (not starting with '.')"
        )


class ExperimentStore:
    """The experiments of a store directory (created if needed).

    Examples
    --------
    >>> import tempfile, hemolab as hl
    >>> store = hl.ExperimentStore(tempfile.mkdtemp())
    >>> with store.start("note", label="an empty experiment", spec={"x": 1}) as exp:
    ...     _ = exp.add_input("note.txt", data=b"hello")
    >>> store.get(exp.id).status
    'complete'
    """

    def __init__(self, path: str | os.PathLike[str], *, lock_timeout_s: float = 120.0) -> None:
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise ExperimentError(f"store {str(self.path)!r} is a file, not a directory")
        self.path.mkdir(parents=True, exist_ok=True)
        self.catalogue = Catalogue(self.path / _CATALOGUE, timeout_s=lock_timeout_s)

    def folder(self, experiment_id: str) -> Path:
        return self.path / _FOLDER / experiment_id

    @contextmanager
    def start(self, kind: str, **fields: Any) -> Iterator[Experiment]:
        """Enter an experiment as running (``fields`` as for :meth:`begin`), yield it, then mark
        it complete, or failed with the error's message when the block raises (the error
        propagates)."""
        exp = self.begin(kind, **fields)
        try:
            yield exp
        except BaseException as exc:
            exp.fail(exc)
            raise
        exp.finish()

    def begin(
        self,
        kind: str,
        *,
        label: str = "",
        spec: Mapping[str, Any] | None = None,
        model: Any = None,
        seed: int | None = None,
        solver: str | None = None,
        rtol: float | None = None,
        atol: float | None = None,
        parent: str | None = None,
    ) -> Experiment:
        """Enter an experiment as running; end it with its ``finish`` or ``fail`` (or use
        :meth:`start`, which does). ``spec`` is what a rerun needs (plain JSON), ``model`` the
        model run (its name and hash are recorded), ``parent`` the experiment this reruns."""
        _check_name(kind, "experiment kind")
        try:
            spec_text = json.dumps(dict(spec or {}), sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ExperimentError(f"an experiment's spec must be plain JSON: {exc}") from None
        model_name = model_hash = None
        if model is not None:
            from hemolab.compile import model_hash as hash_of

            model_name, model_hash = model.name, hash_of(model)
        exp_id, pid = _new_id(), os.getpid()
        row = [
            exp_id,
            kind,
            label,
            "running",
            datetime.now(UTC),
            None,
            socket.gethostname(),
            pid,
            _process_start(pid),
            _actor(),
            model_name,
            model_hash,
            seed,
            solver,
            rtol,
            atol,
            spec_text,
            json.dumps(_versions(), sort_keys=True),
            None,
            parent,
        ]
        host = socket.gethostname()

        def enter(db: Any) -> None:
            # experiments of this host whose process died while running: now incomplete
            stale = db.execute(
                "SELECT id, pid, process_start FROM experiments "
                "WHERE status = 'running' AND host = ?",
                [host],
            ).fetchall()
            for sid, spid, sstart in stale:
                if not _alive(spid, sstart):
                    db.execute("UPDATE experiments SET status = 'incomplete' WHERE id = ?", [sid])
            db.execute(f"INSERT INTO experiments VALUES ({', '.join('?' * len(row))})", row)

        self.folder(exp_id).mkdir(parents=True, exist_ok=False)
        self.catalogue.write(enter)
        return Experiment(self, exp_id, kind)

    # --- reading -------------------------------------------------------------------------

    def list(self, *, kind: str | None = None, status: str | None = None) -> list[ExperimentRecord]:
        """Every experiment (oldest first), optionally of one kind or status."""
        records = self.catalogue.read(_read_records)
        return [
            r
            for r in records
            if (kind is None or r.kind == kind) and (status is None or r.status == status)
        ]

    def get(self, experiment_id: str) -> ExperimentRecord:
        """One experiment by id; an unknown id is an :class:`ExperimentError`."""
        found = self.catalogue.read(lambda db: _read_records(db, experiment_id))
        if not found:
            raise ExperimentError(
                f"no experiment {experiment_id!r} in store {str(self.path)!r} "
                "(hemolab experiments list shows them)"
            )
        return found[0]

    def mentioning(self, text: str) -> list[str]:
        """Ids of the experiments whose spec, inputs or results contain ``text`` (a patient's
        pseudonym: the experiments made from that patient's data)."""
        needle = text.encode()
        found = []
        for record in self.list():
            hit = needle in json.dumps(record.spec).encode()
            for f in (*record.inputs.values(), *record.results.values()):
                if hit:
                    break
                try:
                    hit = needle in f.path.read_bytes()
                except OSError:
                    continue
            if hit:
                found.append(record.id)
        return found

    def delete(self, experiment_ids: list[str]) -> None:
        """Remove experiments: their catalogue rows in one transaction (nothing lists them
        any more), then their folders."""
        ids = list(experiment_ids)
        if not ids:
            return

        def drop(db: Any) -> None:
            marks = ", ".join("?" * len(ids))
            db.execute(f"DELETE FROM experiment_files WHERE id IN ({marks})", ids)
            db.execute(f"DELETE FROM experiments WHERE id IN ({marks})", ids)

        self.catalogue.write(drop)
        for eid in ids:
            folder = self.folder(eid)
            if folder.exists():
                doomed = folder.with_name(f".deleted-{eid}")
                os.replace(folder, doomed)
                shutil.rmtree(doomed)


_COLUMNS = (
    "id",
    "kind",
    "label",
    "status",
    "started",
    "ended",
    "host",
    "pid",
    "process_start",
    "actor",
    "model_name",
    "model_hash",
    "seed",
    "solver",
    "rtol",
    "atol",
    "spec",
    "versions",
    "error",
    "parent",
)


def _read_records(db: Any, experiment_id: str | None = None) -> list[ExperimentRecord]:
    where, args = ("WHERE id = ?", [experiment_id]) if experiment_id else ("", [])
    sql = f"SELECT {', '.join(_COLUMNS)} FROM experiments {where} ORDER BY started, id"
    rows = db.execute(sql, args).fetchall()
    files: dict[str, list[StoredFile]] = {}
    fsql = (
        "SELECT id, role, name, path, bytes, sha256, content_sha256, n_rows FROM experiment_files"
    )
    for fid, role, name, path, size, sha, csha, n in db.execute(
        fsql + (" WHERE id = ?" if experiment_id else "") + " ORDER BY id, role, name", args
    ).fetchall():
        files.setdefault(fid, []).append(StoredFile(role, name, Path(path), size, sha, csha, n))
    here = socket.gethostname()
    out = []
    for row in rows:
        d: dict[str, Any] = dict(zip(_COLUMNS, row, strict=True))
        started = d.pop("process_start")
        if d["status"] == "running" and d["host"] == here and not _alive(d["pid"], started):
            d["status"] = "incomplete"
        d.update(
            spec=json.loads(d["spec"]),
            versions=json.loads(d["versions"]),
            files=tuple(files.get(d["id"], ())),
        )
        out.append(ExperimentRecord(**d))
    return out


class Experiment:
    """A running experiment: add its inputs and results, then it is finished by the store's
    ``start`` block (or ``finish``/``fail``)."""

    def __init__(self, store: ExperimentStore, experiment_id: str, kind: str) -> None:
        self.store = store
        self.id = experiment_id
        self.kind = kind
        self.folder = store.folder(experiment_id)
        self._ended = False

    def add_input(
        self, name: str, source: str | os.PathLike[str] | None = None, *, data: bytes | None = None
    ) -> StoredFile:
        """Keep a copy of an input (a file, or bytes) with its hash: a rerun reads the copy."""
        return self._add("input", name, None if source is None else Path(source), data)

    def add_result(self, name: str, source: str | os.PathLike[str]) -> StoredFile:
        """Keep a result file (Parquet gets a content hash of its rows, for reruns)."""
        return self._add("result", name, Path(source), None)

    def _add(self, role: str, name: str, src: Path | None, data: bytes | None) -> StoredFile:
        _check_name(name, role)
        if (src is None) == (data is None):
            raise ExperimentError(f"{role} {name!r}: give a file or bytes, exactly one")
        if src is not None and not src.is_file():
            raise ExperimentError(f"{role} {name!r}: {str(src)!r} is not a file")
        dest = self.folder / f"{role}s" / name
        _write_atomically(src, data, dest)
        csha = n_rows = None
        if dest.suffix.lower() in (".parquet", ".pq"):
            csha, n_rows = content_sha256(dest)
        stored = StoredFile(role, name, dest, dest.stat().st_size, _sha256(dest), csha, n_rows)
        row = [self.id, role, name, str(dest), stored.bytes, stored.sha256, csha, n_rows]
        sql = "INSERT OR REPLACE INTO experiment_files VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        self.store.catalogue.write(lambda db: db.execute(sql, row))
        return stored

    def finish(self) -> None:
        self._end("complete", None)

    def fail(self, error: BaseException | str) -> None:
        if isinstance(error, KeyboardInterrupt):
            text = "interrupted"
        elif isinstance(error, BaseException):
            text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        else:
            text = error
        self._end("failed", text[:2000])

    def _end(self, status: str, error: str | None) -> None:
        if self._ended:
            return
        self._ended = True
        sql = "UPDATE experiments SET status = ?, ended = ?, error = ? WHERE id = ?"
        args = [status, datetime.now(UTC), error, self.id]
        self.store.catalogue.write(lambda db: db.execute(sql, args))
