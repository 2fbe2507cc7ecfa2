"""Detection of a model's linear, constant-coefficient subsystem (typically its PK).

States whose right-hand side is ``K·x`` over themselves only, with ``K`` a function of
parameters and covariates (no time, no other states, no constant term), can be solved in
closed form between events — NONMEM's ADVAN1–4 idea, derived from any model instead of
chosen from a menu. The solver then integrates only the rest (BENCHMARKS.md: a fast PK
eigenvalue caps explicit steps long after the drug is gone; closed-form PK cut P1's steps
from ~1,600 to ~300 per patient).
"""

from __future__ import annotations

import sympy as sp

from hemolab.model._expr import TIME, delay_terms
from hemolab.model._model import Model

__all__ = ["MAX_LINEAR_STATES", "linear_subsystem"]

MAX_LINEAR_STATES = 8  # the closed form costs a matrix exponential per evaluation


def linear_subsystem(model: Model) -> tuple[tuple[int, ...], tuple[sp.Expr, ...]]:
    """State indices of the largest closed linear subsystem and its matrix (row-major).

    Positive (log-solved) states, states of delay models and subsystems larger than
    :data:`MAX_LINEAR_STATES` are left to the numerical solver.
    """
    if model.has_delays:
        return (), ()
    parsed = model.parsed
    syms = [sp.Symbol(s, real=True) for s in model.state_names]
    subs: dict[sp.Basic, sp.Basic] = {}
    for name, expr in parsed.assignments:  # inline assignments, in dependency order
        subs[sp.Symbol(name, real=True)] = expr.xreplace(subs)
    ddt = [e.xreplace(subs) for e in parsed.ddt]
    zero = dict.fromkeys(syms, 0)
    candidates = set()
    for i, (state, expr) in enumerate(zip(model.states, ddt, strict=True)):
        if state.positive or expr.has(TIME) or delay_terms(expr):
            continue
        jac = [sp.diff(expr, x) for x in syms]
        if any(any(d.has(x) for x in syms) or d.has(TIME) for d in jac):
            continue  # not linear with constant coefficients
        if sp.simplify(expr.xreplace(zero)) != 0:
            continue  # a constant production term
        candidates.add(i)
    while True:  # drop states fed by states outside the set
        keep = {
            i
            for i in candidates
            if all(sp.diff(ddt[i], syms[j]) == 0 for j in range(len(syms)) if j not in candidates)
        }
        if keep == candidates:
            break
        candidates = keep
    idx = tuple(sorted(candidates))
    if not idx or len(idx) > MAX_LINEAR_STATES:
        return (), ()
    matrix = tuple(sp.diff(ddt[i], syms[j]) for i in idx for j in idx)
    return idx, matrix
