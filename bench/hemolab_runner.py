"""The hemolab side of the benchmarks: one function per problem, nothing else imports hemolab.

Contract (what ``bench/run.py`` relies on)
------------------------------------------
``run_p1(params, grid) -> (compile_s, solve_fn)`` and ``run_p2(x0, beta, grid) ->
(compile_s, solve_fn)``:

- ``compile_s``: explicit one-time model build/compilation, in seconds. A lazy JIT on the
  first call is measured by ``bench/run.py`` itself: it times the first ``solve_fn()`` apart
  and reports ``compile_s = build + first call - median later call`` (and ``first_call_s``).
- ``solve_fn()``: solves the whole batch, from the parameters already in memory to **NumPy**
  arrays on the grid (block until ready: the transfer is part of the timing), and returns
  ``(outputs, failures)``: ``outputs`` float64 ``(n, len(grid))`` (P1: ``Circ``; P2: ``x``),
  ``failures`` a ``{item index: message}`` dict, empty when every item finished.

JAX is imported here, lazily, by ``import hemolab``. ``bench/run.py`` calls this module only
after every spawn-based peer has run; never fork after calling it.

Both functions raise ``NotImplementedError("hemolab solver not wired yet")`` while
``hemolab.simulate`` does not exist; ``bench/run.py`` then reports ``hemolab_s: null``.
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
    P2_GAMMA,
    P2_HILL,
    P2_RTOL,
    P2_TAU,
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
    """Return the benchmark-only P1 Friberg model, :func:`bench.models.friberg_p1`.

    States ``A`` (mg, dosed) and ``Prol, T1, T2, T3, Circ`` (1e9/L, positive); parameters
    ``CL, V, MTT, Circ0, Slope, gamma`` (see :mod:`bench.problems`).

    Parameters
    ----------
    hl : module
        The imported ``hemolab`` (``bench.models`` imports it too).

    Returns
    -------
    hemolab.Model
        The model.
    """
    del hl  # bench.models builds it with the public API
    from bench.models import friberg_p1

    return friberg_p1()


def build_p2_model(hl: ModuleType) -> object:
    """Build the P2 Mackey-Glass DDE with hemolab's public API.

    ``dx/dt = beta x(t - tau) / (1 + x(t - tau)^n) - gamma x``, gamma 0.1, n 10, tau 17;
    ``beta`` and the constant history ``x0`` are per-item parameters.
    """
    return hl.Model(
        "mackey_glass_p2_bench",
        time_unit="d",
        states=[
            hl.State(
                "x",
                "beta*x(t - tau)/(1 + x(t - tau)**n) - gamma*x",
                initial="x0",
                history="x0",
                positive=False,  # x stays in [0.2, 1.5]: plain coordinates are more accurate here
            )
        ],
        parameters=[
            hl.Parameter("beta", 0.2),
            hl.Parameter("gamma", P2_GAMMA),
            hl.Parameter("n", P2_HILL),
            hl.Parameter("tau", P2_TAU),
            hl.Parameter("x0", 0.5),
        ],
    )


def _failures(res: object) -> dict[int, str]:
    """``{batch index: status label}`` of the failed items of a ``hemolab.Results``."""
    labels = res.status_labels  # type: ignore[attr-defined]
    return {int(i): labels[i] for i in res.failed}  # type: ignore[attr-defined]


def run_p1(params: dict[str, np.ndarray], grid: np.ndarray) -> tuple[float, SolveFn]:
    """Build the P1 model and return ``(compile_s, solve_fn)`` for this population.

    Parameters
    ----------
    params : dict of str to numpy.ndarray
        ``CL, V, MTT, Circ0, Slope, gamma``, each of shape ``(n,)``.
    grid : numpy.ndarray
        Output times (h), 127 points 0..3024.

    Returns
    -------
    compile_s : float
        Explicit model build and compilation, seconds (JIT on the first call is measured by
        ``bench/run.py``).
    solve_fn : callable
        ``solve_fn() -> (Circ (n, len(grid)) numpy float64, failures dict)``.

    Raises
    ------
    NotImplementedError
        While hemolab's solver is not wired in.
    """
    hl = _import_hemolab()
    import pandas as pd

    start = time.perf_counter()
    compiled = hl.compile_model(build_p1_model(hl))
    # One regimen shared by the whole population: six 100 mg boluses into A every 504 h.
    doses = pd.DataFrame(
        {
            "ID": [1],
            "TIME": P1_DOSE_TIMES_H[0],
            "EVID": 1,
            "AMT": P1_DOSE_MG,
            "CMT": "A",
            "II": P1_DOSE_TIMES_H[1] - P1_DOSE_TIMES_H[0],
            "ADDL": len(P1_DOSE_TIMES_H) - 1,
        }
    )
    compile_s = time.perf_counter() - start

    def solve_fn() -> tuple[np.ndarray, dict[int, str]]:
        res = hl.simulate(compiled, doses, params=params, grid=grid, rtol=P1_RTOL, atol=P1_ATOL)
        return np.asarray(res.variable("Circ"), dtype=np.float64), _failures(res)

    return compile_s, solve_fn


def run_p2(x0: np.ndarray, beta: np.ndarray, grid: np.ndarray) -> tuple[float, SolveFn]:
    """Build the P2 model and return ``(compile_s, solve_fn)`` for this batch.

    Parameters
    ----------
    x0, beta : numpy.ndarray
        Constant histories and production rates, shape ``(n,)``.
    grid : numpy.ndarray
        Output times 0, 1, ..., 1000.

    Returns
    -------
    compile_s : float
        Explicit model build and compilation, seconds.
    solve_fn : callable
        ``solve_fn() -> (x (n, len(grid)) numpy float64, failures dict)``.

    Raises
    ------
    NotImplementedError
        While hemolab's solver is not wired in.
    """
    hl = _import_hemolab()
    start = time.perf_counter()
    compiled = hl.compile_model(build_p2_model(hl))
    compile_s = time.perf_counter() - start
    params = {"beta": np.asarray(beta, np.float64), "x0": np.asarray(x0, np.float64)}

    def solve_fn() -> tuple[np.ndarray, dict[int, str]]:
        res = hl.simulate(compiled, params=params, grid=grid, rtol=P2_RTOL, atol=P2_ATOL)
        return np.asarray(res.variable("x"), dtype=np.float64), _failures(res)

    return compile_s, solve_fn
