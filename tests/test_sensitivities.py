"""Forward-mode derivatives through the solver (what calibration will use) vs finite differences."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import hemolab as hl
from hemolab._simulate import get_compiled
from hemolab.events._ops import OP_BOLUS
from hemolab.solve import make_solve_fn
from tests._actions import table


def test_jacfwd_of_neutrophils_wrt_slope_matches_central_differences(p1_compiled):
    """The derivative of the solution, not of the step sequence: the step-size control is
    not differentiated (as forward sensitivities with the solver's own steps), so the
    reference is a central difference of a solve 5 orders tighter. Measured at rtol 1e-8:
    3.5e-9 from it, where a central difference at rtol 1e-8 is 6.8e-8 away (it follows the
    steps chosen)."""
    grid = np.arange(0, 1009, 24.0)
    tab = table(grid, [(t, OP_BOLUS, 0, 100.0) for t in (0.0, 504.0)])
    inputs = jnp.asarray(p1_compiled.inputs_from({"MTT": np.array([100.0, 140.0])}))
    slope = p1_compiled.model.inputs.index("Slope")

    def solver(rtol):
        fn = jax.jit(make_solve_fn(p1_compiled, tab, rtol=rtol, atol=rtol * 1e-2))
        return lambda value: fn(inputs.at[:, slope].set(value))[0][:, :, 5]

    circ, tight = solver(1e-8), solver(1e-13)
    jac = jax.jacfwd(circ)(20.0)
    eps = 1e-4
    fd = (tight(20.0 + eps) - tight(20.0 - eps)) / (2 * eps)
    assert float(jnp.abs(fd).max()) > 0.01  # the nadirs do depend on Slope
    np.testing.assert_allclose(jac, fd, atol=2e-8)


def test_jvp_through_a_delay_equation():
    cm = get_compiled(hl.get_model("mackey_glass"))
    grid = np.arange(0.0, 61.0, 5.0)
    fn = jax.jit(make_solve_fn(cm, table(grid), rtol=1e-9, atol=1e-11))
    beta = cm.model.inputs.index("beta")
    base = jnp.asarray(cm.inputs_from())

    def x(value):
        return fn(base.at[:, beta].set(value))[0][0, :, 0]

    _, tangent = jax.jvp(x, (0.2,), (1.0,))
    eps = 1e-5
    fd = (x(0.2 + eps) - x(0.2 - eps)) / (2 * eps)
    np.testing.assert_allclose(tangent, fd, atol=1e-5)
