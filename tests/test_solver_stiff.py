"""The stiff Rosenbrock stepper (Rodas4) and stiffness detection, against independent references.

References: SciPy's Radau at ``rtol=1e-10`` (Robertson, Michor CML), closed forms (linear
systems with eigenvalues -1 and -1e6, Prothero–Robinson), DOP853 at ``rtol=3e-14`` for the
convergence order.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import hemolab as hl
from hemolab._errors import UnsupportedError
from hemolab._simulate import get_compiled
from hemolab.events._ops import OP_BOLUS
from hemolab.solve import Status, run_actions
from hemolab.solve._choice import choose_stepper
from hemolab.solve._dopri5 import DOPRI5
from hemolab.solve._rosenbrock import RODAS, _Rodas4
from hemolab.solve._stiffness import is_stiff, stiffness_index
from tests._actions import table

ROBERTSON_T = np.array([0.4, 40.0, 4e3, 4e5])


def _robertson_rhs(t, y):
    return [
        -0.04 * y[0] + 1e4 * y[1] * y[2],
        0.04 * y[0] - 3e7 * y[1] ** 2 - 1e4 * y[1] * y[2],
        3e7 * y[1] ** 2,
    ]


@pytest.fixture(scope="module")
def robertson() -> hl.CompiledModel:
    """Robertson's chemical kinetics (Hairer & Wanner II, §IV.1, problem ROBER)."""
    m = hl.Model(
        "robertson",
        time_unit="s",
        states=[
            hl.State("y1", "-k1*y1 + k3*y2*y3", initial=1.0),
            hl.State("y2", "k1*y1 - k2*y2**2 - k3*y2*y3", initial=0.0),
            hl.State("y3", "k2*y2**2", initial=0.0),
        ],
        parameters=[hl.Parameter("k1", 0.04), hl.Parameter("k2", 3e7), hl.Parameter("k3", 1e4)],
    )
    return get_compiled(m)


@pytest.fixture(scope="module")
def robertson_ref() -> np.ndarray:
    ref = solve_ivp(
        _robertson_rhs, (0, 4e5), [1.0, 0.0, 0.0], method="Radau", rtol=1e-10, atol=1e-14,
        t_eval=ROBERTSON_T,
    )  # fmt: skip
    return ref.y.T


@pytest.fixture(scope="module")
def linear() -> hl.CompiledModel:
    """y1' = -y1, y2' = (1e6 - 1) y1 - 1e6 y2: eigenvalues -1 and -1e6.

    With z = y2 - y1, z' = -1e6 z, so y1 = e^-t and y2 = e^-t + (y2(0) - 1) e^(-1e6 t).
    """
    m = hl.Model(
        "stiff_linear",
        time_unit="h",
        states=[
            hl.State("y1", "-y1", initial=1.0),
            hl.State("y2", "(L - 1)*y1 - L*y2", initial="y20"),
        ],
        parameters=[hl.Parameter("L", 1e6), hl.Parameter("y20", 2.0)],
    )
    return get_compiled(m)


def michor_x() -> hl.Model:
    """Michor 2005 normal (x) lineage, untreated (MODELS.md §3, λ = -0.5 (x0 - 2e6))."""
    rates = dict(d0=0.003, d1=0.008, d2=0.05, d3=1.0, a_x=0.8, b_x=5.0, c_x=100.0)
    return hl.Model(
        "michor_x",
        time_unit="d",
        states=[
            hl.State("x0", "(lam - d0)*x0", initial="x0_init", positive=True),
            hl.State("x1", "a_x*x0 - d1*x1", initial="x1_init", positive=True),
            hl.State("x2", "b_x*x1 - d2*x2", initial=2e10, positive=True),
            hl.State("x3", "c_x*x2 - d3*x3", initial=2e12, positive=True),
        ],
        parameters=[
            *(hl.Parameter(k, v, unit="d-1") for k, v in rates.items()),
            hl.Parameter("kappa", 0.5, unit="d-1"),
            hl.Parameter("x0_star", 2e6),
            hl.Parameter("x0_init", 2e6),
            hl.Parameter("x1_init", 2e8),
        ],
        assignments={"lam": "-kappa*(x0 - x0_star)"},
        citation="Michor F et al. Nature 2005;435:1267-1270 (myelo michor05.R parameters)",
    )


def _michor_rhs(t, x):
    lam = -0.5 * (x[0] - 2e6)
    return [
        (lam - 0.003) * x[0],
        0.8 * x[0] - 0.008 * x[1],
        5.0 * x[1] - 0.05 * x[2],
        100.0 * x[2] - 1.0 * x[3],
    ]


def _decay() -> hl.Model:
    return hl.Model(
        "plain_decay",
        time_unit="d",
        states=[hl.State("x", "-k*x", initial=1.0)],
        parameters=[hl.Parameter("k", 0.1)],
    )


# ---------------------------------------------------------------- the stepper on its own ------


def test_l_stable_and_stiffly_accurate_single_step():
    """y' = λy with hλ = -1e12: one step damps the solution to ~0 (R(-inf) = 0)."""
    lam = -1e12
    u0 = jnp.ones((1, 1))
    st = RODAS.step(lambda t, u: lam * u, jnp.zeros(1), u0, jnp.ones(1), lam * u0)
    assert abs(float(st.u_new[0, 0])) < 1e-10
    # a mild step: the Rodas4 stability function agrees with exp(hλ) to O((hλ)^5)
    z = -0.01
    st = RODAS.step(lambda t, u: z * u, jnp.zeros(1), u0, jnp.ones(1), z * u0)
    assert abs(float(st.u_new[0, 0]) - np.exp(z)) < 1e-11


def test_dense_output_contract():
    """θ = 0 gives u0, θ = 1 gives u_new exactly, and shapes broadcast as in ``_dopri5.py``."""

    def f(t, u):
        return jnp.stack([-u[:, 0] * u[:, 1], u[:, 0] - 3.0 * u[:, 1] + jnp.sin(t)], axis=1)

    u0 = jnp.array([[1.0, 0.5], [2.0, -1.0], [0.3, 0.2]])
    t, h = jnp.array([0.0, 1.0, 2.0]), jnp.array([0.1, 0.2, 0.05])
    st = jax.jit(lambda t, u, h: RODAS.step(f, t, u, h, f(t, u)))(t, u0, h)
    assert st.coef.shape == (3, 2, RODAS.n_coef)
    np.testing.assert_array_equal(RODAS.dense(u0, h, st.coef, jnp.ones(3)), st.u_new)
    np.testing.assert_array_equal(RODAS.dense(u0, h, st.coef, jnp.zeros(3)), u0)
    np.testing.assert_allclose(st.f_new, f(t + h, st.u_new), rtol=1e-14)
    # one state of one segment, as the delay history calls it: (C, 1), (C,), (C, 1, q), (C,)
    one = RODAS.dense(u0[:, :1], h, st.coef[:, :1, :], jnp.full(3, 0.5))
    np.testing.assert_array_equal(one, RODAS.dense(u0, h, st.coef, jnp.full(3, 0.5))[:, :1])


def test_step_is_forward_differentiable():
    """d u_new / d k of one step of y' = -k y matches a central difference (no callbacks)."""

    @jax.jit
    def u_new(k):
        u0 = jnp.ones((2, 1))
        return RODAS.step(lambda t, u: -k * u, jnp.zeros(2), u0, jnp.full(2, 0.5), -k * u0).u_new

    k0 = 3.0
    d_fwd = jax.jit(jax.jacfwd(u_new))(k0)
    eps = 1e-6
    d_fd = (u_new(k0 + eps) - u_new(k0 - eps)) / (2 * eps)
    np.testing.assert_allclose(d_fwd, d_fd, rtol=1e-7)


def test_dense_error_estimate_tracks_interpolation_error():
    """Prothero–Robinson, L = 1e6, one step on the slow manifold: the interpolant's error at
    θ = 1/4 is ~500x the step's own estimate U_6; the defect estimate sees it (within 5 %)."""
    lam, h, t0 = 1e6, 0.1, 0.3

    def f(t, u):
        return -lam * (u - jnp.cos(t)[:, None]) - jnp.sin(t)[:, None]

    t, u0, hh = jnp.array([t0]), jnp.array([[np.cos(t0)]]), jnp.array([h])
    step = jax.jit(lambda t, u, h: RODAS.step(f, t, u, h, f(t, u)))
    plain = _Rodas4(dense_control=False, name="rodas-plain")
    st, st_plain = (
        step(t, u0, hh),
        jax.jit(lambda t, u, h: plain.step(f, t, u, h, f(t, u)))(t, u0, hh),
    )
    true = float(RODAS.dense(u0, hh, st.coef, jnp.array([0.25]))[0, 0]) - np.cos(t0 + h / 4)
    assert abs(true) > 300 * abs(float(st_plain.err[0, 0]))
    np.testing.assert_allclose(float(st.err[0, 0]), abs(true), rtol=0.05)
    np.testing.assert_array_equal(st.u_new, st_plain.u_new)


# ---------------------------------------------------------------- through the solver loop -----


def test_robertson_against_radau(robertson, robertson_ref):
    """Hairer & Wanner's ROBER at t = 0.4 ... 4e5 within 1e-4 relative (rtol 1e-6)."""
    res = hl.simulate(robertson, grid=ROBERTSON_T, solver="rodas", rtol=1e-6, atol=1e-10)
    assert res.status_labels == ["ok"]
    assert res.metadata["hemolab.solver"] == "rodas"
    got = np.stack([res.variable(s)[0] for s in ("y1", "y2", "y3")], axis=1)
    np.testing.assert_allclose(got, robertson_ref, rtol=1e-4)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-6)  # conservation law


def test_auto_detects_robertson_and_picks_rodas(robertson, robertson_ref):
    assert is_stiff(robertson, robertson.inputs_from())
    assert choose_stepper(robertson, robertson.inputs_from(), "auto") is RODAS
    res = hl.simulate(robertson, grid=ROBERTSON_T, rtol=1e-6, atol=1e-10)
    assert res.metadata["hemolab.solver"] == "rodas"
    np.testing.assert_allclose(res.variable("y1")[0], robertson_ref[:, 0], rtol=1e-4)


def test_robertson_steps_orders_of_magnitude_below_dopri5(robertson):
    """Rodas4 needs a few hundred steps to 4e5; DP5 is stability-bound (h ≲ 3.3/|λ|, λ ≈ -1e4)."""
    table_ = table(ROBERTSON_T.tolist())
    inputs = robertson.inputs_from()
    rodas = run_actions(
        robertson, inputs, table_, rtol=1e-6, atol=1e-10, max_steps=20_000, stepper=RODAS
    )
    assert rodas.status[0] == Status.OK
    assert rodas.n_steps[0] < 500, rodas.n_steps
    dp5 = run_actions(
        robertson, inputs, table_, rtol=1e-6, atol=1e-10, max_steps=20_000, stepper=DOPRI5
    )
    assert dp5.status[0] == Status.MAX_STEPS
    assert dp5.n_steps[0] >= 40 * rodas.n_steps[0]


def test_linear_stiff_system_closed_form(linear):
    """Eigenvalues -1 and -1e6, including the 1e-6-wide initial layer, to 1e-6 relative."""
    grid = np.array([0.0, 1e-7, 1e-6, 3e-6, 1e-3, 0.1, 1.0, 5.0, 10.0])
    sol = run_actions(
        linear, linear.inputs_from(), table(grid.tolist()), rtol=1e-8, atol=1e-12, stepper=RODAS
    )
    assert sol.status[0] == Status.OK
    exact_y1 = np.exp(-grid)
    exact_y2 = np.exp(-grid) + np.exp(-1e6 * grid)
    np.testing.assert_allclose(sol.values[0, :, 0], exact_y1, rtol=1e-6)
    np.testing.assert_allclose(sol.values[0, :, 1], exact_y2, rtol=1e-6)
    assert sol.n_steps[0] < 500, sol.n_steps


def test_bolus_event_is_exact_with_rodas(linear):
    """A bolus of 1 into y2 at t = 5 re-opens the fast layer: y2 = e^-t + e^(-1e6 (t-5))."""
    grid = np.array([2.5, 5.0, 5.0 + 1e-6, 5.0 + 1e-5, 7.5, 10.0])
    sol = run_actions(
        linear,
        linear.inputs_from({"y20": 1.0}),
        table(grid.tolist(), [(5.0, OP_BOLUS, 1, 1.0)]),
        rtol=1e-9,
        atol=1e-12,
        stepper=RODAS,
    )
    assert sol.status[0] == Status.OK
    exact = np.exp(-grid) + np.where(grid >= 5.0, np.exp(-1e6 * np.maximum(grid - 5.0, 0.0)), 0.0)
    np.testing.assert_allclose(sol.values[0, :, 0], np.exp(-grid), rtol=1e-7)
    np.testing.assert_allclose(sol.values[0, :, 1], exact, rtol=1e-7)


def test_prothero_robinson_non_autonomous():
    """y' = -1e6 (y - cos t) - sin t, y(0) = 2: y = cos t + e^(-1e6 t) (exercises df/dt)."""
    m = hl.Model(
        "prothero_robinson",
        time_unit="h",
        states=[hl.State("y", "-L*(y - cos(w*t)) - w*sin(w*t)", initial=2.0)],
        parameters=[hl.Parameter("L", 1e6), hl.Parameter("w", 1.0, unit="h-1")],
    )
    cm = get_compiled(m)
    grid = np.array([0.0, 1e-6, 0.5, 1.0, 2.0, 3.0])
    sol = run_actions(
        cm, cm.inputs_from(), table(grid.tolist()), rtol=1e-8, atol=1e-12, stepper=RODAS
    )
    exact = np.cos(grid) + np.exp(-1e6 * grid)
    np.testing.assert_allclose(sol.values[0, :, 0], exact, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("x1_init", [2e8, 1e8], ids=["listed-state", "x1-halved"])
def test_michor_cml_against_radau(x1_init):
    """MODELS.md §3 normal lineage for 100 days (the eigenvalue near -1e6/day) to 1e-5."""
    cm = get_compiled(michor_x())
    grid = np.linspace(0.0, 100.0, 11)
    res = hl.simulate(
        cm, grid=grid, params={"x1_init": x1_init}, solver="rodas", rtol=1e-8, atol=1e-10
    )
    assert res.status_labels == ["ok"]
    got = np.stack([res.variable(f"x{i}")[0] for i in range(4)], axis=1)
    x_init = [2e6, x1_init, 2e10, 2e12]
    ref = solve_ivp(
        _michor_rhs, (0, 100), x_init, method="Radau", rtol=1e-10, atol=1e-14, t_eval=grid
    )
    np.testing.assert_allclose(got, ref.y.T, rtol=1e-5)
    assert res.n_steps[0] < 500, res.n_steps


def test_is_stiff_classifies_reference_models(robertson, p1_compiled):
    michor = get_compiled(michor_x())
    assert is_stiff(michor, michor.inputs_from())
    # the stiff eigenvalue itself: -0.5 * 2e6 - d0 against the slowest rate d1 = 0.008
    np.testing.assert_allclose(stiffness_index(michor, michor.inputs_from()), 1e6 / 0.008, 1e-3)
    assert is_stiff(robertson, robertson.inputs_from())
    decay = get_compiled(_decay())
    assert not is_stiff(decay, decay.inputs_from({"k": [0.1, 1e6]}))
    assert not is_stiff(p1_compiled, p1_compiled.inputs_from())  # index ~140: DP5 is cheaper
    # docetaxel Friberg: its fast 3-compartment PK (index ~660 over all states) is solved in
    # closed form, so only the PD's rates count (index ~6): DP5, measured 3.7x faster (note 004)
    doc = get_compiled(hl.get_model("friberg_docetaxel"))
    assert doc.linear_states == (0, 1, 2)
    np.testing.assert_allclose(stiffness_index(doc, doc.inputs_from()), 6.0, rtol=0.05)
    assert not is_stiff(doc, doc.inputs_from())
    mg = get_compiled(hl.get_model("mackey_glass"))
    assert not is_stiff(mg, mg.inputs_from())  # delays: no stiff DDE stepper yet


def test_explicit_flag_and_delay_models_are_honoured(robertson):
    forced = get_compiled(
        hl.Model("robertson_flagged", time_unit="s", states=list(robertson.model.states),
                 parameters=list(robertson.model.parameters), stiff=False)
    )  # fmt: skip
    assert choose_stepper(forced, forced.inputs_from(), "auto") is DOPRI5
    mg = get_compiled(hl.get_model("mackey_glass"))
    with pytest.raises(UnsupportedError, match="delays"):
        choose_stepper(mg, mg.inputs_from(), "rodas")


@pytest.mark.slow
def test_convergence_order_is_four():
    """Fixed steps h, h/2, h/4 on a forced oscillator: global error ratio ≈ 2^4."""
    m = hl.Model(
        "forced_oscillator",
        time_unit="h",
        states=[
            hl.State("x", "v", initial=1.0),
            hl.State("v", "-4*x - 0.1*v + 0.5*sin(w*t)*x", initial=0.0),
        ],
        parameters=[hl.Parameter("w", 2.0, unit="h-1")],
    )
    cm = get_compiled(m)
    exact = solve_ivp(
        lambda t, y: [y[1], -4 * y[0] - 0.1 * y[1] + 0.5 * np.sin(2 * t) * y[0]],
        (0, 4),
        [1.0, 0.0],
        method="DOP853",
        rtol=3e-14,
        atol=1e-15,
        t_eval=[3.2, 3.23],
    )
    errors = []
    for h in (0.1, 0.05, 0.025):
        sol = run_actions(cm, cm.inputs_from(), table([3.2, 3.23]), fixed_step=h, stepper=RODAS)
        errors.append(np.abs(sol.values[0, :, 0] - exact.y[0]))
    errors = np.array(errors)
    order_nodes = np.log2(errors[:-1, 0] / errors[1:, 0])
    order_dense = np.log2(errors[:-1, 1] / errors[1:, 1])
    assert np.all((order_nodes > 3.8) & (order_nodes < 4.2)), order_nodes
    assert np.all(order_dense > 3.6), order_dense
