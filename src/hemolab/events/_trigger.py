"""State-triggered events: "when ANC < 0.5, set hold = 1", located exactly by root finding.

A :class:`Trigger` fires when its condition goes from false to true, during a step (the
crossing time is found on the step's dense output to machine precision) or through a
discrete event (a dose that makes the condition true fires it at the dose time). Its action
assigns new values to parameters, covariates or states, evaluated at the firing time. Dose
holds are expressed through the model itself: a parameter ``hold`` in a state's
``bioavailability`` (``"1 - hold"``) and a trigger that sets it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import sympy as sp

from hemolab._errors import ModelError, UnknownSymbolError
from hemolab.model._expr import parse_expression, symbol_names
from hemolab.model._model import Model

__all__ = ["Trigger", "parse_trigger"]

_REL = re.compile(r"^(?P<lhs>.+?)\s*(?P<op><=|>=|<|>)\s*(?P<rhs>.+)$", re.S)


@dataclass(frozen=True)
class Trigger:
    """A condition on the running solution and the assignments made when it becomes true.

    Parameters
    ----------
    when
        A comparison ``lhs < rhs`` (or ``<=``, ``>``, ``>=``) of states, observables,
        assignments, parameters, covariates and ``t``.
    assign
        ``name → expression``: parameters, covariates or states to change when it fires
        (right-hand sides are evaluated with the values just before the change).
    name
        Label used in results (default ``trigger<k>``).

    Examples
    --------
    >>> Trigger("ANC < 0.5", {"hold": 1})
    Trigger(when='ANC < 0.5', assign={'hold': 1}, name='')
    """

    when: str
    assign: Mapping[str, str | float | int] = field(default_factory=dict)
    name: str = ""


@dataclass(frozen=True)
class ParsedTrigger:
    name: str
    g: sp.Expr  # > 0 exactly when the condition holds
    assign: tuple[tuple[str, sp.Expr], ...]


def parse_trigger(trigger: Trigger, model: Model, index: int) -> ParsedTrigger:
    """Validate a trigger against a model: names, comparison, assignable targets."""
    name = trigger.name or f"trigger{index}"
    where = f"trigger {name!r}"
    if not isinstance(trigger.when, str):
        raise ModelError(f"{where}: `when` must be a comparison string, got {trigger.when!r}")
    m = _REL.match(trigger.when.strip())
    if m is None or any(c in m.group("rhs") for c in "<>"):
        raise ModelError(
            f"{where}: `when` must be one comparison such as 'ANC < 0.5', got {trigger.when!r}"
        )
    states = model.state_names
    lhs = parse_expression(m.group("lhs"), state_names=states, where=where)
    rhs = parse_expression(m.group("rhs"), state_names=states, where=where)
    known = set(states) | set(model.inputs) | set(model.assignments) | set(model.observable_names)
    for expr in (lhs, rhs):
        unknown = sorted(symbol_names(expr) - known)
        if unknown:
            raise UnknownSymbolError(
                f"{where}: condition uses undeclared name(s) {unknown}; usable: {sorted(known)}"
            )
    g = rhs - lhs if m.group("op") in ("<", "<=") else lhs - rhs
    if not trigger.assign:
        raise ModelError(f"{where}: `assign` is empty; a trigger must change something")
    targets = set(states) | set(model.inputs)
    assign: list[tuple[str, sp.Expr]] = []
    for target, value in trigger.assign.items():
        if target not in targets:
            raise ModelError(
                f"{where}: cannot assign {target!r}; assignable: states and parameters/"
                f"covariates {sorted(targets)}"
            )
        expr = parse_expression(value, state_names=states, where=f"{where} assign {target!r}")
        unknown = sorted(symbol_names(expr) - known)
        if unknown:
            raise UnknownSymbolError(f"{where}: assign {target!r} uses undeclared {unknown}")
        assign.append((target, expr))
    return ParsedTrigger(name=name, g=g, assign=tuple(assign))


def parse_triggers(triggers: Sequence[Trigger], model: Model) -> tuple[ParsedTrigger, ...]:
    parsed = tuple(parse_trigger(t, model, k) for k, t in enumerate(triggers))
    names = [p.name for p in parsed]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ModelError(f"trigger names must be unique, repeated: {dup}")
    return parsed
