"""The HTML report: one self-contained file (plotly.js inlined once, every figure's JSON and
provenance in the page), readable without a network connection."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from hemolab.reports._data import ExperimentData
from hemolab.reports._figures import FigureSpec
from hemolab.reports._plotly import to_plotly
from hemolab.reports._print import LABEL

__all__ = ["to_html"]

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto;
       max-width: 1100px; padding: 0 1.5em 3em; color: #222; }
.label { position: sticky; top: 0; z-index: 10; background: #a50026; color: #fff;
         font-weight: bold; padding: .45em .8em; text-align: center; letter-spacing: .02em; }
h1 { margin-top: .8em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
.notice { border-left: 4px solid #d62728; background: #fdecea; padding: .6em 1em; }
.notice.incomplete, .notice.running { border-color: #ff7f0e; background: #fff4e5; }
table.record { border-collapse: collapse; font-size: .9em; margin: .5em 0 1em; }
table.record th { text-align: left; padding: .15em 1em .15em 0; color: #555; font-weight: 600;
                  vertical-align: top; }
table.record td { padding: .15em 0; word-break: break-all; }
figure { margin: 1.5em 0 2em; } figcaption { font-size: .9em; color: #444; }
details.provenance { font-size: .85em; margin-top: .4em; }
details.provenance pre { background: #f6f6f6; padding: .6em; overflow-x: auto; }
code { font-size: .95em; } nav ol { line-height: 1.5; }
footer { margin-top: 3em; font-size: .85em; color: #555; }
"""

_BOOT = """
document.querySelectorAll('script.figure-data').forEach(function (node) {
  var fig = JSON.parse(node.textContent);
  var target = document.getElementById('plot-' + node.dataset.figure);
  Plotly.newPlot(target, fig.data, fig.layout, {displaylogo: false, responsive: true});
});
"""


def _json_script(obj: Any, cls: str, key: str) -> str:
    # "<" escaped so that no "</script>" can end the element early; still valid JSON
    text = json.dumps(obj, allow_nan=False, default=_plain).replace("<", "\\u003c")
    return f'<script type="application/json" class="{cls}" data-figure="{key}">{text}</script>'


def _plain(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _row(name: str, value: Any) -> str:
    return f"<tr><th>{html.escape(name)}</th><td>{value}</td></tr>"


def _record_table(data: ExperimentData) -> str:
    r = data.record
    e = html.escape
    rows = [
        _row("kind", e(r.kind)),
        _row("status", e(r.status)),
        _row("command", f"<code>hemolab {e(str(r.spec.get('command', r.kind)))}</code>"),
        _row("model", f"{e(r.model_name or '-')} (hash <code>{e(r.model_hash or '-')}</code>)"),
        _row("seed", e(str(r.seed))),
        _row("solver", e(f"{r.solver or '-'} (rtol {r.rtol}, atol {r.atol})")),
        _row("started", e(r.started.isoformat())),
        _row("ended", e(r.ended.isoformat() if r.ended else "-")),
    ]
    if r.parent:
        rows.append(_row("rerun of", f"<code>{e(r.parent)}</code>"))
    for f in r.files:
        rows.append(_row(f"{f.role} {f.name}", f"<code>sha256 {e(f.sha256)}</code>"))
    versions = ", ".join(f"{k} {v}" for k, v in sorted(r.versions.items()))
    rows.append(_row("versions", e(versions)))
    return '<table class="record">' + "".join(rows) + "</table>"


def _notice(data: ExperimentData, n_figures: int) -> str:
    r = data.record
    e = html.escape
    if r.status == "failed":
        return (
            f'<p class="notice failed">This experiment <strong>failed</strong>: '
            f"{e(r.error or 'no message recorded')}. It has no figures.</p>"
        )
    if r.status in ("incomplete", "running"):
        what = (
            "stopped before it ended (its process died)"
            if r.status == "incomplete"
            else ("is still running")
        )
        return (
            f'<p class="notice {r.status}">This experiment is <strong>{r.status}</strong>: '
            f"it {what}; its results may be partial, so none are drawn.</p>"
        )
    if n_figures == 0:
        return (
            f'<p class="notice">No figures for experiments of kind '
            f"<code>{e(r.kind)}</code>: its record is shown below.</p>"
        )
    return ""


def _figure(spec: FigureSpec) -> str:
    e = html.escape
    key = spec.key
    prov = json.dumps(spec.provenance, indent=1, default=_plain)
    return (
        f'<figure id="fig-{key}"><div class="plot" id="plot-{key}"></div>'
        f"<figcaption><strong>{e(spec.title)}</strong>. {e(spec.caption)}</figcaption>"
        f'<details class="provenance"><summary>provenance</summary><pre>{e(prov)}</pre>'
        "</details>"
        + _json_script(to_plotly(spec), "figure-data", key)
        + _json_script(spec.provenance, "figure-provenance", key)
        + "</figure>"
    )


def to_html(
    experiments: Sequence[tuple[ExperimentData, Sequence[FigureSpec]]],
    *,
    store: str,
    created: datetime | None = None,
) -> str:
    """The report page for ``experiments`` (each with its figures), in the order given."""
    from plotly.offline import get_plotlyjs

    from hemolab import __version__

    e = html.escape
    when = (created or datetime.now(UTC)).isoformat(timespec="seconds")
    ids = [d.record.id for d, _ in experiments]
    toc = "".join(
        f'<li><a href="#exp-{e(d.record.id)}">{e(d.record.id)}</a> — {e(d.record.kind)}: '
        f"{e(d.record.label)} ({e(d.record.status)}, {len(figs)} figure(s))</li>"
        for d, figs in experiments
    )
    sections = []
    for data, figs in experiments:
        r = data.record
        notes = "".join(f'<p class="notice">{e(n)}</p>' for n in data.notes)
        sections.append(
            f'<section class="experiment" id="exp-{e(r.id)}" data-status="{e(r.status)}" '
            f'data-kind="{e(r.kind)}"><h2>{e(r.id)} — {e(r.label or r.kind)}</h2>'
            + _notice(data, len(figs))
            + notes
            + _record_table(data)
            + "".join(_figure(f) for f in figs)
            + "</section>"
        )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>hemolab report: {e(', '.join(ids))}</title><style>{_CSS}</style>"
        f"<script>{get_plotlyjs()}</script></head><body>"
        f'<div class="label" id="research-use">{LABEL}</div>'
        f"<h1>hemolab report</h1><p>{len(ids)} experiment(s) from store <code>{e(store)}</code>, "
        f"made {e(when)} by hemolab {e(__version__)}. Patients appear by pseudonym or virtual "
        "id only.</p>"
        f"<nav><ol>{toc}</ol></nav>" + "".join(sections) + f"<footer>{LABEL}. Every figure "
        "lists its provenance: experiment, command, model hash, inputs and results with their "
        f"SHA-256, seed and versions.</footer><script>{_BOOT}</script></body></html>\n"
    )
