"""Compile the solver loop for one core per kernel: no intra-op task splitting (design note 010).

XLA:CPU's ``ParallelTaskAssigner`` splits a fusion into tasks for the intra-op thread pool
when its cost model (which counts the whole operand of a gather or scatter) says it is worth
it. In the solver's while loop that is exactly wrong: every iteration gathers each lane's next
action from the call's action table and writes outputs into the call's output array, so those
small kernels (256 rows) were split in two, and the cross-thread handoff cost ~30 µs each, about
half of an iteration (P1 profile, bench/README.md). XLA has no flag for this; the pass reads
the number of schedulable CPUs when it compiles. So the solver is compiled ahead of time with
every thread of the process restricted to one CPU, and the masks are restored right after.
Multi-core use comes from the host devices (one loop per core), not from splitting kernels.

Threads created while the mask is narrowed inherit it; they get the process's original mask
back when compilation ends. A platform without ``sched_setaffinity`` compiles normally.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import jax

__all__ = ["PinnedCompiled", "one_cpu_while_compiling", "pinned_jit"]

_LOCK = threading.Lock()


def _threads() -> list[int]:
    try:
        return [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return []


def _current_cpu(allowed: set[int]) -> int:
    """The CPU this thread last ran on (``/proc``), so that processes compiling at the same
    time (test workers, Ray workers) do not all crowd onto the first CPU."""
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/stat") as fh:
            cpu = int(fh.read().rsplit(")", 1)[1].split()[36])
    except (OSError, ValueError, IndexError):
        cpu = os.getpid()
    ordered = sorted(allowed)
    return cpu if cpu in allowed else ordered[cpu % len(ordered)]


@contextmanager
def one_cpu_while_compiling() -> Iterator[None]:
    """Restrict every thread of this process to one CPU for the duration of the block."""
    if not hasattr(os, "sched_setaffinity") or not _threads():
        yield
        return
    with _LOCK:
        process_mask = os.sched_getaffinity(0)
        cpu = {_current_cpu(process_mask)}
        saved: dict[int, set[int]] = {}
        for tid in _threads():
            try:
                saved[tid] = os.sched_getaffinity(tid)
                os.sched_setaffinity(tid, cpu)
            except OSError:  # the thread ended meanwhile
                saved.pop(tid, None)
        try:
            yield
        finally:
            for tid in _threads():
                with suppress(OSError):
                    os.sched_setaffinity(tid, saved.get(tid, process_mask))


class PinnedCompiled:
    """A jitted function compiled ahead of time, once per argument signature, under
    :func:`one_cpu_while_compiling`; calls then run the compiled executable."""

    def __init__(self, jitted: Any) -> None:
        self._jitted = jitted
        self._compiled: dict[Any, Callable[..., Any]] = {}

    def __call__(self, *args: Any) -> Any:
        leaves, tree = jax.tree_util.tree_flatten(args)
        key = (tree, tuple((getattr(x, "shape", ()), str(getattr(x, "dtype", ""))) for x in leaves))
        fn = self._compiled.get(key)
        if fn is None:
            lowered = self._jitted.lower(*args)
            with one_cpu_while_compiling():
                fn = lowered.compile()
            self._compiled[key] = fn
        return fn(*args)


def pinned_jit(fn: Callable[..., Any]) -> PinnedCompiled:
    """``jax.jit(fn)`` compiled like the solver loop (one CPU per kernel): for functions built
    on :func:`hemolab.solve.make_solve_fn` that are called many times (calibration, search).
    It cannot be traced inside another ``jit``, ``grad`` or ``vmap``: apply it outermost."""
    return PinnedCompiled(jax.jit(fn))
