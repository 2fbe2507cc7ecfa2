"""Run the P1-P4 benchmarks: hemolab against peers measured in the same run.

Usage::

    python bench/run.py P1|P2|P3|P4|all [--n N] [--repeats 3] [--json]
                        [--peers NAME,...] [--peer-max-n N] [--lsoda-max-n 500]
                        [--protocols 5]

P3 (calibration of one patient, and a batch of ``--n`` <= 50) times the peer's MAP fits;
hemolab's fit does not exist yet (``hemolab_s: null`` with the reason), so its building
blocks are measured instead (forward solve, forward-mode Jacobian) under
``building_blocks``, labelled as such. P4 (protocol evaluation over ``--n`` <= 1,000
patients) times ``--protocols`` evaluations of a fixed protocol set with hemolab and with a
libRoadRunner loop, checks crossing-based episode durations against a tight reference and
the two tools' P(grade 4) against each other, then runs the search itself (CMA-ES through
``hemolab.search.cma_es``, seeded, twice to check that it reproduces).

Order of work, so that JAX is never forked: (1) tight references (cached on disk) and every
peer, including the spawn-context libRoadRunner pool, for all requested problems; (2) only
then hemolab through :mod:`bench.hemolab_runner`, which imports JAX.

Timing protocol (BENCHMARKS.md): wall time of the whole batch from parameters in memory to
output arrays; ``--repeats`` repetitions, ``hemolab_s`` the median and ``min_s`` the minimum;
``compile_s`` and ``write_s`` (the long table written as Parquet) apart; ``ratios`` = peer
seconds / ``hemolab_s``. A peer capped below N (``--peer-max-n``; LSODA by default at 500
patients) is timed on the first patients and extrapolated linearly, flagged in
``peer_details``. Progress goes to stderr; with ``--json`` stdout's last line is one JSON
object (for ``all``: ``{"problem": "all", "results": {"P1": ..., "P4": ...}}``).
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
    P3_BATCH,
    P3_FREE,
    P3_MAP_GATE_REL,
    P3_PATIENT,
    P4_DURATION_GATE_H,
    P4_P_MAX,
    P4_PATIENTS,
    P4_PROBABILITY_TOL,
    P4_PROTOCOLS,
    P4_REFERENCE_PATIENTS,
    P4Protocol,
    p1_patient,
    p1_patient_rows,
    p1_population,
    p2_batch,
    p4_grade4,
    p4_protocols,
)
from bench.references import (
    OUTPUT_DIR,
    P4_REF_RTOL,
    p1_gate_references,
    p2_reference,
    p3_data,
    p3_predict,
    p3_reference_map,
    p4_reference_longest,
)

P1_PEERS = ("libroadrunner", "libroadrunner-2proc", "scipy-lsoda")
P1_SENSITIVITY_N = 1000  # patients of the forward-sensitivity measurement
P2_PEERS = ("jitcdde",)
P3_PEERS = ("libroadrunner-lsq",)
P4_PEERS = ("libroadrunner",)
ALL_PEERS = tuple(dict.fromkeys(P1_PEERS + P2_PEERS + P3_PEERS + P4_PEERS))
PROBLEMS = ("P1", "P2", "P3", "P4")
P3_FIT_REPEATS = 10
"""A single fit takes ~20 ms: it is repeated at least this often (median, min)."""
P3_REFERENCE_PATIENTS = 5
"""Peer fits of patients 0..4 are checked against the tight MAP."""
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
    if args.sensitivities:  # forward sensitivities vs a plain solve (same function, same run)
        n_sens = min(ctx.n, P1_SENSITIVITY_N)
        log(f"P1 forward sensitivities, {n_sens} patients")
        try:
            result["sensitivities"] = hemolab_runner.p1_sensitivities(
                slice_params(ctx.params, n_sens), ctx.grid, repeats=args.repeats
            )
        except Exception as error:  # report, keep the timing
            result["sensitivities"] = {"error": f"{type(error).__name__}: {error}"}
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


# -- P3 ------------------------------------------------------------------------------------


class P3Context:
    """Synthetic data, truths and tight MAPs of one P3 run (batch of ``n`` patients)."""

    def __init__(self, n: int) -> None:
        self.n = n
        start = time.perf_counter()
        self.truths, self.observations = p3_data(n)
        self.fixed = [{k: v for k, v in row.items() if k not in P3_FREE} for row in self.truths]
        self.checked = min(n, P3_REFERENCE_PATIENTS)
        self.reference_map = np.stack(
            [p3_reference_map(self.observations[i], self.fixed[i]) for i in range(self.checked)]
        )
        self.circ_true = p3_predict(self.truths[P3_PATIENT])
        self.reference_s = time.perf_counter() - start
        log(f"P3 data and reference MAPs ready in {self.reference_s:.2f} s")

    def truth(self, i: int) -> list[float]:
        """True ``(Slope, MTT, Circ0)`` of patient ``i``."""
        return [self.truths[i][name] for name in P3_FREE]

    def map_error(self, theta: np.ndarray) -> float:
        """Max relative error of fitted ``theta`` (rows = patients 0..) vs the tight MAPs."""
        rows = min(len(theta), self.checked)
        return max_rel_error(theta[:rows], self.reference_map[:rows])


def run_p3_peers(ctx: P3Context, args: argparse.Namespace) -> dict[str, Result]:
    """Time ``least_squares`` over libRoadRunner: one patient's fit, then the batch loop."""
    from bench import peers

    details: dict[str, Result] = {}
    if args.peers is not None and "libroadrunner-lsq" not in args.peers:
        return details
    fitter = peers.RoadRunnerP3()
    obs0, fixed0 = ctx.observations[P3_PATIENT], ctx.fixed[P3_PATIENT]
    fits = [fitter.fit(obs0, fixed0) for _ in range(max(P3_FIT_REPEATS, args.repeats))]
    times = [f["seconds"] for f in fits]
    last = fits[-1]
    failed = {} if last["success"] else {str(P3_PATIENT): last["message"]}
    details["libroadrunner-lsq"] = {
        "seconds": statistics.median(times),
        "min_s": min(times),
        "repeats": len(times),
        "n_measured": 1,
        "extrapolated": False,
        "failed": failed,
        "accuracy": {"map_max_rel_error": ctx.map_error(last["theta"][None])},
        "theta": dict(zip(P3_FREE, last["theta"].tolist(), strict=True)),
        "truth": dict(zip(P3_FREE, ctx.truth(P3_PATIENT), strict=True)),
        "reference_map": dict(zip(P3_FREE, ctx.reference_map[0].tolist(), strict=True)),
        "seconds_per_simulation": statistics.median(times) / last["simulations"],
        "load_s": fitter.load_s,
        **{k: last[k] for k in ("nfev", "njev", "simulations", "status", "message", "cost")},
    }
    log(f"P3 libroadrunner-lsq: {details['libroadrunner-lsq']['seconds'] * 1e3:.1f} ms per fit")
    batch_times: list[float] = []
    batch: list[dict[str, Any]] = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        batch = [fitter.fit(ctx.observations[i], ctx.fixed[i]) for i in range(ctx.n)]
        batch_times.append(time.perf_counter() - start)
    theta = np.stack([f["theta"] for f in batch])
    truth = np.array([ctx.truth(i) for i in range(ctx.n)])
    details["libroadrunner-lsq-batch"] = {
        "seconds": statistics.median(batch_times),
        "min_s": min(batch_times),
        "repeats": len(batch_times),
        "n_measured": ctx.n,
        "extrapolated": False,
        "failed": {str(i): f["message"] for i, f in enumerate(batch) if not f["success"]},
        "accuracy": {"map_max_rel_error": ctx.map_error(theta)},
        "map_checked_patients": ctx.checked,
        "simulations_total": int(sum(f["simulations"] for f in batch)),
        "failed_simulations": int(sum(f["failed_simulations"] for f in batch)),
        "median_abs_log_error_vs_truth": dict(
            zip(P3_FREE, np.median(np.abs(np.log(theta / truth)), axis=0).tolist(), strict=True)
        ),
    }
    log(f"P3 libroadrunner-lsq batch of {ctx.n}: {statistics.median(batch_times):.3f} s")
    return details


def run_p3_hemolab(ctx: P3Context, args: argparse.Namespace) -> Result:
    """hemolab's P3 fits: the batch of ``n`` in one call, one patient alone, and NUTS."""
    from bench import hemolab_runner

    try:
        timing, (theta, failures) = time_hemolab(
            lambda: hemolab_runner.run_p3(ctx.observations, ctx.fixed), args.repeats
        )
        accuracy = {"map_max_rel_error": ctx.map_error(np.asarray(theta))}
        result: Result = {
            **timing,
            "accuracy": accuracy,
            "failed_patients": {str(i): m for i, m in sorted(failures.items())},
            "gate_passed": not failures and accuracy["map_max_rel_error"] <= P3_MAP_GATE_REL,
        }
        one = slice(P3_PATIENT, P3_PATIENT + 1)
        single, (theta1, _) = time_hemolab(
            lambda: hemolab_runner.run_p3(ctx.observations[one], ctx.fixed[one]),
            max(P3_FIT_REPEATS, args.repeats),
        )
        result["single_fit"] = {**single, "theta": dict(zip(P3_FREE, theta1[0].tolist(),
                                                             strict=True))}  # fmt: skip
        log(f"P3 hemolab: batch of {ctx.n} {timing['hemolab_s']:.3f} s, single fit "
            f"{single['hemolab_s'] * 1e3:.1f} ms")  # fmt: skip
        laplace, _ = time_hemolab(
            lambda: hemolab_runner.run_p3_laplace(ctx.observations[one], ctx.fixed[one]),
            max(P3_FIT_REPEATS, args.repeats),
        )
        laplace_batch, _ = time_hemolab(
            lambda: hemolab_runner.run_p3_laplace(ctx.observations, ctx.fixed), args.repeats
        )
        step = hemolab_runner.p3_laplace_step_s(ctx.observations[one], ctx.fixed[one])
        result["laplace"] = {"single_s": laplace["hemolab_s"], "single_min_s": laplace["min_s"],
                             "single_kernel_s": step, "batch_s": laplace_batch["hemolab_s"],
                             "batch_per_patient_s": laplace_batch["hemolab_s"] / ctx.n}  # fmt: skip
        log(f"P3 hemolab Laplace at the MAP: one patient {laplace['hemolab_s'] * 1e3:.2f} ms "
            f"(kernel alone {step * 1e3:.2f} ms), batch of {ctx.n} "
            f"{laplace_batch['hemolab_s'] * 1e3:.1f} ms")  # fmt: skip
        result["nuts"] = hemolab_runner.run_p3_nuts(ctx.observations[one], ctx.fixed[one])
        log(f"P3 hemolab NUTS 4 x (1000 + 1000): {result['nuts']['seconds']:.2f} s")
    except Exception as error:  # report, keep the peers' results
        result = hemolab_failed("P3", error)
    try:
        result["calibration_entry_point"] = hemolab_runner.calibration_entry_point()
        result["building_blocks"] = hemolab_runner.p3_building_blocks(
            ctx.observations,
            ctx.fixed,
            ctx.truths[P3_PATIENT],
            ctx.circ_true,
            repeats=max(20, args.repeats),
        )
    except Exception as error:
        log(f"P3 hemolab building blocks raised:\n{traceback.format_exc()}")
        result["building_blocks"] = {"error": f"{type(error).__name__}: {error}"}
    return result


def finish_p3(ctx: P3Context, peer_details: dict[str, Result], hemolab: Result) -> Result:
    """The P3 result: P1/P2 keys plus ``building_blocks`` and what is not wired yet."""
    result = assemble("P3", ctx.n, peer_details, hemolab, (None, None), ctx.reference_s)
    blocks = hemolab.get("building_blocks", {})
    single = peer_details.get("libroadrunner-lsq")
    if single is not None and "forward_fn_s" in blocks:
        # like for like: one model evaluation, one Jacobian (the peer's 2-point differences
        # cost 3 evaluations beyond the base point)
        blocks["peer_simulation_s"] = single["seconds_per_simulation"]
        blocks["peer_fd_jacobian_s"] = 3 * single["seconds_per_simulation"]
    result["building_blocks"] = blocks
    result["calibration_entry_point"] = hemolab.get("calibration_entry_point")
    batch = peer_details.get("libroadrunner-lsq-batch")
    one = hemolab.get("single_fit", {}).get("hemolab_s")
    result["ratios"] = {
        "libroadrunner-lsq (single fit)": single["seconds"] / one if single and one else None,
        "libroadrunner-lsq-batch": (
            batch["seconds"] / result["hemolab_s"] if batch and result["hemolab_s"] else None
        ),
    }
    result["single_fit"] = hemolab.get("single_fit")
    result["nuts"] = hemolab.get("nuts")
    result["laplace"] = hemolab.get("laplace")
    result["not_wired"] = {
        "forecast": "time to ANC < 0.5 is hemolab.forecast.threshold_forecast; not timed here",
        "first_fit_warm_cache": "a second process with a warm persistent cache is not timed yet",
    }
    return result


# -- P4 ------------------------------------------------------------------------------------


class P4Context:
    """Population, protocols and reference durations of one P4 run."""

    def __init__(self, n: int, k: int) -> None:
        self.n = n
        self.params = p1_population(n)
        self.protocols: list[P4Protocol] = p4_protocols(k)
        self.checked = min(n, P4_REFERENCE_PATIENTS)
        rows = p1_patient_rows(slice_params(self.params, self.checked))
        start = time.perf_counter()
        self.reference = np.stack([p4_reference_longest(rows, p) for p in self.protocols])
        self.reference_s = time.perf_counter() - start
        log(f"P4 references ready in {self.reference_s:.2f} s (cache: bench/output/references)")

    def accuracy(self, longest: np.ndarray) -> dict[str, float | None]:
        """Longest-episode error (h) on the reference patients, and grade-4 flags flipped."""
        part = longest[:, : self.checked]
        error = np.abs(part - self.reference)
        flips = p4_grade4(part) != p4_grade4(self.reference)
        return {
            "longest_max_abs_error_h": float("inf")
            if np.isnan(error).any()
            else float(error.max()),
            "grade4_flags_flipped": int(flips.sum()),
        }

    def arbitrate(self, longest: np.ndarray, other: np.ndarray, top: int = 3) -> list[Result]:
        """The ``top`` largest hemolab/peer differences overall, each against the reference.

        Patients beyond the reference set disagree too; a tight solve of each of the worst
        says which tool is right (SciPy only, a second or so).
        """
        diff = np.abs(longest - other)
        diff[np.isnan(diff)] = -1.0
        worst = np.argsort(diff, axis=None)[::-1][:top]
        rows = []
        for flat in worst.tolist():
            k, i = divmod(flat, diff.shape[1])
            if diff[k, i] <= 0.0:
                break
            protocol = self.protocols[k]
            row = {name: float(values[i]) for name, values in self.params.items()}
            reference = p4_reference_longest([row], protocol)[0]
            rows.append(
                {
                    "protocol": k,
                    "patient": i,
                    "hemolab_h": float(longest[k, i]),
                    "peer_h": float(other[k, i]),
                    "reference_h": float(reference),
                }
            )
        return rows

    def summaries(self, longest: np.ndarray, failures: list[dict[int, str]]) -> list[Result]:
        """Per protocol: objective, P(grade 4) over the patients that finished, feasibility."""
        out = []
        for protocol, row, fails in zip(self.protocols, longest, failures, strict=True):
            ok = ~np.isnan(row)
            p = float(p4_grade4(row[ok]).mean()) if ok.any() else None
            out.append(
                {
                    **protocol.as_dict(),
                    "p_grade4": p,
                    "feasible": None if p is None else p <= P4_P_MAX,
                    "failed": len(fails),
                }
            )
        return out


def run_p4_peers(ctx: P4Context, args: argparse.Namespace) -> dict[str, Result]:
    """Time the libRoadRunner loop over every protocol (one evaluation each)."""
    from bench import peers

    details: dict[str, Result] = {}
    if args.peers is not None and "libroadrunner" not in args.peers:
        return details
    loop = peers.RoadRunnerP4()
    times: list[float] = []
    longest = np.empty((len(ctx.protocols), ctx.n))
    failures: list[dict[int, str]] = []
    for _ in range(args.repeats):
        failures = []
        total = 0.0
        for k, protocol in enumerate(ctx.protocols):
            seconds, longest[k], fails = loop.evaluate(ctx.params, protocol)
            total += seconds
            failures.append(fails)
        times.append(total)
    flat = {f"{k}:{i}": m for k, fails in enumerate(failures) for i, m in sorted(fails.items())}
    median = statistics.median(times)
    details["libroadrunner"] = {
        "seconds": median,
        "min_s": min(times),
        "repeats": len(times),
        "n_measured": ctx.n,
        "extrapolated": False,
        "failed": flat,
        "accuracy": ctx.accuracy(longest),
        "evals_per_s": len(ctx.protocols) / median,
        "load_s": loop.load_s,
        "protocols": ctx.summaries(longest, failures),
        "crossing_method": (
            "libRoadRunner SBML events on Circ < 0.5 / Circ > 0.5 (CVODE root finding) "
            "recording t_down and max_below as hemolab's triggers do"
        ),
        "_longest": longest,
    }
    log(f"P4 libroadrunner: {median:.3f} s for {len(ctx.protocols)} protocols x {ctx.n}")
    return details


def run_p4_hemolab(ctx: P4Context, args: argparse.Namespace) -> tuple[Result, np.ndarray | None]:
    """Time hemolab's evaluations through :func:`bench.hemolab_runner.run_p4`."""
    from bench import hemolab_runner

    try:
        timing, (longest, failures) = time_hemolab(
            lambda: hemolab_runner.run_p4(ctx.params, ctx.protocols), args.repeats
        )
        search = hemolab_runner.search_entry_point()
    except Exception as error:  # report, keep the peers' results
        return hemolab_failed("P4", error), None
    accuracy = ctx.accuracy(longest)
    n_failed = sum(len(f) for f in failures)
    result = {
        **timing,
        "accuracy": accuracy,
        "failed_patients": {
            f"{k}:{i}": m for k, fails in enumerate(failures) for i, m in sorted(fails.items())
        },
        "gate_passed": n_failed == 0
        and accuracy["longest_max_abs_error_h"] is not None
        and accuracy["longest_max_abs_error_h"] <= P4_DURATION_GATE_H,
        "protocols": ctx.summaries(longest, failures),
        "crossing_method": hemolab_runner.P4_CROSSING_METHOD,
        "search_entry_point": search,
        "search": run_p4_search(ctx),
    }
    log(f"P4 search: {result['search']}")
    return result, longest


P4_SEARCH_BUDGET = 64
"""Protocols CMA-ES evaluates in the P4 search (each over every patient)."""
P4_SEARCH_SEED = 4


def run_p4_search(ctx: P4Context, budget: int = P4_SEARCH_BUDGET) -> Result:
    """The P4 search itself: CMA-ES (``hemolab.search.cma_es``) over dose, interval, rescue
    and rescue start, each proposal one evaluation (a protocol over every patient, the same
    solve as the timed loop), seeded; the best feasible protocol and evaluations per second."""
    import importlib

    from bench import hemolab_runner

    hemolab_runner._import_hemolab()  # the checkout's hemolab, as the timed runs use
    search = importlib.import_module("hemolab.search")
    space = search.SearchSpace(
        [
            search.Continuous("dose_mg", 50.0, 150.0, "mg"),
            search.Integer("interval_d", 14, 28, "d"),
            search.Categorical("rescue", (False, True)),
            search.Integer("rescue_start_d", 1, 7, "d"),
        ],
        name="P4",
    )

    def evaluate(points: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        k = len(points["dose_mg"])
        protocols = [
            P4Protocol(
                float(points["dose_mg"][i]),
                int(points["interval_d"][i]),
                bool(points["rescue"][i]),
                int(points["rescue_start_d"][i]),
            )
            for i in range(k)
        ]
        _, solve = hemolab_runner.run_p4(ctx.params, protocols)
        longest, _ = solve()
        p = np.array([p4_grade4(row[~np.isnan(row)]).mean() for row in longest])
        values = -np.array([pr.dose_intensity for pr in protocols])
        return values, np.maximum(p - P4_P_MAX, 0.0)

    start = time.perf_counter()
    res = search.cma_es(space, evaluate, budget=budget, seed=P4_SEARCH_SEED)
    seconds = time.perf_counter() - start
    again = search.cma_es(space, evaluate, budget=budget, seed=P4_SEARCH_SEED)
    return {
        "method": "cma-es (hemolab.search.cma_es)",
        "budget": budget,
        "seed": P4_SEARCH_SEED,
        "seconds": seconds,
        "evals_per_s": res.n_evaluated / seconds,
        "n_evaluated": res.n_evaluated,
        "n_feasible": int(((res.violation <= 0) & ~np.isnan(res.values)).sum()),
        "best": res.best,
        "best_dose_intensity_mg_per_week": None if res.best_value is None else -res.best_value,
        "reproducible": again.best == res.best and again.best_value == res.best_value,
    }


def finish_p4(
    ctx: P4Context,
    peer_details: dict[str, Result],
    hemolab: Result,
    longest: np.ndarray | None,
) -> Result:
    """The P4 result: P1/P2 keys plus evaluations per second, protocols and agreement."""
    peer_longest = {name: d.pop("_longest") for name, d in peer_details.items()}
    result = assemble("P4", ctx.n, peer_details, hemolab, (None, None), ctx.reference_s)
    k = len(ctx.protocols)
    hemolab_s = hemolab.get("hemolab_s")
    result["evaluations"] = k
    result["evals_per_s"] = {
        "hemolab": k / hemolab_s if hemolab_s else None,
        **{name: d["evals_per_s"] for name, d in peer_details.items()},
    }
    result["seconds_per_eval"] = hemolab_s / k if hemolab_s else None
    result["protocols"] = hemolab.get("protocols")
    result["crossing_method"] = {
        "hemolab": hemolab.get("crossing_method"),
        **{name: d["crossing_method"] for name, d in peer_details.items()},
        "reference": (
            f"SciPy DOP853 rtol {P4_REF_RTOL:g} on log states, solve_ivp events on log Circ - "
            f"log 0.5 (patients 0..{ctx.checked - 1})"
        ),
    }
    agreement: dict[str, Any] = {}
    for name, other in peer_longest.items():
        if longest is None:
            continue
        both = ~np.isnan(longest) & ~np.isnan(other)
        p_h = np.array([p4_grade4(r[m]).mean() for r, m in zip(longest, both, strict=True)])
        p_o = np.array([p4_grade4(r[m]).mean() for r, m in zip(other, both, strict=True)])
        diff = float(np.abs(p_h - p_o).max())
        agreement[name] = {
            "p_grade4_max_abs_diff": diff,
            "tolerance": P4_PROBABILITY_TOL,
            "agree": diff <= P4_PROBABILITY_TOL,
            "longest_max_abs_diff_h": float(np.abs(longest - other)[both].max()),
            "grade4_flags_differing": int((p4_grade4(longest) != p4_grade4(other))[both].sum()),
            "worst_checked": ctx.arbitrate(longest, other),
        }
    result["agreement"] = agreement
    feasible = [p for p in result["protocols"] or [] if p["feasible"]]
    result["best_of_fixed_set"] = (
        max(feasible, key=lambda p: p["dose_intensity_mg_per_week"]) if feasible else None
    )
    result["search_entry_point"] = hemolab.get("search_entry_point")
    result["search"] = hemolab.get("search")
    return result


# -- assembly ------------------------------------------------------------------------------

EMPTY_ACCURACY: dict[str, dict[str, None]] = {
    "P1": {"nadir_max_rel_error": None, "p5358_max_rel_error": None},
    "P2": {"max_abs_error": None},
    "P3": {"map_max_rel_error": None},
    "P4": {"longest_max_abs_error_h": None, "grade4_flags_flipped": None},
}


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
    empty_accuracy = EMPTY_ACCURACY[problem]
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
        **({"sensitivities": hemolab["sensitivities"]} if "sensitivities" in hemolab else {}),
    }


def make_context(problem: str, args: argparse.Namespace) -> Any:
    """Inputs and references of one problem (SciPy/NumPy only: safe before any fork)."""
    if problem == "P1":
        return P1Context(args.n or 10_000)
    if problem == "P2":
        return P2Context(min(args.n or P2_BATCH, P2_BATCH))
    if problem == "P3":
        return P3Context(min(args.n or P3_BATCH, P3_BATCH))
    return P4Context(min(args.n or P4_PATIENTS, P4_PATIENTS), args.protocols)


PEER_RUNNERS: dict[str, Callable[[Any, argparse.Namespace], dict[str, Result]]] = {
    "P1": run_p1_peers,
    "P2": run_p2_peers,
    "P3": run_p3_peers,
    "P4": run_p4_peers,
}


def run(problems: list[str], args: argparse.Namespace) -> dict[str, Result]:
    """Run references and peers for every problem first, then hemolab (JAX) for each."""
    contexts: dict[str, Any] = {}
    peer_details: dict[str, dict[str, Result]] = {}
    for problem in problems:
        contexts[problem] = make_context(problem, args)
        peer_details[problem] = PEER_RUNNERS[problem](contexts[problem], args)
    results: dict[str, Result] = {}
    for problem in problems:
        ctx = contexts[problem]
        if problem == "P3":
            results[problem] = finish_p3(ctx, peer_details[problem], run_p3_hemolab(ctx, args))
            continue
        if problem == "P4":
            hemolab, longest = run_p4_hemolab(ctx, args)
            results[problem] = finish_p4(ctx, peer_details[problem], hemolab, longest)
            continue
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
    "map_max_rel_error": "map",
    "longest_max_abs_error_h": "longest_h",
    "grade4_flags_flipped": "g4_flips",
}


def _format_accuracy(accuracy: dict[str, float | None]) -> str:
    return " ".join(f"{SHORT_NAMES.get(k, k)}={rounded(v, 2)}" for k, v in accuracy.items())


def print_tables(results: dict[str, Result]) -> None:
    """Human-readable report with Rich: one table per problem (hemolab, then each peer).

    Accuracy: nadir/p5358 relative (P1), abs (P2), MAP relative to the tight MAP (P3),
    longest-episode hours vs the reference and grade-4 flags flipped (P4).
    """
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 130)
    for problem, result in results.items():
        unit = {"P3": " (per fit; batch row: all fits)", "P4": " (all protocols)"}
        table = Table(title=f"{problem}  n={result['n']}{unit.get(problem, '')}")
        for column in ("tool", "seconds", "min_s", "peer/hemolab", "accuracy", "failed", "note"):
            table.add_column(column, overflow="fold")
        evals = result.get("evals_per_s") or {}
        note = f"compile {rounded(result['compile_s'])} s" if result["compile_s"] else ""
        if evals.get("hemolab"):
            note += f"; {rounded(evals['hemolab'], 3)} evals/s"
        table.add_row(
            "hemolab",
            str(rounded(result["hemolab_s"])),
            str(rounded(result["min_s"])),
            "",
            _format_accuracy(result["accuracy"]),
            str(len(result["failed_patients"] or {})),
            note,
        )
        for name, d in result["peer_details"].items():
            notes = [
                f"{k} {rounded(d[k], 3)}" for k in ("load_s", "startup_s", "compile_s") if k in d
            ]
            if d["extrapolated"]:
                notes.append(f"extrapolated from {d['n_measured']}")
            if "simulations" in d:
                notes.append(f"{d['simulations']} simulations (nfev {d['nfev']})")
            if "evals_per_s" in d:
                notes.append(f"{rounded(d['evals_per_s'], 3)} evals/s")
            ratios = result["ratios"]  # P3 names its single-fit ratio apart from the batch's
            ratio = ratios.get(name, ratios.get(f"{name} (single fit)"))
            table.add_row(
                name,
                str(rounded(d["seconds"])),
                str(rounded(d["min_s"])),
                str(rounded(ratio, 3)) if ratio is not None else "",
                _format_accuracy(d["accuracy"]),
                str(len(d["failed"])),
                "; ".join(notes),
            )
        console.print(table)
        if result["hemolab_error"]:
            console.print(f"hemolab: {result['hemolab_error']}", style="yellow")
        sens = result.get("sensitivities")
        if sens:
            console.print(
                f"forward sensitivities ({', '.join(sens.get('parameters', []))}; "
                f"n={sens.get('n')}): {rounded(sens.get('sensitivities_s'))} s vs plain "
                f"{rounded(sens.get('plain_s'))} s = {rounded(sens.get('ratio'), 3)}x "
                f"(target <= 5); vs central differences {rounded(sens.get('fd_max_rel_diff'), 2)}"
                if "error" not in sens
                else f"forward sensitivities: {sens['error']}"
            )
        if problem == "P3":
            _print_p3_blocks(console, result)
        if problem == "P4":
            _print_p4_protocols(console, result)
        console.print(
            f"write_s={rounded(result['write_s'])} ({result['write_source']}), "
            f"reference_s={rounded(result['reference_s'])}, "
            f"peak_rss_mb={result['peak_rss_mb']}, gate_passed={result['gate_passed']}\n"
        )


def _print_p3_blocks(console: Any, result: Result) -> None:
    """P3: hemolab's building blocks (not fit times) beside the peer's model evaluation."""
    from rich.table import Table

    blocks = result.get("building_blocks") or {}
    if "error" in blocks or not blocks:
        console.print(f"building blocks: {blocks.get('error', 'not measured')}", style="yellow")
        return
    table = Table(title="P3 building blocks (not fit times)")
    for column in ("piece", "hemolab s", "peer s (libRoadRunner)"):
        table.add_column(column)
    rows = [
        ("one forward solve, hl.simulate", "forward_simulate_s", "peer_simulation_s"),
        ("one forward solve, jitted make_solve_fn", "forward_fn_s", "peer_simulation_s"),
        ("Jacobian 15x3 (jacfwd / 2-point FD)", "jacobian_s", "peer_fd_jacobian_s"),
        (f"Jacobians of {blocks.get('n_patients')} patients", "jacobian_batch_s", None),
    ]
    for label, mine, peer in rows:
        table.add_row(
            label,
            str(rounded(blocks.get(mine))),
            "" if peer is None else str(rounded(blocks.get(peer))),
        )
    console.print(table)
    console.print(
        f"compile_s={rounded(blocks.get('compile_s'))}, forward_max_rel_error="
        f"{rounded(blocks.get('forward_max_rel_error'), 2)}, jacobian_fd_max_abs_diff="
        f"{rounded(blocks.get('jacobian_fd_max_abs_diff'), 2)}; not wired: "
        f"{', '.join(result.get('not_wired') or {})}"
    )


def _print_p4_protocols(console: Any, result: Result) -> None:
    """P4: each protocol's objective and P(grade 4) by hemolab and by each peer."""
    from rich.table import Table

    peers = {name: d.get("protocols") or [] for name, d in result["peer_details"].items()}
    table = Table(title="P4 protocols (constraint P(grade 4) <= 0.1)")
    for column in ("dose mg", "interval d", "rescue", "mg/week", "P hemolab", *peers, "feasible"):
        table.add_column(column)
    mine = result.get("protocols") or next(iter(peers.values()), [])
    for k, p in enumerate(mine):
        rescue = f"day {p['rescue_start_d']}" if p["rescue"] else "off"
        theirs = [
            str(rounded(rows[k]["p_grade4"])) if k < len(rows) else "" for rows in peers.values()
        ]
        table.add_row(
            f"{p['dose_mg']:.1f}",
            str(p["interval_d"]),
            rescue,
            f"{p['dose_intensity_mg_per_week']:.1f}",
            str(rounded(p["p_grade4"])) if result.get("protocols") else "",
            *theirs,
            str(p["feasible"]),
        )
    console.print(table)
    for name, a in (result.get("agreement") or {}).items():
        console.print(
            f"agreement with {name}: max |dP| = {rounded(a['p_grade4_max_abs_diff'], 2)} "
            f"(tolerance {a['tolerance']}, agree={a['agree']}), longest episodes max |diff| = "
            f"{rounded(a['longest_max_abs_diff_h'], 2)} h"
        )
        for w in a["worst_checked"]:
            console.print(
                f"  protocol {w['protocol']} patient {w['patient']}: hemolab "
                f"{w['hemolab_h']:.3f} h, {name} {w['peer_h']:.3f} h, reference "
                f"{w['reference_h']:.3f} h"
            )
    console.print(
        f"search: {result.get('search')}; best of the fixed set: {result.get('best_of_fixed_set')}"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("problem", choices=[*PROBLEMS, "all"])
    parser.add_argument(
        "--n",
        type=int,
        help="batch size (P1 default 10000; P2 <= 1000; P3 fits <= 50; P4 patients <= 1000)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="repetitions (median, min)")
    parser.add_argument(
        "--no-sensitivities",
        dest="sensitivities",
        action="store_false",
        help=f"P1: skip the forward-sensitivity ratio (first {P1_SENSITIVITY_N} patients)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object on the last line")
    parser.add_argument(
        "--peers",
        type=lambda s: [p for p in s.split(",") if p],
        default=None,
        help=f"comma list among {', '.join(ALL_PEERS)} (default: all; '' for none)",
    )
    parser.add_argument(
        "--protocols", type=int, default=P4_PROTOCOLS, help="P4: protocols evaluated (<= 5 fixed)"
    )
    parser.add_argument(
        "--peer-max-n", type=int, default=None, help="time peers on at most N items, extrapolate"
    )
    parser.add_argument(
        "--lsoda-max-n", type=int, default=500, help="cap of the slow LSODA peer (0: skip)"
    )
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.protocols < 1 or (args.n is not None and args.n < 1):
        parser.error("--repeats, --protocols and --n must be >= 1")
    unknown = sorted(set(args.peers or ()) - set(ALL_PEERS))
    if unknown:
        parser.error(f"unknown peers {unknown}; expected among {list(ALL_PEERS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python bench/run.py``."""
    args = parse_args(argv)
    problems: list[str] = list(PROBLEMS) if args.problem == "all" else [args.problem]
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
