"""Bayesian individual calibration: the MAP estimate and its Laplace approximation.

The parameters with inter-individual variability in the model (``Model.variability``) are
estimated on the log scale, ``φ = log θ``, with the population prior ``φ ~ N(log θ_pop, Ω)``
(the library's typical values and omega); the rest stay at their given or typical values.
The data enter through the model's residual error models (``Model.residual_error``), with
values below the LLOQ as censored observations (NONMEM's M3: ``-log Φ``).

The objective is minimised by Levenberg–Marquardt on the Gauss–Newton Hessian, with
forward-mode derivatives through the solver (``_kernel``), many patients per call and the
whole search in one compiled loop: reverse mode cannot pass the solver's adaptive
``while_loop``. The exact Hessian at the optimum (forward over forward) gives the Laplace
covariance of ``φ``. A fit has converged when the optimum is within ``CONVERGED_SD``
posterior SDs (the Newton decrement), a criterion that does not depend on the scale of
the data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hemolab.calibrate._kernel import get_kernel, residual_outputs
from hemolab.calibrate._problem import CalibrationError, Observations, Patient, pack_batch

__all__ = ["MapFit", "fit_map", "fit_map_batch"]

CONVERGED_SD = 1e-3  # converged: the optimum is closer than this, in posterior SDs


@dataclass(frozen=True)
class MapFit:
    """The MAP estimate, its Laplace covariance (of log parameters) and how it was found."""

    names: tuple[str, ...]
    estimate: dict[str, float]  # θ at the MAP
    log_covariance: np.ndarray  # Laplace: inverse Hessian of the objective in φ = log θ
    objective: float  # negative log posterior at the MAP (constants dropped)
    iterations: int
    converged: bool
    gradient_norm: float  # max |∂f/∂φ_k| at the estimate
    # gᵀH⁻¹g at the estimate (exact Hessian): its square root is the distance to the
    # optimum in posterior SDs (inf where the Hessian is not positive definite)
    newton_decrement: float = math.nan

    def interval(self, name: str, level: float = 0.9) -> tuple[float, float]:
        """Equal-tailed Laplace interval of a parameter (log-normal)."""
        from scipy.stats import norm

        k = self.names.index(name)
        sd = math.sqrt(self.log_covariance[k, k])
        z = float(norm.ppf(0.5 + level / 2))
        m = math.log(self.estimate[name])
        return math.exp(m - z * sd), math.exp(m + z * sd)


def fit_map(
    model: Any,
    observations: Observations,
    events: Any = None,
    *,
    params: Mapping[str, float] | None = None,
    estimate: Sequence[str] | None = None,
    rtol: float = 1e-8,
    atol: float = 1e-10,
    max_iterations: int = 100,
    start: Mapping[str, float] | None = None,
) -> MapFit:
    """MAP fit of one patient (see the module docstring); ``events``: the dosing history."""
    return fit_map_batch(
        model,
        [Patient(observations, events, params)],
        estimate=estimate,
        rtol=rtol,
        atol=atol,
        max_iterations=max_iterations,
        starts=None if start is None else [start],
    )[0]


def fit_map_batch(
    model: Any,
    patients: Sequence[Patient],
    *,
    estimate: Sequence[str] | None = None,
    rtol: float = 1e-8,
    atol: float = 1e-10,
    max_iterations: int = 100,
    starts: Sequence[Mapping[str, float]] | None = None,
) -> list[MapFit]:
    """MAP fits of many patients at once: every objective, gradient and Hessian evaluation
    is one batched solve, and each patient keeps its own damping and stopping."""
    import jax
    import jax.numpy as jnp

    from hemolab._simulate import get_compiled

    cm = get_compiled(model)
    names = _estimated(cm.model, estimate)
    arrays, T, spec = pack_batch(cm, patients, names, residual_outputs(cm.model),
                                 rtol=rtol, atol=atol)  # fmt: skip
    kernel = get_kernel(cm, names, T, spec)
    dev = jax.device_put(arrays)  # one transfer call for the whole tuple (18 took 2 ms)
    n = len(patients)
    phi = np.array(arrays.log_pop, dtype=np.float64)
    if starts is not None:
        if len(starts) != n:
            raise CalibrationError(f"{len(starts)} starts for {n} patients")
        for i, s in enumerate(starts):
            for k, name in enumerate(names):
                if name in s:
                    phi[i, k] = math.log(float(s[name]))

    res = kernel.levenberg_marquardt(jnp.asarray(phi), np.int32(n), np.int32(max_iterations), dev)
    phi, f, g, h, iterations, f0 = (np.asarray(x) for x in res)
    bad = [i for i in range(n) if not math.isfinite(f0[i])]
    if bad:
        raise CalibrationError(f"patient(s) {bad}: the objective is not finite at the start "
                               "(the model failed to solve)")  # fmt: skip
    fits = []
    for i in range(n):
        try:
            cov = np.linalg.inv(h[i])
        except np.linalg.LinAlgError:
            cov = np.full_like(h[i], np.nan)
        gn = float(np.max(np.abs(g[i])))
        try:
            w = np.linalg.solve(np.linalg.cholesky(h[i]), g[i])
            dec = float(w @ w)
        except np.linalg.LinAlgError:
            dec = math.inf
        fits.append(
            MapFit(
                names=names,
                estimate={nm: float(math.exp(p)) for nm, p in zip(names, phi[i], strict=True)},
                log_covariance=cov,
                objective=float(f[i]),
                iterations=int(iterations[i]),
                converged=dec < CONVERGED_SD**2,
                gradient_norm=gn,
                newton_decrement=dec,
            )
        )
    return fits


def _estimated(mdl: Any, estimate: Sequence[str] | None) -> tuple[str, ...]:
    if mdl.variability is None:
        raise CalibrationError(f"model {mdl.name!r} declares no variability: no prior to use")
    names = tuple(estimate) if estimate is not None else tuple(mdl.variability.parameters)
    unknown = [n for n in names if n not in mdl.variability.parameters]
    if unknown:
        raise CalibrationError(
            f"{', '.join(unknown)}: no prior (the model's variability covers "
            f"{', '.join(mdl.variability.parameters)})"
        )
    if len(set(names)) != len(names) or not names:
        raise CalibrationError("estimate: give distinct parameter names (at least one)")
    return names
