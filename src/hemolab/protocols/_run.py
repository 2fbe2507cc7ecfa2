"""Running a protocol over a virtual population (or one typical patient): its events, its
limits tracked at exact crossings, and the outcome per patient and over the population."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from hemolab._errors import HemolabError
from hemolab.model import Model, Observable, Parameter
from hemolab.protocols._phases import phase_machine, uses_phase_machine
from hemolab.protocols._protocol import MOVE_ON, Limit, Protocol, ProtocolError
from hemolab.protocols._rejection import (
    BLOOD_GROUPS,
    COVARIATE,
    blood_group_code,
    frequencies,
    rejection_model,
    transfusion_lines,
    uses_blood_groups,
)

__all__ = ["LimitOutcome", "ProtocolResult", "limit_tracking", "rule_tracking", "run_protocol"]

_PREFIX = "hl_lim"


@dataclass(frozen=True)
class LimitOutcome:
    """A safety limit over the population: the share of patients (that solved) whose
    longest episode broke it, its 95 % Wilson interval, and whether it is within
    ``max_probability``. Over the patients who broke it: ``broken_from``, the median time
    its condition first held, and ``exceeded_by``, the median excess (a duration limit: the
    longest episode beyond ``longer_than``, in the model's time unit; an instantaneous one
    on a monitored observable: how far past its threshold the observable went, on the
    monitoring grid; NaN otherwise)."""

    limit: Limit
    n: int
    n_violated: int
    broken_from: float = math.nan
    exceeded_by: float = math.nan

    @property
    def probability(self) -> float:
        return self.n_violated / self.n if self.n else math.nan

    @property
    def interval(self) -> tuple[float, float]:
        return _wilson(self.n_violated, self.n)

    @property
    def met(self) -> bool:
        return self.n > 0 and self.probability <= self.limit.max_probability

    def to_json(self) -> dict[str, Any]:
        lo, hi = self.interval
        return {
            "name": self.limit.name,
            "when": self.limit.when,
            "longer_than": self.limit.longer_than,
            "max_probability": self.limit.max_probability,
            "n_patients": self.n,
            "n_violated": self.n_violated,
            "probability": _num(self.probability),
            "interval_95": [_num(lo), _num(hi)],
            "met": self.met,
            "broken_from": _num(self.broken_from),
            "exceeded_by": _num(self.exceeded_by),
        }


@dataclass(frozen=True)
class ProtocolResult:
    """What a protocol did: per patient (``patients``: status, each limit's longest episode
    and whether it broke the limit, each monitored observable's nadir, its time and final
    value on the monitoring grid), and over the population (``limits``)."""

    protocol: Protocol
    model_name: str
    model_hash: str
    time_unit: str
    patients: pd.DataFrame
    limits: tuple[LimitOutcome, ...]
    status_counts: dict[str, int]
    seed: int | None
    population: Any = None  # the PopulationResult (bands, long result file) when one ran
    rules: tuple[dict[str, Any], ...] = ()  # per rule: how many patients it acted on
    rejection: dict[str, Any] | None = None  # products of a stated group: the risk

    @property
    def n(self) -> int:
        return len(self.patients)

    @property
    def safe(self) -> bool:
        """Every limit is within its allowed probability."""
        return all(o.met for o in self.limits)

    def dose_intensity(self, per: float) -> dict[str, float]:
        """Amount per ``per`` time units (e.g. a week) into each dosed state."""
        cmts = sorted({d.cmt for p in self.protocol.phases for d in p.doses})
        end = self.protocol.end
        return {c: self.protocol.total_amount(c) * per / end for c in cmts}

    def _phases(self, ok: Any) -> list[dict[str, Any]]:
        """The planned phases, with when they began over the patients who reached them."""
        out = []
        for row in self.protocol.phase_table():
            began = np.asarray(self.patients.loc[ok, f"{row['name']} start"], dtype=np.float64)
            out.append(
                {**row, "started": _quantiles(began), "n_reached": int(np.isfinite(began).sum())}
            )
        return out

    def summary(self) -> dict[str, Any]:
        ok = self.patients["status"] == "ok"
        observables: dict[str, Any] = {}
        for name in self.protocol.monitoring.observables:
            nadir = np.asarray(self.patients.loc[ok, f"{name}_nadir"], dtype=np.float64)
            final = np.asarray(self.patients.loc[ok, f"{name}_final"], dtype=np.float64)
            observables[name] = {"nadir": _quantiles(nadir), "final": _quantiles(final)}
            if name in self.protocol.monitoring.normal:
                for metric in ("time_in_normal", "recovery"):
                    x = np.asarray(self.patients.loc[ok, f"{name}_{metric}"], dtype=np.float64)
                    observables[name][metric] = _quantiles(x)
        return {
            "protocol": self.protocol.name,
            "model": self.model_name,
            "model_hash": self.model_hash,
            "time_unit": self.time_unit,
            "end": self.protocol.end,
            "n_patients": self.n,
            "seed": self.seed,
            "status": dict(self.status_counts),
            "phases": self._phases(ok),
            "limits": [o.to_json() for o in self.limits],
            "rules": list(self.rules),
            **({"rejection": self.rejection} if self.rejection is not None else {}),
            "safe": self.safe,
            "observables": observables,
            "total_amount": {
                c: self.protocol.total_amount(c)
                for c in sorted({d.cmt for p in self.protocol.phases for d in p.doses})
            },
        }


def _normal_conditions(protocol: Protocol) -> list[Limit]:
    """Two tracked conditions per normal range (below, above), after the protocol's limits."""
    out = []
    for obs, (lo, hi) in protocol.monitoring.normal.items():
        out.append(Limit(f"{obs} below normal", f"{obs} < {lo!r}"))
        out.append(Limit(f"{obs} above normal", f"{obs} > {hi!r}"))
    return out


def _normal_outcomes(protocol: Protocol, table: pd.DataFrame, end: float) -> None:
    """Per patient and normal range: the time in range, and the recovery (from the first fall
    below the range to the last return into it; 0 if never below, NaN if still below)."""
    base = sum(not lim.is_rejection for lim in protocol.limits)
    for j, obs in enumerate(protocol.monitoring.normal):
        below, above = (
            {s: np.asarray(table[f"{_PREFIX.upper()}{k}_{s}_final"], dtype=np.float64)
             for s in _COLS}
            for k in (base + 2 * j, base + 2 * j + 1)
        )  # fmt: skip
        outside = [c["TOTAL"] + c["IN"] * (end - c["DOWN"]) for c in (below, above)]
        table[f"{obs}_time_in_normal"] = end - outside[0] - outside[1]
        recovery = np.where(below["IN"] > 0, np.nan, below["UP"] - below["FIRST"])
        table[f"{obs}_recovery"] = np.where(below["N"] == 0, 0.0, recovery)


def _excess(lim: Limit, longest: np.ndarray, table: pd.DataFrame) -> np.ndarray:
    """Per patient, how far past the limit: the longest episode beyond ``longer_than``, or
    (instantaneous limits on a monitored observable) the extreme beyond the threshold."""
    if lim.longer_than is not None:
        return longest - lim.longer_than
    lhs, op, rhs = lim.relation()
    try:
        threshold = float(rhs)
    except ValueError:
        return np.full(len(table), np.nan)
    if op.startswith("<") and f"{lhs}_nadir" in table:
        return threshold - np.asarray(table[f"{lhs}_nadir"], dtype=np.float64)
    if op.startswith(">") and f"{lhs}_peak" in table:
        return np.asarray(table[f"{lhs}_peak"], dtype=np.float64) - threshold
    return np.full(len(table), np.nan)


def limit_tracking(model: Model, limits: Sequence[Limit]) -> tuple[Model, list[Any]]:
    """The model with bookkeeping parameters per limit and the triggers that set them.

    For limit *k*: ``hl_lim{k}_down`` (when the condition last became true), ``_in`` (1 while
    it holds), ``_max`` (the longest episode that has ended), ``_n`` (episodes begun),
    ``_first`` (when the condition first held; :data:`_NEVER` if it never did), ``_total``
    (the time of the episodes that have ended) and ``_up`` (when the last one ended; -1:
    none). The condition's trigger fires at the start when it already holds there.
    """
    from hemolab.events import Trigger

    taken = set(model.parameter_names) | set(model.state_names) | set(model.observable_names)
    extra_p: list[Parameter] = []
    extra_o: list[Observable] = []
    triggers: list[Any] = []
    for k, lim in enumerate(limits):
        names = {s: f"{_PREFIX}{k}_{s}" for s in _TRACK}
        clash = sorted(set(names.values()) & taken)
        if clash:
            raise ProtocolError(f"model {model.name!r} already has {clash[0]!r}")
        start = {"first": _NEVER, "up": -1.0}
        extra_p += [Parameter(v, start.get(s, 0.0)) for s, v in names.items()]
        extra_o += [Observable(v.upper(), v) for v in names.values()]
        d, i, mx, n, first, total, up = (names[s] for s in _TRACK)
        triggers += [
            Trigger(
                lim.when,
                {d: "t", i: 1, n: f"{n} + 1", first: f"min({first}, t)"},
                name=f"{lim.name} begins",
                initial_value=False,
            ),
            Trigger(
                lim.negation(),
                {mx: f"max({mx}, t - {d})", i: 0, total: f"{total} + t - {d}", up: "t"},
                name=f"{lim.name} ends",
            ),
        ]
    tracked = model.replace(
        parameters=(*model.parameters, *extra_p), observables=(*model.observables, *extra_o)
    )
    return tracked, triggers


def rule_tracking(
    model: Model, rules: Sequence[Any], dosed: Sequence[str]
) -> tuple[Model, list[Any]]:
    """The model with the parameters dosing rules act on, and the rules' triggers.

    Each dosed state a rule acts on gets ``hl_scale_<state>`` (1; ``reduce`` multiplies it,
    ``stop`` sets 0) and, per ``hold`` rule, a factor ``1 - hl_rule{k}_hold`` in its
    bioavailability; ``hl_rule{k}_n`` counts the times rule *k* acted.
    """
    from dataclasses import replace

    from hemolab.events import Trigger

    if not rules:
        return model, []
    taken = set(model.parameter_names) | set(model.state_names) | set(model.observable_names)
    extra_p: list[Parameter] = []
    extra_o: list[Observable] = []
    factors: dict[str, list[str]] = {}
    triggers: list[Any] = []
    for k, rule in enumerate(rules):
        targets = [rule.cmt] if rule.cmt else list(dosed)
        n = f"hl_rule{k}_n"
        extra_p.append(Parameter(n, 0.0))
        extra_o.append(Observable(n.upper(), n))
        if rule.action == MOVE_ON:  # its trigger belongs to the phases (protocols/_phases.py)
            continue
        for c in targets:
            if f"hl_scale_{c}" not in factors.setdefault(c, []):
                factors[c].append(f"hl_scale_{c}")
                extra_p.append(Parameter(f"hl_scale_{c}", 1.0))
        if rule.action == "hold":
            hold = f"hl_rule{k}_hold"
            extra_p.append(Parameter(hold, 0.0))
            for c in targets:
                factors[c].append(f"(1 - {hold})")
            triggers += [
                Trigger(rule.when, {hold: 1, n: f"{n} + 1"}, name=f"{rule.name} holds",
                        initial_value=False),
                Trigger(rule.negation(), {hold: 0}, name=f"{rule.name} releases"),
            ]  # fmt: skip
        else:
            assign: dict[str, Any] = {
                f"hl_scale_{c}": f"hl_scale_{c} * {rule.factor!r}" if rule.action == "reduce" else 0
                for c in targets
            }
            triggers.append(
                Trigger(rule.when, assign | {n: f"{n} + 1"}, name=f"{rule.name} {rule.action}s",
                        initial_value=False)
            )  # fmt: skip
    clash = sorted({p.name for p in extra_p} & taken)
    if clash:
        raise ProtocolError(f"model {model.name!r} already has {clash[0]!r}")
    states = []
    for s in model.states:
        if s.name in factors:
            f = " * ".join(factors[s.name])
            old = s.bioavailability
            states.append(replace(s, bioavailability=f if old is None else f"({old}) * {f}"))
        else:
            states.append(s)
    ruled = model.replace(
        states=tuple(states),
        parameters=(*model.parameters, *extra_p),
        observables=(*model.observables, *extra_o),
    )
    return ruled, triggers


def _check_against_model(protocol: Protocol, model: Model, population: Any) -> None:
    states, params = set(model.state_names), set(model.parameter_names)
    outputs = set(model.observable_names) | states
    iiv = set(population.omega.parameters) if population is not None else set()
    for p in protocol.phases:
        for d in p.doses:
            if d.cmt not in states:
                raise ProtocolError(
                    f"phase {p.name!r}: dose into {d.cmt!r}, which is not a state of model "
                    f"{model.name!r} (states: {', '.join(model.state_names)})"
                )
        for name in p.parameters:
            if name not in params:
                raise ProtocolError(
                    f"phase {p.name!r}: parameter {name!r} is not a parameter of model "
                    f"{model.name!r}"
                )
            if name in iiv:
                raise ProtocolError(
                    f"phase {p.name!r}: parameter {name!r} varies between patients (IIV), so "
                    "a phase cannot set it to one value and restore it afterwards"
                )
    for name in protocol.monitoring.observables:
        if name not in outputs:
            raise ProtocolError(
                f"monitoring: {name!r} is not an observable or state of model {model.name!r} "
                f"(observables: {', '.join(model.observable_names)})"
            )


def run_protocol(
    protocol: Protocol,
    model: Model,
    *,
    population: Any = None,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    chunk_size: int = 1024,
    progress: Callable[[int, int], None] | None = None,
    out: Any = None,
    draws: Mapping[str, Any] | None = None,
    initial_states: Mapping[str, Any] | None = None,
    blood_groups: Mapping[str, float] | None = None,
    blood_group: str | None = None,
) -> ProtocolResult:
    """Simulate ``protocol`` for every patient of ``population`` (a
    :class:`~hemolab.Population` of ``model``), for given parameter sets ``draws`` (e.g. the
    posterior draws of a calibrated patient: ``parameter → (N,)``), or for the typical
    patient when both are None.

    Limits are tracked with state triggers (exact crossing times); the monitored observables
    are reported on the monitoring grid. ``out``: the population's long result file.
    ``initial_states`` (``state → value or (N,)``, with ``draws`` or the typical patient)
    start the protocol from a given state, e.g. a calibrated patient's at their last
    observation (:func:`~hemolab.protocols.patient_now`).

    Transfusions that name their product's group give each patient a blood group: drawn
    from ``blood_groups`` (``"A+" → share``; default the US population's) over a population,
    else ``blood_group`` (the typical patient's or the calibrated patient's); the risk of
    rejection is then an outcome (``summary()["rejection"]``, a ``when = "rejection"``
    limit), and ABO-incompatible red cells are destroyed (:mod:`._rejection`).
    """
    from hemolab.compile import model_hash

    if population is not None and (draws is not None or initial_states is not None):
        raise HemolabError("give a population, or draws (and initial states), not both")
    if draws is not None:
        held = sorted({n for p in protocol.phases for n in p.parameters} & set(draws))
        if held:
            raise HemolabError(
                f"phase parameter {held[0]!r} is also drawn: a phase would restore it to the "
                "model's typical value, not the draw's"
            )

    if population is not None and population.model.name != model.name:
        raise HemolabError(
            f"the population is of model {population.model.name!r}, not {model.name!r}"
        )
    _check_against_model(protocol, model, population)
    grouped = uses_blood_groups(protocol)
    group_values = _blood_group_values(protocol, population, blood_groups, blood_group)
    ranges = _normal_conditions(protocol)
    conditions = [lim for lim in protocol.limits if not lim.is_rejection]
    tracked, triggers = _tracking_or_error(model, [*conditions, *ranges])
    dosed = sorted({d.cmt for p in protocol.phases for d in p.doses})
    tracked, rule_triggers = _rules_or_error(tracked, protocol.rules, dosed)
    triggers = [*triggers, *rule_triggers]
    baseline = {name: model.parameter(name).value for p in protocol.phases for name in p.parameters}
    n_phases = len(protocol.phases)
    moving = uses_phase_machine(protocol)
    if moving:  # phase ends depend on the solution: triggers
        tracked, phase_triggers, events = _phases_or_error(tracked, protocol, baseline)
        triggers = [*triggers, *phase_triggers]
    else:
        events = protocol.to_dataset(baseline)
    if grouped:
        tracked, lysis_rows = rejection_model(tracked, protocol)
        events = pd.concat([events, lysis_rows], ignore_index=True).sort_values(
            "TIME", kind="stable"
        )
    if events is not None and events.empty:  # nothing given: from the initial state
        events = None
    grid = protocol.grid()
    monitored = list(protocol.monitoring.observables)
    n_tracked = len(conditions) + len(ranges)
    track = [f"{_PREFIX}{k}_{s}".upper() for k in range(n_tracked) for s in _TRACK]
    track += [f"HL_RULE{k}_N" for k in range(len(protocol.rules))]
    if moving:
        track += [f"HL_BEGAN{k}" for k in range(n_phases)]
    n_lines = sum(len(p.transfusions) for p in protocol.phases) if grouped else 0
    track += [f"HL_{w}{j}" for j in range(n_lines) for w in ("INC", "HAEM")]
    if grouped:
        track.append("HL_BLOOD_GROUP")
        tracked = tracked.replace(
            observables=(*tracked.observables, Observable("HL_BLOOD_GROUP", COVARIATE))
        )
    if population is not None:
        from dataclasses import replace

        from hemolab.population import simulate_population

        pop = replace(population, model=tracked)
        if grouped:
            pop = replace(pop, covariates={**pop.covariates, COVARIATE: group_values})
        res = simulate_population(
            pop,
            events,
            grid=grid,
            band_variables=monitored + track,
            triggers=triggers,
            rtol=rtol,
            atol=atol,
            chunk_size=chunk_size,
            progress=progress,
            out=out,
        )
        m = res.metrics
        ids = list(dict.fromkeys(m["patient_id"]))
        first = m[m["variable"] == (monitored + track)[0]].set_index("patient_id")
        data: dict[str, Any] = {"patient_id": ids, "status": list(first.loc[ids, "status"])}
        for var in monitored + track:
            rows = m[m["variable"] == var].set_index("patient_id").loc[ids]
            data[f"{var}_nadir"] = np.asarray(rows["min"], dtype=np.float64)
            data[f"{var}_t_nadir"] = np.asarray(rows["t_min"], dtype=np.float64)
            data[f"{var}_peak"] = np.asarray(rows["max"], dtype=np.float64)
            data[f"{var}_final"] = np.asarray(rows["final"], dtype=np.float64)
        table = pd.DataFrame(data)
        counts = dict(res.status_counts)
        seed: int | None = int(population.seed)
        pop_result: Any = res
    else:
        from hemolab._simulate import simulate

        r = simulate(
            tracked,
            events,
            grid=grid,
            triggers=triggers,
            rtol=rtol,
            atol=atol,
            params=_params(draws, group_values),
            initial_states=initial_states,
        )
        data = {"patient_id": list(r.patient_ids), "status": list(r.status_labels)}
        t = np.asarray(r.time)
        for var in monitored + track:
            y = np.asarray(r.variable(var))
            k = np.nanargmin(y, axis=1)
            data[f"{var}_nadir"] = y[np.arange(len(y)), k]
            data[f"{var}_t_nadir"] = t[np.arange(len(y)), k]
            data[f"{var}_peak"] = np.nanmax(y, axis=1)
            data[f"{var}_final"] = y[:, -1]
        table = pd.DataFrame(data)
        counts = table["status"].value_counts().to_dict()
        seed, pop_result = None, None
    outcomes = []
    end = protocol.end
    rejection = _rejection_outcomes(protocol, table) if grouped else None
    k = -1
    for lim in protocol.limits:
        if lim.is_rejection:
            assert rejection is not None  # checked: a rejection limit needs grouped units
            outcomes.append(_rejection_limit(lim, table, rejection))
            continue
        k += 1
        key = f"{_PREFIX.upper()}{k}_"
        col = {s: np.asarray(table[f"{key}{s}_final"], dtype=np.float64) for s in _COLS}
        # an episode still open at the end counts to the end
        longest = np.maximum(col["MAX"], col["IN"] * (end - col["DOWN"]))
        violated = col["N"] > 0 if lim.longer_than is None else longest > lim.longer_than
        first = np.where(col["FIRST"] >= _NEVER, np.nan, col["FIRST"])
        excess = _excess(lim, longest, table)
        table[f"{lim.name} total"] = col["TOTAL"] + col["IN"] * (end - col["DOWN"])
        table[f"{lim.name} longest"] = longest
        table[f"{lim.name} violated"] = violated
        table[f"{lim.name} first"] = first
        table[f"{lim.name} exceeded by"] = np.where(violated, excess, np.nan)
        ok = np.asarray(table["status"] == "ok")
        bad = violated & ok
        outcomes.append(
            LimitOutcome(
                lim,
                int(ok.sum()),
                int(np.sum(bad)),
                broken_from=float(np.nanmedian(first[bad])) if bad.any() else math.nan,
                exceeded_by=(
                    float(np.nanmedian(excess[bad]))
                    if bad.any() and np.isfinite(excess[bad]).any()
                    else math.nan
                ),
            )
        )
    _normal_outcomes(protocol, table, end)
    rule_outcomes = []
    for k, rule in enumerate(protocol.rules):
        acted = np.asarray(table[f"HL_RULE{k}_N_final"], dtype=np.float64)
        table[f"{rule.name} acted"] = acted.astype(np.int64)
        ok = np.asarray(table["status"] == "ok")
        rule_outcomes.append(
            {"name": rule.name, "when": rule.when, "action": rule.action, "cmt": rule.cmt,
             "factor": rule.factor, "phase": rule.phase, "n_patients": int(ok.sum()),
             "n_acted": int(np.sum((acted > 0) & ok))}
        )  # fmt: skip
    phase_starts = protocol.phase_starts()
    for k, ph in enumerate(protocol.phases):
        if f"HL_BEGAN{k}_final" in table:
            began = np.asarray(table[f"HL_BEGAN{k}_final"], dtype=np.float64)
            table[f"{ph.name} start"] = np.where(began < 0, np.nan, began)
        else:
            table[f"{ph.name} start"] = phase_starts[k]
    drop = [c for c in table.columns if c.startswith((_PREFIX.upper(), "HL_"))]
    table = table.drop(columns=drop)
    return ProtocolResult(
        protocol=protocol,
        model_name=model.name,
        model_hash=model_hash(model),
        time_unit=model.time_unit,
        patients=table,
        limits=tuple(outcomes),
        status_counts={str(k): int(v) for k, v in counts.items()},
        seed=seed,
        population=pop_result,
        rules=tuple(rule_outcomes),
        rejection=rejection,
    )


_TRACK = ("down", "in", "max", "n", "first", "total", "up")
_NEVER = 1e300  # hl_lim{k}_first before the condition first holds
_COLS = tuple(s.upper() for s in _TRACK)


def _tracking_or_error(model: Model, limits: Sequence[Limit]) -> tuple[Model, list[Any]]:
    """The tracked model and triggers, each trigger checked against it (names, comparison)
    before anything runs."""
    from hemolab.events._trigger import parse_trigger

    tracked, triggers = limit_tracking(model, limits)
    for k, trig in enumerate(triggers):
        try:
            parse_trigger(trig, tracked, k)
        except HemolabError as exc:
            lim = limits[k // 2]
            raise ProtocolError(
                f"limit {lim.name!r}: condition {lim.when!r} does not fit model "
                f"{model.name!r}: {exc}"
            ) from None
    return tracked, triggers


def _blood_group_values(
    protocol: Protocol,
    population: Any,
    shares: Mapping[str, float] | None,
    group: str | None,
) -> Any:
    """Each patient's blood group (the covariate's value or distribution), checked."""
    from hemolab.population import Categorical

    grouped = uses_blood_groups(protocol)
    for lim in protocol.limits:
        if lim.is_rejection and not grouped:
            raise ProtocolError(
                f"limit {lim.name!r}: no transfusion names its product's group (group = "
                "'O-'), so no patient can reject one"
            )
    if not grouped:
        if shares is not None or group is not None:
            raise ProtocolError("blood groups given, but no transfusion names its product's group")
        return None
    if population is not None:
        if group is not None:
            raise HemolabError("a population draws its blood groups: give blood_groups")
        p = frequencies(shares)
        return Categorical(tuple(float(c) for c in range(len(BLOOD_GROUPS))), tuple(p))
    if shares is not None:
        raise HemolabError("blood_groups (shares) are for a population: give blood_group")
    if group is None:
        raise ProtocolError(
            "a transfusion names its product's group: give the patient's blood_group "
            "(e.g. 'A+'), or run over a population"
        )
    try:
        return float(blood_group_code(group))
    except HemolabError as exc:
        raise ProtocolError(str(exc)) from None


def _params(draws: Mapping[str, Any] | None, group: Any) -> dict[str, Any] | None:
    """The parameter sets of a run without a population, with the patient's blood group."""
    if group is None:
        return dict(draws) if draws is not None else None
    return {**(draws or {}), COVARIATE: group}


def _rejection_outcomes(protocol: Protocol, table: pd.DataFrame) -> dict[str, Any]:
    """Per patient (columns added to ``table``) and over the population: incompatible units
    given, those destroyed (ABO-incompatible red cells), and each patient's blood group."""
    lines = transfusion_lines(protocol)
    n = len(table)
    incompatible, haemolysed = np.zeros(n), np.zeros(n)
    first = np.full(n, np.inf)
    for j, (t0, tr) in enumerate(lines):
        inc = np.asarray(table[f"HL_INC{j}_final"], dtype=np.float64) > 0.5
        haem = np.asarray(table[f"HL_HAEM{j}_final"], dtype=np.float64) > 0.5
        incompatible += inc * tr.units * tr.count
        haemolysed += haem * tr.units * tr.count
        first = np.where(inc, np.minimum(first, t0 + tr.start), first)
    code = np.asarray(table["HL_BLOOD_GROUP_final"], dtype=np.float64)
    groups = [BLOOD_GROUPS[round(c)] if np.isfinite(c) else "" for c in code]
    table["blood group"] = groups
    table["incompatible units"] = incompatible.astype(np.int64)
    table["haemolysed units"] = haemolysed.astype(np.int64)
    table["first incompatible"] = np.where(np.isfinite(first), first, np.nan)
    ok = np.asarray(table["status"] == "ok")
    k, k_haem, m = (
        int(np.sum((incompatible > 0) & ok)),
        int(np.sum((haemolysed > 0) & ok)),
        int(ok.sum()),
    )
    lo, hi = _wilson(k, m)
    return {
        "n_patients": m,
        "n_incompatible": k,
        "probability": _num(k / m) if m else None,
        "interval_95": [_num(lo), _num(hi)],
        "n_haemolytic": k_haem,
        "haemolytic_probability": _num(k_haem / m) if m else None,
        "blood_groups": {g: int(sum(1 for x, o in zip(groups, ok, strict=True) if o and x == g))
                         for g in BLOOD_GROUPS},
    }  # fmt: skip


def _rejection_limit(lim: Limit, table: pd.DataFrame, rejection: dict[str, Any]) -> LimitOutcome:
    """A ``when = "rejection"`` limit: broken by every patient given an incompatible unit;
    when first, and by how many units."""
    units = np.asarray(table["incompatible units"], dtype=np.float64)
    ok = np.asarray(table["status"] == "ok")
    bad = (units > 0) & ok
    table[f"{lim.name} violated"] = units > 0
    table[f"{lim.name} first"] = table["first incompatible"]
    table[f"{lim.name} exceeded by"] = np.where(units > 0, units, np.nan)
    first = np.asarray(table["first incompatible"], dtype=np.float64)
    return LimitOutcome(
        lim,
        int(rejection["n_patients"]),
        int(np.sum(bad)),
        broken_from=float(np.median(first[bad])) if bad.any() else math.nan,
        exceeded_by=float(np.median(units[bad])) if bad.any() else math.nan,
    )


def _phases_or_error(
    model: Model, protocol: Protocol, baseline: Mapping[str, float]
) -> tuple[Model, list[Any], pd.DataFrame]:
    """The phase machine (:mod:`hemolab.protocols._phases`), each move-on condition checked
    against the model before anything runs."""
    from hemolab.events._trigger import parse_trigger

    machine, triggers, rows = phase_machine(model, protocol, baseline)
    for k, trig in enumerate(triggers):
        try:
            parse_trigger(trig, machine, k)
        except HemolabError as exc:
            rule = next((r for r in protocol.rules if trig.name == f"{r.name} moves on"), None)
            what = f"rule {rule.name!r}: condition {rule.when!r}" if rule else trig.name
            raise ProtocolError(f"{what} does not fit model {model.name!r}: {exc}") from None
    return machine, triggers, rows


def _rules_or_error(
    model: Model, rules: Sequence[Any], dosed: Sequence[str]
) -> tuple[Model, list[Any]]:
    from hemolab.events._trigger import parse_trigger

    ruled, triggers = rule_tracking(model, rules, dosed)
    by_rule = [r for r in rules for _ in range({"hold": 2, MOVE_ON: 0}.get(r.action, 1))]
    for k, trig in enumerate(triggers):
        try:
            parse_trigger(trig, ruled, k)
        except HemolabError as exc:
            rule = by_rule[k]
            raise ProtocolError(
                f"rule {rule.name!r}: condition {rule.when!r} does not fit model "
                f"{model.name!r}: {exc}"
            ) from None
    return ruled, triggers


def _wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    if n == 0:
        return math.nan, math.nan
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (0.0 if k == 0 else max(0.0, mid - half)), (1.0 if k == n else min(1.0, mid + half))


def _num(x: float) -> float | None:
    return None if not math.isfinite(x) else float(x)


def _quantiles(x: np.ndarray) -> dict[str, float | None]:
    x = x[np.isfinite(x)]
    if x.size == 0:
        return {"q05": None, "median": None, "q95": None}
    q = np.quantile(x, [0.05, 0.5, 0.95])
    return {"q05": float(q[0]), "median": float(q[1]), "q95": float(q[2])}
