"""``hemolab experiments list|show|rerun``: the experiments recorded in a store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from hemolab._errors import HemolabError
from hemolab.cli._app import _fail, console
from hemolab.cli._options import DEFAULT_STORE_DIR, JsonOut, StoreDir, sub_app

__all__ = ["experiments_app"]

experiments_app = sub_app("The experiments recorded in a store: list them, show one, rerun one.")


def _open(store: Path) -> Any:
    from hemolab.experiments import ExperimentError, ExperimentStore

    if not (store / "experiments.duckdb").is_file():
        raise ExperimentError(
            f"no experiments in {str(store)!r} (record one with hemolab simulate --store)"
        )
    return ExperimentStore(store)


def _audit(store: Path, record: Any, action: str) -> None:
    """An experiment made from stored patients' data is theirs: its use goes on the trail."""
    from hemolab.audit import Actor, AuditLog
    from hemolab.experiments import patients_of

    for patient in sorted(patients_of(record)):
        AuditLog(store).append(Actor.cli(), action, patient, f"experiment {record.id}")


def _when(t: Any) -> str:
    return "" if t is None else t.strftime("%Y-%m-%d %H:%M:%S")


@experiments_app.command("list")
def list_(
    store: StoreDir = DEFAULT_STORE_DIR,
    kind: Annotated[str | None, typer.Option("--kind", help="Only this kind.")] = None,
    status: Annotated[
        str | None,
        typer.Option("--status", help="Only this status: running, complete, failed, incomplete."),
    ] = None,
    json_out: JsonOut = False,
) -> None:
    """List the experiments of a store, oldest first."""
    from hemolab.experiments._store import STATUSES

    try:
        if status is not None and status not in STATUSES:
            raise HemolabError(f"--status must be one of {', '.join(STATUSES)}, got {status!r}")
        records = _open(store).list(kind=kind, status=status)
    except HemolabError as exc:
        raise _fail(str(exc)) from None
    if json_out:
        rows = [
            {
                "id": r.id,
                "kind": r.kind,
                "label": r.label,
                "status": r.status,
                "started": r.to_json()["started"],
                "ended": r.to_json()["ended"],
                "model": r.model_name,
                "parent": r.parent,
                "n_results": len(r.results),
            }
            for r in records
        ]
        print(json.dumps({"store": str(store), "experiments": rows}, indent=2))
        return
    table = Table(title=f"experiments in {escape(str(store))}")
    for col in ("id", "kind", "status", "started", "model", "label"):
        table.add_column(col)
    for r in records:
        style = {"failed": "red", "incomplete": "yellow", "running": "cyan"}.get(r.status, "")
        table.add_row(
            r.id,
            r.kind,
            f"[{style}]{r.status}[/]" if style else r.status,
            _when(r.started),
            escape(r.model_name or ""),
            escape(r.label),
        )
    console.print(table)


@experiments_app.command("show")
def show(
    experiment_id: Annotated[str, typer.Argument(help="Experiment id (E...).")],
    store: StoreDir = DEFAULT_STORE_DIR,
    json_out: JsonOut = False,
) -> None:
    """Show one experiment: model, settings, versions, inputs and results with their hashes."""
    try:
        record = _open(store).get(experiment_id)
        _audit(store, record, "show experiment")
    except HemolabError as exc:
        raise _fail(str(exc)) from None
    doc = record.to_json()
    if json_out:
        print(json.dumps(doc, indent=2))
        return
    console.print(f"[bold]{record.id}[/] {escape(record.kind)}: {escape(record.label)}")
    error = f" ({escape(record.error)})" if record.error else ""
    console.print(f"  status   {record.status}{error}")
    console.print(f"  started  {_when(record.started)}   ended {_when(record.ended) or '-'}")
    model = escape(record.model_name or "-")
    console.print(f"  model    {model} (hash {record.model_hash or '-'})")
    solver = escape(record.solver or "-")
    console.print(f"  solver   {solver} rtol {record.rtol} atol {record.atol}")
    console.print(f"  seed     {record.seed}   parent {record.parent or '-'}")
    console.print(f"  spec     {escape(json.dumps(record.spec, sort_keys=True))}", soft_wrap=True)
    versions = ", ".join(f"{k} {v}" for k, v in sorted(record.versions.items()))
    console.print(f"  versions {escape(versions)}", soft_wrap=True)
    for f in record.files:
        rows = f" {f.n_rows} rows" if f.n_rows is not None else ""
        console.print(f"  {f.role:<6}   {escape(f.name)} {f.bytes} B{rows} sha256 {f.sha256[:16]}")


@experiments_app.command("rerun")
def rerun(
    experiment_id: Annotated[str, typer.Argument(help="Experiment id (E...).")],
    store: StoreDir = DEFAULT_STORE_DIR,
    json_out: JsonOut = False,
) -> None:
    """Run an experiment again from its record (stored inputs, settings and seed) as a new
    experiment, and compare its results with the original's (exit 1 if they differ)."""
    from hemolab.experiments import rerun as run_again

    try:
        experiments = _open(store)
        _audit(store, experiments.get(experiment_id), "rerun experiment")
        report = run_again(experiments, experiment_id)
    except HemolabError as exc:
        raise _fail(str(exc)) from None
    if json_out:
        print(json.dumps(report.to_json(), indent=2))
    else:
        verdict = "identical results" if report.identical else "[red]results differ[/]"
        console.print(f"{report.rerun.id} reran {report.original.id}: {verdict}")
        for name, r in report.results.items():
            mark = "same" if r["identical"] else "differs"
            console.print(f"  {escape(name)}: {mark}", highlight=False)
    if not report.identical:
        raise typer.Exit(1)
