"""A treatment protocol: consecutive phases, each with its doses and parameter settings, the
observables monitored and how often, and safety limits on the monitored values.

A protocol is data. :meth:`Protocol.to_dataset` writes its doses and parameter changes as an
event dataset (DATA-FORMATS §A), and :func:`limit_tracking` turns each safety limit into two
state triggers that keep the longest episode during which the limit's condition held, with
its start and end located exactly by root finding (not on the monitoring grid).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hemolab._errors import HemolabError

__all__ = [
    "REJECTION",
    "Dose",
    "Limit",
    "Monitoring",
    "Phase",
    "Protocol",
    "ProtocolError",
    "Rule",
    "Transfusion",
]

REJECTION = "rejection"
"""A limit's ``when`` for the risk of rejection: an incompatible blood product given."""
_PRODUCTS = ("RBC", "WB", "PLT_APH", "PLT_POOL", "PLASMA")

_REL = re.compile(r"^(?P<lhs>[^<>=]+?)\s*(?P<op><=|>=|<|>)\s*(?P<rhs>[^<>=]+)$")
_FLIP = {"<": ">=", "<=": ">", ">": "<=", ">=": "<"}


class ProtocolError(HemolabError, ValueError):
    """A protocol is invalid; from a file, the message names the file, line and field."""


@dataclass(frozen=True)
class Dose:
    """Doses into state ``cmt``: ``count`` of ``amount`` every ``every`` from ``start``
    (times relative to the phase's start, in the model's time unit); ``duration > 0`` gives
    an infusion. ``unit``: the amount's UCUM unit when it is not the state's (``mg/m2``)."""

    cmt: str
    amount: float
    start: float = 0.0
    every: float | None = None
    count: int = 1
    duration: float = 0.0
    unit: str | None = None

    def times(self) -> np.ndarray:
        step = self.every or 0.0
        return self.start + step * np.arange(self.count, dtype=np.float64)


@dataclass(frozen=True)
class Transfusion:
    """``count`` transfusions of ``units`` of ``product`` (RBC, WB, PLT_APH, PLT_POOL,
    PLASMA) every ``every`` from ``start`` (from the phase's start, in the model's time
    unit), each over ``duration`` (None: 2 h). ``group``: the product's ABO/RhD group
    (``"O-"``, ``"A+"``); None: matched to each patient (crossmatched, no rejection risk)."""

    product: str
    units: int = 1
    start: float = 0.0
    every: float | None = None
    count: int = 1
    duration: float | None = None
    group: str | None = None

    def times(self) -> np.ndarray:
        step = self.every or 0.0
        return self.start + step * np.arange(self.count, dtype=np.float64)


@dataclass(frozen=True)
class Phase:
    """One phase: ``duration`` long, its doses, and parameters held at other values while it
    lasts (restored to the baseline when it ends). ``start``: the phase's absolute start,
    or ``None`` to follow the previous phase at once."""

    name: str
    duration: float
    doses: Sequence[Dose] = ()
    parameters: Mapping[str, float] = field(default_factory=dict)
    start: float | None = None
    transfusions: Sequence[Transfusion] = ()


@dataclass(frozen=True)
class Monitoring:
    """The observables measured, every ``every`` time units from the start to the end;
    ``normal``: an observable's normal range ``(low, high)``, for the time each patient
    spends in it and the recovery after leaving it (both at exact crossings)."""

    observables: Sequence[str]
    every: float
    normal: Mapping[str, tuple[float, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class Limit:
    """A safety limit: ``when`` (``"ANC < 0.5"``) must not hold for longer than
    ``longer_than`` (or at all, with ``None``) in more than ``max_probability`` of the
    patients."""

    name: str
    when: str
    longer_than: float | None = None
    max_probability: float = 0.0

    @property
    def is_rejection(self) -> bool:
        """The limit is on the risk of rejection (``when = "rejection"``), not a condition."""
        return self.when.strip().lower() == REJECTION

    def relation(self) -> tuple[str, str, str]:
        """``(lhs, op, rhs)`` of the condition."""
        m = _REL.match(self.when.strip())
        if m is None:
            raise ProtocolError(
                f"limit {self.name!r}: condition {self.when!r} is not one comparison "
                "(e.g. 'ANC < 0.5')"
            )
        return m.group("lhs").strip(), m.group("op"), m.group("rhs").strip()

    def negation(self) -> str:
        lhs, op, rhs = self.relation()
        return f"{lhs} {_FLIP[op]} {rhs}"


MOVE_ON = "move on"
RULE_ACTIONS = ("hold", "reduce", "stop", MOVE_ON)


@dataclass(frozen=True)
class Rule:
    """A dosing rule acting when ``when`` becomes true (at the exact crossing time).

    ``hold``: doses into ``cmt`` are skipped while the condition holds; ``reduce``: every
    later dose is multiplied by ``factor``, again at each new episode; ``stop``: no more
    doses. ``cmt``: the dosed state it acts on (``None``: every dosed state).
    ``move on``: ``phase`` ends early, and every later phase starts from there (the
    protocol's end stays where it was: after its last phase the patient is followed up).
    """

    name: str
    when: str
    action: str
    cmt: str | None = None
    factor: float | None = None
    phase: str | None = None

    def relation(self) -> tuple[str, str, str]:
        return Limit(self.name, self.when).relation()

    def negation(self) -> str:
        return Limit(self.name, self.when).negation()


@dataclass(frozen=True)
class Protocol:
    """Phases in order, monitoring and safety limits; times in the model's time unit.

    Raises :class:`ProtocolError` when phases overlap, a dose falls outside its phase, or a
    field is out of range; the message names the phase or limit.
    """

    name: str
    phases: Sequence[Phase]
    monitoring: Monitoring
    limits: Sequence[Limit] = ()
    source: str = ""
    rules: Sequence[Rule] = ()

    def __post_init__(self) -> None:
        if not self.phases:
            raise ProtocolError(f"protocol {self.name!r} has no phases")
        names = [p.name for p in self.phases]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ProtocolError(f"protocol {self.name!r}: phase name {dup[0]!r} is used twice")
        starts = self.phase_starts()
        for k, (p, t0) in enumerate(zip(self.phases, starts, strict=True)):
            if not (math.isfinite(p.duration) and p.duration > 0):
                raise ProtocolError(f"phase {p.name!r}: duration must be > 0, got {p.duration}")
            if k > 0:
                prev, prev_end = self.phases[k - 1], starts[k - 1] + self.phases[k - 1].duration
                if t0 < prev_end - 1e-12 * max(1.0, prev_end):
                    raise ProtocolError(
                        f"phase {p.name!r} starts at {t0:g}, before phase {prev.name!r} ends "
                        f"at {prev_end:g}: phases must not overlap"
                    )
            for d in p.doses:
                _check_dose(p, d)
            for tr in p.transfusions:
                _check_transfusion(p, tr)
        if not (math.isfinite(self.monitoring.every) and self.monitoring.every > 0):
            raise ProtocolError(f"monitoring every must be > 0, got {self.monitoring.every}")
        if not self.monitoring.observables:
            raise ProtocolError("monitoring names no observable")
        for obs, bounds in self.monitoring.normal.items():
            if obs not in self.monitoring.observables:
                raise ProtocolError(
                    f"monitoring: a normal range for {obs!r}, which is not monitored "
                    f"({', '.join(self.monitoring.observables)})"
                )
            lo, hi = bounds
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise ProtocolError(
                    f"monitoring: the normal range of {obs!r} must be [low, high] with "
                    f"low < high, got [{lo}, {hi}]"
                )
        lnames = [lim.name for lim in self.limits]
        for lim in self.limits:
            if lim.is_rejection:
                if lim.longer_than is not None:
                    raise ProtocolError(
                        f"limit {lim.name!r}: a rejection limit has no duration (longer_than)"
                    )
            else:
                lim.relation()
            if lnames.count(lim.name) > 1:
                raise ProtocolError(f"limit name {lim.name!r} is used twice")
            if not 0.0 <= lim.max_probability <= 1.0:
                raise ProtocolError(
                    f"limit {lim.name!r}: max_probability must be in [0, 1], "
                    f"got {lim.max_probability}"
                )
            if lim.longer_than is not None and not lim.longer_than >= 0:
                raise ProtocolError(
                    f"limit {lim.name!r}: longer_than must be >= 0, got {lim.longer_than}"
                )

        rnames = [r.name for r in self.rules]
        dosed = {d.cmt for p in self.phases for d in p.doses}
        for rule in self.rules:
            if rnames.count(rule.name) > 1:
                raise ProtocolError(f"rule name {rule.name!r} is used twice")
            try:
                rule.relation()
            except ProtocolError:
                raise ProtocolError(
                    f"rule {rule.name!r}: condition {rule.when!r} is not one comparison "
                    "(e.g. 'ANC < 1.0')"
                ) from None
            if rule.action not in RULE_ACTIONS:
                raise ProtocolError(
                    f"rule {rule.name!r}: action {rule.action!r} is not one of "
                    f"{', '.join(RULE_ACTIONS)}"
                )
            if rule.action == "reduce":
                if rule.factor is None or not (0 < rule.factor < 1):
                    raise ProtocolError(
                        f"rule {rule.name!r}: reduce needs a factor in (0, 1), got {rule.factor}"
                    )
            elif rule.factor is not None:
                raise ProtocolError(f"rule {rule.name!r}: factor applies to reduce only")
            if rule.action == MOVE_ON:
                self._check_move_on(rule)
            elif rule.phase is not None:
                raise ProtocolError(
                    f"rule {rule.name!r}: phase applies to 'move on' only (a {rule.action} "
                    "rule acts in every phase)"
                )
            if rule.cmt is not None and rule.cmt not in dosed:
                raise ProtocolError(
                    f"rule {rule.name!r}: {rule.cmt!r} receives no dose in this protocol "
                    f"(dosed: {', '.join(sorted(dosed)) or 'none'})"
                )

    def _check_move_on(self, rule: Rule) -> None:
        where = f"rule {rule.name!r}"
        names = [p.name for p in self.phases]
        if rule.phase not in names:
            raise ProtocolError(
                f"{where}: 'move on' needs the phase it ends early (phase = one of "
                f"{', '.join(repr(n) for n in names)}), got {rule.phase!r}"
            )
        if rule.cmt is not None:
            raise ProtocolError(f"{where}: cmt applies to hold, reduce and stop only")
        # later phases start when the rule acts: their times are relative, never absolute
        starts, t = self.phase_starts(), 0.0
        for p, t0 in zip(self.phases, starts, strict=True):
            if p.start is not None and abs(t0 - t) > 1e-12 * max(1.0, t):
                raise ProtocolError(
                    f"{where}: phase {p.name!r} starts at a fixed time ({t0:g}); with a "
                    "'move on' rule each phase follows the previous one (no start)"
                )
            t = t0 + p.duration
            if p.transfusions:
                raise ProtocolError(
                    f"{where}: phase {p.name!r} has transfusions; with a 'move on' rule "
                    "phases hold doses only (transfusions keep fixed times)"
                )
            for d in p.doses:
                if d.unit:
                    raise ProtocolError(
                        f"{where}: phase {p.name!r}: a dose into {d.cmt!r} in {d.unit!r}; "
                        "with a 'move on' rule doses are in their state's unit"
                    )
                if d.duration > 0 and d.count > 1 and (d.every or 0.0) < d.duration:
                    raise ProtocolError(
                        f"{where}: phase {p.name!r}: infusions into {d.cmt!r} overlap "
                        f"(every {d.every:g} < duration {d.duration:g}); with a 'move on' "
                        "rule one dose line runs one infusion at a time"
                    )

    def phase_starts(self) -> list[float]:
        starts: list[float] = []
        t = 0.0
        for p in self.phases:
            t0 = t if p.start is None else float(p.start)
            if t0 < 0:
                raise ProtocolError(f"phase {p.name!r}: start must be >= 0, got {t0:g}")
            starts.append(t0)
            t = t0 + p.duration
        return starts

    @property
    def end(self) -> float:
        """The end of the last phase: the end of the protocol and of its simulation."""
        return self.phase_starts()[-1] + self.phases[-1].duration

    def phase_table(self) -> list[dict[str, object]]:
        return [
            {"name": p.name, "start": t0, "end": t0 + p.duration, "n_doses": _n_doses(p)}
            for p, t0 in zip(self.phases, self.phase_starts(), strict=True)
        ]

    def total_amount(self, cmt: str | None = None) -> float:
        """Sum of the dose amounts (in their own units) into ``cmt`` (every state: None)."""
        return float(
            sum(
                d.amount * d.count
                for p in self.phases
                for d in p.doses
                if cmt is None or d.cmt == cmt
            )
        )

    def grid(self) -> np.ndarray:
        """The monitoring times: ``0, every, 2 every, ...`` and the end."""
        every, end = self.monitoring.every, self.end
        n = int(np.floor(end / every + 1e-9))
        g = np.arange(n + 1) * every
        if g[-1] < end - 1e-9 * max(1.0, end):
            g = np.append(g, end)
        return g

    def to_dataset(self, baseline: Mapping[str, float]) -> pd.DataFrame:
        """The protocol's events for one subject (``ID`` 1), DATA-FORMATS §A.

        ``baseline``: each phase parameter's value outside its phases, restored when a phase
        that changed it ends (not after the last phase: the simulation ends there).
        """
        rows: list[dict[str, object]] = []
        end = self.end
        for p, t0 in zip(self.phases, self.phase_starts(), strict=True):
            for name, value in p.parameters.items():
                rows.append(_param_row(t0, name, value))
                if t0 + p.duration < end:
                    rows.append(_param_row(t0 + p.duration, name, baseline[name]))
            for d in p.doses:
                row: dict[str, object] = {
                    "ID": 1,
                    "TIME": t0 + d.start,
                    "EVID": 1,
                    "AMT": d.amount,
                    "CMT": d.cmt,
                }
                if d.count > 1:
                    row["II"], row["ADDL"] = d.every, d.count - 1
                if d.duration > 0:
                    row["DUR"] = d.duration
                if d.unit:
                    row["AMT_UNIT"] = d.unit
                rows.append(row)
            for tr in p.transfusions:
                for t in tr.times():
                    row = {"ID": 1, "TIME": t0 + float(t), "EVID": 2, "EVENT": "transfusion",
                           "PRODUCT": tr.product, "UNITS": tr.units}  # fmt: skip
                    if tr.duration is not None:
                        row["DUR"] = tr.duration
                    rows.append(row)
        # a restore and the next phase's setting at the same time apply in this order
        frame = pd.DataFrame(rows, columns=None if rows else ["ID", "TIME", "EVID", "AMT", "CMT"])
        return frame.sort_values("TIME", kind="stable").reset_index(drop=True)


def _param_row(t: float, name: str, value: float) -> dict[str, object]:
    return {"ID": 1, "TIME": t, "EVID": 2, "EVENT": "param", "PARAM": name, "VALUE": value}


def _n_doses(p: Phase) -> int:
    return int(sum(d.count for d in p.doses))


def _check_transfusion(p: Phase, tr: Transfusion) -> None:
    from hemolab.events._abo import BloodGroup

    where = f"phase {p.name!r}: transfusion of {tr.product!r}"
    if tr.product not in _PRODUCTS:
        raise ProtocolError(f"{where}: product must be one of {', '.join(_PRODUCTS)}")
    if isinstance(tr.units, bool) or not isinstance(tr.units, int) or tr.units < 1:
        raise ProtocolError(f"{where}: units must be a whole number >= 1, got {tr.units!r}")
    if tr.count < 1:
        raise ProtocolError(f"{where}: count must be >= 1, got {tr.count}")
    if tr.count > 1 and not (tr.every is not None and tr.every > 0):
        raise ProtocolError(f"{where}: {tr.count} transfusions need every > 0 (the interval)")
    if tr.duration is not None and not (math.isfinite(tr.duration) and tr.duration > 0):
        raise ProtocolError(f"{where}: duration must be > 0, got {tr.duration}")
    if tr.start < 0 or not math.isfinite(tr.start):
        raise ProtocolError(f"{where}: start must be >= 0 (from the phase's start)")
    last = float(tr.times()[-1])
    if last >= p.duration - 1e-12 * max(1.0, p.duration):
        raise ProtocolError(
            f"{where}: the last one begins at {last:g} from the phase's start, at or after "
            f"the phase ends ({p.duration:g})"
        )
    if tr.group is not None:
        try:
            group = BloodGroup.parse(tr.group)
        except HemolabError as exc:
            raise ProtocolError(f"{where}: {exc}") from None
        if group.rhd_positive is None:
            raise ProtocolError(
                f"{where}: group {tr.group!r} needs its RhD ('{group.abo}+' or '{group.abo}-')"
            )


def _check_dose(p: Phase, d: Dose) -> None:
    where = f"phase {p.name!r}: dose into {d.cmt!r}"
    if not (math.isfinite(d.amount) and d.amount > 0):
        raise ProtocolError(f"{where}: amount must be > 0, got {d.amount}")
    if d.count < 1:
        raise ProtocolError(f"{where}: count must be >= 1, got {d.count}")
    if d.count > 1 and not (d.every is not None and d.every > 0):
        raise ProtocolError(f"{where}: {d.count} doses need every > 0 (the interval)")
    if d.start < 0 or not math.isfinite(d.start):
        raise ProtocolError(f"{where}: start must be >= 0 (from the phase's start)")
    if d.duration < 0 or not math.isfinite(d.duration):
        raise ProtocolError(f"{where}: duration must be >= 0, got {d.duration}")
    last = float(d.times()[-1])
    tol = 1e-12 * max(1.0, p.duration)
    # a bolus at the phase's end belongs to the next phase; an infusion may end with it
    if (d.duration == 0 and last >= p.duration - tol) or last + d.duration > p.duration + tol:
        raise ProtocolError(
            f"{where}: the last dose {'ends' if d.duration else 'is'} at "
            f"{last + d.duration:g} from the phase's start, after the phase ends "
            f"({p.duration:g}): a dose belongs to one phase"
        )
