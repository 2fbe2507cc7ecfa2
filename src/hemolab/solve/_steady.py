"""Steady-state dosing (``SS=1/2``) for nonlinear models: repeated dosing to convergence.

For each steady-state request (a subject's dose record with ``SS``), the periodic steady state
just before a dose is found by solving whole dosing intervals from the model's initial state,
``cycles_per_call`` intervals per compiled call, until the state at the start of two
consecutive intervals differs by less than the solver tolerance (``atol + rtol·|y|`` on every
state). A steady-state infusion (``AMT=0, RATE>0, II=0``) is run in spans of
``infusion_span`` until the same test holds. Requests of all subjects are solved together.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from hemolab._errors import ScheduleError
from hemolab.compile._compiled import CompiledModel
from hemolab.events._ops import OP_BOLUS, OP_OUTPUT, OP_RATE, OP_RATE_F
from hemolab.solve._dopri5 import DOPRI5, Stepper
from hemolab.solve._engine import ActionTable, run_actions
from hemolab.solve._status import Status

__all__ = ["steady_states"]


def _cycle_table(reqs: Sequence[dict[str, Any]], cycles: int, span: float) -> ActionTable:
    """One row per request: ``cycles`` dosing intervals, a pre-dose output at each end."""
    rows: list[list[tuple[float, int, int, int, float]]] = []
    for req in reqs:
        acts: list[tuple[float, int, int, int, float]] = []  # time, class, op, target, value
        cmt = req["cmt"]
        if req["infusion"]:
            acts.append((0.0, 1, OP_RATE, cmt, req["rate"]))
            period = span
        else:
            period = req["ii"]
            for j in range(cycles):
                t = j * period
                if req["rate"] > 0:
                    length = req["f"] * req["amt"] / req["rate"]
                    acts.append((t, 1, OP_RATE, cmt, req["rate"]))
                    acts.append((t + length, 1, OP_RATE, cmt, -req["rate"]))
                elif req["dur"] == req["dur"] and req["dur"] > 0:
                    acts.append((t, 1, OP_RATE_F, cmt, req["amt"] / req["dur"]))
                    acts.append((t + req["dur"], 1, OP_RATE_F, cmt, -req["amt"] / req["dur"]))
                else:
                    acts.append((t, 1, OP_BOLUS, cmt, req["amt"]))
        for j in range(cycles):
            acts.append(((j + 1) * period, 0, OP_OUTPUT, j, 0.0))  # before the next dose
        acts.sort(key=lambda a: (a[0], a[1]))
        rows.append(acts)
    width = max(len(r) for r in rows)
    time = np.full((len(rows), width), np.inf)
    op = np.zeros((len(rows), width), dtype=np.int32)
    target = np.zeros((len(rows), width), dtype=np.int32)
    value = np.zeros((len(rows), width))
    for i, acts in enumerate(rows):
        for j, (t, _, o, g, v) in enumerate(acts):
            time[i, j], op[i, j], target[i, j], value[i, j] = t, o, g, v
    return ActionTable(time=time, op=op, target=target, value=value, n_outputs=cycles)


def steady_states(
    cm: CompiledModel,
    inputs: np.ndarray,
    requests: Sequence[dict[str, Any]],
    *,
    rtol: float,
    atol: float,
    stepper: Stepper = DOPRI5,
    cycles_per_call: int = 8,
    max_cycles: int = 800,
    infusion_span: float | None = None,
    file: str = "the event dataset",
) -> np.ndarray:
    """Pre-dose steady-state vectors ``(n_requests, n_states)`` (natural coordinates).

    ``inputs`` has one row per subject; each request names its ``subject``. Raises
    :class:`ScheduleError` naming the dataset row when a request does not converge.
    """
    if not requests:
        return np.zeros((0, cm.n_states))
    reqs = list(requests)
    span = infusion_span
    if span is None:
        from hemolab.model._units import time_factor

        span = time_factor("d", cm.model.time_unit)  # one day in model units
    table = _cycle_table(reqs, cycles_per_call, span)
    rows = np.array([r["subject"] for r in reqs])
    p = inputs[rows]
    y = np.full((len(reqs), cm.n_states), np.nan)  # NaN: the model's initial state
    result = np.full((len(reqs), cm.n_states), np.nan)
    todo = np.arange(len(reqs))
    done_cycles = 0
    while len(todo):
        sub = ActionTable(
            time=table.time[todo],
            op=table.op[todo],
            target=table.target[todo],
            value=table.value[todo],
            n_outputs=table.n_outputs,
        )
        sol = run_actions(cm, p[todo], sub, y_init=y[todo], rtol=rtol, atol=atol, stepper=stepper)
        failed = sol.status != Status.OK
        if failed.any():
            row = reqs[int(todo[np.flatnonzero(failed)[0]])]["row"]
            raise ScheduleError(
                f"{file}, row {row}: the steady-state pre-solve failed "
                f"({Status(int(sol.status[failed][0])).label})"
            )
        last, prev = sol.values[:, -1, : cm.n_states], sol.values[:, -2, : cm.n_states]
        tol = atol + rtol * np.abs(last)
        conv = np.all(np.abs(last - prev) <= tol, axis=1)
        result[todo[conv]] = last[conv]
        y[todo] = last
        todo = todo[~conv]
        done_cycles += cycles_per_call
        if len(todo) and done_cycles >= max_cycles:
            row = reqs[int(todo[0])]["row"]
            raise ScheduleError(
                f"{file}, row {row}: steady state not reached after {done_cycles} dosing "
                f"intervals (tolerance atol {atol:g} + rtol {rtol:g}·|y|); the regimen may not "
                "have a periodic steady state"
            )
    return result


def fill_steady_states(
    cm: CompiledModel,
    inputs: np.ndarray,
    schedule: Any,
    *,
    rtol: float,
    atol: float,
    stepper: Stepper = DOPRI5,
    file: str = "the event dataset",
) -> np.ndarray:
    """The schedule's action values with the steady-state placeholders filled in."""
    value = schedule.value.copy()
    reqs = schedule.ss_requests
    if not reqs:
        return value
    if inputs.shape[0] != schedule.n_subjects:
        raise ScheduleError("steady-state dosing needs one parameter row per dataset subject")
    ss = steady_states(cm, inputs, reqs, rtol=rtol, atol=atol, stepper=stepper, file=file)
    y0 = np.asarray(
        [
            cm.initial(0.0, np.zeros(cm.n_states), row, np.zeros(cm.n_delays))
            for row in inputs[[r["subject"] for r in reqs]]
        ],
        dtype=np.float64,
    )
    for k, req in enumerate(reqs):
        s = req["subject"]
        slots = np.flatnonzero(
            (schedule.time[s] == req["time"]) & np.isnan(value[s]) & (schedule.op[s] != OP_OUTPUT)
        )
        vec = ss[k] if req["mode"] == 1 else ss[k] - y0[k]
        for j in slots:
            value[s, j] = vec[schedule.target[s, j]]
    return value
