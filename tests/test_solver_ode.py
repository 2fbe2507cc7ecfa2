"""The explicit adaptive solver against closed forms and a tight SciPy reference."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import hemolab as hl
from hemolab._simulate import get_compiled
from hemolab.events._ops import (
    OP_ADD,
    OP_BOLUS,
    OP_MULTIPLY,
    OP_PARAM,
    OP_RATE,
    OP_REPLACE,
    OP_RESET,
)
from hemolab.solve import Status, run_actions
from tests._actions import table


@pytest.fixture(scope="module")
def decay_cm():
    m = hl.Model(
        "decay2",
        time_unit="h",
        states=[
            hl.State("x", "-k*x", initial="x0", positive=True),
            hl.State("y", "-k*y", initial="x0"),
        ],
        parameters=[hl.Parameter("k", 0.3), hl.Parameter("x0", 2.0)],
        observables=[hl.Observable("sum", "x + y")],
    )
    return get_compiled(m)


@pytest.fixture(scope="module")
def stiff_cm():
    """Relaxation towards a forcing: stiff for large k (explicit steps of ~3/k), never exact
    (not linear without a source term, not a log-state exponential)."""
    m = hl.Model(
        "relax",
        time_unit="h",
        states=[hl.State("z", "-k*(z - cos(w*t))", initial=1.0)],
        parameters=[hl.Parameter("k", 0.3, unit="1/h"), hl.Parameter("w", 1.0, unit="1/h")],
    )
    return get_compiled(m)


def test_exponential_decay_log_and_plain_states(decay_cm):
    grid = np.linspace(0, 20, 41)
    sol = run_actions(decay_cm, decay_cm.inputs_from(), table(grid), rtol=1e-9, atol=1e-12)
    exact = 2.0 * np.exp(-0.3 * grid)
    assert sol.status[0] == Status.OK
    np.testing.assert_allclose(sol.values[0, :, 0], exact, rtol=1e-8)
    np.testing.assert_allclose(sol.values[0, :, 1], exact, rtol=1e-8)
    np.testing.assert_allclose(sol.values[0, :, 2], 2 * exact, rtol=1e-8)


def test_batch_rows_are_independent_of_their_neighbours(decay_cm):
    """A patient's result does not depend on who shares its chunk (per-patient control)."""
    grid = np.linspace(0, 20, 11)
    k = np.array([0.01, 0.3, 3.0, 0.3])
    alone = run_actions(decay_cm, decay_cm.inputs_from({"k": k[1:2]}), table(grid))
    batch = run_actions(decay_cm, decay_cm.inputs_from({"k": k}), table(grid))
    np.testing.assert_array_equal(batch.values[1], alone.values[0])
    np.testing.assert_array_equal(batch.values[3], alone.values[0])


@pytest.mark.parametrize(
    "op,value,expected_jump",
    [(OP_BOLUS, 1.5, "add"), (OP_REPLACE, 7.0, "set"), (OP_MULTIPLY, 0.5, "mul")],
)
def test_state_events_are_exact_at_their_time(decay_cm, op, value, expected_jump):
    """x' = -k x with one state event at t = 5: closed form before and after."""
    grid = np.array([0.0, 2.5, 5.0, 7.5, 10.0])
    sol = run_actions(
        decay_cm, decay_cm.inputs_from(), table(grid, [(5.0, op, 1, value)]), rtol=1e-10, atol=1e-12
    )
    x5 = 2.0 * np.exp(-1.5)
    after = {"add": x5 + value, "set": value, "mul": x5 * value}[expected_jump]
    y = sol.values[0, :, 1]
    np.testing.assert_allclose(y[:2], 2.0 * np.exp(-0.3 * grid[:2]), rtol=1e-9)
    # grid output at the event time reports the post-event value (SBML convention)
    np.testing.assert_allclose(y[2], after, rtol=1e-9)
    np.testing.assert_allclose(y[3:], after * np.exp(-0.3 * (grid[3:] - 5.0)), rtol=1e-9)


def test_pre_event_output_reports_the_trough(decay_cm):
    grid = np.array([5.0])
    sol = run_actions(
        decay_cm, decay_cm.inputs_from(), table(grid, [(5.0, OP_BOLUS, 1, 1.0)], post=False)
    )
    np.testing.assert_allclose(sol.values[0, 0, 1], 2.0 * np.exp(-1.5), rtol=1e-6)


def test_infusion_rate_and_parameter_change(decay_cm):
    """y' = -k y + r: a 2-h infusion at rate 3 from t=1, then k changes at t=4."""
    events = [(1.0, OP_RATE, 1, 3.0), (3.0, OP_RATE, 1, -3.0), (4.0, OP_PARAM, 0, 0.1)]
    grid = np.array([1.0, 2.0, 3.0, 4.0, 6.0])
    sol = run_actions(decay_cm, decay_cm.inputs_from(), table(grid, events), rtol=1e-10, atol=1e-12)
    k, r = 0.3, 3.0

    def infuse(y0, dt):
        return y0 * np.exp(-k * dt) + r / k * (1 - np.exp(-k * dt))

    y1 = 2 * np.exp(-0.3)
    y3 = infuse(y1, 2.0)
    y4 = y3 * np.exp(-0.3)
    expected = [y1, infuse(y1, 1.0), y3, y4, y4 * np.exp(-0.1 * 2)]
    np.testing.assert_allclose(sol.values[0, :, 1], expected, rtol=1e-9)


def test_reset_returns_to_initial_state_and_stops_infusions(decay_cm):
    events = [(1.0, OP_RATE, 1, 3.0), (2.0, OP_RESET, 0, 0.0)]
    grid = np.array([2.0, 3.0])
    sol = run_actions(decay_cm, decay_cm.inputs_from(), table(grid, events), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sol.values[0, :, 1], [2.0, 2.0 * np.exp(-0.3)], rtol=1e-9)


def test_nonfinite_and_max_steps_are_per_patient_statuses(decay_cm, stiff_cm):
    grid = np.linspace(0, 10, 3)
    # patient 1 gets a negative value into its log state: nonfinite; the others finish
    events = [(1.0, OP_REPLACE, 0, -1.0)]
    inputs = decay_cm.inputs_from({"k": np.array([0.3, 0.3])})
    sol = run_actions(decay_cm, inputs, table(grid, events))
    assert list(sol.status) == [Status.NONFINITE, Status.NONFINITE]
    ok = run_actions(decay_cm, inputs, table(grid))
    assert list(ok.status) == [Status.OK, Status.OK]
    few = run_actions(
        stiff_cm, stiff_cm.inputs_from({"k": np.array([0.3, 300.0])}), table(grid), max_steps=100
    )
    assert few.status[0] == Status.OK and few.status[1] == Status.MAX_STEPS
    assert np.isnan(few.values[1]).all() and np.isfinite(few.values[0]).all()


def test_throw_names_failed_patients(stiff_cm):
    k = np.array([0.3, 300.0, 0.2])
    res = hl.simulate(stiff_cm, params={"k": k}, t_end=10.0, max_steps=100)
    assert list(res.failed) == [1]
    assert res.status_labels == ["ok", "max_steps", "ok"]
    with pytest.raises(hl.SolveError, match=r"batch indices: 1") as info:
        hl.simulate(stiff_cm, params={"k": k}, t_end=10.0, max_steps=100, throw=True)
    assert info.value.indices == (1,)


def oscillator_reference(t_eval, *, t_end, rtol, atol):
    """SciPy DOP853 solution of u' = v, v' = -4u - 0.1v from (1, 0): the independent reference."""
    return solve_ivp(
        lambda t, y: [y[1], -4 * y[0] - 0.1 * y[1]],
        (0, t_end),
        [1.0, 0.0],
        method="DOP853",
        rtol=rtol,
        atol=atol,
        t_eval=t_eval,
    )


def _van_der_pol_like():
    return hl.Model(
        "oscillator",
        time_unit="h",
        states=[hl.State("u", "v", initial=1.0), hl.State("v", "-w*w*u - c*v", initial=0.0)],
        parameters=[hl.Parameter("w", 2.0), hl.Parameter("c", 0.1)],
    )


@pytest.mark.parametrize("post", [True, False])
def test_dense_output_matches_scipy_dop853(post):
    cm = get_compiled(_van_der_pol_like())
    grid = np.linspace(0, 30, 301)  # many outputs per step: dense output, not landing
    sol = run_actions(
        cm, cm.inputs_from(), table(grid, post=post), rtol=1e-10, atol=1e-12, closed_form=False
    )
    ref = oscillator_reference(grid, t_end=30, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(sol.values[0, :, :2], ref.y.T, atol=2e-8)
    sparse = run_actions(
        cm, cm.inputs_from(), table([0.0, 30.0]), rtol=1e-10, atol=1e-12, closed_form=False
    )
    assert sol.n_accepted[0] == sparse.n_accepted[0]  # outputs never force steps


def test_convergence_order_of_steps_and_dense_output():
    """Fixed steps h and h/2: global error ratio ≈ 2^5 at step ends, ≥ 2^4 in between."""
    cm = get_compiled(_van_der_pol_like())
    exact = oscillator_reference([3.2, 3.23], t_end=4, rtol=3e-14, atol=1e-15)
    errors = []
    for h in (0.1, 0.05, 0.025):
        sol = run_actions(
            cm, cm.inputs_from(), table([3.2, 3.23], post=True), fixed_step=h, closed_form=False
        )
        errors.append(np.abs(sol.values[0, :, 0] - exact.y[0]))
    errors = np.array(errors)
    order_nodes = np.log2(errors[:-1, 0] / errors[1:, 0])
    order_dense = np.log2(errors[:-1, 1] / errors[1:, 1])
    assert np.all(order_nodes > 4.6), order_nodes
    assert np.all(order_dense > 3.8), order_dense


def test_no_recompilation_for_new_population_sizes(decay_cm):
    grid = np.linspace(0, 5, 6)
    run_actions(decay_cm, decay_cm.inputs_from({"k": np.full(70, 0.3)}), table(grid))
    from hemolab.solve._engine import _compiled_solver

    fn = _compiled_solver(decay_cm, 8, 1024)
    before = fn._cache_size()
    for n in (65, 100, 129, 256):
        run_actions(decay_cm, decay_cm.inputs_from({"k": np.full(n, 0.3)}), table(grid))
    assert fn._cache_size() == before


@pytest.mark.slow
def test_p1_patients_against_tight_reference(p1_compiled):
    """BENCHMARKS.md P1: patient 0's nadir 1.71012835 at 672 h, and the hard patient 5358."""
    from bench.problems import p1_patient
    from bench.references import p1_reference

    grid = np.arange(0, 3025, 24.0)
    doses = [(t, OP_BOLUS, 0, 100.0) for t in np.arange(6) * 504.0]
    ids = [0, 1, 2, 5358]
    pats = [p1_patient(i) for i in ids]
    params = {
        k: np.array([p[k] for p in pats]) for k in ("CL", "V", "MTT", "Circ0", "Slope", "gamma")
    }
    sol = run_actions(p1_compiled, p1_compiled.inputs_from(params), table(grid, doses))
    assert (sol.status == Status.OK).all()
    circ = sol.values[:, :, 5]
    assert abs(circ[0].min() - 1.71012835) / 1.71012835 < 1e-5
    assert grid[circ[0].argmin()] == 672.0
    for row, p in zip(circ, pats, strict=True):
        ref = p1_reference(p, grid)
        np.testing.assert_allclose(row, ref, rtol=1e-3)
    # patient 5358: nadir 1.9678e-4 at 3000 h (others finish 3-170x off at this tolerance)
    np.testing.assert_allclose(circ[3].min(), 1.9678e-4, rtol=1e-3)
    assert grid[circ[3].argmin()] == 3000.0


def test_jax_is_float64():
    assert jax.config.read("jax_enable_x64")


def test_linear_models_are_solved_in_closed_form():
    """The oscillator is linear with constant coefficients: exact between events, no steps
    forced by its dynamics (complex eigenvalues through the matrix exponential)."""
    cm = get_compiled(_van_der_pol_like())
    assert cm.linear_states == (0, 1)
    grid = np.linspace(0, 30, 61)
    sol = run_actions(cm, cm.inputs_from(), table(grid), rtol=1e-6, atol=1e-8)
    ref = oscillator_reference(grid, t_end=30, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(sol.values[0, :, :2], ref.y.T, atol=1e-11)
    assert sol.n_accepted[0] < 20


def test_closed_form_pk_agrees_with_integration_and_takes_fewer_steps(p1_compiled):
    """P1's one-compartment PK: closed form vs numerically integrated, same answer."""
    grid = np.arange(0, 1009, 24.0)
    doses = [(t, OP_BOLUS, 0, 100.0) for t in (0.0, 504.0)]
    inputs = p1_compiled.inputs_from({"CL": np.array([20.0, 36.0, 60.0])})
    exact = run_actions(p1_compiled, inputs, table(grid, doses), rtol=1e-9, atol=1e-11)
    numeric = run_actions(
        p1_compiled, inputs, table(grid, doses), rtol=1e-9, atol=1e-11, closed_form=False
    )
    np.testing.assert_allclose(exact.values, numeric.values, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(
        exact.values[:, 1, 0], 100 * np.exp(-24 * inputs[:, 0] / 30), rtol=1e-12
    )
    assert exact.n_steps.mean() < 0.5 * numeric.n_steps.mean()


def test_dose_only_action_branch_equals_the_general_one(monkeypatch):
    """Tables of outputs and doses take a lighter action branch (one state column changed);
    it gives the general body's numbers (to rounding: that body also carries infusion rates
    and compartment switches, which change how XLA contracts the sums) and failure statuses."""
    import hemolab.solve._engine as engine

    m = hl.Model(
        "dose_branch",
        time_unit="h",
        states=[
            hl.State("x", "0.1 - k*x*x", initial=1.0, positive=True),  # log state, nonlinear
            hl.State("y", "-k*y + x", initial=0.5),  # plain state
        ],
        parameters=[hl.Parameter("k", 0.3)],
    )
    cm = get_compiled(m)
    inputs = cm.inputs_from({"k": np.array([0.2, 0.3, 0.5])})
    grid = np.linspace(0, 6, 13)
    doses = [(1.0, OP_BOLUS, 0, 2.0), (2.5, OP_ADD, 1, -3.0), (2.5, OP_ADD, 0, 0.5)]
    bad = [*doses, (4.0, OP_ADD, 0, -50.0)]  # the log state would go negative
    assert engine._op_spec(table(grid, doses).op, table(grid, doses).target)[0] is not None
    light = [run_actions(cm, inputs, table(grid, ev), rtol=1e-9) for ev in (doses, bad)]
    monkeypatch.setattr(engine, "_SIMPLE_OPS", frozenset())  # force the general body
    general = [run_actions(cm, inputs, table(grid, ev), rtol=1e-9) for ev in (doses, bad)]
    for a, b in zip(light, general, strict=True):
        np.testing.assert_allclose(a.values, b.values, rtol=1e-13, atol=0)
        np.testing.assert_array_equal(a.status, b.status)
    assert (light[0].status == Status.OK).all()
    assert (light[1].status == Status.NONFINITE).all()
    # the doses took effect: x jumps by 2 at t = 1, y by -3 at t = 2.5
    assert light[0].values[0, 2, 0] > light[0].values[0, 1, 0] + 1.0


def test_closed_form_exponential_does_not_depend_on_the_batch() -> None:
    """A patient's propagator is bitwise the same whatever else is in its chunk, and equals
    SciPy's ``expm`` (the chunked population runs rely on the first)."""
    from scipy.linalg import expm

    from hemolab.solve._loop import expm_small

    a = np.random.default_rng(0).standard_normal((40, 4, 4)) * 3
    a[0] = np.diag([-1.0, -1e6, 0.0, -2.0])  # a stiff one: scaled and squared many times
    f = jax.jit(expm_small)
    full = np.asarray(f(jnp.asarray(a)))
    for n in (1, 3, 16, 17, 33):
        assert np.array_equal(np.asarray(f(jnp.asarray(a[:n]))), full[:n]), n
    for k in range(1, 40):
        np.testing.assert_allclose(
            full[k], expm(a[k]), rtol=1e-12, atol=1e-12 * np.abs(expm(a[k])).max()
        )
    np.testing.assert_allclose(full[0], expm(a[0]), atol=1e-15)
