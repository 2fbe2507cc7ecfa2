"""The experiment store: every run recorded (model, inputs, seed, solver, versions, results)
so that it can be found, shown and reproduced; crash-safe, shared by several processes."""

from hemolab.experiments._catalogue import ExperimentError as ExperimentError
from hemolab.experiments._rerun import (
    RerunReport as RerunReport,
    register_kind as register_kind,
    rerun as rerun,
)
from hemolab.experiments._store import (
    Experiment as Experiment,
    ExperimentRecord as ExperimentRecord,
    ExperimentStore as ExperimentStore,
    StoredFile as StoredFile,
    content_sha256 as content_sha256,
    patients_of as patients_of,
)

__all__ = [
    "Experiment",
    "ExperimentError",
    "ExperimentRecord",
    "ExperimentStore",
    "RerunReport",
    "StoredFile",
    "content_sha256",
    "patients_of",
    "register_kind",
    "rerun",
]
