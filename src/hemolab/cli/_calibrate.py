"""``hemolab calibrate`` and ``hemolab forecast``: a patient's fit and the time to a threshold.

``calibrate`` reads a stored patient (by pseudonym, the access audited) or a lab file, which
is de-identified in memory under a temporary pseudonym (nothing identifying is written), and
writes a fit (``hemolab-fit/1``). ``forecast`` simulates the fit's parameter draws past the
last observation and prints the distribution of the first crossing of a threshold, on the
patient's clock (the data's origin), in the model's time unit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from hemolab._errors import HemolabError
from hemolab.cli._app import _fail, console, load_model

DEFAULT_HORIZON = "180d"


def calibrate(
    model: Annotated[str, typer.Argument(help="Library model name or model file.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the fit (JSON).")],
    store: Annotated[
        Path | None, typer.Option("--store", help="Store directory (with --patient).")
    ] = None,
    patient: Annotated[
        str | None, typer.Option("--patient", help="Pseudonym of a stored patient.")
    ] = None,
    labs: Annotated[
        Path | None,
        typer.Option("--labs", help="Lab CSV or FHIR bundle, de-identified in memory."),
    ] = None,
    events: Annotated[
        Path | None,
        typer.Option("--events", help="Dosing history (§A), times on the labs' clock."),
    ] = None,
    method: Annotated[str, typer.Option("--method", help="map, laplace or nuts.")] = "nuts",
    time_unit: Annotated[
        str | None, typer.Option("--time-unit", help="Unit of a numeric time column in --labs.")
    ] = None,
    chains: Annotated[int, typer.Option("--chains", help="NUTS chains.")] = 4,
    warmup: Annotated[int, typer.Option("--warmup", help="NUTS warmup iterations.")] = 1000,
    draws: Annotated[int, typer.Option("--draws", help="NUTS draws per chain.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    gof: Annotated[
        Path | None,
        typer.Option("--gof", help="Write goodness-of-fit plots (PNG): DV vs IPRED, IWRES, VPC."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Fit a model to one patient's labs (MAP, Laplace or NUTS) and write the fit."""
    from hemolab.calibrate._fitfile import METHODS, calibrate_record
    from hemolab.cli._record_patient import (
        add_calibration_results,
        calibrate_spec,
        recording_patient,
    )
    from hemolab.patients._observations import lab_observations

    try:
        if method not in METHODS:
            raise HemolabError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
        if (labs is None) == (patient is None):
            raise HemolabError("give either --labs FILE or --store DIR --patient PSEUDONYM")
        mdl = load_model(model)
        pseudonym, rows, event_rows = _rows(store, patient, labs, events, time_unit, mdl)
        lab = lab_observations(rows, mdl)
        # recorded only for a stored patient: a lab file given directly is never kept
        spec = calibrate_spec(model, pseudonym, method=method, chains=chains, warmup=warmup,
                              draws=draws, seed=seed)  # fmt: skip
        with recording_patient(
            store if patient is not None else None, "calibrate",
            label=f"calibrate {mdl.name} to {pseudonym} ({method})", spec=spec,
            model_spec=model, model=mdl, seed=seed,
        ) as exp:  # fmt: skip
            with console.status(f"calibrating {mdl.name} ({method}; NUTS compiles on its "
                                "first run) ...", spinner="dots"):  # fmt: skip
                record, post = calibrate_record(
                    mdl, model, lab.observations, pseudonym=pseudonym,
                    temporary=labs is not None, method=method, events=event_rows,
                    chains=chains, warmup=warmup, draws=draws, seed=seed,
                )  # fmt: skip
            record.save(out)
            if exp is not None:
                add_calibration_results(exp, record, post, mdl, out)
        if gof is not None:
            from hemolab.calibrate import plot_gof

            plot_gof(mdl, record, gof, seed=seed)
    except HemolabError as exc:
        raise _fail(str(exc)) from None
    doc = _summary(record, post, lab.unused, out)
    if exp is not None:
        doc["experiment"] = exp.id
    if json_out:
        print(json.dumps(doc, indent=2))
        return
    _print_summary(doc)


def forecast(
    fit_path: Annotated[Path, typer.Argument(metavar="FIT", help="A fit from `calibrate`.")],
    threshold: Annotated[
        str, typer.Option("--threshold", help='e.g. "Hb<7" (observable, < <= > >=, value).')
    ],
    horizon: Annotated[
        str, typer.Option("--horizon", help="How far past the last observation (e.g. 180d).")
    ] = DEFAULT_HORIZON,
    regimen: Annotated[
        Path | None,
        typer.Option("--regimen", help="Planned doses (§A), times on the patient's clock."),
    ] = None,
    n_draws: Annotated[int, typer.Option("--draws", help="Parameter draws to simulate.")] = 1000,
    level: Annotated[float, typer.Option("--level", help="Interval level.")] = 0.9,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write a fan chart (PNG) here.")
    ] = None,
    store: Annotated[
        Path | None,
        typer.Option("--store", help="Keep this forecast in the stored patient's history."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """When does an observable cross a threshold after the last observation?"""
    from hemolab.calibrate._fitfile import load_fit
    from hemolab.cli._record_patient import (
        add_forecast_results,
        forecast_spec,
        no_store_for_temporary,
        recording_patient,
    )
    from hemolab.compile._compiled import model_hash
    from hemolab.forecast import RESEARCH_USE, plot_fan, threshold_forecast
    from hemolab.model._units import parse_duration

    try:
        fit = load_fit(fit_path)
        mdl = load_model(fit.model)
        if model_hash(mdl) != fit.model_hash:
            raise HemolabError(
                f"model {fit.model!r} has changed since the fit was made (hash mismatch); "
                "calibrate again"
            )
        span = parse_duration(horizon, mdl.time_unit)
        future = _regimen(regimen)
        if store is not None:  # refused before anything is recorded
            no_store_for_temporary(fit)
            _stored_patient(store, fit.patient)
        spec = forecast_spec(fit, mdl, None, threshold=threshold, horizon=horizon, span=span,
                             n_draws=n_draws, level=level, seed=seed,
                             regimen=regimen is not None)  # fmt: skip
        with recording_patient(
            store, "forecast", label=f"forecast {threshold} for {fit.patient} ({fit.method})",
            spec=spec, model_spec=fit.model, model=mdl, seed=seed,
            inputs={"fit.json": fit_path, "regimen.csv": regimen},
        ) as exp:  # fmt: skip
            with console.status(f"simulating {fit.method} draws ...", spinner="dots"):
                tf = threshold_forecast(fit, mdl, threshold, horizon=span, regimen=future,
                                        n_draws=n_draws, seed=seed, level=level)  # fmt: skip
            if exp is not None:
                add_forecast_results(exp, tf, fit.observations, mdl)
        if plot is not None:
            plot_fan(tf, fit.observations, plot, title=f"{fit.patient}: {mdl.name} ({fit.method})")
    except HemolabError as exc:
        raise _fail(str(exc)) from None
    tt, th, t_last = tf.time_to, tf.time_to.threshold, tf.t_last
    history: list[dict[str, Any]] | None = None
    doc = {
        "observable": th.observable,
        "threshold": f"{th.observable}{th.op}{_num(th.value)}",
        "time_unit": mdl.time_unit,
        "t_last_observation": t_last,
        "median": tt.median,
        "lower": tt.lower,
        "upper": tt.upper,
        "level": level,
        "p_within_horizon": tt.p_within_horizon,
        "horizon": span,
        "n_draws": tt.n_draws,
        "n_failed": tt.n_failed,
        "method": fit.method,
        "patient": fit.patient,
        "model": fit.model,
        "plot": None if plot is None else str(plot),
        "label": RESEARCH_USE,
    }
    if store is not None:
        try:
            history = _record(store, fit, fit_path, doc)
        except HemolabError as exc:
            raise _fail(str(exc)) from None
        doc["history"] = history
    if exp is not None:
        doc["experiment"] = exp.id
    if json_out:
        print(json.dumps(doc, indent=2))
        return
    unit = mdl.time_unit

    def when(t: float | None) -> str:
        return f"beyond day {t_last + span:g}" if t is None else f"{t:.1f} {unit}"

    if tt.median is None:
        head = f"{doc['threshold']}: not reached by the median draw within {span:g} {unit}"
    else:
        head = (f"{doc['threshold']} in about {tt.median - t_last:.0f} {unit} after the last "
                f"observation (at {when(tt.median)})")  # fmt: skip
    console.print(head, highlight=False)
    console.print(
        f"{level:.0%} interval [{when(tt.lower)}, {when(tt.upper)}]; "
        f"P(within {span:g} {unit}) = {tt.p_within_horizon:.2f}  ({fit.method}, "
        f"{tt.n_draws} draws)",
        highlight=False,
    )
    if history:
        from rich.table import Table

        table = Table("made", f"data to ({unit})", "method", "median", "90 % interval", "P(within)",
                      title=f"forecast history of {fit.patient}, {doc['threshold']}")  # fmt: skip
        for h in history:
            table.add_row(h["made_at"][:16], f"{h['t_data']:g}", h["method"],
                          "-" if h["median"] is None else f"{h['median']:.0f}",
                          f"[{_or_dash(h['lower'])}, {_or_dash(h['upper'])}]",
                          f"{h['p_within_horizon']:.2f}")  # fmt: skip
        console.print(table)
    console.print(f"[dim]{RESEARCH_USE}[/]")


def _or_dash(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f}"


def _stored_patient(store: Path, pseudonym: str) -> None:
    """The fit's patient is a patient of ``store`` (else the store's own message)."""
    from hemolab.store import Store, StoreError

    if not (store / Store.DB).is_file():
        raise StoreError(f"{str(store)!r} is not a hemolab store (no {Store.DB})")
    with Store(store) as st:
        st.require_patient(pseudonym)


def _record(store: Path, fit: Any, fit_path: Path, doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Append the forecast to the stored patient's history; return the whole history."""
    import hashlib

    from hemolab.cli._record_patient import no_store_for_temporary
    from hemolab.store import Store

    no_store_for_temporary(fit)
    with Store(store) as st:
        st.record_forecast(fit.patient, doc, hashlib.sha256(fit_path.read_bytes()).hexdigest())
        rows = st.forecasts(fit.patient, threshold=doc["threshold"])
    return [{**r, "made_at": r["made_at"].isoformat()} for r in rows]


def _num(x: float) -> str:
    return f"{x:g}"


def _rows(
    store: Path | None,
    patient: str | None,
    labs: Path | None,
    events: Path | None,
    time_unit: str | None,
    mdl: Any,
) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]] | None]:
    """The patient's pseudonym, lab rows and dosing rows (on the labs' clock)."""
    if patient is not None:
        from hemolab.store import DEFAULT_STORE, Store

        if events is not None:
            raise HemolabError(
                "--events goes with --labs: a stored patient's dosing history is imported with "
                "the labs (`hemolab import LABS --events EVENTS`) and used from the store"
            )
        with Store(store or DEFAULT_STORE) as st:
            rows = st.lab_values(patient, actor_action="calibrate")
            stored = st.event_rows(patient, actor_action="calibrate")
        return patient, rows, _stored_events(stored, patient, mdl)
    assert labs is not None
    from hemolab.patients import read_fhir, read_labs
    from hemolab.patients._observations import ephemeral_patient, ephemeral_rows

    if not labs.is_file():
        raise HemolabError(f"lab history {labs.name!r} does not exist")
    history = (read_fhir(labs) if labs.suffix.lower() == ".json"
               else read_labs(labs, time_unit=time_unit))  # fmt: skip
    if events is None:
        return (*ephemeral_rows(history), None)
    if not events.is_file():
        raise HemolabError(f"dosing history {events.name!r} does not exist")
    return ephemeral_patient(history, events, mdl, time_unit=time_unit)


def _stored_events(
    stored: list[dict[str, Any]], patient: str, mdl: Any
) -> list[dict[str, Any]] | None:
    """A stored patient's events checked against the model (every §A rule), as fit rows:
    ``TIME`` in the model's unit on the patient's clock, ``ID`` 1."""
    if not stored:
        return None
    import pandas as pd

    from hemolab.events import read_events
    from hemolab.patients._observations import fit_event_rows

    frame = pd.DataFrame(stored)
    frame.insert(0, "ID", 1)
    ds = read_events(frame, model=mdl, time_unit="h", file_name=f"the events of {patient}")
    return fit_event_rows(ds)


def _regimen(path: Path | None) -> Any:
    if path is None:
        return None
    import pandas as pd

    if not path.is_file():
        raise HemolabError(f"regimen {path.name!r} does not exist")
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise HemolabError(f"regimen {path.name!r} is not a readable CSV ({exc})") from None


def _summary(record: Any, post: Any, unused: dict[str, int], out: Path) -> dict[str, Any]:
    from hemolab.cli._record_patient import parameter_summary

    params = parameter_summary(record, post)
    return {
        "fit": str(out),
        "model": record.model,
        "method": record.method,
        "patient": record.patient,
        "temporary_patient": record.temporary_patient,
        "n_observations": len(record.observations.time),
        "time_unit": record.time_unit,
        "t_last_observation": record.t_last_observation,
        "parameters": params,
        "unused_lab_values": unused,
        "diagnostics": record.diagnostics,
        "warnings": list(record.warnings),
    }


def _print_summary(doc: dict[str, Any]) -> None:
    from rich.table import Table

    who = doc["patient"] + (" (temporary pseudonym)" if doc["temporary_patient"] else "")
    console.print(
        f"[bold]{doc['model']}[/] fitted to {who}: {doc['n_observations']} observations up to "
        f"{doc['t_last_observation']:g} {doc['time_unit']} ({doc['method']})",
        highlight=False,
    )
    table = Table("parameter", "MAP", "median", "90 % interval")
    for name, p in doc["parameters"].items():
        table.add_row(name, f"{p['map']:.4g}", f"{p['median']:.4g}",
                      f"[{p['lower']:.4g}, {p['upper']:.4g}]")  # fmt: skip
    console.print(table)
    for w in doc["warnings"]:
        console.print(f"[yellow]warning:[/] {w}", highlight=False)
    console.print(f"fit written to {doc['fit']}", highlight=False)
