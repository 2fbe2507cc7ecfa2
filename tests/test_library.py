"""Library models reproduce the numbers of MODELS.md (published and derived, stated tolerances)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import hemolab as hl


@pytest.fixture(scope="module")
def docetaxel_180mg():
    """Friberg 2002 docetaxel set + Bruno PK, 180 mg (100 mg/m² × 1.8 m²) 1-h infusion."""
    m = hl.get_model("friberg_docetaxel")
    ev = pd.DataFrame(
        {"ID": [1], "TIME": [0.0], "EVID": [1], "CMT": ["A1"], "AMT": [180.0], "DUR": [1.0]}
    )
    res = hl.simulate(m, ev, t_end=24 * 22, dt=0.05, rtol=1e-8, atol=1e-10, throw=True)
    return res.time[0] / 24.0, res.variable("ANC")[0], res.variable("Cdoc")[0]


def test_friberg_steady_state_without_drug():
    """MODELS.md §1 target 1: every compartment stays at Circ0; k_tr = 0.04510 /h (exact)."""
    m = hl.get_model("friberg_docetaxel")
    res = hl.simulate(m, t_end=500.0, dt=50.0, rtol=1e-10, atol=1e-12)
    for s in ("Prol", "T1", "T2", "T3", "Circ"):
        np.testing.assert_allclose(res.variable(s)[0], 5.05, rtol=1e-10)
    mtt = m.parameter("MTT").value
    assert round(4 / mtt, 5) == 0.04510
    assert round(np.log(2) * mtt / 4, 2) == 15.37


def test_docetaxel_pk_exposure(docetaxel_180mg):
    """Cmax 4.43 µM and AUC 5.79 µM·h (= 180/38.5/0.808), derived, ±3 %."""
    days, _, conc = docetaxel_180mg
    assert conc.max() == pytest.approx(4.43, rel=0.03)
    assert np.trapezoid(conc, days * 24) == pytest.approx(180 / 38.5 / 0.808, rel=0.03)


def test_docetaxel_neutropenia_course(docetaxel_180mg):
    """MODELS.md §1 target 2: nadir 0.90 at day 7.6; < 1.5 from day 5.1 to 10.3; never < 0.5;
    rebound 6.28 at day 19.8; ANC on day 21 = 6.21 (derived; ±3 %)."""
    days, anc, _ = docetaxel_180mg
    i = int(np.argmin(anc))
    assert anc[i] == pytest.approx(0.90, rel=0.03)
    assert days[i] == pytest.approx(7.6, rel=0.03)
    below = days[anc < 1.5]
    assert below.min() == pytest.approx(5.1, rel=0.03)
    assert below.max() == pytest.approx(10.3, rel=0.03)
    assert anc.min() > 0.5
    late = days > 12
    j = int(np.argmax(np.where(late, anc, -np.inf)))
    assert anc[j] == pytest.approx(6.28, rel=0.03)
    assert days[j] == pytest.approx(19.8, rel=0.03)
    assert anc[np.argmin(np.abs(days - 21))] == pytest.approx(6.21, rel=0.03)


def test_docetaxel_bolus_gives_the_same_nadir():
    """MODELS.md §1 target 2: a bolus gives the same nadir (0.90, day 7.55)."""
    m = hl.get_model("friberg_docetaxel")
    ev = pd.DataFrame({"ID": [1], "TIME": [0.0], "EVID": [1], "CMT": ["A1"], "AMT": [180.0]})
    res = hl.simulate(m, ev, t_end=24 * 12, dt=0.05, rtol=1e-8, atol=1e-10)
    anc = res.variable("ANC")[0]
    assert anc.min() == pytest.approx(0.90, rel=0.03)
    assert res.time[0][anc.argmin()] / 24 == pytest.approx(7.55, rel=0.03)


def test_rebound_disappears_without_feedback():
    """MODELS.md §1 target 4: overshoot above baseline exists for γ > 0, not for γ → 0."""
    m = hl.get_model("friberg_docetaxel")
    ev = pd.DataFrame({"ID": [1], "TIME": [0.0], "EVID": [1], "CMT": ["A1"], "AMT": [180.0]})
    with_fb = hl.simulate(m, ev, t_end=24 * 30, dt=1.0).variable("ANC")[0]
    no_fb = hl.simulate(m, ev, params={"gamma": 1e-6}, t_end=24 * 30, dt=1.0).variable("ANC")[0]
    assert with_fb.max() > 5.05 * 1.1
    assert no_fb.max() <= 5.05 * 1.0001


def test_mackey_glass_fixed_point():
    """MODELS.md §2 target 1: x* = (β/γ − 1)^(1/n) = 1 stays put (exact)."""
    res = hl.simulate(hl.get_model("mackey_glass"), params={"x0": 1.0}, t_end=200.0, dt=1.0)
    np.testing.assert_allclose(res.variable("x")[0], 1.0, atol=1e-12)


@pytest.mark.slow
def test_mackey_glass_hopf_bifurcation():
    """MODELS.md §2 target 2: τ = 4.6 → attracting fixed point; τ = 4.8 → limit cycle with a
    period near the onset period 2π/√0.15 = 16.22 (derived; ±3 %)."""
    mg = hl.get_model("mackey_glass")
    res = hl.simulate(
        mg, params={"tau": [4.6, 4.8], "x0": 1.1}, t_end=1500.0, dt=0.1, rtol=1e-9, atol=1e-11
    )
    t, x = res.time[0], res.variable("x")

    def amplitude(row, a, b):
        sel = (t >= a) & (t <= b)
        return row[sel].max() - row[sel].min()

    assert amplitude(x[0], 1400, 1500) < 0.5 * amplitude(x[0], 200, 300)
    assert amplitude(x[1], 1400, 1500) > 0.05
    up = np.flatnonzero((x[1, :-1] < 1) & (x[1, 1:] >= 1) & (t[:-1] > 1000))
    assert np.diff(t[up]).mean() == pytest.approx(2 * np.pi / np.sqrt(0.15), rel=0.03)
