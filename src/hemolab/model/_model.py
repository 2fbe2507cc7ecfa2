"""Model definitions: states, parameters, covariates, observables, and their validation.

A :class:`Model` is an immutable description: strings and numbers in, sympy expressions held
inside, nothing traced by JAX. Everything that can be checked without solving is checked when
the model is built, and every error names the element (``state 'Prol'``, ``parameter 'MTT'``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import sympy as sp

from hemolab._errors import (
    DelayError,
    MissingParameterError,
    ModelError,
    UnitError,
    UnknownSymbolError,
)
from hemolab.model._expr import (
    TIME,
    delay_terms,
    is_reserved,
    parse_expression,
    symbol_names,
)
from hemolab.model._variability import ResidualError, Variability, validate_variability

__all__ = [
    "BloodSpec",
    "Covariate",
    "Model",
    "Observable",
    "Parameter",
    "State",
]

Expression = str | float | int

_NAME_HINT = "names start with a letter or '_' and contain letters, digits and '_'"


def _check_name(name: object, kind: str) -> str:
    if not isinstance(name, str) or not name.isidentifier():
        raise ModelError(f"{kind} name {name!r} is not valid: {_NAME_HINT}")
    if is_reserved(name):
        raise ModelError(f"{kind} name {name!r} is reserved (a function or the time symbol)")
    return name


@dataclass(frozen=True)
class State:
    """A state variable: ``d name / dt = ddt``.

    Parameters
    ----------
    name
        Identifier used in equations and datasets (``CMT`` may also be its 1-based index).
    ddt
        Right-hand side; may read states in the past as ``X(t - tau)``.
    initial
        Initial value (expression of parameters and covariates); default 0.
    unit
        UCUM unit of the state (amount or concentration), e.g. ``"mg"``, ``"10*9/L"``.
    positive
        The state is strictly positive and is solved as ``log(state)`` so it cannot go
        negative (nor lose relative accuracy near zero).
    history
        Constant history ``state(t)`` for ``t`` before the start, required when the state is
        read with a delay. ``"initial"`` uses the initial value.

    Other Parameters
    ----------------
    bioavailability, lag, infusion_rate, infusion_duration
        Dose properties of this state as a dosing compartment (NONMEM F, ALAG, R, D): used for
        doses into it, ``RATE=-1`` (model rate) and ``RATE=-2`` (model duration).
    description
        Free text.
    """

    name: str
    ddt: Expression
    initial: Expression = 0.0
    unit: str | None = None
    positive: bool = False
    history: Expression | None = None
    bioavailability: Expression | None = None
    lag: Expression | None = None
    infusion_rate: Expression | None = None
    infusion_duration: Expression | None = None
    description: str = ""


@dataclass(frozen=True)
class Parameter:
    """A model parameter with its typical value, unit and bounds (inclusive)."""

    name: str
    value: float
    unit: str | None = None
    bounds: tuple[float, float] = (-math.inf, math.inf)
    description: str = ""


@dataclass(frozen=True)
class Covariate:
    """A subject covariate (``WT``, ``BSA``, ``AGE``...); ``default`` is used when absent."""

    name: str
    default: float | None = None
    unit: str | None = None
    description: str = ""


@dataclass(frozen=True)
class Observable:
    """A derived clinical quantity reported in results (``ANC``, ``Hb``, ``PLT``)."""

    name: str
    expr: Expression
    unit: str | None = None
    description: str = ""


@dataclass(frozen=True)
class BloodSpec:
    """How a model takes blood products (DATA-FORMATS §A, ``transfusion``/``phlebotomy``).

    Parameters
    ----------
    volume_ml
        Expression for the circulating blood volume in mL (may read states, parameters and
        covariates, e.g. ``"70*WT"`` or a volume state).
    cell_states, plasma_states
        States held in blood cells and in plasma: phlebotomy removes the same fraction of each.
    transfusion_map
        Product content → {state: factor}. Content keys: ``VOLUME_ML``, ``RBC_ML``,
        ``PLASMA_ML``, ``HB_G``, ``PLT_E9``. A transfusion adds ``content × factor`` to each
        mapped state (spread over the infusion duration).
    volume_rule
        Free-text description of how plasma volume returns to baseline after a volume load
        (the equations themselves are part of the model's states).
    lysis_map
        Where an ABO-incompatible unit's red-cell content also goes (content key → {state:
        factor}): the states :func:`hemolab.model.haemolysis` adds, whose decay removes
        those cells again. Empty: the model cannot take an incompatible unit.
    """

    volume_ml: Expression
    cell_states: tuple[str, ...] = ()
    plasma_states: tuple[str, ...] = ()
    transfusion_map: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    volume_rule: str = ""
    lysis_map: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    CONTENT_KEYS = ("VOLUME_ML", "RBC_ML", "PLASMA_ML", "HB_G", "PLT_E9")


@dataclass(frozen=True)
class Model:
    """A mechanistic model of blood-cell production and loss.

    Parameters
    ----------
    name
        Identifier (library name or file stem).
    time_unit
        The model's time unit (``"h"``, ``"d"``...). Datasets are converted to it.
    states, parameters
        In declaration order; ``CMT`` in datasets indexes ``states`` (1-based).

    Other Parameters
    ----------------
    covariates
        Subject covariates read from datasets (NOCB by default).
    assignments
        Ordered ``name → expression`` intermediate quantities usable in every equation.
    observables
        Clinical outputs.
    blood
        Present when the model accepts blood products.
    stiff
        ``True`` forces the stiff solver, ``False`` the explicit one, ``None`` lets the engine
        decide from the Jacobian at the initial state.
    citation, description
        Shown by ``hemolab show``.
    variability, residual_error
        The published inter-individual variability (:class:`Variability`) that virtual
        populations use by default, and residual error models of observables.
    check_units
        Check the dimensions of every equation (default). Imported models whose units are
        their format's business (SBML: libsbml's unit checks) set it to False.
    triggers
        State-triggered events that belong to the model (:class:`~hemolab.Trigger`; SBML
        events): applied in every simulation, before the triggers a call adds.
    history_segments
        Delay models: the solver steps of history the solver keeps from the first run (a
        hint; a ring that overflows still grows). The default starts at 64 and grows 16x,
        compiling the solver again each time; a model known to need more says so here.

    Raises
    ------
    ModelError
        (or a subclass) naming the element when the definition is inconsistent.

    Examples
    --------
    >>> import hemolab as hl
    >>> m = hl.Model(
    ...     "decay",
    ...     time_unit="d",
    ...     states=[hl.State("x", "-k*x", initial="x0", positive=True)],
    ...     parameters=[hl.Parameter("k", 0.1, unit="d-1"), hl.Parameter("x0", 1.0)],
    ... )
    >>> m.state_names
    ('x',)
    """

    name: str
    time_unit: str
    states: Sequence[State]
    parameters: Sequence[Parameter]
    covariates: Sequence[Covariate] = ()
    assignments: Mapping[str, Expression] = field(default_factory=dict)
    observables: Sequence[Observable] = ()
    blood: BloodSpec | None = None
    stiff: bool | None = None
    citation: str = ""
    description: str = ""
    variability: Variability | None = None
    residual_error: Sequence[ResidualError] = ()
    triggers: Sequence[Any] = ()
    check_units: bool = True
    history_segments: int | None = None

    def __post_init__(self) -> None:
        for attr in (
            "states",
            "parameters",
            "covariates",
            "observables",
            "residual_error",
            "triggers",
        ):
            object.__setattr__(self, attr, tuple(getattr(self, attr)))
        object.__setattr__(self, "assignments", dict(self.assignments))
        if self.history_segments is not None and not (
            isinstance(self.history_segments, int) and self.history_segments >= 1
        ):
            raise ModelError(
                f"model {self.name!r}: history_segments must be a positive integer or None, "
                f"got {self.history_segments!r}"
            )
        _validate(self)
        validate_variability(
            self.name,
            self.parameter_names,
            self.observable_names,
            self.variability,
            self.residual_error,
            {p.name: p.bounds for p in self.parameters},
        )
        if self.triggers:
            from hemolab.events._trigger import parse_triggers

            parse_triggers(list(self.triggers), self)  # names, conditions, targets

    # -- names -------------------------------------------------------------------------------
    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.states)

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    @property
    def covariate_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.covariates)

    @property
    def observable_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.observables)

    @property
    def inputs(self) -> tuple[str, ...]:
        """Parameter vector order inside the engine: parameters, then covariates."""
        return self.parameter_names + self.covariate_names

    @property
    def accepts_blood_products(self) -> bool:
        return self.blood is not None

    @property
    def has_delays(self) -> bool:
        return bool(self.delays)

    def state(self, name: str) -> State:
        for s in self.states:
            if s.name == name:
                return s
        raise ModelError(f"model {self.name!r} has no state {name!r}; states: {self.state_names}")

    def parameter(self, name: str) -> Parameter:
        for p in self.parameters:
            if p.name == name:
                return p
        raise ModelError(
            f"model {self.name!r} has no parameter {name!r}; parameters: {self.parameter_names}"
        )

    def replace(self, **changes: Any) -> Model:
        """A copy with some fields changed (validated again)."""
        from dataclasses import replace

        return replace(self, **changes)

    def with_parameters(self, **values: float) -> Model:
        """A copy whose typical values are changed, e.g. ``m.with_parameters(MTT=100.0)``."""
        from dataclasses import replace

        known = set(self.parameter_names)
        unknown = sorted(set(values) - known)
        if unknown:
            raise MissingParameterError(
                f"model {self.name!r} has no parameter(s) {unknown}; known: {sorted(known)}"
            )
        params = tuple(
            replace(p, value=float(values[p.name])) if p.name in values else p
            for p in self.parameters
        )
        return self.replace(parameters=params)

    # -- parsed equations (cached) -------------------------------------------------------------
    @cached_property
    def parsed(self) -> ParsedModel:
        """The model's expressions parsed into sympy (computed once)."""
        return _parse(self)

    @property
    def delays(self) -> tuple[tuple[str, sp.Expr], ...]:
        """Distinct ``(state, tau)`` delay terms, in a stable order."""
        return self.parsed.delays


@dataclass(frozen=True)
class ParsedModel:
    """Sympy view of a model: what the compiler and the exporters read."""

    ddt: tuple[sp.Expr, ...]
    initial: tuple[sp.Expr, ...]
    history: tuple[sp.Expr | None, ...]
    assignments: tuple[tuple[str, sp.Expr], ...]  # topologically sorted
    observables: tuple[sp.Expr, ...]
    delays: tuple[tuple[str, sp.Expr], ...]
    bioavailability: tuple[sp.Expr | None, ...]
    lag: tuple[sp.Expr | None, ...]
    infusion_rate: tuple[sp.Expr | None, ...]
    infusion_duration: tuple[sp.Expr | None, ...]
    blood_volume: sp.Expr | None


def _trigger_exprs(m: Model) -> list[sp.Basic]:
    """The expressions of the model's triggers, for the delays they read (``X(t - tau)``)."""
    from hemolab.events._trigger import _REL

    out: list[sp.Basic] = []
    for trig in m.triggers:
        where = f"trigger {trig.name!r}"
        texts: list[Any] = [*trig.assign.values(), trig.delay, trig.priority]
        if isinstance(trig.when, str) and (match := _REL.match(trig.when.strip())):
            texts += [match.group("lhs"), match.group("rhs")]
        elif isinstance(trig.when, sp.Basic):
            out.append(trig.when)
        for text in texts:
            if text is not None and not isinstance(text, bool):
                try:
                    out.append(parse_expression(text, state_names=m.state_names, where=where))
                except ModelError:
                    continue  # reported with its trigger by parse_trigger
    return out


def _parse(m: Model) -> ParsedModel:
    states = m.state_names

    def p(text: Expression, where: str) -> sp.Expr:
        return parse_expression(text, state_names=states, where=where)

    def opt(text: Expression | None, where: str) -> sp.Expr | None:
        return None if text is None else p(text, where)

    ddt = tuple(p(s.ddt, f"state {s.name!r} (ddt)") for s in m.states)
    initial = tuple(p(s.initial, f"state {s.name!r} (initial)") for s in m.states)
    history = tuple(
        None
        if s.history is None
        else (init if s.history == "initial" else p(s.history, f"state {s.name!r} (history)"))
        for s, init in zip(m.states, initial, strict=True)
    )
    raw_assign = {k: p(v, f"assignment {k!r}") for k, v in m.assignments.items()}
    assignments = _toposort(raw_assign, m.name)
    observables = tuple(p(o.expr, f"observable {o.name!r}") for o in m.observables)
    delays: dict[tuple[str, str], tuple[str, sp.Expr]] = {}
    for expr in (*ddt, *(e for _, e in assignments), *observables, *_trigger_exprs(m)):
        for term in delay_terms(expr):
            state_sym, tau = term.args
            key = (str(state_sym), sp.srepr(tau))
            delays.setdefault(key, (str(state_sym), tau))  # type: ignore[arg-type]
    for state_name, tau in delays.values():
        if state_name not in states:
            raise DelayError(
                f"model {m.name!r}: {state_name}(t - {tau}) reads {state_name!r} with a delay, "
                f"but only states have a past; states: {list(states)}"
            )
    ordered = tuple(sorted(delays.values(), key=lambda d: (states.index(d[0]), sp.srepr(d[1]))))
    return ParsedModel(
        ddt=ddt,
        initial=initial,
        history=history,
        assignments=assignments,
        observables=observables,
        delays=ordered,
        bioavailability=tuple(opt(s.bioavailability, f"state {s.name!r} (F)") for s in m.states),
        lag=tuple(opt(s.lag, f"state {s.name!r} (lag)") for s in m.states),
        infusion_rate=tuple(opt(s.infusion_rate, f"state {s.name!r} (rate)") for s in m.states),
        infusion_duration=tuple(
            opt(s.infusion_duration, f"state {s.name!r} (duration)") for s in m.states
        ),
        blood_volume=None if m.blood is None else p(m.blood.volume_ml, "blood volume_ml"),
    )


def _toposort(assign: dict[str, sp.Expr], model_name: str) -> tuple[tuple[str, sp.Expr], ...]:
    """Order assignments so each is defined before use; a cycle is an error naming it."""
    done: list[tuple[str, sp.Expr]] = []
    state: dict[str, int] = {}

    def visit(name: str, path: tuple[str, ...]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = " → ".join((*path[path.index(name) :], name))
            raise ModelError(f"model {model_name!r}: assignments form a cycle: {cycle}")
        state[name] = 1
        for dep in sorted(symbol_names(assign[name]) & set(assign)):
            visit(dep, (*path, name))
        state[name] = 2
        done.append((name, assign[name]))

    for name in assign:
        visit(name, ())
    return tuple(done)


def _validate(m: Model) -> None:
    """Definition-time checks; each error names the model element."""
    if not isinstance(m.name, str) or not m.name:
        raise ModelError(f"model name must be a non-empty string, got {m.name!r}")
    from hemolab.model._units import TIME_UNITS, infer_unit, parse_unit

    if m.time_unit not in TIME_UNITS:
        raise UnitError(
            f"model {m.name!r}: time_unit {m.time_unit!r} is not a time unit; "
            f"expected one of {sorted(TIME_UNITS)}"
        )
    if not m.states:
        raise ModelError(f"model {m.name!r} has no states")
    seen: dict[str, str] = {}
    groups: list[tuple[str, Sequence[Any]]] = [
        ("state", m.states),
        ("parameter", m.parameters),
        ("covariate", m.covariates),
        ("observable", m.observables),
    ]
    for kind, items in groups:
        for item in items:
            name = _check_name(item.name, kind)
            if name in seen:
                raise ModelError(
                    f"model {m.name!r}: {kind} {name!r} is already declared as a {seen[name]}"
                )
            seen[name] = kind
    for name in m.assignments:
        _check_name(name, "assignment")
        if name in seen:
            raise ModelError(
                f"model {m.name!r}: assignment {name!r} is already declared as a {seen[name]}"
            )
        seen[name] = "assignment"

    for prm in m.parameters:
        try:
            value = float(prm.value)
        except (TypeError, ValueError):
            raise ModelError(
                f"model {m.name!r}: parameter {prm.name!r} value {prm.value!r} is not a number"
            ) from None
        lo, hi = prm.bounds
        if not (lo <= value <= hi) or math.isnan(value):
            raise ModelError(
                f"model {m.name!r}: parameter {prm.name!r} typical value {value} "
                f"is outside its bounds [{lo}, {hi}]"
            )
    for st in m.states:
        if not isinstance(st.positive, bool):
            raise ModelError(f"model {m.name!r}: state {st.name!r} positive must be a bool")

    parsed = m.parsed  # parses every expression (raises ModelError on syntax)
    names = set(m.state_names)
    values = set(m.parameter_names) | set(m.covariate_names)
    assigned = set(m.assignments)

    def check_symbols(expr: sp.Expr | None, where: str, allowed: set[str]) -> None:
        if expr is None:
            return
        unknown = sorted(symbol_names(expr) - allowed)
        if unknown:
            declared = ", ".join(sorted(allowed)) or "nothing"
            raise UnknownSymbolError(
                f"model {m.name!r}: {where} uses undeclared name(s) {unknown}; "
                f"declared names usable here: {declared}"
            )

    dynamic = names | values | assigned
    static = values | {n for n, e in parsed.assignments if _is_static(e, values, parsed)}
    for st, e in zip(m.states, parsed.ddt, strict=True):
        check_symbols(e, f"state {st.name!r} (ddt)", dynamic)
    for name, e in parsed.assignments:
        check_symbols(e, f"assignment {name!r}", dynamic)
    for ob, e in zip(m.observables, parsed.observables, strict=True):
        check_symbols(e, f"observable {ob.name!r}", dynamic)
    for st, e in zip(m.states, parsed.initial, strict=True):
        if e.has(TIME):
            raise ModelError(f"model {m.name!r}: state {st.name!r} initial value uses time")
        check_symbols(e, f"state {st.name!r} (initial)", static)
    for field_name in ("bioavailability", "lag", "infusion_rate", "infusion_duration", "history"):
        for st, e in zip(m.states, getattr(parsed, field_name), strict=True):
            check_symbols(e, f"state {st.name!r} ({field_name})", static)
    if parsed.blood_volume is not None:
        check_symbols(parsed.blood_volume, "blood volume_ml", dynamic)

    # delays: constant, positive-typical delays of states that declare a history
    typical = {p.name: float(p.value) for p in m.parameters}
    typical.update({c.name: c.default for c in m.covariates if c.default is not None})
    for state_name, tau in parsed.delays:
        variable = not symbol_names(tau) <= static or tau.has(TIME) or bool(delay_terms(tau))
        if variable:  # state-dependent: must stay above 0, checked while solving
            check_symbols(tau, f"delay of state {state_name!r}", dynamic)
        st = m.state(state_name)
        if st.history is None:
            raise DelayError(
                f"model {m.name!r}: state {state_name!r} is read with a delay ({state_name}(t - "
                f"{tau})) but declares no history; give State(..., history=...) "
                "(a constant expression, or 'initial')"
            )
        if variable:
            continue
        try:
            tau_value = float(tau.subs({sp.Symbol(k, real=True): v for k, v in typical.items()}))
        except (TypeError, ValueError):
            continue  # depends on a covariate without default: checked when solving
        if not tau_value > 0:
            raise DelayError(
                f"model {m.name!r}: delay of state {state_name!r} is {tau} = {tau_value} "
                "at the typical values; delays must be > 0"
            )

    if m.blood is not None:
        for kind, group in (("cell", m.blood.cell_states), ("plasma", m.blood.plasma_states)):
            for s in group:
                if s not in names:
                    raise ModelError(
                        f"model {m.name!r}: blood {kind} state {s!r} is not a state of the model"
                    )
        for key, targets in (*m.blood.transfusion_map.items(), *m.blood.lysis_map.items()):
            if key not in BloodSpec.CONTENT_KEYS:
                raise ModelError(
                    f"model {m.name!r}: blood transfusion_map key {key!r} is not one of "
                    f"{BloodSpec.CONTENT_KEYS}"
                )
            for s, factor in targets.items():
                if s not in names:
                    raise ModelError(
                        f"model {m.name!r}: transfusion_map[{key!r}] targets unknown state {s!r}"
                    )
                if not isinstance(factor, int | float) or not math.isfinite(factor):
                    raise ModelError(
                        f"model {m.name!r}: transfusion_map[{key!r}][{s!r}] must be a finite "
                        f"number, got {factor!r}"
                    )

    # units: parse every declared unit, then check each right-hand side's dimension
    if not m.check_units:
        return
    units: dict[str, Any] = {"t": parse_unit(m.time_unit)}
    for kind, items in groups[:3]:
        for item in items:
            if item.unit is not None:
                try:
                    units[item.name] = parse_unit(item.unit)
                except UnitError as exc:
                    raise UnitError(f"model {m.name!r}: {kind} {item.name!r}: {exc}") from None
    for ob in m.observables:
        if ob.unit is not None:
            try:
                parse_unit(ob.unit)
            except UnitError as exc:
                raise UnitError(f"model {m.name!r}: observable {ob.name!r}: {exc}") from None
    for name, e in parsed.assignments:
        units[name] = infer_unit(e, units, where=f"model {m.name!r}: assignment {name!r}")
    from hemolab.model._units import check_rate_unit

    for st, e in zip(m.states, parsed.ddt, strict=True):
        where = f"model {m.name!r}: state {st.name!r} (ddt)"
        rate = infer_unit(e, units, where=where)
        check_rate_unit(rate, units.get(st.name), m.time_unit, where=where)
    for ob, e in zip(m.observables, parsed.observables, strict=True):
        where = f"model {m.name!r}: observable {ob.name!r}"
        got = infer_unit(e, units, where=where)
        if got is not None and ob.unit is not None and not got.same_dimension(parse_unit(ob.unit)):
            raise UnitError(f"{where}: expression has dimension {got}, declared unit {ob.unit!r}")


def _is_static(expr: sp.Expr, values: set[str], parsed: ParsedModel) -> bool:
    """Whether an assignment depends only on parameters/covariates (usable in initial values)."""
    assigned = dict(parsed.assignments)
    todo, seen = [expr], set()
    while todo:
        e = todo.pop()
        if e.has(TIME) or delay_terms(e):
            return False
        for n in symbol_names(e):
            if n in values:
                continue
            if n in assigned and n not in seen:
                seen.add(n)
                todo.append(assigned[n])
                continue
            return False
    return True
