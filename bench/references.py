"""Independent tight references for P1-P4, written with SciPy only (no hemolab import).

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

P3 (calibration)
    The synthetic data: the truth solved as P1 (log states, DOP853 rtol 1e-11) at the
    observation times, times the fixed log-normal noise. The reference MAP: the same
    objective as the peer, minimised by ``least_squares`` over that tight solver with
    3-point differences and tolerances 1e-12.

P4 (protocol evaluation)
    As P1, piecewise between every dose and rescue switch (the rescue factor is constant on
    each piece), DOP853 rtol 1e-10 atol 1e-12 on the log states, with ``solve_ivp`` events on
    ``log Circ - log 0.5`` (each direction apart): crossing times by root finding on the
    dense output, from which the longest Circ < 0.5 episode follows. ``solve_ivp`` sees only
    sign changes between step ends, so a shallow dip inside one step would be missed: a
    third event at every Circ minimum catches those, and ``brentq`` on the dense output
    finds their two crossings.

References of the P1 gate patients (0..99 and 5358), the P3 data and MAPs and the P4
reference patients are cached on disk under ``bench/output/references/``, keyed by a hash of
every input, so re-runs are fast.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    P3_DOSE_TIMES_H,
    P3_OBS_TIMES_H,
    P3_START,
    P4_THRESHOLD,
    p1_gate_indices,
    p1_patient,
    p1_patient_rows,
    p1_population,
    p3_noise,
    p3_observe,
    p3_patient_params,
    p3_residuals,
)

if TYPE_CHECKING:
    from bench.problems import P4Protocol

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
    t: float,
    y: np.ndarray,
    ke: float,
    a_start: float,
    t_start: float,
    params: dict[str, float],
    factor: float = 1.0,
) -> np.ndarray:
    """Right-hand side of the log neutrophil states on one dosing interval (kprol multiplied
    by ``factor``: P4's rescue; exactly P1 at 1)."""
    amount = a_start * np.exp(-ke * (t - t_start))
    edrug = params["Slope"] * amount / params["V"]
    ktr = 4.0 / params["MTT"]
    log_prol, log_t1, log_t2, log_t3, log_circ = y
    feedback = np.exp(params["gamma"] * (np.log(params["Circ0"]) - log_circ))
    return np.array(
        [
            factor * ktr * (1.0 - edrug) * feedback - ktr,
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


# -- shared cache --------------------------------------------------------------------------


REFERENCE_CACHE = OUTPUT_DIR / "references"
"""Where the P3/P4 references are cached (``cache_dir=None`` disables the cache)."""


def _cached(
    prefix: str,
    parts: Sequence[object],
    compute: Callable[[], np.ndarray],
    cache_dir: Path | None = REFERENCE_CACHE,
) -> np.ndarray:
    """Return ``compute()``, cached as ``<prefix>-<hash of parts>.npy`` in ``cache_dir``."""
    if cache_dir is None:
        return np.asarray(compute(), dtype=np.float64)
    digest = hashlib.sha256(REFERENCE_VERSION.encode())
    for part in parts:
        if isinstance(part, np.ndarray):
            digest.update(np.ascontiguousarray(part, dtype=np.float64).tobytes())
        else:
            digest.update(json.dumps(part, sort_keys=True, default=str).encode())
    path = Path(cache_dir) / f"{prefix}-{digest.hexdigest()[:24]}.npy"
    if path.exists():
        return np.load(path)
    value = np.asarray(compute(), dtype=np.float64)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(tmp, value)
    tmp.replace(path)
    return value


def _table(rows: Sequence[dict[str, float]]) -> np.ndarray:
    return np.array([[row[name] for name in P1_PARAMETER_NAMES] for row in rows])


# -- P3 ------------------------------------------------------------------------------------

P3_REF_RTOL = 1e-11
P3_REF_ATOL = 1e-14


def p3_predict(params: dict[str, float], *, rtol: float = P3_REF_RTOL) -> np.ndarray:
    """Tight ``Circ`` of one patient at the P3 observation times (two cycles of P1 dosing)."""
    states = p1_reference_states(
        params, P3_OBS_TIMES_H, dose_times=P3_DOSE_TIMES_H, rtol=rtol, atol=P3_REF_ATOL
    )
    return states[:, 5]


def p3_data(
    n: int, *, cache_dir: Path | None = REFERENCE_CACHE
) -> tuple[list[dict[str, float]], np.ndarray]:
    """Return the truths and synthetic observations of the first ``n`` P3 patients.

    Patient ``i`` is P1 patient ``i`` observed at :data:`bench.problems.P3_OBS_TIMES_H` with
    noise row ``i`` of :func:`bench.problems.p3_noise`: deterministic, and a prefix of any
    larger batch.

    Returns
    -------
    truths : list of dict of str to float
        The P1 parameters of each patient.
    observations : numpy.ndarray
        ``y`` (1e9/L), shape ``(n, 12)``.
    """
    truths = p1_patient_rows(p1_population(n))
    table = _table(truths)
    circ = _cached(
        "p3-truth",
        ["p3-data", P3_REF_RTOL, P3_REF_ATOL, P3_DOSE_TIMES_H, P3_OBS_TIMES_H, table],
        lambda: np.stack([p3_predict(row) for row in truths]),
        cache_dir,
    )
    return truths, p3_observe(circ, p3_noise(n))


def p3_reference_map(
    observations: np.ndarray, fixed: dict[str, float], *, cache_dir: Path | None = REFERENCE_CACHE
) -> np.ndarray:
    """Tight MAP of one patient: ``exp(phi)`` of ``(Slope, MTT, Circ0)``, cached on disk.

    ``least_squares`` (trust-region reflective) on :func:`bench.problems.p3_residuals` with
    the DOP853 reference solver, 3-point differences and ``xtol = ftol = gtol = 1e-12``,
    started at :data:`bench.problems.P3_START`.
    """
    from scipy.optimize import least_squares

    log_obs = np.log(np.asarray(observations, dtype=np.float64))

    def residuals(phi: np.ndarray) -> np.ndarray:
        pred = p3_predict(p3_patient_params(phi, fixed), rtol=1e-12)
        return p3_residuals(np.log(pred), log_obs, phi)

    def compute() -> np.ndarray:
        sol = least_squares(
            residuals,
            np.log(P3_START),
            jac="3-point",
            diff_step=1e-5,
            xtol=1e-12,
            ftol=1e-12,
            gtol=1e-12,
        )
        if not sol.success:
            raise RuntimeError(f"P3 reference MAP failed: {sol.message}")
        return np.exp(sol.x)

    return _cached("p3-map", ["p3-map", log_obs, sorted(fixed.items())], compute, cache_dir)


# -- P4 ------------------------------------------------------------------------------------

P4_REF_RTOL = 1e-10
P4_REF_VERSION = "p4-2"
"""Part of the P4 cache key: bump when the P4 reference algorithm changes."""
P4_REF_ATOL = 1e-12


def _p4_log_rhs(
    t: float,
    y: np.ndarray,
    ke: float,
    a_start: float,
    t_start: float,
    factor: float,
    params: dict[str, float],
) -> np.ndarray:
    """Log neutrophil states on one piece: P1 with kprol multiplied by ``factor``."""
    return _p1_log_rhs(t, y, ke, a_start, t_start, params, factor)


def p4_reference(
    params: dict[str, float],
    protocol: P4Protocol,
    grid: np.ndarray | None = None,
    *,
    rtol: float = P4_REF_RTOL,
    atol: float = P4_REF_ATOL,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Solve one patient under one P4 protocol; return its threshold crossings.

    Parameters
    ----------
    params : dict of str to float
        One P1 patient.
    protocol : bench.problems.P4Protocol
        Dose, interval and rescue.
    grid : numpy.ndarray, optional
        Sorted times in ``[0, t_end]`` where ``Circ`` is also returned (dense output).

    Other Parameters
    ----------------
    rtol, atol : float
        DOP853 tolerances on the log states.

    Returns
    -------
    crossings : numpy.ndarray
        Shape ``(k, 2)``: crossing time (h) and direction (-1 down through 0.5, +1 up), sorted.
    circ : numpy.ndarray or None
        ``Circ`` on ``grid`` (the value after any event at a grid time).
    """
    t_end = protocol.t_end_h
    doses = {float(t): protocol.dose_mg for t in protocol.dose_times_h}
    switches = dict(protocol.rescue_switches_h())
    breaks = sorted({0.0, t_end, *doses, *switches})
    ke = params["CL"] / params["V"]
    level = np.log(P4_THRESHOLD)

    def down(t: float, y: np.ndarray, *args: object) -> float:
        return float(y[4] - level)

    def up(t: float, y: np.ndarray, *args: object) -> float:
        return float(y[4] - level)

    def minimum(t: float, y: np.ndarray, *args: object) -> float:
        # d(log Circ)/dt = ktr (T3/Circ - 1): a Circ minimum where log T3 - log Circ rises
        # through 0
        return float(y[3] - y[4])

    down.direction = -1.0  # type: ignore[attr-defined]
    up.direction = 1.0  # type: ignore[attr-defined]
    minimum.direction = 1.0  # type: ignore[attr-defined]
    y = np.full(5, np.log(params["Circ0"]))
    amount, factor = 0.0, 1.0
    crossings: list[tuple[float, float]] = []
    grid_arr = None if grid is None else np.asarray(grid, dtype=np.float64)
    circ = None if grid_arr is None else np.full(len(grid_arr), np.nan)
    for t_start, t_stop in itertools.pairwise(breaks):
        amount += doses.get(t_start, 0.0)
        factor = switches.get(t_start, factor)
        sol = solve_ivp(
            _p4_log_rhs,
            (t_start, t_stop),
            y,
            method="DOP853",
            rtol=rtol,
            atol=atol,
            dense_output=True,
            events=(down, up, minimum),
            args=(ke, amount, t_start, factor, params),
        )
        if not sol.success:
            raise RuntimeError(f"P4 reference failed on [{t_start}, {t_stop}] h: {sol.message}")
        t_events = sol.t_events or []
        crossings += [(float(t), -1.0) for t in t_events[0]]
        crossings += [(float(t), 1.0) for t in t_events[1]]
        crossings += _missed_dips(sol, t_events[2], level)
        if grid_arr is not None and circ is not None:
            last = t_stop == breaks[-1]
            inside = (grid_arr >= t_start) & ((grid_arr <= t_stop) if last else (grid_arr < t_stop))
            if inside.any():
                circ[inside] = np.exp(sol.sol(grid_arr[inside])[4])
        y = sol.y[:, -1]
        amount *= np.exp(-ke * (t_stop - t_start))
    out = np.array(sorted(crossings), dtype=np.float64).reshape(-1, 2)
    return out, circ


def _missed_dips(sol: Any, minima: np.ndarray, level: float) -> list[tuple[float, float]]:
    """Crossing pairs of dips below ``level`` that begin and end inside one solver step.

    ``solve_ivp`` looks for sign changes of an event function only between step ends, so a
    shallow dip (Circ just under 0.5 for a few hours) inside one step has no event; its
    minimum does (a sign change of ``log T3 - log Circ``). For each minimum below ``level``
    whose step starts and ends above it, both crossings are found by ``brentq`` on the dense
    output.
    """
    from scipy.optimize import brentq

    def g(t: float) -> float:
        return float(sol.sol(t)[4] - level)

    def root(lo: float, hi: float) -> float:
        return float(brentq(g, lo, hi, xtol=1e-12, full_output=False))  # pyright: ignore[reportArgumentType]

    found: list[tuple[float, float]] = []
    for t_min in np.asarray(minima, dtype=np.float64).tolist():
        if g(t_min) >= 0.0:
            continue
        k = int(np.searchsorted(sol.t, t_min))
        t_a, t_b = float(sol.t[max(k - 1, 0)]), float(sol.t[min(k, len(sol.t) - 1)])
        if t_a < t_min < t_b and g(t_a) > 0.0 and g(t_b) > 0.0:
            found += [(root(t_a, t_min), -1.0), (root(t_min, t_b), 1.0)]
    return found


def p4_longest_from_crossings(crossings: np.ndarray, t_end: float) -> float:
    """Longest Circ < 0.5 episode (h) from sorted crossings; an open one ends at ``t_end``."""
    longest, start = 0.0, None
    for t, direction in crossings.tolist():
        if direction < 0:
            start = t
        elif start is not None:
            longest, start = max(longest, t - start), None
    if start is not None:
        longest = max(longest, t_end - start)
    return longest


def p4_reference_longest(
    rows: Sequence[dict[str, float]],
    protocol: P4Protocol,
    *,
    cache_dir: Path | None = REFERENCE_CACHE,
) -> np.ndarray:
    """Reference longest episodes (h) of several patients under one protocol, cached."""
    parts = [P4_REF_VERSION, P4_REF_RTOL, P4_REF_ATOL, protocol.as_dict(), _table(rows)]
    return _cached(
        "p4-longest",
        parts,
        lambda: np.array(
            [
                p4_longest_from_crossings(p4_reference(row, protocol)[0], protocol.t_end_h)
                for row in rows
            ]
        ),
        cache_dir,
    )
