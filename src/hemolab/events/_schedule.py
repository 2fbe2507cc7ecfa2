"""Expansion of an event dataset into per-subject tables of primitive actions for the solver.

A :class:`Schedule` holds, per subject, one table of actions ``(time, op, target, value)``
sorted by ``(time, class, sequence)``; the solver walks it with a pointer and applies each
action when its time is reached (``hemolab.events._ops`` lists the operations). Outputs are
actions too (``OP_OUTPUT`` writes the state into an output slot), so DATA-FORMATS §A's tie
rules are just the sort order. The rules are written down in
``docs/design/003-event-semantics.md``.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from hemolab._errors import ScheduleError
from hemolab.events._common import warn
from hemolab.events._dataset import EventDataset, EventRecord, SubjectEvents
from hemolab.events._ops import (
    OP_ADD,
    OP_BOLUS,
    OP_MULTIPLY,
    OP_NOP,
    OP_OFF,
    OP_ON,
    OP_OUTPUT,
    OP_PARAM,
    OP_PHLEBOTOMY,
    OP_RATE,
    OP_RATE_F,
    OP_REPLACE,
    OP_RESET,
)
from hemolab.model import Model

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DoseProperties", "Schedule", "build_schedule"]

# Sort classes at one time (see the design note): covariate changes that apply from this time
# on (LOCF), then observations and resets (file order), then every other event (file order),
# then grid outputs (post-event), then covariate changes that apply after this time (NOCB).
_CLS_LOCF = -1
_CLS_OBS = 0
_CLS_EVENT = 1
_CLS_GRID = 2
_CLS_NOCB = 3


@dataclass(frozen=True, eq=False)
class DoseProperties:
    """Per-subject dose properties of each state (NONMEM F, ALAG, R, D).

    Evaluated on the host from each subject's parameters (the compiler's ``host_dose_props``).
    Every array has shape ``(n_subjects, n_states)``; one row broadcasts to every subject.

    Attributes
    ----------
    f
        Bioavailability (used here for the end time of ``RATE>0`` infusions; the solver
        applies it to ``OP_BOLUS`` and ``OP_RATE_F``).
    lag
        Lag time in the model's time unit (shifts dose times).
    rate
        Model infusion rate (``RATE=-1``), NaN where the state declares none.
    duration
        Model infusion duration (``RATE=-2``), NaN where the state declares none.
    """

    f: np.ndarray
    lag: np.ndarray
    rate: np.ndarray
    duration: np.ndarray

    @classmethod
    def default(cls, n_subjects: int, n_states: int) -> DoseProperties:
        """F = 1, no lag, no model rate or duration."""
        shape = (n_subjects, n_states)
        return cls(np.ones(shape), np.zeros(shape), np.full(shape, np.nan), np.full(shape, np.nan))

    @classmethod
    def from_mapping(cls, props: Mapping[str, Any]) -> DoseProperties:
        """From the compiler's ``{"f", "lag", "rate", "duration"}`` dictionary."""
        return cls(
            *(np.asarray(props[k], dtype=np.float64) for k in ("f", "lag", "rate", "duration"))
        )


@dataclass(frozen=True, slots=True)
class _Applied:
    """One applied event; :meth:`record` is its row of ``<stem>.events.parquet``."""

    subject_id: str
    time: float  # the subject's clock, model time unit
    kind: str  # bolus, infusion, replace, multiply, reset, param, transfusion, phlebotomy
    target: str | None  # state or parameter name
    product: str | None
    amount: float  # in unit: the state's, mL for blood products, the parameter's
    unit: str | None

    def record(self) -> dict[str, Any]:
        return {
            "patient_id": self.subject_id,
            "time": self.time,
            "kind": self.kind,
            "target": self.target,
            "product": self.product,
            "amount": self.amount,
            "unit": self.unit,
        }


@dataclass(frozen=True, eq=False)
class Schedule:
    """Per-subject action tables and output slots, padded to a common width.

    Attributes
    ----------
    n_subjects
        S.
    time, op, target, value
        ``(S, A)`` actions sorted per subject; padding is ``time=+inf``, ``op=OP_NOP``.
        ``time`` is the solver's clock: equal to the dataset's clock except after a reset
        whose rows go back in time (then it keeps running; see :attr:`out_time`).
    n_actions
        ``(S,)`` actions used per subject.
    out_time
        ``(S, T)`` time reported for each output slot (the subject's clock), NaN padded.
    out_is_obs, out_dvid, out_occasion
        ``(S, T)`` whether the slot is a dataset observation, its ``DVID`` (``None`` for grid
        outputs) and its occasion (1 + resets so far, or the ``OCC`` column).
    n_outputs
        ``(S,)`` output slots used per subject.
    initial_covariates
        ``(S, n_covariates)`` covariate values at the start (NaN: use the model's default).
    subject_ids
        Pseudonyms (temporary ``T…`` ids, or ``V…`` virtual ids for :meth:`from_grid`).
    start_time
        ``(S,)`` the earliest action time of each subject (the solver's natural ``t0``).
    events
        Applied events, one record per event in action order: ``patient_id``, ``time`` (the
        subject's clock), ``kind`` (bolus, infusion, replace, multiply, reset, param,
        transfusion, phlebotomy, mix, donation), ``target`` (state or parameter), ``product``
        (the blood product, or a mix's ``PART``), ``amount``
        and ``unit`` (the state's unit, ``mL`` for blood products, the parameter's unit), for
        ``<stem>.events.parquet``.
    time_unit, covariate_names
        The model's time unit and covariates.
    ss_requests
        Steady-state doses whose placeholders the driver fills (``hemolab.solve._steady``).
    mix_requests
        ``EVENT=mix`` rows in file order: ``recipient`` and ``donor`` (subject indices),
        ``time``, ``states``, ``volume`` or ``fraction``, ``deplete``, ``row``, and the
        placeholder columns ``recipient_cols`` (OP_ADD), ``donor_cols`` (OP_MULTIPLY) and
        ``donor_col`` (where the donor is read); filled by ``hemolab.solve._mixing``.
    """

    n_subjects: int
    time: np.ndarray
    op: np.ndarray
    target: np.ndarray
    value: np.ndarray
    n_actions: np.ndarray
    out_time: np.ndarray
    out_is_obs: np.ndarray
    out_dvid: np.ndarray
    out_occasion: np.ndarray
    n_outputs: np.ndarray
    initial_covariates: np.ndarray
    subject_ids: tuple[str, ...]
    start_time: np.ndarray
    events: tuple[dict[str, Any], ...] = ()
    time_unit: str = "h"
    covariate_names: tuple[str, ...] = field(default=())
    ss_requests: tuple[dict[str, Any], ...] = ()
    mix_requests: tuple[dict[str, Any], ...] = ()

    PER_SUBJECT = (
        "time",
        "op",
        "target",
        "value",
        "n_actions",
        "out_time",
        "out_is_obs",
        "out_dvid",
        "out_occasion",
        "n_outputs",
        "initial_covariates",
        "start_time",
    )  # arrays with one row per subject

    def __post_init__(self) -> None:
        for name in self.PER_SUBJECT:
            getattr(self, name).setflags(write=False)

    def repeat_subject(self, n: int) -> Schedule:
        """A one-subject schedule as n identical subjects ``V0000000``... (a population on
        one regimen whose rows must differ later, e.g. in their steady states)."""
        if self.n_subjects != 1:
            raise ScheduleError(
                f"repeat_subject needs a one-subject schedule, not {self.n_subjects}"
            )
        rows = {k: np.repeat(getattr(self, k), n, axis=0) for k in self.PER_SUBJECT}
        return replace(
            self,
            n_subjects=n,
            subject_ids=tuple(f"V{i:07d}" for i in range(n)),
            ss_requests=tuple(dict(r, subject=i) for i in range(n) for r in self.ss_requests),
            **rows,
        )

    @property
    def max_actions(self) -> int:
        """A: the padded width of the action table."""
        return int(self.time.shape[1])

    @property
    def max_outputs(self) -> int:
        """T: the padded width of the output table."""
        return int(self.out_time.shape[1])

    def pad_to(self, n_actions: int, n_outputs: int) -> Schedule:
        """A copy padded to ``n_actions`` action columns and ``n_outputs`` output slots.

        The solver compiles once per bucket (powers of two), so schedules are padded up to
        the bucket rather than to their own width.

        Raises
        ------
        ScheduleError
            If a size is smaller than what the schedule already uses.
        """
        if n_actions < self.max_actions or n_outputs < self.max_outputs:
            raise ScheduleError(
                f"cannot pad a schedule of {self.max_actions} actions and {self.max_outputs} "
                f"outputs to {n_actions} and {n_outputs}: sizes must not shrink"
            )
        da, dt = n_actions - self.max_actions, n_outputs - self.max_outputs

        def pad(a: np.ndarray, width: int, fill: Any) -> np.ndarray:
            extra = np.full((a.shape[0], width), fill, dtype=a.dtype)
            return np.concatenate([a, extra], axis=1)

        return Schedule(
            n_subjects=self.n_subjects,
            time=pad(self.time, da, np.inf),
            op=pad(self.op, da, OP_NOP),
            target=pad(self.target, da, 0),
            value=pad(self.value, da, 0.0),
            n_actions=self.n_actions.copy(),
            out_time=pad(self.out_time, dt, np.nan),
            out_is_obs=pad(self.out_is_obs, dt, False),
            out_dvid=pad(self.out_dvid, dt, None),
            out_occasion=pad(self.out_occasion, dt, 0),
            n_outputs=self.n_outputs.copy(),
            initial_covariates=self.initial_covariates.copy(),
            subject_ids=self.subject_ids,
            start_time=self.start_time.copy(),
            events=self.events,
            time_unit=self.time_unit,
            covariate_names=self.covariate_names,
            ss_requests=self.ss_requests,
            mix_requests=self.mix_requests,
        )

    def pad_to_bucket(self, *, min_actions: int = 16, min_outputs: int = 8) -> Schedule:
        """A copy padded to the next powers of two (at least ``min_actions``/``min_outputs``)."""
        return self.pad_to(
            _next_pow2(self.max_actions, min_actions), _next_pow2(self.max_outputs, min_outputs)
        )

    def events_to_pandas(self) -> pd.DataFrame:
        """The applied events as a table (``patient_id, time, kind, target, product, amount,
        unit``), the per-subject part of ``<stem>.events.parquet``."""
        import pandas as pd

        columns = ["patient_id", "time", "kind", "target", "product", "amount", "unit"]
        return pd.DataFrame(list(self.events), columns=columns)

    @classmethod
    def from_grid(
        cls, model: Model, grid: Sequence[float] | np.ndarray, n_subjects: int = 1
    ) -> Schedule:
        """A schedule without a dataset: output slots at the grid times only.

        Parameters
        ----------
        model
            The model (time unit, covariates).
        grid
            Output times in the model's time unit.
        n_subjects
            Number of identical rows; subjects get virtual ids ``V0000000``...

        Examples
        --------
        >>> import hemolab as hl
        >>> m = hl.Model("decay", time_unit="d",
        ...     states=[hl.State("x", "-k*x", initial=1.0)], parameters=[hl.Parameter("k", 0.1)])
        >>> Schedule.from_grid(m, [0.0, 1.0, 2.0], n_subjects=2).out_time.shape
        (2, 3)
        """
        times = _check_grid(grid)
        if n_subjects < 1:
            raise ScheduleError(f"n_subjects must be >= 1, got {n_subjects}")
        plans = []
        for _ in range(n_subjects):
            plan = _Plan()
            for g in times:
                plan.outputs.append(_Out(g, _CLS_GRID, (math.inf, 0), g, False, None, 1))
            plans.append(plan)
        ids = tuple(f"V{i:07d}" for i in range(n_subjects))
        ncov = len(model.covariate_names)
        init = np.full((n_subjects, ncov), np.nan)
        return _assemble(plans, ids, init, model)


def _next_pow2(x: int, minimum: int) -> int:
    return max(minimum, 1 << max(0, int(x) - 1).bit_length())


def _check_grid(grid: Sequence[float] | np.ndarray | None) -> np.ndarray:
    if grid is None:
        return np.zeros(0)
    times = np.asarray(grid, dtype=np.float64).ravel()
    if not np.all(np.isfinite(times)):
        raise ScheduleError("the output grid has non-finite times; give finite times")
    return np.unique(times)


# ---------------------------------------------------------------------------------------------
# per-subject planning
# ---------------------------------------------------------------------------------------------


@dataclass
class _Act:
    time: float
    cls: int
    order: tuple[float, int]
    op: int
    target: int
    value: float
    src: int  # position of the originating record in the subject (-1: none)
    # a state change that a later reset cancels when due at or after it (doses, infusion
    # starts and ends, transfusions, replace/multiply, phlebotomy); not OP_PARAM
    cancellable: bool = False
    event: _Applied | None = None
    # EVENT=mix: the request's index and this action's role ("add" into the recipient,
    # "deplete" the donor, "marker": where the donor is read, not an action)
    mix: int = -1
    mix_role: str = ""

    @property
    def key(self) -> tuple[float, int, tuple[float, int]]:
        return (self.time, self.cls, self.order)


@dataclass
class _Out:
    time: float
    cls: int
    order: tuple[float, int]
    report_time: float
    is_obs: bool
    dvid: str | None
    occ: int | None

    @property
    def key(self) -> tuple[float, int, tuple[float, int]]:
        return (self.time, self.cls, self.order)


@dataclass
class _Plan:
    actions: list[_Act] = field(default_factory=list)
    outputs: list[_Out] = field(default_factory=list)
    ties: int = 0
    ss: list[dict[str, Any]] = field(default_factory=list)
    off: set[int] = field(default_factory=set)  # compartments turned off (negative CMT)


def _solver_times(records: Sequence[EventRecord]) -> tuple[list[float], list[float], list[float]]:
    """Solver clock per record, and the (start, offset) of each clock segment.

    The dataset's clock may go back on or right after a reset (EVID 3/4); the solver's clock
    keeps running: a record whose time goes back starts a segment whose offset maps its time to
    the previous record's solver time.
    """
    solver: list[float] = []
    seg_start: list[float] = []
    seg_offset: list[float] = []
    offset, last = 0.0, -math.inf
    for rec in records:
        s = rec.time + offset
        if s < last:  # allowed only around resets (checked by read_events)
            offset = last - rec.time
            s = last
            seg_start.append(s)
            seg_offset.append(offset)
        solver.append(s)
        last = s
    return solver, seg_start, seg_offset


class _Builder:
    def __init__(
        self,
        model: Model,
        props: DoseProperties,
        *,
        grid: np.ndarray,
        file: str,
        dose_before_obs: bool,
        covariate_interp: str,
        has_occ: bool,
    ):
        self.m = model
        self.props = props
        self.grid = grid
        self.dose_before_obs = dose_before_obs
        self.interp = covariate_interp
        self.has_occ = has_occ
        self.inputs = model.inputs
        self.file = file
        self.seg_start: list[float] = []
        self.seg_offset: list[float] = []
        self.sid = ""
        self.k = 0
        self.mixes: list[dict[str, Any]] = []

    def subject(self, k: int, subj: SubjectEvents) -> tuple[_Plan, np.ndarray]:
        """The subject's actions and outputs (unsorted), and its initial covariates."""
        recs = subj.records
        solver, self.seg_start, self.seg_offset = _solver_times(recs)
        self.sid = subj.subject_id
        self.k = k
        plan = _Plan()
        resets: list[tuple[float, int]] = []
        for p, (rec, s) in enumerate(zip(recs, solver, strict=True)):
            self.record(plan, k, p, rec, s, resets)
        # a reset cancels pending doses and running infusions of the records before it
        if resets:
            kept = []
            for a in plan.actions:
                if a.cancellable and any(a.src < pr and a.time >= sr for sr, pr in resets):
                    continue
                kept.append(a)
            plan.actions = kept
        init = self.covariates(plan, recs, solver)
        obs_times = {o.time for o in plan.outputs if o.is_obs}
        for g in self.grid:
            if g in obs_times:
                continue  # the observation wins
            occ = self.occ_at(recs, solver, g) if self.has_occ else None
            plan.outputs.append(_Out(g, _CLS_GRID, (math.inf, 0), self.report(g), False, None, occ))
        # observations sharing their time with a dose or event (not a reset, not a stop)
        # a tie is the same instant on both clocks: an observation before a reset whose TIME
        # goes back shares the solver time of the new occasion's dose, not its dataset time
        event_times = {
            (a.time, a.event.time)
            for a in plan.actions
            if a.event is not None and a.op not in (OP_RESET, OP_NOP)
        }
        plan.ties = sum(
            1 for o in plan.outputs if o.is_obs and (o.time, o.report_time) in event_times
        )
        return plan, init

    def linear_covariates(
        self, plan: _Plan, values: np.ndarray, solver: Sequence[float], init: np.ndarray
    ) -> np.ndarray:
        """Linear interpolation between records: at each known value, OP_PARAM sets the value,
        the slope to the next known value and the reference time (the solver evaluates
        ``value + slope·(t - t_ref)``, exactly)."""
        names = self.m.covariate_names
        n_inputs = len(self.m.inputs)
        n_par = len(self.m.parameter_names)
        for c in range(len(names)):
            pieces = _linear_pieces(solver, values[:, c])
            if not pieces:
                continue
            init[c] = pieces[0][1]
            slope_idx, tref_idx = n_inputs + 2 * c, n_inputs + 2 * c + 1
            for k, (t, v, slope) in enumerate(pieces):
                order = (k, c)
                for target, value in ((n_par + c, v), (slope_idx, slope), (tref_idx, t)):
                    plan.actions.append(_Act(t, _CLS_LOCF, order, OP_PARAM, target, value, -1))
        return init

    @staticmethod
    def occ_at(recs: Sequence[EventRecord], solver: Sequence[float], s: float) -> int | None:
        """OCC of the last record at or before solver time ``s`` (else the first record's)."""
        occ = recs[0].occ if recs else None
        for rec, t in zip(recs, solver, strict=True):
            if t <= s and rec.occ is not None:
                occ = rec.occ
        return occ

    def where(self, rec: EventRecord) -> str:
        return f"{self.file}, row {rec.row}"

    def report(self, s: float) -> float:
        """The subject's clock at solver time ``s`` (after events at ``s``)."""
        j = bisect.bisect_right(self.seg_start, s) - 1
        return s - (self.seg_offset[j] if j >= 0 else 0.0)

    def record(
        self,
        plan: _Plan,
        k: int,
        p: int,
        rec: EventRecord,
        s: float,
        resets: list[tuple[float, int]],
    ) -> None:
        m = self.m
        evid = rec.evid
        if evid == 0:
            if rec.mdv == 0:
                cls = _CLS_GRID if self.dose_before_obs else _CLS_OBS
                plan.outputs.append(_Out(s, cls, (p, 0), rec.time, True, rec.dvid, rec.occ))
            return
        if evid in (1, 4) and rec.ss != 0:
            self.steady_state(plan, k, p, rec, s, resets)
        if evid in (3, 4):
            reset = _Applied(self.sid, rec.time, "reset", None, None, math.nan, None)
            plan.actions.append(_Act(s, _CLS_OBS, (p, 0), OP_RESET, 0, 0.0, p, event=reset))
            resets.append((s, p))
        if evid in (1, 4):
            if rec.ss != 0 and rec.amt == 0 and rec.ii == 0:
                return  # a steady-state infusion: started by steady_state()
            for j in range(rec.addl + 1):
                self.dose(plan, k, p, j, rec, s + j * rec.ii)
            return
        cmt = rec.cmt if rec.cmt is not None else 0
        if evid in (5, 6):
            state = m.states[cmt]
            op, kind = (OP_REPLACE, "replace") if evid == 5 else (OP_MULTIPLY, "multiply")
            unit = state.unit if evid == 5 else "1"
            ev = _Applied(self.sid, rec.time, kind, state.name, None, rec.amt, unit)
            plan.actions.append(_Act(s, _CLS_EVENT, (p, 0), op, cmt, rec.amt, p, True, ev))
            return
        if evid == 2:
            self.other(plan, p, rec, s)

    def steady_state(
        self,
        plan: _Plan,
        k: int,
        p: int,
        rec: EventRecord,
        s: float,
        resets: list[tuple[float, int]],
    ) -> None:
        """SS=1/2: placeholders the driver fills with the periodic steady state (see 005).

        SS=1 resets the system, then sets every state to its steady-state value just before
        the dose; SS=2 adds the steady-state contribution (steady state minus the model's
        initial state) to the current state (NONMEM's superposition, exact for linear
        models). A steady-state infusion (AMT=0, RATE>0, II=0) keeps running afterwards.
        """
        if self.m.has_delays:
            raise ScheduleError(
                f"{self.where(rec)}: steady-state dosing (SS={rec.ss}) is not defined for delay "
                "models; give the run-in doses explicitly (ADDL/II)"
            )
        cmt = rec.cmt if rec.cmt is not None else 0
        start = s + float(self.props.lag[k, cmt])
        if rec.ss == 1:
            reset = _Applied(self.sid, rec.time, "reset", None, None, math.nan, None)
            plan.actions.append(_Act(start, _CLS_EVENT, (p, -2), OP_RESET, 0, 0.0, p, event=reset))
            resets.append((start, p))
        op = OP_REPLACE if rec.ss == 1 else OP_ADD
        for i in range(len(self.m.states)):
            plan.actions.append(_Act(start, _CLS_EVENT, (p, -1), op, i, math.nan, p))
        infusion_ss = rec.amt == 0 and rec.rate > 0 and rec.ii == 0
        rate = rec.rate
        if rate == -1:
            rate = float(self.props.rate[k, cmt])
        dur = float(self.props.duration[k, cmt]) if rate == -2 else rec.dur
        plan.ss.append(
            {
                "time": start,
                "mode": int(rec.ss),
                "cmt": cmt,
                "amt": float(rec.amt),
                "rate": float(rate) if rate > 0 else 0.0,
                "dur": float(dur) if rate == -2 or (rate == 0 and dur == dur) else math.nan,
                "ii": float(rec.ii),
                "f": float(self.props.f[k, cmt]),
                "infusion": infusion_ss,
                "row": rec.row,
            }
        )
        if infusion_ss:
            ev = _Applied(self.sid, rec.time, "infusion", self.m.states[cmt].name, None, 0.0, None)
            plan.actions.append(
                _Act(start, _CLS_EVENT, (p, 0), OP_RATE, cmt, float(rate), p, True, ev)
            )

    def dose(self, plan: _Plan, k: int, p: int, j: int, rec: EventRecord, t: float) -> None:
        """One dose (the row's, or its j-th additional one) starting at ``t`` before lag."""
        cmt = rec.cmt if rec.cmt is not None else 0  # read_events requires CMT on doses
        state = self.m.states[cmt]
        f = float(self.props.f[k, cmt])
        lag = float(self.props.lag[k, cmt])
        start = t + lag
        order = (p, 10 * j)
        when = self.report(start) if j or lag else rec.time
        amt = rec.amt

        def act(time: float, op: int, value: float, sub: int, ev: _Applied | None) -> _Act:
            return _Act(time, _CLS_EVENT, (p, order[1] + sub), op, cmt, value, p, True, ev)

        rate = rec.rate
        if rate == -1:
            rate = float(self.props.rate[k, cmt])
            if not (math.isfinite(rate) and rate > 0):
                raise ScheduleError(
                    f"{self.where(rec)}: RATE=-1 uses state {state.name!r}'s model infusion "
                    f"rate, but it is {rate} for this subject; pass dose_props evaluated by the "
                    "compiler (a finite rate > 0)"
                )
        if rate == -2:
            dur = float(self.props.duration[k, cmt])
            if not (math.isfinite(dur) and dur > 0):
                raise ScheduleError(
                    f"{self.where(rec)}: RATE=-2 uses state {state.name!r}'s model infusion "
                    f"duration, but it is {dur} for this subject; pass dose_props evaluated by "
                    "the compiler (a finite duration > 0)"
                )
        else:
            dur = rec.dur if rate == 0 else math.nan
        ev = _Applied(self.sid, when, "bolus", state.name, None, amt, state.unit)
        if rate > 0:  # NONMEM: the rate is given, the duration is F*AMT/RATE
            ev = _Applied(self.sid, when, "infusion", state.name, None, amt, state.unit)
            length = f * amt / rate
            if length > 0:
                plan.actions.append(act(start, OP_RATE, rate, 0, ev))
                plan.actions.append(act(start + length, OP_RATE, -rate, 1, None))
        elif not math.isnan(dur) and dur > 0:  # DUR given (or model duration): F in the solver
            ev = _Applied(self.sid, when, "infusion", state.name, None, amt, state.unit)
            plan.actions.append(act(start, OP_RATE_F, amt / dur, 0, ev))
            plan.actions.append(act(start + dur, OP_RATE_F, -amt / dur, 1, None))
        else:
            plan.actions.append(act(start, OP_BOLUS, amt, 0, ev))

    def other(self, plan: _Plan, p: int, rec: EventRecord, s: float) -> None:
        """EVID 2: parameter change, transfusion, phlebotomy, or nothing (a plain record)."""
        m = self.m
        if rec.cmt_off and rec.cmt is not None:  # NONMEM: amount 0, not integrated
            name = m.states[rec.cmt].name
            if m.states[rec.cmt].positive:
                raise ScheduleError(
                    f"{self.where(rec)}: state {name!r} is declared positive (solved as a "
                    "logarithm) and cannot be turned off (set to 0); remove positive=True"
                )
            ev = _Applied(self.sid, rec.time, "off", name, None, 0.0, None)
            plan.actions.append(_Act(s, _CLS_EVENT, (p, 0), OP_OFF, rec.cmt, 0.0, p, True, ev))
            plan.off.add(rec.cmt)
            return
        if rec.event is None and rec.cmt is not None and rec.cmt in plan.off:
            name = m.states[rec.cmt].name  # EVID 2 with a positive CMT turns it back on
            ev = _Applied(self.sid, rec.time, "on", name, None, 0.0, None)
            plan.actions.append(_Act(s, _CLS_EVENT, (p, 0), OP_ON, rec.cmt, 0.0, p, True, ev))
            plan.off.discard(rec.cmt)
            return
        if rec.event == "param" and rec.param is not None:
            target = self.inputs.index(rec.param)
            unit = _input_unit(m, rec.param)
            ev = _Applied(self.sid, rec.time, "param", rec.param, None, rec.value, unit)
            plan.actions.append(
                _Act(s, _CLS_EVENT, (p, 0), OP_PARAM, target, rec.value, p, event=ev)
            )
        elif rec.event == "phlebotomy":
            ev = _Applied(self.sid, rec.time, "phlebotomy", None, None, rec.volume, "mL")
            plan.actions.append(
                _Act(s, _CLS_EVENT, (p, 0), OP_PHLEBOTOMY, 0, rec.volume, p, True, ev)
            )
        elif rec.event == "transfusion":
            self.transfusion(plan, p, rec, s)
        elif rec.event == "mix":
            self.mix(plan, p, rec, s)

    def mix(self, plan: _Plan, p: int, rec: EventRecord, s: float) -> None:
        """EVENT=mix, the recipient's side: one OP_ADD per selected state whose amount the
        driver fills once the donor has been solved to this time (``hemolab.solve._mixing``);
        the donor's side is added by :func:`build_schedule`."""
        if self.seg_offset:
            raise ScheduleError(
                f"{self.where(rec)}: a subject that mixes keeps one clock shared with its "
                "donor; its TIME must not go back after a reset"
            )
        idx = len(self.mixes)
        volume = rec.volume if math.isnan(rec.fraction) else math.nan
        ev = _Applied(self.sid, rec.time, "mix", None, rec.part, volume, "mL")
        for sub, state in enumerate(rec.part_states):
            plan.actions.append(
                _Act(
                    s,
                    _CLS_EVENT,
                    (p, sub),
                    OP_ADD,
                    state,
                    math.nan,
                    p,
                    False,
                    ev if sub == 0 else None,
                    mix=idx,
                    mix_role="add",
                )
            )
        self.mixes.append(
            {
                "recipient": self.k,
                "donor_id": rec.donor,
                "time": s,
                "report_time": rec.time,
                "states": rec.part_states,
                "volume": rec.volume,
                "fraction": rec.fraction,
                "deplete": rec.deplete,
                "row": rec.row,
                "part": rec.part,
            }
        )

    def transfusion(self, plan: _Plan, p: int, rec: EventRecord, s: float) -> None:
        m = self.m
        if m.blood is None:
            raise ScheduleError(
                f"{self.where(rec)}: model {m.name!r} does not accept blood products"
            )
        n = rec.units
        content = {
            "VOLUME_ML": n * rec.volume,
            "RBC_ML": n * rec.volume * rec.hct,
            "PLASMA_ML": n * rec.volume * (1.0 - rec.hct),
            "HB_G": n * rec.hb_g,
            "PLT_E9": n * rec.plt_e9,
        }
        ev = _Applied(
            self.sid, rec.time, "transfusion", None, rec.product, content["VOLUME_ML"], "mL"
        )
        sub = 0
        names = m.state_names
        routes = list(m.blood.transfusion_map.items())
        if rec.incompatible:
            if not m.blood.lysis_map:
                raise ScheduleError(
                    f"{self.where(rec)}: an incompatible unit needs a model that destroys it: "
                    f"use hemolab.model.haemolysis({m.name!r} model)"
                )
            routes += list(m.blood.lysis_map.items())
        for key, targets in routes:
            for state, factor in targets.items():
                amount = content[key] * float(factor)
                if amount == 0:
                    continue  # e.g. no platelets in an RBC unit
                target = names.index(state)
                if rec.dur > 0:
                    r = amount / rec.dur
                    plan.actions.append(
                        _Act(s, _CLS_EVENT, (p, sub), OP_RATE, target, r, p, True, ev)
                    )
                    plan.actions.append(
                        _Act(s + rec.dur, _CLS_EVENT, (p, sub + 1), OP_RATE, target, -r, p, True)
                    )
                else:
                    plan.actions.append(
                        _Act(s, _CLS_EVENT, (p, sub), OP_ADD, target, amount, p, True, ev)
                    )
                ev = None  # one applied event per transfusion, on its first action
                sub += 2
        if ev is not None:  # nothing mapped: still an applied (recorded) event
            plan.actions.append(_Act(s, _CLS_EVENT, (p, 0), OP_NOP, 0, 0.0, p, True, ev))

    def covariates(
        self, plan: _Plan, recs: Sequence[EventRecord], solver: Sequence[float]
    ) -> np.ndarray:
        """Initial covariates, and OP_PARAM actions where a covariate changes (NOCB/LOCF)."""
        names = self.m.covariate_names
        init = np.full(len(names), np.nan)
        if not recs:
            return init
        values = np.array([rec.covariates for rec in recs], dtype=np.float64).reshape(
            len(recs), len(names)
        )
        n_par = len(self.m.parameter_names)
        if self.interp == "linear":
            return self.linear_covariates(plan, values, solver, init)
        for c in range(len(names)):
            col = _fill(values[:, c], backward_first=self.interp == "nocb")
            init[c] = col[0]
            for k in range(1, len(recs)):
                if col[k] == col[k - 1] or np.isnan(col[k]):
                    continue
                s_prev, s_k = solver[k - 1], solver[k]
                if s_prev == s_k:  # same time: between the two rows, in file order
                    time, cls, order = s_k, _CLS_EVENT, (k - 0.5, c)
                elif self.interp == "nocb":  # applies on (t[k-1], t[k]]
                    time, cls, order = s_prev, _CLS_NOCB, (k, c)
                else:  # locf: applies on [t[k], t[k+1])
                    time, cls, order = s_k, _CLS_LOCF, (k, c)
                plan.actions.append(_Act(time, cls, order, OP_PARAM, n_par + c, float(col[k]), -1))
        return init


def _linear_pieces(times: Sequence[float], col: np.ndarray) -> list[tuple[float, float, float]]:
    """``(t_k, value, slope)`` of the piecewise-linear interpolation through the known values
    (constant before the first and after the last)."""
    known = [(float(t), float(v)) for t, v in zip(times, col, strict=True) if not np.isnan(v)]
    pieces = []
    for (t0, v0), (t1, v1) in itertools.pairwise(known):
        if t1 > t0:
            pieces.append((t0, v0, (v1 - v0) / (t1 - t0)))
    if known:
        pieces.append((known[-1][0], known[-1][1], 0.0))
    return pieces


def _fill(col: np.ndarray, *, backward_first: bool) -> np.ndarray:
    """Fill NaNs from the next value then the previous one (NOCB), or the other way (LOCF)."""
    out = col.copy()

    def forward(a: np.ndarray) -> np.ndarray:
        last = np.nan
        for i in range(len(a)):
            if np.isnan(a[i]):
                a[i] = last
            else:
                last = a[i]
        return a

    if backward_first:
        out = forward(out[::-1].copy())[::-1].copy()
        return forward(out)
    out = forward(out)
    return forward(out[::-1].copy())[::-1].copy()


def _input_unit(model: Model, name: str) -> str | None:
    for x in (*model.parameters, *model.covariates):
        if x.name == name:
            return x.unit
    return None


def _assemble(
    plans: Sequence[_Plan],
    ids: tuple[str, ...],
    init: np.ndarray,
    model: Model,
    mixes: Sequence[dict[str, Any]] = (),
) -> Schedule:
    """Sort each subject's actions and outputs, number the slots, pad into arrays."""
    S = len(plans)
    tables: list[list[tuple[float, int, int, float]]] = []
    outs: list[list[tuple[float, bool, str | None, int]]] = []
    events: list[dict[str, Any]] = []
    mix_cols: dict[tuple[int, str], list[int]] = {}  # (request, role) -> columns
    for plan in plans:
        items: list[tuple[Any, int, Any]] = [(a.key, 0, a) for a in plan.actions]
        items += [(o.key, 1, o) for o in plan.outputs]
        items.sort(key=lambda x: (x[0], x[1]))
        rows: list[tuple[float, int, int, float]] = []
        slots: list[tuple[float, bool, str | None, int]] = []
        occasion = 1
        for _, is_out, item in items:
            if is_out:
                occ = item.occ if item.occ is not None else occasion
                rows.append((item.time, OP_OUTPUT, len(slots), 0.0))
                slots.append((item.report_time, item.is_obs, item.dvid, occ))
                continue
            if item.op == OP_RESET and (rows or slots):  # a leading reset opens occasion 1
                occasion += 1
            if item.event is not None:
                events.append(item.event.record())
            if item.mix >= 0:
                mix_cols.setdefault((item.mix, item.mix_role), []).append(len(rows))
            if item.op != OP_NOP:
                rows.append((item.time, item.op, item.target, item.value))
        tables.append(rows)
        outs.append(slots)
    A = max((len(r) for r in tables), default=0)
    T = max((len(o) for o in outs), default=0)
    time = np.full((S, A), np.inf)
    op = np.full((S, A), OP_NOP, dtype=np.int32)
    target = np.zeros((S, A), dtype=np.int32)
    value = np.zeros((S, A))
    out_time = np.full((S, T), np.nan)
    out_is_obs = np.zeros((S, T), dtype=bool)
    out_dvid = np.full((S, T), None, dtype=object)
    out_occ = np.zeros((S, T), dtype=np.int32)
    for s, (rows, slots) in enumerate(zip(tables, outs, strict=True)):
        for j, (t, o, g, v) in enumerate(rows):
            time[s, j], op[s, j], target[s, j], value[s, j] = t, o, g, v
        for j, (t, obs, dvid, occ) in enumerate(slots):
            out_time[s, j], out_is_obs[s, j], out_dvid[s, j], out_occ[s, j] = t, obs, dvid, occ
    n_actions = np.array([len(r) for r in tables], dtype=np.int64)
    n_outputs = np.array([len(o) for o in outs], dtype=np.int64)
    start = np.array([r[0][0] if r else np.nan for r in tables], dtype=np.float64)
    return Schedule(
        n_subjects=S,
        time=time,
        op=op,
        target=target,
        value=value,
        n_actions=n_actions,
        out_time=out_time,
        out_is_obs=out_is_obs,
        out_dvid=out_dvid,
        out_occasion=out_occ,
        n_outputs=n_outputs,
        initial_covariates=init,
        subject_ids=ids,
        start_time=start,
        events=tuple(events),
        time_unit=model.time_unit,
        covariate_names=model.covariate_names,
        ss_requests=tuple(dict(req, subject=s) for s, plan in enumerate(plans) for req in plan.ss),
        mix_requests=tuple(
            dict(
                req,
                recipient_cols=tuple(mix_cols[(i, "add")]),
                donor_col=mix_cols[(i, "marker")][0],
                donor_cols=tuple(mix_cols.get((i, "deplete"), ())),
            )
            for i, req in enumerate(mixes)
        ),
    )


def _donor_side(
    plans: Sequence[_Plan], mixes: Sequence[dict[str, Any]], dataset: EventDataset, model: Model
) -> None:
    """EVENT=mix, the donor's side: where the donor is read (after its own actions at that
    time) and, with ``DEPLETE=1``, one OP_MULTIPLY per given state (filled by the driver)."""
    index: dict[str, int] = {}
    for k, sid in enumerate(dataset.subject_ids):
        index.setdefault(sid, k)
    n_linked = len(index)  # a dataset repeated for replicates: pair within each replicate
    width = len(model.state_names) + 1
    for i, req in enumerate(mixes):
        d = (req["recipient"] // n_linked) * n_linked + index[req["donor_id"]]
        req["donor"] = d
        if _solver_times(dataset.subjects[d].records)[1]:
            raise ScheduleError(
                f"{dataset.file}, row {req['row']}: the donor keeps one clock shared with its "
                "recipient; its TIME must not go back after a reset"
            )
        t = req["time"]
        marker = _Act(
            t, _CLS_EVENT, (math.inf, i * width), OP_NOP, 0, 0.0, -1, mix=i, mix_role="marker"
        )
        plans[d].actions.append(marker)
        if not req["deplete"]:
            continue
        ev = _Applied(
            dataset.subject_ids[d],
            req["report_time"],
            "donation",
            None,
            req["part"],
            req["volume"] if math.isnan(req["fraction"]) else math.nan,
            "mL",
        )
        for sub, state in enumerate(req["states"]):
            plans[d].actions.append(
                _Act(
                    t,
                    _CLS_EVENT,
                    (math.inf, i * width + 1 + sub),
                    OP_MULTIPLY,
                    state,
                    math.nan,
                    -1,
                    False,
                    ev if sub == 0 else None,
                    mix=i,
                    mix_role="deplete",
                )
            )


def _dose_props(
    props: DoseProperties | Mapping[str, Any] | None, n_subjects: int, n_states: int
) -> DoseProperties:
    if props is None:
        return DoseProperties.default(n_subjects, n_states)
    if not isinstance(props, DoseProperties):
        props = DoseProperties.from_mapping(props)
    arrays = {}
    for name in ("f", "lag", "rate", "duration"):
        a = np.asarray(getattr(props, name), dtype=np.float64)
        if a.ndim == 1:
            a = a[None, :]
        if a.ndim != 2 or a.shape[1] != n_states or a.shape[0] not in (1, n_subjects):
            raise ScheduleError(
                f"dose_props.{name} has shape {np.shape(getattr(props, name))}; expected "
                f"({n_subjects}, {n_states}) (subjects, states) or (1, {n_states})"
            )
        arrays[name] = np.broadcast_to(a, (n_subjects, n_states))
    if np.any(~np.isfinite(arrays["f"])) or np.any(arrays["f"] < 0):
        raise ScheduleError("dose_props.f (bioavailability) must be finite and >= 0")
    if np.any(~np.isfinite(arrays["lag"])) or np.any(arrays["lag"] < 0):
        raise ScheduleError("dose_props.lag must be finite and >= 0")
    return DoseProperties(**arrays)


def build_schedule(
    dataset: EventDataset,
    model: Model,
    *,
    grid: Sequence[float] | np.ndarray | None = None,
    dose_props: DoseProperties | Mapping[str, Any] | None = None,
    dose_before_obs: bool = False,
    covariate_interp: Literal["nocb", "locf", "linear"] = "nocb",
) -> Schedule:
    """Expand a checked event dataset into per-subject action tables for the solver.

    Doses (with ADDL/II, lag, infusions by ``RATE``, ``DUR`` or the model's rate/duration),
    resets, replace/multiply, parameter changes, transfusions and phlebotomies become primitive
    actions; observations and grid times become output slots. The order of actions at one time
    follows DATA-FORMATS §A (``docs/design/003-event-semantics.md``).

    Parameters
    ----------
    dataset
        From :func:`~hemolab.events.read_events` with the same model.
    model
        The model (states, inputs, blood).

    Other Parameters
    ----------------
    grid
        Output times in the model's time unit, for every subject (post-event values). A grid
        time equal to an observation time of a subject is dropped for that subject.
    dose_props
        Per-subject F, lag, model rate and duration (:class:`DoseProperties`, or the
        compiler's ``host_dose_props`` dictionary); default F = 1, no lag, no model
        rate/duration.
    dose_before_obs
        ``True``: an observation at a dose time reports the post-dose value.
    covariate_interp
        ``"nocb"`` (NONMEM, default): a row's covariate value applies from the previous
        row's time; ``"locf"``: from its own time on.

    Returns
    -------
    Schedule
        Padded action and output tables.

    Raises
    ------
    ScheduleError
        The dataset was checked against another model, bad ``dose_props``, or a model
        rate/duration that is not a positive number.
    Warns
    -----
    HemolabWarning
        Once per dataset when observations share their time with a dose or event, saying
        which rule applied and how many.

    Examples
    --------
    >>> import pandas as pd
    >>> import hemolab as hl
    >>> from hemolab.events import build_schedule, read_events
    >>> m = hl.Model("pk", time_unit="h",
    ...     states=[hl.State("A", "-k*A", unit="mg")], parameters=[hl.Parameter("k", 0.1)])
    >>> df = pd.DataFrame({"ID": [1, 1], "TIME": [0, 2], "EVID": [1, 0], "AMT": [100, 0]})
    >>> sched = build_schedule(read_events(df, model=m), m)
    >>> sched.op[0].tolist(), sched.time[0].tolist()
    ([2, 1], [0.0, 2.0])
    """
    if dataset.model_name != model.name or dataset.state_names != model.state_names:
        raise ScheduleError(
            f"the dataset was checked against model {dataset.model_name!r}, not {model.name!r}; "
            "read it again with model=..."
        )
    if covariate_interp not in ("nocb", "locf", "linear"):
        raise ScheduleError(
            f"covariate_interp must be 'nocb', 'locf' or 'linear', got {covariate_interp!r}"
        )
    times = _check_grid(grid)
    S, n = dataset.n_subjects, len(model.state_names)
    props = _dose_props(dose_props, S, n)
    builder = _Builder(
        model,
        props,
        grid=times,
        file=dataset.file,
        dose_before_obs=dose_before_obs,
        covariate_interp=covariate_interp,
        has_occ=dataset.has_occasions,
    )
    plans: list[_Plan] = []
    init = np.full((S, len(model.covariate_names)), np.nan)
    for k, subj in enumerate(dataset.subjects):
        plan, init[k] = builder.subject(k, subj)
        plans.append(plan)
    ties = sum(plan.ties for plan in plans)
    if ties:
        if dose_before_obs:
            rule = "report the post-dose value (dose_before_obs=True)"
        else:
            rule = (
                "report the pre-dose value (observation first, DATA-FORMATS §A; pass "
                "dose_before_obs=True for post-dose values)"
            )
        warn(
            f"{dataset.file}: {ties} observation(s) share their time with a dose or event of "
            f"the same subject; they {rule}"
        )
    if builder.mixes:
        _donor_side(plans, builder.mixes, dataset, model)
    return _assemble(plans, dataset.subject_ids, init, model, builder.mixes)
