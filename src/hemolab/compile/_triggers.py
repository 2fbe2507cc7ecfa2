"""Code generation for state-triggered events (see ``hemolab.events._trigger``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sympy as sp

from hemolab.compile._codegen import generate_function
from hemolab.compile._compiled import CompiledModel

__all__ = ["CompiledTriggers", "compile_triggers"]


@dataclass(frozen=True, eq=False)
class CompiledTriggers:
    """``g(t, y, p, z) -> (K,)`` (> 0 where a condition holds) and one action per trigger:
    ``action[k](t, y, p, z) -> (n_states + n_inputs,)``, the new state and input vectors."""

    names: tuple[str, ...]
    g: Callable[..., Any]
    actions: tuple[Callable[..., Any], ...]
    key: str
    initial_value: tuple[bool, ...] = ()

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
    from hemolab.compile._compiled import codegen_context, engine_inputs

    common = codegen_context(model)
    common["assignments"] = assignments
    _, ns = generate_function("trigger_g", [p.g for p in parsed], **common)  # type: ignore[arg-type]
    actions = []
    for k, p in enumerate(parsed):
        targets = dict(p.assign)
        outs = [targets.get(s, sp.Symbol(s, real=True)) for s in model.state_names]
        # untouched inputs keep their raw entries (hidden interpolation ones included)
        outs += [
            targets.get(s, sp.Symbol(f"__raw_{j}", real=True))
            for j, s in enumerate(engine_inputs(model))
        ]
        fname = f"trigger_action{k}"
        _, ns_k = generate_function(fname, outs, **common)  # type: ignore[arg-type]
        actions.append(ns_k[fname])
    key = repr(
        [(p.name, str(p.g), [(n, str(e)) for n, e in p.assign], p.initial_value) for p in parsed]
    )
    g: Callable[..., Any] = ns["trigger_g"]  # type: ignore[assignment]
    return CompiledTriggers(
        names=tuple(p.name for p in parsed),
        g=g,
        actions=tuple(actions),
        key=key,
        initial_value=tuple(p.initial_value for p in parsed),
    )
