"""Run the P1 and P2 benchmarks: hemolab against peers measured in the same run.

Usage::

    python bench/run.py P1|P2|all [--n N] [--repeats 3] [--json]
                        [--peers NAME,...] [--peer-max-n N] [--lsoda-max-n 500]

Order of work, so that JAX is never forked: (1) tight references (cached on disk) and every
peer, including the spawn-context libRoadRunner pool, for all requested problems; (2) only
then hemolab through :mod:`bench.hemolab_runner`, which imports JAX.

Timing protocol (BENCHMARKS.md): wall time of the whole batch from parameters in memory to
output arrays; ``--repeats`` repetitions, ``hemolab_s`` the median and ``min_s`` the minimum;
``compile_s`` and ``write_s`` (the long table written as Parquet) apart; ``ratios`` = peer
seconds / ``hemolab_s``. A peer capped below N (``--peer-max-n``; LSODA by default at 500
patients) is timed on the first patients and extrapolated linearly, flagged in
``peer_details``. Progress goes to stderr; with ``--json`` stdout's last line is one JSON
object (for ``all``: ``{"problem": "all", "results": {"P1": ..., "P2": ...}}``).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a script: make `bench` importable from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.problems import (
    P1_GRID_H,
    P1_HARD_GATE_REL,
    P1_HARD_PATIENT,
    P1_NADIR_GATE_REL,
    P2_BATCH,
    P2_GATE_ABS,
    P2_GATE_ITEMS,
    P2_GATE_T_END,
    P2_GRID,
    p1_patient,
    p1_population,
    p2_batch,
)
from bench.references import OUTPUT_DIR, p1_gate_references, p2_reference

P1_PEERS = ("libroadrunner", "libroadrunner-2proc", "scipy-lsoda")
P2_PEERS = ("jitcdde",)
Result = dict[str, Any]


def log(message: str) -> None:
    """Print a progress line to stderr (stdout is kept for the result)."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def peak_rss_mb() -> dict[str, float]:
    """Peak resident set size (MiB) of this process and of its largest finished child."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"self": round(own, 1), "children": round(children, 1)}


def time_hemolab(
    setup: Callable[[], tuple[float, Callable[[], tuple]]], repeats: int
) -> tuple[Result, tuple]:
    """Time a ``bench.hemolab_runner`` entry point by the protocol of BENCHMARKS.md.

    The first ``solve_fn()`` call (which may JIT-compile) is timed apart; then ``repeats``
    calls give ``hemolab_s`` (median) and ``min_s``. ``compile_s`` is the explicit build time
    plus what the first call took beyond a steady call.

    Returns
    -------
    timing : dict
        ``hemolab_s, min_s, compile_s, build_s, first_call_s``.
    last : tuple
        The last ``solve_fn()`` result, ``(outputs, failures)``.
    """
    build_s, solve_fn = setup()
    start = time.perf_counter()
    last = solve_fn()
    first_call_s = time.perf_counter() - start
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        last = solve_fn()
        seconds.append(time.perf_counter() - start)
    median = statistics.median(seconds)
    timing = {
        "hemolab_s": median,
        "min_s": min(seconds),
        "compile_s": build_s + max(first_call_s - median, 0.0),
        "build_s": build_s,
        "first_call_s": first_call_s,
    }
    return timing, last


def hemolab_failed(problem: str, error: Exception) -> Result:
    """Log why hemolab has no time (not wired, or an exception) and return the report."""
    if isinstance(error, NotImplementedError):
        log(f"{problem} hemolab skipped: {error}")
    else:
        log(f"{problem} hemolab raised:\n{traceback.format_exc()}")
    return {"hemolab_error": f"{type(error).__name__}: {error}"}


def slice_params(params: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """Return the first ``n`` patients of a parameter dictionary."""
    return {name: values[:n] for name, values in params.items()}


def max_rel_error(values: np.ndarray, reference: np.ndarray) -> float:
    """Maximum relative error; ``inf`` if anything is missing (NaN)."""
    error = np.abs(np.asarray(values) / reference - 1.0)
    return float("inf") if np.isnan(error).any() else float(error.max())


def rounded(value: float | None, digits: int = 4) -> float | None:
    """Round for the report, keeping ``None``."""
    return None if value is None else float(f"{value:.{digits}g}")


# -- P1 ------------------------------------------------------------------------------------


class P1Context:
    """Inputs, references and accuracy checks of one P1 run."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.params = p1_population(n)
        self.grid = P1_GRID_H
        start = time.perf_counter()
        self.gate_indices, self.gate_circ, self.hard_circ = p1_gate_references(n)
        self.reference_s = time.perf_counter() - start
        log(f"P1 references ready in {self.reference_s:.2f} s (cache: bench/output/references)")

    def accuracy(self, circ: np.ndarray, hard_circ: np.ndarray | None) -> dict[str, float | None]:
        """Nadir gate on patients 0..min(n,100)-1 and trajectory gate on patient 5358."""
        nadirs = circ[self.gate_indices].min(axis=1)
        hard = None if hard_circ is None else max_rel_error(hard_circ, self.hard_circ)
        return {
            "nadir_max_rel_error": max_rel_error(nadirs, self.gate_circ.min(axis=1)),
            "p5358_max_rel_error": hard,
        }

    def gate_passed(self, accuracy: dict[str, float | None], failures: dict[int, str]) -> bool:
        """Whether the accuracy gate of BENCHMARKS.md holds with zero failed patients."""
        hard = accuracy["p5358_max_rel_error"]
        nadir = accuracy["nadir_max_rel_error"]
        return (
            not failures
            and nadir is not None
            and nadir <= P1_NADIR_GATE_REL
            and hard is not None
            and hard <= P1_HARD_GATE_REL
        )


def _hard_params() -> dict[str, np.ndarray]:
    return {k: np.array([v]) for k, v in p1_patient(P1_HARD_PATIENT).items()}


def _as_hard_patient(failures: dict[int, str]) -> dict[int, str]:
    """Re-key the failures of a 1-patient solve of patient 5358 to its population index."""
    return {P1_HARD_PATIENT: "; ".join(failures.values())} if failures else {}


def _peer_record(
    times: list[float],
    n_measured: int,
    n: int,
    failures: dict[int, str],
    accuracy: dict[str, Any],
    **extra: Any,
) -> Result:
    scale = n / n_measured
    return {
        "seconds": statistics.median(times) * scale,
        "min_s": min(times) * scale,
        "repeats": len(times),
        "n_measured": n_measured,
        "extrapolated": n_measured < n,
        "failed": {str(i): msg for i, msg in sorted(failures.items())},
        "accuracy": accuracy,
        **extra,
    }


def run_p1_peers(ctx: P1Context, args: argparse.Namespace) -> dict[str, Result]:
    """Time every selected P1 peer; each also reports its own accuracy and failures."""
    from bench import peers

    wanted = P1_PEERS if args.peers is None else args.peers
    details: dict[str, Result] = {}
    cap = args.peer_max_n or ctx.n

    def finish(name: str, solve: Callable, n_measured: int, repeats: int, **extra: Any) -> None:
        part = slice_params(ctx.params, n_measured)
        times: list[float] = []
        out: tuple = ()
        for _ in range(repeats):
            out = solve(part, ctx.grid)
            times.append(out[0])
        _, circ, failures = out
        if n_measured > P1_HARD_PATIENT:
            hard_circ = circ[P1_HARD_PATIENT]
        else:  # patient 5358 is always solved for the gate (not timed)
            _, hard_out, hard_fail = solve(_hard_params(), ctx.grid)
            hard_circ = hard_out[0]
            failures = {**failures, **_as_hard_patient(hard_fail)}
        hard = None if np.isnan(hard_circ).any() else hard_circ
        gate_n = min(n_measured, len(ctx.gate_indices))
        nadirs = circ[:gate_n].min(axis=1)
        accuracy = {
            "nadir_max_rel_error": max_rel_error(nadirs, ctx.gate_circ[:gate_n].min(axis=1)),
            "p5358_max_rel_error": None if hard is None else max_rel_error(hard, ctx.hard_circ),
        }
        details[name] = _peer_record(times, n_measured, ctx.n, failures, accuracy, **extra)
        log(f"P1 {name}: {details[name]['seconds']:.3f} s for {ctx.n} (measured {n_measured})")

    if "libroadrunner" in wanted:
        loop = peers.RoadRunnerP1()
        finish("libroadrunner", loop.solve, min(cap, ctx.n), args.repeats, load_s=loop.load_s)
    if "libroadrunner-2proc" in wanted:
        with peers.RoadRunnerP1Pool(2) as pool:
            finish(
                "libroadrunner-2proc",
                pool.solve,
                min(cap, ctx.n),
                args.repeats,
                startup_s=pool.startup_s,
            )
    if "scipy-lsoda" in wanted and args.lsoda_max_n > 0:
        n_lsoda = min(cap, ctx.n, args.lsoda_max_n)
        finish("scipy-lsoda", peers.scipy_lsoda_p1, n_lsoda, 1)
    return details


def run_p1_hemolab(ctx: P1Context, args: argparse.Namespace) -> tuple[Result, np.ndarray | None]:
    """Time hemolab on P1 through :func:`bench.hemolab_runner.run_p1`."""
    from bench import hemolab_runner

    try:
        timing, (circ, failures) = time_hemolab(
            lambda: hemolab_runner.run_p1(ctx.params, ctx.grid), args.repeats
        )
        if ctx.n > P1_HARD_PATIENT:
            hard_circ = circ[P1_HARD_PATIENT]
        else:  # patient 5358 is always solved for the gate (not timed)
            _, hard_solve = hemolab_runner.run_p1(_hard_params(), ctx.grid)
            hard_out, hard_fail = hard_solve()
            hard_circ = None if hard_fail else hard_out[0]
            failures = {**failures, **_as_hard_patient(hard_fail)}
    except Exception as error:  # report, keep the peers' results
        return hemolab_failed("P1", error), None
    accuracy = ctx.accuracy(circ, hard_circ)
    result = {
        **timing,
        "accuracy": accuracy,
        "failed_patients": {str(i): m for i, m in sorted(failures.items())},
        "gate_passed": ctx.gate_passed(accuracy, failures),
    }
    return result, circ


def write_long_table(outputs: np.ndarray, grid: np.ndarray, name: str, value: str) -> float:
    """Write ``outputs`` as a long Parquet table (item, time, value); return the seconds."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    start = time.perf_counter()
    n, m = outputs.shape
    table = pa.table(
        {
            "item": np.repeat(np.arange(n, dtype=np.int32), m),
            "time": np.tile(grid, n),
            value: outputs.reshape(-1),
        }
    )
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, OUTPUT_DIR / f"{name.lower()}-{value}.parquet")
    return time.perf_counter() - start


# -- P2 ------------------------------------------------------------------------------------


class P2Context:
    """Inputs, references and accuracy checks of one P2 run."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.batch = p2_batch(n)
        self.grid = P2_GRID
        self.gate_items = min(n, P2_GATE_ITEMS)
        self.gate_points = int(P2_GATE_T_END) + 1
        start = time.perf_counter()
        self.reference = np.stack(
            [
                p2_reference(self.batch["x0"][i], self.batch["beta"][i], P2_GATE_T_END)
                for i in range(self.gate_items)
            ]
        )
        self.reference_s = time.perf_counter() - start
        log(f"P2 references ready in {self.reference_s:.2f} s")

    def max_abs_error(self, x: np.ndarray) -> float:
        """Maximum absolute error of items 0..9 on t <= 200 (``inf`` if any is missing)."""
        error = np.abs(x[: self.gate_items, : self.gate_points] - self.reference)
        return float("inf") if np.isnan(error).any() else float(error.max())


def run_p2_peers(ctx: P2Context, args: argparse.Namespace) -> dict[str, Result]:
    """Time jitcdde on the P2 batch (compile apart)."""
    from bench import peers

    details: dict[str, Result] = {}
    if args.peers is not None and "jitcdde" not in args.peers:
        return details
    cap = min(args.peer_max_n or ctx.n, ctx.n)
    with peers.JitcddeMackeyGlass() as dde:
        times: list[float] = []
        out: tuple = ()
        for _ in range(args.repeats):
            out = dde.solve(ctx.batch["x0"][:cap], ctx.batch["beta"][:cap], ctx.grid)
            times.append(out[0])
        _, x, failures = out
        accuracy = {"max_abs_error": ctx.max_abs_error(x)}
        details["jitcdde"] = _peer_record(
            times, cap, ctx.n, failures, accuracy, compile_s=dde.compile_s
        )
    log(f"P2 jitcdde: {details['jitcdde']['seconds']:.3f} s (+{dde.compile_s:.2f} s compile)")
    return details


def run_p2_hemolab(ctx: P2Context, args: argparse.Namespace) -> tuple[Result, np.ndarray | None]:
    """Time hemolab on P2 through :func:`bench.hemolab_runner.run_p2`."""
    from bench import hemolab_runner

    try:
        timing, (x, failures) = time_hemolab(
            lambda: hemolab_runner.run_p2(ctx.batch["x0"], ctx.batch["beta"], ctx.grid),
            args.repeats,
        )
    except Exception as error:  # report, keep the peers' results
        return hemolab_failed("P2", error), None
    error = ctx.max_abs_error(x)
    result = {
        **timing,
        "accuracy": {"max_abs_error": error},
        "failed_patients": {str(i): m for i, m in sorted(failures.items())},
        "gate_passed": not failures and error <= P2_GATE_ABS,
    }
    return result, x


# -- assembly ------------------------------------------------------------------------------


def assemble(
    problem: str,
    n: int,
    peer_details: dict[str, Result],
    hemolab: Result,
    write: tuple[float | None, str | None],
    reference_s: float,
) -> Result:
    """Build the result object of one problem with the keys BENCHMARKS.md names."""
    hemolab_s = hemolab.get("hemolab_s")
    peer_s = {name: d["seconds"] for name, d in peer_details.items()}
    ratios = {name: (s / hemolab_s if hemolab_s else None) for name, s in peer_s.items()}
    empty_accuracy = (
        {"nadir_max_rel_error": None, "p5358_max_rel_error": None}
        if problem == "P1"
        else {"max_abs_error": None}
    )
    return {
        "problem": problem,
        "n": n,
        "hemolab_s": hemolab_s,
        "min_s": hemolab.get("min_s"),
        "compile_s": hemolab.get("compile_s"),
        "first_call_s": hemolab.get("first_call_s"),
        "write_s": write[0],
        "write_source": write[1],
        "peers": peer_s,
        "ratios": ratios,
        "accuracy": hemolab.get("accuracy", empty_accuracy),
        "failed_patients": hemolab.get("failed_patients"),
        "gate_passed": hemolab.get("gate_passed"),
        "hemolab_error": hemolab.get("hemolab_error"),
        "reference_s": reference_s,
        "peer_details": peer_details,
    }


def run(problems: list[str], args: argparse.Namespace) -> dict[str, Result]:
    """Run references and peers for every problem first, then hemolab (JAX) for each."""
    contexts: dict[str, Any] = {}
    peer_details: dict[str, dict[str, Result]] = {}
    for problem in problems:
        if problem == "P1":
            contexts[problem] = P1Context(args.n or 10_000)
            peer_details[problem] = run_p1_peers(contexts[problem], args)
        else:
            contexts[problem] = P2Context(min(args.n or P2_BATCH, P2_BATCH))
            peer_details[problem] = run_p2_peers(contexts[problem], args)
    results: dict[str, Result] = {}
    for problem in problems:
        ctx = contexts[problem]
        runner = run_p1_hemolab if problem == "P1" else run_p2_hemolab
        hemolab, outputs = runner(ctx, args)
        value = "Circ" if problem == "P1" else "x"
        if outputs is None:  # not wired yet: time the writer on a same-shaped stand-in
            write_s = write_long_table(np.zeros((ctx.n, len(ctx.grid))), ctx.grid, problem, value)
            write = (write_s, "placeholder")
        else:
            write = (write_long_table(outputs, ctx.grid, problem, value), "hemolab")
        results[problem] = assemble(
            problem, ctx.n, peer_details[problem], hemolab, write, ctx.reference_s
        )
    rss = peak_rss_mb()
    for result in results.values():
        result["peak_rss_mb"] = max(rss.values())
        result["peak_rss_mb_detail"] = rss
    return results


def finite_or_none(value: Any) -> Any:
    """Replace non-finite floats by ``None`` (strict JSON); failures are listed apart."""
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_none(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    return value


SHORT_NAMES = {
    "nadir_max_rel_error": "nadir",
    "p5358_max_rel_error": "p5358",
    "max_abs_error": "abs",
}


def _format_accuracy(accuracy: dict[str, float | None]) -> str:
    return " ".join(f"{SHORT_NAMES.get(k, k)}={rounded(v, 2)}" for k, v in accuracy.items())


def print_tables(results: dict[str, Result]) -> None:
    """Human-readable report with Rich (accuracy: nadir/p5358 relative, abs for P2)."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 130)
    for problem, result in results.items():
        table = Table(title=f"{problem}  n={result['n']}")
        for column in ("tool", "seconds", "min_s", "peer/hemolab", "accuracy", "failed", "note"):
            table.add_column(column, overflow="fold")
        table.add_row(
            "hemolab",
            str(rounded(result["hemolab_s"])),
            str(rounded(result["min_s"])),
            "",
            _format_accuracy(result["accuracy"]),
            str(len(result["failed_patients"] or {})),
            f"compile {rounded(result['compile_s'])} s" if result["compile_s"] else "",
        )
        for name, d in result["peer_details"].items():
            notes = [
                f"{k} {rounded(d[k], 3)}" for k in ("load_s", "startup_s", "compile_s") if k in d
            ]
            if d["extrapolated"]:
                notes.append(f"extrapolated from {d['n_measured']}")
            table.add_row(
                name,
                str(rounded(d["seconds"])),
                str(rounded(d["min_s"])),
                str(rounded(result["ratios"][name], 3)),
                _format_accuracy(d["accuracy"]),
                ", ".join(d["failed"]) or "0",
                "; ".join(notes),
            )
        console.print(table)
        if result["hemolab_error"]:
            console.print(f"hemolab: {result['hemolab_error']}", style="yellow")
        console.print(
            f"write_s={rounded(result['write_s'])} ({result['write_source']}), "
            f"reference_s={rounded(result['reference_s'])}, "
            f"peak_rss_mb={result['peak_rss_mb']}, gate_passed={result['gate_passed']}\n"
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("problem", choices=["P1", "P2", "all"])
    parser.add_argument("--n", type=int, help="batch size (P1 default 10000; P2 <= 1000)")
    parser.add_argument("--repeats", type=int, default=3, help="repetitions (median, min)")
    parser.add_argument("--json", action="store_true", help="one JSON object on the last line")
    parser.add_argument(
        "--peers",
        type=lambda s: [p for p in s.split(",") if p],
        default=None,
        help=f"comma list among {', '.join(P1_PEERS + P2_PEERS)} (default: all; '' for none)",
    )
    parser.add_argument(
        "--peer-max-n", type=int, default=None, help="time peers on at most N items, extrapolate"
    )
    parser.add_argument(
        "--lsoda-max-n", type=int, default=500, help="cap of the slow LSODA peer (0: skip)"
    )
    args = parser.parse_args(argv)
    if args.repeats < 1 or (args.n is not None and args.n < 1):
        parser.error("--repeats and --n must be >= 1")
    unknown = sorted(set(args.peers or ()) - set(P1_PEERS + P2_PEERS))
    if unknown:
        parser.error(f"unknown peers {unknown}; expected among {list(P1_PEERS + P2_PEERS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python bench/run.py``."""
    args = parse_args(argv)
    problems = ["P1", "P2"] if args.problem == "all" else [args.problem]
    results = run(problems, args)
    if args.json:
        payload = (
            results[problems[0]] if len(problems) == 1 else {"problem": "all", "results": results}
        )
        print(json.dumps(finite_or_none(payload), allow_nan=False))
    else:
        print_tables(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
