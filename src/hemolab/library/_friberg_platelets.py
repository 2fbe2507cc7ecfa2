"""Friberg-type platelet model after CRS + HIPEC oxaliplatin (Pérez-Ruixo 2016)."""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING

from hemolab.library._typical import TypicalRun
from hemolab.model import Covariate, Model, Observable, Parameter, State, Variability

if TYPE_CHECKING:
    import pandas as pd

CITATION = (
    "Pérez-Ruixo C, Valenzuela B, Peris JE, Bretcha-Boix P, Escudero-Ortiz V, Farré-Alegre J, "
    "Pérez-Ruixo JJ. Platelet dynamics in peritoneal carcinomatosis patients treated with "
    "cytoreductive surgery and hyperthermic intraperitoneal oxaliplatin. AAPS J "
    "2016;18(1). doi:10.1208/s12248-015-9839-0 (PD parameters and "
    "BSV: abstract). Oxaliplatin PK: Pérez-Ruixo C, Valenzuela B, Peris JE, et al. Population "
    "pharmacokinetics of hyperthermic intraperitoneal oxaliplatin in patients with peritoneal "
    "carcinomatosis after cytoreductive surgery. Cancer Chemother Pharmacol 2013;71(3):693-704. "
    "doi:10.1007/s00280-012-2060-2 (ka, CL, Vss: abstract)."
)

_SOURCE = "Pérez-Ruixo 2016 AAPS J (doi:10.1208/s12248-015-9839-0), abstract: BSV (%)"
_POS = (0.0, float("inf"))

#: Regimen of :func:`typical_run`: one 30-min HIPEC dwell of oxaliplatin at t = 0, the perfusate
#: drained at 30 min (the 30-min dwell is in the group's 2013-2015 PK abstracts); surgery (CRS) at
#: t = 0 without splenectomy. 460 mg/m² is the standard Elias-protocol HIPEC dose: assumed, the
#: dose of the Pérez-Ruixo 2016 cohort was not verified.
DOSE_MG_M2 = 460.0
DWELL_H = 0.5
BSA_M2 = 1.8
T_END_H = 90 * 24.0


def friberg_platelets(n_transit: int = 3) -> Model:
    """Friberg-type platelet model with random platelet destruction and HIPEC oxaliplatin PK.

    Equations (MODELS.md §6b: the Friberg 2002 structure with Circ = platelets, which are lost
    with the random destruction rate ks instead of ktr; ``n_transit`` transit compartments,
    3 by default as in MODELS.md — the paper's number was not verified, see below)::

        dAperit/dt = −ka·Aperit                                   (mg, peritoneal perfusate)
        dAcent/dt  =  ka·Aperit − (CL/V)·Acent ;   Cp = Acent/V     (mg/L)
        E          =  α·Cp^β
        S(t)       =  1 + SURG·(Fsurg − 1)·exp(−ln2·t/Tsurg)        (surgery at t = 0)
        dProl/dt   =  kprol·S(t)·Prol·(1 − E)·(PLT0/Circ)^γ − ktr·Prol
        dTi/dt     =  ktr·(T(i−1) − Ti),  i = 1..n (T0 = Prol)
        dCirc/dt   =  ktr·Tn − ks·(1 − fSPLEN·SPLEN)·Circ ;   PLT = Circ   (Tn = Prol if n = 0)

    Steady state without drug or surgery (derived): dCirc/dt = 0 with Circ = PLT0 gives
    Tn = (ks/ktr)·PLT0; each transit equation gives T(i−1) = Ti, so Prol = T1 = … = Tn =
    (ks/ktr)·PLT0 = 1.2497·PLT0 (not PLT0: the chain carries the flux ks·PLT0 at rate
    ktr ≠ ks); dProl/dt = 0 with Circ = PLT0 gives kprol = ktr. These are the initial states.
    With splenectomy the pre-surgery steady state (intact spleen) is the initial state and ks
    drops from t = 0.

    PD parameters (Pérez-Ruixo 2016, abstract; typical value, BSV): PLT0 237 ×10⁹/L (32.9 %),
    ktr 7.09×10⁻³ h⁻¹ (47.1 %), ks 8.86×10⁻³ h⁻¹ (80.0 %), γ 0.621, α 0.88 (published unit
    L/mg; here α is the coefficient of Cp in mg/L, ``Cunit`` = 1 mg/L keeps E dimensionless)
    (56.9 %), β 2.63. Surgery: maximal 2.09-fold increase of kprol attenuated with a half-life
    of 8.42 d; splenectomy lowers ks by 47.5 %. The form of S(t) (fold factor 2.09 at t = 0
    decaying to 1) is our reading of the abstract, not checked against the paper's equations.

    PK (Pérez-Ruixo 2013, abstract): first-order absorption from the peritoneum, ka 0.57 h⁻¹,
    CL 1.71 L/h, Vss 77 L (total plasma oxaliplatin). The paper's disposition model has two
    compartments, but its split of Vss into central and peripheral volumes and its Q are not
    available to us; assumed, not from the paper: one plasma compartment with V = Vss = 77 L
    (distribution taken as instantaneous, which under-predicts the early peak). The HIPEC dwell
    lasts 30 min, after which the perfusate is drained (an EVID 5 replace of ``Aperit`` with 0;
    1 − exp(−0.57·0.5) = 24.8 % of the dose is absorbed).

    Number of transit compartments: not verified against the paper. With n = 3 and the
    published γ, ktr and ks the drug-free steady state is (weakly) unstable: the critical γ of
    the linearised loop is 0.6006 < 0.621, so a perturbation turns into a slowly growing
    oscillation of period ≈ 84 days, and the nadir falls about 5 weeks after HIPEC. The
    abstract describes thrombocytopenia and thrombocytosis as reversible and short-lasting,
    which n = 0 reproduces better; check the paper before relying on either.

    Doses of oxaliplatin go into ``Aperit`` in mg (``AMT_UNIT=mg/m2`` with ``BSA``, default
    1.8 m²). Covariates ``SURG`` and ``SPLEN`` (0/1, default 0) switch on the surgery and
    splenectomy effects.
    """
    if not isinstance(n_transit, int) or n_transit < 0:
        raise ValueError(f"n_transit must be an integer >= 0, got {n_transit!r}")
    plt = "10*9/L"
    chain = [f"T{i}" for i in range(1, n_transit + 1)]
    feed = ["Prol", *chain]
    transit_states = [
        State(name, f"ktr*{prev} - ktr*{name}", initial="Tss", unit=plt, positive=True)
        for prev, name in itertools.pairwise(feed)
    ]
    return Model(
        "friberg_platelets",
        time_unit="h",
        states=[
            State(
                "Aperit",
                "-ka*Aperit",
                unit="mg",
                description="oxaliplatin in the peritoneal perfusate (HIPEC)",
            ),
            State("Acent", "ka*Aperit - (CL/V)*Acent", unit="mg", description="plasma oxaliplatin"),
            State(
                "Prol",
                "kprol*Ssurg*Prol*(1 - Edrug)*(PLT0/Circ)**gamma - ktr*Prol",
                initial="Tss",
                unit=plt,
                positive=True,
                description="proliferating megakaryocyte progenitors",
            ),
            *transit_states,
            State(
                "Circ",
                f"ktr*{feed[-1]} - ksi*Circ",
                initial="PLT0",
                unit=plt,
                positive=True,
                description="circulating platelets",
            ),
        ],
        parameters=[
            Parameter(
                "ka",
                0.57,
                unit="h-1",
                bounds=_POS,
                description="peritoneal absorption rate (Pérez-Ruixo 2013)",
            ),
            Parameter(
                "CL", 1.71, unit="L/h", bounds=_POS, description="clearance (Pérez-Ruixo 2013)"
            ),
            Parameter(
                "V",
                77.0,
                unit="L",
                bounds=_POS,
                description="volume = published Vss 77 L (one-compartment: assumed, not from "
                "the paper)",
            ),
            Parameter("PLT0", 237.0, unit=plt, bounds=_POS, description="baseline platelets"),
            Parameter("ktr", 7.09e-3, unit="h-1", bounds=_POS, description="maturation rate"),
            Parameter("ks", 8.86e-3, unit="h-1", bounds=_POS, description="random destruction"),
            Parameter("gamma", 0.621, bounds=(0.0, 5.0), description="feedback exponent"),
            Parameter(
                "alpha",
                0.88,
                bounds=_POS,
                description="power-law coefficient (published as 0.88 L/mg; Cp in mg/L)",
            ),
            Parameter("beta", 2.63, bounds=_POS, description="power-law exponent"),
            Parameter(
                "Cunit",
                1.0,
                unit="mg/L",
                bounds=_POS,
                description="concentration unit of the power law (fixed at 1 mg/L)",
            ),
            Parameter(
                "Fsurg",
                2.09,
                bounds=_POS,
                description="fold increase of kprol at surgery (reading of the abstract)",
            ),
            Parameter(
                "Tsurg",
                8.42 * 24.0,
                unit="h",
                bounds=_POS,
                description="half-life of the surgery effect (8.42 d)",
            ),
            Parameter(
                "fSPLEN",
                0.475,
                bounds=(0.0, 1.0),
                description="fractional decrease of ks after splenectomy",
            ),
        ],
        covariates=[
            Covariate("BSA", default=BSA_M2, unit="m2", description="body surface area"),
            Covariate("SURG", default=0.0, description="1 if cytoreductive surgery at t = 0"),
            Covariate("SPLEN", default=0.0, description="1 if splenectomy at surgery (t = 0)"),
        ],
        assignments={
            "Tss": "ks*PLT0/ktr",
            "kprol": "ktr",
            "ksi": "ks*(1 - fSPLEN*SPLEN)",
            "Ssurg": f"1 + SURG*(Fsurg - 1)*exp(-{math.log(2)!r}*t/Tsurg)",
            "Cp": "Acent/V",
            "Edrug": "alpha*max(Cp/Cunit, 0)**beta",
        },
        observables=[
            Observable("PLT", "Circ", unit=plt, description="platelet count"),
            Observable("Coxa", "Cp", unit="mg/L", description="plasma oxaliplatin (total)"),
        ],
        citation=CITATION,
        description="Experimental (transit count unverified; PK partly assumed): "
        "chemotherapy-induced thrombocytopenia (hyperthermic intraperitoneal "
        "oxaliplatin): Friberg-type progenitor pool and transit chain, platelets lost by random "
        "destruction ks, (PLT0/PLT)^gamma feedback, power-law drug effect, surgery-stimulated "
        "proliferation.",
        # MODELS.md names PLT0's BSV for populations; the abstract's BSV of ktr (47.1 %), ks
        # (80.0 %) and alpha (56.9 %) can be given as an omega (Variability.from_cv)
        variability=Variability.from_cv({"PLT0": 32.9}, source=_SOURCE),
    )


def _events() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(
        {
            "ID": [1, 1],
            "TIME": [0.0, DWELL_H],
            "EVID": [1, 5],
            "CMT": ["Aperit", "Aperit"],
            "AMT": [DOSE_MG_M2, 0.0],
            "AMT_UNIT": ["mg/m2", "mg"],
            "BSA": [BSA_M2, BSA_M2],
            "SURG": [1.0, 1.0],
            "SPLEN": [0.0, 0.0],
        }
    )


def typical_run() -> TypicalRun:
    """CRS then HIPEC: 460 mg/m² oxaliplatin for 30 min (then drained), BSA 1.8 m², 90 days.

    The 460 mg/m² dose is assumed (standard Elias-protocol HIPEC dose), not read from the paper.
    """
    return TypicalRun(
        description="cytoreductive surgery + hyperthermic intraperitoneal oxaliplatin 460 mg/m2 "
        "(828 mg; dose assumed), 30-min dwell then drained; no splenectomy; BSA 1.8 m2",
        events=_events,
        t_end=T_END_H,
        dt=6.0,
        observable="PLT",
    )
