"""Calibration split over two XLA host devices gives the one-device answers.

A batch of 16 or more patients is fitted (MAP search and Laplace step) as one ``shard_map``
program, half the patients on each device; NUTS splits its chains the same way. Each lane's
arithmetic does not depend on the block it lands in, so the results must equal the
one-device run's (forced here by showing hemolab a single device).

Run in its own lane of ``make test`` (marker ``devices``): the main lane's workers keep one
host device each. With fewer than two devices this test fails: it cannot check anything.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

import hemolab as hl
from hemolab.calibrate import Observations, Patient, fit_map_batch, sample_nuts
from hemolab.calibrate._map import MIN_SHARDED_FITS
from hemolab.library import get_model

pytestmark = [pytest.mark.devices, pytest.mark.slow]

T_OBS = np.arange(0.0, 181.0, 30.0)


def _patients(n: int) -> list[Patient]:
    rng = np.random.default_rng(20261126)
    slopes = rng.uniform(1.0, 3.0, n)
    noise = np.exp(0.05 * rng.standard_normal((n, T_OBS.size)))
    return [Patient(Observations.of(["Hb"] * T_OBS.size, T_OBS, (13.0 - s * T_OBS / 60.0) * e))
            for s, e in zip(slopes, noise, strict=True)]  # fmt: skip


def _one_device(monkeypatch: pytest.MonkeyPatch) -> None:
    first = jax.local_devices()[:1]
    monkeypatch.setattr(jax, "local_devices", lambda *a, **k: first)


def test_two_devices_give_the_one_device_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    assert len(jax.local_devices()) >= 2, "this lane needs two XLA host devices"
    model = get_model("marrow_failure_hb")
    patients = _patients(MIN_SHARDED_FITS - 3)  # 13 patients, padded to 16 lanes: 8 + 8
    split = fit_map_batch(model, patients)
    posts = sample_nuts(model, patients[:2], chains=2, warmup=30, draws=20, seed=5,
                        start=split[:2])  # fmt: skip
    with monkeypatch.context() as m:
        _one_device(m)
        hl.clear_caches()
        one = fit_map_batch(model, patients)
        posts_one = sample_nuts(model, patients[:2], chains=2, warmup=30, draws=20, seed=5,
                                start=split[:2])  # fmt: skip
    for a, b in zip(split, one, strict=True):
        assert a.converged and a.iterations == b.iterations
        for name in a.names:
            assert a.estimate[name] == pytest.approx(b.estimate[name], rel=1e-12), name
        np.testing.assert_allclose(a.log_covariance, b.log_covariance, rtol=1e-9)
    for a, b in zip(posts, posts_one, strict=True):
        np.testing.assert_allclose(a.draws, b.draws, rtol=1e-9)
