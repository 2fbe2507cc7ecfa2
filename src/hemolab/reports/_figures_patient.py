"""The figures of a patient's calibration and forecast (experiment kinds ``calibrate`` and
``forecast``, recorded by ``hemolab calibrate --store --patient`` and ``hemolab forecast
--store``; see :mod:`hemolab.cli._record_patient` for their result tables).

- ``forecast``: the fan chart (median, 50 % and 90 % bands of the observable over the
  posterior draws per grid time) with the observations, the threshold, the last
  observation and the crossing time's median and interval; and the time-to-threshold
  distribution (the cumulative share of draws that have crossed, with the median, the
  interval and the probability of crossing within the horizon).
- ``calibrate``: the observations with the typical (MAP) curve, and the posterior median and
  90 % interval of each parameter relative to its MAP (the values in the caption).

Times are on the patient's clock (the first observation's day is 0), in the model's unit.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hemolab.reports._data import ExperimentData
from hemolab.reports._figures import PALETTE, FigureSpec, Shape, Trace, _clock, _floats, _make

__all__ = ["calibrate_figures", "crossing_summary", "forecast_figures"]


def crossing_summary(crossings: Any, level: float) -> dict[str, Any]:
    """Median, interval and P(within horizon) of the crossing times of the draws that
    solved, as :func:`hemolab.forecast.time_to_threshold` computes them (a draw that did not
    cross within the horizon counts as later than every time; such a quantile is None)."""
    status = crossings["status"].astype(str).to_numpy()
    solved = status != "failed"
    times = np.where(status == "crossed", crossings["time"].to_numpy(dtype=np.float64), np.inf)
    ordered = np.sort(times[solved])
    n = int(ordered.size)

    def quantile(q: float) -> float | None:
        if n == 0:
            return None
        x = ordered[max(math.ceil(q * n) - 1, 0)]
        return float(x) if math.isfinite(x) else None

    alpha = (1.0 - level) / 2.0
    return {
        "median": quantile(0.5),
        "lower": quantile(alpha),
        "upper": quantile(1.0 - alpha),
        "p_within_horizon": float(np.mean(np.isfinite(ordered))) if n else math.nan,
        "n_draws": n,
        "n_failed": int((~solved).sum()),
        "times": ordered[np.isfinite(ordered)],
    }


def _observed(data: ExperimentData, observable: str, factor: float) -> list[Trace]:
    obs = data.tables.get("observations.parquet")
    if obs is None or obs.empty:
        return []
    obs = obs[obs["observable"].astype(str) == observable]
    censored = obs["censored"].to_numpy(dtype=bool)
    t = obs["time"].to_numpy(dtype=np.float64) * factor
    out = [
        Trace(
            "markers",
            "observed",
            _floats(t[~censored]),
            _floats(obs["value"].to_numpy(dtype=np.float64)[~censored]),
            colour="#000000",
        )
    ]
    if censored.any():
        out.append(
            Trace(
                "markers",
                "below LLOQ (at the LLOQ)",
                _floats(t[censored]),
                _floats(obs["lloq"].to_numpy(dtype=np.float64)[censored]),
                colour="#7f7f7f",
                symbol="triangle-down",
            )
        )
    return out


# --- forecast --------------------------------------------------------------------------


def forecast_figures(data: ExperimentData) -> list[FigureSpec]:
    fan = data.tables.get("fan.parquet")
    crossings = data.tables.get("crossings.parquet")
    if fan is None or fan.empty:
        return []
    spec = data.record.spec
    meta = data.metadata.get("fan.parquet", {})
    observable = meta.get("hemolab.observable") or spec.get("threshold", {}).get("observable", "")
    unit = meta.get("hemolab.unit", "")
    time_unit = meta.get("hemolab.time_unit") or spec.get("time_unit", "")
    th = spec.get("threshold", {})
    threshold = f"{th.get('observable', observable)} {th.get('op', '<')} {th.get('value', 0):g}"
    level = float(spec.get("level", 0.9))
    t_last = float(spec.get("t_last_observation", math.nan))
    horizon = float(spec.get("horizon", math.nan))
    time = fan["time"].to_numpy(dtype=np.float64)
    factor, unit_label = _clock(time_unit, float(time[-1]))
    x = _floats(time * factor)
    summary = crossing_summary(crossings, level) if crossings is not None else None
    traces = [
        Trace("band", "90 % band", x, _floats(fan["q05"]), upper=_floats(fan["q95"]),
              colour=PALETTE[1], opacity=0.15),
        Trace("band", "50 % band", x, _floats(fan["q25"]), upper=_floats(fan["q75"]),
              colour=PALETTE[1], opacity=0.3),
        Trace("line", "median", x, _floats(fan["q50"]), colour=PALETTE[1]),
        *_observed(data, observable, factor),
    ]  # fmt: skip
    shapes = [Shape("hline", float(th.get("value", math.nan)), label=threshold, colour="#000000")]
    if math.isfinite(t_last):
        shapes.append(Shape("vline", t_last * factor, label="last observation"))
    pct = f"{round(100 * level)} %"
    if summary is not None and summary["median"] is not None:
        lo = summary["lower"] if summary["lower"] is not None else t_last
        hi = summary["upper"] if summary["upper"] is not None else float(time[-1])
        shapes.append(Shape("vspan", lo * factor, hi * factor, f"crossing, {pct}", PALETTE[0]))
        shapes.append(Shape("vline", summary["median"] * factor, label="crossing, median",
                            colour=PALETTE[0]))  # fmt: skip
    n = summary["n_draws"] if summary is not None else None
    method = spec.get("method", "")
    label = f"{observable} ({unit})" if unit else observable
    out = [
        _make(
            data,
            f"{observable}-forecast",
            ["fan.parquet", "observations.parquet", "crossings.parquet"],
            title=f"{observable} forecast for {spec.get('patient', '')} ({method}"
            + (f", {n} draws)" if n is not None else ")"),
            xlabel=f"time ({unit_label}, patient's clock)",
            ylabel=label,
            traces=tuple(traces),
            shapes=tuple(shapes),
            caption=f"Median, 50 % and 90 % bands of {observable} over the posterior draws "
            f"that solved; dots: the observations; dashed: {threshold}, the last observation, "
            f"and the median of the first crossing after it (shaded: its {pct} interval).",
        )
    ]
    if summary is not None:
        out.append(_time_to(data, summary, threshold, t_last, horizon, factor, unit_label, pct))
    return out


def _time_to(
    data: ExperimentData,
    s: dict[str, Any],
    threshold: str,
    t_last: float,
    horizon: float,
    factor: float,
    unit_label: str,
    pct: str,
) -> FigureSpec:
    times = np.asarray(s["times"], dtype=np.float64)
    n = max(s["n_draws"], 1)
    xs = [t_last, *times.tolist(), t_last + horizon]
    ys = [0.0, *(100.0 * np.arange(1, len(times) + 1) / n).tolist()]
    ys.append(ys[-1])
    shapes = []
    for key, name in (("median", "median"), ("lower", "lower"), ("upper", "upper")):
        if s[key] is not None:
            shapes.append(Shape("vline", s[key] * factor, label=name, colour=PALETTE[0]))

    def when(t: float | None) -> str:
        return f"beyond {(t_last + horizon) * factor:g}" if t is None else f"{t * factor:.1f}"

    p = s["p_within_horizon"]
    title = (
        f"Time to {threshold}: median {when(s['median'])} {unit_label} "
        f"[{pct}: {when(s['lower'])}, {when(s['upper'])}], "
        f"P(within {horizon * factor:g} {unit_label}) = {p:.2f}"
    )
    return _make(
        data,
        "time-to-threshold",
        ["crossings.parquet"],
        title=title,
        xlabel=f"time ({unit_label}, patient's clock)",
        ylabel="draws crossed (%)",
        traces=(
            Trace(
                "step", threshold, _floats(np.asarray(xs) * factor), _floats(ys), colour=PALETTE[1]
            ),
        ),
        shapes=tuple(shapes),
        caption=f"Cumulative share of the {s['n_draws']} draws that solved whose first "
        f"crossing of {threshold} after the last observation came by each time (exact, "
        f"interpolated crossings; {s['n_failed']} draws failed). The curve ends at the horizon: "
        f"its height there is P(within the horizon).",
    )


# --- calibrate -------------------------------------------------------------------------


def calibrate_figures(data: ExperimentData) -> list[FigureSpec]:
    curve = data.tables.get("curve.parquet")
    params = data.tables.get("parameters.parquet")
    spec = data.record.spec
    options = spec.get("options", {})
    patient, method = options.get("patient", ""), options.get("method", "")
    meta = data.metadata.get("curve.parquet", {})
    out: list[FigureSpec] = []
    if curve is not None and not curve.empty:
        time_unit = meta.get("hemolab.time_unit", "")
        factor, unit_label = _clock(time_unit, float(curve["time"].max()))
        for var in dict.fromkeys(curve["observable"].astype(str)):
            rows = curve[curve["observable"].astype(str) == var].sort_values("time")
            unit = str(rows["unit"].iloc[0])
            traces = [
                Trace("line", "typical curve (MAP)", _floats(rows["time"] * factor),
                      _floats(rows["value"]), colour=PALETTE[0]),
                *_observed(data, var, factor),
            ]  # fmt: skip
            out.append(
                _make(
                    data,
                    f"{var}-fit",
                    ["curve.parquet", "observations.parquet"],
                    title=f"{var}: {patient}'s observations and the fitted curve ({method})",
                    xlabel=f"time ({unit_label}, patient's clock)",
                    ylabel=f"{var} ({unit})" if unit else var,
                    traces=tuple(traces),
                    caption="The model at the MAP estimate (line) against the observations "
                    "it was fitted to (dots).",
                )
            )
    if params is not None and not params.empty:
        out.append(_posterior(data, params, patient, method))
    return out


def _posterior(data: ExperimentData, params: Any, patient: str, method: str) -> FigureSpec:
    names = params["parameter"].astype(str).tolist()
    ref = params["map"].to_numpy(dtype=np.float64)
    med = params["median"].to_numpy(dtype=np.float64) / ref
    lo = params["lower"].to_numpy(dtype=np.float64) / ref
    hi = params["upper"].to_numpy(dtype=np.float64) / ref
    level = data.metadata.get("parameters.parquet", {}).get("hemolab.level", "0.9")
    pct = f"{round(100 * float(level))} %"
    rows = [
        f"{n}: MAP {m:.4g}, median {d:.4g} [{a:.4g}, {b:.4g}]"
        for n, m, d, a, b in zip(
            names, params["map"], params["median"], params["lower"], params["upper"], strict=True
        )
    ]
    return _make(
        data,
        "posterior",
        ["parameters.parquet"],
        title=f"Parameters of {patient} ({method}): posterior median and {pct} interval",
        xlabel="parameter",
        ylabel="relative to the MAP",
        traces=(
            Trace(
                "markers",
                f"median, {pct} interval",
                names,
                _floats(med),
                error=(_plain(med - lo), _plain(hi - med)),
                colour=PALETTE[0],
                text=rows,
            ),
            Trace(
                "markers",
                "MAP",
                names,
                _floats(np.ones(len(names))),
                colour="#d62728",
                symbol="diamond",
            ),
        ),
        shapes=(Shape("hline", 1.0, label="MAP"),),
        caption="Each parameter's posterior median and equal-tailed interval divided by its "
        "MAP (NUTS: over the draws; Laplace: log-normal around the MAP; MAP alone: the point). "
        + "; ".join(rows)
        + ".",
    )


def _plain(a: np.ndarray) -> list[float]:
    return [float(v) if math.isfinite(v) else 0.0 for v in np.asarray(a, dtype=np.float64)]
