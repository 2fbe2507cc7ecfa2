"""``hemolab report EXPERIMENT_ID... --out report.html``: recorded experiments as one
self-contained HTML report (interactive plotly figures, each with its provenance), and
optionally PNG and PDF versions for printing (matplotlib)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from hemolab._errors import HemolabError

__all__ = ["report"]


def report(
    experiment_ids: Annotated[
        list[str],
        typer.Argument(
            metavar="EXPERIMENT_ID",
            help="Experiment id(s) (E...); several make one story, in order.",
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", help="The report (.html), one self-contained file.")
    ],
    store: Annotated[Path, typer.Option("--store", help="Store directory.")] = Path(
        "hemolab-store"
    ),
    png: Annotated[
        Path | None, typer.Option("--png", help="Also write one PNG per figure into this folder.")
    ] = None,
    pdf: Annotated[
        Path | None, typer.Option("--pdf", help="Also write every figure, a page each, to a PDF.")
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the written paths and figure titles as JSON.")
    ] = False,
) -> None:
    """Write a report of EXPERIMENT_ID(s) recorded in a store (hemolab experiments list).

    One HTML file that opens without a network (plotly.js inlined): per experiment its
    figures (bands and fan charts, CTCAE grade timelines, time-to-threshold distributions,
    phase bars, search convergence and the chosen protocol against the alternatives), each
    with its provenance (model hash, inputs and results with SHA-256, seed, versions). A
    failed or incomplete experiment gets a section saying so. Every page carries the label
    "research use — not for clinical decisions". Exits 2 on bad input (unknown id, not a
    store, an output path that cannot be written, nothing to draw).
    """
    from hemolab.cli._app import _fail, console
    from hemolab.reports import check_outputs, make_report, save_report

    try:
        check_outputs(out, png, pdf)
        made = make_report(store, experiment_ids)
        written = save_report(made, out, png_dir=png, pdf=pdf)
    except HemolabError as exc:
        raise _fail(str(exc)) from None
    doc = made.to_json() | {
        "out": str(written["html"]),
        "png": [str(p) for p in written["png"]],
        "pdf": None if written["pdf"] is None else str(written["pdf"]),
    }
    if json_out:
        print(json.dumps(doc, indent=2))
        return
    n = len(made.figures)
    console.print(
        f"report of {len(made.experiments)} experiment(s), {n} figure(s): {doc['out']}",
        soft_wrap=True,
        highlight=False,
    )
    for d, _ in made.experiments:
        if d.record.status != "complete":
            console.print(f"  {d.record.id}: {d.record.status} (no figures)", highlight=False)
    if doc["png"]:
        console.print(f"PNG: {len(doc['png'])} file(s) in {png}", soft_wrap=True, highlight=False)
    if doc["pdf"]:
        console.print(f"PDF: {doc['pdf']}", soft_wrap=True, highlight=False)
