"""The figures of each kind of experiment, as plain specifications both renderers draw.

A :class:`FigureSpec` holds the numbers and their meaning (traces, reference lines and
spans, axis titles, its provenance); :mod:`._plotly` turns it into an interactive plotly
figure for the HTML report and :mod:`._print` into a matplotlib page for PNG and PDF, so
that the two never disagree about what is drawn.

Per kind (what the recorded results hold decides what can be drawn):

- ``simulate`` (``result.parquet``, one row per patient, variable and time): trajectories
  of up to 10 patients, else a fan chart (median, 50 % and 90 % bands) per observable; for
  observables CTCAE grades, the share of patients at each grade over time and the time to
  grade 3 (cumulative share of patients).
- ``protocol`` (``hemolab run``: ``outcomes.parquet`` per patient, ``bands.parquet`` over the
  population): bands with the normal range and the limits' thresholds, the phase bars with
  the doses, each limit's probability against the allowed one, the time each limit's
  condition first held, and the CTCAE grade timeline and worst grades.
- ``search`` (``points.parquet``, one row per proposed protocol): convergence over the
  evaluations, the chosen protocol among the alternatives, and the chosen protocol's phases.
- ``calibrate`` and ``forecast`` (a patient's fit and its forecast): see
  :mod:`._figures_patient`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hemolab.reports._data import ExperimentData, ProtocolInfo, chosen_protocol

__all__ = ["FigureSpec", "Shape", "Trace", "figures_of", "provenance_of"]

MAX_LINES = 10  # patients drawn one by one; more get a fan chart
PALETTE = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
GRADE_COLOURS = ("#dbe9d8", "#fde8a6", "#fdb462", "#f46d43", "#a50026")


@dataclass(frozen=True)
class Trace:
    """One series. ``kind``: ``line``, ``step`` (steps after each x), ``band`` (filled
    between ``y`` and ``upper``), ``markers`` and ``bar`` (``error``: minus and plus), ``area``
    (stacked with the figure's other areas) or ``hbar`` (from ``base`` to ``base + y`` on
    category ``x``)."""

    kind: str
    name: str
    x: list[Any]
    y: list[Any]
    upper: list[Any] | None = None
    base: list[Any] | None = None
    error: tuple[list[float], list[float]] | None = None
    text: list[str] | None = None
    colour: str | None = None
    dash: bool = False
    symbol: str = "circle"
    opacity: float = 1.0
    show_legend: bool = True


@dataclass(frozen=True)
class Shape:
    """A reference: ``hline`` at ``a``, ``hspan`` or ``vspan`` from ``a`` to ``b``,
    ``vline`` at ``a``; labelled."""

    kind: str
    a: float
    b: float = math.nan
    label: str = ""
    colour: str = "#7f7f7f"


@dataclass(frozen=True)
class FigureSpec:
    """A figure of the report: what it shows, drawn from which results, with provenance."""

    key: str  # unique in a report: <experiment id>-<slug>
    title: str
    xlabel: str
    ylabel: str
    traces: tuple[Trace, ...]
    shapes: tuple[Shape, ...] = ()
    caption: str = ""
    log_y: bool = False
    y_categories: tuple[str, ...] = ()  # hbar: categories top to bottom
    provenance: dict[str, Any] = field(default_factory=dict)


def figures_of(data: ExperimentData) -> list[FigureSpec]:
    """Every figure of a complete experiment (none for other statuses or unknown kinds)."""
    if not data.drawable:
        return []
    from hemolab.reports._figures_patient import calibrate_figures, forecast_figures

    build = {
        "simulate": _simulate,
        "protocol": _protocol,
        "search": _search,
        "calibrate": calibrate_figures,
        "forecast": forecast_figures,
    }.get(data.record.kind)
    if build is None:
        return []
    return build(data)


def provenance_of(data: ExperimentData, sources: list[str]) -> dict[str, Any]:
    """Where a figure comes from: experiment, command, model, inputs and the results drawn
    (with SHA-256), seed, solver, versions and times. No host or user name: a report may be
    shared."""
    r = data.record

    def stamp(t: Any) -> str | None:
        return None if t is None else t.isoformat()

    options = {k: v for k, v in r.spec.get("options", {}).items() if v not in (None, False, [])}
    results = r.results
    return {
        "experiment": r.id,
        "kind": r.kind,
        "label": r.label,
        "status": r.status,
        "command": f"hemolab {r.spec.get('command', r.kind)}",
        "options": options,
        "model": {"name": r.model_name, "hash": r.model_hash},
        "seed": r.seed,
        "solver": {"name": r.solver, "rtol": r.rtol, "atol": r.atol},
        "inputs": [{"name": f.name, "sha256": f.sha256} for f in r.inputs.values()],
        "results": [
            {
                "name": n,
                "sha256": results[n].sha256,
                "content_sha256": results[n].content_sha256,
                "rows": results[n].n_rows,
            }
            for n in sources
            if n in results
        ],
        "versions": dict(r.versions),
        "created": stamp(r.started),
        "ended": stamp(r.ended),
        "parent": r.parent,
    }


# --- helpers ---------------------------------------------------------------------------


def _floats(a: Any) -> list[float | None]:
    """Plain floats for JSON (NaN and infinities as None: a gap)."""
    return [float(v) if math.isfinite(v) else None for v in np.asarray(a, dtype=np.float64)]


def _clock(time_unit: str, t_max: float) -> tuple[float, str]:
    """Hours are shown as days beyond four days (factor applied to times, axis unit)."""
    if time_unit == "h" and t_max > 96.0:
        return 1.0 / 24.0, "d"
    return 1.0, time_unit or "model time unit"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "figure"


def _ctcae(variable: str, unit: str, lln: float | None = None) -> tuple[Any, float, str] | None:
    """The CTCAE term of an observable in the term's unit, and the LLN used (Hb: 12 g/dL,
    the female adult LLN, unless a normal range gives one)."""
    from hemolab.forecast import CTCAE_TERMS

    term = CTCAE_TERMS.get(variable)
    if term is None or unit != term.unit:
        return None
    if lln is not None:
        return term, lln, f"LLN {lln:g} {unit} (the protocol's normal range)"
    if term.lln is None:
        return term, 12.0, "LLN 12 g/dL (adult female, Merck Manual)"
    return term, term.lln, f"LLN {term.lln:g} {unit} (Merck Manual)"


def _grades(variable: str, values: np.ndarray, lln: float) -> np.ndarray:
    from hemolab.forecast import ctcae_grades

    return ctcae_grades(variable, values, lln=lln)


def _grade_values(variable: str, values: Any, lln: float) -> list[float | None]:
    g = _grades(variable, np.asarray(values, dtype=np.float64), lln)
    return [float(v) if v >= 0 else None for v in g]


def _grade_shapes(term: Any, lln: float, unit: str) -> list[Shape]:
    out = [Shape("hline", lln, label=f"LLN {lln:g}", colour="#2ca02c")]
    for g, cut in enumerate(term.cutoffs, start=2):
        out.append(Shape("hline", cut, label=f"grade {g} below {cut:g} {unit}"))
    return out


def _make(data: ExperimentData, slug: str, sources: list[str], **kw: Any) -> FigureSpec:
    return FigureSpec(
        key=f"{data.record.id}-{_slug(slug)}", provenance=provenance_of(data, sources), **kw
    )


# --- simulate --------------------------------------------------------------------------


def _simulate(data: ExperimentData) -> list[FigureSpec]:
    name = "result.parquet"
    frame = data.tables.get(name)
    if frame is None or frame.empty:
        return []
    time_unit = data.metadata.get(name, {}).get("hemolab.time_unit", "")
    kinds = frame["kind"].astype(str)
    chosen = frame[kinds == "observable"]
    if chosen.empty:
        chosen = frame[kinds == "state"]
    variables = list(dict.fromkeys(chosen["variable"].astype(str)))[:6]
    frame = frame.assign(
        key=frame["patient_id"].astype(str)
        + np.where(frame["replicate"].to_numpy() > 0, "#" + frame["replicate"].astype(str), "")
        + np.where(frame["scenario"].nunique() > 1, " " + frame["scenario"].astype(str), "")
    )
    t_max = float(np.nanmax(frame["time"].to_numpy(dtype=np.float64)))
    factor, unit_label = _clock(time_unit, t_max)
    out: list[FigureSpec] = []
    for var in variables:
        rows = frame[frame["variable"].astype(str) == var]
        unit = str(rows["unit"].iloc[0]) if len(rows) else ""
        keys = list(dict.fromkeys(rows["key"]))
        grid = rows.pivot_table(index="key", columns="time", values="value", dropna=False)
        grid = grid.loc[keys]
        times = np.asarray(grid.columns, dtype=np.float64)
        values = grid.to_numpy(dtype=np.float64)
        status = rows.groupby("key", sort=False)["status"].agg(
            lambda s: (s.astype(str) == "ok").all()
        )
        ok = np.asarray(status.loc[keys], dtype=bool)
        x = _floats(times * factor)
        ctcae = _ctcae(var, unit)
        shapes = _grade_shapes(ctcae[0], ctcae[1], unit) if ctcae else []
        label = f"{var} ({unit})" if unit else var
        if len(keys) <= MAX_LINES:
            traces = [
                Trace("line", k, x, _floats(v), colour=PALETTE[i % len(PALETTE)])
                for i, (k, v) in enumerate(zip(keys, values, strict=True))
            ]
            title = f"{var}: trajectories of {len(keys)} patient(s)"
            caption = "One line per patient (pseudonym or virtual id)."
        else:
            good = values[ok]
            q = (
                np.nanquantile(good, (0.05, 0.25, 0.5, 0.75, 0.95), axis=0)
                if len(good)
                else (np.full((5, len(times)), np.nan))
            )
            traces = [
                Trace(
                    "band",
                    "90 % band",
                    x,
                    _floats(q[0]),
                    upper=_floats(q[4]),
                    colour=PALETTE[0],
                    opacity=0.18,
                ),
                Trace(
                    "band",
                    "50 % band",
                    x,
                    _floats(q[1]),
                    upper=_floats(q[3]),
                    colour=PALETTE[0],
                    opacity=0.35,
                ),
                Trace("line", "median", x, _floats(q[2]), colour=PALETTE[0]),
            ]
            title = f"{var}: median and prediction bands over {int(ok.sum())} patients"
            caption = (
                f"Fan chart over the {int(ok.sum())} of {len(keys)} patients that solved: "
                "median, 50 % and 90 % bands per output time."
            )
        out.append(
            _make(
                data,
                f"{var}-trajectories",
                [name],
                title=title,
                xlabel=f"time ({unit_label})",
                ylabel=label,
                traces=tuple(traces),
                shapes=tuple(shapes),
                caption=caption,
            )
        )
        if ctcae is not None and ok.any():
            out += _grade_figures(
                data, name, var, unit, ctcae, times * factor, values[ok], unit_label
            )
    return out


def _grade_figures(
    data: ExperimentData,
    source: str,
    var: str,
    unit: str,
    ctcae: tuple[Any, float, str],
    times: np.ndarray,
    values: np.ndarray,
    unit_label: str,
) -> list[FigureSpec]:
    term, lln, lln_text = ctcae
    grades = _grades(var, values, lln)
    n = len(values)
    x = _floats(times)
    top = 2 + len(term.cutoffs) - 1
    share = [
        Trace(
            "area",
            f"grade {g}",
            x,
            _floats(100.0 * (grades == g).mean(axis=0)),
            colour=GRADE_COLOURS[g],
        )
        for g in range(top + 1)
    ]
    timeline = _make(
        data,
        f"{var}-ctcae-timeline",
        [source],
        title=f"{var}: CTCAE v5.0 grade over time ({n} patients)",
        xlabel=f"time ({unit_label})",
        ylabel="patients (%)",
        traces=tuple(share),
        caption=f"{term.term}; {lln_text}. Share of the patients at each grade per output time.",
    )
    cut = term.cutoffs[1] if len(term.cutoffs) > 1 else term.cutoffs[0]
    below = values < cut
    first = np.where(below.any(axis=1), times[np.argmax(below, axis=1)], np.nan)
    curve = _cumulative(first, n, float(times[-1]), float(times[0]))
    crossed = int(np.isfinite(first).sum())
    time_to = _make(
        data,
        f"{var}-time-to-grade-3",
        [source],
        title=f"Time to {var} < {cut:g} {unit} (grade ≥ 3): {crossed} of {n} patients",
        xlabel=f"time ({unit_label})",
        ylabel="patients reached (%)",
        traces=(Trace("step", f"{var} < {cut:g}", curve[0], curve[1], colour=PALETTE[1]),),
        caption="Cumulative share of patients whose value has fallen below the threshold at an "
        "output time (time-to-threshold distribution).",
    )
    return [timeline, time_to]


def _cumulative(first: np.ndarray, n: int, end: float, start: float = 0.0) -> tuple[list, list]:
    """Step curve of the share (%) of ``n`` patients whose event time is <= t."""
    t = np.sort(first[np.isfinite(first)])
    xs = [start, *t.tolist(), end]
    ys = [0.0, *(100.0 * np.arange(1, len(t) + 1) / max(n, 1)).tolist()]
    ys.append(ys[-1])
    return _floats(xs), _floats(ys)


# --- protocol --------------------------------------------------------------------------


def _threshold(when: str, variable: str) -> float | None:
    m = re.fullmatch(r"\s*(\w+)\s*[<>]=?\s*([-+0-9.eE]+)\s*", when)
    if m and m.group(1) == variable:
        try:
            return float(m.group(2))
        except ValueError:
            return None
    return None


def _protocol(data: ExperimentData) -> list[FigureSpec]:
    out: list[FigureSpec] = []
    info = data.protocol
    outcomes = data.tables.get("outcomes.parquet")
    bands = data.tables.get("bands.parquet")
    time_unit = data.metadata.get("outcomes.parquet", {}).get("hemolab.time_unit") or (
        info.time_unit if info else ""
    )
    end = info.end if info else 0.0
    if bands is not None and not bands.empty:
        end = max(end, float(bands["time"].max()))
    factor, unit_label = _clock(time_unit, end)
    if bands is not None and not bands.empty:
        out += _protocol_bands(data, bands, info, factor, unit_label)
    if info is not None:
        out.append(_phase_figure(data, info, factor, unit_label, ["outcomes.parquet"]))
    if outcomes is not None and not outcomes.empty:
        out += _limit_figures(data, outcomes, info, factor, unit_label, end)
        out += _worst_grades(data, outcomes, info, bands)
    return out


def _protocol_bands(
    data: ExperimentData,
    bands: Any,
    info: ProtocolInfo | None,
    factor: float,
    unit_label: str,
) -> list[FigureSpec]:
    out = []
    source = ["bands.parquet"]
    for var in dict.fromkeys(bands["variable"].astype(str)):
        rows = bands[bands["variable"].astype(str) == var]
        unit = str(rows["unit"].iloc[0])
        q = {s: rows[rows["stat"] == s].sort_values("time") for s in ("q05", "q50", "q95")}
        x = _floats(q["q50"]["time"].to_numpy(dtype=np.float64) * factor)
        traces = (
            Trace(
                "band",
                "90 % band",
                x,
                _floats(q["q05"]["value"]),
                upper=_floats(q["q95"]["value"]),
                colour=PALETTE[0],
                opacity=0.25,
            ),
            Trace("line", "median", x, _floats(q["q50"]["value"]), colour=PALETTE[0]),
        )
        shapes: list[Shape] = []
        normal = info.normal.get(var) if info else None
        if normal is not None:
            shapes.append(Shape("hspan", normal[0], normal[1], "normal range", "#2ca02c"))
        for lim in info.limits if info else []:
            y = _threshold(lim["when"], var)
            if y is not None:
                shapes.append(Shape("hline", y, label=lim["name"], colour="#d62728"))
        for ph in info.phases[1:] if info else []:
            shapes.append(Shape("vline", ph["start"] * factor, label=ph["name"]))
        out.append(
            _make(
                data,
                f"{var}-bands",
                source,
                title=f"{var} over the population: median and 90 % band",
                xlabel=f"time ({unit_label})",
                ylabel=f"{var} ({unit})" if unit else var,
                traces=traces,
                shapes=tuple(shapes),
                caption="Median and 90 % band per monitoring time (bounded-memory "
                "quantile sketches); green: normal range; red: the limits' thresholds; "
                "grey: phase starts.",
            )
        )
        ctcae = _ctcae(var, unit, normal[0] if normal else None)
        if ctcae is not None:
            term, lln, lln_text = ctcae
            steps = tuple(
                Trace("step", name, x, _grade_values(var, q[s]["value"], lln), colour=c)
                for s, name, c in (
                    ("q05", "5th percentile", PALETTE[1]),
                    ("q50", "median", PALETTE[0]),
                    ("q95", "95th percentile", PALETTE[2]),
                )
            )
            out.append(
                _make(
                    data,
                    f"{var}-ctcae-timeline",
                    source,
                    title=f"{var}: CTCAE v5.0 grade timeline",
                    xlabel=f"time ({unit_label})",
                    ylabel="grade",
                    traces=steps,
                    caption=f"{term.term}; {lln_text}. The grade of the band's 5th "
                    "percentile is the grade at least 5 % of patients have reached or passed "
                    "at that time; of the median, half of them.",
                )
            )
    return out


def _phase_figure(
    data: ExperimentData, info: ProtocolInfo, factor: float, unit_label: str, sources: list[str]
) -> FigureSpec:
    names = [p["name"] for p in info.phases]
    bars = Trace(
        "hbar",
        "phases",
        names,
        _floats([(p["end"] - p["start"]) * factor for p in info.phases]),
        base=_floats([p["start"] * factor for p in info.phases]),
        text=[
            f"{p['name']}: {p['start'] * factor:g}-{p['end'] * factor:g} {unit_label}"
            for p in info.phases
        ],
        colour="#9ecae1",
    )
    traces = [bars]
    doses = [(p["name"], d) for p in info.phases for d in p["doses"]]
    if doses:
        traces.append(
            Trace(
                "markers",
                "doses",
                _floats([d[0] * factor for _, d in doses]),
                [n for n, _ in doses],
                text=[f"{d[2]} {d[1]:g}" + (f" over {d[3]:g}" if d[3] else "") for _, d in doses],
                colour="#d62728",
                symbol="triangle-down",
            )
        )
    return _make(
        data,
        "phases",
        sources,
        title=f"Phases of {info.name}",
        xlabel=f"time ({unit_label})",
        ylabel="phase",
        traces=tuple(traces),
        y_categories=tuple(names),
        caption="Planned phases (bars) and doses (triangles: compartment and amount).",
    )


def _wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    if n == 0:
        return math.nan, math.nan
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


def _limit_figures(
    data: ExperimentData,
    outcomes: Any,
    info: ProtocolInfo | None,
    factor: float,
    unit_label: str,
    end: float,
) -> list[FigureSpec]:
    ok = np.asarray(outcomes["status"].astype(str) == "ok")
    n = int(ok.sum())
    allowed = {lim["name"]: lim["max_probability"] for lim in (info.limits if info else [])}
    names = [c[: -len(" violated")] for c in outcomes.columns if c.endswith(" violated")]
    if not names:
        return []
    source = ["outcomes.parquet"]
    p, lo, hi = [], [], []
    for name in names:
        k = int(np.asarray(outcomes[f"{name} violated"], dtype=bool)[ok].sum())
        prob = k / n if n else math.nan
        w = _wilson(k, n)
        p.append(prob)
        lo.append(max(0.0, prob - w[0]) if n else 0.0)  # rounding: never below zero
        hi.append(max(0.0, w[1] - prob) if n else 0.0)
    traces = [
        Trace(
            "bar",
            "P(broken)",
            names,
            _floats(p),
            error=(lo, hi),
            colour=PALETTE[0],
            text=[f"{x:.3f}" for x in p],
        )
    ]
    if allowed:
        traces.append(
            Trace(
                "markers",
                "allowed",
                names,
                _floats([allowed.get(nm, math.nan) for nm in names]),
                colour="#d62728",
                symbol="diamond",
            )
        )
    limits = _make(
        data,
        "limits",
        source,
        title=f"Safety limits over {n} patients",
        xlabel="limit",
        ylabel="probability",
        traces=tuple(traces),
        caption="Share of the patients that solved whose longest episode broke each limit, "
        "with its 95 % Wilson interval; diamonds: the allowed probability.",
    )
    first = []
    for i, name in enumerate(names):
        col = f"{name} first"
        if col not in outcomes:
            continue
        t = np.asarray(outcomes[col], dtype=np.float64)[ok] * factor
        xs, ys = _cumulative(t, n, end * factor)
        first.append(Trace("step", name, xs, ys, colour=PALETTE[i % len(PALETTE)]))
    out = [limits]
    if first:
        out.append(
            _make(
                data,
                "time-to-threshold",
                source,
                title="Time to each limit's condition (time-to-threshold distribution)",
                xlabel=f"time ({unit_label})",
                ylabel="patients reached (%)",
                traces=tuple(first),
                caption="Cumulative share of patients whose limit condition (e.g. ANC < 0.5) "
                "had first held by each time (exact crossing times).",
            )
        )
    return out


def _worst_grades(
    data: ExperimentData, outcomes: Any, info: ProtocolInfo | None, bands: Any
) -> list[FigureSpec]:
    ok = np.asarray(outcomes["status"].astype(str) == "ok")
    units: dict[str, str] = {}
    if bands is not None and not bands.empty:
        units = dict(zip(bands["variable"].astype(str), bands["unit"].astype(str), strict=False))
    traces = []
    for var in [c[: -len("_nadir")] for c in outcomes.columns if c.endswith("_nadir")]:
        normal = info.normal.get(var) if info else None
        unit = units.get(var)
        if unit is None:
            from hemolab.forecast import CTCAE_TERMS

            unit = CTCAE_TERMS[var].unit if var in CTCAE_TERMS else ""  # the monitored unit
        ctcae = _ctcae(var, unit, normal[0] if normal else None)
        if ctcae is None or not ok.any():
            continue
        g = _grades(var, np.asarray(outcomes[f"{var}_nadir"], dtype=np.float64)[ok], ctcae[1])
        top = 1 + len(ctcae[0].cutoffs)
        cats = [f"grade {k}" for k in range(top + 1)]
        traces.append(
            Trace(
                "bar",
                var,
                cats,
                _floats([100.0 * np.mean(g == k) for k in range(top + 1)]),
                colour=PALETTE[len(traces) % len(PALETTE)],
            )
        )
    if not traces:
        return []
    return [
        _make(
            data,
            "worst-grades",
            ["outcomes.parquet"],
            title=f"Worst CTCAE v5.0 grade per patient ({int(ok.sum())} patients)",
            xlabel="worst grade over the protocol",
            ylabel="patients (%)",
            traces=tuple(traces),
            caption="The grade of each patient's nadir on the monitoring grid.",
        )
    ]


# --- search ----------------------------------------------------------------------------


def _search(data: ExperimentData) -> list[FigureSpec]:
    name = "points.parquet"
    points = data.tables.get(name)
    if points is None or points.empty:
        return []
    info = data.search
    cols = list(points.columns)
    metric = info.metric if info and info.metric in cols else cols[cols.index("value") - 1]
    variables = [v for v in (info.variables if info else []) if v in cols] or cols[
        : cols.index(metric)
    ]
    sense = info.sense if info else "minimise"
    y = points[metric].to_numpy(dtype=np.float64)
    feasible = np.asarray(points["feasible"], dtype=bool) & np.isfinite(y)
    idx = np.arange(1, len(points) + 1)
    value = points["value"].to_numpy(dtype=np.float64)  # minimised
    best_i = int(np.nanargmin(np.where(feasible, value, np.nan))) if feasible.any() else None
    best_so_far = np.full(len(points), np.nan)
    running = math.inf
    for i in range(len(points)):
        if feasible[i] and value[i] < running:
            running = float(value[i])
        if math.isfinite(running):
            best_so_far[i] = -running if sense == "maximise" else running

    def hover(i: Any) -> str:
        parts = [f"{v} = {points[v].iloc[i]:.4g}" for v in variables]
        parts.append(f"{metric} = {y[i]:.4g}")
        parts.append(f"violation = {points['violation'].iloc[i]:.3g}")
        return ", ".join(parts)

    def pick(mask: np.ndarray, values: np.ndarray) -> tuple[list[Any], list[Any], list[str]]:
        sel = np.flatnonzero(mask)
        return [int(i + 1) for i in sel], _floats(values[sel]), [hover(i) for i in sel]

    fx, fy, ft = pick(feasible, y)
    ix, iy, it = pick(~feasible, y)
    conv = [
        Trace("markers", "feasible", fx, fy, text=ft, colour=PALETTE[2]),
        Trace("markers", "infeasible", ix, iy, text=it, colour="#7f7f7f", symbol="x"),
        Trace(
            "step",
            "best feasible so far",
            [int(i) for i in idx],
            _floats(best_so_far),
            colour=PALETTE[0],
        ),
    ]
    method = info.method if info else ""
    out = [
        _make(
            data,
            "convergence",
            [name],
            title=f"Search convergence: {metric} ({sense}d) over {len(points)} evaluations",
            xlabel="evaluation",
            ylabel=metric,
            traces=tuple(conv),
            caption=f"{method or 'search'}: every proposed protocol in order; infeasible ones "
            "broke a limit's allowed probability.",
        )
    ]
    if variables:
        xs = points[variables[0]].to_numpy(dtype=np.float64)
        ys = points[variables[1]].to_numpy(dtype=np.float64) if len(variables) > 1 else y
        ylabel = variables[1] if len(variables) > 1 else metric
        alt = np.ones(len(points), dtype=bool)
        if best_i is not None:
            alt[best_i] = False
        traces = [
            Trace(
                "markers",
                "feasible alternatives",
                _floats(xs[alt & feasible]),
                _floats(ys[alt & feasible]),
                text=[hover(i) for i in np.flatnonzero(alt & feasible)],
                colour=PALETTE[2],
            ),
            Trace(
                "markers",
                "infeasible",
                _floats(xs[alt & ~feasible]),
                _floats(ys[alt & ~feasible]),
                text=[hover(i) for i in np.flatnonzero(alt & ~feasible)],
                colour="#7f7f7f",
                symbol="x",
            ),
        ]
        if best_i is not None:
            traces.append(
                Trace(
                    "markers",
                    "chosen",
                    _floats(xs[[best_i]]),
                    _floats(ys[[best_i]]),
                    text=[hover(best_i)],
                    colour="#d62728",
                    symbol="star",
                )
            )
        out.append(
            _make(
                data,
                "chosen-vs-alternatives",
                [name],
                title="The chosen protocol against the alternatives",
                xlabel=variables[0],
                ylabel=ylabel,
                traces=tuple(traces),
                caption="Every evaluated protocol in the search space; the star is the best "
                f"feasible one ({metric} {sense}d)."
                if best_i is not None
                else "No evaluated protocol was feasible.",
            )
        )
    if best_i is not None:
        point = {v: _number(points[v].iloc[best_i]) for v in variables}
        chosen = chosen_protocol(data, point)
        if chosen is not None:
            factor, unit_label = _clock(chosen.time_unit, chosen.end)
            out.append(_phase_figure(data, chosen, factor, unit_label, [name]))
    return out


def _number(v: Any) -> Any:
    x = float(v)
    return int(x) if x.is_integer() and isinstance(v, (int, np.integer)) else x
