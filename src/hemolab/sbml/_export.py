"""Writing a hemolab model as SBML Level 3 Version 2.

Every state becomes a non-constant parameter with a rate rule, every assignment and observable
an assignment rule, parameters and covariates (at their defaults) constant parameters;
expression initial values become initial assignments, delayed states ``delay(X, tau)``, and
triggers declared on the model events. Units (UCUM strings) and the citation go into a
``hemolab`` annotation, since SBML unit definitions cannot express UCUM's arbitrary powers of
ten and per-body-size units faithfully. Dosing semantics (bioavailability, lag, infusion
properties) have no SBML counterpart and are named in the annotation when present.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import sympy as sp
from sympy.printing.str import StrPrinter

from hemolab._errors import SBMLError, UnsupportedSBMLError
from hemolab.model import Model
from hemolab.model._expr import TIME, delayed

__all__ = ["to_sbml_formula", "write_sbml"]

HEMOLAB_NS = "https://hemolab.dev/sbml/1"


class _L3Printer(StrPrinter):
    """sympy → libsbml's L3 infix syntax (``^``, ``ln``, ``piecewise``, ``&&``)."""

    def _print_Pow(self, expr: Any, rational: bool = False) -> str:
        b, e = expr.args
        if e == sp.Rational(1, 2):
            return f"sqrt({self._print(b)})"
        if e == -1:
            return f"(1 / {self.parenthesize(b, 50)})"
        return f"({self.parenthesize(b, 60)})^({self._print(e)})"

    def _print_Symbol(self, expr: Any) -> str:
        return "time" if expr == TIME else expr.name

    def _print_Exp1(self, expr: Any) -> Any:  # type: ignore[override]
        return "exponentiale"

    def _print_Pi(self, expr: Any) -> Any:  # type: ignore[override]
        return "pi"

    def _print_Rational(self, expr: Any) -> str:
        return f"({expr.p} / {expr.q})"

    def _print_Float(self, expr: Any) -> str:
        return repr(float(expr))

    def _print_NaN(self, expr: Any) -> Any:  # type: ignore[override]
        return "NaN"

    def _print_Infinity(self, expr: Any) -> Any:  # type: ignore[override]
        return "INF"

    def _print_NegativeInfinity(self, expr: Any) -> Any:  # type: ignore[override]
        return "-INF"

    def _print_BooleanTrue(self, expr: Any) -> Any:  # type: ignore[override]
        return "true"

    def _print_BooleanFalse(self, expr: Any) -> Any:  # type: ignore[override]
        return "false"

    def _print_Piecewise(self, expr: Any) -> str:
        parts = []
        for value, cond in expr.args:
            if cond == sp.true:
                parts.append(self._print(value))
                break
            parts += [self._print(value), self._print(cond)]
        return f"piecewise({', '.join(parts)})"

    def _print_Relational(self, expr: Any) -> str:
        op = {"==": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}[expr.rel_op]
        return f"({self._print(expr.lhs)} {op} {self._print(expr.rhs)})"

    def _print_And(self, expr: Any) -> str:
        return "(" + " && ".join(self._print(a) for a in expr.args) + ")"

    def _print_Or(self, expr: Any) -> str:
        return "(" + " || ".join(self._print(a) for a in expr.args) + ")"

    def _print_Not(self, expr: Any) -> str:
        return f"!({self._print(expr.args[0])})"

    def _print_Function(self, expr: Any) -> str:
        name = type(expr).__name__
        args = ", ".join(self._print(a) for a in expr.args)
        if isinstance(expr, delayed):
            return f"delay({args})"
        mapped = {
            "log": "ln", "Abs": "abs", "ceiling": "ceil", "Min": "min", "Max": "max",
            "asin": "arcsin", "acos": "arccos", "atan": "arctan", "asinh": "arcsinh",
            "acosh": "arccosh", "atanh": "arctanh",
        }.get(name, name)  # fmt: skip
        if name == "log" and len(expr.args) == 2:
            return f"(ln({self._print(expr.args[0])}) / ln({self._print(expr.args[1])}))"
        if name == "gamma":
            return f"factorial({self._print(expr.args[0])} - 1)"
        return f"{mapped}({args})"

    _print_Min = _print_Function
    _print_Max = _print_Function


def to_sbml_formula(expr: Any) -> str:
    """A sympy expression in libsbml's L3 infix syntax."""
    return _L3Printer().doprint(expr)


def _math(expr: Any, where: str) -> Any:
    import libsbml as ls

    text = to_sbml_formula(expr)
    ast = ls.parseL3Formula(text)
    if ast is None:
        raise SBMLError(f"{where}: cannot write {text!r} as MathML ({ls.getLastParseL3Error()})")
    return ast


def write_sbml(model: Model, path: str | os.PathLike[str] | None = None) -> str:
    """SBML L3V2 text of ``model`` (written to ``path`` too when given).

    Raises
    ------
    UnsupportedSBMLError
        A state history that differs from its initial value (SBML's delays read the initial
        value before t = 0).
    """
    import libsbml as ls

    parsed = model.parsed
    doc = ls.SBMLDocument(3, 2)
    m = doc.createModel()
    m.setId(_sbml_id(model.name))
    m.setName(model.name)
    if model.time_unit == "s":
        m.setTimeUnits("second")

    def parameter(name: str, value: float | None, constant: bool) -> None:
        p = m.createParameter()
        p.setId(name)
        p.setConstant(constant)
        if value is not None and math.isfinite(value):
            p.setValue(float(value))

    for prm in model.parameters:
        parameter(prm.name, prm.value, True)
    for cov in model.covariates:
        parameter(cov.name, cov.default if cov.default is not None else math.nan, True)
    assigned = dict(parsed.assignments)
    for st, ddt, init, hist in zip(
        model.states, parsed.ddt, parsed.initial, parsed.history, strict=True
    ):
        number = _number(init)
        parameter(st.name, number, False)
        if number is None:
            ia = m.createInitialAssignment()
            ia.setSymbol(st.name)
            ia.setMath(_math(init, f"initial value of {st.name!r}"))
        if hist is not None and sp.simplify(hist - init) != 0:
            raise UnsupportedSBMLError(
                f"model {model.name!r}: state {st.name!r} has a history ({hist}) that differs "
                f"from its initial value ({init}); SBML delays read the initial value before t = 0"
            )
        rr = m.createRateRule()
        rr.setVariable(st.name)
        rr.setMath(_math(ddt, f"d{st.name}/dt"))
    for name, expr in [
        *assigned.items(),
        *zip(model.observable_names, parsed.observables, strict=True),
    ]:
        parameter(name, None, False)
        ar = m.createAssignmentRule()
        ar.setVariable(name)
        ar.setMath(_math(expr, f"assignment {name!r}"))
    if model.triggers:
        from hemolab.events._trigger import parse_triggers

        for trig, p in zip(
            model.triggers, parse_triggers(list(model.triggers), model), strict=True
        ):
            ev = m.createEvent()
            ev.setId(p.name)
            ev.setUseValuesFromTriggerTime(bool(p.values_at_trigger))
            t = ev.createTrigger()
            t.setInitialValue(bool(trig.initial_value))
            t.setPersistent(bool(p.persistent))
            t.setMath(_math(p.g > 0, f"trigger {p.name!r}"))
            if p.delay is not None:
                ev.createDelay().setMath(_math(p.delay, f"trigger {p.name!r} delay"))
            if p.priority is not None:
                ev.createPriority().setMath(_math(p.priority, f"trigger {p.name!r} priority"))
            factors = dict(p.scale)
            if factors and p.delay is not None and p.values_at_trigger:
                raise SBMLError(
                    f"trigger {p.name!r}: a delayed assignment computed when it triggers but "
                    "scaled when it acts has no SBML form"
                )
            for target, value in p.assign:
                ea = ev.createEventAssignment()
                ea.setVariable(target)
                if target in factors:
                    value = value * factors[target]
                ea.setMath(_math(value, f"trigger {p.name!r} assignment {target!r}"))
                if target in model.parameter_names + model.covariate_names:
                    m.getParameter(target).setConstant(False)
    m.setAnnotation(_annotation(model))
    text = ls.writeSBMLToString(doc)
    check = ls.readSBMLFromString(text)
    check.setConsistencyChecks(ls.LIBSBML_CAT_UNITS_CONSISTENCY, False)
    check.setConsistencyChecks(ls.LIBSBML_CAT_MODELING_PRACTICE, False)
    check.checkConsistency()
    errors = [
        check.getError(i).getMessage().strip()
        for i in range(check.getNumErrors())
        if check.getError(i).getSeverity() >= ls.LIBSBML_SEV_ERROR
    ]
    if errors:
        raise SBMLError(f"model {model.name!r}: the SBML written is invalid: {errors[0]}")
    if path is not None:
        Path(path).write_text(text)
    return text


def _annotation(model: Model) -> str:
    units = [(s.name, s.unit) for s in model.states]
    units += [(p.name, p.unit) for p in model.parameters]
    units += [(c.name, c.unit) for c in model.covariates]
    units += [(o.name, o.unit) for o in model.observables]
    items = "".join(f"<hemolab:unit id={quoteattr(n)} ucum={quoteattr(u)}/>" for n, u in units if u)
    dosing = [
        s.name
        for s in model.states
        if any(
            x is not None for x in (s.bioavailability, s.lag, s.infusion_rate, s.infusion_duration)
        )
    ]
    extra = f"<hemolab:dosing states={quoteattr(' '.join(dosing))}/>" if dosing else ""
    return (
        f"<annotation><hemolab:model xmlns:hemolab={quoteattr(HEMOLAB_NS)} "
        f"timeUnit={quoteattr(model.time_unit)}>"
        f"<hemolab:citation>{escape(model.citation)}</hemolab:citation>{items}{extra}"
        "</hemolab:model></annotation>"
    )


def _number(e: Any) -> float | None:
    try:
        return float(e)
    except (TypeError, ValueError):
        return None


def _sbml_id(name: str) -> str:
    out = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    return out if out and not out[0].isdigit() else f"m_{out}"
