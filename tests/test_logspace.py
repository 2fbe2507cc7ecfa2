"""The symbolic solver-coordinate right-hand side (``compile._logspace``) against the literal."""

from __future__ import annotations

import numpy as np
import pytest

import hemolab as hl
from hemolab.compile import _logspace
from hemolab.compile._compiled import compile_model


def _literal(cm: hl.CompiledModel, t: float, u: np.ndarray, x_lin: np.ndarray, p: np.ndarray):
    """``du/dt`` the long way: natural states, ``rhs``, then ``/y`` for log states."""
    y = np.where(cm.log_mask, np.exp(u), u)
    y[list(cm.linear_states)] = x_lin
    dy = np.asarray(cm.rhs(t, y, p, np.zeros(0)))
    du = np.where(cm.log_mask, dy / y, dy)
    du[list(cm.linear_states)] = 0.0
    return du


def _non_delay_library_models() -> list[str]:
    return [name for name in hl.list_models() if not hl.get_model(name).has_delays]


@pytest.mark.parametrize("name", _non_delay_library_models())
def test_solver_rhs_equals_the_literal_one_on_library_models(name):
    cm = compile_model(hl.get_model(name))
    if cm.rhs_solver is None:
        assert not cm.linear_states and not cm.log_mask.any()
        return
    rng = np.random.default_rng(7)
    p = cm.typical_inputs.copy()
    p[np.isnan(p)] = 1.0  # covariates without a default
    for _ in range(5):
        y = np.abs(rng.lognormal(0.0, 1.0, cm.n_states))
        u = np.where(cm.log_mask, np.log(y), y)
        x_lin = y[list(cm.linear_states)]
        t = float(rng.uniform(0, 100))
        got = np.asarray(cm.rhs_solver(t, np.concatenate([u, x_lin]), p, np.zeros(0)))
        np.testing.assert_allclose(got, _literal(cm, t, u, x_lin, p), rtol=1e-11, atol=1e-13)


def _friberg() -> hl.Model:
    return hl.Model(
        "friberg_small",
        time_unit="h",
        states=[
            hl.State("A", "-(CL/V)*A", unit="mg"),
            hl.State(
                "Prol",
                "ktr*Prol*(1 - Slope*A/V)*(Circ0/Circ)**gamma - ktr*Prol",
                initial="Circ0",
                positive=True,
            ),
            hl.State("Circ", "ktr*Prol - ktr*Circ", initial="Circ0", positive=True),
        ],
        parameters=[
            hl.Parameter(n, v)
            for n, v in (("CL", 36.0), ("V", 30.0), ("Circ0", 5.0), ("Slope", 20.0))
        ]
        + [hl.Parameter("gamma", 0.17), hl.Parameter("MTT", 125.0, unit="h")],
        assignments={"ktr": "4/MTT"},
    )


def test_log_states_lose_their_exponentials_and_powers():
    cm = compile_model(_friberg())
    src = cm.sources["rhs_solver:jax"]
    # Circ's equation is ktr*exp(u_Prol - u_Circ) - ktr; the feedback power is exp(-gamma*u)
    assert "exp(s___u1 - s___u2)" in src
    assert "log(s___u" not in src and "log(exp" not in src
    # the drug amount enters as its closed-form value, and gets no derivative
    assert cm.linear_states == (0,)
    assert "s___x0 = y[3]" in src


def test_delay_models_and_oversized_equations_keep_the_literal_rhs(monkeypatch):
    assert compile_model(hl.get_model("mackey_glass")).rhs_solver is None
    monkeypatch.setattr(_logspace, "MAX_OPS", 5)
    assert _logspace.solver_rhs(_friberg(), (0,)) is None


def test_engine_results_agree_with_the_literal_rhs():
    """The same patients solved through both right-hand sides agree to the tolerance."""
    model = _friberg()
    params = {"Circ0": np.array([3.0, 5.0, 8.0]), "Slope": np.array([5.0, 20.0, 60.0])}
    doses = _dose_frame()
    kw = {"params": params, "grid": np.arange(0, 1009.0, 24.0), "rtol": 1e-8, "atol": 1e-10}
    fast = hl.simulate(compile_model(model), doses, **kw)
    slow_cm = compile_model(model)
    object.__setattr__(slow_cm, "rhs_solver", None)
    slow = hl.simulate(slow_cm, doses, **kw)
    assert not len(fast.failed) and not len(slow.failed)
    np.testing.assert_allclose(fast.values, slow.values, rtol=1e-6, atol=1e-10)


def _dose_frame():
    import pandas as pd

    return pd.DataFrame(
        {"ID": [1], "TIME": [0.0], "EVID": [1], "AMT": [100.0], "CMT": ["A"], "II": [336.0]}
        | {"ADDL": [2]}
    )
