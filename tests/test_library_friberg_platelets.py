"""Friberg-type platelet model (Pérez-Ruixo 2016, MODELS.md §6b) against an independent SciPy
solve of the published equations, plus its derived steady state."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp

import hemolab as hl
from hemolab.library._friberg_platelets import CITATION, friberg_platelets, typical_run

# Pérez-Ruixo 2016 abstract (MODELS.md §6b) and Pérez-Ruixo 2013 abstract (PK), typed again
# here so the reference does not read the model. V = Vss is the model's stated assumption.
PLT0, KTR, KS, GAMMA, ALPHA, BETA = 237.0, 7.09e-3, 8.86e-3, 0.621, 0.88, 2.63
FSURG, TSURG_D, FSPLEN = 2.09, 8.42, 0.475
KA, CL, VSS = 0.57, 1.71, 77.0
DOSE_MG, DWELL = 460.0 * 1.8, 0.5


@pytest.fixture(scope="module")
def model() -> hl.Model:
    return friberg_platelets()


def test_citation_and_structure(model):
    assert "doi:10.1208/s12248-015-9839-0" in CITATION
    assert "doi:10.1007/s00280-012-2060-2" in CITATION
    assert model.name == "friberg_platelets"
    assert model.time_unit == "h"
    assert model.observable_names == ("PLT", "Coxa")
    assert {o.name: o.unit for o in model.observables} == {"PLT": "10*9/L", "Coxa": "mg/L"}
    assert model.state_names == ("Aperit", "Acent", "Prol", "T1", "T2", "T3", "Circ")
    assert friberg_platelets(0).state_names == ("Aperit", "Acent", "Prol", "Circ")
    with pytest.raises(ValueError, match="n_transit"):
        friberg_platelets(-1)


def test_variability_is_the_published_bsv(model):
    """MODELS.md's population default for this model: PLT0 BSV 32.9 % (Pérez-Ruixo 2016
    abstract; CV of a log-normal parameter, ω² = ln(1 + CV²)); no residual error published in
    the abstract, so none is declared."""
    v = model.variability
    assert v is not None
    assert v.parameters == ("PLT0",)
    cvs = [32.9]
    np.testing.assert_allclose(v.matrix, np.diag([math.log1p((c / 100) ** 2) for c in cvs]))
    np.testing.assert_allclose(list(v.cv_percent().values()), cvs, rtol=1e-12)
    assert "s12248-015-9839-0" in v.source
    assert model.residual_error == ()
    values = {p.name: p.value for p in model.parameters}
    published = {"PLT0": PLT0, "ktr": KTR, "ks": KS, "gamma": GAMMA, "alpha": ALPHA, "beta": BETA}
    assert {k: values[k] for k in published} == published
    assert (values["ka"], values["CL"], values["V"]) == (KA, CL, VSS)


def test_steady_state_without_drug(model):
    """Derived, exact: dCirc/dt = 0 at Circ = PLT0 needs T3 = (ks/ktr)·PLT0, the chain then
    forces Prol = T1 = T2 = T3 = (ks/ktr)·PLT0 = 296.17 ×10⁹/L and kprol = ktr; without drug or
    surgery every state stays there (4000 h)."""
    res = hl.simulate(model, t_end=4000.0, dt=500.0, rtol=1e-10, atol=1e-12, throw=True)
    tss = KS / KTR * PLT0
    assert round(tss, 2) == 296.17
    for s in ("Prol", "T1", "T2", "T3"):
        np.testing.assert_allclose(res.variable(s)[0], tss, rtol=1e-9)
    np.testing.assert_allclose(res.variable("PLT")[0], PLT0, rtol=1e-9)
    assert res.variable("Coxa")[0].max() == 0.0


def test_absorbed_fraction_and_exposure(model):
    """Derived, exact for the linear PK: a 30-min dwell absorbs 1 − exp(−ka·0.5) = 24.8 % of the
    dose; plasma AUC = absorbed amount / CL = 120.1 mg·h/L for 828 mg (trapezoid, tail < 1e-6)."""
    run = typical_run()
    grid = np.concatenate([np.linspace(0.0, 12.0, 2401), np.linspace(12.25, 1200.0, 4752)])
    res = hl.simulate(model, run.events(), grid=grid, rtol=1e-10, atol=1e-12, throw=True)
    absorbed = DOSE_MG * (1.0 - math.exp(-KA * DWELL))
    assert round(absorbed / DOSE_MG, 3) == 0.248
    auc = np.trapezoid(res.variable("Coxa")[0], grid)
    assert auc == pytest.approx(absorbed / CL, rel=1e-4)
    assert round(absorbed / CL, 1) == 120.1
    assert res.variable("Aperit")[0][grid > DWELL].max() == 0.0  # drained at 30 min


# -- independent SciPy implementation of the published equations (MODELS.md §6b) ---------------


def _reference(t_obs: np.ndarray, n: int, *, surg: float = 1.0, splen: float = 0.0):
    """LSODA (rtol 1e-10): HIPEC dwell [0, 0.5] h, perfusate drained, then free decay."""
    ks_i = KS * (1 - FSPLEN * splen)

    def rhs(t, y):
        aper, acen, prol = y[0], y[1], y[2]
        chain, circ = y[3 : 3 + n], y[-1]
        cp = max(acen, 0.0) / VSS
        e = ALPHA * cp**BETA
        s = 1 + surg * (FSURG - 1) * math.exp(-math.log(2) * t / (TSURG_D * 24))
        out = [-KA * aper, KA * aper - CL / VSS * acen]
        out.append(KTR * s * prol * (1 - e) * (PLT0 / circ) ** GAMMA - KTR * prol)
        prev = prol
        for x in chain:
            out.append(KTR * (prev - x))
            prev = x
        out.append(KTR * prev - ks_i * circ)
        return out

    y = np.array([DOSE_MG, 0.0] + [KS / KTR * PLT0] * (n + 1) + [PLT0])
    plt, conc = np.empty(len(t_obs)), np.empty(len(t_obs))
    for t0, t1 in itertools.pairwise([0.0, DWELL, float(t_obs[-1])]):
        sol = solve_ivp(rhs, (t0, t1), y, method="LSODA", rtol=1e-10, atol=1e-12, dense_output=True)
        assert sol.success
        sel = (t_obs >= t0) & (t_obs <= t1)
        ys = sol.sol(t_obs[sel])
        plt[sel], conc[sel] = ys[-1], ys[1] / VSS
        y = sol.y[:, -1].copy()
        y[0] = 0.0  # the perfusate is drained at the end of the dwell
    return plt, conc


@pytest.mark.parametrize("n", [3, 0])
def test_matches_independent_scipy_solution(n):
    """Derived: hemolab (rtol 1e-10) and SciPy LSODA (rtol 1e-10) of the published equations
    agree under the typical regimen (CRS + 460 mg/m² HIPEC, 30-min dwell, BSA 1.8 m²) to 1e-6
    relative on PLT and plasma oxaliplatin every 6 h over 90 days, for the default three
    transit compartments and for none."""
    run = typical_run()
    res = hl.simulate(
        friberg_platelets(n),
        run.events(),
        t_end=run.t_end,
        dt=run.dt,
        rtol=1e-10,
        atol=1e-12,
        throw=True,
    )
    t = res.time[0]
    ref_plt, ref_c = _reference(t, n)
    np.testing.assert_allclose(res.variable("PLT")[0], ref_plt, rtol=1e-6)
    np.testing.assert_allclose(res.variable("Coxa")[0], ref_c, rtol=1e-6, atol=1e-9 * ref_c.max())


def test_typical_regimen_nadir_and_rebound(model):
    """Qualitative (derived) for the default n = 3: the nadir comes after the transit through
    the chain (≥ 3/ktr = 17.6 days), is a grade 1–2 thrombocytopenia (75–150 ×10⁹/L), and is
    followed by a rebound thrombocytosis above PLT0; without transit compartments the nadir is
    within the first two weeks (MODELS.md §6b: the paper's number of compartments unverified)."""
    run = typical_run()
    days = {}
    for n in (3, 0):
        res = hl.simulate(
            friberg_platelets(n), run.events(), t_end=run.t_end, dt=run.dt, throw=True
        )
        t, plt = res.time[0], res.variable("PLT")[0]
        i = int(np.argmin(plt))
        days[n] = t[i] / 24.0
        assert 75.0 < plt[i] < 150.0, (n, plt[i])
        assert plt[i:].max() > 1.4 * PLT0, n  # rebound thrombocytosis
        assert plt[: i + 1].max() == pytest.approx(PLT0)  # no rise before the nadir
    assert days[3] >= 3 / KTR / 24.0
    assert 5.0 <= days[0] <= 14.0


def test_three_transit_compartments_destabilise_the_published_feedback():
    """Derived from the published ktr, ks and γ (numpy, no hemolab): the loop linearised at the
    drug-free steady state is stable for n ≤ 2 transit compartments but not for n = 3, whose
    critical γ is 0.6006 < 0.621 (slowly growing oscillation, period ≈ 84 days)."""

    def jac(n, g):
        size = n + 2
        j = np.zeros((size, size))
        j[0, -1] = -KTR * g  # relative deviations: Prol, T1..Tn, Circ
        for i in range(1, n + 1):
            j[i, i - 1], j[i, i] = KTR, -KTR
        j[-1, -2], j[-1, -1] = KS, -KS
        return j

    def gamma_crit(n):
        lo, hi = 0.0, 10.0
        for _ in range(80):
            mid = 0.5 * (lo + hi)
            lo, hi = (lo, mid) if np.linalg.eigvals(jac(n, mid)).real.max() > 0 else (mid, hi)
        return lo

    assert round(gamma_crit(3), 4) == 0.6006
    assert gamma_crit(2) > 0.9 > GAMMA
    ev = np.linalg.eigvals(jac(3, GAMMA))
    lead = ev[np.argmax(ev.real)]
    assert lead.real > 0
    assert 2 * math.pi / abs(lead.imag) / 24 == pytest.approx(83.6, abs=0.1)
