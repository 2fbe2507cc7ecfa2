"""``hemolab run PROTOCOL.toml``: a protocol over a virtual population (or the typical
patient), its safety limits checked at exact crossings, optionally recorded as an
experiment (kind ``protocol``) that ``hemolab experiments rerun`` reproduces."""

from __future__ import annotations

import contextlib
import io
import json
import math
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.table import Table

from hemolab._errors import HemolabError

__all__ = ["rerun_protocol", "run"]

# the experiment a rerun reproduces (set by rerun_protocol for the command it calls)
_PARENT: list[str] = []


def run(
    protocol: Annotated[Path, typer.Argument(help="Protocol file (TOML).")],
    population: Annotated[
        int | None,
        typer.Option("--population", help="Virtual patients (overrides [population] n)."),
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed of the population (overrides its seed).")
    ] = None,
    typical: Annotated[
        bool, typer.Option("--typical", help="The typical patient only, whatever [population].")
    ] = False,
    model: Annotated[
        str | None,
        typer.Option("--model", help="Library model or model file instead of the protocol's."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Per-patient outcomes (.parquet): limits, nadirs, finals."),
    ] = None,
    rtol: Annotated[float, typer.Option(help="Relative tolerance.")] = 1e-6,
    atol: Annotated[float, typer.Option(help="Absolute tolerance.")] = 1e-8,
    store: Annotated[
        Path | None,
        typer.Option("--store", help="Record the run as an experiment in this store."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
    fit: Annotated[
        Path | None,
        typer.Option(
            "--fit",
            help="A calibrated patient (fit.json): run over its posterior draws from its "
            "last observation on.",
        ),
    ] = None,
    draws: Annotated[
        int, typer.Option("--draws", help="Posterior draws with --fit (seeded by --seed).")
    ] = 200,
    values: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="NAME=VALUE for a {NAME} placeholder of a protocol template; repeatable.",
        ),
    ] = None,
    blood_group: Annotated[
        str | None,
        typer.Option(
            "--blood-group",
            help="The patient's ABO/RhD group (e.g. A+) for --typical or --fit, when a "
            "transfusion names its product's group.",
        ),
    ] = None,
) -> None:
    """Run PROTOCOL: its phases, doses and parameter settings over a virtual population.

    A protocol template (the kind ``hemolab search`` fills) runs with its placeholders set
    by ``--set NAME=VALUE``, e.g. the point a search chose. With ``--fit FIT.json`` the
    protocol runs over the calibrated patient's posterior draws, each starting from the
    state it gives at the last observation (the protocol's time 0).

    Each safety limit ("ANC < 0.5 for longer than 7 d in at most 10 % of patients") is
    tracked with state triggers, so episodes start and end at exact crossing times. Exits 0
    when the run completed (the summary says whether every limit held: "safe"), 1 when some
    patients failed to solve, 2 on bad input (file, line and field named).
    """
    from hemolab.cli._app import _fail, _progress, _warnings_to_console, console, load_model
    from hemolab.population import Population
    from hemolab.protocols import protocol_model, read_protocol, run_protocol
    from hemolab.protocols._read import placeholders

    try:
        for name, value in (("--rtol", rtol), ("--atol", atol)):
            if not (math.isfinite(value) and value > 0):
                raise HemolabError(f"{name} must be a finite number > 0, got {value:g}")
        if out is not None and out.suffix.lower() not in (".parquet", ".pq"):
            raise HemolabError(f"--out {str(out)!r}: the outcomes are Parquet; name it *.parquet")
        if typical and (population is not None or seed is not None):
            raise HemolabError("--typical runs one patient: leave out --population and --seed")
        if fit is not None and (typical or population is not None):
            raise HemolabError("--fit runs the patient's posterior draws: leave out "
                               "--typical and --population")  # fmt: skip
        fit_record = None
        if fit is not None:
            from hemolab.cli._fit_input import load_patient_fit

            fit_record = load_patient_fit(fit, store, "run protocol", draws)
        model_spec = model or (fit_record.model if fit_record else protocol_model(protocol))
        mdl = load_model(model_spec)
        filled = _placeholder_values(values or [])
        unknown = sorted(set(filled) - placeholders(protocol))
        if unknown:
            raise HemolabError(
                f"--set {unknown[0]}: {str(protocol)!r} has no {{{unknown[0]}}} placeholder"
            )
        pf = read_protocol(protocol, time_unit=mdl.time_unit, values=filled or None)
        now = None
        if fit_record is not None:
            from hemolab.protocols import patient_now

            s = seed if seed is not None else 0
            now = patient_now(fit_record, mdl, n_draws=draws, seed=s)
            pop = None
        else:
            n = None if typical else (population if population is not None else pf.population_n)
            s = None if typical else (seed if seed is not None else pf.population_seed)
            if (n is None) != (s is None):
                raise HemolabError(
                    "a population needs both a size and a seed (--population, --seed)"
                )
            pop = Population(mdl, n=n, seed=s) if n is not None and s is not None else None
        options = {"population": population, "seed": seed, "typical": typical,
                   "rtol": rtol, "atol": atol, "values": list(values or []),
                   "draws": draws, "blood_group": blood_group}  # fmt: skip
        with (
            tempfile.TemporaryDirectory(prefix="hemolab-run-") as tmp,
            _recording(store, pf, model_spec, mdl, options, s, rtol, atol, fit) as exp,
        ):
            with _progress(quiet=json_out) as progress, _warnings_to_console():
                result = run_protocol(
                    pf.protocol,
                    mdl,
                    population=pop,
                    rtol=rtol,
                    atol=atol,
                    progress=progress,
                    draws=None if now is None else now.draws,
                    initial_states=None if now is None else now.states,
                    blood_groups=pf.blood_groups if pop is not None else None,
                    blood_group=blood_group,
                )
            target = out
            if target is None and exp is not None:  # the store keeps its own copy
                target = Path(tmp) / "outcomes.parquet"
            if target is not None:
                _write_outcomes(result, target, exp)
            if exp is not None and result.population is not None:
                _record_bands(result, mdl, Path(tmp) / "bands.parquet", exp)
    except HemolabError as exc:
        raise _fail(str(exc)) from None
    summary = result.summary() | {"out": str(out) if out else ""}
    summary["dose_intensity_per_week"] = result.dose_intensity(_week(mdl.time_unit))
    if exp is not None:
        summary["experiment"] = exp.id
    if now is not None:
        summary["fit"] = now.to_json()
    if json_out:
        print(json.dumps(summary, indent=2, allow_nan=False))
    else:
        _print(summary, console)
    if result.status_counts.get("ok", 0) != result.n:
        raise typer.Exit(1)


def _placeholder_values(items: list[str]) -> dict[str, Any]:
    """``--set NAME=VALUE`` items: numbers become numbers (integers stay integers)."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name, text = name.strip(), text.strip()
        if not sep or not name.isidentifier() or not text:
            raise HemolabError(f"--set {item!r}: expected NAME=VALUE (e.g. --set dose=120)")
        if name in out:
            raise HemolabError(f"--set {name} is given twice")
        try:
            number = float(text)
        except ValueError:
            out[name] = text
            continue
        if not math.isfinite(number):
            raise HemolabError(f"--set {item!r}: the value must be finite")
        out[name] = int(number) if number.is_integer() and "." not in text else number
    return out


def _week(time_unit: str) -> float:
    from hemolab.model._units import time_factor

    return 7.0 * time_factor("d", time_unit)


def _write_outcomes(result: Any, target: Path, exp: Any) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(result.patients, preserve_index=False)
    meta = {b"hemolab.protocol": result.protocol.name.encode(),
            b"hemolab.model_hash": result.model_hash.encode(),
            b"hemolab.time_unit": result.time_unit.encode()}  # fmt: skip
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **meta})
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        pq.write_table(table, tmp)
        tmp.replace(target)
    except OSError as exc:
        raise HemolabError(f"cannot write {str(target)!r}: {exc.strerror or exc}") from None
    if exp is not None:
        exp.add_result("outcomes.parquet", target)


def _record_bands(result: Any, model: Any, target: Path, exp: Any) -> None:
    """The monitored observables' median and 90 % band over the population, per monitoring
    time (long: ``time, variable, unit, stat, value``), kept with the experiment for
    ``hemolab report``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from hemolab.population._run import QUANTILES

    pop = result.population
    units = {o.name: o.unit or "" for o in model.observables}
    cols: dict[str, list[Any]] = {"time": [], "variable": [], "unit": [], "stat": [], "value": []}
    for name in result.protocol.monitoring.observables:
        for q in QUANTILES:
            values = np.asarray(pop.bands[name][q], dtype=np.float64)
            cols["time"] += list(np.asarray(pop.time, dtype=np.float64))
            cols["variable"] += [name] * len(values)
            cols["unit"] += [units.get(name, "")] * len(values)
            cols["stat"] += [f"q{round(100 * q):02d}"] * len(values)
            cols["value"] += list(values)
    table = pa.table(cols).replace_schema_metadata(
        {b"hemolab.time_unit": result.time_unit.encode()}
    )
    pq.write_table(table, target)
    exp.add_result("bands.parquet", target)


@contextlib.contextmanager
def _recording(
    store: Path | None,
    pf: Any,
    model_spec: str,
    model: Any,
    options: dict[str, Any],
    seed: int | None,
    rtol: float,
    atol: float,
    fit: Path | None = None,
) -> Iterator[Any]:
    if store is None:
        yield None
        return
    from hemolab.cli._record import add_model, finishing
    from hemolab.experiments import ExperimentStore

    library = not Path(model_spec).suffix
    spec = {"command": "run", "model": model_spec if library else None, "options": options}
    exp = ExperimentStore(store).begin(
        "protocol",
        label=f"run {pf.protocol.name}",
        spec=spec,
        model=model,
        seed=seed,
        solver="hemolab adaptive (auto), limit triggers",
        rtol=rtol,
        atol=atol,
        parent=_PARENT[-1] if _PARENT else None,
    )
    with finishing(exp):
        exp.add_input("protocol.toml", pf.path)
        if fit is not None:
            exp.add_input("fit.json", fit)
        add_model(exp, model_spec, model)
        yield exp


def _print(summary: dict[str, Any], console: Any) -> None:
    console.print(
        f"[bold]{summary['protocol']}[/] on {summary['model']}: {summary['n_patients']} "
        f"patient(s), {summary['end']:g} {summary['time_unit']}"
    )
    phases = Table("phase", "start", "end", "doses", "started (median)", title="phases")
    for p in summary["phases"]:
        began = p["started"]["median"]
        phases.add_row(p["name"], f"{p['start']:g}", f"{p['end']:g}", str(p["n_doses"]),
                       "-" if began is None else f"{began:.4g}")  # fmt: skip
    console.print(phases)
    rej = summary.get("rejection")
    if rej:
        lo, hi = rej["interval_95"]
        console.print(
            f"rejection risk: {rej['n_incompatible']} of {rej['n_patients']} patient(s) given "
            f"an incompatible unit (P = {rej['probability']:.3f}, 95 % {lo:.3f}-{hi:.3f}); "
            f"{rej['n_haemolytic']} with ABO-incompatible red cells (haemolysis)"
        )
    limits = Table(
        "limit", "P(broken)", "95 % interval", "allowed", "held", "from", "by", title="limits"
    )
    for lim in summary["limits"]:
        lo, hi = lim["interval_95"]
        limits.add_row(
            lim["name"],
            "-" if lim["probability"] is None else f"{lim['probability']:.3f}",
            "-" if lo is None else f"{lo:.3f}-{hi:.3f}",
            f"{lim['max_probability']:.3f}",
            "[green]yes[/]" if lim["met"] else "[red]no[/]",
            "-" if lim["broken_from"] is None else f"{lim['broken_from']:.4g}",
            "-" if lim["exceeded_by"] is None else f"{lim['exceeded_by']:.4g}",
        )
    if summary["limits"]:
        console.print(limits)
    console.print("[green]every limit held[/]" if summary["safe"] else "[red]a limit broke[/]")
    if summary.get("out"):
        console.print(f"outcomes: {summary['out']}")
    if summary.get("experiment"):
        console.print(f"experiment: {summary['experiment']}")


def rerun_protocol(store: Any, record: Any) -> str:
    """Run a recorded ``protocol`` experiment again from its stored protocol copy."""
    from hemolab.experiments import ExperimentError

    spec = record.spec
    inputs = record.inputs
    if "protocol.toml" not in inputs:
        raise ExperimentError(f"experiment {record.id} has no stored protocol")
    model_spec = spec.get("model")
    if not model_spec:
        stored = [f for name, f in inputs.items() if name.startswith("model.")]
        if not stored:
            raise ExperimentError(f"experiment {record.id} has no stored model file")
        model_spec = str(stored[0].path)
    _check_model(record, model_spec)
    _PARENT.append(record.id)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            run(
                protocol=inputs["protocol.toml"].path,
                fit=inputs["fit.json"].path if "fit.json" in inputs else None,
                model=model_spec,
                out=None,
                store=store.path,
                json_out=True,
                **spec["options"],
            )
    except typer.Exit as exc:
        if exc.exit_code not in (0, 1):
            raise ExperimentError(f"the rerun of {record.id} failed (see its record)") from None
    finally:
        _PARENT.pop()
    children = [r for r in store.list(kind="protocol") if r.parent == record.id]
    return children[-1].id


def _check_model(record: Any, model_spec: str) -> None:
    from hemolab.cli._app import load_model
    from hemolab.compile import model_hash
    from hemolab.experiments import ExperimentError

    current = model_hash(load_model(model_spec))
    if current != record.model_hash:
        raise ExperimentError(
            f"experiment {record.id}: model {record.model_name} changed since it was recorded "
            f"(hash {record.model_hash} then, {current} now); a rerun would not reproduce it"
        )
