"""A :class:`~hemolab.reports._figures.FigureSpec` as an interactive plotly figure (its JSON:
``data`` and ``layout``), for the HTML report."""

from __future__ import annotations

from typing import Any

from hemolab.reports._figures import FigureSpec, Shape, Trace

__all__ = ["to_plotly"]


def _rgba(colour: str, alpha: float) -> str:
    c = colour.lstrip("#")
    r, g, b = (int(c[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha:g})"


def _trace(t: Trace, figure: FigureSpec) -> list[Any]:
    import plotly.graph_objects as go

    colour = t.colour or "#1f77b4"
    hover = dict(text=t.text, hoverinfo="text+name") if t.text else {}
    if t.kind in ("line", "step"):
        return [
            go.Scatter(
                x=t.x,
                y=t.y,
                name=t.name,
                mode="lines",
                line=dict(
                    color=colour,
                    dash="dash" if t.dash else "solid",
                    shape="hv" if t.kind == "step" else "linear",
                ),
                showlegend=t.show_legend,
                **hover,
            )
        ]
    if t.kind == "band":
        upper = t.upper or []
        return [
            go.Scatter(
                x=t.x,
                y=upper,
                name=f"{t.name} (upper)",
                mode="lines",
                line=dict(width=0, color=colour),
                showlegend=False,
                legendgroup=t.name,
                hoverinfo="skip",
            ),
            go.Scatter(
                x=t.x,
                y=t.y,
                name=t.name,
                mode="lines",
                fill="tonexty",
                fillcolor=_rgba(colour, t.opacity),
                line=dict(width=0, color=colour),
                legendgroup=t.name,
            ),
        ]
    error = None
    if t.error is not None:
        error = dict(
            type="data",
            symmetric=False,
            array=list(t.error[1]),
            arrayminus=list(t.error[0]),
            color="#333333",
        )
    if t.kind == "markers":
        return [
            go.Scatter(
                x=t.x,
                y=t.y,
                name=t.name,
                mode="markers",
                marker=dict(color=colour, symbol=t.symbol, size=11 if t.symbol == "star" else 8),
                error_y=error,
                showlegend=t.show_legend,
                **hover,
            )
        ]
    if t.kind == "bar":
        return [go.Bar(x=t.x, y=t.y, name=t.name, marker_color=colour, error_y=error, **hover)]
    if t.kind == "area":
        return [
            go.Scatter(
                x=t.x,
                y=t.y,
                name=t.name,
                mode="lines",
                stackgroup="one",
                line=dict(width=0.5, color=colour),
                fillcolor=colour,
            )
        ]
    if t.kind == "hbar":
        return [
            go.Bar(
                y=t.x,
                x=t.y,
                base=t.base,
                name=t.name,
                orientation="h",
                marker_color=colour,
                **hover,
            )
        ]
    raise ValueError(f"unknown trace kind {t.kind!r}")  # a programming error, not user input


def _shape(s: Shape) -> list[dict[str, Any]]:
    line = dict(color=s.colour, width=1, dash="dash")
    if s.kind == "hline":
        return [
            dict(
                type="line",
                xref="paper",
                x0=0,
                x1=1,
                y0=s.a,
                y1=s.a,
                line=line,
                label=dict(text=s.label, textposition="end", font=dict(size=10)),
            )
        ]
    if s.kind == "vline":
        return [
            dict(
                type="line",
                yref="paper",
                y0=0,
                y1=1,
                x0=s.a,
                x1=s.a,
                line=line,
                label=dict(text=s.label, textposition="end", font=dict(size=9)),
            )
        ]
    if s.kind == "hspan":
        return [
            dict(
                type="rect",
                xref="paper",
                x0=0,
                x1=1,
                y0=s.a,
                y1=s.b,
                line=dict(width=0),
                fillcolor=_rgba(s.colour, 0.1),
                layer="below",
                label=dict(text=s.label, textposition="top left", font=dict(size=10)),
            )
        ]
    if s.kind == "vspan":
        return [
            dict(
                type="rect",
                yref="paper",
                y0=0,
                y1=1,
                x0=s.a,
                x1=s.b,
                line=dict(width=0),
                fillcolor=_rgba(s.colour, 0.1),
                layer="below",
            )
        ]
    raise ValueError(f"unknown shape kind {s.kind!r}")


def to_plotly(figure: FigureSpec) -> dict[str, Any]:
    """The figure as plotly JSON (``{"data": [...], "layout": {...}}``), plain lists only."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for t in figure.traces:
        for trace in _trace(t, figure):
            fig.add_trace(trace)
    layout: dict[str, Any] = dict(
        title=dict(text=figure.title, font=dict(size=15)),
        xaxis=dict(title=dict(text=figure.xlabel)),
        yaxis=dict(title=dict(text=figure.ylabel), type="log" if figure.log_y else "linear"),
        shapes=[d for s in figure.shapes for d in _shape(s)],
        template="plotly_white",
        height=420,
        margin=dict(l=70, r=30, t=60, b=60),
        legend=dict(orientation="v"),
        barmode="group",
        hovermode="closest",
    )
    if figure.y_categories:
        layout["yaxis"].update(
            categoryorder="array", categoryarray=list(figure.y_categories), autorange="reversed"
        )
    fig.update_layout(**layout)
    return fig.to_plotly_json()
