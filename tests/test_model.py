"""Model definition API: what is accepted, and the error for each kind of mistake."""

from __future__ import annotations

import pytest
import sympy as sp

import hemolab as hl


def decay(**changes) -> hl.Model:
    kwargs = dict(
        name="decay",
        time_unit="d",
        states=[hl.State("x", "-k*x", initial="x0", unit="10*9/L", positive=True)],
        parameters=[hl.Parameter("k", 0.1, unit="d-1"), hl.Parameter("x0", 1.0, unit="10*9/L")],
    )
    kwargs.update(changes)
    return hl.Model(**kwargs)


def test_valid_model_exposes_names_in_declaration_order():
    m = decay(covariates=[hl.Covariate("WT", 70.0, unit="kg")])
    assert m.state_names == ("x",)
    assert m.parameter_names == ("k", "x0")
    assert m.inputs == ("k", "x0", "WT")
    assert not m.has_delays


def test_unknown_symbol_names_the_element_and_the_name():
    with pytest.raises(hl.UnknownSymbolError, match=r"state 'x' \(ddt\).*\['kk'\]"):
        decay(states=[hl.State("x", "-kk*x", initial="x0")])


def test_unknown_symbol_in_observable():
    with pytest.raises(hl.UnknownSymbolError, match="observable 'ANC'"):
        decay(observables=[hl.Observable("ANC", "x*scale")])


def test_initial_value_may_not_read_states():
    with pytest.raises(hl.UnknownSymbolError, match=r"state 'x' \(initial\)"):
        decay(states=[hl.State("x", "-k*x", initial="x*2")])


def test_delay_without_history_is_an_error():
    with pytest.raises(hl.DelayError, match="declares no history"):
        decay(
            states=[hl.State("x", "-k*x(t - tau)", initial="x0")],
            parameters=[hl.Parameter("k", 0.1), hl.Parameter("x0", 1.0), hl.Parameter("tau", 2.0)],
        )


def test_constant_delay_must_be_positive_and_a_variable_one_must_be_declared():
    params = [hl.Parameter("k", 0.1), hl.Parameter("x0", 1.0), hl.Parameter("tau", -1.0)]
    with pytest.raises(hl.DelayError, match="must be > 0"):
        decay(states=[hl.State("x", "-k*x(t - tau)", initial="x0", history=1.0)], parameters=params)
    # a state-dependent delay is a model (checked > 0 while solving: test_dde_variable)
    m = decay(
        states=[hl.State("x", "-k*x(t - x)", initial="x0", history=1.0)],
        parameters=params[:2],
        check_units=False,
    )
    assert m.has_delays
    with pytest.raises(hl.UnknownSymbolError, match="nope"):
        decay(
            states=[hl.State("x", "-k*x(t - nope)", initial="x0", history=1.0)],
            parameters=params[:2],
            check_units=False,
        )


def test_delayed_state_must_be_written_t_minus_tau():
    with pytest.raises(hl.ModelError, match=r"must be written x\(t - tau\)"):
        decay(states=[hl.State("x", "-k*x(2*t)", initial="x0", history=1.0)])


def test_delay_terms_are_collected():
    m = hl.get_model("mackey_glass")
    assert [s for s, _ in m.delays] == ["x"]
    assert m.has_delays


def test_duplicate_and_reserved_names():
    with pytest.raises(hl.ModelError, match="already declared as a state"):
        decay(parameters=[hl.Parameter("x", 1.0), hl.Parameter("k", 1.0), hl.Parameter("x0", 1.0)])
    with pytest.raises(hl.ModelError, match="reserved"):
        decay(parameters=[hl.Parameter("exp", 1.0)])
    with pytest.raises(hl.ModelError, match="not valid"):
        decay(parameters=[hl.Parameter("2k", 1.0)])


def test_parameter_outside_bounds():
    with pytest.raises(hl.ModelError, match=r"parameter 'k' typical value -1.0 is outside"):
        decay(parameters=[hl.Parameter("k", -1.0, bounds=(0, 1)), hl.Parameter("x0", 1.0)])


def test_unit_mismatch_in_rate_is_detected():
    with pytest.raises(hl.UnitError, match=r"state 'x' \(ddt\)"):
        decay(
            parameters=[hl.Parameter("k", 0.1, unit="mg"), hl.Parameter("x0", 1.0, unit="10*9/L")]
        )


def test_unit_mismatch_in_sum():
    with pytest.raises(hl.UnitError, match="cannot add"):
        decay(
            states=[hl.State("x", "-k*x + x0", initial="x0", unit="10*9/L")],
            parameters=[hl.Parameter("k", 0.1, unit="d-1"), hl.Parameter("x0", 1.0, unit="mg")],
        )


def test_bad_time_unit_and_bad_unit_text():
    with pytest.raises(hl.UnitError, match="time_unit 'fortnight'"):
        decay(time_unit="fortnight")
    with pytest.raises(hl.UnitError, match="parameter 'k'"):
        decay(parameters=[hl.Parameter("k", 0.1, unit="furlong"), hl.Parameter("x0", 1.0)])


def test_assignment_cycle_is_reported():
    with pytest.raises(hl.ModelError, match="cycle"):
        decay(
            states=[hl.State("x", "-a*x", initial="x0")],
            assignments={"a": "b*k", "b": "a*k"},
        )


def test_syntax_error_names_element():
    with pytest.raises(hl.ModelError, match=r"state 'x' \(ddt\): cannot parse"):
        decay(states=[hl.State("x", "-k*x +* (", initial="x0")])


def test_assignments_are_sorted_topologically():
    m = decay(
        states=[hl.State("x", "-b*x", initial="x0")],
        assignments={"b": "a*2", "a": "k/2"},
    )
    assert [n for n, _ in m.parsed.assignments] == ["a", "b"]


def test_blood_spec_validation():
    spec = hl.BloodSpec(volume_ml="5000", cell_states=("y",))
    with pytest.raises(hl.ModelError, match="blood cell state 'y'"):
        decay(blood=spec)
    bad_key = hl.BloodSpec(volume_ml="5000", cell_states=("x",), transfusion_map={"HB": {"x": 1}})
    with pytest.raises(hl.ModelError, match="transfusion_map key 'HB'"):
        decay(blood=bad_key)
    ok = decay(
        blood=hl.BloodSpec(volume_ml="5000", cell_states=("x",), transfusion_map={"HB_G": {"x": 1}})
    )
    assert ok.accepts_blood_products


def test_with_parameters_returns_a_validated_copy():
    m = decay()
    m2 = m.with_parameters(k=0.5)
    assert m.parameter("k").value == 0.1
    assert m2.parameter("k").value == 0.5
    with pytest.raises(hl.MissingParameterError, match="no parameter"):
        m.with_parameters(kk=1.0)


def test_library_models_validate_and_cite():
    for name in hl.list_models():
        m = hl.get_model(name)
        assert m.citation and "doi" in m.citation.lower()
        assert m.observables
    with pytest.raises(hl.ModelError, match="no library model 'nope'"):
        hl.get_model("nope")


def test_delay_argument_is_parsed_as_t_minus_the_whole_expression():
    """``X(t - a - b)`` is X at t - a - b: a delay of a + b (a regression: it was a - b)."""
    from hemolab.model._expr import delayed, parse_expression

    def tau(text: str):
        (term,) = parse_expression(text, state_names=["x"], where="test").atoms(delayed)
        return term.args[1]

    a, b = sp.symbols("a b", real=True)
    assert tau("x(t - 10 - 2)") == 12
    assert tau("x(t - a - b)") == a + b
    assert tau("x(t - a + b)") == a - b
    assert tau("x(t - (a + b))") == a + b
    with pytest.raises(hl.ModelError, match="depends on time"):
        parse_expression("x(t - 2*t)", state_names=["x"], where="test")
