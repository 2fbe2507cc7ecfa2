"""Sequential forecasts: the prognosis narrows as labs accumulate and stays calibrated.

The showcase patient's time to Hb < 7 g/dL is forecast after three and after six months of
CBCs: the later forecast is narrower. Over 100 synthetic patients (drawn from the model's
prior, observed monthly), the 90 % interval of the crossing time covers the true crossing at
each cut about 90 % of the time (Laplace here; NUTS is the reference in
``test_calibrate_nuts.py``), and the intervals shrink as data accumulate.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import hemolab as hl
from hemolab.calibrate import Observations
from hemolab.cli._showcase import cbc_dates, showcase_bundle
from hemolab.forecast import Threshold, first_crossing, forecast_history
from hemolab.library import get_model
from hemolab.patients import read_fhir
from hemolab.patients._observations import ephemeral_rows, lab_observations


def test_the_showcase_prognosis_narrows_from_month_three_to_month_six(tmp_path: Path) -> None:
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(showcase_bundle()))
    model = get_model("marrow_failure_hb")
    _, rows = ephemeral_rows(read_fhir(path))
    obs = lab_observations(rows, model).observations
    days = [(d - cbc_dates()[0]).days for d in cbc_dates()]
    history = forecast_history(model, obs, cuts=[days[3], days[6]], threshold="Hb<7",
                               horizon=365.0, n_draws=400)  # fmt: skip
    early, late = history
    assert (early.t_data, early.n_observations) == (days[3], 4)
    assert (late.t_data, late.n_observations) == (days[6], 7)
    assert early.width is not None and late.width is not None
    assert late.width < 0.7 * early.width
    assert late.lower is not None and late.lower > late.t_data
    assert early.label.startswith("research use")


@pytest.mark.slow
def test_sequential_forecasts_stay_calibrated_and_shrink_over_100_patients() -> None:
    model = get_model("marrow_failure_hb")
    var = model.variability
    assert var is not None
    cm = hl.compile_model(model)
    n, cuts, horizon = 100, [90.0, 180.0], 365.0
    rng = np.random.default_rng(7)
    eta = rng.multivariate_normal(np.zeros(3), var.matrix, size=n)
    pop = {p: cm.typical_inputs[model.inputs.index(p)] for p in var.parameters}
    truth = {p: pop[p] * np.exp(eta[:, k]) for k, p in enumerate(var.parameters)}
    t_obs = np.arange(0.0, 181.0, 30.0)
    grid = np.union1d(t_obs, np.linspace(0.0, max(cuts) + horizon, 4001))
    res = hl.simulate(model, None, params=truth, grid=grid, outputs=["Hb"])
    hb = np.asarray(res.variable("Hb"))
    y = model.residual_error[0].sample(hb[:, np.searchsorted(grid, t_obs)], rng)
    th = Threshold.parse("Hb<7")
    covered = np.zeros((n, len(cuts)), bool)
    widths = np.full((n, len(cuts)), np.nan)
    for i in range(n):
        obs = Observations.of(["Hb"] * t_obs.size, t_obs, y[i])
        entries = forecast_history(model, obs, cuts=cuts, threshold=th, horizon=horizon,
                                   n_draws=300, seed=i)  # fmt: skip
        for k, e in enumerate(entries):
            after = grid >= e.t_data
            t_true = float(np.ravel(first_crossing(grid[after], hb[i, after], th))[0])
            t_true = math.inf if t_true > e.t_data + horizon else t_true
            lo = e.lower if e.lower is not None else math.inf
            hi = e.upper if e.upper is not None else math.inf
            covered[i, k] = lo <= t_true <= hi
            widths[i, k] = np.nan if e.width is None else e.width
    coverage = covered.mean(axis=0)
    both = np.all(np.isfinite(widths), axis=1)
    med = np.median(widths[both], axis=0)
    print(f"\ncoverage of the 90 % crossing-time interval at days {cuts}: {coverage}; "
          f"median width {med} (n = {both.sum()} with both finite)")  # fmt: skip
    assert np.all((coverage >= 0.80) & (coverage <= 0.98)), coverage
    assert both.sum() >= 30
    assert np.median(widths[both, 1] / widths[both, 0]) < 0.8
