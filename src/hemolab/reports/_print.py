"""The print versions of a report's figures (matplotlib, Agg backend): PNG bytes per figure
and one PDF with a page per figure. Each page carries the research-use label and the
figure's provenance in a footer (experiment, model hash, seed, created)."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

from hemolab.reports._figures import FigureSpec, Trace

__all__ = ["LABEL", "PNG_DPI", "PNG_SIZE_IN", "to_pdf", "to_png"]

LABEL = "research use — not for clinical decisions"
PNG_SIZE_IN = (10.0, 6.0)
PNG_DPI = 100
_MARKERS = {"circle": "o", "x": "x", "star": "*", "diamond": "D", "triangle-down": "v"}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _nan(values: Sequence[Any]) -> list[float]:
    return [math.nan if v is None else float(v) for v in values]


def _draw(ax: Any, t: Trace, categories: dict[str, int], n_bars: int, bar_k: int) -> None:
    colour = t.colour or "#1f77b4"
    if t.kind in ("line", "step"):
        ax.plot(
            t.x,
            _nan(t.y),
            color=colour,
            ls="--" if t.dash else "-",
            lw=1.5,
            label=t.name if t.show_legend else None,
            drawstyle="steps-post" if t.kind == "step" else "default",
        )
    elif t.kind == "band":
        ax.fill_between(
            t.x, _nan(t.y), _nan(t.upper or []), color=colour, alpha=t.opacity, lw=0, label=t.name
        )
    elif t.kind == "markers":
        x, y = list(t.x), list(t.y)
        if x and isinstance(x[0], str):  # on a category axis (bars)
            x = [categories[v] for v in x]
        y = [categories[v] for v in y] if y and isinstance(y[0], str) else _nan(y)
        if t.error is not None:
            ax.errorbar(x, y, yerr=[t.error[0], t.error[1]], fmt="none", ecolor="#333333",
                        capsize=3, zorder=2)  # fmt: skip
        ax.scatter(
            x,
            y,
            color=colour,
            marker=_MARKERS.get(t.symbol, "o"),
            s=90 if t.symbol == "star" else 30,
            label=t.name,
            zorder=3,
        )
    elif t.kind == "bar":
        width = 0.8 / max(n_bars, 1)
        x = [categories[v] + (bar_k - (n_bars - 1) / 2) * width for v in t.x]
        err = None if t.error is None else [t.error[0], t.error[1]]
        ax.bar(x, _nan(t.y), width=width, color=colour, yerr=err, capsize=3, label=t.name)
    elif t.kind == "hbar":
        y = [categories[v] for v in t.x]
        ax.barh(y, _nan(t.y), left=_nan(t.base or []), color=colour, label=t.name, height=0.6)
    else:
        raise ValueError(f"unknown trace kind {t.kind!r}")


def _figure(spec: FigureSpec) -> Any:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=PNG_SIZE_IN, dpi=PNG_DPI)
    categories: dict[str, int] = {}
    if spec.y_categories:
        categories = {c: i for i, c in enumerate(spec.y_categories)}
    else:
        for t in spec.traces:
            if t.kind == "bar" or (t.kind == "markers" and t.x and isinstance(t.x[0], str)):
                for c in t.x:
                    categories.setdefault(str(c), len(categories))
    areas = [t for t in spec.traces if t.kind == "area"]
    if areas:
        ys = [_nan(t.y) for t in areas]
        ax.stackplot(
            areas[0].x,
            *[[0.0 if math.isnan(v) else v for v in y] for y in ys],
            colors=[t.colour for t in areas],
            labels=[t.name for t in areas],
        )
    bars = [t for t in spec.traces if t.kind == "bar"]
    for t in spec.traces:
        if t.kind != "area":
            _draw(ax, t, categories, len(bars), bars.index(t) if t in bars else 0)
    for s in spec.shapes:
        if s.kind == "hline":
            ax.axhline(s.a, color=s.colour, ls="--", lw=0.8)
            ax.annotate(
                s.label,
                (1.0, s.a),
                xycoords=("axes fraction", "data"),
                ha="right",
                va="bottom",
                fontsize=7,
                color=s.colour,
            )
        elif s.kind == "vline":
            ax.axvline(s.a, color=s.colour, ls=":", lw=0.8)
        elif s.kind == "hspan":
            ax.axhspan(s.a, s.b, color=s.colour, alpha=0.1, label=s.label)
        elif s.kind == "vspan":
            ax.axvspan(s.a, s.b, color=s.colour, alpha=0.1)
    if spec.y_categories:
        ax.set_yticks(range(len(spec.y_categories)), list(spec.y_categories))
        ax.invert_yaxis()
    elif categories:
        ax.set_xticks(range(len(categories)), list(categories), rotation=10, fontsize=8)
    if spec.log_y:
        ax.set_yscale("log")
    ax.set_title(spec.title, fontsize=11)
    ax.set_xlabel(spec.xlabel)
    ax.set_ylabel(spec.ylabel)
    handles, _ = ax.get_legend_handles_labels()
    if handles and len(handles) <= 12:
        ax.legend(fontsize=7, loc="best")
    p = spec.provenance
    model = p.get("model") or {}
    footer = (
        f"{p.get('experiment', '')} · {p.get('command', '')} · model {model.get('name') or '-'} "
        f"(hash {model.get('hash') or '-'}) · seed {p.get('seed')} · "
        f"hemolab {p.get('versions', {}).get('hemolab', '?')} · created {p.get('created', '')}"
    )
    fig.text(0.01, 0.985, LABEL, ha="left", va="top", fontsize=9, color="#a50026", weight="bold")
    fig.text(0.01, 0.01, footer, ha="left", va="bottom", fontsize=6.5, color="#555555")
    fig.tight_layout(rect=(0, 0.03, 1, 0.95))
    return fig


def to_png(spec: FigureSpec) -> bytes:
    """The figure as PNG bytes (``PNG_SIZE_IN`` at ``PNG_DPI``)."""
    plt = _pyplot()
    fig = _figure(spec)
    try:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=PNG_DPI)
        return buf.getvalue()
    finally:
        plt.close(fig)


def to_pdf(specs: Sequence[FigureSpec], *, title: str = "hemolab report") -> bytes:
    """Every figure on a page of its own, as PDF bytes."""
    from matplotlib.backends.backend_pdf import PdfPages

    plt = _pyplot()
    buf = io.BytesIO()
    with PdfPages(buf, metadata={"Title": title, "Subject": LABEL, "Creator": "hemolab"}) as pdf:
        for spec in specs:
            fig = _figure(spec)
            try:
                pdf.savefig(fig)
            finally:
                plt.close(fig)
    return buf.getvalue()
