"""Where hemolab's P1 solve spends its time, per compiled kernel (XLA thunk).

Runs the P1 solve of ``bench/run.py`` under ``jax.profiler`` and sums the traced duration of
every XLA CPU thunk (fusions, conditionals, loops) over one solve. Thunks executed the same
number of times belong to the same branch of the solver loop, so they are also grouped by
execution count: a group with as many executions as the loop has iterations is the step
itself; smaller counts are the branches (restarts, actions, refills) taken at that many
iterations.

    python bench/thunk_profile.py [--n 2000] [--top 25]

Conditional thunks include the kernels they run, which are also listed on their own.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.hemolab_runner import run_p1
from bench.problems import P1_GRID_H, p1_population

_HOST = ("$", "ThunkExecutor", "Wait", "Handle", "Allocate", "Common", "np.", "Pjit")


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    import jax

    pop = p1_population(args.n)
    params = {k: np.asarray(pop[k]) for k in ("CL", "V", "MTT", "Circ0", "Slope", "gamma")}
    _, solve = run_p1(params, np.asarray(P1_GRID_H))
    solve()
    solve()  # compiled and warm
    with tempfile.TemporaryDirectory() as tmp:
        jax.profiler.start_trace(tmp, create_perfetto_trace=True)
        solve()
        jax.profiler.stop_trace()
        trace = sorted(Path(tmp).rglob("*.trace.json.gz"))[-1]
        doc = json.loads(gzip.decompress(trace.read_bytes()))
    events = doc["traceEvents"] if isinstance(doc, dict) else doc
    total: collections.Counter[str] = collections.Counter()
    count: collections.Counter[str] = collections.Counter()
    for e in events:
        if e.get("ph") == "X" and not str(e["name"]).startswith(_HOST):
            total[e["name"]] += e.get("dur", 0)
            count[e["name"]] += 1
    print(f"P1 N={args.n}: XLA thunks, summed over both host devices")
    print(f"{'ms':>9} {'calls':>7}  thunk")
    for name, us in total.most_common(args.top):
        print(f"{us / 1e3:9.1f} {count[name]:7d}  {name}")
    groups: dict[int, list[str]] = collections.defaultdict(list)
    for name in total:
        groups[count[name]].append(name)
    print("\nby execution count (a loop branch per count):")
    for calls in sorted(groups, key=lambda c: -sum(total[k] for k in groups[c]))[:6]:
        names = sorted(groups[calls], key=lambda k: -total[k])
        ms = sum(total[k] for k in names) / 1e3
        print(f"{calls:7d} calls: {ms:8.1f} ms in {len(names)} thunks, e.g. {', '.join(names[:4])}")


if __name__ == "__main__":
    main()
