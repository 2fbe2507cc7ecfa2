"""The right-hand side in solver coordinates, derived symbolically (design note 012).

The solver integrates a positive state ``y`` as ``u = log(y)``, so it needs
``du/dt = f(y)/y``. Evaluated literally that is one ``exp`` per state, the model's powers
(``(Circ0/Circ)**gamma`` is ``exp(gamma*log(Circ0/Circ))``) and one division per state, at
every stage of every step. Written in ``u`` and simplified, most of that cancels:
``ktr*(T1 - T2)/T2`` becomes ``ktr*exp(u_T1 - u_T2) - ktr`` and the feedback power becomes
``exp(-gamma*u_Circ)`` times a parameter term (measured on P1: 1.8x faster per step).

States solved in closed form between events (``CompiledModel.linear_states``) enter as their
natural values and get a zero derivative (the solver overwrites them exactly).

The rewrite is attempted for ODE models only and given up (``None``: the solver then divides
numerically) when an expression grows out of proportion or sympy fails on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import sympy as sp

from hemolab.model._expr import delay_terms
from hemolab.model._model import Model

__all__ = ["MAX_OPS", "solver_rhs"]

MAX_OPS = 4000  # total operations of the inlined right-hand side beyond which we do not try
_GROWTH = 3  # a simplified expression may be at most this many times the literal one (+10)


def _simplified(expr: sp.Expr) -> sp.Expr:
    """Products of exponentials merged, powers of exponentials taken apart, sums expanded."""
    e = sp.expand_power_base(expr, force=True)
    e = sp.powdenest(e, force=True)
    e = sp.expand(e, deep=False, power_base=False, log=False, multinomial=False)
    return sp.powsimp(e, combine="exp")


def solver_rhs(
    model: Model, linear_states: Sequence[int]
) -> tuple[list[tuple[str, sp.Expr]], list[sp.Expr], list[str]] | None:
    """``(assignments, outputs, argument names)`` of ``du/dt`` in solver coordinates.

    The generated function's state vector is ``[u_0 .. u_{n-1}, x_0 .. x_{L-1}]``: solver
    coordinates of every state (``log`` for positive ones) followed by the natural values of
    the closed-form states; ``argument names`` names those entries. Returns ``None`` when the
    model has delays or the rewrite is not worth it (see the module docstring).
    """
    if model.has_delays:
        return None
    parsed = model.parsed
    n = len(model.states)
    lin = list(linear_states)
    u_names = [f"__u{i}" for i in range(n)]
    x_names = [f"__x{k}" for k in range(len(lin))]
    u_sym = [sp.Symbol(s, real=True) for s in u_names]
    x_sym = [sp.Symbol(s, real=True) for s in x_names]
    subs: dict[sp.Basic, sp.Basic] = {}
    for i, state in enumerate(model.states):
        y = sp.Symbol(state.name, real=True)
        if i in lin:
            subs[y] = x_sym[lin.index(i)]
        elif state.positive:
            subs[y] = sp.exp(u_sym[i])
        else:
            subs[y] = u_sym[i]
    try:
        inlined: dict[sp.Basic, sp.Basic] = {}
        for name, expr in parsed.assignments:  # dependency order
            inlined[sp.Symbol(name, real=True)] = expr.xreplace(inlined)
        ddt = [e.xreplace(inlined) for e in parsed.ddt]
        if sum(sp.count_ops(e) for e in ddt) > MAX_OPS or any(delay_terms(e) for e in ddt):
            return None
        outputs: list[sp.Expr] = []
        for i, (state, expr) in enumerate(zip(model.states, ddt, strict=True)):
            if i in lin:
                outputs.append(sp.Integer(0))
                continue
            literal = expr.xreplace(subs)
            if state.positive:
                literal = literal * sp.exp(-u_sym[i])
            simple = _simplified(literal)
            if sp.count_ops(simple) > _GROWTH * sp.count_ops(literal) + 10:
                simple = literal
            outputs.append(simple)
        replacements, reduced = sp.cse(outputs, symbols=sp.numbered_symbols("__cse", real=True))
    except (TypeError, ValueError, AttributeError, RecursionError, NotImplementedError):
        return None
    assignments = [(str(s), e) for s, e in replacements]
    return assignments, cast(list[sp.Expr], list(reduced)), [*u_names, *x_names]
