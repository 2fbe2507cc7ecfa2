"""Tests of the UCUM-subset unit module; every expected number is worked out by hand."""

from __future__ import annotations

from fractions import Fraction

import pytest
import sympy

from hemolab._errors import ModelError, UnitError
from hemolab.model._units import (
    BASE_DIMENSIONS,
    DIMENSIONLESS,
    TIME_UNITS,
    Unit,
    check_rate_unit,
    conversion_factor,
    infer_unit,
    parse_duration,
    parse_unit,
    time_factor,
)

F = Fraction


def dims(mass: int = 0, length: int = 0, time: int = 0, amount: int = 0, iu: int = 0):
    return (F(mass), F(length), F(time), F(amount), F(iu))


# --- Unit ----------------------------------------------------------------------------------------


def test_unit_error_is_a_model_error_and_value_error():
    assert issubclass(UnitError, ModelError)
    assert issubclass(UnitError, ValueError)


def test_unit_algebra():
    g = Unit(1.0, dims(mass=1))
    litre = Unit(1e-3, dims(length=3))
    conc = g / litre
    assert conc.dims == dims(mass=1, length=-3)
    assert conc.scale == pytest.approx(1e3, rel=1e-15)
    assert (conc * litre).same_dimension(g)
    assert (litre ** F(1, 3)).dims == dims(length=1)
    assert (litre ** F(1, 3)).scale == pytest.approx(0.1, rel=1e-15)
    assert (g**2).dims == dims(mass=2)
    assert (g / g).is_dimensionless()
    assert Unit(1.0, (0, 0, 0, 0, 0)) == DIMENSIONLESS  # ints normalised to Fractions


def test_unit_str_names_the_dimension():
    assert BASE_DIMENSIONS == ("mass", "length", "time", "amount", "iu")
    assert str(DIMENSIONLESS) == "dimensionless"
    assert str(parse_unit("g/dL")) == "mass/length^3"
    assert str(parse_unit("h-1")) == "1/time"
    assert str(parse_unit("mmol/L/h")) == "amount/(length^3·time)"
    assert str(parse_unit("L") ** F(1, 2)) == "length^(3/2)"


@pytest.mark.parametrize(
    ("scale", "exponents", "match"),
    [(0.0, (0,) * 5, "scale"), (float("nan"), (0,) * 5, "scale"), (1.0, (0,) * 4, "5 dimension")],
)
def test_unit_rejects_invalid_fields(scale, exponents, match):
    with pytest.raises(UnitError, match=match):
        Unit(scale, exponents)


# --- parse_unit ----------------------------------------------------------------------------------

# DATA-FORMATS §B units, with scale to (g, m, s, mol, [iU]) worked out by hand.
SECTION_B = [
    ("g/dL", 1 / 1e-4, dims(mass=1, length=-3)),  # dL = 0.1 * 1e-3 m3
    ("g/L", 1e3, dims(mass=1, length=-3)),
    ("10*9/L", 1e12, dims(length=-3)),
    ("10*3/uL", 1e12, dims(length=-3)),  # uL = 1e-9 m3
    ("10*3/mm3", 1e12, dims(length=-3)),  # mm3 = 1e-9 m3
    ("/uL", 1e9, dims(length=-3)),
    ("10*12/L", 1e15, dims(length=-3)),
    ("10*6/uL", 1e15, dims(length=-3)),
    ("%", 0.01, dims()),
    ("L/L", 1.0, dims()),
    ("mg/m2", 1e-3, dims(mass=1, length=-2)),
    ("ug/kg", 1e-9, dims()),
    ("[iU]/kg", 1e-3, dims(mass=-1, iu=1)),
    ("mmol/L", 1.0, dims(amount=1, length=-3)),
    ("h-1", 1 / 3600, dims(time=-1)),
    ("1/h", 1 / 3600, dims(time=-1)),
    ("L/h", 1e-3 / 3600, dims(length=3, time=-1)),
    ("mg", 1e-3, dims(mass=1)),
    ("ug", 1e-6, dims(mass=1)),
    ("{cells}/uL", 1e9, dims(length=-3)),
]


@pytest.mark.parametrize(("text", "scale", "expected_dims"), SECTION_B)
def test_parse_section_b_units(text, scale, expected_dims):
    unit = parse_unit(text)
    assert unit.dims == expected_dims
    assert unit.scale == pytest.approx(scale, rel=1e-14)


@pytest.mark.parametrize(
    ("text", "scale", "expected_dims"),
    [
        ("1", 1.0, dims()),
        ("l", 1e-3, dims(length=3)),
        ("fL", 1e-18, dims(length=3)),  # MCV
        ("wk", 7 * 86400.0, dims(time=1)),
        ("mo", 30.4375 * 86400, dims(time=1)),  # UCUM mean Julian month
        ("a", 365.25 * 86400, dims(time=1)),  # UCUM Julian year
        ("U", 1e-6 / 60, dims(amount=1, time=-1)),  # umol/min
        ("U/L", 1e-3 / 60, dims(amount=1, length=-3, time=-1)),
        ("[IU]", 1.0, dims(iu=1)),
        ("10^9/L", 1e12, dims(length=-3)),
        ("10*-3", 1e-3, dims()),
        ("mg/kg/h", 1e-6 / 3600, dims(time=-1)),  # left to right: (mg/kg)/h
        ("mg.h/L", 1e-3 * 3600 / 1e-3, dims(mass=1, length=-3, time=1)),
        ("10*9{cells}/L", 1e12, dims(length=-3)),
        ("m2{BSA}", 1.0, dims(length=2)),
        ("s+2", 1.0, dims(time=2)),
        ("ms", 1e-3, dims(time=1)),
        ("mol", 1.0, dims(amount=1)),  # an atom, not milli-"ol"
        ("min", 60.0, dims(time=1)),  # an atom, not milli-"in"
    ],
)
def test_parse_other_codes(text, scale, expected_dims):
    unit = parse_unit(text)
    assert unit.dims == expected_dims
    assert unit.scale == pytest.approx(scale, rel=1e-14)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "empty unit ''"),
        ("   ", "empty unit"),
        ("furlong", "unknown unit atom 'furlong' in unit 'furlong'"),
        ("mg/dX", "unknown unit atom 'dX' in unit 'mg/dX'"),
        ("µL", "unknown unit atom 'µL'.*micro prefix as 'u'"),
        ("eq", "unknown unit atom 'eq'"),
        ("kh", "unit 'kh': prefix 'k' is not allowed on 'h'"),
        ("mg/", "unit 'mg/': missing unit"),
        ("mg..L", r"unit 'mg\.\.L': missing unit"),
        ("mg/(kg.h)", r"unit 'mg/\(kg\.h\)': parentheses"),
        ("1.5mg", r"unit '1\.5mg': UCUM has no decimal"),
        ("{cells/uL", r"unit '\{cells/uL': unbalanced"),
        ("0/L", "unit '0/L': a factor of 0"),
        ("10*400", r"unit '10\*400': factor '10\*400' is out of range"),
        ("MG", "unknown unit atom 'MG' in unit 'MG'"),  # UCUM is case-sensitive
    ],
)
def test_parse_errors_name_the_text(text, match):
    with pytest.raises(UnitError, match=match):
        parse_unit(text)


# --- conversion_factor ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("src", "dst", "factor"),
    [
        ("10*3/uL", "10*9/L", 1.0),
        ("10*3/mm3", "10*9/L", 1.0),
        ("/uL", "10*9/L", 1e-3),
        ("10*6/uL", "10*12/L", 1.0),
        ("g/L", "g/dL", 0.1),
        ("wk", "h", 168.0),
        ("mg", "ug", 1000.0),
        ("L/L", "%", 100.0),
        ("h-1", "d-1", 24.0),
        ("{cells}/uL", "/uL", 1.0),
    ],
)
def test_conversion_factors(src, dst, factor):
    # exact arithmetic, one rounding: the hand-checked factors come out as the nearest float
    assert conversion_factor(src, dst) == factor


def test_conversion_between_dimensions_names_both_units():
    with pytest.raises(UnitError, match=r"cannot convert 'mg' \(mass\) to 'mmol' \(amount\)"):
        conversion_factor("mg", "mmol")


def test_conversion_of_unknown_unit_names_it():
    with pytest.raises(UnitError, match="unknown unit atom 'cells'"):
        conversion_factor("cells/uL", "10*9/L")


# --- time units and durations ---------------------------------------------------------------------


def test_time_units_agree_with_ucum():
    for code, hours in TIME_UNITS.items():
        ucum = "wk" if code == "w" else code
        assert hours == pytest.approx(conversion_factor(ucum, "h"), rel=1e-15)


def test_time_factor():
    assert time_factor("wk", "h") == 168.0
    assert time_factor("d", "h") == 24.0
    assert time_factor("h", "d") == pytest.approx(1 / 24, rel=1e-15)
    assert time_factor("w", "d") == 7.0
    assert time_factor("min", "s") == pytest.approx(60.0, rel=1e-15)


def test_time_factor_unknown_lists_accepted():
    with pytest.raises(UnitError, match="unknown source time unit 'mo'; expected one of s, min"):
        time_factor("mo", "h")
    with pytest.raises(UnitError, match="unknown target time unit 'hours'"):
        time_factor("h", "hours")


@pytest.mark.parametrize(
    ("text", "default_unit", "value"),
    [
        ("600h", "h", 600.0),
        ("25d", "h", 600.0),
        ("6w", "d", 42.0),
        ("1.5wk", "h", 252.0),
        ("30min", "h", 0.5),
        ("3600s", "h", 1.0),
        ("48h", "d", 2.0),
        ("600", "h", 600.0),  # a bare number is in the default unit
        ("12.5", "d", 12.5),
        (" 2 d ", "h", 48.0),
        ("1e2h", "h", 100.0),
        ("0", "d", 0.0),
    ],
)
def test_parse_duration(text, default_unit, value):
    assert parse_duration(text, default_unit) == pytest.approx(value, rel=1e-15)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "cannot read duration ''"),
        ("abc", "cannot read duration 'abc'"),
        ("-5h", "cannot read duration '-5h'.*non-negative"),
        ("6 weeks", "unknown time unit 'weeks' in duration '6 weeks'.*s, min, h, d, wk, w"),
        ("30m", "unknown time unit 'm' in duration '30m'"),  # metre or month? never guess
        ("5H", "unknown time unit 'H'"),
        ("1.2.3h", "cannot read duration '1.2.3h'"),
        ("h", "cannot read duration 'h'"),
        ("1e999h", "not finite"),
    ],
)
def test_parse_duration_rejects_garbage(text, match):
    with pytest.raises(UnitError, match=match):
        parse_duration(text, "h")


def test_parse_duration_unknown_default_unit():
    with pytest.raises(UnitError, match="unknown default time unit 'hr'"):
        parse_duration("5", "hr")


# --- infer_unit -----------------------------------------------------------------------------------

x, y, V, k, n, t, tau = sympy.symbols("x y V k n t tau")
MG, G, L, H = parse_unit("mg"), parse_unit("g"), parse_unit("L"), parse_unit("h")
UNITS = {"x": MG, "y": G, "V": L, "k": parse_unit("h-1"), "n": DIMENSIONLESS, "t": H, "tau": H}


def infer(expr, units=UNITS):
    return infer_unit(expr, units, where="model 'm': state 'A' (ddt)")


def test_infer_product_quotient_and_power():
    assert infer(x / V) == MG / L
    assert infer(k * x).dims == dims(mass=1, time=-1)
    assert infer(x**2).dims == dims(mass=2)
    assert infer(sympy.sqrt(V)).dims == (F(0), F(3, 2), F(0), F(0), F(0))  # sqrt halves
    assert infer(V**0.5).dims == infer(sympy.sqrt(V)).dims
    assert infer(sympy.Integer(3)) == DIMENSIONLESS
    assert infer(sympy.pi * x / y).is_dimensionless()


def test_infer_sum_checks_dimension_not_scale():
    # mg + g: same dimension, different scale -> fine; the first known operand's unit
    got = infer(x + y)
    assert got is not None
    assert got.dims == dims(mass=1)
    assert got.scale in (MG.scale, G.scale)


def test_infer_sum_of_mass_and_volume_fails():
    with pytest.raises(UnitError, match=r"^model 'm': state 'A' \(ddt\): cannot add (mass|length)"):
        infer(x + V)


def test_infer_exp_of_mass_fails():
    with pytest.raises(UnitError, match=r"model 'm'.*argument of exp must be dimensionless"):
        infer(sympy.exp(x))
    assert infer(sympy.exp(-k * t)) == DIMENSIONLESS
    assert infer(sympy.log(x / y)) == DIMENSIONLESS


def test_infer_symbolic_exponent_needs_dimensionless_base():
    assert infer((x / y) ** n) == DIMENSIONLESS
    with pytest.raises(UnitError, match="base of a non-rational power must be dimensionless"):
        infer(x**n)
    with pytest.raises(UnitError, match="an exponent must be dimensionless"):
        infer((x / y) ** V)


def test_infer_unknown_propagates_without_error():
    z = sympy.Symbol("z")
    units = {**UNITS, "z": None}
    assert infer(x * z, units) is None
    assert infer(z, units) is None
    assert infer(sympy.Symbol("undeclared"), units) is None
    assert infer(sympy.exp(z), units) == DIMENSIONLESS
    assert infer(z**n, units) is None
    assert infer(sympy.Function("f")(x), units) is None
    # a sum is known from its known terms, and still checked among them
    assert infer(x + z, units) == MG
    with pytest.raises(UnitError, match="cannot add"):
        infer(x + V + z, units)


def test_infer_zero_fits_any_dimension():
    assert infer(sympy.Integer(0)) is None  # so that dA/dt = 0 passes check_rate_unit
    assert infer(sympy.Max(0, x - y)).dims == dims(mass=1)
    assert infer(sympy.Piecewise((x, t < tau), (0, True))).dims == dims(mass=1)


def test_infer_piecewise_min_max_abs_and_relations():
    assert infer(sympy.Abs(x)) == MG
    assert infer(sympy.Min(x, y)).dims == dims(mass=1)
    assert infer(t < tau) == DIMENSIONLESS
    assert infer(t < 24) == DIMENSIONLESS  # a literal threshold takes the other side's unit
    assert infer(sympy.And(t > 1, x > y)) == DIMENSIONLESS
    with pytest.raises(UnitError, match="cannot choose between"):
        infer(sympy.Piecewise((x, t < tau), (V, True)))
    with pytest.raises(UnitError, match="cannot compare"):
        infer(sympy.Max(x, V))
    with pytest.raises(UnitError, match="cannot compare"):
        infer(t < x)


def test_infer_delayed_has_the_unit_of_its_first_argument():
    delayed = sympy.Function("delayed")
    assert infer(delayed(x, tau)) == MG
    assert infer(delayed(x, 24)) == MG
    with pytest.raises(UnitError, match=r"the delay V .* expected time"):
        infer(delayed(x, V))


def test_infer_errors_inside_unknown_functions_still_count():
    with pytest.raises(UnitError, match="cannot add"):
        infer(sympy.Function("f")(x + V))


# --- check_rate_unit ------------------------------------------------------------------------------


def test_check_rate_unit_accepts_state_per_time():
    check_rate_unit(infer(-k * x), MG, "h", where="d(A)/dt")
    check_rate_unit(parse_unit("g/d"), MG, "h", where="d(A)/dt")  # scale is not checked
    check_rate_unit(None, MG, "h", where="d(A)/dt")
    check_rate_unit(MG, None, "h", where="d(A)/dt")


def test_check_rate_unit_rejects_wrong_dimension():
    with pytest.raises(UnitError, match=r"^d\(A\)/dt: .*dimension mass, expected mass/time"):
        check_rate_unit(MG, MG, "h", where="d(A)/dt")


def test_check_rate_unit_unknown_time_unit():
    with pytest.raises(UnitError, match="unknown model time unit 'hours'"):
        check_rate_unit(MG / H, MG, "hours", where="d(A)/dt")
