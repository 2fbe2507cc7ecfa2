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
        assignments, parameters, covariates and ``t``; or a sympy condition (a relation, or
        ``And``/``Or``/``Not`` of relations, as SBML triggers are).
    assign
        ``name → expression``: parameters, covariates or states to change when it fires
        (right-hand sides are evaluated with the values just before the change).
    name
        Label used in results (default ``trigger<k>``).
    initial_value
        Whether the condition counts as true just before the start (SBML ``initialValue``):
        with ``True`` (the default) a condition that already holds at the start fires only
        after it turned false and true again; with ``False`` it fires at the start.
    delay
        Time from the condition turning true to the assignments (an expression evaluated
        when it turns true; must be >= 0). ``None``: at once.
    priority
        Among triggers due at the same time, the one with the highest priority (an
        expression evaluated when they are due) acts first; ties go to the earliest one
        triggered. After each trigger acts, all conditions are evaluated again.
    persistent
        With ``False``, a delayed trigger whose condition turns false before it is due is
        cancelled (SBML ``persistent``).
    values_at_trigger
        Whether the assigned values are computed when the condition turns true (the
        default) or when the trigger acts (SBML ``useValuesFromTriggerTime``).
    scale
        ``name → factor`` multiplying an assigned value, always evaluated when the trigger
        acts: an SBML species concentration assigned by a delayed event becomes an amount
        with its compartment's size at that moment.

    Examples
    --------
    >>> Trigger("ANC < 0.5", {"hold": 1})
    Trigger(when='ANC < 0.5', assign={'hold': 1}, name='')
    """

    when: str | sp.Basic
    assign: Mapping[str, str | float | int | sp.Basic] = field(default_factory=dict)
    name: str = ""
    initial_value: bool = True
    delay: str | float | sp.Basic | None = None
    priority: str | float | sp.Basic | None = None
    persistent: bool = True
    values_at_trigger: bool = True
    scale: Mapping[str, str | float | int | sp.Basic] = field(default_factory=dict)


@dataclass(frozen=True)
class ParsedTrigger:
    name: str
    g: sp.Expr  # > 0 exactly when the condition holds
    assign: tuple[tuple[str, sp.Expr], ...]
    initial_value: bool = True
    delay: sp.Expr | None = None
    priority: sp.Expr | None = None
    persistent: bool = True
    values_at_trigger: bool = True
    # signed distances of the condition's comparisons: the condition can change only where
    # one of them changes sign, so steps stop there (a window condition is never jumped over)
    roots: tuple[sp.Expr, ...] = ()
    scale: tuple[tuple[str, sp.Expr], ...] = ()


def parse_trigger(trigger: Trigger, model: Model, index: int) -> ParsedTrigger:
    """Validate a trigger against a model: names, comparison, assignable targets."""
    name = trigger.name or f"trigger{index}"
    where = f"trigger {name!r}"
    states = model.state_names
    known = set(states) | set(model.inputs) | set(model.assignments) | set(model.observable_names)
    if isinstance(trigger.when, sp.Basic):
        cond = trigger.when
        unknown = sorted(symbol_names(cond) - known)
        if unknown:
            raise UnknownSymbolError(
                f"{where}: condition uses undeclared name(s) {unknown}; usable: {sorted(known)}"
            )
        # strict relations: the signed distance (g > 0 exactly when true); non-strict ones
        # and compound conditions: +1/-1, so that equality counts as true (SBML's t >= 0)
        if isinstance(cond, sp.StrictLessThan):
            g = cond.rhs - cond.lhs  # type: ignore[attr-defined]
            roots = (g,)
        elif isinstance(cond, sp.StrictGreaterThan):
            g = cond.lhs - cond.rhs  # type: ignore[attr-defined]
            roots = (g,)
        elif isinstance(cond, sp.logic.boolalg.Boolean):
            g = sp.Piecewise((sp.Integer(1), cond), (sp.Integer(-1), True))
            relations = sorted(cond.atoms(sp.core.relational.Relational), key=sp.default_sort_key)
            roots = tuple(
                d
                for d in (rel.lhs - rel.rhs for rel in relations)  # type: ignore[attr-defined]
                if not d.is_number
            )
        else:
            raise ModelError(f"{where}: `when` must be a condition, got {cond!r}")
    elif not isinstance(trigger.when, str):
        raise ModelError(f"{where}: `when` must be a comparison string, got {trigger.when!r}")
    else:
        m = _REL.match(trigger.when.strip())
        if m is None or any(c in m.group("rhs") for c in "<>"):
            raise ModelError(
                f"{where}: `when` must be one comparison such as 'ANC < 0.5', got {trigger.when!r}"
            )
        lhs = parse_expression(m.group("lhs"), state_names=states, where=where)
        rhs = parse_expression(m.group("rhs"), state_names=states, where=where)
        for expr in (lhs, rhs):
            unknown = sorted(symbol_names(expr) - known)
            if unknown:
                raise UnknownSymbolError(
                    f"{where}: condition uses undeclared name(s) {unknown}; usable: {sorted(known)}"
                )
        g = rhs - lhs if m.group("op") in ("<", "<=") else lhs - rhs
        roots = (g,)
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
    scale: list[tuple[str, sp.Expr]] = []
    for target, factor in trigger.scale.items():
        if target not in trigger.assign:
            raise ModelError(f"{where}: scale for {target!r}, which the trigger does not assign")
        expr = parse_expression(factor, state_names=states, where=f"{where} scale {target!r}")
        unknown = sorted(symbol_names(expr) - known)
        if unknown:
            raise UnknownSymbolError(f"{where}: scale of {target!r} uses undeclared {unknown}")
        scale.append((target, expr))
    extra: dict[str, sp.Expr | None] = {}
    for what in ("delay", "priority"):
        value = getattr(trigger, what)
        if value is None:
            extra[what] = None
            continue
        expr = parse_expression(value, state_names=states, where=f"{where} {what}")
        unknown = sorted(symbol_names(expr) - known)
        if unknown:
            raise UnknownSymbolError(f"{where}: {what} uses undeclared {unknown}")
        if what == "delay" and expr.is_number and float(expr) < 0:  # type: ignore[arg-type]
            raise ModelError(f"{where}: delay must be >= 0, got {value!r}")
        extra[what] = expr
    return ParsedTrigger(
        name=name,
        g=g,
        assign=tuple(assign),
        initial_value=bool(trigger.initial_value),
        delay=extra["delay"],
        priority=extra["priority"],
        persistent=bool(trigger.persistent),
        values_at_trigger=bool(trigger.values_at_trigger),
        roots=roots,
        scale=tuple(scale),
    )


def parse_triggers(triggers: Sequence[Trigger], model: Model) -> tuple[ParsedTrigger, ...]:
    parsed = tuple(parse_trigger(t, model, k) for k, t in enumerate(triggers))
    names = [p.name for p in parsed]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ModelError(f"trigger names must be unique, repeated: {dup}")
    return parsed
