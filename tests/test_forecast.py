"""Forecasts from a fit: Laplace draws, trajectories, time to threshold.

A fit with a zero covariance makes every draw the MAP: the forecast must then reproduce the
MAP trajectory exactly and its time to threshold the MAP's own crossing. With a covariance,
the draws' log-parameters must have the fit's mean and covariance (seeded, 4,000 draws).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import hemolab as hl
from hemolab import HemolabError
from hemolab.calibrate import MapFit
from hemolab.forecast import (
    RESEARCH_USE,
    Threshold,
    first_crossing,
    forecast_from_fit,
    laplace_draws,
)
from hemolab.library import get_model, typical_run

NAMES = ("Circ0", "MTT", "Slope")
EST = {"Circ0": 4.0, "MTT": 95.0, "Slope": 14.0}


def fit_with(cov: np.ndarray) -> MapFit:
    return MapFit(NAMES, dict(EST), cov, 0.0, 1, True, 0.0)


def test_laplace_draws_have_the_fit_mean_and_covariance() -> None:
    cov = np.array([[0.04, 0.01, 0.0], [0.01, 0.02, 0.0], [0.0, 0.0, 0.0]])
    draws = laplace_draws(fit_with(cov), 4000, seed=3)
    phi = np.log(np.stack([draws[n] for n in NAMES], axis=1))
    np.testing.assert_allclose(phi.mean(axis=0), np.log(list(EST.values())), atol=0.01)
    np.testing.assert_allclose(np.cov(phi.T), cov, atol=0.003)
    slope = draws["Slope"]  # zero variance: fixed (exp(log(x)) is x to rounding)
    assert np.ptp(slope) == 0 and slope[0] == pytest.approx(EST["Slope"], rel=1e-15)
    again = laplace_draws(fit_with(cov), 4000, seed=3)
    assert all(np.array_equal(draws[n], again[n]) for n in NAMES)  # seeded
    with pytest.raises(HemolabError, match="not positive semi-definite"):
        laplace_draws(fit_with(-np.eye(3)), 10, seed=0)
    with pytest.raises(HemolabError, match="no usable covariance"):
        laplace_draws(fit_with(np.full((3, 3), np.nan)), 10, seed=0)


def test_a_point_fit_forecasts_the_map_trajectory_and_its_crossing() -> None:
    model = get_model("friberg_docetaxel")
    events = typical_run("friberg_docetaxel").events()
    fc = forecast_from_fit(model, fit_with(np.zeros((3, 3))), events, observable="ANC",
                           t_end=600.0, dt=2.0, n_draws=8)  # fmt: skip
    assert fc.label == RESEARCH_USE and fc.draws.shape == (8, 301)
    ref = hl.simulate(model, events, params=EST, t_end=600.0, dt=2.0, outputs=["ANC"])
    np.testing.assert_allclose(fc.draws, np.repeat(ref.variable("ANC"), 8, axis=0), rtol=1e-12)
    tt = fc.time_to("ANC<1.0", start=24.0, horizon=500.0)
    exact = first_crossing(fc.time, ref.variable("ANC")[0], Threshold.parse("ANC<1.0"), start=24.0)
    assert math.isfinite(exact[0]) and tt.median == tt.lower == tt.upper
    assert tt.median == pytest.approx(exact[0], rel=1e-12)  # the draws are exp(log(MAP))
    assert tt.p_within_horizon == 1.0
    q = fc.quantiles()
    assert q.shape == (3, 301) and np.allclose(q[0], q[2])
    with pytest.raises(HemolabError, match="the threshold is on Hb, the forecast on ANC"):
        fc.time_to("Hb<7", start=0.0, horizon=10.0)
