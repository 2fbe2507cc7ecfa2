"""Peer simulators for P1-P4, timed the way a user of each tool would write the job.

Every ``solve`` returns ``(seconds, outputs, failures)``:

- ``seconds``: wall time of the batch, from parameters in memory to output arrays on the grid
  (model loading, compilation and process start-up are excluded and reported apart);
- ``outputs``: float64 array ``(n, len(grid))``, a row of NaN for a failed item;
- ``failures``: ``{item index: message}`` for every item the tool could not finish.

Peers
-----
``libroadrunner``
    P1 as hand-written SBML L3 (parameters with rate rules; doses 2..6 as SBML events, the
    first dose as the initial amount), CVODE-BDF rtol 1e-6 atol 1e-8; per patient
    ``reset() + setValues() + simulate()``. Events were measured faster than a piecewise loop
    of ``simulate`` calls (2.34 s vs 2.74 s for 2,000 patients) with identical outputs.
``libroadrunner-2proc``
    The same loop split over a spawn-context process pool; each worker loads the model once.
``scipy-lsoda``
    ``solve_ivp(method="LSODA")`` per patient, piecewise between doses, rtol 1e-6 atol 1e-8.
``jitcdde``
    P2 compiled once with beta as a control parameter; per item ``purge_past``,
    ``constant_past``, ``set_parameters``, ``step_on_discontinuities`` then ``integrate`` on
    the grid, rtol 1e-6 atol 1e-8.

``libroadrunner-lsq`` (P3)
    ``scipy.optimize.least_squares`` (defaults: trust-region reflective, 2-point finite
    differences) over libRoadRunner simulations of P1 with two doses, on the residuals of
    :func:`bench.problems.p3_residuals` in ``phi = log(Slope, MTT, Circ0)``: what a tellurium
    user writes. Every model evaluation (including the finite-difference ones) is counted.
``libroadrunner`` (P4)
    P1 plus the rescue as hand-written SBML: dose, interval and rescue start are parameters
    of time-triggered events, so one loaded model serves every protocol; the Circ < 0.5
    episodes come from two SBML events on ``Circ < 0.5`` / ``Circ > 0.5`` (CVODE root
    finding) that record ``t_down`` and ``max_below`` exactly as hemolab's triggers do.

libRoadRunner and jitcdde are imported lazily, so this module imports without them.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import multiprocessing
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from bench.problems import (
    P1_ATOL,
    P1_DOSE_MG,
    P1_DOSE_TIMES_H,
    P1_PARAMETER_NAMES,
    P1_RTOL,
    P2_ATOL,
    P2_GAMMA,
    P2_HILL,
    P2_RTOL,
    P2_TAU,
    P3_ATOL,
    P3_DOSE_TIMES_H,
    P3_FREE,
    P3_OBS_TIMES_H,
    P3_RTOL,
    P3_START,
    P4_ATOL,
    P4_CYCLES,
    P4_RESCUE_DAYS,
    P4_RESCUE_FACTOR,
    P4_RTOL,
    P4_THRESHOLD,
    P4Protocol,
    p3_patient_params,
    p3_residuals,
    p4_longest_episode,
)

PeerOutput = tuple[float, np.ndarray, dict[int, str]]
"""``(seconds, outputs, failures)`` returned by every peer."""

P1_STATE_NAMES = ("A", "Prol", "T1", "T2", "T3", "Circ")

# -- libRoadRunner, P1 ---------------------------------------------------------------------

_MATHML = '<math xmlns="http://www.w3.org/1998/Math/MathML">{}</math>'
_TIME = '<csymbol encoding="text" definitionURL="http://www.sbml.org/sbml/symbols/time">t</csymbol>'


def _apply(op: str, *args: str) -> str:
    return f"<apply><{op}/>{''.join(args)}</apply>"


def _ci(name: str) -> str:
    return f"<ci>{name}</ci>"


def _cn(value: float) -> str:
    return f"<cn>{value!r}</cn>"


def p1_sbml(dose_times: np.ndarray = P1_DOSE_TIMES_H, dose_mg: float = P1_DOSE_MG) -> str:
    """Return the P1 Friberg model as an SBML Level 3 Version 2 document.

    The six states are non-constant parameters with rate rules (no compartments, so no
    amount/concentration conversions); ``CL, V, MTT, Circ0, Slope, gamma`` are constant
    parameters. Each dose after the first is an event ``time >= t_d: A = A + dose_mg``; the
    first dose is the initial amount ``A = dose_mg`` set by the caller.

    Parameters
    ----------
    dose_times : numpy.ndarray
        Bolus times (h); the first must be the simulation start.
    dose_mg : float
        Bolus amount (mg).

    Returns
    -------
    str
        The SBML XML text.
    """
    constant = [f'<parameter id="{p}" value="1" constant="true"/>' for p in P1_PARAMETER_NAMES]
    states = [f'<parameter id="{s}" value="1" constant="false"/>' for s in P1_STATE_NAMES]
    ktr = _apply("divide", _cn(4.0), _ci("MTT"))
    edrug = _apply("times", _ci("Slope"), _apply("divide", _ci("A"), _ci("V")))
    feedback = _apply("power", _apply("divide", _ci("Circ0"), _ci("Circ")), _ci("gamma"))
    rates = {
        "A": _apply("minus", _apply("times", _apply("divide", _ci("CL"), _ci("V")), _ci("A"))),
        "Prol": _apply(
            "minus",
            _apply("times", ktr, _ci("Prol"), _apply("minus", _cn(1.0), edrug), feedback),
            _apply("times", ktr, _ci("Prol")),
        ),
    }
    for upstream, state in itertools.pairwise(P1_STATE_NAMES[1:]):
        rates[state] = _apply("times", ktr, _apply("minus", _ci(upstream), _ci(state)))
    rules = [
        f'<rateRule variable="{state}">{_MATHML.format(rate)}</rateRule>'
        for state, rate in rates.items()
    ]
    events = []
    for k, t_dose in enumerate(dose_times[1:], start=1):
        trigger = _MATHML.format(_apply("geq", _TIME, _cn(float(t_dose))))
        assignment = _MATHML.format(_apply("plus", _ci("A"), _cn(float(dose_mg))))
        events.append(
            f'<event id="dose{k}" useValuesFromTriggerTime="true">'
            f'<trigger initialValue="false" persistent="true">{trigger}</trigger>'
            f'<listOfEventAssignments><eventAssignment variable="A">{assignment}'
            "</eventAssignment></listOfEventAssignments></event>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<sbml xmlns="http://www.sbml.org/sbml/level3/version2/core" level="3" version="2">'
        '<model id="friberg_p1_bench">'
        f"<listOfParameters>{''.join(constant + states)}</listOfParameters>"
        f"<listOfRules>{''.join(rules)}</listOfRules>"
        f"<listOfEvents>{''.join(events)}</listOfEvents>"
        "</model></sbml>"
    )


def _uniform_grid(grid: np.ndarray) -> tuple[float, float, int]:
    """Return ``(start, stop, points)`` of a uniform grid, as ``RoadRunner.simulate`` takes."""
    grid = np.asarray(grid, dtype=np.float64)
    steps = np.diff(grid)
    if grid.size < 2 or not np.allclose(steps, steps[0], rtol=1e-12, atol=0.0):
        raise ValueError("the libRoadRunner peer needs a uniform output grid of >= 2 points")
    return float(grid[0]), float(grid[-1]), int(grid.size)


def _flush_c_stdio() -> None:
    """Flush the C library's stdio buffers (``fflush(NULL)``)."""
    ctypes.CDLL(None).fflush(None)


@contextlib.contextmanager
def _quiet_c_output() -> Iterator[None]:
    """Silence file descriptors 1 and 2 while native code runs.

    SUNDIALS (inside libRoadRunner) prints a failing patient's warnings to C ``stdout``, which
    is block-buffered when piped and would otherwise surface later, e.g. after the JSON line
    of ``bench/run.py``. The failure itself is kept per patient in ``failures``.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    _flush_c_stdio()
    saved = [os.dup(1), os.dup(2)]
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            os.dup2(devnull.fileno(), 2)
            try:
                yield
            finally:
                _flush_c_stdio()
    finally:
        for fd, copy in zip((1, 2), saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)


def _load_roadrunner(
    sbml: str, rtol: float, atol: float, selections: list[str]
) -> tuple[Any, float]:
    """A libRoadRunner model with CVODE tolerances and output selections, and the seconds it
    took to parse and JIT-compile (reported apart). A failing patient logs many CVODE lines;
    failures are kept per patient instead, so the logger is set to fatal only."""
    import roadrunner

    roadrunner.Logger.setLevel(roadrunner.Logger.LOG_FATAL)
    start = time.perf_counter()
    rr = roadrunner.RoadRunner(sbml)
    load_s = time.perf_counter() - start
    rr.integrator.relative_tolerance = rtol
    rr.integrator.absolute_tolerance = atol
    rr.timeCourseSelections = selections
    return rr, load_s


class RoadRunnerP1:
    """libRoadRunner loop over P1 patients with one loaded model.

    Parameters
    ----------
    rtol, atol : float
        CVODE tolerances (1e-6, 1e-8).

    Attributes
    ----------
    load_s : float
        Seconds to parse and JIT-compile the SBML model (reported apart).
    """

    def __init__(self, *, rtol: float = P1_RTOL, atol: float = P1_ATOL) -> None:
        self._rr, self.load_s = _load_roadrunner(p1_sbml(), rtol, atol, ["Circ"])
        self._keys = [*P1_PARAMETER_NAMES, *P1_STATE_NAMES]

    def solve(
        self, params: dict[str, np.ndarray], grid: np.ndarray, *, offset: int = 0
    ) -> PeerOutput:
        """Simulate every patient and return ``Circ`` on ``grid``.

        Parameters
        ----------
        params : dict of str to numpy.ndarray
            P1 parameters, one array of shape ``(n,)`` per name.
        grid : numpy.ndarray
            Uniform output grid (h) starting at the first dose.

        Other Parameters
        ----------------
        offset : int
            Added to the local index in ``failures`` (used by the process pool).

        Returns
        -------
        tuple
            ``(seconds, outputs (n, len(grid)), failures)``.
        """
        start_t, stop_t, points = _uniform_grid(grid)
        table = np.column_stack([np.asarray(params[name], float) for name in P1_PARAMETER_NAMES])
        rr, keys = self._rr, self._keys
        outputs = np.full((len(table), points), np.nan)
        failures: dict[int, str] = {}
        with _quiet_c_output():
            start = time.perf_counter()
            for i, row in enumerate(table.tolist()):
                circ0 = row[3]
                rr.reset()
                rr.setValues(keys, [*row, P1_DOSE_MG, circ0, circ0, circ0, circ0, circ0])
                try:
                    outputs[i] = rr.simulate(start_t, stop_t, points)[:, 0]
                except RuntimeError as error:
                    failures[offset + i] = str(error).split(";")[0]
            seconds = time.perf_counter() - start
        return seconds, outputs, failures


_WORKER: RoadRunnerP1 | None = None


def _pool_init(barrier: Any) -> None:
    """Load the model once per worker, then wait until every worker is ready."""
    global _WORKER
    _WORKER = RoadRunnerP1()
    barrier.wait()


def _pool_solve(task: tuple[int, dict[str, np.ndarray], np.ndarray]) -> PeerOutput:
    offset, params, grid = task
    if _WORKER is None:
        raise RuntimeError("pool worker used before its initializer ran")
    return _WORKER.solve(params, grid, offset=offset)


def _pool_ready(_: int) -> bool:
    return _WORKER is not None


class RoadRunnerP1Pool:
    """The libRoadRunner P1 loop over a spawn-context process pool.

    Spawn, not fork: the parent may later import JAX, which must never be forked. Each
    worker loads the model once; ``startup_s`` (pool start + model loads) is reported apart.

    Parameters
    ----------
    processes : int, default 2
        Worker processes.
    chunk : int, default 100
        Patients per task: small enough to balance slow patients across workers.

    Examples
    --------
    >>> with RoadRunnerP1Pool() as pool:  # doctest: +SKIP
    ...     seconds, circ, failures = pool.solve(p1_population(2000), P1_GRID_H)
    """

    def __init__(self, processes: int = 2, *, chunk: int = 100) -> None:
        context = multiprocessing.get_context("spawn")
        start = time.perf_counter()
        barrier = context.Barrier(processes)
        self._pool = context.Pool(processes, initializer=_pool_init, initargs=(barrier,))
        if not all(self._pool.map(_pool_ready, range(processes), chunksize=1)):
            raise RuntimeError("libRoadRunner pool workers failed to load the model")
        self.startup_s = time.perf_counter() - start
        self.chunk = chunk

    def solve(self, params: dict[str, np.ndarray], grid: np.ndarray) -> PeerOutput:
        """Simulate every patient on the pool; same contract as :meth:`RoadRunnerP1.solve`."""
        n = len(params["CL"])
        tasks = [
            (lo, {k: np.asarray(v)[lo : lo + self.chunk] for k, v in params.items()}, grid)
            for lo in range(0, n, self.chunk)
        ]
        start = time.perf_counter()
        parts = self._pool.map(_pool_solve, tasks, chunksize=1)
        seconds = time.perf_counter() - start
        failures: dict[int, str] = {}
        for _, _, part_failures in parts:
            failures.update(part_failures)
        return seconds, np.concatenate([out for _, out, _ in parts]), failures

    def close(self) -> None:
        """Stop the worker processes."""
        self._pool.close()
        self._pool.join()

    def __enter__(self) -> RoadRunnerP1Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- libRoadRunner + least_squares, P3 -----------------------------------------------------


class RoadRunnerP3:
    """MAP fits of P3 patients with ``scipy.optimize.least_squares`` over libRoadRunner.

    One model (P1 with the two P3 doses) is loaded once; each model evaluation is
    ``reset() + setValues() + simulate(times=observation times)``.

    Attributes
    ----------
    load_s : float
        Seconds to parse and JIT-compile the SBML model (reported apart).
    """

    def __init__(self, *, rtol: float = P3_RTOL, atol: float = P3_ATOL) -> None:
        self._rr, self.load_s = _load_roadrunner(p1_sbml(P3_DOSE_TIMES_H), rtol, atol, ["Circ"])
        self._keys = [*P1_PARAMETER_NAMES, *P1_STATE_NAMES]
        self._times = np.asarray(P3_OBS_TIMES_H, dtype=np.float64)

    def predict(self, params: dict[str, float]) -> np.ndarray:
        """``Circ`` of one patient at the observation times (raises ``RuntimeError`` on a
        CVODE failure)."""
        rr, circ0 = self._rr, params["Circ0"]
        rr.reset()
        values = [params[name] for name in P1_PARAMETER_NAMES]
        rr.setValues(self._keys, [*values, P1_DOSE_MG, circ0, circ0, circ0, circ0, circ0])
        return np.asarray(rr.simulate(times=self._times))[:, 0]

    def fit(self, observations: np.ndarray, fixed: dict[str, float]) -> dict[str, Any]:
        """Fit one patient from :data:`bench.problems.P3_START`.

        Parameters
        ----------
        observations : numpy.ndarray
            ``y`` at the 12 observation times.
        fixed : dict of str to float
            ``CL, V, gamma`` (and any other non-estimated P1 parameter).

        Returns
        -------
        dict
            ``seconds`` (wall time of the fit), ``theta`` (Slope, MTT, Circ0), ``nfev``,
            ``njev``, ``simulations`` (every model evaluation, finite differences included),
            ``failed_simulations``, ``status``, ``success``, ``message``, ``cost``.
        """
        from scipy.optimize import least_squares

        log_obs = np.log(np.asarray(observations, dtype=np.float64))
        counts = {"simulations": 0, "failed": 0}

        def residuals(phi: np.ndarray) -> np.ndarray:
            counts["simulations"] += 1
            try:
                pred = self.predict(p3_patient_params(phi, fixed))
            except RuntimeError:
                counts["failed"] += 1
                return np.full(len(log_obs) + len(P3_FREE), 1e3)
            return p3_residuals(np.log(pred), log_obs, phi)

        with _quiet_c_output():
            start = time.perf_counter()
            sol = least_squares(residuals, np.log(P3_START))
            seconds = time.perf_counter() - start
        return {
            "seconds": seconds,
            "theta": np.exp(sol.x),
            "nfev": int(sol.nfev),
            "njev": int(sol.njev or 0),
            "simulations": counts["simulations"],
            "failed_simulations": counts["failed"],
            "status": int(sol.status),
            "success": bool(sol.success),
            "message": str(sol.message),
            "cost": float(sol.cost),
        }


# -- libRoadRunner, P4 ---------------------------------------------------------------------


def _piecewise(value: str, condition: str, otherwise: str) -> str:
    return (
        f"<piecewise><piece>{value}{condition}</piece><otherwise>{otherwise}</otherwise>"
        "</piecewise>"
    )


def _event(event_id: str, trigger: str, variable: str, value: str) -> str:
    return (
        f'<event id="{event_id}" useValuesFromTriggerTime="true">'
        f'<trigger initialValue="true" persistent="true">{_MATHML.format(trigger)}</trigger>'
        f'<listOfEventAssignments><eventAssignment variable="{variable}">'
        f"{_MATHML.format(value)}</eventAssignment></listOfEventAssignments></event>"
    )


P4_PROTOCOL_PARAMETERS = ("dose", "interval", "rescue_at", "rescue_factor")
"""Constant SBML parameters of :func:`p4_sbml` set per protocol (``rescue_at`` in h after
each dose; far beyond the end when the rescue is off)."""
P4_TRACKED = ("rescue", "t_down", "max_below")
"""Non-constant SBML parameters changed by events (reset per patient)."""


def p4_sbml() -> str:
    """Return P1 plus the P4 rescue and episode bookkeeping as one SBML L3V2 document.

    The dose and rescue times are parameters of time-triggered events, so one loaded model
    evaluates every protocol: ``time >= k*interval`` adds ``dose`` to ``A`` (k = 1..5; the
    first dose is the initial amount); ``time >= k*interval + rescue_at`` sets
    ``rescue = rescue_factor`` and 10 days later ``rescue = 1`` (k = 0..5). Two events on
    ``Circ < 0.5`` and ``Circ > 0.5`` record ``t_down = time`` and ``max_below =
    max(max_below, time - t_down)`` at the crossings CVODE's root finder locates.
    """
    constant = [
        f'<parameter id="{p}" value="1" constant="true"/>'
        for p in (*P1_PARAMETER_NAMES, *P4_PROTOCOL_PARAMETERS)
    ]
    variable = [
        f'<parameter id="{s}" value="1" constant="false"/>' for s in (*P1_STATE_NAMES, *P4_TRACKED)
    ]
    ktr = _apply("divide", _cn(4.0), _ci("MTT"))
    edrug = _apply("times", _ci("Slope"), _apply("divide", _ci("A"), _ci("V")))
    feedback = _apply("power", _apply("divide", _ci("Circ0"), _ci("Circ")), _ci("gamma"))
    rates = {
        "A": _apply("minus", _apply("times", _apply("divide", _ci("CL"), _ci("V")), _ci("A"))),
        "Prol": _apply(
            "minus",
            _apply(
                "times",
                _ci("rescue"),
                ktr,
                _ci("Prol"),
                _apply("minus", _cn(1.0), edrug),
                feedback,
            ),
            _apply("times", ktr, _ci("Prol")),
        ),
    }
    for upstream, state in itertools.pairwise(P1_STATE_NAMES[1:]):
        rates[state] = _apply("times", ktr, _apply("minus", _ci(upstream), _ci(state)))
    rules = [
        f'<rateRule variable="{state}">{_MATHML.format(rate)}</rateRule>'
        for state, rate in rates.items()
    ]
    events = []
    for k in range(P4_CYCLES):
        t_k = _apply("times", _cn(float(k)), _ci("interval"))
        if k:
            trigger = _apply("geq", _TIME, t_k)
            events.append(_event(f"dose{k}", trigger, "A", _apply("plus", _ci("A"), _ci("dose"))))
        on = _apply("plus", t_k, _ci("rescue_at"))
        off = _apply("plus", on, _cn(24.0 * P4_RESCUE_DAYS))
        events.append(
            _event(f"rescue_on{k}", _apply("geq", _TIME, on), "rescue", _ci("rescue_factor"))
        )
        events.append(_event(f"rescue_off{k}", _apply("geq", _TIME, off), "rescue", _cn(1.0)))
    threshold = _cn(P4_THRESHOLD)
    events.append(_event("down", _apply("lt", _ci("Circ"), threshold), "t_down", _TIME))
    length = _apply("minus", _TIME, _ci("t_down"))
    longer = _apply("gt", length, _ci("max_below"))
    events.append(
        _event(
            "up",
            _apply("gt", _ci("Circ"), threshold),
            "max_below",
            _piecewise(length, longer, _ci("max_below")),
        )
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<sbml xmlns="http://www.sbml.org/sbml/level3/version2/core" level="3" version="2">'
        '<model id="friberg_p4_bench">'
        f"<listOfParameters>{''.join(constant + variable)}</listOfParameters>"
        f"<listOfRules>{''.join(rules)}</listOfRules>"
        f"<listOfEvents>{''.join(events)}</listOfEvents>"
        "</model></sbml>"
    )


class RoadRunnerP4:
    """libRoadRunner loop evaluating P4 protocols over a population with one loaded model.

    Attributes
    ----------
    load_s : float
        Seconds to parse and JIT-compile the SBML model (reported apart).
    """

    def __init__(self, *, rtol: float = P4_RTOL, atol: float = P4_ATOL) -> None:
        self._rr, self.load_s = _load_roadrunner(
            p4_sbml(), rtol, atol, ["Circ", "t_down", "max_below"]
        )
        self._keys = [*P4_PROTOCOL_PARAMETERS, *P1_PARAMETER_NAMES, *P1_STATE_NAMES, *P4_TRACKED]

    def evaluate(
        self, params: dict[str, np.ndarray], protocol: P4Protocol
    ) -> tuple[float, np.ndarray, dict[int, str]]:
        """Simulate every patient under ``protocol``; return their longest Circ < 0.5 episode.

        Returns
        -------
        tuple
            ``(seconds, longest (n,) in h, failures)``; a failed patient's entry is NaN.
            The seconds cover the loop and the episode arithmetic (the whole evaluation).
        """
        table = np.column_stack([np.asarray(params[name], float) for name in P1_PARAMETER_NAMES])
        t_end = protocol.t_end_h
        rescue_at = 24.0 * protocol.rescue_start_d if protocol.rescue else 1e12
        head = [protocol.dose_mg, protocol.interval_h, rescue_at, P4_RESCUE_FACTOR]
        rr, keys = self._rr, self._keys
        end = np.full((len(table), 3), np.nan)
        failures: dict[int, str] = {}
        with _quiet_c_output():
            start = time.perf_counter()
            for i, row in enumerate(table.tolist()):
                c0 = row[3]
                rr.reset()
                rr.setValues(
                    keys, [*head, *row, protocol.dose_mg, c0, c0, c0, c0, c0, 1.0, 0.0, 0.0]
                )
                try:
                    end[i] = rr.simulate(0.0, t_end, 2)[-1]
                except RuntimeError as error:
                    failures[i] = str(error).split(";")[0]
            longest = p4_longest_episode(end[:, 1], end[:, 2], end[:, 0], t_end)
            seconds = time.perf_counter() - start
        return seconds, longest, failures


# -- SciPy LSODA, P1 -----------------------------------------------------------------------


def _p1_rhs(t: float, y: np.ndarray, p: tuple[float, ...]) -> list[float]:
    cl, v, mtt, circ0, slope, gamma = p
    amount, prol, t1, t2, t3, circ = y
    ktr = 4.0 / mtt
    edrug = slope * amount / v
    return [
        -cl / v * amount,
        ktr * prol * (1.0 - edrug) * (circ0 / circ) ** gamma - ktr * prol,
        ktr * (prol - t1),
        ktr * (t1 - t2),
        ktr * (t2 - t3),
        ktr * (t3 - circ),
    ]


def scipy_lsoda_p1(
    params: dict[str, np.ndarray],
    grid: np.ndarray,
    *,
    rtol: float = P1_RTOL,
    atol: float = P1_ATOL,
) -> PeerOutput:
    """SciPy ``solve_ivp(method="LSODA")`` loop over P1 patients, piecewise between doses.

    All six states are plain (``A`` included), as a SciPy user would write it.

    Parameters
    ----------
    params : dict of str to numpy.ndarray
        P1 parameters, one array of shape ``(n,)`` per name.
    grid : numpy.ndarray
        Output grid (h), starting at the first dose.

    Other Parameters
    ----------------
    rtol, atol : float
        LSODA tolerances.

    Returns
    -------
    tuple
        ``(seconds, outputs (n, len(grid)), failures)``.
    """
    from scipy.integrate import solve_ivp

    grid = np.asarray(grid, dtype=np.float64)
    bounds = [*P1_DOSE_TIMES_H.tolist(), max(float(grid[-1]), float(P1_DOSE_TIMES_H[-1]))]
    if not np.isin(bounds, grid).all():
        # Each piece hands its last output state to the next one; on another grid this
        # would need dense output. Refuse rather than guess.
        raise ValueError("scipy_lsoda_p1 needs every dose time and the end on the output grid")
    pieces = []
    for k in range(len(P1_DOSE_TIMES_H)):
        upper = grid <= bounds[k + 1]
        pieces.append(np.flatnonzero((grid >= bounds[k]) & upper))
    table = np.column_stack([np.asarray(params[name], float) for name in P1_PARAMETER_NAMES])
    outputs = np.full((len(table), len(grid)), np.nan)
    failures: dict[int, str] = {}
    start = time.perf_counter()
    for i, row in enumerate(table.tolist()):
        y = np.array([0.0, *[row[3]] * 5])
        for k, where in enumerate(pieces):
            y[0] += P1_DOSE_MG
            sol = solve_ivp(
                _p1_rhs,
                (bounds[k], bounds[k + 1]),
                y,
                method="LSODA",
                t_eval=grid[where],
                rtol=rtol,
                atol=atol,
                args=(tuple(row),),
            )
            if not sol.success:
                failures[i] = sol.message
                outputs[i] = np.nan
                break
            outputs[i, where] = sol.y[5]
            y = sol.y[:, -1].copy()
    return time.perf_counter() - start, outputs, failures


# -- jitcdde, P2 ---------------------------------------------------------------------------


class JitcddeMackeyGlass:
    """jitcdde for the P2 Mackey-Glass batch, compiled once with beta as a control parameter.

    Parameters
    ----------
    rtol, atol : float
        jitcdde tolerances (1e-6, 1e-8).

    Other Parameters
    ----------------
    module_location : str or None
        Where to save the compiled module (``None``: jitcdde's temporary directory).

    Attributes
    ----------
    compile_s : float
        Seconds of code generation and C compilation (reported apart).
    """

    def __init__(
        self, *, rtol: float = P2_RTOL, atol: float = P2_ATOL, module_location: str | None = None
    ) -> None:
        import symengine
        from jitcdde import jitcdde, t, y

        beta = symengine.Symbol("beta")
        delayed = y(0, t - P2_TAU)
        rhs = [beta * delayed / (1 + delayed**P2_HILL) - P2_GAMMA * y(0)]
        start = time.perf_counter()
        self._dde = jitcdde(rhs, control_pars=[beta], max_delay=P2_TAU, verbose=False)
        # jitcxde_common builds through setuptools' `setup()`, which reads the pyproject.toml
        # of the working directory (ours has [tool.setuptools] and warns): build elsewhere.
        with tempfile.TemporaryDirectory() as build_dir, contextlib.chdir(build_dir):
            self._dde.compile_C(simplify=False, omp=False, verbose=False)
        if module_location is not None:
            self._dde.save_compiled(module_location, overwrite=True)
        self.compile_s = time.perf_counter() - start
        self.rtol, self.atol = rtol, atol

    def close(self) -> None:
        """Delete jitcdde's temporary build directory now (not in a warning at exit)."""
        tmpdir = getattr(self._dde, "_tmpdir", None)
        if tmpdir is not None:
            tmpdir.cleanup()
            self._dde._tmpdir = None

    def __enter__(self) -> JitcddeMackeyGlass:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def solve_one(self, x0: float, beta: float, grid: np.ndarray) -> np.ndarray:
        """Integrate one item from its constant past and return ``x`` on ``grid``.

        ``step_on_discontinuities`` steps on the propagated initial discontinuity (t = tau);
        the grid points it passes are read from jitcdde's own Hermite spline of the past.
        """
        dde = self._dde
        dde.purge_past()
        dde.constant_past([x0], time=float(grid[0]))  # pyright: ignore[reportArgumentType]
        dde.set_parameters(beta)
        dde.set_integration_parameters(rtol=self.rtol, atol=self.atol)
        dde.step_on_discontinuities()
        out = np.empty(len(grid))
        passed = grid <= dde.t
        out[passed] = dde.get_state().get_state(grid[passed])[:, 0]
        for j in np.flatnonzero(~passed):
            out[j] = dde.integrate(float(grid[j]))[0]
        return out

    def solve(self, x0: np.ndarray, beta: np.ndarray, grid: np.ndarray) -> PeerOutput:
        """Integrate every item; same contract as the other peers.

        Parameters
        ----------
        x0, beta : numpy.ndarray
            Constant histories and production rates, shape ``(n,)``.
        grid : numpy.ndarray
            Output times, starting at 0.

        Returns
        -------
        tuple
            ``(seconds, outputs (n, len(grid)), failures)``.
        """
        from jitcdde import UnsuccessfulIntegration

        grid = np.asarray(grid, dtype=np.float64)
        outputs = np.full((len(x0), len(grid)), np.nan)
        failures: dict[int, str] = {}
        start = time.perf_counter()
        with warnings.catch_warnings():
            # jitcdde warns whenever one step already passed the next output time; the value
            # then comes from that step's Hermite interpolant, which is the intended use
            # ("no need to worry", says the message).
            warnings.filterwarnings("ignore", "The target time is smaller", UserWarning)
            for i, (x_start, beta_i) in enumerate(zip(x0.tolist(), beta.tolist(), strict=True)):
                try:
                    outputs[i] = self.solve_one(x_start, beta_i, grid)
                except UnsuccessfulIntegration as error:
                    failures[i] = str(error).strip().splitlines()[0]
        return time.perf_counter() - start, outputs, failures
