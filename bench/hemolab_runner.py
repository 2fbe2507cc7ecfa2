"""The hemolab side of the benchmarks: one function per problem, nothing else imports hemolab.

Contract (what ``bench/run.py`` relies on)
------------------------------------------
``run_p1(params, grid) -> (compile_s, solve_fn)`` and ``run_p2(x0, beta, grid) ->
(compile_s, solve_fn)``:

- ``compile_s``: one-time model build and compilation, in seconds, for these shapes. If the
  library compiles lazily on the first call, ``run_*`` must make that first call itself (a
  warm-up solve) and include it in ``compile_s``, so every later ``solve_fn()`` is a pure
  solve.
- ``solve_fn()``: solves the whole batch again, from the parameters already in memory to
  **NumPy** arrays on the grid (block until ready: the transfer is part of the timing), and
  returns ``(outputs, failures)``: ``outputs`` float64 ``(n, len(grid))`` (P1: ``Circ``;
  P2: ``x``), ``failures`` a ``{item index: message}`` dict, empty when every item finished.

JAX is imported here, lazily, by ``import hemolab``. ``bench/run.py`` calls this module only
after every spawn-based peer has run; never fork after calling it.

Until the solver exists both functions raise ``NotImplementedError("hemolab solver not wired
yet")`` and ``bench/run.py`` reports ``hemolab_s: null``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np

from bench.problems import (
    P1_ATOL,
    P1_DOSE_MG,
    P1_DOSE_TIMES_H,
    P1_RTOL,
    P2_ATOL,
    P2_RTOL,
)

SolveFn = Callable[[], tuple[np.ndarray, dict[int, str]]]
"""``solve_fn() -> (outputs, failures)``."""

NOT_WIRED = "hemolab solver not wired yet"


def _import_hemolab() -> ModuleType:
    """Import hemolab (from ``src/`` when not installed) or raise ``NotImplementedError``."""
    try:
        import hemolab
    except ModuleNotFoundError:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
        try:
            import hemolab
        except ModuleNotFoundError as error:
            raise NotImplementedError(f"{NOT_WIRED}: cannot import hemolab ({error})") from error
    if not hasattr(hemolab, "simulate"):
        raise NotImplementedError(f"{NOT_WIRED}: hemolab.simulate does not exist")
    return hemolab


def build_p1_model(hl: ModuleType) -> object:
    """Build the benchmark-only P1 Friberg model with hemolab's public API.

    States ``A`` (mg), ``Prol, T1, T2, T3, Circ`` (1e9/L); parameters ``CL, V, MTT, Circ0,
    Slope, gamma``; ``ktr = kprol = 4/MTT``; see :mod:`bench.problems` for the equations.
    Initial state ``A = 0``, the five neutrophil states at ``Circ0``.

    Parameters
    ----------
    hl : module
        The imported ``hemolab``.

    Returns
    -------
    hemolab.Model
        The model.
    """
    # TODO(lead): e.g. hl.Model(states=..., parameters=..., rhs=..., initial=...).
    raise NotImplementedError(f"{NOT_WIRED}: build_p1_model is not written")


def build_p2_model(hl: ModuleType) -> object:
    """Build the P2 Mackey-Glass DDE with hemolab's public API.

    ``dx/dt = beta x(t - tau) / (1 + x(t - tau)^n) - gamma x`` with ``gamma`` = 0.1,
    ``n`` = 10, ``tau`` = 17 (:data:`bench.problems.P2_GAMMA`, ``P2_HILL``, ``P2_TAU``);
    ``beta`` a parameter; constant history ``x0`` per item.
    """
    # TODO(lead): the DDE model with a delayed state reference.
    raise NotImplementedError(f"{NOT_WIRED}: build_p2_model is not written")


def run_p1(params: dict[str, np.ndarray], grid: np.ndarray) -> tuple[float, SolveFn]:
    """Compile the P1 model and return ``(compile_s, solve_fn)`` for this population.

    Parameters
    ----------
    params : dict of str to numpy.ndarray
        ``CL, V, MTT, Circ0, Slope, gamma``, each of shape ``(n,)``.
    grid : numpy.ndarray
        Output times (h), 127 points 0..3024.

    Returns
    -------
    compile_s : float
        Model build + compile (+ warm-up call if compilation is lazy), seconds.
    solve_fn : callable
        ``solve_fn() -> (Circ (n, len(grid)) numpy float64, failures dict)``.

    Raises
    ------
    NotImplementedError
        While hemolab's solver is not wired in.
    """
    hl = _import_hemolab()
    start = time.perf_counter()
    model = build_p1_model(hl)
    compiled = hl.compile_model(model)
    # Planned API; TODO(lead): adjust names of the schedule, saveat and result fields.
    schedule = hl.Schedule.bolus("A", times=P1_DOSE_TIMES_H, amount=P1_DOSE_MG)

    def solve_fn() -> tuple[np.ndarray, dict[int, str]]:
        res = hl.simulate(
            compiled, params=params, schedule=schedule, saveat=grid, rtol=P1_RTOL, atol=P1_ATOL
        )
        circ = np.asarray(res.ys["Circ"], dtype=np.float64)
        failed = np.flatnonzero(~np.asarray(res.ok))
        return circ, {int(i): str(res.status[i]) for i in failed}

    solve_fn()  # warm-up: JIT compilation for these shapes belongs to compile_s
    return time.perf_counter() - start, solve_fn


def run_p2(x0: np.ndarray, beta: np.ndarray, grid: np.ndarray) -> tuple[float, SolveFn]:
    """Compile the P2 model and return ``(compile_s, solve_fn)`` for this batch.

    Parameters
    ----------
    x0, beta : numpy.ndarray
        Constant histories and production rates, shape ``(n,)``.
    grid : numpy.ndarray
        Output times 0, 1, ..., 1000.

    Returns
    -------
    compile_s : float
        Model build + compile (+ warm-up call), seconds.
    solve_fn : callable
        ``solve_fn() -> (x (n, len(grid)) numpy float64, failures dict)``.

    Raises
    ------
    NotImplementedError
        While hemolab's solver is not wired in.
    """
    hl = _import_hemolab()
    start = time.perf_counter()
    model = build_p2_model(hl)
    compiled = hl.compile_model(model)

    def solve_fn() -> tuple[np.ndarray, dict[int, str]]:
        # Planned API; TODO(lead): history and saveat argument names.
        res = hl.simulate(
            compiled,
            params={"beta": beta},
            history={"x": x0},
            saveat=grid,
            rtol=P2_RTOL,
            atol=P2_ATOL,
        )
        x = np.asarray(res.ys["x"], dtype=np.float64)
        failed = np.flatnonzero(~np.asarray(res.ok))
        return x, {int(i): str(res.status[i]) for i in failed}

    solve_fn()
    return time.perf_counter() - start, solve_fn
