"""Units: a hand-written parser for the subset of UCUM that hemolab needs, and dimension checks.

Every unit in hemolab is a UCUM code (DATA-FORMATS §0): lab values (``g/dL``, ``10*9/L``,
``10*3/uL``), doses (``mg/m2``, ``ug/kg``, ``[iU]/kg``), rates (``h-1``, ``L/h``). This module
turns such a code into a :class:`Unit` (a scale factor to the coherent base and a vector of
exponents over the base dimensions), converts between commensurable units, parses CLI durations
(``600h``, ``6w``) and infers the dimension of a model's sympy expressions so that a model whose
right-hand sides do not match its states is rejected before it is compiled.

Why hand-written rather than ``pint``: pint does not parse UCUM codes. In UCUM ``10*9/L`` is
10⁹ per litre, while pint's grammar reads ``*`` as multiplication (10 × 9); pint has no
``[iU]``, does not read UCUM's exponent suffixes the UCUM way (``mg/m2``, ``h-1``), and has no
``{...}`` annotations (``{cells}/uL``). A full UCUM library would add a dependency for a grammar
of which we need a small part: atoms with prefixes and integer exponent suffixes, ``10*N``
factors, the ``.`` and ``/`` operators and annotations. That subset is about a hundred lines,
tested in ``tests/test_units.py``.

The subset (UCUM is case-sensitive, and so is this parser):

- metric atoms, which take a prefix (``p n u m c d k M G T``, plus ``f`` for femtolitres):
  ``g``, ``L`` = ``l`` (dm³), ``m``, ``s``, ``mol``, ``U`` (enzyme unit, µmol/min),
  ``[iU]`` = ``[IU]`` (international unit);
- non-metric atoms, which do not: ``min``, ``h``, ``d``, ``wk`` (7 d), ``mo`` (mean Julian
  month, 30.4375 d, as in UCUM), ``a`` (Julian year, 365.25 d, as in UCUM), ``%``;
- factors ``10*N`` and ``10^N`` (``N`` a signed integer) and positive integers (``1``);
- an exponent suffix on an atom (``m2``, ``mm3``, ``h-1``);
- ``.`` (multiply) and ``/`` (divide), left to right, a leading ``/`` (``/uL``);
- annotations ``{...}``, which carry no meaning (``{cells}/uL`` is ``/uL``).

Parentheses, ``eq``, ``[arb'U]`` and the rest of UCUM are rejected with a :class:`UnitError`
that names the unit, never guessed. Counts (cells) are dimensionless, as in UCUM; international
units get their own dimension ``iu`` because they cannot be converted to mass without a
product-specific factor.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from types import MappingProxyType

import sympy

from hemolab._errors import UnitError

__all__ = [
    "BASE_DIMENSIONS",
    "DIMENSIONLESS",
    "TIME_UNITS",
    "Unit",
    "check_rate_unit",
    "conversion_factor",
    "infer_unit",
    "parse_duration",
    "parse_unit",
    "time_factor",
]

BASE_DIMENSIONS: tuple[str, ...] = ("mass", "length", "time", "amount", "iu")
"""Names of the base dimensions, in the order of :attr:`Unit.dims`.

Coherent base units: gram, metre, second, mole, international unit.
"""

_N_DIMS = len(BASE_DIMENSIONS)


def _format_power(name: str, power: Fraction) -> str:
    if power == 1:
        return name
    if power.denominator == 1:
        return f"{name}^{power.numerator}"
    return f"{name}^({power})"


@dataclass(frozen=True)
class Unit:
    """A physical unit: a scale factor to the coherent base units and a dimension vector.

    ``Unit(1e-3, (0, 3, 0, 0, 0))`` is the litre: 1e-3 m³. Units multiply, divide and take
    rational powers; two units are commensurable when their dimensions agree.

    Parameters
    ----------
    scale
        Factor that converts a value in this unit to the coherent base units (g, m, s, mol,
        [iU]); must be finite and positive.
    dims
        Exponents over :data:`BASE_DIMENSIONS`, one per base dimension; ints are converted to
        :class:`~fractions.Fraction`.

    Raises
    ------
    UnitError
        If ``scale`` is not finite and positive, or ``dims`` has the wrong length.
    """

    scale: float
    dims: tuple[Fraction, ...]

    def __post_init__(self) -> None:
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise UnitError(f"a unit's scale must be finite and positive, got {self.scale!r}")
        if len(self.dims) != _N_DIMS:
            raise UnitError(
                f"a unit needs {_N_DIMS} dimension exponents {BASE_DIMENSIONS}, "
                f"got {len(self.dims)}: {self.dims!r}"
            )
        object.__setattr__(self, "dims", tuple(Fraction(d) for d in self.dims))

    def __mul__(self, other: Unit) -> Unit:
        if not isinstance(other, Unit):
            return NotImplemented
        return Unit(
            self.scale * other.scale,
            tuple(a + b for a, b in zip(self.dims, other.dims, strict=True)),
        )

    def __truediv__(self, other: Unit) -> Unit:
        if not isinstance(other, Unit):
            return NotImplemented
        return Unit(
            self.scale / other.scale,
            tuple(a - b for a, b in zip(self.dims, other.dims, strict=True)),
        )

    def __pow__(self, exponent: Fraction | int) -> Unit:
        if isinstance(exponent, bool) or not isinstance(exponent, int | Fraction):
            return NotImplemented
        p = Fraction(exponent)
        return Unit(self.scale ** float(p), tuple(d * p for d in self.dims))

    def is_dimensionless(self) -> bool:
        """Return whether every dimension exponent is zero (counts, ratios, ``%``)."""
        return all(d == 0 for d in self.dims)

    def same_dimension(self, other: Unit) -> bool:
        """Return whether ``other`` has the same dimension (scale factors may differ)."""
        return self.dims == other.dims

    def __str__(self) -> str:
        num = [
            _format_power(n, d) for n, d in zip(BASE_DIMENSIONS, self.dims, strict=True) if d > 0
        ]
        den = [
            _format_power(n, -d) for n, d in zip(BASE_DIMENSIONS, self.dims, strict=True) if d < 0
        ]
        if not num and not den:
            return "dimensionless"
        top = "·".join(num) or "1"
        if not den:
            return top
        bottom = den[0] if len(den) == 1 else "(" + "·".join(den) + ")"
        return f"{top}/{bottom}"


def _dims(**powers: int) -> tuple[Fraction, ...]:
    return tuple(Fraction(powers.get(name, 0)) for name in BASE_DIMENSIONS)


DIMENSIONLESS = Unit(1.0, _dims())
"""The unit ``1``: counts, ratios and numbers."""

# Exact scales (Fractions) so that conversion factors are correctly rounded: every UCUM atom of
# the subset is a rational multiple of the base units.
_SECOND = Fraction(1)
_DAY = 86400 * _SECOND
_ATOMS: Mapping[str, tuple[Fraction, tuple[Fraction, ...], bool]] = MappingProxyType(
    {
        # code: (scale to base, dims, metric i.e. takes a prefix)
        "g": (Fraction(1), _dims(mass=1), True),
        "m": (Fraction(1), _dims(length=1), True),
        "L": (Fraction(1, 1000), _dims(length=3), True),
        "l": (Fraction(1, 1000), _dims(length=3), True),
        "s": (_SECOND, _dims(time=1), True),
        "mol": (Fraction(1), _dims(amount=1), True),
        "U": (Fraction(1, 10**6) / 60, _dims(amount=1, time=-1), True),  # umol/min
        "[iU]": (Fraction(1), _dims(iu=1), True),
        "[IU]": (Fraction(1), _dims(iu=1), True),
        "min": (60 * _SECOND, _dims(time=1), False),
        "h": (3600 * _SECOND, _dims(time=1), False),
        "d": (_DAY, _dims(time=1), False),
        "wk": (7 * _DAY, _dims(time=1), False),
        "mo": (Fraction("30.4375") * _DAY, _dims(time=1), False),  # mean Julian month
        "a": (Fraction("365.25") * _DAY, _dims(time=1), False),  # Julian year
        "%": (Fraction(1, 100), _dims(), False),
    }
)
_PREFIXES: Mapping[str, Fraction] = MappingProxyType(
    {
        "f": Fraction(1, 10**15),
        "p": Fraction(1, 10**12),
        "n": Fraction(1, 10**9),
        "u": Fraction(1, 10**6),
        "m": Fraction(1, 10**3),
        "c": Fraction(1, 10**2),
        "d": Fraction(1, 10),
        "k": Fraction(10**3),
        "M": Fraction(10**6),
        "G": Fraction(10**9),
        "T": Fraction(10**12),
    }
)

_TEN_POWER = re.compile(r"10[*^]([+-]?\d+)")
_INTEGER = re.compile(r"\d+")
_ATOM_EXPONENT = re.compile(r"(?P<atom>.*?)(?P<exp>[+-]?\d+)?")
_ANNOTATION = re.compile(r"\{[^{}]*\}")
_DECIMAL = re.compile(r"(?:^|[./])\d+\.\d")
_MAX_TEN_POWER = 300

_Exact = tuple[Fraction, tuple[Fraction, ...]]


def _resolve_atom(atom: str, text: str) -> _Exact:
    """Look up an atom, with an optional one-letter prefix; exact atoms win (``mol``, ``min``)."""
    if atom in _ATOMS:
        scale, dims, _ = _ATOMS[atom]
        return scale, dims
    prefix, rest = atom[:1], atom[1:]
    if prefix in _PREFIXES and rest in _ATOMS:
        scale, dims, metric = _ATOMS[rest]
        if not metric:
            raise UnitError(
                f"unit {text!r}: prefix {prefix!r} is not allowed on {rest!r}; UCUM allows "
                "prefixes only on metric atoms (g, L, l, m, s, mol, U, [iU])"
            )
        return _PREFIXES[prefix] * scale, dims
    hint = ""
    if "µ" in atom or "μ" in atom:
        hint = " (UCUM writes the micro prefix as 'u', e.g. 'uL')"
    raise UnitError(
        f"unknown unit atom {atom!r} in unit {text!r}{hint}; expected a UCUM code built from "
        f"{', '.join(_ATOMS)} with prefixes {' '.join(_PREFIXES)}, 10*N factors, "
        "'.' and '/'"
    )


def _parse_component(component: str, text: str) -> _Exact:
    """Parse one factor between operators: ``10*9``, ``1``, ``mm3``, ``h-1``, ``{cells}``."""
    stripped = _ANNOTATION.sub("", component)
    if "{" in stripped or "}" in stripped:
        raise UnitError(f"unit {text!r}: unbalanced or nested '{{...}}' annotation")
    if not stripped:
        if component:  # an annotation alone stands for 1, as in UCUM
            return Fraction(1), _dims()
        raise UnitError(f"unit {text!r}: missing unit next to an operator ('.' or '/')")
    if m := _TEN_POWER.fullmatch(stripped):
        power = int(m.group(1))
        if abs(power) > _MAX_TEN_POWER:
            raise UnitError(f"unit {text!r}: factor {stripped!r} is out of range")
        return Fraction(10) ** power, _dims()
    if _INTEGER.fullmatch(stripped):
        value = int(stripped)
        if value == 0:
            raise UnitError(f"unit {text!r}: a factor of 0 is not a unit")
        return Fraction(value), _dims()
    m = _ATOM_EXPONENT.fullmatch(stripped)
    atom = m.group("atom") if m else stripped
    if not atom:
        raise UnitError(f"unit {text!r}: sign or exponent {stripped!r} without a unit atom")
    scale, dims = _resolve_atom(atom, text)
    if m and m.group("exp") is not None:
        power = int(m.group("exp"))
        return scale**power, tuple(d * power for d in dims)
    return scale, dims


@functools.lru_cache(maxsize=512)
def _parse_exact(text: str) -> _Exact:
    code = text.strip()
    if not code:
        raise UnitError(f"empty unit {text!r}; write '1' for a dimensionless quantity")
    if "(" in code or ")" in code:
        raise UnitError(f"unit {text!r}: parentheses are not supported; write e.g. 'mg/kg/h'")
    if _DECIMAL.search(_ANNOTATION.sub("", code)):
        raise UnitError(f"unit {text!r}: UCUM has no decimal numbers; use 10*N factors")
    # Split on the operators outside annotations; the text before a leading '/' is '1'.
    components: list[str] = []
    operators: list[str] = []
    depth, start = 0, 0
    for i, char in enumerate(code):
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        elif char in "./" and depth == 0:
            components.append(code[start:i])
            operators.append(char)
            start = i + 1
    components.append(code[start:])
    if operators and operators[0] == "/" and components[0] == "":
        components[0] = "1"
    scale, dims = _parse_component(components[0], text)
    for op, component in zip(operators, components[1:], strict=True):
        s, d = _parse_component(component, text)
        if op == ".":
            scale, dims = scale * s, tuple(a + b for a, b in zip(dims, d, strict=True))
        else:
            scale, dims = scale / s, tuple(a - b for a, b in zip(dims, d, strict=True))
    if not math.isfinite(float(scale)) or float(scale) == 0:
        raise UnitError(f"unit {text!r}: scale factor is out of the floating-point range")
    return scale, dims


def parse_unit(text: str) -> Unit:
    """Parse a UCUM code (the subset of the module docstring) into a :class:`Unit`.

    Parameters
    ----------
    text
        A case-sensitive UCUM code such as ``"g/dL"``, ``"10*9/L"``, ``"{cells}/uL"``,
        ``"mg/m2"``, ``"h-1"`` or ``"1"``.

    Returns
    -------
    Unit
        The unit's scale to the coherent base units and its dimension.

    Raises
    ------
    UnitError
        If the text is empty, uses an unknown atom, a prefix on a non-metric atom (``kh``),
        parentheses, decimals or an unbalanced annotation; the message names the text.

    Examples
    --------
    >>> parse_unit("10*3/uL") == parse_unit("10*9/L")
    True
    >>> str(parse_unit("g/dL"))
    'mass/length^3'
    """
    scale, dims = _parse_exact(text)
    return Unit(float(scale), dims)


def conversion_factor(src: str, dst: str) -> float:
    """Return the factor that converts a value in unit ``src`` to unit ``dst``.

    The factor is computed exactly and rounded once, so hand-checked factors such as 0.1 or
    1e-3 come out as the nearest float.

    Parameters
    ----------
    src, dst
        UCUM codes of the same dimension.

    Returns
    -------
    float
        ``value_in_dst = value_in_src * conversion_factor(src, dst)``.

    Raises
    ------
    UnitError
        If either code does not parse, or the two have different dimensions (naming both).

    Examples
    --------
    >>> conversion_factor("g/L", "g/dL")
    0.1
    """
    src_scale, src_dims = _parse_exact(src)
    dst_scale, dst_dims = _parse_exact(dst)
    if src_dims != dst_dims:
        raise UnitError(
            f"cannot convert {src!r} ({Unit(1.0, src_dims)}) to {dst!r} "
            f"({Unit(1.0, dst_dims)}): the dimensions differ"
        )
    return float(src_scale / dst_scale)


TIME_UNITS: Mapping[str, float] = MappingProxyType(
    {"s": 1 / 3600, "min": 1 / 60, "h": 1.0, "d": 24.0, "wk": 168.0, "w": 168.0}
)
"""Time-unit codes accepted for model clocks, ``--time-unit`` and CLI durations, in hours.

The UCUM codes ``s``, ``min``, ``h``, ``d``, ``wk``, plus one alias: ``w`` for ``wk``
(DATA-FORMATS §0 writes ``6w``). Months and years are left out on purpose: they are not a
fixed number of days in a patient's calendar.
"""


def _hours(code: str, role: str) -> float:
    if code not in TIME_UNITS:
        raise UnitError(
            f"unknown {role} time unit {code!r}; expected one of {', '.join(TIME_UNITS)}"
        )
    return TIME_UNITS[code]


def time_factor(src: str, dst: str) -> float:
    """Return the factor that converts a time in ``src`` units to ``dst`` units.

    Parameters
    ----------
    src, dst
        Keys of :data:`TIME_UNITS` (``s``, ``min``, ``h``, ``d``, ``wk``, ``w``).

    Returns
    -------
    float
        ``time_in_dst = time_in_src * time_factor(src, dst)``.

    Raises
    ------
    UnitError
        If either code is not a key of :data:`TIME_UNITS`; the message lists the accepted ones.

    Examples
    --------
    >>> time_factor("wk", "h")
    168.0
    """
    return _hours(src, "source") / _hours(dst, "target")


_DURATION = re.compile(
    r"\s*(?P<value>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*(?P<unit>[A-Za-z]*)\s*"
)


def parse_duration(text: str, default_unit: str) -> float:
    """Parse a CLI duration such as ``600h``, ``25d``, ``6w``, ``1.5wk`` or ``30min``.

    DATA-FORMATS §0: a duration may carry a time-unit suffix from :data:`TIME_UNITS`; a bare
    number is already in ``default_unit`` (the model's time unit). Durations are finite and
    non-negative.

    Parameters
    ----------
    text
        The command-line text.
    default_unit
        The unit of a bare number and of the result; a key of :data:`TIME_UNITS`.

    Returns
    -------
    float
        The duration in ``default_unit``.

    Raises
    ------
    UnitError
        If the text is not a non-negative number with an optional known suffix, or
        ``default_unit`` is unknown; the message names the text.

    Examples
    --------
    >>> parse_duration("6w", "d")
    42.0
    """
    target = _hours(default_unit, "default")
    m = _DURATION.fullmatch(text)
    if m is None:
        raise UnitError(
            f"cannot read duration {text!r}; expected a non-negative number with an optional "
            f"time-unit suffix ({', '.join(TIME_UNITS)}), e.g. '600h', '25d', '6w'"
        )
    value = float(m.group("value"))
    if not math.isfinite(value):
        raise UnitError(f"duration {text!r} is not finite")
    suffix = m.group("unit")
    if not suffix:
        return value
    if suffix not in TIME_UNITS:
        raise UnitError(
            f"unknown time unit {suffix!r} in duration {text!r}; expected one of "
            f"{', '.join(TIME_UNITS)}"
        )
    return value * TIME_UNITS[suffix] / target


# ---------------------------------------------------------------------------------------------
# Dimension inference over sympy expressions
# ---------------------------------------------------------------------------------------------

# Functions whose argument must be a pure number, and whose value is one.
_TRANSCENDENTAL: tuple[type, ...] = (
    sympy.exp,
    sympy.log,
    sympy.sin,
    sympy.cos,
    sympy.tan,
    sympy.cot,
    sympy.sec,
    sympy.csc,
    sympy.asin,
    sympy.acos,
    sympy.atan,
    sympy.sinh,
    sympy.cosh,
    sympy.tanh,
    sympy.asinh,
    sympy.acosh,
    sympy.atanh,
    sympy.erf,
    sympy.erfc,
    sympy.gamma,
    sympy.loggamma,
    sympy.LambertW,
)
# Functions that keep the unit of their (single) argument.
_SAME_AS_ARGUMENT: tuple[type, ...] = (sympy.Abs, sympy.floor, sympy.ceiling, sympy.re, sympy.im)
# Functions of any argument whose value is a pure number.
_ANY_TO_NUMBER: tuple[type, ...] = (sympy.sign, sympy.Heaviside)


def _is_polymorphic(expr: sympy.Basic) -> bool:
    """0, ±oo and nan fit any dimension (``Max(0, x)``, ``dx/dt = 0``)."""
    return bool(expr.is_Number) and (expr.is_zero or not expr.is_finite)


def infer_unit(expr: sympy.Basic, units: Mapping[str, Unit | None], *, where: str) -> Unit | None:
    """Infer the unit of a sympy expression from the units of its symbols.

    Checks **dimensions**, not scale factors: ``mg/L`` plus ``g/L`` is fine, ``mg`` plus ``L``
    is not. Unknown units propagate as ``None`` and never cause an error, so a model with
    partly declared units is checked as far as its declarations go.

    Rules: numbers are dimensionless, except 0, ±oo and nan, which fit any dimension (their unit
    is ``None``); the terms of a sum, the arguments of ``Min``/``Max``/``Mod``/``atan2`` and the
    values of a ``Piecewise`` must share one dimension, and the result has the unit of the first
    known one; products and rational powers combine units; a symbolic or irrational exponent
    needs a dimensionless base and exponent; ``exp``, ``log``, trigonometric and similar
    functions need a dimensionless argument and give a number; ``Abs``, ``floor``, ``ceiling``
    keep their argument's unit; ``sign``, ``Heaviside``, relations and boolean operators give a
    number; the sides of a relation must agree unless one is a literal number (a threshold
    such as ``t < 24`` is read in the other side's unit); ``delayed(x, tau)`` has the unit of
    ``x`` (and a non-literal ``tau`` must be a time, if ``units`` has ``t``); any other function
    gives ``None``.

    Parameters
    ----------
    expr
        The expression.
    units
        Unit of each symbol by name, ``None`` for unknown; a missing name is unknown. The
        caller passes the model's clock as ``"t"``.

    Other Parameters
    ----------------
    where
        The model element being checked (``"d(N)/dt"``, ``"observable ANC"``); starts every
        message.

    Returns
    -------
    Unit or None
        The inferred unit, or ``None`` if it depends on an unknown unit.

    Raises
    ------
    UnitError
        If two known units that must agree have different dimensions, or a function that
        needs a dimensionless argument gets a dimensional one.

    Examples
    --------
    >>> x, V = sympy.symbols("x V")
    >>> str(infer_unit(x / V, {"x": parse_unit("mg"), "V": parse_unit("L")}, where="C"))
    'mass/length^3'
    """
    return _Inference(units, where).infer(expr)


@dataclass(frozen=True)
class _Inference:
    units: Mapping[str, Unit | None]
    where: str

    def fail(self, message: str) -> UnitError:
        return UnitError(f"{self.where}: {message}")

    def agree(self, args: tuple[sympy.Basic, ...], verb: str, expr: sympy.Basic) -> Unit | None:
        """Infer every argument; the known ones must share a dimension; return the first."""
        first: Unit | None = None
        first_arg: sympy.Basic | None = None
        for arg in args:
            unit = self.infer(arg)
            if unit is None:
                continue
            if first is None:
                first, first_arg = unit, arg
            elif not first.same_dimension(unit):
                raise self.fail(
                    f"cannot {verb} {first} and {unit} ({first_arg} and {arg} in {expr}); "
                    "they must have the same dimension"
                )
        return first

    def need_number(self, arg: sympy.Basic, what: str, expr: sympy.Basic) -> None:
        unit = self.infer(arg)
        if unit is not None and not unit.is_dimensionless():
            raise self.fail(f"{what} must be dimensionless in {expr}, got {arg} in {unit}")

    def infer(self, expr: sympy.Basic) -> Unit | None:
        # Symbol before Boolean: sympy's Symbol is also a Boolean.
        if isinstance(expr, sympy.Symbol):
            return self.units.get(expr.name)
        if _is_polymorphic(expr):
            return None
        if expr.is_Number or expr.is_NumberSymbol or expr is sympy.I:
            return DIMENSIONLESS
        handler = self._handler(expr)
        if handler is not None:
            return handler(expr)
        for arg in expr.args:  # unknown construct: still check inside it
            self.infer(arg)
        return None

    def _handler(self, expr: sympy.Basic) -> Callable[[sympy.Basic], Unit | None] | None:
        for kind, handler in (
            (sympy.Add, self._add),
            (sympy.Mul, self._mul),
            (sympy.Pow, self._pow),
            (sympy.Piecewise, self._piecewise),
            (sympy.Min, self._min_max),
            (sympy.Max, self._min_max),
            (sympy.Mod, self._mod),
            (sympy.atan2, self._atan2),
            (_TRANSCENDENTAL, self._transcendental),
            (_SAME_AS_ARGUMENT, self._same_as_argument),
            (_ANY_TO_NUMBER, self._any_to_number),
            (sympy.core.relational.Relational, self._relational),
            (sympy.logic.boolalg.Boolean, self._boolean),
        ):
            if isinstance(expr, kind):
                return handler
        if isinstance(expr, sympy.Function) and type(expr).__name__ == "delayed":
            return self._delayed
        return None

    def _add(self, expr: sympy.Basic) -> Unit | None:
        return self.agree(expr.args, "add", expr)

    def _mul(self, expr: sympy.Basic) -> Unit | None:
        factors = [self.infer(arg) for arg in expr.args]  # infer all: errors inside still count
        result = DIMENSIONLESS
        for unit in factors:
            if unit is None:
                return None
            result = result * unit
        return result

    def _pow(self, expr: sympy.Basic) -> Unit | None:
        base, exponent = expr.args
        base_unit = self.infer(base)
        if isinstance(exponent, sympy.Rational | sympy.Float):
            if base_unit is None:
                return None
            if isinstance(exponent, sympy.Float):  # 0.75 -> 3/4 through its shortest decimal
                power = Fraction(str(float(exponent)))
            else:
                power = Fraction(int(exponent.p), int(exponent.q))
            return base_unit**power
        self.need_number(exponent, "an exponent", expr)
        self.need_number(base, "the base of a non-rational power", expr)
        return None if base_unit is None else DIMENSIONLESS

    def _piecewise(self, expr: sympy.Basic) -> Unit | None:
        values = []
        for pair in expr.args:
            value, condition = pair.args
            self.infer(condition)
            values.append(value)
        return self.agree(tuple(values), "choose between", expr)

    def _min_max(self, expr: sympy.Basic) -> Unit | None:
        return self.agree(expr.args, "compare", expr)

    def _mod(self, expr: sympy.Basic) -> Unit | None:
        return self.agree(expr.args, "take the remainder of", expr)

    def _atan2(self, expr: sympy.Basic) -> Unit | None:
        self.agree(expr.args, "take atan2 of", expr)
        return DIMENSIONLESS

    def _transcendental(self, expr: sympy.Basic) -> Unit | None:
        name = type(expr).__name__
        for arg in expr.args:
            self.need_number(arg, f"the argument of {name}", expr)
        return DIMENSIONLESS

    def _same_as_argument(self, expr: sympy.Basic) -> Unit | None:
        return self.infer(expr.args[0])

    def _any_to_number(self, expr: sympy.Basic) -> Unit | None:
        for arg in expr.args:
            self.infer(arg)
        return DIMENSIONLESS

    def _relational(self, expr: sympy.Basic) -> Unit | None:
        lhs, rhs = expr.args
        if lhs.is_number or rhs.is_number:  # a literal threshold takes the other side's unit
            self.infer(lhs)
            self.infer(rhs)
        else:
            self.agree((lhs, rhs), "compare", expr)
        return DIMENSIONLESS

    def _boolean(self, expr: sympy.Basic) -> Unit | None:
        for arg in expr.args:
            self.infer(arg)
        return DIMENSIONLESS

    def _delayed(self, expr: sympy.Basic) -> Unit | None:
        if not expr.args:
            return None
        value = self.infer(expr.args[0])
        for lag in expr.args[1:2]:
            lag_unit = self.infer(lag)
            clock = self.units.get("t")
            if lag.is_number or lag_unit is None or clock is None:
                continue
            if not lag_unit.same_dimension(clock):
                raise self.fail(
                    f"the delay {lag} in {expr} has dimension {lag_unit}, expected {clock} "
                    "(the model's time)"
                )
        return value


def check_rate_unit(rate: Unit | None, state: Unit | None, time_unit: str, *, where: str) -> None:
    """Check that a right-hand side d(state)/dt has the dimension of state per time.

    Parameters
    ----------
    rate
        Inferred unit of the right-hand side (:func:`infer_unit`), ``None`` if unknown.
    state
        Declared unit of the state, ``None`` if unknown.
    time_unit
        The model's time unit, a key of :data:`TIME_UNITS`.

    Other Parameters
    ----------------
    where
        The model element (``"d(Prol)/dt"``); starts the message.

    Raises
    ------
    UnitError
        If both units are known and ``rate`` does not have the dimension of
        ``state / time_unit``, or ``time_unit`` is unknown.

    Examples
    --------
    >>> check_rate_unit(parse_unit("mg/h"), parse_unit("mg"), "h", where="d(A)/dt")
    """
    if rate is None or state is None:
        return
    clock = Unit(_hours(time_unit, "model") * 3600.0, _dims(time=1))
    expected = state / clock
    if not rate.same_dimension(expected):
        raise UnitError(
            f"{where}: the right-hand side has dimension {rate}, expected {expected} "
            f"(the state's dimension {state} per time, time unit {time_unit!r})"
        )
