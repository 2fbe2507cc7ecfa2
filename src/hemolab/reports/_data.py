"""An experiment's record and result tables read into plain data, for the figures.

Reading only: a store is opened read-only (it must exist, with its catalogue), every result
table is read whole (they are summaries or one population's trajectories), and a stored
protocol or search file is parsed from the experiment's own copy. Nothing here writes.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hemolab._errors import HemolabError
from hemolab.experiments import ExperimentRecord, ExperimentStore

__all__ = ["ExperimentData", "ReportError", "open_store", "read_experiment"]


class ReportError(HemolabError):
    """A report cannot be made (no store, unknown experiment, nothing to draw, an output path
    that cannot be written); the message names the store, experiment or file."""


@dataclass(frozen=True)
class ProtocolInfo:
    """What the figures need of a protocol: phases, doses, monitoring and limits."""

    name: str
    time_unit: str
    end: float
    phases: list[dict[str, Any]]  # name, start, end, doses: [(time, amount, cmt, duration)]
    observables: list[str]
    normal: dict[str, tuple[float, float]]
    limits: list[dict[str, Any]]  # name, when, longer_than, max_probability


@dataclass(frozen=True)
class SearchInfo:
    """A search's variables (in file order) and objective."""

    name: str
    variables: list[str]
    metric: str
    sense: str  # "maximise" or "minimise"
    method: str


@dataclass(frozen=True)
class ExperimentData:
    """One experiment for a report: its record, its Parquet results as tables (with their
    key-value metadata), and its parsed protocol or search when it has one."""

    record: ExperimentRecord
    tables: dict[str, Any] = field(default_factory=dict)  # result name -> pandas DataFrame
    metadata: dict[str, dict[str, str]] = field(default_factory=dict)
    protocol: ProtocolInfo | None = None
    search: SearchInfo | None = None
    notes: list[str] = field(default_factory=list)  # what could not be read, and why

    @property
    def drawable(self) -> bool:
        return self.record.status == "complete"


def open_store(path: str | os.PathLike[str]) -> ExperimentStore:
    """The experiment store at ``path``, which must already be one (never created here)."""
    p = Path(path)
    if not p.exists():
        raise ReportError(f"store {str(p)!r} does not exist (give --store DIR of a hemolab store)")
    if not p.is_dir():
        raise ReportError(f"store {str(p)!r} is a file, not a store directory")
    if not (p / "experiments.duckdb").is_file():
        raise ReportError(
            f"{str(p)!r} is not an experiment store (no experiments.duckdb): record experiments "
            "with hemolab simulate|run|search --store DIR"
        )
    return ExperimentStore(p)


def read_experiment(store: ExperimentStore, experiment_id: str) -> ExperimentData:
    """The record of ``experiment_id`` with its result tables and protocol or search."""
    import pyarrow.parquet as pq

    record = store.get(experiment_id)
    tables: dict[str, Any] = {}
    metadata: dict[str, dict[str, str]] = {}
    notes: list[str] = []
    if record.status == "complete":
        for name, f in sorted(record.results.items()):
            if f.path.suffix.lower() not in (".parquet", ".pq"):
                continue
            try:
                table = pq.read_table(f.path)
            except (OSError, ValueError) as exc:
                raise ReportError(
                    f"experiment {record.id}: result {name!r} ({str(f.path)!r}) cannot be "
                    f"read: {exc}"
                ) from None
            meta = table.schema.metadata or {}
            metadata[name] = {
                k.decode(errors="replace"): v.decode(errors="replace")
                for k, v in meta.items()
                if k != b"pandas"
            }
            tables[name] = table.to_pandas()
    protocol = search = None
    inputs = record.inputs
    if record.kind in ("protocol", "search") and "protocol.toml" in inputs:
        time_unit = _time_unit(metadata, record)
        values = _template_values(record)
        if record.kind == "search" and "points.parquet" in tables:
            values = None  # a template: its phases are drawn for the chosen point only
        if values is not None:
            try:
                protocol = _protocol_info(inputs["protocol.toml"].path, time_unit, values)
            except HemolabError as exc:
                notes.append(f"the stored protocol could not be read: {exc}")
    if record.kind == "search" and "space.toml" in inputs:
        try:
            search = _search_info(inputs["space.toml"].path)
        except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
            notes.append(f"the stored search file could not be read: {exc}")
    return ExperimentData(record, tables, metadata, protocol, search, notes)


def chosen_protocol(data: ExperimentData, point: dict[str, Any]) -> ProtocolInfo | None:
    """A search's stored template filled with ``point`` (None when it cannot be read)."""
    inputs = data.record.inputs
    if "protocol.toml" not in inputs:
        return None
    try:
        return _protocol_info(
            inputs["protocol.toml"].path, _time_unit(data.metadata, data.record), point
        )
    except HemolabError:
        return None


def _time_unit(metadata: dict[str, dict[str, str]], record: ExperimentRecord) -> str | None:
    for meta in metadata.values():
        if "hemolab.time_unit" in meta:
            return meta["hemolab.time_unit"]
    if record.model_name:
        from hemolab.library import get_model, list_models

        if record.model_name in list_models():
            return get_model(record.model_name).time_unit
    return None


def _template_values(record: ExperimentRecord) -> dict[str, Any]:
    """``--set NAME=VALUE`` of a recorded run (numbers as numbers)."""
    out: dict[str, Any] = {}
    for item in record.spec.get("options", {}).get("values", []) or []:
        name, _, text = str(item).partition("=")
        try:
            number = float(text)
        except ValueError:
            out[name.strip()] = text.strip()
            continue
        out[name.strip()] = int(number) if number.is_integer() and "." not in text else number
    return out


def _protocol_info(path: Path, time_unit: str | None, values: dict[str, Any]) -> ProtocolInfo:
    from hemolab.protocols import read_protocol

    pf = read_protocol(path, time_unit=time_unit, values=values or None)
    p = pf.protocol
    phases = []
    for ph, row in zip(p.phases, p.phase_table(), strict=True):
        start = float(row["start"])  # pyright: ignore[reportArgumentType]
        doses = []
        for d in ph.doses:
            for k in range(d.count):
                t = start + d.start + k * (d.every or 0.0)
                doses.append((t, float(d.amount), d.cmt, float(d.duration)))
        phases.append(
            {"name": ph.name, "start": start, "end": float(row["end"]), "doses": doses}  # pyright: ignore[reportArgumentType]
        )
    limits = [
        {
            "name": lim.name,
            "when": lim.when,
            "longer_than": lim.longer_than,
            "max_probability": float(lim.max_probability),
        }
        for lim in p.limits
    ]
    return ProtocolInfo(
        name=p.name,
        time_unit=time_unit or "",
        end=float(p.end),
        phases=phases,
        observables=list(p.monitoring.observables),
        normal={k: (float(v[0]), float(v[1])) for k, v in p.monitoring.normal.items()},
        limits=limits,
    )


def _search_info(path: Path) -> SearchInfo:
    doc = tomllib.loads(path.read_text(encoding="utf-8", errors="replace"))
    objective = doc.get("objective", {})
    sense = "maximise" if "maximise" in objective or "maximize" in objective else "minimise"
    metric = next(
        (
            str(objective[k])
            for k in ("maximise", "maximize", "minimise", "minimize")
            if k in objective
        ),
        "",
    )
    section = doc.get("search", {})
    return SearchInfo(
        name=str(section.get("name", path.stem)),
        variables=list(doc.get("variables", {})),
        metric=metric,
        sense=sense,
        method=str(section.get("method", "")),
    )
