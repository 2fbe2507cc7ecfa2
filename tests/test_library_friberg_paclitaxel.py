"""Friberg 2002 paclitaxel → WBC (DDMoRe 186): MODELS.md §1 and an independent SciPy solve."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy.integrate import solve_ivp

import hemolab as hl
from hemolab.library._friberg_paclitaxel import CITATION, friberg_paclitaxel, typical_run

# DDMoRe DDMODEL00000186 (.mdl STRUCTURAL/VARIABILITY, MODELS.md §1), typed again here so the
# reference does not read the model. PK: Q fixed in the .mdl; CL, V1, V2 are the median EBEs of
# the bundle's dataset (see the factory's docstring); molar mass 853.9 g/mol.
CIRC0, MTT, GAMMA, SLOPE = 7.21, 124.0, 0.239, 28.9
CL, V1, V2, Q, MW = 333.5, 421.5, 1010.0, 204.0, 0.8539
CYCLE = 504.0
DOSE_MG = 175.0 * 1.8  # 175 mg/m², BSA 1.8 m²


@pytest.fixture(scope="module")
def model() -> hl.Model:
    return friberg_paclitaxel()


@pytest.fixture(scope="module")
def typical(model):
    """The typical regimen (3 × 175 mg/m² 3-h infusions q21d) on an hourly grid."""
    run = typical_run()
    res = hl.simulate(
        model, run.events(), t_end=run.t_end, dt=run.dt, rtol=1e-10, atol=1e-12, throw=True
    )
    return res


def test_citation_and_structure(model):
    assert "doi:10.1200/JCO.2002.02.140" in CITATION
    assert "DDMODEL00000186" in CITATION
    assert model.name == "friberg_paclitaxel"
    assert model.time_unit == "h"
    assert model.observable_names == ("WBC", "Cpac")
    assert {o.name: o.unit for o in model.observables} == {"WBC": "10*9/L", "Cpac": "umol/L"}
    assert not model.has_delays
    run = typical_run()
    assert run.observable == "WBC" and run.t_end == 3 * CYCLE


def test_variability_and_residual_error_are_the_published_ones(model):
    """DDMoRe 186 .mdl VARIABILITY (variances on the log scale) and PROP_ERROR (MODELS.md §1)."""
    v = model.variability
    assert v is not None
    assert v.parameters == ("Circ0", "MTT", "Slope")
    np.testing.assert_array_equal(v.matrix, np.diag([0.107, 0.0296, 0.176]))
    assert "DDMODEL00000186" in v.source
    (err,) = model.residual_error
    assert (err.observable, err.kind, err.proportional, err.additive) == (
        "WBC",
        "proportional",
        0.286,
        0.0,
    )
    # typical values are the .mdl STRUCTURAL ones
    values = {p.name: p.value for p in model.parameters}
    assert (values["Circ0"], values["MTT"], values["gamma"], values["Slope"]) == (
        CIRC0,
        MTT,
        GAMMA,
        SLOPE,
    )
    assert values["Q"] == 204.0


def test_steady_state_without_drug(model):
    """Derived, exact: without drug every compartment stays at Circ0 = 7.21 (MODELS.md §1 target
    1 for this set): k_tr = 4/124 = 0.032258 h⁻¹, circulating half-life ln2·MTT/4 = 21.49 h."""
    res = hl.simulate(model, t_end=2000.0, dt=250.0, rtol=1e-10, atol=1e-12, throw=True)
    for s in ("Prol", "T1", "T2", "T3", "Circ"):
        np.testing.assert_allclose(res.variable(s)[0], CIRC0, rtol=1e-9)
    np.testing.assert_allclose(res.variable("WBC")[0], CIRC0, rtol=1e-9)
    assert res.variable("Cpac")[0].max() == 0.0
    assert round(4 / MTT, 6) == 0.032258
    assert round(math.log(2) * MTT / 4, 2) == 21.49


def test_exposure_is_dose_over_clearance(model):
    """Derived, exact for linear PK: AUC of the unbound concentration after one 315-mg 3-h
    infusion is Dose/(MW·CL) = 1.106 µmol·h/L (trapezoid on a 0.05-h grid, tail < 1e-6)."""
    ev = pd.DataFrame(
        {"ID": [1], "TIME": [0.0], "EVID": [1], "CMT": ["A1"], "AMT": [DOSE_MG], "DUR": [3.0]}
    )
    grid = np.linspace(0.0, 500.0, 10001)
    res = hl.simulate(model, ev, grid=grid, rtol=1e-10, atol=1e-14, throw=True)
    auc = np.trapezoid(res.variable("Cpac")[0], grid)
    assert auc == pytest.approx(DOSE_MG / MW / CL, rel=1e-4)
    assert round(DOSE_MG / MW / CL, 3) == 1.106


# -- independent SciPy implementation of the DDMoRe 186 .mdl DEQ block ------------------------


def _reference(t_obs: np.ndarray, doses: list[tuple[float, float, float]]):
    """LSODA (rtol 1e-10) piecewise between infusion starts/ends; doses = [(start, mg, hours)]."""
    ktr = 4.0 / MTT

    def rhs(t, y, rate):
        a1, a2, prol, t1, t2, t3, circ = y
        cu = a1 / V1 / MW
        return [
            rate - CL / V1 * a1 - Q / V1 * a1 + Q / V2 * a2,
            Q / V1 * a1 - Q / V2 * a2,
            ktr * prol * (1 - SLOPE * cu) * (CIRC0 / circ) ** GAMMA - ktr * prol,
            ktr * (prol - t1),
            ktr * (t1 - t2),
            ktr * (t2 - t3),
            ktr * (t3 - circ),
        ]

    y = np.array([0.0, 0.0] + [CIRC0] * 5)
    cuts = sorted({0.0, float(t_obs[-1])} | {s for s, _, _ in doses} | {s + d for s, _, d in doses})
    wbc, conc = np.empty(len(t_obs)), np.empty(len(t_obs))
    for t0, t1 in itertools.pairwise(cuts):
        rate = sum(a / d for s, a, d in doses if s <= t0 < s + d)
        sol = solve_ivp(
            rhs,
            (t0, t1),
            y,
            method="LSODA",
            args=(rate,),
            rtol=1e-10,
            atol=1e-12,
            dense_output=True,
        )
        assert sol.success
        sel = (t_obs >= t0) & (t_obs <= t1)
        ys = sol.sol(t_obs[sel])
        wbc[sel], conc[sel] = ys[6], ys[0] / V1 / MW
        y = sol.y[:, -1]
    return wbc, conc


def test_matches_independent_scipy_solution(typical):
    """Derived: hemolab (rtol 1e-10) and SciPy LSODA (rtol 1e-10) of the DDMoRe 186 equations
    agree under the typical regimen (3 × 315 mg 3-h infusions q21d) to 1e-6 relative on WBC and
    on the unbound concentration, hourly over 63 days."""
    t = typical.time[0]
    ref_wbc, ref_c = _reference(t, [(k * CYCLE, DOSE_MG, 3.0) for k in range(3)])
    np.testing.assert_allclose(typical.variable("WBC")[0], ref_wbc, rtol=1e-6)
    np.testing.assert_allclose(
        typical.variable("Cpac")[0], ref_c, rtol=1e-6, atol=1e-9 * ref_c.max()
    )


def test_typical_regimen_nadir_and_rebound(typical):
    """Qualitative (derived): each cycle's WBC nadir falls on days 8–11 (≈ MTT + a few days,
    MODELS.md §1 target 4), to grade 1–2 leukopenia (2–4 ×10⁹/L), with a rebound overshoot
    above Circ0 before the next dose (γ > 0); no cumulative decline over three cycles."""
    t, wbc = typical.time[0], typical.variable("WBC")[0]
    nadirs = []
    for k in range(3):
        sel = (t >= k * CYCLE) & (t < (k + 1) * CYCLE)
        i = int(np.argmin(np.where(sel, wbc, np.inf)))
        nadir_day = (t[i] - k * CYCLE) / 24.0
        assert 8.0 <= nadir_day <= 11.0, (k, nadir_day)
        assert 2.0 < wbc[i] < 4.0, (k, wbc[i])
        assert wbc[sel & (t > t[i])].max() > CIRC0  # rebound overshoot
        nadirs.append(wbc[i])
    assert abs(nadirs[2] - nadirs[0]) < 0.15 * nadirs[0]
    cpac = typical.variable("Cpac")[0]
    assert 0.2 < cpac.max() < 0.3  # µmol/L unbound, at the end of an infusion
