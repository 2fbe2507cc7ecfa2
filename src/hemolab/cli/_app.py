"""The ``hemolab`` command line (Typer + Rich).

Commands whose output others script against take ``--json`` and print one JSON document
(schemas in ``hemolab/schemas/``). Errors print one clear message and exit with status 2
(bad input) or 1 (a solve failed); no traceback for anticipated problems.
"""

from __future__ import annotations

import contextlib
import json
import math
import runpy
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hemolab._errors import HemolabError, HemolabWarning, ModelError

app = typer.Typer(
    name="hemolab",
    help="hemolab: an in-silico hematology laboratory.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def load_model(spec: str) -> Any:
    """A library model by name, or a model file (``.py`` defining ``model``)."""
    from hemolab.library import get_model, list_models
    from hemolab.model import Model

    if spec in list_models():
        return get_model(spec)
    path = Path(spec)
    if path.suffix.lower() in (".xml", ".sbml"):
        from hemolab.sbml import read_sbml

        return read_sbml(path)
    if path.suffix.lower() in (".ant", ".antimony"):
        from hemolab.sbml import read_antimony

        if not path.is_file():
            raise ModelError(f"model file {spec!r} does not exist")
        return read_antimony(path)
    if path.suffix == ".py":
        if not path.is_file():
            raise ModelError(f"model file {spec!r} does not exist")
        namespace = runpy.run_path(str(path))
        model = namespace.get("model")
        if callable(model) and not isinstance(model, Model):
            model = model()
        if not isinstance(model, Model):
            raise ModelError(
                f"model file {spec!r} must define `model` (a hemolab.Model or a function "
                "returning one)"
            )
        return model
    raise ModelError(
        f"{spec!r} is neither a library model ({', '.join(list_models())}) nor a model file "
        "(.py defining `model`, .xml/.sbml SBML, .ant Antimony)"
    )


def model_info(model: Any) -> dict[str, Any]:
    """Machine-readable description of a model (``hemolab models --json``)."""
    return {
        "name": model.name,
        "time_unit": model.time_unit,
        "citation": model.citation,
        "description": model.description,
        "has_delays": model.has_delays,
        "accepts_blood_products": model.accepts_blood_products,
        "states": [{"name": s.name, "unit": s.unit, "positive": s.positive} for s in model.states],
        "parameters": [
            {
                "name": p.name,
                "value": p.value,
                "unit": p.unit,
                "bounds": [_json_float(b) for b in p.bounds],
            }
            for p in model.parameters
        ],
        "covariates": [
            {"name": c.name, "default": c.default, "unit": c.unit} for c in model.covariates
        ],
        "observables": [{"name": o.name, "unit": o.unit} for o in model.observables],
    }


def _json_float(x: float) -> float | str:
    return x if x == x and abs(x) != float("inf") else str(x)


@app.command()
def models(
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the model library with parameters, states, observables and citations."""
    from hemolab.library import get_model, list_models

    infos = [model_info(get_model(n)) for n in list_models()]
    if json_out:
        print(json.dumps({"models": infos}, indent=2))
        return
    table = Table(title="hemolab model library")
    table.add_column("name", no_wrap=True)  # names are typed back: never split them
    for col in ("time", "states", "parameters", "observables", "citation"):
        table.add_column(col, overflow="fold")
    for info in infos:
        table.add_row(
            info["name"],
            info["time_unit"],
            ", ".join(s["name"] for s in info["states"]),
            ", ".join(f"{p['name']}={p['value']:g}" for p in info["parameters"]),
            ", ".join(o["name"] for o in info["observables"]),
            info["citation"][:80] + ("…" if len(info["citation"]) > 80 else ""),
        )
    console.print(table)


def _parse_params(items: list[str], model: Any) -> dict[str, float]:
    """``--param NAME=VALUE`` items as floats, checked against the model's bounds."""
    bounds = {p.name: p.bounds for p in model.parameters}
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if name not in bounds and f"{name}__initial" in bounds:
            name = f"{name}__initial"  # an SBML species' (or varying quantity's) initial value
        if not sep or not name:
            raise HemolabError(f"--param expects NAME=VALUE, got {item!r}")
        try:
            x = float(value)
        except ValueError:
            raise HemolabError(f"--param {name}: {value!r} is not a number") from None
        if not math.isfinite(x):
            raise HemolabError(f"--param {name}: {value!r} is not a finite number")
        if name in bounds:
            lo, hi = bounds[name]
            if not lo <= x <= hi:
                raise HemolabError(
                    f"--param {name}={value}: outside the bounds [{lo:g}, {hi:g}] of model "
                    f"{model.name!r}; give a value within them"
                )
        out[name] = x
    return out


@app.command()
def simulate(
    model: Annotated[str, typer.Argument(help="Library model name or model file (.py).")],
    out: Annotated[Path, typer.Option("--out", help="Result file (.parquet).")],
    events: Annotated[
        Path | None, typer.Option("--events", help="Event dataset (CSV or Parquet).")
    ] = None,
    time_unit: Annotated[
        str | None, typer.Option("--time-unit", help="Time unit of the dataset.")
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="NAME=VALUE, repeatable.")
    ] = None,
    t_end: Annotated[
        str | None, typer.Option("--t-end", help="End of the output grid (e.g. 600h, 25d).")
    ] = None,
    dt: Annotated[str | None, typer.Option("--dt", help="Grid spacing (e.g. 24h).")] = None,
    rtol: Annotated[float, typer.Option(help="Relative tolerance.")] = 1e-6,
    atol: Annotated[float, typer.Option(help="Absolute tolerance.")] = 1e-8,
    dose_before_obs: Annotated[
        bool, typer.Option("--dose-before-obs", help="Tied observations see the dose.")
    ] = False,
    population: Annotated[
        int | None,
        typer.Option(
            "--population",
            help="Simulate N virtual patients with the model's published IIV (or --omega).",
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed of the virtual population (required).")
    ] = None,
    omega: Annotated[
        Path | None,
        typer.Option("--omega", help="IIV covariance of the etas (CSV matrix or JSON)."),
    ] = None,
    residual_error: Annotated[
        bool,
        typer.Option("--residual-error", help="Add <observable>_obs with residual error."),
    ] = False,
    chunk_size: Annotated[
        int, typer.Option("--chunk-size", help="Virtual patients per chunk (memory bound).")
    ] = 2048,
    backend: Annotated[
        Literal["local", "ray"],
        typer.Option(
            "--backend",
            help="Where population chunks are solved: this process, or Ray workers "
            "(pip install 'hemolab\\[ray]'; RAY_ADDRESS names a cluster). Same result file.",
        ),
    ] = "local",
    outputs: Annotated[
        str | None,
        typer.Option(
            "--outputs",
            help="Comma list of the states and observables to write (default: all).",
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
    sedml: Annotated[
        Path | None,
        typer.Option(
            "--sedml",
            help="Run this SED-ML experiment on the SBML MODEL; --out is then a folder for "
            "its reports (CSV) and plots (PNG).",
        ),
    ] = None,
    store: Annotated[
        Path | None,
        typer.Option(
            "--store",
            help="Record the run as an experiment in this store (inputs, settings, versions, "
            "results): hemolab experiments list|show|rerun.",
        ),
    ] = None,
    patients: Annotated[
        Path | None,
        typer.Option(
            "--patients",
            help="Patient records (CSV: patient_id, sex, age, weight_kg, abo, rhd...): "
            "transfusion rows are checked against each patient's ABO/RhD group.",
        ),
    ] = None,
    allow_incompatible: Annotated[
        bool,
        typer.Option(
            "--allow-incompatible",
            help="With --patients: accept incompatible units to model the reaction (the model "
            "must destroy them: hemolab.model.haemolysis).",
        ),
    ] = False,
) -> None:
    """Simulate MODEL (from its initial state, or under an event dataset) to a Parquet file.

    With --population N --seed S: N virtual patients (ids V0000000...) drawn from the model's
    published inter-individual variability, or from --omega FILE; one long result file, written
    chunk by chunk. An event dataset then holds one subject: the regimen every patient gets.
    --backend ray solves the chunks on Ray workers and writes the same file.

    With --sedml FILE: the SED-ML's uniform time courses (with its model changes) on the SBML
    MODEL, by hemolab's solver; each report written to OUT/<id>.csv, each plot to OUT/<id>.png.

    With --store DIR: the run is recorded as an experiment (hemolab experiments list).

    With --patients FILE: a transfusion whose product gives ABO (and RHD) is checked against
    its patient's blood group (MODELS.md §7d); an incompatible unit is refused with its row.
    """
    from hemolab._simulate import simulate as run
    from hemolab.cli._record import recording
    from hemolab.model._units import parse_duration

    if sedml is not None:
        others = {
            "--t-end": t_end is not None,
            "--dt": dt is not None,
            "--events": events is not None,
            "--time-unit": time_unit is not None,
            "--param": bool(param),
            "--population": population is not None,
            "--seed": seed is not None,
            "--omega": omega is not None,
            "--residual-error": residual_error,
            "--dose-before-obs": dose_before_obs,
            "--backend": backend != "local",
            "--outputs": outputs is not None,
            "--store": store is not None,
            "--patients": patients is not None,
            "--allow-incompatible": allow_incompatible,
        }
        _simulate_sedml(
            model, sedml, out, [k for k, v in others.items() if v], rtol, atol, json_out
        )
        return
    try:
        if out.suffix.lower() not in (".parquet", ".pq"):
            raise HemolabError(f"--out {str(out)!r}: the result is Parquet; name it *.parquet")
        for name, value in (("--rtol", rtol), ("--atol", atol)):
            if not (math.isfinite(value) and value > 0):
                raise HemolabError(f"{name} must be a finite number > 0, got {value:g}")
        mdl = load_model(model)
        if events is not None:
            if not events.exists():
                raise HemolabError(f"event dataset {str(events)!r} does not exist")
            if not events.is_file():
                raise HemolabError(f"event dataset {str(events)!r} is not a file")
            if events.stat().st_size == 0:
                raise HemolabError(f"event dataset {str(events)!r} is empty")
        te = parse_duration(t_end, mdl.time_unit) if t_end is not None else None
        step = parse_duration(dt, mdl.time_unit) if dt is not None else None
        if events is None and te is None:
            raise HemolabError("without --events, give --t-end (and optionally --dt)")
        params = _parse_params(param or [], mdl)
        selected = None
        if outputs is not None:
            selected = [v.strip() for v in outputs.split(",") if v.strip()]
        # what a rerun needs besides the files (hemolab experiments rerun)
        options = {"time_unit": time_unit, "param": list(param or []), "t_end": t_end, "dt": dt,
                   "rtol": rtol, "atol": atol, "dose_before_obs": dose_before_obs,
                   "population": population, "seed": seed, "residual_error": residual_error,
                   "chunk_size": chunk_size, "backend": backend, "outputs": outputs,
                   "allow_incompatible": allow_incompatible}  # fmt: skip
        files = {"events": events, "omega": omega, "patients": patients}
        regimen: Any = events
        if allow_incompatible and patients is None:
            raise HemolabError("--allow-incompatible needs --patients (whose groups decide)")
        if patients is not None:
            from hemolab.events import read_events
            from hemolab.patients import read_patient_records

            if events is None:
                raise HemolabError(
                    "--patients checks an event dataset's transfusions: give --events"
                )
            if population is not None:
                raise HemolabError(
                    "--patients applies to the dataset's subjects, not to virtual patients "
                    "(--population)"
                )
            with _warnings_to_console():
                regimen = read_events(
                    events,
                    model=mdl,
                    time_unit=time_unit,
                    patients=read_patient_records(patients),
                    allow_incompatible=allow_incompatible,
                )
        with recording(store, model_spec=model, model=mdl, options=options, files=files,
                       seed=seed, rtol=rtol, atol=atol) as recorder:  # fmt: skip
            if population is not None or seed is not None or omega is not None or residual_error:
                _simulate_population(
                    mdl, out, events, params, te, step, time_unit, rtol, atol, dose_before_obs,
                    population, seed, omega, residual_error, chunk_size, backend, json_out,
                    selected, recorder,
                )  # fmt: skip
                return
            if backend != "local":
                raise HemolabError(
                    f"--backend {backend} runs virtual populations: give --population N --seed S"
                )
            with _progress(quiet=json_out) as progress, _warnings_to_console():
                res = run(
                    mdl,
                    regimen,
                    params=params,
                    t_end=te,
                    dt=step,
                    time_unit=time_unit,
                    rtol=rtol,
                    atol=atol,
                    dose_before_obs=dose_before_obs,
                    progress=progress,
                    outputs=selected,
                    run_id=recorder.id,
                )
            try:
                res.write_parquet(out)
            except OSError as exc:  # a folder that cannot be created or written
                raise HemolabError(f"cannot write {str(out)!r}: {exc.strerror or exc}") from None
            recorder.results(out)
    except HemolabError as exc:
        raise _fail(str(exc)) from None
    summary = res.summary() | {"out": str(out)}
    if recorder.id is not None:
        summary["experiment"] = recorder.id
    if json_out:
        print(json.dumps(summary, indent=2))
    else:
        _print_summary(summary)
    if len(res.failed):
        raise typer.Exit(1)


def _simulate_sedml(
    model: str,
    sedml: Path,
    out: Path,
    conflicts: list[str],
    rtol: float,
    atol: float,
    json_out: bool,
) -> None:
    """``simulate MODEL --sedml FILE --out DIR``: a SED-ML experiment's outputs into DIR."""
    from hemolab._errors import SolveError
    from hemolab.sbml import run_sedml

    try:
        if conflicts:
            raise HemolabError(
                f"{', '.join(conflicts)} cannot be combined with --sedml: the SED-ML file sets "
                "the time course and the model changes"
            )
        for name, value in (("--rtol", rtol), ("--atol", atol)):
            if not (math.isfinite(value) and value > 0):
                raise HemolabError(f"{name} must be a finite number > 0, got {value:g}")
        if Path(model).suffix.lower() not in (".xml", ".sbml"):
            raise HemolabError(f"--sedml runs on an SBML model file (.xml/.sbml), got {model!r}")
        if out.exists() and not out.is_dir():
            raise HemolabError(f"--out {str(out)!r}: with --sedml, --out names a folder")
        with _warnings_to_console():
            result = run_sedml(sedml, model, out, rtol=rtol, atol=atol)
    except SolveError as exc:
        raise _fail(str(exc), 1) from None
    except HemolabError as exc:
        raise _fail(str(exc)) from None
    except OSError as exc:  # a folder that cannot be created or written
        raise _fail(f"cannot write into {str(out)!r}: {exc.strerror or exc}") from None
    summary = result.summary()
    if json_out:
        print(json.dumps(summary, indent=2))
        return
    console.print(
        f"[bold]{escape(str(sedml))}[/]: {len(result.tasks)} task(s) "
        f"({', '.join(result.tasks)}), solved by hemolab",
        soft_wrap=True,
    )
    for oid, path in summary["outputs"].items():
        console.print(f"written: {oid} -> {path}", soft_wrap=True, highlight=False)


def _simulate_population(
    mdl: Any,
    out: Path,
    events: Path | None,
    params: dict[str, float],
    t_end: float | None,
    dt: float | None,
    time_unit: str | None,
    rtol: float,
    atol: float,
    dose_before_obs: bool,
    n: int | None,
    seed: int | None,
    omega: Path | None,
    residual_error: bool,
    chunk_size: int,
    backend: str,
    json_out: bool,
    outputs: list[str] | None = None,
    recorder: Any = None,
) -> None:
    """``simulate --population``: a virtual population, streamed to one long result file."""
    from hemolab.population import Population, read_omega, simulate_population

    if n is None:
        raise HemolabError("--seed, --omega and --residual-error need --population N")
    if n < 1:
        raise HemolabError(f"--population must be >= 1, got {n}")
    if seed is None:
        raise HemolabError("--population needs --seed S (an integer >= 0) to be reproducible")
    if seed < 0:
        raise HemolabError(f"--seed must be an integer >= 0, got {seed}")
    if chunk_size < 1:
        raise HemolabError(f"--chunk-size must be >= 1, got {chunk_size}")
    variability = read_omega(omega) if omega is not None else None
    covariates = {k: v for k, v in params.items() if k in mdl.covariate_names}
    typical = {k: v for k, v in params.items() if k not in covariates}
    pop = Population(
        mdl, n=n, seed=seed, variability=variability, covariates=covariates, typical=typical
    )
    # stdout is for the summary: Ray prints its notices (a worker died...) there
    with (
        contextlib.redirect_stdout(sys.stderr),
        _progress(quiet=json_out) as progress,
        _warnings_to_console(),
    ):
        result = simulate_population(
            pop,
            events,
            t_end=t_end,
            dt=dt,
            out=out,
            chunk_size=chunk_size,
            residual_error=residual_error,
            band_variables=outputs or list(mdl.state_names + mdl.observable_names),
            keep_results=False,
            progress=progress,
            time_unit=time_unit,
            rtol=rtol,
            atol=atol,
            dose_before_obs=dose_before_obs,
            backend=backend,
            outputs=outputs,
            run_id=None if recorder is None else recorder.id,
        )
    summary = result.summary()
    if recorder is not None and recorder.id is not None:
        recorder.results(out)
        summary["experiment"] = recorder.id
    if json_out:
        print(json.dumps(summary, indent=2))
    else:
        _print_population_summary(summary)
    if result.n_failed:
        raise typer.Exit(1)


def _print_population_summary(summary: dict[str, Any]) -> None:
    pop = summary["population"]
    console.print(
        f"[bold]{summary['model']}[/]: {summary['n_patients']} virtual patients "
        f"(seed {pop['seed']}, IIV on {', '.join(pop['omega']['parameters'])}), "
        f"status {', '.join(f'{k}={v}' for k, v in summary['status'].items() if v)}"
    )
    table = Table()
    for col in ("variable", "unit", "nadir median [90 % PI]", "peak median [90 % PI]"):
        table.add_column(col)

    def band(q: dict[str, float | None]) -> str:
        if q["median"] is None:
            return "—"
        return f"{q['median']:.4g} [{q['q05']:.4g}, {q['q95']:.4g}]"

    for name, v in summary["variables"].items():
        table.add_row(name, v["unit"] or "", band(v["nadir"]), band(v["peak"]))
    console.print(table)
    console.print(f"written: {summary['out']}", soft_wrap=True, highlight=False)


def _print_summary(summary: dict[str, Any]) -> None:
    console.print(
        f"[bold]{summary['model']}[/]: {summary['n_patients']} patient(s), "
        f"{summary['n_times']} output times ({summary['time_unit']}), "
        f"status {', '.join(f'{k}={v}' for k, v in summary['status'].items() if v)}"
    )
    table = Table()
    for col in ("variable", "unit", "min", "max"):
        table.add_column(col)
    for name, v in summary["variables"].items():
        fmt = lambda x: "—" if x is None else f"{x:.6g}"  # noqa: E731
        table.add_row(name, v["unit"] or "", fmt(v["min"]), fmt(v["max"]))
    console.print(table)
    console.print(f"written: {summary['out']}", soft_wrap=True, highlight=False)  # copyable


@contextlib.contextmanager
def _warnings_to_console() -> Iterator[None]:
    """Show hemolab's warnings (ties, default body size) as one ``warning:`` line each."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", HemolabWarning)
        try:
            yield
        finally:
            shown = list(caught)
    for w in shown:  # outside catch_warnings: other warnings go through the caller's filters
        if issubclass(w.category, HemolabWarning):
            err_console.print(
                f"[bold yellow]warning:[/] {w.message}", highlight=False, soft_wrap=True
            )
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


class _progress:
    """Rich progress bar fed by the solver's per-chunk callback (silent when quiet)."""

    def __init__(self, *, quiet: bool):
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.quiet = quiet
        self.bar = Progress(
            TextColumn("solving"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} patients"),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
            disable=quiet,
        )
        self.task: Any = None

    def __enter__(self) -> _progress:
        self.bar.__enter__()
        self.task = self.bar.add_task("solve", total=None)
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(None, None, None)

    def __call__(self, done: int, total: int) -> None:
        self.bar.update(self.task, completed=done, total=total)


@app.command()
def show(model: Annotated[str, typer.Argument(help="Library model name or model file.")]) -> None:
    """Print a model's equations, parameters (units, typical values), variability, observables
    and citation."""
    try:
        mdl = load_model(model)
    except HemolabError as exc:
        raise _fail(str(exc)) from None
    console.print(f"[bold]{mdl.name}[/] (time unit {mdl.time_unit})", highlight=False, markup=False)
    if mdl.description:
        console.print(mdl.description, highlight=False, markup=False)
    console.print("[bold]equations[/]")
    for name, expr in mdl.assignments.items():
        console.print(f"  {name} = {expr}", highlight=False, markup=False, soft_wrap=True)
    for s in mdl.states:
        flag = " (positive)" if s.positive else ""
        past = f", history {s.history}" if s.history is not None else ""
        console.print(
            f"  d{s.name}/dt = {s.ddt}    [{s.unit or '—'}, initial {s.initial}{past}]{flag}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    cv = mdl.variability.cv_percent() if mdl.variability is not None else {}
    table = Table(title="parameters")
    for col in ("name", "value", "unit", "IIV (CV %)", "description"):
        table.add_column(col, overflow="fold")
    for p in mdl.parameters:
        iiv = f"{cv[p.name]:.1f}" if p.name in cv else ""
        table.add_row(p.name, f"{p.value:g}", escape(p.unit or ""), iiv, escape(p.description))
    console.print(table)
    for c in mdl.covariates:
        default = "—" if c.default is None else f"{c.default:g}"
        console.print(
            f"  covariate {c.name} [{c.unit or '—'}], default {default}: {c.description}",
            highlight=False,
            markup=False,
        )
    for o in mdl.observables:
        console.print(
            f"  observable {o.name} = {o.expr} [{o.unit or '—'}]", highlight=False, markup=False
        )
    if mdl.variability is not None:
        v = mdl.variability
        off = v.matrix - np.diag(np.diag(v.matrix))
        shape = "correlated" if np.any(off != 0) else "diagonal"
        console.print(
            f"variability: log-normal IIV, {shape} omega on {', '.join(v.parameters)} ({v.source})",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    else:
        console.print(
            "variability: none published (a population needs --omega FILE)",
            highlight=False,
            markup=False,
        )
    for e in mdl.residual_error:
        sd = {"additive": f"SD {e.additive:g}", "proportional": f"CV {100 * e.proportional:g} %",
              "combined": f"SD {e.additive:g} + CV {100 * e.proportional:g} %",
              "exponential": f"SD {e.additive:g} on the log scale"}[e.kind]  # fmt: skip
        console.print(
            f"residual error of {e.observable}: {e.kind}, {sd}", highlight=False, markup=False
        )
    console.print(f"citation: {mdl.citation or '—'}", highlight=False, markup=False, soft_wrap=True)


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("demo-output"),
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """The main job end to end: docetaxel neutropenia over 4 cycles, nadirs and a plot."""
    from hemolab.cli._demo import run_demo

    try:
        summary = run_demo(out, quiet=json_out, console=console)
    except HemolabError as exc:
        raise _fail(str(exc)) from None
    if json_out:
        print(json.dumps(summary, indent=2))


from hemolab.cli._sbml_suite import sbml_suite  # noqa: E402  (it imports this module lazily)

app.command(name="sbml-suite")(sbml_suite)

from hemolab.cli._patients import import_, keygen  # noqa: E402  (they import this module)

app.command(name="import")(import_)
app.command(name="keygen")(keygen)

from hemolab.cli._calibrate import calibrate, forecast  # noqa: E402  (they import this module)

app.command(name="calibrate")(calibrate)
app.command(name="forecast")(forecast)

from hemolab.cli._experiments import experiments_app  # noqa: E402  (it imports this module)

app.add_typer(experiments_app, name="experiments")

from hemolab.cli._run import run  # noqa: E402  (it imports this module)

app.command(name="run")(run)

from hemolab.cli._search import search  # noqa: E402  (it imports this module)

app.command(name="search")(search)

from hemolab.cli._audit import audit_app  # noqa: E402  (it imports this module)
from hemolab.cli._store_admin import patients_app, store_app  # noqa: E402

app.add_typer(audit_app, name="audit")
app.add_typer(store_app, name="store")
app.add_typer(patients_app, name="patients")

from hemolab.cli._report import report  # noqa: E402  (it imports this module)

app.command(name="report")(report)

from hemolab.cli._web import serve, users_app  # noqa: E402  (it imports this module)

app.command(name="serve")(serve)
app.add_typer(users_app, name="users")


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover - interactive
        err_console.print("interrupted")
        sys.exit(130)
