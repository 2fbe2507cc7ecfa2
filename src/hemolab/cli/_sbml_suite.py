"""``hemolab sbml-suite``: the SBML Test Suite conformance runner on the command line.

Registered on the app at the bottom of ``_app.py``; the app's helpers are imported inside the
command, so either module can be imported first.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

_SHOWN = 50  # failed/unsupported cases listed in the table


def sbml_suite(
    cases_dir: Annotated[
        Path, typer.Argument(help="Folder of SBML Test Suite case folders (NNNNN/).")
    ],
    ids: Annotated[
        Path | None,
        typer.Option("--ids", help="Only these cases: a file with one id a line (# comments)."),
    ] = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write id,status,reason,seconds (CSV).")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    workers: Annotated[
        int, typer.Option("--workers", help="Spawned worker processes (1: in this process).")
    ] = 2,
) -> None:
    """Run SBML Test Suite cases through hemolab's SBML import and report conformance.

    A case passes when every listed variable is within absolute + relative * |expected| at
    every output time. Failures are reported, not errors: the exit status is 0 whenever the
    run completes (2 for bad input).
    """
    from hemolab._errors import HemolabError
    from hemolab.cli._app import _fail
    from hemolab.sbml import _suite

    try:
        if workers < 1:
            raise HemolabError(f"--workers must be >= 1, got {workers}")
        if ids is not None and not ids.is_file():
            raise HemolabError(f"ids file {str(ids)!r} does not exist or is not a file")
        cases = _suite.find_cases(cases_dir, ids)
        with _Progress(quiet=json_out) as progress:
            result = _suite.run_suite(cases, workers=workers, progress=progress)
    except HemolabError as exc:
        raise _fail(str(exc)) from None
    if report is not None:
        try:
            result.write_csv(report)
        except OSError as exc:
            raise _fail(f"cannot write {str(report)!r}: {exc.strerror or exc}") from None
    if json_out:
        print(json.dumps(result.to_json(), indent=2))
        return
    _print_report(result, report)


def _print_report(result: Any, report: Path | None) -> None:
    from rich.markup import escape
    from rich.table import Table

    from hemolab.cli._app import console

    counts = Table(title="SBML Test Suite")
    counts.add_column("status")
    counts.add_column("cases", justify="right")
    for status in ("passed", "failed", "unsupported"):
        counts.add_row(status, str(getattr(result, status)))
    counts.add_row("total", str(result.total))
    console.print(counts)
    console.print(
        f"pass rate {100 * result.pass_rate:.1f} % ({result.passed}/{result.total}) "
        f"in {result.seconds:.1f} s",
        highlight=False,
    )
    bad = [r for r in result.results if r.status != "passed"]
    if bad:
        table = Table(title="failed and unsupported cases")
        table.add_column("id", no_wrap=True)
        table.add_column("status", no_wrap=True)
        table.add_column("reason", overflow="fold")
        for r in bad[:_SHOWN]:
            table.add_row(r.id, r.status, escape(r.reason or ""))
        console.print(table)
        if len(bad) > _SHOWN:
            more = f"... and {len(bad) - _SHOWN} more"
            console.print(more + (" (all in the report)" if report is not None else ""))
    if report is not None:
        console.print(f"written: {report}", soft_wrap=True, highlight=False)


class _Progress:
    """Rich progress bar on stderr fed by ``run_suite``'s callback (silent when quiet)."""

    def __init__(self, *, quiet: bool):
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        from hemolab.cli._app import err_console

        self.bar = Progress(
            TextColumn("sbml-suite"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} cases"),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
            disable=quiet,
        )
        self.task: Any = None

    def __enter__(self) -> _Progress:
        self.bar.__enter__()
        self.task = self.bar.add_task("cases", total=None)
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(None, None, None)

    def __call__(self, done: int, total: int) -> None:
        self.bar.update(self.task, completed=done, total=total)
