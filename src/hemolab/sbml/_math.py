"""SBML MathML (libsbml ASTNode) to sympy, with hemolab's time symbol and delayed states.

Walking the AST, rather than printing it to infix text and parsing that again, keeps every
operator's SBML meaning (``log`` with a base, ``root`` with a degree, n-ary relations,
``piecewise`` with an ``otherwise``) and names every element by its id.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import sympy as sp

from hemolab._errors import SBMLError, UnsupportedSBMLError
from hemolab.model._expr import TIME

__all__ = ["AVOGADRO", "MathContext", "to_sympy"]

AVOGADRO = 6.02214179e23
"""The value the SBML L3 specifications give the ``avogadro`` csymbol (CODATA 2006; the SBML
Test Suite's expected results use it, not the 2019 SI value 6.02214076e23)."""


class MathContext:
    """How names in SBML math map to sympy: ``symbol(id)`` and ``delay(expr, tau)``."""

    def __init__(
        self,
        symbols: Mapping[str, Any],
        delay: Callable[[Any, Any], Any] | None = None,
        where: str = "",
    ):
        self.symbols = symbols
        self.delay = delay
        self.where = where


def to_sympy(ast: Any, ctx: MathContext) -> Any:
    """The sympy expression of a libsbml ``ASTNode`` (function definitions already expanded)."""
    import libsbml as ls

    if ast is None:
        raise SBMLError(f"{ctx.where}: missing math")
    t = ast.getType()
    kids = [ast.getChild(i) for i in range(ast.getNumChildren())]

    def args() -> list[Any]:
        return [to_sympy(k, ctx) for k in kids]

    def numbers() -> list[Any]:
        """Arguments of arithmetic: a boolean counts as 1 or 0 (SBML allows both)."""
        return [_as_number(x) for x in args()]

    if t == ls.AST_INTEGER:
        return sp.Integer(ast.getInteger())
    if t in (ls.AST_REAL, ls.AST_REAL_E):
        v = ast.getReal()
        if v != v:
            return sp.nan
        if v in (float("inf"), float("-inf")):
            return sp.oo if v > 0 else -sp.oo
        return sp.Float(v)
    if t == ls.AST_RATIONAL:
        return sp.Rational(ast.getNumerator(), ast.getDenominator())
    if t == ls.AST_NAME:
        name = ast.getName()
        if name not in ctx.symbols:
            raise SBMLError(f"{ctx.where}: unknown identifier {name!r} in math")
        return ctx.symbols[name]
    if t == ls.AST_NAME_TIME:
        return TIME
    if t == ls.AST_NAME_AVOGADRO:
        return sp.Float(AVOGADRO)
    if t == ls.AST_CONSTANT_PI:
        return sp.pi
    if t == ls.AST_CONSTANT_E:
        return sp.E
    if t == ls.AST_CONSTANT_TRUE:
        return sp.true
    if t == ls.AST_CONSTANT_FALSE:
        return sp.false
    if t == ls.AST_PLUS:
        return sp.Add(*numbers()) if kids else sp.Integer(0)
    if t == ls.AST_TIMES:
        return sp.Mul(*numbers()) if kids else sp.Integer(1)
    if t == ls.AST_MINUS:
        a = numbers()
        return -a[0] if len(a) == 1 else a[0] - a[1]
    if t == ls.AST_DIVIDE:
        a, b = numbers()
        return a / b
    if t in (ls.AST_POWER, ls.AST_FUNCTION_POWER):
        a, b = numbers()
        return sp.Pow(a, b)
    if t == ls.AST_FUNCTION_DELAY:
        if ctx.delay is None:
            raise UnsupportedSBMLError(f"{ctx.where}: delay() is not allowed here")
        a, b = numbers()
        return ctx.delay(a, b)
    if t == ls.AST_FUNCTION_PIECEWISE:
        a = args()
        pairs = [(a[i], _as_bool(a[i + 1], ctx)) for i in range(0, len(a) - 1, 2)]
        values = [v for v, _ in pairs] + ([a[-1]] if len(a) % 2 else [])
        if values and all(v in (sp.true, sp.false) or _is_condition(v) for v in values):
            # a boolean-valued piecewise is a condition: (c1 and v1) or (not c1 and ...)
            result: Any = a[-1] if len(a) % 2 else sp.false
            for value, cond in reversed(pairs):
                result = sp.Or(sp.And(cond, value), sp.And(sp.Not(cond), result))
            return result
        if len(a) % 2:
            pairs.append((a[-1], sp.true))
        else:  # SBML: undefined when no piece applies; NaN makes that visible
            pairs.append((sp.nan, sp.true))
        return sp.Piecewise(*pairs)
    if t in _RELATIONAL:
        a = numbers()
        op = _RELATIONAL[t]
        if len(a) < 2:
            return sp.true
        return sp.And(*[op(a[i], a[i + 1]) for i in range(len(a) - 1)])
    if t == ls.AST_LOGICAL_AND:
        return sp.And(*[_as_bool(x, ctx) for x in args()]) if kids else sp.true
    if t == ls.AST_LOGICAL_OR:
        return sp.Or(*[_as_bool(x, ctx) for x in args()]) if kids else sp.false
    if t == ls.AST_LOGICAL_XOR:
        return sp.Xor(*[_as_bool(x, ctx) for x in args()]) if kids else sp.false
    if t == getattr(ls, "AST_LOGICAL_IMPLIES", -999):
        a, b = args()
        return sp.Or(sp.Not(_as_bool(a, ctx)), _as_bool(b, ctx))
    if t == ls.AST_LOGICAL_NOT:
        (a,) = args()
        return sp.Not(_as_bool(a, ctx))
    if t == ls.AST_FUNCTION_ROOT:
        a = args()
        if len(a) == 1:
            return sp.sqrt(a[0])
        return sp.Pow(a[1], 1 / a[0])
    if t == ls.AST_FUNCTION_LOG:
        a = args()
        if len(a) == 1:
            return sp.log(a[0], 10)
        return sp.log(a[1]) / sp.log(a[0])
    if t in _UNARY:
        (a,) = numbers()
        return _UNARY[t](a)
    if t in (ls.AST_FUNCTION_MAX, ls.AST_FUNCTION_MIN):
        a = numbers()
        return (sp.Max if t == ls.AST_FUNCTION_MAX else sp.Min)(*a)
    if t == ls.AST_FUNCTION_REM:
        a, b = args()  # the sign of the dividend, like C's fmod
        q = a / b
        return a - b * sp.Piecewise((sp.floor(q), q >= 0), (sp.ceiling(q), True))
    if t == ls.AST_FUNCTION_QUOTIENT:
        a, b = args()
        q = a / b
        return sp.Piecewise((sp.floor(q), q >= 0), (sp.ceiling(q), True))
    if t == ls.AST_FUNCTION_RATE_OF:
        raise UnsupportedSBMLError(f"{ctx.where}: the rateOf csymbol is not supported")
    if t == ls.AST_FUNCTION:
        raise SBMLError(f"{ctx.where}: call of undefined function {ast.getName()!r}")
    if t == ls.AST_LAMBDA:
        raise SBMLError(f"{ctx.where}: a lambda outside a function definition")
    raise UnsupportedSBMLError(
        f"{ctx.where}: MathML element {ls.formulaToL3String(ast)!r} (type {t}) is not supported"
    )


def _as_number(x: Any) -> Any:
    """A boolean as 1 or 0; anything else unchanged."""
    if x is sp.true or x is sp.false:
        return sp.Integer(1 if x is sp.true else 0)
    if _is_condition(x):
        return sp.Piecewise((sp.Integer(1), x), (sp.Integer(0), True))
    return x


def _is_condition(x: Any) -> bool:
    """Boolean-valued (a relation or a logical function); sympy Symbols are Booleans to sympy
    but numbers here."""
    from sympy.logic.boolalg import BooleanAtom, BooleanFunction

    return isinstance(x, BooleanFunction | BooleanAtom) or bool(getattr(x, "is_Relational", False))


def _as_bool(x: Any, ctx: MathContext) -> Any:
    """A condition: booleans as they are, numbers as ``x != 0`` (SBML allows both)."""
    if _is_condition(x):
        return x
    return sp.Ne(x, 0)


def _build_tables() -> tuple[dict[int, Any], dict[int, Any]]:
    import libsbml as ls

    relational = {
        ls.AST_RELATIONAL_EQ: sp.Eq,
        ls.AST_RELATIONAL_NEQ: sp.Ne,
        ls.AST_RELATIONAL_LT: sp.Lt,
        ls.AST_RELATIONAL_GT: sp.Gt,
        ls.AST_RELATIONAL_LEQ: sp.Le,
        ls.AST_RELATIONAL_GEQ: sp.Ge,
    }
    unary = {
        ls.AST_FUNCTION_ABS: sp.Abs,
        ls.AST_FUNCTION_EXP: sp.exp,
        ls.AST_FUNCTION_LN: sp.log,
        ls.AST_FUNCTION_FLOOR: sp.floor,
        ls.AST_FUNCTION_CEILING: sp.ceiling,
        ls.AST_FUNCTION_SIN: sp.sin,
        ls.AST_FUNCTION_COS: sp.cos,
        ls.AST_FUNCTION_TAN: sp.tan,
        ls.AST_FUNCTION_SEC: sp.sec,
        ls.AST_FUNCTION_CSC: sp.csc,
        ls.AST_FUNCTION_COT: sp.cot,
        ls.AST_FUNCTION_SINH: sp.sinh,
        ls.AST_FUNCTION_COSH: sp.cosh,
        ls.AST_FUNCTION_TANH: sp.tanh,
        ls.AST_FUNCTION_SECH: sp.sech,
        ls.AST_FUNCTION_CSCH: sp.csch,
        ls.AST_FUNCTION_COTH: sp.coth,
        ls.AST_FUNCTION_ARCSIN: sp.asin,
        ls.AST_FUNCTION_ARCCOS: sp.acos,
        ls.AST_FUNCTION_ARCTAN: sp.atan,
        ls.AST_FUNCTION_ARCSEC: sp.asec,
        ls.AST_FUNCTION_ARCCSC: sp.acsc,
        ls.AST_FUNCTION_ARCCOT: sp.acot,
        ls.AST_FUNCTION_ARCSINH: sp.asinh,
        ls.AST_FUNCTION_ARCCOSH: sp.acosh,
        ls.AST_FUNCTION_ARCTANH: sp.atanh,
        ls.AST_FUNCTION_ARCSECH: sp.asech,
        ls.AST_FUNCTION_ARCCSCH: sp.acsch,
        ls.AST_FUNCTION_ARCCOTH: sp.acoth,
        ls.AST_FUNCTION_FACTORIAL: lambda x: sp.gamma(x + 1),
    }
    return relational, unary


_RELATIONAL, _UNARY = _build_tables()
