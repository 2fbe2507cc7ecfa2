"""Reading SBML into a hemolab :class:`~hemolab.Model`.

The mapping (design note 007):

* a species is a state holding its **amount**; in math its id means its concentration
  (``amount / compartment``) unless ``hasOnlySubstanceUnits``; reactions add
  ``stoichiometry × kinetic law`` (× conversion factor) to the amount;
* parameters, compartments and species references that change (rate rule, initial
  assignment) are states, constant ones hemolab parameters; assignment rules are hemolab
  assignments;
* initial values (including initial assignments that read other initial values) are resolved
  symbolically to expressions of the parameters, so ``--param`` changes propagate;
* ``delay(expr, tau)`` becomes hemolab's delayed states, with the initial values as the
  constant past.

Results name variables by SBML id: a species is reported through an observable of its id
(its concentration, or amount with ``hasOnlySubstanceUnits``) unless it is itself the state.
"""

from __future__ import annotations

import keyword
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sympy as sp

from hemolab._errors import SBMLError, UnsupportedSBMLError
from hemolab.model import Model, Observable, Parameter, State
from hemolab.model._expr import TIME, delayed, is_reserved
from hemolab.sbml._math import MathContext, _as_number, _is_condition, to_sympy

__all__ = ["SBMLImport", "import_sbml", "read_sbml"]


@dataclass(frozen=True)
class SBMLVariable:
    """How one SBML id lives in the hemolab model."""

    sbml_id: str
    kind: str  # "species", "compartment", "parameter", "speciesReference"
    role: str  # "state", "parameter", "assignment"
    name: str  # the hemolab state/parameter/assignment holding it (species: the amount)
    has_only_substance_units: bool = True
    compartment: str | None = None  # species only


@dataclass(frozen=True)
class SBMLImport:
    """A hemolab model read from SBML, with the map from SBML ids to its variables."""

    model: Model
    variables: Mapping[str, SBMLVariable]
    source: str = ""
    symbols: Mapping[str, Any] = field(default_factory=dict)

    def expression(self, sbml_id: str, quantity: str | None = None) -> Any:
        """The value of ``sbml_id`` in hemolab symbols; species as ``"amount"`` or
        ``"concentration"`` (default: the SBML meaning of the id in math)."""
        var = self.variables[sbml_id]
        sym = self.symbols[sbml_id]
        if var.kind != "species" or quantity is None:
            return sym
        comp = self.symbols[var.compartment or ""]
        if var.has_only_substance_units:
            return sym if quantity == "amount" else sym / comp
        return sym * comp if quantity == "amount" else sym


def read_sbml(source: str | os.PathLike[str]) -> Model:
    """A hemolab model from an SBML file or string (any level and version libsbml reads).

    Raises
    ------
    SBMLError
        Malformed XML or an inconsistent model: the message names the element and line.
    UnsupportedSBMLError
        Valid SBML that hemolab does not simulate (algebraic rules, fast reactions, events for
        now, packages), naming the element.
    """
    return import_sbml(source).model


def import_sbml(source: str | os.PathLike[str]) -> SBMLImport:
    """Like :func:`read_sbml`, with the map from SBML ids to the model's variables."""
    doc, label = _read_document(source)
    return _Builder(doc.getModel(), label).build()


def _read_document(source: str | os.PathLike[str]) -> tuple[Any, str]:
    import libsbml as ls

    text = str(source)
    # a string is a document when it looks like XML text, a path otherwise
    if isinstance(source, str) and ("<" in source or "\n" in source or len(source) > 4096):
        doc, label = ls.readSBMLFromString(source), "SBML string"
    else:
        path = Path(source)
        try:
            exists = path.is_file()
        except OSError:  # a name the file system refuses (too long, ...)
            exists = False
        if not exists:
            raise SBMLError(f"SBML file {text[:200]!r} does not exist")
        doc, label = ls.readSBMLFromFile(str(path)), str(path)
    _raise_errors(doc, label)
    if doc.getModel() is None:
        raise SBMLError(f"{label}: the document has no <model>")
    for i in range(doc.getNumPlugins()):
        pkg = doc.getPlugin(i).getPackageName()
        if doc.isPackageEnabled(pkg) and pkg not in _HARMLESS_PACKAGES:
            raise UnsupportedSBMLError(f"{label}: SBML package {pkg!r} is not supported")
    for check in (
        ls.LIBSBML_CAT_UNITS_CONSISTENCY,
        ls.LIBSBML_CAT_MODELING_PRACTICE,
        ls.LIBSBML_CAT_SBO_CONSISTENCY,
    ):
        doc.setConsistencyChecks(check, False)
    doc.checkConsistency()
    _raise_errors(doc, label)
    props = ls.ConversionProperties()
    props.addOption("expandFunctionDefinitions", True)
    if doc.convert(props) != ls.LIBSBML_OPERATION_SUCCESS:
        raise SBMLError(f"{label}: cannot expand the function definitions")
    return doc, label


def _raise_errors(doc: Any, label: str) -> None:
    import libsbml as ls

    problems = []
    for i in range(doc.getNumErrors()):
        err = doc.getError(i)
        if err.getSeverity() >= ls.LIBSBML_SEV_ERROR:
            where = f"line {err.getLine()}" if err.getLine() else "document"
            problems.append(f"{where}: {err.getMessage().strip()}")
    if problems:
        shown = "; ".join(problems[:5]) + (
            f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        )
        raise SBMLError(f"{label}: {shown}")


class _Builder:
    """One pass over an SBML model (function definitions already expanded)."""

    def __init__(self, m: Any, label: str):
        self.m = m
        self.label = label
        self.names: dict[str, str] = {}  # SBML id → hemolab-safe base name
        self.symbols: dict[str, Any] = {}  # SBML id → its meaning in math
        self.variables: dict[str, SBMLVariable] = {}
        self.rate_rules: dict[str, Any] = {}
        self.assignment_rules: dict[str, Any] = {}
        self.initial_assignments: dict[str, Any] = {}
        self.local_parameters: list[Parameter] = []

    # -- helpers ---------------------------------------------------------------------------
    def safe(self, sbml_id: str) -> str:
        name = sbml_id
        if is_reserved(name) or keyword.iskeyword(name) or name.startswith("__"):
            name = f"sbml_{sbml_id}"
        return name

    def math(self, ast: Any, where: str, *, boolean: bool = False) -> Any:
        """The sympy value of SBML math; a boolean counts as 1/0 unless ``boolean``."""
        ctx = MathContext(self.symbols, self.delay, f"{self.label}: {where}")
        value = to_sympy(ast, ctx)
        return value if boolean else _as_number(value)

    def delay(self, expr: Any, tau: Any) -> Any:
        """``delay(expr, tau)``, resolved once every assignment rule is known (``resolve``)."""
        return _PendingDelay(expr, tau)

    def resolve(self, expr: Any) -> Any:
        """``expr`` with every pending ``delay`` replaced by delayed states."""
        for _ in range(50):
            pending = [d for d in expr.atoms(_PendingDelay) if not d.args[0].atoms(_PendingDelay)]
            if not pending:
                return expr
            expr = expr.xreplace({d: self.delay_now(*d.args) for d in pending})
        raise SBMLError(f"{self.label}: delays nested too deeply")

    def delay_now(self, expr: Any, tau: Any) -> Any:
        """``delay(expr, tau)``: every state in ``expr`` read at ``t - tau``; assignment rules
        expanded first, so a delayed rule of time is exact (``sin(10·(t − τ))``)."""
        expanded = self.resolve(self.expand_assignments(expr))
        if TIME in tau.free_symbols:
            raise UnsupportedSBMLError(f"{self.label}: a delay that depends on time: {tau}")
        states = {s for s in expanded.free_symbols if s.name in self.state_names}  # type: ignore[attr-defined]
        mapping: dict[Any, Any] = {s: delayed(s, tau) for s in states}
        mapping[TIME] = TIME - tau
        return expanded.xreplace(mapping)

    def expand_assignments(self, expr: Any) -> Any:
        for _ in range(100):
            subs = {
                s: self.assign_exprs[s.name]
                for s in expr.free_symbols
                if s.name in self.assign_exprs
            }  # type: ignore[attr-defined]
            if not subs:
                return expr
            expr = expr.xreplace(subs)
        raise SBMLError(f"{self.label}: assignment rules refer to each other in a cycle")

    # -- the model -------------------------------------------------------------------------
    def build(self) -> SBMLImport:

        m = self.m
        for i in range(m.getNumRules()):
            r = m.getRule(i)
            if r.isAlgebraic():
                raise UnsupportedSBMLError(f"{self.label}: algebraic rules are not supported")
            target = r.getVariable()
            if not r.isSetMath():
                continue  # L3V2: a rule without math has no effect
            (self.rate_rules if r.isRate() else self.assignment_rules)[target] = r
        for i in range(m.getNumInitialAssignments()):
            ia = m.getInitialAssignment(i)
            if ia.isSetMath():  # L3V2: without math it has no effect
                self.initial_assignments[ia.getSymbol()] = ia
        for i in range(m.getNumReactions()):
            rx = m.getReaction(i)
            if rx.isSetFast() and rx.getFast():
                raise UnsupportedSBMLError(
                    f"{self.label}: reaction {rx.getId()!r} is fast; fast reactions are not "
                    "supported"
                )
        # 1. roles and symbols
        self.state_names: set[str] = set()
        self.assign_exprs: dict[str, Any] = {}
        refs = self._species_references()
        items: list[tuple[str, str, Any]] = []
        items += [("compartment", c.getId(), c) for c in m.getListOfCompartments()]
        items += [("parameter", p.getId(), p) for p in m.getListOfParameters()]
        items += [("speciesReference", sid, sr) for sid, sr in refs.items()]
        for kind, sid, el in items:
            name = self.safe(sid)
            if sid in self.assignment_rules:
                role, name = "assignment", f"{name}__rule"
            elif (
                sid in self.rate_rules
                or sid in self.initial_assignments
                or (kind != "speciesReference" and not _constant(el))
            ):
                role = "state"
            else:
                role = "parameter"
            self.variables[sid] = SBMLVariable(sid, kind, role, name)
            self.symbols[sid] = sp.Symbol(name, real=True)
            if role == "state":
                self.state_names.add(name)
        for s in m.getListOfSpecies():
            sid = s.getId()
            hosu = bool(s.getHasOnlySubstanceUnits())
            comp = s.getCompartment()
            if comp not in self.symbols:
                raise SBMLError(f"{self.label}: species {sid!r} has unknown compartment {comp!r}")
            base = self.safe(sid)
            if sid in self.assignment_rules:
                role, name = "assignment", f"{base}__rule"
                sym: Any = sp.Symbol(name, real=True)
            else:
                role = "state"
                name = base if hosu else f"{base}__amount"
                amount = sp.Symbol(name, real=True)
                sym = amount if hosu else amount / self.symbols[comp]
                self.state_names.add(name)
            self.variables[sid] = SBMLVariable(sid, "species", role, name, hosu, comp)
            self.symbols[sid] = sym
        # reaction rates: in math a reaction's id means its rate (assignment <id>__rate)
        for rx in m.getListOfReactions():
            if rx.isSetId() and rx.getId():
                self.symbols[rx.getId()] = sp.Symbol(f"{self.safe(rx.getId())}__rate", real=True)
        rates: dict[int, Any] = {}
        rate_assignments: dict[str, Any] = {}
        for i in range(m.getNumReactions()):
            rx = m.getReaction(i)
            law = rx.getKineticLaw()
            if law is None or not law.isSetMath():
                continue
            local = dict(self.symbols)
            locals_ = {law.getParameter(j).getId(): law.getParameter(j)
                       for j in range(law.getNumParameters())}  # fmt: skip
            for j in range(law.getNumLocalParameters()):
                locals_[law.getLocalParameter(j).getId()] = law.getLocalParameter(j)
            for lp in locals_.values():
                # a hemolab parameter <reaction>__<id>: changeable, and kept out of the code
                lname = f"{self.safe(rx.getId() or f'reaction{i + 1}')}__{lp.getId()}"
                self.local_parameters.append(Parameter(lname, float(lp.getValue())))
                local[lp.getId()] = sp.Symbol(lname, real=True)
            saved, self.symbols = self.symbols, local
            try:
                rate = self.math(law.getMath(), f"kinetic law of reaction {rx.getId()!r}")
            finally:
                self.symbols = saved
            if rx.isSetId() and rx.getId():
                rate_assignments[f"{self.safe(rx.getId())}__rate"] = rate
                rate = self.symbols[rx.getId()]
            rates[i] = rate
        # 2. assignment rules (in hemolab symbols)
        assignments: dict[str, Any] = dict(rate_assignments)
        for sid, rule in self.assignment_rules.items():
            var = self._var(sid, "assignment rule")
            assignments[var.name] = self.math(rule.getMath(), f"assignment rule for {sid!r}")
        self.assign_exprs = dict(assignments)
        # 3. rates of change
        ddt: dict[str, Any] = {n: sp.Integer(0) for n in self.state_names}
        for sid, rule in self.rate_rules.items():
            var = self._var(sid, "rate rule")
            if var.role != "state":
                raise SBMLError(f"{self.label}: {sid!r} has both a rate and an assignment rule")
            rate = self.math(rule.getMath(), f"rate rule for {sid!r}")
            if var.kind == "species" and not var.has_only_substance_units:
                comp = self.variables[var.compartment or ""]
                dv = self._volume_rate(comp)
                rate = self.symbols[comp.sbml_id] * rate + self.symbols[sid] * dv
            ddt[var.name] = rate
        conversion = self._conversion_factors()
        for i in range(m.getNumReactions()):
            rx = m.getReaction(i)
            if i not in rates:
                continue
            rate = rates[i]
            for sign, lst in ((-1, rx.getListOfReactants()), (1, rx.getListOfProducts())):
                for sr in lst:
                    sp_id = sr.getSpecies()
                    var = self.variables.get(sp_id)
                    if var is None or var.kind != "species":
                        raise SBMLError(
                            f"{self.label}: reaction {rx.getId()!r} refers to unknown species "
                            f"{sp_id!r}"
                        )
                    spc = m.getSpecies(sp_id)
                    if (
                        spc.getBoundaryCondition()
                        or var.role != "state"
                        or sp_id in self.rate_rules
                    ):
                        continue
                    if spc.getConstant():
                        continue
                    stoich = self._stoichiometry(sr, rx)
                    ddt[var.name] = ddt[var.name] + sign * stoich * rate * conversion.get(sp_id, 1)
        assignments = {k: self.resolve(v) for k, v in assignments.items()}
        self.assign_exprs = dict(assignments)
        ddt = {k: self.resolve(v) for k, v in ddt.items()}
        # 4. initial values, resolved to expressions of the parameters
        parameters, initial = self._initial_values(assignments)
        parameters += self.local_parameters
        # 5. the model
        triggers = self._events()
        trigger_exprs = [
            e
            for trig in triggers
            for e in (trig.when, *trig.assign.values(), trig.delay, trig.priority)
            if isinstance(e, sp.Basic)
        ]
        delayed_states = {
            d.args[0].name  # type: ignore[attr-defined]
            for e in [*ddt.values(), *assignments.values(), *trigger_exprs]
            for d in e.atoms(delayed)
        }
        # constants whose value is not finite (SBML allows INF and NaN values) are not states:
        # the solver refuses non-finite states
        targets = {name for trig in triggers for name in trig.assign}
        for n in sorted(self.state_names):
            number = _number(initial[n])
            if (
                ddt[n] == 0
                and n not in targets
                and number is not None
                and not math.isfinite(number)
            ):
                assignments[n] = initial[n]
                self.state_names.discard(n)
        states = [
            State(
                n,
                ddt[n],
                initial=initial[n],
                history=self.histories[n] if n in delayed_states else None,
            )
            for n in sorted(self.state_names)
        ]
        if not states:  # hemolab solves at least one state
            states = [State("sbml_clock__", 0.0, initial=0.0)]
        state_names = {s.name for s in states}
        observables = []
        for sid, var in self.variables.items():
            if var.kind == "speciesReference" or var.role == "parameter":
                continue  # constants are not time courses
            name = self.safe(sid)
            if name in state_names or name in assignments:
                continue  # the state is reported under its id already
            observables.append(Observable(name, self.symbols[sid]))
        model = Model(
            self.m.getId() or "sbml_model",
            time_unit="s",
            states=states,
            parameters=parameters,
            assignments=assignments,
            observables=observables,
            description=f"Imported from SBML ({self.label}).",
            triggers=triggers,
            check_units=False,  # SBML units are checked (or not) by libsbml
        )
        return SBMLImport(model, dict(self.variables), self.label, dict(self.symbols))

    def _events(self) -> list[Any]:
        """SBML events (without delays) as hemolab triggers on the model."""
        from hemolab.events._trigger import Trigger

        out = []
        for i in range(self.m.getNumEvents()):
            ev = self.m.getEvent(i)
            name = ev.getId() or f"event{i + 1}"
            where = f"event {name!r}"
            trig = ev.getTrigger()
            if trig is None or not trig.isSetMath():
                continue  # L3V2: an event without a trigger condition never fires
            cond = self.resolve(self.math(trig.getMath(), f"trigger of {where}", boolean=True))
            if not _is_condition(cond):
                cond = sp.Ne(cond, 0)
            if cond in (sp.true, sp.false):
                cond = sp.Eq(TIME, TIME) if cond == sp.true else sp.Lt(TIME, TIME)
            initial_value = bool(trig.getInitialValue()) if trig.isSetInitialValue() else True
            assign: dict[str, Any] = {}
            scale: dict[str, Any] = {}  # concentrations: times the compartment when it acts
            for j in range(ev.getNumEventAssignments()):
                ea = ev.getEventAssignment(j)
                if not ea.isSetMath():
                    continue  # L3V2: an assignment without math has no effect
                target = ea.getVariable()
                var = self._var(target, f"assignment of {where}")
                if var.role == "assignment":
                    raise SBMLError(
                        f"{self.label}: {where} assigns {target!r}, which an assignment rule sets"
                    )
                value = self.resolve(
                    self.math(ea.getMath(), f"assignment of {target!r} in {where}")
                )
                if var.kind == "species" and not var.has_only_substance_units:
                    scale[var.name] = self.symbols[var.compartment or ""]
                assign[var.name] = value
            if not assign:
                continue  # an event that changes nothing
            delay = priority = None
            if ev.isSetDelay() and ev.getDelay().isSetMath():
                delay = self.resolve(self.math(ev.getDelay().getMath(), f"delay of {where}"))
            if ev.isSetPriority() and ev.getPriority().isSetMath():
                priority = self.resolve(
                    self.math(ev.getPriority().getMath(), f"priority of {where}")
                )
            out.append(
                Trigger(
                    cond,
                    assign,
                    name=_trigger_name(name, i),
                    initial_value=initial_value,
                    delay=delay,
                    priority=priority,
                    persistent=bool(trig.getPersistent()) if trig.isSetPersistent() else True,
                    values_at_trigger=bool(ev.getUseValuesFromTriggerTime()),
                    scale=scale,
                )
            )
        return out

    def _var(self, sid: str, what: str) -> SBMLVariable:
        var = self.variables.get(sid)
        if var is None:
            raise SBMLError(f"{self.label}: {what} for unknown id {sid!r}")
        return var

    def _species_references(self) -> dict[str, Any]:
        """Species references with ids (L3 stoichiometries that rules may set)."""
        out: dict[str, Any] = {}
        for rx in self.m.getListOfReactions():
            for lst in (rx.getListOfReactants(), rx.getListOfProducts()):
                for sr in lst:
                    if sr.isSetId() and sr.getId():
                        out[sr.getId()] = sr
        return out

    def _stoichiometry(self, sr: Any, rx: Any) -> Any:
        if sr.isSetId() and sr.getId() in self.variables:
            return self.symbols[sr.getId()]
        if hasattr(sr, "isSetStoichiometryMath") and sr.isSetStoichiometryMath():
            return self.math(
                sr.getStoichiometryMath().getMath(), f"stoichiometry in {rx.getId()!r}"
            )
        value = sr.getStoichiometry()
        if not math.isfinite(value):  # L3 without a stoichiometry (NaN), or INF
            raise SBMLError(
                f"{self.label}: species reference to {sr.getSpecies()!r} in reaction "
                f"{rx.getId()!r} has no finite stoichiometry ({value})"
            )
        return sp.Float(value) if value != int(value) else sp.Integer(int(value))

    def _conversion_factors(self) -> dict[str, Any]:
        m = self.m
        default = (
            m.getConversionFactor()
            if hasattr(m, "isSetConversionFactor") and m.isSetConversionFactor()
            else ""
        )
        out = {}
        for s in m.getListOfSpecies():
            cf = (
                s.getConversionFactor()
                if hasattr(s, "isSetConversionFactor") and s.isSetConversionFactor()
                else default
            )
            if cf:
                if cf not in self.symbols:
                    raise SBMLError(f"{self.label}: conversion factor {cf!r} is not a parameter")
                out[s.getId()] = self.symbols[cf]
        return out

    def _volume_rate(self, comp: SBMLVariable) -> Any:
        if comp.role == "parameter":
            return sp.Integer(0)
        if comp.sbml_id in self.rate_rules:
            return self.math(
                self.rate_rules[comp.sbml_id].getMath(), f"rate rule for {comp.sbml_id!r}"
            )
        if comp.role == "state":
            return sp.Integer(0)
        raise UnsupportedSBMLError(
            f"{self.label}: a concentration rate rule in compartment {comp.sbml_id!r}, whose size "
            "follows an assignment rule"
        )

    def _initial_values(
        self, assignments: dict[str, Any]
    ) -> tuple[list[Parameter], dict[str, Any]]:
        """Parameters with their values, and each state's initial value (parameters only)."""
        m = self.m
        parameters: list[Parameter] = []
        raw: dict[str, Any] = {}  # hemolab state name → initial value (any symbols)
        for sid, var in self.variables.items():
            if var.role == "assignment":
                continue
            el = _element(m, var.kind, sid)
            if sid in self.initial_assignments:
                value: Any = self.math(
                    self.initial_assignments[sid].getMath(), f"initial assignment for {sid!r}"
                )
                if var.kind == "species" and not var.has_only_substance_units:
                    value = value * self.symbols[var.compartment or ""]
            else:
                value = self._declared_value(var, el)
                if var.role == "state" and var.kind != "speciesReference":
                    value = self._lift_initial(sid, var, el, value, parameters)
            if var.role == "parameter":
                number = _number(value)
                if number is None or number != number:
                    raise SBMLError(f"{self.label}: {var.kind} {sid!r} has no value")
                parameters.append(Parameter(var.name, number))
            else:
                raw[var.name] = value
        # resolve: states and assignments → their initial expressions, until parameters only
        subs_assign = dict(assignments)
        self.histories = {n: self._resolve_initial(e, raw, subs_assign, keep_time=True)
                          for n, e in raw.items()}  # fmt: skip
        resolved = {n: self._resolve_initial(e, raw, subs_assign) for n, e in raw.items()}
        return parameters, resolved

    def _resolve_initial(
        self, expr: Any, raw: dict[str, Any], subs_assign: dict[str, Any], keep_time: bool = False
    ) -> Any:
        """An initial value in parameters only (and ``t`` with ``keep_time``: SBML's past of a
        state is its initial assignment read at earlier times)."""
        e = expr
        for _ in range(200):
            e = e.replace(lambda x: isinstance(x, delayed), lambda x: x.args[0])  # type: ignore[arg-type]
            if not keep_time:
                e = e.xreplace({TIME: sp.Integer(0)})
            subs = {}
            for sym in e.free_symbols:
                n = sym.name  # type: ignore[attr-defined]
                if n in raw:
                    subs[sym] = raw[n]
                elif n in subs_assign:
                    subs[sym] = subs_assign[n]
            if not subs:
                return e
            e = e.xreplace(subs)
        raise SBMLError(f"{self.label}: initial values refer to each other in a cycle")

    def _lift_initial(
        self, sid: str, var: SBMLVariable, el: Any, value: Any, parameters: list[Parameter]
    ) -> Any:
        """A declared initial value as a parameter ``<id>__initial`` (the declared quantity:
        a concentration for ``initialConcentration``), so that it can be changed without
        regenerating code, and models differing only in it share their compilation."""
        number = _number(value)
        comp = self.symbols.get(var.compartment or "", sp.Integer(1))
        conc = var.kind == "species" and not el.isSetInitialAmount()
        if conc:
            number = _number(value / comp) if _number(comp) is None else None
            if number is None:
                number = float(el.getInitialConcentration())
        if number is None or number != number:
            return value
        name = f"{self.safe(sid)}__initial"
        parameters.append(Parameter(name, number))
        sym = sp.Symbol(name, real=True)
        return sym * comp if conc else sym

    def _declared_value(self, var: SBMLVariable, el: Any) -> Any:
        if var.kind == "compartment":
            if el.isSetSize():
                return _float(el.getSize())
            # a 0-dimensional compartment has no size: its species are amounts (size 1)
            dims = el.getSpatialDimensions() if el.isSetSpatialDimensions() else 3
            return sp.Integer(1) if dims == 0 else sp.nan
        if var.kind == "parameter":
            return _float(el.getValue() if el.isSetValue() else float("nan"))
        if var.kind == "speciesReference":
            return _float(el.getStoichiometry())
        comp = self.symbols[var.compartment or ""]
        if el.isSetInitialAmount():
            return _float(el.getInitialAmount())
        if el.isSetInitialConcentration():
            return _float(el.getInitialConcentration()) * comp
        raise SBMLError(
            f"{self.label}: species {var.sbml_id!r} has no initial amount or concentration"
        )


_HARMLESS_PACKAGES = frozenset({"l3v2extendedmath", "layout", "render"})
"""Packages that do not change what is simulated (core L3V2 math; diagrams)."""


class _PendingDelay(sp.Function):
    """``delay(expr, tau)`` as read, before assignment rules are all known."""

    nargs = 2


def _trigger_name(name: str, index: int) -> str:
    return name if name.isidentifier() else f"event{index + 1}"


def _constant(el: Any) -> bool:
    return bool(el.getConstant()) if hasattr(el, "getConstant") else True


def _element(m: Any, kind: str, sid: str) -> Any:
    if kind == "compartment":
        return m.getCompartment(sid)
    if kind == "parameter":
        return m.getParameter(sid)
    if kind == "species":
        return m.getSpecies(sid)
    for rx in m.getListOfReactions():
        for lst in (rx.getListOfReactants(), rx.getListOfProducts()):
            for sr in lst:
                if sr.isSetId() and sr.getId() == sid:
                    return sr
    raise SBMLError(f"unknown element {sid!r}")


def _float(x: float) -> Any:
    if x != x:
        return sp.nan
    return sp.Float(x)


def _number(e: Any) -> float | None:
    try:
        return float(e)
    except (TypeError, ValueError):
        return None


def read_antimony(source: str | os.PathLike[str]) -> Model:
    """A hemolab model from Antimony text or an ``.ant`` file (converted to SBML by the
    ``antimony`` package, then read by :func:`read_sbml`)."""
    return import_antimony(source).model


def import_antimony(source: str | os.PathLike[str]) -> SBMLImport:
    """Like :func:`read_antimony`, with the map from ids to the model's variables."""
    import antimony

    text = str(source)
    path = Path(text) if "\n" not in text and len(text) < 4096 else None
    if path is not None and path.suffix in (".ant", ".txt", ".antimony") and path.is_file():
        label = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise SBMLError(f"{label}: not UTF-8 text (byte {exc.start})") from None
    elif path is not None and path.suffix in (".ant", ".antimony") and not path.is_file():
        raise SBMLError(f"Antimony file {text!r} does not exist")
    else:
        label = "Antimony string"
    text = text.removeprefix("\ufeff")  # an editor's byte-order mark: no Antimony token
    antimony.clearPreviousLoads()
    # the antimony package decodes its C strings as UTF-8: an error that quotes a cut
    # multi-byte character raises UnicodeDecodeError instead of returning the message
    try:
        if antimony.loadAntimonyString(text) < 0:
            message = (antimony.getLastError() or "cannot parse").strip()
            raise SBMLError(f"{label}: {message}")
        module = antimony.getMainModuleName()
        sbml = antimony.getSBMLString(module)
        if not sbml:
            raise SBMLError(f"{label}: Antimony produced no SBML ({antimony.getLastError()})")
    except UnicodeDecodeError:
        raise SBMLError(
            f"{label}: Antimony cannot parse the text (its message is no UTF-8)"
        ) from None
    doc, _ = _read_document(sbml)
    return _Builder(doc.getModel(), label).build()
