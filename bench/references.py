"""Independent tight references for P1 and P2, written with SciPy only (no hemolab import).

P1 (Friberg population)
    Linear PK in closed form, ``A(t) = sum_d 100 exp(-(CL/V)(t - t_d))`` over the doses
    ``t_d <= t``, and the five neutrophil states integrated as logarithms
    (``y = log(state)``) with ``solve_ivp(method="DOP853", rtol=1e-11, atol=1e-14)``,
    piecewise between doses (a fresh start at every dose, where ``A`` jumps). Log states keep
    the relative accuracy of tiny states, which is what makes patient 5358 (Circ ~ 2e-4,
    Prol far below any absolute tolerance) come out right.

P2 (Mackey-Glass)
    Method of steps: intervals ``[k tau, (k+1) tau]``; on each the delayed term is read from
    the DOP853 dense output of the previous interval (constant history for ``t <= 0``), so
    every interval is a plain ODE whose right-hand side is smooth inside it (the derivative
    discontinuities sit at ``k tau``, on interval ends). DOP853 ``rtol=1e-11, atol=1e-13``.

References of the P1 gate patients (0..99 and 5358) are cached on disk under
``bench/output/references/``, keyed by a hash of every input, so re-runs are fast.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.integrate import solve_ivp

from bench.problems import (
    P1_DOSE_MG,
    P1_DOSE_TIMES_H,
    P1_GRID_H,
    P1_HARD_PATIENT,
    P1_PARAMETER_NAMES,
    P2_GAMMA,
    P2_HILL,
    P2_TAU,
    p1_gate_indices,
    p1_patient,
    p1_patient_rows,
    p1_population,
)

REFERENCE_VERSION = "1"
"""Bump when the reference algorithm changes: it is part of the cache key."""
P1_REF_RTOL = 1e-11
P1_REF_ATOL = 1e-14
P2_REF_RTOL = 1e-11
P2_REF_ATOL = 1e-13
OUTPUT_DIR = Path(__file__).resolve().parent / "output"
"""Gitignored output folder (``bench/output/``)."""

# -- P1 ------------------------------------------------------------------------------------


def _p1_log_rhs(
    t: float, y: np.ndarray, ke: float, a_start: float, t_start: float, params: dict[str, float]
) -> np.ndarray:
    """Right-hand side of the log neutrophil states on one dosing interval."""
    amount = a_start * np.exp(-ke * (t - t_start))
    edrug = params["Slope"] * amount / params["V"]
    ktr = 4.0 / params["MTT"]
    log_prol, log_t1, log_t2, log_t3, log_circ = y
    feedback = np.exp(params["gamma"] * (np.log(params["Circ0"]) - log_circ))
    return np.array(
        [
            ktr * (1.0 - edrug) * feedback - ktr,
            ktr * (np.exp(log_prol - log_t1) - 1.0),
            ktr * (np.exp(log_t1 - log_t2) - 1.0),
            ktr * (np.exp(log_t2 - log_t3) - 1.0),
            ktr * (np.exp(log_t3 - log_circ) - 1.0),
        ]
    )


def p1_reference_states(
    params: dict[str, float],
    grid: np.ndarray = P1_GRID_H,
    *,
    dose_times: np.ndarray = P1_DOSE_TIMES_H,
    dose_mg: float = P1_DOSE_MG,
    rtol: float = P1_REF_RTOL,
    atol: float = P1_REF_ATOL,
) -> np.ndarray:
    """Solve one P1 patient tightly and return all six states on ``grid``.

    Parameters
    ----------
    params : dict of str to float
        ``CL, V, MTT, Circ0, Slope, gamma`` of one patient (see :func:`bench.problems.p1_patient`).
    grid : numpy.ndarray, default 0..3024 h step 24
        Sorted output times (h), ``grid[0] >= dose_times[0]``.

    Other Parameters
    ----------------
    dose_times : numpy.ndarray
        Bolus times (h); the first is the start of the integration.
    dose_mg : float
        Bolus amount (mg).
    rtol, atol : float
        DOP853 tolerances on the log states.

    Returns
    -------
    numpy.ndarray
        Shape ``(len(grid), 6)``: ``A, Prol, T1, T2, T3, Circ``. At a dose time, ``A`` is the
        amount just after the bolus.

    Raises
    ------
    RuntimeError
        If DOP853 fails on an interval.
    """
    grid = np.asarray(grid, dtype=np.float64)
    ke = params["CL"] / params["V"]
    y = np.full(5, np.log(params["Circ0"]))
    out = np.empty((len(grid), 6))
    bounds = [*(float(t) for t in dose_times), max(float(grid[-1]), float(dose_times[-1]))]
    amount = 0.0
    for k in range(len(dose_times)):
        t_start, t_stop = bounds[k], bounds[k + 1]
        amount += dose_mg
        last = k == len(dose_times) - 1
        in_interval = (grid >= t_start) & ((grid <= t_stop) if last else (grid < t_stop))
        if t_stop > t_start:
            sol = solve_ivp(
                _p1_log_rhs,
                (t_start, t_stop),
                y,
                method="DOP853",
                rtol=rtol,
                atol=atol,
                dense_output=True,
                args=(ke, amount, t_start, params),
            )
            if not sol.success:
                raise RuntimeError(f"P1 reference failed on [{t_start}, {t_stop}] h: {sol.message}")
            t_out = grid[in_interval]
            if t_out.size:
                out[in_interval, 1:] = np.exp(sol.sol(t_out).T)
            y = sol.y[:, -1]
        elif np.any(in_interval):
            out[in_interval, 1:] = np.exp(y)
        out[in_interval, 0] = amount * np.exp(-ke * (grid[in_interval] - t_start))
        amount *= np.exp(-ke * (t_stop - t_start))
    return out


def p1_reference(params: dict[str, float], grid: np.ndarray = P1_GRID_H) -> np.ndarray:
    """Return the tight reference ``Circ`` of one P1 patient on ``grid``.

    Parameters
    ----------
    params : dict of str to float
        One patient's parameters.
    grid : numpy.ndarray, default 0..3024 h step 24
        Output times (h).

    Returns
    -------
    numpy.ndarray
        ``Circ`` (1e9/L), shape ``(len(grid),)``.

    Examples
    --------
    >>> from bench.problems import p1_patient
    >>> circ = p1_reference(p1_patient(0))
    >>> round(float(circ.min()), 8), float(P1_GRID_H[circ.argmin()])
    (1.71012835, 672.0)
    """
    return p1_reference_states(params, grid)[:, 5]


def _cache_key(rows: Sequence[dict[str, float]], grid: np.ndarray) -> str:
    """Hash every input of the P1 reference (parameters, grid, doses, tolerances, version)."""
    digest = hashlib.sha256()
    header = {
        "version": REFERENCE_VERSION,
        "rtol": P1_REF_RTOL,
        "atol": P1_REF_ATOL,
        "dose_mg": P1_DOSE_MG,
    }
    digest.update(json.dumps(header, sort_keys=True).encode())
    digest.update(np.ascontiguousarray(P1_DOSE_TIMES_H, dtype=np.float64).tobytes())
    digest.update(np.ascontiguousarray(grid, dtype=np.float64).tobytes())
    table = np.array([[row[name] for name in P1_PARAMETER_NAMES] for row in rows])
    digest.update(np.ascontiguousarray(table, dtype=np.float64).tobytes())
    return digest.hexdigest()[:24]


def p1_reference_many(
    rows: Sequence[dict[str, float]],
    grid: np.ndarray = P1_GRID_H,
    *,
    cache_dir: Path | None = OUTPUT_DIR / "references",
) -> np.ndarray:
    """Return reference ``Circ`` for several patients, through an on-disk cache.

    Parameters
    ----------
    rows : sequence of dict of str to float
        One parameter dictionary per patient.
    grid : numpy.ndarray, default 0..3024 h step 24
        Output times (h).

    Other Parameters
    ----------------
    cache_dir : pathlib.Path or None
        Where ``p1-<hash>.npy`` files live; ``None`` disables the cache. The hash covers
        every input, so a changed parameter, grid, tolerance or :data:`REFERENCE_VERSION`
        never returns a stale file.

    Returns
    -------
    numpy.ndarray
        Shape ``(len(rows), len(grid))``.
    """
    grid = np.asarray(grid, dtype=np.float64)
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"p1-{_cache_key(rows, grid)}.npy"
        if path.exists():
            return np.load(path)
    circ = np.stack([p1_reference(row, grid) for row in rows])
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, circ)
        tmp.replace(path)
    return circ


def p1_gate_references(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return cached references for the P1 accuracy gate.

    Parameters
    ----------
    n : int
        Population size; the nadir gate covers patients ``0 .. min(n, 100) - 1``.

    Returns
    -------
    gate_indices : numpy.ndarray
        Patient indices of the nadir gate.
    gate_circ : numpy.ndarray
        Their reference ``Circ``, shape ``(len(gate_indices), 127)``.
    hard_circ : numpy.ndarray
        Reference ``Circ`` of patient 5358, shape ``(127,)``.
    """
    gate_indices = p1_gate_indices(n)
    # Always cache the full 0..99 set (one file), whatever n, then slice.
    all_rows = p1_patient_rows(p1_population(100))
    gate_circ = p1_reference_many(all_rows)[gate_indices]
    hard_circ = p1_reference_many([p1_patient(P1_HARD_PATIENT)])[0]
    return gate_indices, gate_circ, hard_circ


# -- P2 ------------------------------------------------------------------------------------


def p2_reference(
    x0: float,
    beta: float,
    t_end: float = 200.0,
    *,
    gamma: float = P2_GAMMA,
    hill: float = P2_HILL,
    tau: float = P2_TAU,
    rtol: float = P2_REF_RTOL,
    atol: float = P2_REF_ATOL,
) -> np.ndarray:
    """Solve Mackey-Glass tightly by the method of steps and return ``x`` on ``0..t_end``.

    Parameters
    ----------
    x0 : float
        Constant history ``x(t) = x0`` for ``t <= 0``.
    beta : float
        Production rate.
    t_end : float, default 200
        Last output time; the output grid is ``0, 1, ..., floor(t_end)``.

    Other Parameters
    ----------------
    gamma, hill, tau : float
        Loss rate, Hill exponent and delay (0.1, 10, 17).
    rtol, atol : float
        DOP853 tolerances.

    Returns
    -------
    numpy.ndarray
        ``x`` at ``0, 1, ..., floor(t_end)``.

    Raises
    ------
    RuntimeError
        If DOP853 fails on an interval.

    Examples
    --------
    >>> round(float(p2_reference(0.5, 0.2, 200.0)[200]), 10)
    0.9426105152
    """
    grid = np.arange(np.floor(t_end) + 1.0)
    out = np.empty_like(grid)
    out[0] = x0
    history = None  # dense output of the previous interval; None means constant x0

    def rhs(t: float, x: np.ndarray) -> np.ndarray:
        delayed = x0 if history is None else float(history(t - tau)[0])
        return beta * delayed / (1.0 + delayed**hill) - gamma * x

    t_start, x_start = 0.0, np.array([x0])
    while t_start < t_end:
        t_stop = min(t_start + tau, t_end)
        sol = solve_ivp(
            rhs,
            (t_start, t_stop),
            x_start,
            method="DOP853",
            rtol=rtol,
            atol=atol,
            dense_output=True,
        )
        if not sol.success:
            raise RuntimeError(f"P2 reference failed on [{t_start}, {t_stop}]: {sol.message}")
        inside = (grid > t_start) & (grid <= t_stop)
        out[inside] = sol.sol(grid[inside])[0]
        out[grid == t_stop] = sol.y[0, -1]
        history, t_start, x_start = sol.sol, t_stop, sol.y[:, -1]
    return out
