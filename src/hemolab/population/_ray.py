"""Population chunks solved on Ray workers: ``simulate_population(backend="ray")``.

The driver (the process calling :func:`~hemolab.population.simulate_population`) sends the
run's :class:`_ChunkJob` to the object store once, submits one task per chunk with at most
``2 × workers`` chunks solved or waiting to be written, and yields the solved chunks in chunk
order; it folds and writes them itself, with the local code path (design note 010). A worker
compiles the model once per process (:data:`_COMPILED`; the solver's XLA code comes from the
persistent compilation cache). A worker that dies is replaced and its chunk solved again by
Ray (``max_retries``); a chunk's result is taken once, from its one object reference, so no
chunk is written twice.

Ray is an optional dependency (``pip install 'hemolab[ray]'``), imported only here and only
when the backend is asked for.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import warnings
from collections.abc import Generator, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

from hemolab._errors import HemolabError

if TYPE_CHECKING:
    from hemolab.compile._compiled import CompiledModel
    from hemolab.model._model import Model
    from hemolab.population._run import _ChunkJob
    from hemolab.results._results import Results

__all__ = ["MAX_RETRIES", "import_ray", "solve_chunks"]

MAX_RETRIES = 3
"""Times a chunk is solved again after its worker died (Ray's default for tasks)."""

CANCEL_WAIT_S = 2.0
"""How long a failed run waits for its cancelled chunks to end (a running solve is
interrupted only when it returns to Python)."""

FORK_WARNING = r"os\.fork\(\) was called"
"""JAX's warning at any fork once it has started; Ray's fork+exec of its processes is safe."""

KILL_ONCE_ENV = "HEMOLAB_TEST_KILL_ONCE"
"""Test-only fault injection: see :func:`_test_fault_injection`."""

_COMPILED: dict[str, CompiledModel] = {}
"""Compiled models of this worker process, by model hash (strong references: the solver's
jitted functions live as long as the worker, across the chunks it is given)."""


def import_ray() -> ModuleType:
    """The ``ray`` module, or a :class:`HemolabError` saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise HemolabError(
            f"backend 'ray' needs Ray, which is not installed ({exc}); install hemolab[ray]: "
            "pip install 'hemolab[ray]'"
        ) from None
    return ray


def solve_chunks(
    job: _ChunkJob, bounds: Sequence[tuple[int, int]], *, address: str | None = None
) -> Generator[Results, None, None]:
    """The solved chunks ``bounds`` of ``job``, in order, solved on Ray workers.

    Connects to Ray first if this process is not connected (``address``, else
    ``RAY_ADDRESS``, else a new local Ray), so a missing Ray fails before any file is
    opened. Closing the generator cancels the chunks still in flight.
    """
    ray = import_ray()
    if not ray.is_initialized():
        with warnings.catch_warnings():
            # Ray starts its processes by fork+exec: no JAX state survives the exec
            warnings.filterwarnings("ignore", FORK_WARNING, RuntimeWarning)
            ray.init(
                address=address,
                include_dashboard=False,
                log_to_driver=False,  # worker output stays in Ray's logs: stdout may be --json
                logging_level=logging.WARNING,
            )
    workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
    task = ray.remote(_solve_chunk).options(
        num_cpus=1,
        max_retries=MAX_RETRIES,
        retry_exceptions=False,  # a HemolabError in a chunk is the user's, not the worker's
        runtime_env={"env_vars": _worker_env()},
    )
    return _in_order(ray, task, ray.put(job), bounds, window=2 * workers)


def _in_order(
    ray: ModuleType, task: Any, job_ref: Any, bounds: Sequence[tuple[int, int]], window: int
) -> Generator[Results, None, None]:
    """Submit chunks while fewer than ``window`` are unwritten; yield them in chunk order.

    Chunks that finish early wait in ``ready`` (counted in the window), so memory holds at
    most ``window`` chunks whatever order the workers finish in.
    """
    pending: dict[Any, int] = {}  # object reference → chunk index
    ready: dict[int, Results] = {}
    submitted = 0
    try:
        for k in range(len(bounds)):
            while submitted < len(bounds) and submitted - k < window:
                start, stop = bounds[submitted]
                pending[task.remote(job_ref, start, stop)] = submitted
                submitted += 1
            while k not in ready:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    i = pending.pop(ref)
                    ready[i] = _result(ray, ref, bounds[i])
            yield ready.pop(k)
    finally:
        _cancel(ray, list(pending))


def _cancel(ray: ModuleType, refs: list[Any]) -> None:
    """Cancel the chunks in flight after a failure or an early stop, and take the results of
    those that end within :data:`CANCEL_WAIT_S` (failed or cancelled ones too: Ray would log
    each as an "unhandled error" after the one that is being raised)."""
    if not refs:
        return
    for ref in refs:
        ray.cancel(ref)
    done, _ = ray.wait(refs, num_returns=len(refs), timeout=CANCEL_WAIT_S)
    for ref in done:
        with contextlib.suppress(Exception):
            ray.get(ref)


def _result(ray: ModuleType, ref: Any, rows: tuple[int, int]) -> Results:
    """A finished chunk; hemolab's own errors re-raised as such, Ray's failures named."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, HemolabError):  # e.g. SolveError with throw=True
            raise exc.cause from None
        raise
    except ray.exceptions.RayError as exc:  # the worker died more than MAX_RETRIES times...
        raise HemolabError(
            f"patients {rows[0]}..{rows[1] - 1} could not be solved on Ray "
            f"({type(exc).__name__}, after {MAX_RETRIES} retries): {exc}"
        ) from exc


def _worker_env() -> dict[str, str]:
    """Environment of the workers: one XLA host device each (a worker is given one CPU).

    The driver's ``XLA_FLAGS`` (inherited by Ray's processes) may already force a host
    device count, which would win over ``HEMOLAB_HOST_DEVICES``; it is removed.
    """
    flags = re.sub(
        r"--xla_force_host_platform_device_count=\S*", "", os.environ.get("XLA_FLAGS", "")
    )
    return {"HEMOLAB_HOST_DEVICES": "1", "XLA_FLAGS": " ".join(flags.split())}


def _solve_chunk(job: _ChunkJob, start: int, stop: int) -> Results:  # pragma: no cover
    """Ray task: rows ``[start, stop)`` of ``job``, solved with this worker's compiled model.

    Runs in the workers only (coverage sees the driver); ``tests/test_ray_backend.py``
    checks what it returns through the files the driver writes."""
    _test_fault_injection()
    return job.solve(_compiled(job.population.model), start, stop)


def _compiled(model: Model) -> CompiledModel:  # pragma: no cover - in Ray workers
    """The model compiled once per worker process (keyed by model hash)."""
    from hemolab._simulate import get_compiled
    from hemolab.compile._compiled import model_hash

    key = model_hash(model)
    if key not in _COMPILED:
        _COMPILED[key] = get_compiled(model)
    return _COMPILED[key]


def _test_fault_injection() -> None:  # pragma: no cover - in Ray workers
    """Test-only: kill this worker the first time any chunk runs, to exercise Ray's retries.

    Active only when ``HEMOLAB_TEST_KILL_ONCE`` names a file that does not exist yet: the
    one task that creates it (atomically) exits its process without a word, as a crashed
    or OOM-killed worker would. ``tests/test_ray_backend.py`` sets it; nothing else should.
    """
    flag = os.environ.get(KILL_ONCE_ENV)
    if not flag:
        return
    try:
        os.close(os.open(flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return
    os._exit(1)
