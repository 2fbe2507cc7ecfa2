"""Phases whose end a rule can bring forward ("move on"), run as state triggers.

A protocol without a move-on rule is an event dataset: its doses and phase parameters sit at
fixed times. With one, a phase ends when its duration has passed *or* when the rule's
condition becomes true, whichever comes first, and every later phase (its doses, its
parameters) starts from there. Times that depend on the solution cannot be rows of a
dataset, so this module turns the protocol into a small machine of triggers:

- ``hl_phase`` holds the current phase's index and ``hl_began{k}`` when phase *k* began;
- a phase ends when ``t >= hl_began{k} + hl_dur{k}`` or a move-on rule's condition holds
  while it is current: the next phase's parameters are set (the previous ones restored) and
  its dose timers armed;
- dose timer *j* gives a dose when ``t >= hl_d{j}_next`` while doses are left, and re-arms
  itself ``hl_d{j}_every`` later; an infusion adds its rate to ``hl_rate_<state>`` (a term of
  the state's equation) and a second trigger takes it off at its end.

Amounts, times and phase settings are parameters set by rows at time 0, not numbers in the
generated code, so the protocols of a search share one compiled solver.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pandas as pd
import sympy as sp

from hemolab._errors import HemolabError
from hemolab.model import Model, Observable, Parameter
from hemolab.model._expr import TIME, parse_expression
from hemolab.protocols._protocol import MOVE_ON, Protocol, ProtocolError

__all__ = ["phase_machine", "uses_phase_machine"]

_NEVER = 1e300
# among triggers due at once: move on, then a phase's natural end, then infusion ends and doses
_PRIORITY = {"move": 4.0, "end": 3.0, "off": 2.0, "dose": 1.0}


def uses_phase_machine(protocol: Protocol) -> bool:
    return any(r.action == MOVE_ON for r in protocol.rules)


def _in_phase(k: int) -> Any:
    ph = sp.Symbol("hl_phase", real=True)
    return sp.And(ph > k - 0.5, ph < k + 0.5)


def phase_machine(
    model: Model, protocol: Protocol, baseline: Mapping[str, float]
) -> tuple[Model, list[Any], pd.DataFrame]:
    """The model with the machine's parameters (and infusion-rate terms), its triggers, and
    the rows at time 0 that set the protocol's numbers and start the first phase.

    ``model`` already carries the dosing rules' factors (:func:`rule_tracking`): a dose given
    by a timer is multiplied by its state's bioavailability as a dataset dose is.
    """
    from hemolab.events import Trigger

    phases = list(protocol.phases)
    n_ph = len(phases)
    doses = [(k, d) for k, p in enumerate(phases) for d in p.doses]
    infused = sorted({d.cmt for _, d in doses if d.duration > 0})
    names: list[tuple[str, float]] = [("hl_phase", 0.0)]
    names += [(f"hl_began{k}", 0.0 if k == 0 else -1.0) for k in range(n_ph)]
    names += [(f"hl_dur{k}", _NEVER) for k in range(n_ph)]
    for j, (_, d) in enumerate(doses):
        names += [(f"hl_d{j}_{s}", 0.0) for s in ("amt", "start", "every", "count", "left")]
        names.append((f"hl_d{j}_next", _NEVER))
        if d.duration > 0:
            names += [(f"hl_d{j}_dur", 1.0), (f"hl_d{j}_rate", 0.0), (f"hl_d{j}_off", _NEVER)]
    settings = [(k, name) for k, p in enumerate(phases) for name in p.parameters]
    names += [(f"hl_set{k}_{name}", 0.0) for k, name in settings]
    names += [(f"hl_rate_{c}", 0.0) for c in infused]
    taken = set(model.parameter_names) | set(model.state_names) | set(model.observable_names)
    clash = sorted({n for n, _ in names} & taken)
    if clash:
        raise ProtocolError(f"model {model.name!r} already has {clash[0]!r}")

    states = []
    for s in model.states:
        if s.name in infused:
            states.append(replace(s, ddt=f"({s.ddt}) + hl_rate_{s.name}"))
        else:
            states.append(s)
    extra_o = [Observable(f"HL_BEGAN{k}", f"hl_began{k}") for k in range(n_ph)]
    machine = model.replace(
        states=tuple(states),
        parameters=(*model.parameters, *(Parameter(n, v) for n, v in names)),
        observables=(*model.observables, *extra_o),
    )
    bio = {s.name: s.bioavailability for s in model.states}

    def enter(k: int) -> dict[str, Any]:
        """What leaving phase ``k - 1`` and entering phase ``k`` (``n_ph``: none) assigns."""
        assign: dict[str, Any] = {"hl_phase": k}
        if k > 0:
            prev = phases[k - 1]
            for name in prev.parameters:
                assign[name] = baseline[name]
            rates: dict[str, list[str]] = {}
            for j, (kd, d) in enumerate(doses):
                if kd != k - 1:
                    continue
                assign[f"hl_d{j}_left"] = 0
                assign[f"hl_d{j}_next"] = _NEVER
                if d.duration > 0:  # an infusion still running stops with its phase
                    rates.setdefault(d.cmt, []).append(f"hl_d{j}_rate")
                    assign[f"hl_d{j}_rate"] = 0
                    assign[f"hl_d{j}_off"] = _NEVER
            for c, terms in rates.items():
                assign[f"hl_rate_{c}"] = f"hl_rate_{c} - " + " - ".join(terms)
        if k < n_ph:
            assign[f"hl_began{k}"] = "t"
            for name in phases[k].parameters:
                assign[name] = f"hl_set{k}_{name}"
            for j, (kd, _) in enumerate(doses):
                if kd == k:
                    assign[f"hl_d{j}_next"] = f"t + hl_d{j}_start"
                    assign[f"hl_d{j}_left"] = f"hl_d{j}_count"
        return assign

    def trig(when: Any, assign: dict[str, Any], name: str, what: str, **kw: Any) -> Any:
        return Trigger(
            when, assign, name=name, priority=_PRIORITY[what], persistent=False,
            values_at_trigger=False, **kw,
        )  # fmt: skip

    triggers: list[Any] = []
    for k, p in enumerate(phases):
        due = sp.Symbol(f"hl_began{k}", real=True) + sp.Symbol(f"hl_dur{k}", real=True) <= TIME
        triggers.append(trig(sp.And(_in_phase(k), due), enter(k + 1), f"{p.name} ends", "end"))
    index = {p.name: k for k, p in enumerate(phases)}
    for r, rule in enumerate(protocol.rules):
        if rule.action != MOVE_ON:
            continue
        assert rule.phase is not None  # checked by Protocol
        k = index[rule.phase]
        cond = _condition(rule.when, machine, rule.name)
        n = f"hl_rule{r}_n"
        triggers.append(
            trig(sp.And(_in_phase(k), cond), {**enter(k + 1), n: f"{n} + 1"},
                 f"{rule.name} moves on", "move", initial_value=False)
        )  # fmt: skip
    for j, (_, d) in enumerate(doses):
        timer = sp.And(
            sp.Symbol(f"hl_d{j}_next", real=True) <= TIME,
            sp.Symbol(f"hl_d{j}_left", real=True) > 0.5,
        )
        f = bio.get(d.cmt)
        given = f"hl_d{j}_amt" if f is None else f"hl_d{j}_amt * ({f})"
        assign: dict[str, Any] = {
            f"hl_d{j}_next": f"hl_d{j}_next + hl_d{j}_every",
            f"hl_d{j}_left": f"hl_d{j}_left - 1",
        }
        if d.duration > 0:
            rate = f"({given}) / hl_d{j}_dur"
            assign |= {
                f"hl_rate_{d.cmt}": f"hl_rate_{d.cmt} + {rate}",
                f"hl_d{j}_rate": rate,
                f"hl_d{j}_off": f"t + hl_d{j}_dur",
            }
            off = sp.Symbol(f"hl_d{j}_off", real=True) <= TIME
            off_assign = {
                f"hl_rate_{d.cmt}": f"hl_rate_{d.cmt} - hl_d{j}_rate",
                f"hl_d{j}_rate": 0,
                f"hl_d{j}_off": _NEVER,
            }
            triggers.append(trig(off, off_assign, f"dose {j + 1} into {d.cmt} ends", "off"))
        else:
            assign[d.cmt] = f"{d.cmt} + {given}"
        triggers.append(trig(timer, assign, f"dose {j + 1} into {d.cmt}", "dose"))

    rows: list[dict[str, object]] = []
    for k, p in enumerate(phases):
        rows.append(_row(f"hl_dur{k}", p.duration))
        for name, value in p.parameters.items():
            rows.append(_row(f"hl_set{k}_{name}", value))
    for j, (_, d) in enumerate(doses):
        rows += [
            _row(f"hl_d{j}_amt", d.amount),
            _row(f"hl_d{j}_start", d.start),
            _row(f"hl_d{j}_every", d.every or 0.0),
            _row(f"hl_d{j}_count", d.count),
        ]
        if d.duration > 0:
            rows.append(_row(f"hl_d{j}_dur", d.duration))
    # the first phase starts: its parameters, then its timers (last: they may give a dose)
    for name, value in phases[0].parameters.items():
        rows.append(_row(name, value))
    for j, (kd, d) in enumerate(doses):
        if kd == 0:
            rows += [_row(f"hl_d{j}_next", d.start), _row(f"hl_d{j}_left", d.count)]
    return machine, triggers, pd.DataFrame(rows)


def _row(name: str, value: float) -> dict[str, object]:
    return {"ID": 1, "TIME": 0.0, "EVID": 2, "EVENT": "param", "PARAM": name, "VALUE": value}


def _condition(when: str, model: Model, rule: str) -> Any:
    """A rule's ``when`` as a sympy relation (for a compound condition with the phase)."""
    from hemolab.protocols._protocol import Limit

    lhs, op, rhs = Limit(rule, when).relation()
    try:
        a = parse_expression(lhs, state_names=model.state_names, where=f"rule {rule!r}")
        b = parse_expression(rhs, state_names=model.state_names, where=f"rule {rule!r}")
    except HemolabError as exc:
        raise ProtocolError(f"rule {rule!r}: condition {when!r}: {exc}") from None
    return sp.Rel(a, b, op)
