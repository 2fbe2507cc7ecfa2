"""Parsing of model expressions into sympy, with delayed states.

Model equations are written as strings in a small Python-like language (``+ - * / **``,
``exp``, ``log``, ``sqrt``, ``min``, ``max``, ``piecewise``…). A state read in the past is
written ``X(t - tau)``; the parser rewrites it to ``delayed(X, tau)`` so that the rest of
hemolab sees one sympy ``Function`` for every delay term. Strings, not Python callables, are
the model language because hemolab must inspect equations: to validate names and units at
definition time, to export SBML, and to derive closed-form PK and log-transformed states.
"""

from __future__ import annotations

import re
import tokenize
from collections.abc import Iterable

import sympy as sp
from sympy.parsing.sympy_parser import (
    convert_xor,
    parse_expr,
    standard_transformations,
)

from hemolab._errors import ModelError

__all__ = ["DELAYED", "TIME", "delay_terms", "parse_expression", "symbol_names"]

TIME = sp.Symbol("t", real=True)


class delayed(sp.Function):
    """``delayed(X, tau)``: the value of state ``X`` at ``t - tau``."""

    nargs = 2


DELAYED = delayed

_FUNCTIONS: dict[str, object] = {
    "exp": sp.exp,
    "log": sp.log,
    "ln": sp.log,
    "log10": lambda x: sp.log(x, 10),
    "sqrt": sp.sqrt,
    "abs": sp.Abs,
    "min": sp.Min,
    "max": sp.Max,
    "sin": sp.sin,
    "cos": sp.cos,
    "tanh": sp.tanh,
    "piecewise": lambda *a: _piecewise(*a),
    "delayed": delayed,
    "pi": sp.pi,
    "E": sp.E,
}
_RESERVED = frozenset({*_FUNCTIONS, "t", "time"})


def _piecewise(*args: sp.Basic) -> sp.Basic:
    """``piecewise(v1, cond1, v2, cond2, ..., otherwise)`` (SBML's argument order)."""
    pairs = []
    items = list(args)
    while len(items) >= 2:
        value, cond = items.pop(0), items.pop(0)
        pairs.append((value, cond))
    if items:
        pairs.append((items[0], True))
    return sp.Piecewise(*pairs)


def _rewrite_delays(text: str, state_names: Iterable[str], where: str) -> str:
    """Rewrite ``X(t - tau)`` to ``delayed(X, tau)`` for every state ``X``."""
    names = set(state_names)
    out: list[str] = []
    i = 0
    for m in re.finditer(r"\b([A-Za-z_]\w*)\s*\(", text):
        name = m.group(1)
        if name not in names or m.start() < i:
            continue
        # find the matching parenthesis
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"(": 1, ")": -1}.get(text[j], 0)
            j += 1
        if depth:
            raise ModelError(f"{where}: unbalanced parenthesis after {name!r} in {text!r}")
        arg = text[m.end() : j - 1]
        am = re.fullmatch(r"\s*t\s*-\s*(.+?)\s*", arg, flags=re.S)
        if am is None:
            raise ModelError(
                f"{where}: state {name!r} is called as a function with argument {arg!r}; "
                f"a delayed state must be written {name}(t - tau)"
            )
        out.append(text[i : m.start()])
        # tau = t - (argument): ``X(t - a - b)`` is a delay of a + b, not of (a - b)
        out.append(f"delayed({name}, (t - ({arg})))")
        i = j
    out.append(text[i:])
    return "".join(out)


def parse_expression(
    text: str | float | int | sp.Basic, *, state_names: Iterable[str] = (), where: str
) -> sp.Expr:
    """Parse one model expression.

    Parameters
    ----------
    text
        The expression (a string, a number or an already-built sympy expression).
    state_names
        States that may be read in the past as ``X(t - tau)``.
    where
        The model element being parsed, used in error messages (e.g. ``"state 'Prol'"``).

    Raises
    ------
    ModelError
        If the text is not a valid expression.
    """
    if isinstance(text, bool):
        raise ModelError(f"{where}: expected an expression or a number, got a bool {text!r}")
    if isinstance(text, int | float):
        return sp.Float(text) if isinstance(text, float) else sp.Integer(text)
    if isinstance(text, sp.Basic):
        return text  # type: ignore[return-value]
    if not isinstance(text, str) or not text.strip():
        raise ModelError(f"{where}: expected a non-empty expression string, got {text!r}")
    rewritten = _rewrite_delays(text, state_names, where)
    local: dict[str, object] = dict(_FUNCTIONS)
    local["t"] = TIME
    local["time"] = TIME
    for name in set(re.findall(r"\b[A-Za-z_]\w*\b", rewritten)) - set(local):
        local[name] = sp.Symbol(name, real=True)
    try:
        expr = parse_expr(
            rewritten,
            local_dict=local,
            transformations=(*standard_transformations, convert_xor),
            evaluate=True,
        )
    except (
        SyntaxError,
        TypeError,
        ValueError,
        AttributeError,
        tokenize.TokenError,
        sp.SympifyError,
    ) as exc:
        raise ModelError(f"{where}: cannot parse {text!r}: {exc}") from None
    if not isinstance(expr, sp.Basic) or isinstance(expr, sp.logic.boolalg.BooleanAtom):
        raise ModelError(f"{where}: {text!r} is not a numeric expression")
    for term in expr.atoms(delayed):
        if TIME in term.args[1].free_symbols:
            raise ModelError(
                f"{where}: the delay of {term.args[0]} in {text!r} depends on time "
                f"(tau = {term.args[1]}); write a delayed state as X(t - tau) with tau free of t"
            )
    return expr  # type: ignore[return-value]


def symbol_names(expr: sp.Basic) -> set[str]:
    """Names of the free symbols of ``expr`` (time excluded)."""
    return {s.name for s in expr.free_symbols if s != TIME}  # type: ignore[attr-defined]


def delay_terms(expr: sp.Basic) -> set[sp.Basic]:
    """All ``delayed(X, tau)`` sub-expressions of ``expr``."""
    return set(expr.atoms(delayed))


def is_reserved(name: str) -> bool:
    """Whether ``name`` is a function or time name that models may not declare."""
    return name in _RESERVED
