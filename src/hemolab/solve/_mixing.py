"""Sample mixing (``EVENT=mix``, DATA-FORMATS §A): donors solved first, amounts filled in.

A mix moves the amounts of the selected states held in ``V`` mL of the donor's blood into the
recipient: ``f = V / BV_donor(t)`` of each amount (``V`` given, or ``FRACTION`` of the
recipient's blood volume ``BV_recipient(t)``), and with ``DEPLETE=1`` the donor keeps
``1 - f`` of it, so that what one loses the other gains (mass balance, to rounding). The
schedule holds NaN placeholders for these amounts; here the subjects involved are solved up to
the mix (each a prefix of its own action table, read by one output action) in dependency
order, and the placeholders filled. Every mix whose prefixes are complete is solved in the
same compiled call, so a dataset costs one call per wave of mixes, not one per mix. Design
note 026.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from hemolab._errors import ScheduleError
from hemolab.compile._compiled import CompiledModel
from hemolab.events._common import warn
from hemolab.events._ops import OP_NOP, OP_OUTPUT
from hemolab.solve._dopri5 import DOPRI5, Stepper
from hemolab.solve._engine import ActionTable, run_actions
from hemolab.solve._status import Status

__all__ = ["MIN_DONOR_HB_G_DL", "SAFE_DONATION_FRACTION", "fill_mixing"]

SAFE_DONATION_FRACTION = 0.15
"""The largest share of a donor's blood volume one depleting mix may take without a warning
(a whole-blood donation is at most 10.5 mL/kg, 15 % of 70 mL/kg: AABB Standards)."""

MIN_DONOR_HB_G_DL = 12.5
"""The lowest haemoglobin at which a donor may give blood (AABB Standards, 12.5 g/dL for
either sex); checked before a depleting mix when the model has an ``Hb`` observable in g/dL."""


def _prefix_table(
    schedule: Any, values: np.ndarray, reads: Sequence[tuple[int, int, float]]
) -> ActionTable:
    """One row per read ``(subject, column, time)``: the subject's actions before ``column``,
    then an output of every state at ``time`` into the slot after the schedule's last."""
    width = schedule.max_actions + 1
    n = len(reads)
    time = np.full((n, width), np.inf)
    op = np.full((n, width), OP_NOP, dtype=np.int32)
    target = np.zeros((n, width), dtype=np.int32)
    value = np.zeros((n, width))
    slot = schedule.max_outputs
    for i, (k, col, t) in enumerate(reads):
        time[i, :col] = schedule.time[k, :col]
        op[i, :col] = schedule.op[k, :col]
        target[i, :col] = schedule.target[k, :col]
        value[i, :col] = values[k, :col]
        time[i, col], op[i, col], target[i, col] = t, OP_OUTPUT, slot
    return ActionTable(time=time, op=op, target=target, value=value, n_outputs=slot + 1)


def _blood_volume(cm: CompiledModel, ts: np.ndarray, y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """The model's blood volume (mL) for each row of times ``ts``, states ``y`` and inputs
    ``p`` (every read of a wave in one evaluation)."""
    n = y.shape[0]
    z0 = np.zeros((n, len(cm.model.delays)))
    bv = np.asarray(jax.vmap(cm.blood_volume)(ts, y, p, z0))[:, 0]
    if z0.shape[1]:  # a volume that reads delayed states cannot be evaluated here
        bv1 = np.asarray(jax.vmap(cm.blood_volume)(ts, y, p, z0 + 1.0))[:, 0]
        if not np.array_equal(bv, bv1):
            raise ScheduleError(
                f"model {cm.model.name!r}: EVENT=mix needs a blood volume (BloodSpec.volume_ml) "
                "that does not read delayed states"
            )
    return bv


def _ready(req: dict[str, Any], values: np.ndarray) -> bool:
    """Whether both prefixes of a mix are free of unfilled placeholders."""
    k, d = req["recipient"], req["donor"]
    return not (
        np.isnan(values[k, : req["recipient_cols"][0]]).any()
        or np.isnan(values[d, : req["donor_col"]]).any()
    )


def _hb(cm: CompiledModel, ts: np.ndarray, y: np.ndarray, p: np.ndarray) -> np.ndarray | None:
    """Hb (g/dL) from the model's ``Hb`` observable for each row, or None without one."""
    names = cm.model.observable_names
    if "Hb" not in names or cm.model.observables[names.index("Hb")].unit != "g/dL":
        return None
    z0 = np.zeros((y.shape[0], len(cm.model.delays)))
    return np.asarray(jax.vmap(cm.observables)(ts, y, p, z0))[:, names.index("Hb")]


def fill_mixing(
    cm: CompiledModel,
    inputs: np.ndarray,
    schedule: Any,
    values: np.ndarray,
    *,
    t0: np.ndarray,
    rtol: float,
    atol: float,
    max_steps: int = 100_000,
    stepper: Stepper = DOPRI5,
    triggers: Any = None,
    history_size: int | None = None,
    file: str = "the event dataset",
) -> tuple[np.ndarray, np.ndarray]:
    """Fill the mix placeholders of ``values``; also return which subjects' donors failed.

    Returns
    -------
    values
        A copy of ``values`` with every mix amount (and depletion factor) filled in.
    donor_failed
        ``(S,)`` True for a recipient whose donor (or own solve up to the mix) did not reach
        the mix: its mix adds nothing and its status becomes ``donor_failed``.

    Raises
    ------
    ScheduleError
        A mix that asks for more blood than the donor has (naming the row).
    """
    values = np.array(values, dtype=np.float64, copy=True)
    reqs = list(schedule.mix_requests)
    n_states = cm.n_states
    S = schedule.n_subjects
    p_rows = inputs if inputs.shape[0] == S else np.repeat(inputs[:1], S, axis=0)
    failed = np.zeros(S, dtype=bool)
    unsafe: list[str] = []
    anaemic: list[str] = []
    pending = list(range(len(reqs)))
    while pending:
        wave = [i for i in pending if _ready(reqs[i], values)]
        if not wave:  # read_events refuses donor cycles; same-time chains resolve in order
            rows = ", ".join(str(reqs[i]["row"]) for i in pending)
            raise ScheduleError(f"{file}: the mixes on rows {rows} wait on each other")
        reads: list[tuple[int, int, float]] = []
        for i in wave:
            r = reqs[i]
            reads.append((r["recipient"], r["recipient_cols"][0], r["time"]))
            reads.append((r["donor"], r["donor_col"], r["time"]))
        subjects = np.array([k for k, _, _ in reads])
        sol = run_actions(
            cm,
            p_rows[subjects],
            _prefix_table(schedule, values, reads),
            t0=np.asarray(t0, dtype=np.float64)[subjects],
            rtol=rtol,
            atol=atol,
            max_steps=max_steps,
            stepper=stepper,
            triggers=triggers,
            history_size=history_size,
            out_vars=tuple(range(n_states)),
        )
        y = sol.values[:, schedule.max_outputs, :n_states]
        ok = sol.status == int(Status.OK)
        ts = np.array([t for _, _, t in reads])
        # blood volumes (and donors' Hb) of every read in one evaluation; a read that did not
        # solve has NaN states and its mix is skipped below
        bv_all = _blood_volume(cm, ts, np.nan_to_num(y), p_rows[subjects])
        hb_all = _hb(cm, ts, np.nan_to_num(y), p_rows[subjects])
        for w, i in enumerate(wave):
            r = reqs[i]
            k, d = r["recipient"], r["donor"]
            yd = y[2 * w + 1]
            states = list(r["states"])
            if not (ok[2 * w] and ok[2 * w + 1]):
                failed[k] = True
                values[k, list(r["recipient_cols"])] = 0.0
                values[d, list(r["donor_cols"])] = 1.0
                continue
            bv = bv_all[2 * w : 2 * w + 2]
            volume = r["volume"] if np.isnan(r["fraction"]) else r["fraction"] * bv[0]
            f = volume / bv[1]
            where = f"{file}, row {r['row']}"
            if not np.isfinite(f) or f <= 0:
                raise ScheduleError(
                    f"{where}: the donor's blood volume at the mix is {bv[1]:g} mL; a mix needs "
                    "a finite, positive blood volume"
                )
            if f > 1:
                raise ScheduleError(
                    f"{where}: the mix takes {volume:g} mL of donor blood, but the donor has "
                    f"{bv[1]:g} mL at that time"
                )
            values[k, list(r["recipient_cols"])] = f * yd[states]
            if r["deplete"]:
                values[d, list(r["donor_cols"])] = 1.0 - f
                if f > SAFE_DONATION_FRACTION:
                    unsafe.append(f"row {r['row']} ({100 * f:.0f} %)")
                hb = None if hb_all is None else float(hb_all[2 * w + 1])
                if hb is not None and hb < MIN_DONOR_HB_G_DL:
                    anaemic.append(f"row {r['row']} (Hb {hb:.1f} g/dL)")
        done = set(wave)
        pending = [i for i in pending if i not in done]
    if unsafe:
        warn(
            f"{file}: a depleting mix takes more than {100 * SAFE_DONATION_FRACTION:.0f} % of "
            f"the donor's blood volume (the safe limit of a whole-blood donation) on "
            f"{', '.join(unsafe)}"
        )
    if anaemic:
        warn(
            f"{file}: a depleting mix takes blood from a donor whose Hb is below "
            f"{MIN_DONOR_HB_G_DL} g/dL (the minimum for a donation) on {', '.join(anaemic)}"
        )
    return values, failed
