"""Rerunning a recorded experiment from its record alone, and checking that it reproduces.

Each experiment kind names the function that runs it again from a record (its spec and its
stored inputs, never the original files), as ``"module:function"`` so that reading a store
does not import what runs it. A rerun is an experiment of its own whose ``parent`` is the
original; it is identical when every result of the original has a result of the same name
with the same rows (:func:`content_sha256`: values, schema and order, not the file's
creation time or host).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import Any

from hemolab.experiments._catalogue import ExperimentError
from hemolab.experiments._store import ExperimentRecord, ExperimentStore, _sha256

__all__ = ["RerunReport", "register_kind", "rerun"]

# kind -> "module:function(store, record) -> new experiment id"
_KINDS: dict[str, str] = {
    "simulate": "hemolab.cli._record:rerun_simulate",
    "protocol": "hemolab.cli._run:rerun_protocol",
    "search": "hemolab.cli._search:rerun_search",
    "forecast": "hemolab.cli._record_patient:rerun_forecast",
    "calibrate": "hemolab.cli._record_patient:rerun_calibrate",  # refuses, saying why
}


def register_kind(kind: str, runner: str) -> None:
    """Name the function (``"package.module:function"``) that reruns experiments of ``kind``:
    it receives the store and the record, runs the experiment again as a new one whose
    ``parent`` is the record's id, and returns the new id."""
    if ":" not in runner:
        raise ExperimentError(f"runner {runner!r} must be 'module:function'")
    _KINDS[kind] = runner


@dataclass(frozen=True)
class RerunReport:
    """The original experiment, its rerun, and how each result compares."""

    original: ExperimentRecord
    rerun: ExperimentRecord
    results: dict[str, dict[str, Any]]  # name -> {"original", "rerun", "identical"}

    @property
    def identical(self) -> bool:
        return bool(self.results) and all(r["identical"] for r in self.results.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "original": self.original.id,
            "rerun": self.rerun.id,
            "status": self.rerun.status,
            "identical": self.identical,
            "results": self.results,
        }


def rerun(store: ExperimentStore, experiment_id: str) -> RerunReport:
    """Run experiment ``experiment_id`` again from its record and compare the results."""
    original = store.get(experiment_id)
    if original.status != "complete":
        raise ExperimentError(
            f"experiment {experiment_id} is {original.status}: only a complete experiment "
            "can be rerun and compared"
        )
    target = _KINDS.get(original.kind)
    if target is None:
        raise ExperimentError(
            f"experiment {experiment_id} is of kind {original.kind!r}, which hemolab cannot "
            f"rerun (known kinds: {', '.join(sorted(_KINDS))})"
        )
    for f in original.inputs.values():
        if not f.path.is_file():
            raise ExperimentError(
                f"experiment {experiment_id}: its stored input {f.name!r} is missing "
                f"({str(f.path)!r})"
            )
        if _sha256(f.path) != f.sha256:
            raise ExperimentError(
                f"experiment {experiment_id}: its stored input {f.name!r} was modified since "
                "it was recorded (SHA-256 differs); refusing to rerun"
            )
    module, _, name = target.partition(":")
    new_id = getattr(import_module(module), name)(store, original)
    again = store.get(new_id)
    compared: dict[str, dict[str, Any]] = {}
    for rname, f in original.results.items():
        g = again.results.get(rname)
        old = f.content_sha256 or f.sha256
        new = None if g is None else (g.content_sha256 or g.sha256)
        compared[rname] = {"original": old, "rerun": new, "identical": new == old}
    return RerunReport(original, again, compared)
