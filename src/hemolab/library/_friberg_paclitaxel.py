"""Friberg 2002 myelosuppression model, paclitaxel → leukocytes (DDMoRe DDMODEL00000186)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hemolab.library._typical import TypicalRun
from hemolab.model import Covariate, Model, Observable, Parameter, ResidualError, State, Variability

if TYPE_CHECKING:
    import pandas as pd

CITATION = (
    "Friberg LE, Henningsson A, Maas H, Nguyen L, Karlsson MO. Model of chemotherapy-induced "
    "myelosuppression with parameter consistency across drugs. J Clin Oncol "
    "2002;20(24):4713-4721. doi:10.1200/JCO.2002.02.140. Paclitaxel/leukocyte parameters, IIV, "
    "residual error and PK structure: DDMoRe Foundation Model Repository DDMODEL00000186 "
    "(Executable_Myelosuppression.mdl, Simulated_WBC_pacl_ddmore.csv), as transcribed by "
    "nlmixr2/nlmixr2lib (inst/modeldb/ddmore/Friberg_2002_paclitaxel.R)."
)

_DDMORE = "DDMoRe DDMODEL00000186 (Friberg 2002, paclitaxel/leukocytes), .mdl VARIABILITY block"
_POS = (0.0, float("inf"))

#: Regimen of :func:`typical_run`: 175 mg/m² as a 3-h IV infusion every 21 days.
DOSE_MG_M2 = 175.0
INFUSION_H = 3.0
CYCLE_H = 21 * 24.0
N_CYCLES = 3
BSA_M2 = 1.8


def friberg_paclitaxel() -> Model:
    """Friberg 2002 leukopenia model, paclitaxel linear-effect set, DDMoRe 186 two-compartment PK.

    Equations (DDMoRe 186 ``.mdl`` DEQ block; n = 3 transit compartments)::

        dA1/dt   = −(CL/V1)·A1 − (Q/V1)·A1 + (Q/V2)·A2          (mg)
        dA2/dt   =  (Q/V1)·A1 − (Q/V2)·A2
        Cu       =  A1/V1/MW                                    (µmol/L, unbound paclitaxel)
        ktr      =  4/MTT ;  kprol = ktr
        dProl/dt =  kprol·Prol·(1 − Slope·Cu)·(Circ0/Circ)^γ − ktr·Prol
        dTi/dt   =  ktr·(T(i−1) − Ti),  i = 1..3 (T0 = Prol)
        dCirc/dt =  ktr·T3 − ktr·Circ ;   WBC = Circ
        Prol = T1 = T2 = T3 = Circ = Circ0 at t = 0 (the drug-free steady state)

    PD parameters (DDMoRe 186 ``.mdl`` STRUCTURAL, the Friberg 2002 paclitaxel/leukocyte fit;
    MODELS.md §1): Circ0 7.21 ×10⁹/L, MTT 124 h, γ 0.239, Slope 28.9 L/µmol (on the *unbound*
    paclitaxel concentration: ``POP_SLOPU``). IIV (log-normal variances): Circ0 0.107,
    MTT 0.0296, Slope 0.176; proportional residual error 0.286 on WBC.

    PK: DDMoRe 186 drives the PD with each subject's empirical-Bayes estimates of an unbound
    paclitaxel two-compartment model (data columns ``CLI``, ``V1I``, ``V2I``) and a fixed
    Q = 204 L/h; it publishes no typical values. The typical values used here are derived from
    that dataset (``Simulated_WBC_pacl_ddmore.csv`` of the bundle, as scraped in the public
    repository dpastoor/ddmore_scraping, ``186/``; 46 subjects, 205 doses): the median over
    subjects of each subject's median EBE, CL 333.5 L/h, V1 421.5 L, V2 1010 L (derived, not
    a published population estimate; the nlmixr2lib notes quote medians 285 L/h and 290 L,
    which the dataset does not reproduce). Molar mass 853.9 g/mol (0.8539 mg/µmol).

    Doses go into ``A1`` in mg; 175 mg/m² doses need ``AMT_UNIT=mg/m2`` and the ``BSA``
    covariate (default 1.8 m²).
    """
    wbc = "10*9/L"
    return Model(
        "friberg_paclitaxel",
        time_unit="h",
        states=[
            State(
                "A1",
                "-(CL/V1)*A1 - (Q/V1)*A1 + (Q/V2)*A2",
                unit="mg",
                description="central paclitaxel (unbound-drug model)",
            ),
            State("A2", "(Q/V1)*A1 - (Q/V2)*A2", unit="mg", description="peripheral paclitaxel"),
            State(
                "Prol",
                "kprol*Prol*(1 - Edrug)*(Circ0/Circ)**gamma - ktr*Prol",
                initial="Circ0",
                unit=wbc,
                positive=True,
                description="proliferating progenitors",
            ),
            State("T1", "ktr*Prol - ktr*T1", initial="Circ0", unit=wbc, positive=True),
            State("T2", "ktr*T1 - ktr*T2", initial="Circ0", unit=wbc, positive=True),
            State("T3", "ktr*T2 - ktr*T3", initial="Circ0", unit=wbc, positive=True),
            State(
                "Circ",
                "ktr*T3 - ktr*Circ",
                initial="Circ0",
                unit=wbc,
                positive=True,
                description="circulating leukocytes",
            ),
        ],
        parameters=[
            Parameter(
                "CL",
                333.5,
                unit="L/h",
                bounds=_POS,
                description="unbound paclitaxel clearance (median EBE of the DDMoRe 186 data)",
            ),
            Parameter(
                "V1",
                421.5,
                unit="L",
                bounds=_POS,
                description="central volume, unbound (median EBE of the DDMoRe 186 data)",
            ),
            Parameter(
                "V2",
                1010.0,
                unit="L",
                bounds=_POS,
                description="peripheral volume, unbound (median EBE of the DDMoRe 186 data)",
            ),
            Parameter(
                "Q",
                204.0,
                unit="L/h",
                bounds=_POS,
                description="intercompartmental clearance (fixed in DDMoRe 186)",
            ),
            Parameter("MW", 0.8539, unit="mg/umol", bounds=_POS, description="molar mass"),
            Parameter("Circ0", 7.21, unit=wbc, bounds=_POS, description="baseline WBC"),
            Parameter("MTT", 124.0, unit="h", bounds=_POS, description="mean transit time"),
            Parameter("gamma", 0.239, bounds=(0.0, 5.0), description="feedback exponent"),
            Parameter(
                "Slope",
                28.9,
                unit="L/umol",
                bounds=_POS,
                description="linear effect of unbound paclitaxel on proliferation",
            ),
        ],
        covariates=[Covariate("BSA", default=BSA_M2, unit="m2", description="body surface area")],
        assignments={
            "ktr": "4/MTT",
            "kprol": "ktr",
            "Cu": "A1/V1/MW",
            "Edrug": "Slope*Cu",
        },
        observables=[
            Observable("WBC", "Circ", unit=wbc, description="white blood cell (leukocyte) count"),
            Observable("Cpac", "Cu", unit="umol/L", description="unbound paclitaxel in plasma"),
        ],
        citation=CITATION,
        description="Chemotherapy-induced leukopenia (paclitaxel): proliferating pool, three "
        "transit compartments and circulating leukocytes with (Circ0/Circ)^gamma feedback; "
        "linear effect of the unbound paclitaxel concentration.",
        variability=Variability.diagonal(
            {"Circ0": 0.107, "MTT": 0.0296, "Slope": 0.176}, source=_DDMORE
        ),
        residual_error=(
            ResidualError(
                "WBC",
                "proportional",
                proportional=0.286,
                source="DDMoRe DDMODEL00000186, PROP_ERROR (proportionalError on CIRC)",
            ),
        ),
    )


def _events() -> pd.DataFrame:
    import pandas as pd

    times = [k * CYCLE_H for k in range(N_CYCLES)]
    n = len(times)
    return pd.DataFrame(
        {
            "ID": [1] * n,
            "TIME": times,
            "EVID": [1] * n,
            "CMT": ["A1"] * n,
            "AMT": [DOSE_MG_M2] * n,
            "AMT_UNIT": ["mg/m2"] * n,
            "DUR": [INFUSION_H] * n,
            "BSA": [BSA_M2] * n,
        }
    )


def typical_run() -> TypicalRun:
    """Paclitaxel 175 mg/m² as a 3-h IV infusion every 21 days, three cycles, BSA 1.8 m²."""
    return TypicalRun(
        description="paclitaxel 175 mg/m2 3-h IV infusion q21d x3, BSA 1.8 m2 (315 mg)",
        events=_events,
        t_end=N_CYCLES * CYCLE_H,
        dt=1.0,
        observable="WBC",
    )
