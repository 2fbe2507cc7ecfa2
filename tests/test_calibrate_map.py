"""MAP calibration and its Laplace approximation on a synthetic Friberg patient.

The patient is simulated at known parameters (docetaxel 100 mg/m² q21d, ANC observed 9
times over the first cycle with the model's exponential error, seeded); the MAP must agree
with ``scipy.optimize.least_squares`` on the same objective (exponential error without
censoring is a sum of squares: prior residuals L⁻¹(φ - φ_pop) and data residuals
(log y - log f)/σ) to 1e-4 relative, and the 90 % Laplace intervals must contain the truth.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import least_squares

import hemolab as hl
from hemolab.calibrate import (
    CalibrationError,
    Observations,
    Patient,
    fit_map,
    fit_map_batch,
    laplace_batch,
)
from hemolab.library import get_model, typical_run

TRUTH = {"Circ0": 4.5, "MTT": 100.0, "Slope": 12.0}
T_OBS = np.array([0.0, 72, 120, 168, 192, 240, 336, 420, 500])


@pytest.mark.slow
def test_map_recovers_a_synthetic_patient_and_agrees_with_scipy() -> None:
    model = get_model("friberg_docetaxel")
    events = typical_run("friberg_docetaxel").events()
    sigma = model.residual_error[0].additive
    names = ("Circ0", "MTT", "Slope")

    def anc(theta: dict[str, float]) -> np.ndarray:
        res = hl.simulate(model, events, params=theta, grid=T_OBS, outputs=["ANC"],
                          rtol=1e-10, atol=1e-12)  # fmt: skip
        return res.variable("ANC")[0]

    rng = np.random.default_rng(20261126)
    y = anc(TRUTH) * np.exp(sigma * rng.standard_normal(T_OBS.size))
    fit = fit_map(model, Observations.of(["ANC"] * T_OBS.size, T_OBS, y), events)
    assert fit.converged and fit.newton_decrement < 1e-6

    # the same objective through libRoadRunner-free SciPy: least squares over hemolab solves
    cm = hl.compile_model(model)
    pop = np.log([cm.typical_inputs[model.inputs.index(n)] for n in names])
    var = model.variability
    omega = var.matrix[np.ix_(*[[var.parameters.index(n) for n in names]] * 2)]
    chol_inv = np.linalg.inv(np.linalg.cholesky(omega))

    def residuals(phi: np.ndarray) -> np.ndarray:
        f = anc(dict(zip(names, np.exp(phi), strict=True)))
        return np.concatenate([chol_inv @ (phi - pop), (np.log(y) - np.log(f)) / sigma])

    ref = least_squares(residuals, pop, xtol=1e-12, ftol=1e-12, gtol=1e-12, diff_step=1e-6)
    for k, n in enumerate(names):
        assert fit.estimate[n] == pytest.approx(np.exp(ref.x[k]), rel=1e-4), n
        lo, hi = fit.interval(n, 0.9)
        assert lo < TRUTH[n] < hi, (n, lo, hi)
    # Laplace: the inverse Hessian is a covariance (symmetric positive definite)
    cov = fit.log_covariance
    assert np.allclose(cov, cov.T, rtol=1e-8) and np.all(np.linalg.eigvalsh(cov) > 0)
    assert fit.hessian == "exact"

    # without the Laplace step: the same estimate, the Gauss–Newton covariance; the Laplace
    # step on its own at that estimate gives the exact one back
    patient = Patient(Observations.of(["ANC"] * T_OBS.size, T_OBS, y), events)
    (gn,) = fit_map_batch(model, [patient], laplace=False)
    assert gn.hessian == "gauss-newton" and gn.converged
    for n in names:
        assert gn.estimate[n] == pytest.approx(fit.estimate[n], rel=1e-5), n
    assert np.all(np.linalg.eigvalsh(gn.log_covariance) > 0)
    (lap,) = laplace_batch(model, [patient], [gn])
    assert lap.hessian == "exact" and lap.estimate == gn.estimate
    np.testing.assert_allclose(lap.log_covariance, fit.log_covariance, rtol=1e-3)
    with pytest.raises(CalibrationError, match="2 fits for 1 patients"):
        laplace_batch(model, [patient], [gn, gn])


def test_calibration_inputs_are_checked_before_any_solve() -> None:
    model = get_model("friberg_docetaxel")
    obs = Observations.of(["ANC"], [24.0], [3.0])
    with pytest.raises(CalibrationError, match="Foo: no prior"):
        fit_map(model, obs, estimate=["Foo"])
    with pytest.raises(CalibrationError, match="has no variable Neut"):
        fit_map(model, Observations.of(["Neut"], [24.0], [3.0]))
    with pytest.raises(CalibrationError, match="declares no variability"):
        fit_map(get_model("michor_cml"), obs)


def test_exact_hessian_matches_differences_of_the_exact_gradient() -> None:
    """The kernel's Hessian (forward over forward, by polarization) against central
    differences of its gradient (forward mode), and its value and gradient against the
    kernel's other entry points, for two patients at different points."""
    import jax.numpy as jnp

    from hemolab.calibrate._kernel import get_kernel, residual_outputs
    from hemolab.calibrate._problem import pack_batch

    model = get_model("marrow_failure_hb")
    cm = hl.compile_model(model)
    names = tuple(model.variability.parameters)
    t = np.arange(0.0, 181.0, 30.0)
    patients = [Patient(Observations.of(["Hb"] * t.size, t, 13.0 - k * t / 40.0)) for k in (1, 2)]
    arrays, width, spec = pack_batch(cm, patients, names, residual_outputs(model),
                                     rtol=1e-11, atol=1e-13)  # fmt: skip
    kernel = get_kernel(cm, names, width, spec)
    dev = type(arrays)(*(jnp.asarray(x) for x in arrays))
    phi = np.array(arrays.log_pop, dtype=np.float64)  # padded rows stay at the prior centre
    phi[:2] += [[0.05, 0.3, -0.02], [-0.04, -0.2, 0.01]]
    v, g, h = (np.asarray(x)[:2] for x in kernel.value_grad_hess(jnp.asarray(phi), dev))
    v1, g1 = (np.asarray(x)[:2] for x in kernel.value_grad(jnp.asarray(phi), dev))
    np.testing.assert_allclose(v, v1, rtol=1e-12)
    np.testing.assert_allclose(g, g1, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(h, np.transpose(h, (0, 2, 1)), rtol=1e-12, atol=1e-12)
    step = 1e-5
    for i in range(len(names)):
        up, down = phi.copy(), phi.copy()
        up[:, i] += step
        down[:, i] -= step
        gu = np.asarray(kernel.value_grad(jnp.asarray(up), dev)[1])[:2]
        gd = np.asarray(kernel.value_grad(jnp.asarray(down), dev)[1])[:2]
        fd = (gu - gd) / (2 * step)
        np.testing.assert_allclose(h[:, :, i], fd, rtol=1e-5, atol=1e-5 * np.abs(h).max())
