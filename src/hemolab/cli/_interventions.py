"""The interventions chapter of ``hemolab demo``: samples mixed, a drug too potent, the risk of
rejecting emergency blood, a protocol searched over 1,000 virtual patients and run, every step
recorded as an experiment.

Each step calls the command a user would type (``simulate``, ``run``, ``search``) with
``--store``, so that ``hemolab experiments list|show|rerun`` work on what the demo made.
The inputs are the files of ``examples/`` (a source checkout: ``make demo``).
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import typer

from hemolab._errors import HemolabError

__all__ = ["EXAMPLES", "run_interventions", "store_of"]

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
SAMPLE_DAYS = (0.0, 89.0, 120.0, 180.0)  # before the first mix, after the third, the end
REJECTION_STOCKS = ("O+", "O-")  # emergency red cells: D-positive, and the universal donor


def store_of(out: Path) -> Path:
    """The experiment store of the chapter run into ``out``."""
    return out / "experiments"


def _command(fn: Any, **kwargs: Any) -> dict[str, Any]:
    """Call a CLI command with ``--json`` and return its summary (exit 1 keeps the summary:
    some patients failed, or no feasible point)."""
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            fn(json_out=True, **kwargs)
    except typer.Exit as exc:
        if exc.exit_code not in (0, 1):
            raise HemolabError(
                f"demo step {fn.__name__} stopped with exit {exc.exit_code}"
            ) from None
    return json.loads(buf.getvalue())


def _example(name: str) -> Path:
    path = EXAMPLES / name
    if not path.is_file():
        raise HemolabError(
            f"the demo's interventions need {name} from the examples/ folder of a source "
            f"checkout (looked in {EXAMPLES})"
        )
    return path


def _samples(out: Path, store: Path) -> dict[str, Any]:
    """Sample A (white cells destroyed, too many red cells) and Sample D (red cells destroyed):
    untreated, then three 500-mL transfers of A's cells into D with three series of an ESA."""
    import pandas as pd

    from hemolab.cli._app import simulate

    runs = {}
    for arm in ("untreated", "treated"):
        target = out / f"samples-{arm}.parquet"
        doc = _command(
            simulate,
            model=str(_example("samples_model.py")),
            out=target,
            events=_example(f"samples-{arm}.csv"),
            t_end="180d",
            dt="1d",
            rtol=1e-8,
            atol=1e-10,
            store=store,
        )
        frame = pd.read_parquet(target, columns=["patient_id", "time", "variable", "value"])
        frame = frame[frame["variable"].isin(["Hb", "ANC"]) & frame["time"].isin(SAMPLE_DAYS)]
        table = frame.pivot_table(index=["patient_id", "variable"], columns="time", values="value")
        names = dict(zip(sorted(set(frame["patient_id"])), ("A", "D"), strict=False))
        runs[arm] = {
            "experiment": doc["experiment"],
            "samples": {
                names[pid]: {
                    var: {
                        f"day {d:g}": round(float(table.loc[(pid, var), d]), 2) for d in SAMPLE_DAYS
                    }
                    for var in ("Hb", "ANC")
                }
                for pid in names
            },
        }
    a, d = runs["treated"]["samples"]["A"]["Hb"], runs["treated"]["samples"]["D"]["Hb"]
    normal = (12.0, 17.5)
    cancel = all(normal[0] <= x["day 120"] <= normal[1] for x in (a, d))
    runs["diseases_cancel_while_mixing"] = cancel
    runs["diseases_cancel_at_end"] = all(normal[0] <= x["day 180"] <= normal[1] for x in (a, d))
    return runs


def _too_potent(store: Path) -> dict[str, Any]:
    from hemolab.cli._run import run

    doc = _command(run, protocol=_example("docetaxel-too-potent.toml"), store=store)
    broken = [lim for lim in doc["limits"] if not lim["met"]]
    return {
        "experiment": doc["experiment"],
        "protocol": doc["protocol"],
        "n_patients": doc["n_patients"],
        "time_unit": doc["time_unit"],
        "limits": doc["limits"],
        "broken": [lim["name"] for lim in broken],
    }


def _rejection(store: Path) -> dict[str, Any]:
    """Sample D's anaemia over 200 virtual patients, two emergency units of red cells from
    an O+ stock and from an O- stock: each patient's blood group decides the risk."""
    from hemolab.cli._run import run

    arms = {}
    for group in REJECTION_STOCKS:
        doc = _command(
            run,
            protocol=_example("samples-transfusion.toml"),
            values=[f"group={group}"],
            store=store,
        )
        arms[group] = {
            "experiment": doc["experiment"],
            "protocol": doc["protocol"],
            "n_patients": doc["n_patients"],
            "rejection": doc["rejection"],
            "limits": doc["limits"],
            "hb_final_median": doc["observables"]["Hb"]["final"]["median"],
        }
    return arms


def _search_and_run(store: Path, population: int) -> dict[str, Any]:
    from hemolab.cli._run import run
    from hemolab.cli._search import search

    found = _command(
        search, space=_example("five-day-search.toml"), population=population, store=store
    )
    best = found["best"]
    chosen = None
    if best is not None:
        values = [f"{k}={v:.6g}" for k, v in best.items()]
        chosen = _command(
            run,
            protocol=_example("five-day-template.toml"),
            population=population,
            values=values,
            store=store,
        )
    return {
        "search": {
            "experiment": found["experiment"],
            "method": found["method"],
            "n_evaluated": found["n_evaluated"],
            "n_feasible": found["n_feasible"],
            "n_patients": population,
            "best": best,
            "best_value": found["best_value"],
        },
        "chosen": None
        if chosen is None
        else {
            "experiment": chosen["experiment"],
            "protocol": chosen["protocol"],
            "phases": [
                {"name": p["name"], "start": p["start"], "end": p["end"]} for p in chosen["phases"]
            ],
            "limits": chosen["limits"],
            "safe": chosen["safe"],
            "time_unit": chosen["time_unit"],
        },
    }


def run_interventions(out: Path, *, search_population: int = 1000) -> dict[str, Any]:
    """Run the chapter into ``out`` (store ``out/experiments``, which :func:`store_of` names);
    return its summary. ``experiments`` lists every experiment of the store, those recorded
    before the chapter (the demo's showcase patient) included."""
    from hemolab.experiments import ExperimentStore

    out.mkdir(parents=True, exist_ok=True)
    store = store_of(out)
    summary: dict[str, Any] = {"store": str(store)}
    summary["samples"] = _samples(out, store)
    summary["too_potent"] = _too_potent(store)
    summary["rejection"] = _rejection(store)
    summary.update(_search_and_run(store, search_population))
    summary["experiments"] = [
        {"id": r.id, "kind": r.kind, "label": r.label, "status": r.status}
        for r in ExperimentStore(store).list()
    ]
    return summary
