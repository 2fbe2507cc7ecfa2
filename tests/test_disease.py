"""Diseases as named, reversible model changes (issue 8), against closed-form solutions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import hemolab as hl

P, K = 2.0, 0.5  # production and loss rate of the one-state model; steady state P / K = 4


@pytest.fixture(scope="module")
def base() -> hl.Model:
    return hl.Model(
        "turnover",
        time_unit="d",
        states=[hl.State("x", "p - k*x", initial="p/k")],
        parameters=[hl.Parameter("p", P), hl.Parameter("k", K)],
        observables=[hl.Observable("X", "x")],
    )


def _switch(name: str, on: float, off: float) -> pd.DataFrame:
    row = {"ID": 1, "EVID": 2, "EVENT": "param", "PARAM": f"dis_{name}"}
    return pd.DataFrame([row | {"TIME": on, "VALUE": 1.0}, row | {"TIME": off, "VALUE": 0.0}])


def test_an_added_loss_comes_and_goes(base) -> None:
    r = 1.5
    model = hl.Disease("lysis", loss={"x": r}, active=False, source="test").apply(base)
    t = np.linspace(0.0, 8.0, 33)
    got = hl.simulate(model, _switch("lysis", 1.0, 3.0), grid=t, rtol=1e-10, atol=1e-12)
    x0, low = P / K, P / (K + r)
    x3 = low + (x0 - low) * np.exp(-(K + r) * 2.0)
    want = np.where(
        t < 1,
        x0,
        np.where(
            t < 3,
            low + (x0 - low) * np.exp(-(K + r) * (t - 1)),
            x0 + (x3 - x0) * np.exp(-K * (t - 3)),
        ),
    )
    np.testing.assert_allclose(got.variable("X")[0], want, rtol=1e-7)


def test_a_scaled_parameter_keeps_the_baseline(base) -> None:
    model = hl.Disease("block", scale={"p": 0.25}).apply(base)  # active from the start
    t = np.linspace(0.0, 10.0, 21)
    got = hl.simulate(model, grid=t, rtol=1e-10, atol=1e-12).variable("X")[0]
    target = 0.25 * P / K
    np.testing.assert_allclose(got, target + (P / K - target) * np.exp(-K * t), rtol=1e-7)
    # switched off: the model as it was
    off = model.with_parameters(dis_block=0.0)
    np.testing.assert_allclose(
        hl.simulate(off, grid=t).variable("X")[0], np.full(t.size, P / K), rtol=1e-9
    )


def test_two_diseases_compose(base) -> None:
    both = hl.Disease("b", loss={"x": 0.5}).apply(hl.Disease("a", scale={"k": 2.0}).apply(base))
    assert both.name == "turnover+a+b"
    t = np.array([0.0, 1.0, 50.0])
    got = hl.simulate(both, grid=t, rtol=1e-10, atol=1e-12).variable("X")[0]
    assert got[-1] == pytest.approx(P / (2 * K + 0.5), rel=1e-8)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "1bad", "scale": {"p": 2.0}}, "not valid"),
        ({"name": "d"}, "changes nothing"),
        ({"name": "d", "scale": {"p": 0.0}}, "must be > 0"),
        ({"name": "d", "loss": {"x": -1.0}}, "must be >= 0"),
    ],
)
def test_bad_diseases_are_refused(kwargs, message) -> None:
    with pytest.raises(hl.ModelError, match=message):
        hl.Disease(**kwargs)


def test_a_disease_must_fit_its_model(base) -> None:
    with pytest.raises(hl.ModelError, match="'q', which is not a parameter"):
        hl.Disease("d", scale={"q": 2.0}).apply(base)
    with pytest.raises(hl.ModelError, match="'y', which is not a state"):
        hl.Disease("d", loss={"y": 1.0}).apply(base)
    once = hl.Disease("d", loss={"x": 1.0}).apply(base)
    with pytest.raises(hl.ModelError, match="already has disease 'd'"):
        hl.Disease("d", loss={"x": 1.0}).apply(once)
