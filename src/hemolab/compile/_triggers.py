"""Code generation for state-triggered events (see ``hemolab.events._trigger``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp

from hemolab.compile._codegen import generate_function
from hemolab.compile._compiled import CompiledModel

__all__ = ["CompiledTriggers", "compile_triggers"]


@dataclass(frozen=True, eq=False)
class CompiledTriggers:
    """``g(t, y, p, z) -> (K + n_roots,)`` (> 0 where a condition holds, then the signed
    distances of the conditions' comparisons) and one action per trigger:
    ``action[k](t, y, p, z) -> (n_states + n_inputs,)``, the new state and input vectors.

    ``delay`` and ``priority`` map ``(t, y, p, z)`` to ``(K,)`` (0 where a trigger has none);
    ``assigned`` (K, n_states + n_inputs) marks the entries each action assigns.
    """

    names: tuple[str, ...]
    g: Callable[..., Any]
    actions: tuple[Callable[..., Any], ...]
    key: str
    initial_value: tuple[bool, ...] = ()
    delay: Callable[..., Any] | None = None
    priority: Callable[..., Any] | None = None
    persistent: tuple[bool, ...] = ()
    values_at_trigger: tuple[bool, ...] = ()
    assigned: Any = None  # np.ndarray (K, n_states + n_inputs) bool
    n_roots: int = 0
    scales: tuple[Callable[..., Any], ...] = ()  # per trigger, (n_states + n_inputs,) factors

    @property
    def has_delays(self) -> bool:
        return self.delay is not None

    @property
    def n(self) -> int:
        return len(self.names)


def compile_triggers(cm: CompiledModel, parsed: tuple[Any, ...]) -> CompiledTriggers:
    """Generate the condition and action functions of parsed triggers for a compiled model."""
    model = cm.model
    mp = model.parsed
    assignments = tuple(mp.assignments) + tuple(
        zip(model.observable_names, mp.observables, strict=True)
    )
    from hemolab._errors import ModelError
    from hemolab.compile._compiled import codegen_context, engine_inputs
    from hemolab.model._expr import delay_terms

    known = {(s, sp.srepr(tau)) for s, tau in mp.delays}
    for p in parsed:
        exprs = [p.g, *(e for _, e in p.assign), p.delay, p.priority]
        for e in exprs:
            for term in delay_terms(e) if e is not None else ():
                if (str(term.args[0]), sp.srepr(term.args[1])) not in known:
                    raise ModelError(
                        f"trigger {p.name!r} reads {term.args[0]} with a delay; such a trigger "
                        "must belong to the model (Model(..., triggers=[...])) so that the "
                        "state keeps its past"
                    )
    common = codegen_context(model)
    common["assignments"] = assignments
    roots = [r for p in parsed for r in p.roots]
    _, ns = generate_function("trigger_g", [p.g for p in parsed] + roots, **common)  # type: ignore[arg-type]
    actions = []
    inputs = engine_inputs(model)
    slots = list(model.state_names) + list(inputs)
    assigned = np.zeros((len(parsed), len(slots)), dtype=bool)
    for k, p in enumerate(parsed):
        for target, _ in p.assign:
            assigned[k, slots.index(target)] = True
    for k, p in enumerate(parsed):
        targets = dict(p.assign)
        outs = [targets.get(s, sp.Symbol(s, real=True)) for s in model.state_names]
        # untouched inputs keep their raw entries (hidden interpolation ones included)
        outs += [targets.get(s, sp.Symbol(f"__raw_{j}", real=True)) for j, s in enumerate(inputs)]
        fname = f"trigger_action{k}"
        _, ns_k = generate_function(fname, outs, **common)  # type: ignore[arg-type]
        actions.append(ns_k[fname])
    scales = []
    if any(p.scale for p in parsed):
        for k, p in enumerate(parsed):
            factors = dict(p.scale)
            fname = f"trigger_scale{k}"
            outs = [factors.get(s, sp.Integer(1)) for s in slots]
            _, ns_k = generate_function(fname, outs, **common)  # type: ignore[arg-type]
            scales.append(ns_k[fname])
    extra: dict[str, Callable[..., Any] | None] = {}
    for what in ("delay", "priority"):
        exprs = [getattr(p, what) for p in parsed]
        if all(e is None for e in exprs):
            extra[what] = None
            continue
        fname = f"trigger_{what}"
        filled = [sp.Integer(0) if e is None else e for e in exprs]
        _, ns_x = generate_function(fname, filled, **common)  # type: ignore[arg-type]
        extra[what] = ns_x[fname]  # type: ignore[assignment]
    key = repr(
        [
            (
                p.name,
                str(p.g),
                [(n, str(e)) for n, e in p.assign],
                p.initial_value,
                str(p.delay),
                str(p.priority),
                p.persistent,
                p.values_at_trigger,
                [str(r) for r in p.roots],
                [(n, str(e)) for n, e in p.scale],
            )
            for p in parsed
        ]
    )
    g: Callable[..., Any] = ns["trigger_g"]  # type: ignore[assignment]
    return CompiledTriggers(
        names=tuple(p.name for p in parsed),
        g=g,
        actions=tuple(actions),
        key=key,
        initial_value=tuple(p.initial_value for p in parsed),
        delay=extra["delay"],
        priority=extra["priority"],
        persistent=tuple(p.persistent for p in parsed),
        values_at_trigger=tuple(p.values_at_trigger for p in parsed),
        assigned=assigned,
        n_roots=len(roots),
        scales=tuple(scales),
    )
