"""Stream a virtual P1 population to Parquet in chunks and measure peak memory.

Usage::

    python bench/population_stream.py [--n 10000 100000] [--chunk-size 2048] [--json]
                                      [--out-dir DIR]

BENCHMARKS.md asks that N = 100,000 patients stream to Parquet with bounded memory. Each
population runs ``hemolab.simulate_population`` (``keep_results=False``) on the P1 Friberg
model of :mod:`bench.models` with the P1 IIV (CV 30 % on CL, MTT, Circ0, Slope, i.e.
``ω² = ln(1.09)``) and the P1 regimen (100 mg bolus into ``A`` every 504 h, 6 cycles, output
every 24 h on 0-3024 h, rtol 1e-6, atol 1e-8). The virtual patients are drawn by
:class:`hemolab.Population` (seed 20261124, blockwise streams), not by the defining draw of
BENCHMARKS.md: this benchmark measures memory, not accuracy.

Every measurement runs in a fresh interpreter (``subprocess`` running this script with
``--child N``; JAX is never forked) that reports its peak RSS (``ru_maxrss``) as one JSON
line. A baseline child (``--child 0``) imports hemolab and JAX, compiles the model and
streams one patient through the same code path, so RSS growth is reported relative to it.

Pass criterion: the peak RSS at the largest N is within 1.5x of the peak RSS at the smallest
N (bounded memory); the script exits 1 otherwise (or if a child fails). The Parquet files go
to a temporary directory, deleted at the end unless ``--out-dir`` is given. The JSON document
is also written to ``bench/output/population_stream.json``. With ``--json`` stdout holds only
the JSON document and the table goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

OUTPUT_DIR = Path(__file__).resolve().parent / "output"
"""Gitignored output folder (``bench/output/``)."""
RSS_RATIO_LIMIT = 1.5
"""Pass: peak RSS at the largest N <= this times the peak RSS at the smallest N."""
RSS_TARGET_MB = 2048.0
"""BENCHMARKS.md: peak memory under 2 GiB."""
CHILD_TIMEOUT_S = 4 * 3600
Result = dict[str, Any]


def log(message: str) -> None:
    """Progress line on stderr."""
    print(f"[population_stream] {message}", file=sys.stderr, flush=True)


# -- child side: one measurement in a fresh interpreter -------------------------------------


def _current_rss_mb() -> float:
    """Current resident set size (MiB) from ``/proc/self/statm`` (NaN elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
    except (OSError, IndexError, ValueError):
        return float("nan")
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    """Peak RSS of this process (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _p1_setup() -> tuple[Any, Any, Any]:
    """``(hemolab, model with the P1 IIV, one-subject regimen DataFrame)``."""
    import numpy as np
    import pandas as pd

    import hemolab as hl
    from bench.models import friberg_p1
    from bench.problems import P1_DOSE_MG, P1_DOSE_TIMES_H, P1_ETA_COLUMNS, P1_OMEGA

    variability = hl.Variability.from_cv(
        dict.fromkeys(P1_ETA_COLUMNS, 30.0), source="BENCHMARKS.md P1"
    )
    omega2 = np.diag(variability.matrix)
    if not np.allclose(omega2, P1_OMEGA**2, rtol=1e-12, atol=0.0):
        raise RuntimeError(f"from_cv(30) gave omega^2 {omega2}, expected ln(1.09) = {P1_OMEGA**2}")
    model = friberg_p1().replace(variability=variability)
    k = len(P1_DOSE_TIMES_H)
    events = pd.DataFrame(
        {
            "ID": [1] * k,
            "TIME": P1_DOSE_TIMES_H,
            "EVID": [1] * k,
            "CMT": ["A"] * k,
            "AMT": [P1_DOSE_MG] * k,
        }
    )
    return hl, model, events


def child(n: int, chunk_size: int, out: Path) -> Result:
    """Stream ``n`` patients (``n == 0``: the one-patient baseline) to ``out``; measure."""
    t_start = time.perf_counter()
    import pyarrow.parquet as pq

    from bench.problems import P1_ATOL, P1_GRID_H, P1_RTOL, P1_SEED

    hl, model, events = _p1_setup()
    import jax

    hl.compile_model(model)  # cached: simulate_population reuses it
    setup_s = time.perf_counter() - t_start
    n_patients = max(n, 1)
    pop = hl.Population(model, n=n_patients, seed=P1_SEED)
    rss_samples: list[tuple[int, float]] = []
    next_report = [0.0]

    def progress(done: int, total: int) -> None:
        rss_samples.append((done, _current_rss_mb()))
        if done >= total or done / total >= next_report[0]:
            log(
                f"  n={total}: {done}/{total} patients, rss {rss_samples[-1][1]:.0f} MiB, "
                f"{time.perf_counter() - t_run:.1f} s"
            )
            next_report[0] = done / total + 0.1

    t_run = time.perf_counter()
    res = hl.simulate_population(
        pop,
        events,
        t_end=float(P1_GRID_H[-1]),
        dt=float(P1_GRID_H[1] - P1_GRID_H[0]),
        out=out,
        chunk_size=chunk_size,
        keep_results=False,
        progress=progress,
        rtol=P1_RTOL,
        atol=P1_ATOL,
    )
    wall_s = time.perf_counter() - t_run
    peak = _peak_rss_mb()
    events_path = out.with_name(out.stem + ".events.parquet")
    rows = pq.ParquetFile(out).metadata.num_rows
    n_times = int(res.time.size)
    first_chunk_rss = rss_samples[0][1] if rss_samples else float("nan")
    last_chunk_rss = rss_samples[-1][1] if rss_samples else float("nan")
    return {
        "kind": "run" if n > 0 else "baseline",
        "n": n_patients,
        "chunk_size": chunk_size,
        "chunks": res.chunks,
        "wall_s": round(wall_s, 3),
        "setup_s": round(setup_s, 3),
        "patients_per_s": round(n_patients / wall_s, 1),
        "peak_rss_mb": round(peak, 1),
        "rss_after_first_chunk_mb": round(first_chunk_rss, 1),
        "rss_after_last_chunk_mb": round(last_chunk_rss, 1),
        "rss_end_mb": round(_current_rss_mb(), 1),
        "result_file_mb": round(out.stat().st_size / 2**20, 2),
        "events_file_mb": round(events_path.stat().st_size / 2**20, 2)
        if events_path.exists()
        else 0.0,
        "rows": int(rows),
        "rows_per_patient": rows / n_patients,
        "n_times": n_times,
        "n_failed": res.n_failed,
        "status_counts": dict(res.status_counts),
        "metrics_mb": round(float(res.metrics.memory_usage(deep=True).sum()) / 2**20, 2),
        "n_steps_mean": round(res.n_steps_mean, 1),
        "n_steps_max": res.n_steps_max,
        "jax": jax.__version__,
        "devices": len(jax.devices()),
    }


# -- parent side -----------------------------------------------------------------------------


def run_child(n: int, chunk_size: int, out: Path) -> Result:
    """Run one measurement in a fresh interpreter; return its JSON line."""
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        str(n),
        "--chunk-size",
        str(chunk_size),
        "--child-out",
        str(out),
    ]
    proc = subprocess.run(
        cmd, stdout=subprocess.PIPE, text=True, timeout=CHILD_TIMEOUT_S, check=False
    )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"child --child {n} exited with {proc.returncode}")
    return json.loads(lines[-1])


def growth_per_10k(baseline: Result, runs: list[Result]) -> float | None:
    """Least-squares slope of peak RSS against N (MiB per 10,000 patients).

    With two or more populations the slope is fitted on the runs only; with one, it is taken
    against the one-patient baseline.
    """
    points = [(r["n"], r["peak_rss_mb"]) for r in runs]
    if len(points) < 2:
        points.append((baseline["n"], baseline["peak_rss_mb"]))
    if len({x for x, _ in points}) < 2:
        return None
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    sxx = sum((x - mx) ** 2 for x, _ in points)
    sxy = sum((x - mx) * (y - my) for x, y in points)
    return round(sxy / sxx * 10_000, 2)


def verdict(runs: list[Result]) -> Result:
    """Bounded-memory criterion: peak RSS at the largest N vs the smallest N."""
    by_n = sorted(runs, key=lambda r: r["n"])
    small, large = by_n[0], by_n[-1]
    ratio = large["peak_rss_mb"] / small["peak_rss_mb"]
    evaluated = large["n"] > small["n"]
    return {
        "criterion": f"peak RSS at n={large['n']} <= {RSS_RATIO_LIMIT}x peak RSS at n={small['n']}",
        "rss_ratio": round(ratio, 3),
        "evaluated": evaluated,
        "passed": bool(ratio <= RSS_RATIO_LIMIT) if evaluated else None,
        "under_2gib": all(r["peak_rss_mb"] < RSS_TARGET_MB for r in runs),
        "n_failed_total": sum(r["n_failed"] for r in runs),
    }


def print_table(doc: Result, file: Any) -> None:
    """Human-readable report with Rich."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=file, width=None if file.isatty() else 140)
    table = Table(title="P1 population streamed to Parquet")
    columns = (
        "n",
        "chunk",
        "wall_s",
        "patients/s",
        "peak_rss_mb",
        "+baseline_mb",
        "rss first/last chunk",
        "file_mb",
        "rows",
        "failed",
        "metrics_mb",
    )
    for column in columns:
        table.add_column(column, justify="right")
    base = doc["baseline"]
    for r in [base, *doc["runs"]]:
        table.add_row(
            f"{r['n']}" + (" (baseline)" if r["kind"] == "baseline" else ""),
            str(r["chunk_size"]),
            f"{r['wall_s']:.2f}",
            f"{r['patients_per_s']:.0f}",
            f"{r['peak_rss_mb']:.0f}",
            f"{r['peak_rss_mb'] - base['peak_rss_mb']:+.0f}",
            f"{r['rss_after_first_chunk_mb']:.0f} / {r['rss_after_last_chunk_mb']:.0f}",
            f"{r['result_file_mb']:.1f}",
            f"{r['rows']:,}",
            str(r["n_failed"]),
            f"{r['metrics_mb']:.2f}",
        )
    console.print(table)
    v = doc["verdict"]
    state = {True: "PASS", False: "FAIL", None: "not evaluated (one N)"}[v["passed"]]
    console.print(
        f"bounded memory: {v['criterion']}: ratio {v['rss_ratio']} -> {state}", soft_wrap=True
    )
    console.print(
        f"peak RSS growth {doc['rss_growth_mb_per_10k']} MiB per 10k patients; "
        f"under 2 GiB: {v['under_2gib']}; failed patients: {v['n_failed_total']}",
        soft_wrap=True,
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--n", type=int, nargs="+", default=[10_000, 100_000], help="population sizes"
    )
    parser.add_argument("--chunk-size", type=int, default=2048, help="patients per chunk")
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    parser.add_argument("--out-dir", type=Path, help="keep the Parquet files here")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if any(n < 1 for n in args.n) or args.chunk_size < 1:
        parser.error("--n and --chunk-size must be >= 1")
    if args.child is not None and args.child_out is None:
        parser.error("--child needs --child-out")
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python bench/population_stream.py``."""
    args = parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(args.child, args.chunk_size, args.child_out)), flush=True)
        return 0
    ns = sorted(set(args.n))
    with tempfile.TemporaryDirectory(prefix="hemolab-popstream-") as tmp:
        out_dir = args.out_dir or Path(tmp)
        out_dir.mkdir(parents=True, exist_ok=True)
        log("baseline: import hemolab + JAX, compile P1, stream 1 patient")
        baseline = run_child(0, args.chunk_size, out_dir / "p1-baseline.parquet")
        log(f"baseline peak RSS {baseline['peak_rss_mb']:.0f} MiB")
        runs = []
        for n in ns:
            log(f"n={n}, chunk_size={args.chunk_size}")
            r = run_child(n, args.chunk_size, out_dir / f"p1-population-{n}.parquet")
            log(f"n={n}: {r['wall_s']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MiB")
            runs.append(r)
    doc = {
        "benchmark": "population_stream",
        "model": "friberg_p1 (BENCHMARKS.md P1, CV 30 % on CL, MTT, Circ0, Slope)",
        "chunk_size": args.chunk_size,
        "baseline": baseline,
        "runs": runs,
        "rss_growth_mb_per_10k": growth_per_10k(baseline, runs),
        "verdict": verdict(runs),
        "out_dir": str(args.out_dir) if args.out_dir else None,
    }
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUTPUT_DIR / "population_stream.json").write_text(json.dumps(doc, indent=2) + "\n")
    print_table(doc, sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(doc), flush=True)
    return 1 if doc["verdict"]["passed"] is False else 0


if __name__ == "__main__":
    sys.exit(main())
