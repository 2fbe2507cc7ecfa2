"""Bayesian individual calibration: the MAP estimate and its Laplace approximation.

The parameters with inter-individual variability in the model (``Model.variability``) are
estimated on the log scale, ``φ = log θ``, with the population prior ``φ ~ N(log θ_pop, Ω)``
(the library's typical values and omega); the rest stay at their given or typical values.
The data enter through the model's residual error models (``Model.residual_error``), with
values below the LLOQ as censored observations (NONMEM's M3: ``-log Φ``).

The objective is minimised by Levenberg–Marquardt on the Gauss–Newton Hessian, with
forward-mode derivatives through the solver (``_kernel``), many patients per call and the
whole search in one compiled loop: reverse mode cannot pass the solver's adaptive
``while_loop``. The exact Hessian at the optimum (forward over forward, a kernel of its own)
gives the Laplace covariance of ``φ``; without it (``laplace=False``) the covariance is the
Gauss–Newton one the search ended with. A fit has converged when the optimum is within
``CONVERGED_SD`` posterior SDs (the Newton decrement), a criterion that does not depend on
the scale of the data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hemolab.calibrate._kernel import get_kernel, residual_outputs
from hemolab.calibrate._problem import CalibrationError, Observations, Patient, pack_batch

__all__ = ["MapFit", "fit_map", "fit_map_batch", "laplace_batch"]

CONVERGED_SD = 1e-3  # converged: the optimum is closer than this, in posterior SDs
# patients (after padding) from which a batch is split over the host devices: below, a
# lane costs little beside a loop iteration's fixed cost, and each split compiles anew
MIN_SHARDED_FITS = 16


@dataclass(frozen=True)
class MapFit:
    """The MAP estimate, its covariance (of log parameters) and how it was found."""

    names: tuple[str, ...]
    estimate: dict[str, float]  # θ at the MAP
    # the inverse Hessian of the objective in φ = log θ: the exact one (Laplace) or, for a
    # fit with laplace=False, the Gauss–Newton one (see ``hessian``)
    log_covariance: np.ndarray
    objective: float  # negative log posterior at the MAP (constants dropped)
    iterations: int
    converged: bool
    gradient_norm: float  # max |∂f/∂φ_k| at the estimate
    # gᵀH⁻¹g at the estimate: its square root is the distance to the optimum in posterior
    # SDs (inf where the Hessian is not positive definite)
    newton_decrement: float = math.nan
    hessian: str = "exact"  # "exact" (Laplace) or "gauss-newton"

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
    laplace: bool = True,
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
        laplace=laplace,
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
    laplace: bool = True,
) -> list[MapFit]:
    """MAP fits of many patients at once: every objective, gradient and Hessian evaluation
    is one batched solve, and each patient keeps its own damping and stopping.

    ``laplace``: also the exact Hessian at each estimate (the Laplace covariance, one more
    solve with d(d+1)/2 second-order directions); without it the covariance and the
    convergence test use the Gauss–Newton Hessian."""
    import jax.numpy as jnp

    names, arrays, kernel, dev = _prepare(model, patients, estimate, rtol, atol)
    n = len(patients)
    phi = np.array(arrays.log_pop, dtype=np.float64)
    if starts is not None:
        if len(starts) != n:
            raise CalibrationError(f"{len(starts)} starts for {n} patients")
        for i, s in enumerate(starts):
            for k, name in enumerate(names):
                if name in s:
                    phi[i, k] = math.log(float(s[name]))

    real = np.arange(phi.shape[0]) < n  # padding rows (copies of patient 0) sit still
    res = kernel.levenberg_marquardt(jnp.asarray(phi), real, np.int32(max_iterations), dev)
    if laplace:
        res = res._replace(**kernel.laplace(res.phi, dev)._asdict())
    phi, f, g, h, iterations, f0, decrement = (np.asarray(x) for x in res)
    bad = [i for i in range(n) if not math.isfinite(f0[i])]
    if bad:
        raise CalibrationError(f"patient(s) {bad}: the objective is not finite at the start "
                               "(the model failed to solve)")  # fmt: skip
    hessian = "exact" if laplace else "gauss-newton"
    return [_fit(names, phi[i], f[i], g[i], h[i], int(iterations[i]), float(decrement[i]),
                 hessian) for i in range(n)]  # fmt: skip


def laplace_batch(
    model: Any,
    patients: Sequence[Patient],
    fits: Sequence[MapFit],
    *,
    rtol: float = 1e-8,
    atol: float = 1e-10,
) -> list[MapFit]:
    """The Laplace approximation at given estimates (for instance MAP fits made with
    ``laplace=False``): the exact Hessian of each patient's objective there, one batched
    solve with d(d+1)/2 second-order directions."""
    import jax.numpy as jnp

    if len(fits) != len(patients):
        raise CalibrationError(f"{len(fits)} fits for {len(patients)} patients")
    names = fits[0].names if fits else None
    if any(f.names != names for f in fits):
        raise CalibrationError("the fits estimate different parameters")
    names, arrays, kernel, dev = _prepare(model, patients, names, rtol, atol)
    phi = np.array(arrays.log_pop, dtype=np.float64)
    phi[: len(fits)] = np.log([[f.estimate[nm] for nm in names] for f in fits])
    f, g, h, decrement = (np.asarray(x) for x in kernel.laplace(jnp.asarray(phi), dev))
    bad = [i for i in range(len(fits)) if not math.isfinite(f[i])]
    if bad:
        raise CalibrationError(f"patient(s) {bad}: the objective is not finite at the estimate "
                               "(the model failed to solve)")  # fmt: skip
    return [_fit(names, phi[i], f[i], g[i], h[i], fit.iterations, float(decrement[i]), "exact")
            for i, fit in enumerate(fits)]  # fmt: skip


def _prepare(
    model: Any, patients: Sequence[Patient], estimate: Sequence[str] | None, rtol: float,
    atol: float,
) -> tuple[tuple[str, ...], Any, Any, Any]:  # fmt: skip
    """The estimated names, the packed arrays, their kernel and the arrays on the device."""
    import jax

    from hemolab._simulate import get_compiled

    cm = get_compiled(model)
    names = _estimated(cm.model, estimate)
    arrays, T, spec = pack_batch(cm, patients, names, residual_outputs(cm.model),
                                 rtol=rtol, atol=atol)  # fmt: skip
    N, devices = arrays.inputs.shape[0], len(jax.local_devices())
    n_dev = devices if N >= MIN_SHARDED_FITS and N % devices == 0 else 1
    kernel = get_kernel(cm, names, T, spec, n_dev)
    dev = jax.device_put(arrays)  # one transfer call for the whole tuple (18 took 2 ms)
    return names, arrays, kernel, dev


def _fit(names: tuple[str, ...], phi: np.ndarray, f: float, g: np.ndarray, h: np.ndarray,
         iterations: int, decrement: float, hessian: str) -> MapFit:  # fmt: skip
    try:
        cov = np.linalg.inv(h)
    except np.linalg.LinAlgError:
        cov = np.full_like(h, np.nan)
    return MapFit(
        names=names,
        estimate={nm: float(math.exp(p)) for nm, p in zip(names, phi, strict=True)},
        log_covariance=cov,
        objective=float(f),
        iterations=iterations,
        converged=decrement < CONVERGED_SD**2,
        gradient_norm=float(np.max(np.abs(g))),
        newton_decrement=decrement,
        hessian=hessian,
    )


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
