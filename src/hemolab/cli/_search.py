"""``hemolab search SPACE.toml``: a protocol template searched over a virtual population
(grid, Latin hypercube or CMA-ES), the protocol's limits as chance constraints; optionally
recorded as an experiment (kind ``search``) that ``hemolab experiments rerun`` reproduces."""

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

from hemolab._errors import HemolabError

__all__ = ["rerun_search", "search"]

_PARENT: list[str] = []


def search(
    space: Annotated[Path, typer.Argument(help="Search file (TOML): space, template, objective.")],
    protocol: Annotated[
        Path | None,
        typer.Option("--protocol", help="Protocol template instead of the one SPACE names."),
    ] = None,
    population: Annotated[
        int | None,
        typer.Option("--population", help="Virtual patients (overrides the template's n)."),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option("--seed", help="Seed of the population (overrides the template's seed)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Every proposed point with its value (.parquet)."),
    ] = None,
    rtol: Annotated[float, typer.Option(help="Relative tolerance.")] = 1e-6,
    atol: Annotated[float, typer.Option(help="Absolute tolerance.")] = 1e-8,
    store: Annotated[
        Path | None,
        typer.Option("--store", help="Record the search as an experiment in this store."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
    fit: Annotated[
        Path | None,
        typer.Option(
            "--fit",
            help="A calibrated patient (fit.json): evaluate over its posterior draws from its "
            "last observation on, instead of a population.",
        ),
    ] = None,
    draws: Annotated[
        int, typer.Option("--draws", help="Posterior draws with --fit (seeded by --seed).")
    ] = 200,
) -> None:
    """Search the protocol space of SPACE for the best feasible protocol.

    Every point fills the template's {placeholders} and runs over the same virtual patients;
    the objective is a population metric (dose intensity, a limit's probability, a median
    nadir or final value) and every limit's max_probability is a chance constraint. The
    search (method, budget, seed) is in SPACE's [search] table. Exits 0 when a feasible
    protocol was found, 1 when none was, 2 on bad input (file, line and field named).
    """
    from hemolab.cli._app import _fail, console, load_model
    from hemolab.population import Population
    from hemolab.protocols import protocol_model, read_protocol
    from hemolab.search import read_protocol_search, run_protocol_search

    try:
        for name, value in (("--rtol", rtol), ("--atol", atol)):
            if not (math.isfinite(value) and value > 0):
                raise HemolabError(f"{name} must be a finite number > 0, got {value:g}")
        if out is not None and out.suffix.lower() not in (".parquet", ".pq"):
            raise HemolabError(f"--out {str(out)!r}: the points are Parquet; name it *.parquet")
        if not space.is_file():
            raise HemolabError(f"search file {str(space)!r} does not exist or is not a file")
        ps = read_protocol_search(space, protocol=protocol)
        fit_record = now = None
        if fit is not None:
            from hemolab.cli._fit_input import load_patient_fit

            if population is not None:
                raise HemolabError("--fit searches over the patient's posterior draws: leave "
                                   "out --population")  # fmt: skip
            fit_record = load_patient_fit(fit, store, "search protocols", draws)
        model_spec = fit_record.model if fit_record else protocol_model(ps.protocol)
        mdl = load_model(model_spec)
        mid = {k: v[0] for k, v in ps.space.decode(np.full((1, ps.space.dim), 0.5)).items()}
        template = read_protocol(ps.protocol, time_unit=mdl.time_unit, values=mid)
        if fit_record is not None:
            from hemolab.protocols import patient_now

            n, s = draws, seed if seed is not None else 0
            now = patient_now(fit_record, mdl, n_draws=draws, seed=s)
            pop = None
        else:
            n = population if population is not None else template.population_n
            s = seed if seed is not None else template.population_seed
            if (n is None) != (s is None):
                raise HemolabError(
                    "a population needs both a size and a seed (--population, --seed)"
                )
            pop = Population(mdl, n=n, seed=s) if n is not None and s is not None else None
        options = {"population": population, "seed": seed, "rtol": rtol, "atol": atol,
                   "draws": draws}  # fmt: skip
        with (
            tempfile.TemporaryDirectory(prefix="hemolab-search-") as tmp,
            _recording(store, ps, model_spec, mdl, options, rtol, atol, fit) as exp,
            _SearchProgress(quiet=json_out) as progress,
        ):
            found = run_protocol_search(
                ps, mdl, pop, rtol=rtol, atol=atol, progress=progress, draws=now
            )
            target = out
            if target is None and exp is not None:
                target = Path(tmp) / "points.parquet"
            if target is not None:
                _write_points(found, target, exp)
    except HemolabError as exc:
        raise _fail(str(exc)) from None
    res = found.result
    best_summary = found.best_summary
    doc: dict[str, Any] = {
        "search": ps.space.name or ps.path.stem,
        "protocol": str(ps.protocol),
        "model": mdl.name,
        "method": ps.method,
        "seed": ps.seed,
        "budget": ps.budget,
        "per_axis": ps.per_axis,
        "population": {"n": n, "seed": s},
        "objective": {"sense": ps.objective.sense, "metric": ps.objective.text},
        "n_points": len(res.values),
        "n_evaluated": res.n_evaluated,
        "n_feasible": int(((res.violation <= 0) & ~np.isnan(res.values)).sum()),
        "best": res.best,
        "best_value": None if res.best_index is None else float(found.metric[res.best_index]),
        "best_run": best_summary,
        "out": str(out) if out else "",
    }
    if exp is not None:
        doc["experiment"] = exp.id
    if found.gradient is not None:
        doc["gradient"] = found.gradient
    if now is not None:
        doc["fit"] = now.to_json()
    if json_out:
        print(json.dumps(doc, indent=2, allow_nan=False))
    else:
        _print(doc, console)
    if res.best_index is None:
        raise typer.Exit(1)


class _SearchProgress:
    """Rich progress with the best feasible objective value so far (silent when quiet)."""

    def __init__(self, *, quiet: bool) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        from hemolab.cli._app import err_console

        self.bar = Progress(
            TextColumn("searching"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} points"),
            TextColumn("best {task.fields[best]}"),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
            disable=quiet,
        )
        self.task: Any = None

    def __enter__(self) -> _SearchProgress:
        self.bar.__enter__()
        self.task = self.bar.add_task("search", total=None, best="-")
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(None, None, None)

    def __call__(self, done: int, total: int, best: float) -> None:
        shown = "-" if not math.isfinite(best) else f"{best:.4g} (minimised)"
        self.bar.update(self.task, completed=done, total=total, best=shown)


def _write_points(found: Any, target: Path, exp: Any) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = found.to_pandas()
    table = pa.Table.from_pandas(frame, preserve_index=False)
    meta = {b"hemolab.search": (found.search.space.name or "").encode(),
            b"hemolab.method": found.search.method.encode(),
            b"hemolab.seed": str(found.search.seed).encode()}  # fmt: skip
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **meta})
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        pq.write_table(table, tmp)
        tmp.replace(target)
    except OSError as exc:
        raise HemolabError(f"cannot write {str(target)!r}: {exc.strerror or exc}") from None
    if exp is not None:
        exp.add_result("points.parquet", target)


@contextlib.contextmanager
def _recording(
    store: Path | None,
    ps: Any,
    model_spec: str,
    model: Any,
    options: dict[str, Any],
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
    spec = {"command": "search", "model": model_spec if library else None, "options": options}
    exp = ExperimentStore(store).begin(
        "search",
        label=f"search {ps.space.name or ps.path.stem}",
        spec=spec,
        model=model,
        seed=ps.seed,
        solver=f"{ps.method} over hemolab adaptive (auto), limit triggers",
        rtol=rtol,
        atol=atol,
        parent=_PARENT[-1] if _PARENT else None,
    )
    with finishing(exp):
        exp.add_input("space.toml", ps.path)
        exp.add_input("protocol.toml", ps.protocol)
        if fit is not None:
            exp.add_input("fit.json", fit)
        add_model(exp, model_spec, model)
        yield exp


def _print(doc: dict[str, Any], console: Any) -> None:
    console.print(
        f"[bold]{doc['search']}[/]: {doc['method']}, {doc['n_evaluated']} of {doc['n_points']} "
        f"points evaluated, {doc['n_feasible']} feasible"
    )
    if doc["best"] is None:
        console.print("[red]no feasible protocol found[/]")
        return
    shown = ", ".join(f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}"
                      for k, v in doc["best"].items())  # fmt: skip
    console.print(
        f"best: {shown}; {doc['objective']['metric']} = {doc['best_value']:.4g} "
        f"({doc['objective']['sense']}d)"
    )
    for lim in doc["best_run"]["limits"]:
        console.print(
            f"  {lim['name']}: P = {lim['probability']:.3f} (allowed {lim['max_probability']:.3f})"
        )
    if doc.get("out"):
        console.print(f"points: {doc['out']}")
    if doc.get("experiment"):
        console.print(f"experiment: {doc['experiment']}")


def rerun_search(store: Any, record: Any) -> str:
    """Run a recorded ``search`` again from its stored space and protocol copies."""
    from hemolab.cli._run import _check_model
    from hemolab.experiments import ExperimentError

    inputs = record.inputs
    if "space.toml" not in inputs or "protocol.toml" not in inputs:
        raise ExperimentError(f"experiment {record.id} lacks its stored space or protocol")
    model_spec = record.spec.get("model")
    if model_spec:
        _check_model(record, model_spec)
    _PARENT.append(record.id)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            search(
                space=inputs["space.toml"].path,
                protocol=inputs["protocol.toml"].path,
                fit=inputs["fit.json"].path if "fit.json" in inputs else None,
                out=None,
                store=store.path,
                json_out=True,
                **record.spec["options"],
            )
    except typer.Exit as exc:
        if exc.exit_code not in (0, 1):
            raise ExperimentError(f"the rerun of {record.id} failed (see its record)") from None
    finally:
        _PARENT.pop()
    children = [r for r in store.list(kind="search") if r.parent == record.id]
    return children[-1].id
