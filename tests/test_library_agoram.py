"""Agoram 2006 darbepoetin alfa → Hb model against MODELS.md §4 and an independent SciPy solve."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy.integrate import solve_ivp
from scipy.linalg import expm

import hemolab as hl
from hemolab.library._agoram import CITATION, agoram_darbepoetin

# Agoram 2006 Tables 3-4 (MODELS.md §4), typed again here so the reference does not read the model
CL, V1, V2, Q, KA, F = 2.01, 3.39, 0.251, 2.90, 0.318, 0.443
RBCPT, RBCLS, SMAX, S50, HB0 = 4.68, 82.2, 0.437, 3.68, 9.92


@pytest.fixture(scope="module")
def model() -> hl.Model:
    return agoram_darbepoetin()


def test_citation_and_structure(model):
    assert "doi:10.1208/aapsj080364" in CITATION
    assert model.time_unit == "d"
    assert model.state("depot").bioavailability == "F"
    assert not model.has_delays  # transit chain (gamma lifespans), MODELS.md §4 conventions


def test_steady_state_without_drug(model):
    """MODELS.md §4 target 1 (derived, exact): R0 = k_in·T_R, so k_in = 9.92/82.2 g/dL/day,
    and without drug every compartment stays at its initial value."""
    res = hl.simulate(model, t_end=1000.0, dt=100.0, rtol=1e-10, atol=1e-12, throw=True)
    np.testing.assert_allclose(res.variable("Hb")[0], HB0, rtol=1e-9)
    for s in ("Hb1", "Hb2", "Hb3", "Hb4"):
        np.testing.assert_allclose(res.variable(s)[0], HB0 / 4, rtol=1e-9)
    np.testing.assert_allclose(res.variable("prog")[0], HB0 / RBCLS * RBCPT, rtol=1e-9)
    assert round(HB0 / RBCLS, 5) == 0.12068


def test_steady_state_under_constant_exposure(model):
    """Derived, exact: a constant IV infusion R gives C_ss = R/CL and
    Hb_ss = Hb0·(1 + Smax·C_ss/(S50 + C_ss)); saturation gives Hb0·(1 + Smax) = 14.26 g/dL
    (MODELS.md §4 conventions)."""
    rates = np.array([10.0, 1.0e7])  # µg/day
    t_end = 2000.0
    ev = pd.DataFrame(
        {
            "ID": [1, 2],
            "TIME": [0.0, 0.0],
            "EVID": [1, 1],
            "CMT": ["central", "central"],
            "AMT": rates * t_end,
            "RATE": rates,
        }
    )
    res = hl.simulate(model, ev, grid=[t_end - 1.0], rtol=1e-10, atol=1e-12, throw=True)
    css = rates / CL
    np.testing.assert_allclose(res.variable("Cdarb")[:, -1], css, rtol=1e-8)
    expected = HB0 * (1 + SMAX * css / (S50 + css))
    np.testing.assert_allclose(res.variable("Hb")[:, -1], expected, rtol=1e-8)
    assert res.variable("Hb")[1, -1] == pytest.approx(14.26, abs=0.005)


def test_production_stop_gives_s_shaped_decline(model):
    """MODELS.md §4 target 1 (derived): with production stopped the transit chain declines in an
    S shape (zero initial slope), not linearly by k_in per day as the point-lifespan model
    does. Production is stopped with the LIDR inhibition form (Smax = −1) at saturating
    exposure; the reference is the matrix exponential of the drug-free linear chain."""
    t = np.array([1.0, 10.0, 30.0, 60.0, 82.2, 120.0, 200.0])
    ev = pd.DataFrame(
        {"ID": [1], "TIME": [0.0], "EVID": [1], "CMT": ["central"], "AMT": [1e10], "RATE": [1e7]}
    )
    res = hl.simulate(
        model, ev, params={"Smax": -1.0, "S50": 1e-9}, grid=t, rtol=1e-10, atol=1e-12, throw=True
    )
    a, k = 1 / RBCPT, 4 / RBCLS
    chain = np.diag([-a, -k, -k, -k, -k]) + np.diag([a, k, k, k], -1)
    x0 = np.array([HB0 / RBCLS * RBCPT] + [HB0 / 4] * 4)
    ref = np.array([(expm(chain * ti) @ x0)[1:].sum() for ti in t])
    hb = res.variable("Hb")[0]
    np.testing.assert_allclose(hb, ref, rtol=1e-6)
    assert HB0 - hb[0] < 0.15 * HB0 / RBCLS  # point lifespan: k_in·1 d = 0.12 g/dL on day 1
    assert hb[4] > 0.2 * HB0  # point lifespan: Hb = 0 at T_R = 82.2 d


# -- independent SciPy implementation of Agoram 2006 Eqs. (PK Fig. 1A, PD Eqs. 7-11) ----------


def _reference(doses, t_obs, *, wt=70.0, platgt2=0, plat=0):
    """Piecewise DOP853 between doses; doses = [(time, cmt, µg)], SC doses scaled by F."""
    cl = CL * (wt / 70) ** 0.623 * 0.737**platgt2
    v1 = V1 * (wt / 70) ** 0.639
    s50 = S50 * 1.86**plat
    kin, kls = HB0 / RBCLS, 4 / RBCLS

    def rhs(_t, y):
        depot, central, periph, prog, h1, h2, h3, h4 = y
        c = central / v1
        return [
            -KA * depot,
            KA * depot - cl / v1 * central - Q / v1 * central + Q / V2 * periph,
            Q / v1 * central - Q / V2 * periph,
            kin * (1 + SMAX * c / (s50 + c)) - prog / RBCPT,
            prog / RBCPT - kls * h1,
            kls * (h1 - h2),
            kls * (h2 - h3),
            kls * (h3 - h4),
        ]

    y = np.array([0, 0, 0, kin * RBCPT] + [HB0 / 4] * 4, dtype=float)
    cuts = sorted({d[0] for d in doses} | {0.0, float(t_obs[-1])})
    hb = np.empty(len(t_obs))
    conc = np.empty(len(t_obs))
    for t0, t1 in itertools.pairwise(cuts):
        for td, cmt, amt in doses:
            if td == t0:
                y[0 if cmt == "depot" else 1] += amt * (F if cmt == "depot" else 1.0)
        sol = solve_ivp(
            rhs, (t0, t1), y, method="DOP853", rtol=1e-10, atol=1e-12, dense_output=True
        )
        sel = (t_obs >= t0) & (t_obs <= t1)
        ys = sol.sol(t_obs[sel])
        hb[sel] = ys[4:].sum(axis=0)
        conc[sel] = ys[1] / v1
        y = sol.y[:, -1].copy()
    return hb, conc


def _regimens():
    """Agoram 2006 Table 1 regimens: 2.25 µg/kg QW × 12, 6.75 µg/kg Q3W × 4 (SC, 70 kg);
    2.25 µg/kg QW × 12 at 100 kg with platinum (> 2 cycles); a 100 µg IV bolus."""
    return [
        (dict(wt=70.0), [(7.0 * i, "depot", 157.5) for i in range(12)]),
        (dict(wt=70.0), [(21.0 * i, "depot", 472.5) for i in range(4)]),
        (dict(wt=100.0, platgt2=1, plat=1), [(7.0 * i, "depot", 225.0) for i in range(12)]),
        (dict(wt=70.0), [(0.0, "central", 100.0)]),
    ]


def test_matches_independent_scipy_solution(model):
    """Derived: hemolab (rtol 1e-8) and a SciPy DOP853 solve (rtol 1e-10) of the same
    published equations agree on Hb to 1e-5 relative over 20 weeks (and on concentration)."""
    t_obs = np.linspace(0.5, 140.0, 280)
    rows = []
    for i, (cov, doses) in enumerate(_regimens(), start=1):
        for td, cmt, amt in doses:
            rows.append(
                {
                    "ID": i,
                    "TIME": td,
                    "EVID": 1,
                    "CMT": cmt,
                    "AMT": amt,
                    "WT": cov.get("wt", 70.0),
                    "PLATGT2": cov.get("platgt2", 0),
                    "PLAT": cov.get("plat", 0),
                }
            )
    ev = pd.DataFrame(rows)
    res = hl.simulate(model, ev, grid=t_obs, rtol=1e-8, atol=1e-10, throw=True)
    hb, conc = res.variable("Hb"), res.variable("Cdarb")
    for i, (cov, doses) in enumerate(_regimens()):
        ref_hb, ref_c = _reference(doses, t_obs, **cov)
        np.testing.assert_allclose(res.time[i], t_obs)
        np.testing.assert_allclose(hb[i], ref_hb, rtol=1e-5)
        np.testing.assert_allclose(conc[i], ref_c, rtol=1e-5, atol=1e-8 * ref_c.max())
    # the response is real and below the attainable maximum Hb0·(1 + Smax)
    assert 11.0 < hb[0].max() < HB0 * (1 + SMAX)
    # heavier patient with platinum: higher CL and S50 → smaller response
    assert hb[2].max() < hb[0].max()
