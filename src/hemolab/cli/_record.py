"""``hemolab simulate --store DIR``: the run recorded as an experiment, and rerun from it.

The record holds the command's options (the spec), copies of its files (the model file or,
for a library model, its SBML for reference; the event dataset; the omega file) and the
result files. A rerun calls the same command with the stored copies and compares results.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import typer

from hemolab._errors import HemolabError

__all__ = ["Recorder", "add_model", "finishing", "recording", "rerun_simulate"]

# the experiment a rerun reproduces (set by rerun_simulate for the command it calls)
_PARENT: contextvars.ContextVar[str | None] = contextvars.ContextVar("parent", default=None)


class Recorder:
    """Adds a command's result files to its experiment (does nothing without a store)."""

    def __init__(self, experiment: Any = None) -> None:
        self.experiment = experiment

    @property
    def id(self) -> str | None:
        return None if self.experiment is None else self.experiment.id

    def results(self, out: Path) -> None:
        if self.experiment is None:
            return
        self.experiment.add_result("result.parquet", out)
        events = out.with_name(out.stem + ".events.parquet")
        if events.is_file():
            self.experiment.add_result("result.events.parquet", events)


@contextlib.contextmanager
def recording(
    store: Path | None,
    *,
    model_spec: str,
    model: Any,
    options: Mapping[str, Any],
    files: Mapping[str, Path | None],
    seed: int | None,
    rtol: float,
    atol: float,
) -> Iterator[Recorder]:
    """Record the block as a ``simulate`` experiment in ``store`` (a no-op when None): failed
    with the error when it raises a hemolab error, complete when it ends, or exits with 1
    (some patients failed: their status is in the results)."""
    if store is None:
        yield Recorder()
        return
    from hemolab.experiments import ExperimentStore

    library = not Path(model_spec).suffix
    spec = {
        "command": "simulate",
        "model": model_spec if library else None,
        "options": dict(options),
        "files": sorted(k for k, v in files.items() if v),
    }
    exp = ExperimentStore(store).begin(
        "simulate",
        label=f"simulate {model.name}",
        spec=spec,
        model=model,
        seed=seed,
        solver="hemolab adaptive (auto)",
        rtol=rtol,
        atol=atol,
        parent=_PARENT.get(),
    )
    with finishing(exp):
        add_model(exp, model_spec, model)
        for role, path in files.items():
            if path is not None:
                exp.add_input(f"{role}{path.suffix.lower()}", path)
        yield Recorder(exp)


@contextlib.contextmanager
def finishing(exp: Any) -> Iterator[Any]:
    """End ``exp`` with the block: complete, or failed with the error. A command's exit 0 or
    1 (some patients failed, no feasible point) completes it; any other exit fails it."""
    try:
        yield exp
    except typer.Exit as exc:
        if exc.exit_code in (0, 1):
            exp.finish()
        else:
            exp.fail(f"the command stopped with exit code {exc.exit_code}")
        raise
    except BaseException as exc:
        exp.fail(exc)
        raise
    exp.finish()


def add_model(exp: Any, model_spec: str, model: Any) -> None:
    """The model's record: a library model's SBML (for reference), or a copy of its file."""
    if not Path(model_spec).suffix:
        exp.add_input("model.xml", data=_sbml_or_none(model))
    else:
        exp.add_input(f"model{Path(model_spec).suffix.lower()}", model_spec)


def _sbml_or_none(model: Any) -> bytes:
    """The library model's SBML, kept for reference (the rerun uses the library by name)."""
    from hemolab.sbml import write_sbml

    try:
        return write_sbml(model).encode()
    except HemolabError as exc:  # a model SBML cannot carry (history != initial value)
        return f"<!-- not exportable to SBML: {exc} -->\n".encode()


def rerun_simulate(store: Any, record: Any) -> str:
    """Run a recorded ``simulate`` again from its spec and stored inputs (a new experiment
    whose parent is ``record``); return the new experiment's id."""
    from hemolab.cli._app import load_model, simulate
    from hemolab.compile import model_hash
    from hemolab.experiments import ExperimentError

    spec = record.spec
    inputs = record.inputs
    if spec.get("model"):
        model_spec = spec["model"]
    else:
        stored = [f for n, f in inputs.items() if n.startswith("model.")]
        if not stored:
            raise ExperimentError(f"experiment {record.id} has no stored model file")
        model_spec = str(stored[0].path)
    current = model_hash(load_model(model_spec))
    if current != record.model_hash:
        raise ExperimentError(
            f"experiment {record.id}: model {record.model_name} changed since it was recorded "
            f"(hash {record.model_hash} then, {current} now); a rerun would not reproduce it"
        )

    def stored_file(role: str) -> Path | None:
        for name, f in inputs.items():
            if name.startswith(role + "."):
                return f.path
        return None

    options = dict(spec["options"])
    with tempfile.TemporaryDirectory(prefix="hemolab-rerun-") as tmp:
        token = _PARENT.set(record.id)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                simulate(
                    model=model_spec,
                    out=Path(tmp) / "result.parquet",
                    events=stored_file("events"),
                    omega=stored_file("omega"),
                    patients=stored_file("patients"),
                    store=store.path,
                    json_out=True,
                    sedml=None,
                    **options,
                )
        except typer.Exit as exc:
            if exc.exit_code not in (0, 1):
                raise ExperimentError(f"the rerun of {record.id} failed (see its record)") from None
        finally:
            _PARENT.reset(token)
    children = [r for r in store.list(kind="simulate") if r.parent == record.id]
    return children[-1].id
