"""Agoram 2006 darbepoetin alfa → hemoglobin model (chemotherapy-induced anaemia)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hemolab.library._typical import TypicalRun
from hemolab.model import Covariate, Model, Observable, Parameter, State

if TYPE_CHECKING:
    import pandas as pd

CITATION = (
    "Agoram B, Heatherington AC, Gastonguay MR. Development and evaluation of a population "
    "pharmacokinetic-pharmacodynamic model of darbepoetin alfa in patients with nonmyeloid "
    "malignancies undergoing multicycle chemotherapy. AAPS J 2006;8(3):E552-E563. "
    "doi:10.1208/aapsj080364. Parameters: Tables 3-4 as transcribed by nlmixr2/nlmixr2lib "
    "(inst/modeldb/specificDrugs/Agoram_2006_darbepoetin_alfa_cia_hemoglobin.R)."
)

_POS = (0.0, float("inf"))


def agoram_darbepoetin() -> Model:
    """Agoram 2006 darbepoetin alfa PK (two compartments, SC depot) and Hb lifespan chain.

    Parameters follow MODELS.md §4 (Agoram 2006 Tables 3–4): CL 2.01 L/d, V1 3.39 L,
    V2 0.251 L, Q 2.90 L/d, ka 0.318 d⁻¹, F 0.443 (the SC ``depot``'s bioavailability),
    CL·(WT/70)^0.623·0.737^PLATGT2, V1·(WT/70)^0.639; progenitor transit time RBCPT 4.68 d,
    red-cell lifespan RBCLS 82.2 d over four transit compartments (gamma-distributed
    lifespans, not a constant-lifespan delay), Smax 0.437 (incremental), S50 3.68 ng/mL
    (×1.86^PLAT), Hb0 9.92 g/dL and k_in = Hb0/RBCLS. ``Hb`` is the sum of the four lifespan
    compartments. SC doses go into ``depot`` (µg), IV doses into ``central``. The default
    patient weighs 70 kg and takes no platinum (covariates ``WT``, ``PLATGT2``, ``PLAT``).
    The highest attainable steady-state Hb is Hb0·(1 + Smax) = 14.26 g/dL.
    """
    hb = "g/dL"
    return Model(
        "agoram_darbepoetin",
        time_unit="d",
        states=[
            State(
                "depot",
                "-ka*depot",
                unit="ug",
                bioavailability="F",
                description="SC injection site",
            ),
            State(
                "central",
                "ka*depot - (CLi/V1i)*central - (Q/V1i)*central + (Q/V2)*periph",
                unit="ug",
            ),
            State("periph", "(Q/V1i)*central - (Q/V2)*periph", unit="ug"),
            State(
                "prog",
                "kin*(1 + Smax*Cc/(S50i + Cc)) - prog/RBCPT",
                initial="kin*RBCPT",
                unit=hb,
                positive=True,
                description="progenitor (Hb to be) compartment",
            ),
            State("Hb1", "prog/RBCPT - kls*Hb1", initial="Hb0/4", unit=hb, positive=True),
            State("Hb2", "kls*Hb1 - kls*Hb2", initial="Hb0/4", unit=hb, positive=True),
            State("Hb3", "kls*Hb2 - kls*Hb3", initial="Hb0/4", unit=hb, positive=True),
            State("Hb4", "kls*Hb3 - kls*Hb4", initial="Hb0/4", unit=hb, positive=True),
        ],
        parameters=[
            Parameter("CL", 2.01, unit="L/d", bounds=_POS, description="clearance (70 kg)"),
            Parameter("V1", 3.39, unit="L", bounds=_POS, description="central volume (70 kg)"),
            Parameter("V2", 0.251, unit="L", bounds=_POS, description="peripheral volume"),
            Parameter("Q", 2.90, unit="L/d", bounds=_POS, description="intercompartmental CL"),
            Parameter("ka", 0.318, unit="d-1", bounds=_POS, description="SC absorption rate"),
            Parameter("F", 0.443, bounds=(0.0, 1.0), description="SC bioavailability"),
            Parameter("WTref", 70.0, unit="kg", bounds=_POS, description="reference weight"),
            Parameter("eWT_CL", 0.623, description="weight exponent on CL"),
            Parameter("eWT_V1", 0.639, description="weight exponent on V1"),
            Parameter("fPLAT_CL", 0.737, bounds=_POS, description="CL factor, >2 platinum"),
            Parameter("RBCPT", 4.68, unit="d", bounds=_POS, description="progenitor MTT"),
            Parameter("RBCLS", 82.2, unit="d", bounds=_POS, description="red-cell lifespan"),
            # the LIDR inhibition form (k_in·(1 − H)) is Smax in [-1, 0)
            Parameter("Smax", 0.437, bounds=(-1.0, float("inf")), description="incremental Emax"),
            Parameter("S50", 3.68, unit="ng/mL", bounds=_POS, description="half-maximal conc."),
            Parameter("fPLAT_S50", 1.86, bounds=_POS, description="S50 factor, any platinum"),
            Parameter("Hb0", 9.92, unit=hb, bounds=_POS, description="baseline hemoglobin"),
        ],
        covariates=[
            Covariate("WT", default=70.0, unit="kg", description="body weight"),
            Covariate("PLATGT2", default=0.0, description="1 if > 2 platinum cycles, else 0"),
            Covariate("PLAT", default=0.0, description="1 if any platinum chemotherapy, else 0"),
        ],
        assignments={
            "CLi": "CL*(WT/WTref)**eWT_CL*fPLAT_CL**PLATGT2",
            "V1i": "V1*(WT/WTref)**eWT_V1",
            "S50i": "S50*fPLAT_S50**PLAT",
            "Cc": "central/V1i",
            "kin": "Hb0/RBCLS",
            "kls": "4/RBCLS",
        },
        observables=[
            Observable("Hb", "Hb1 + Hb2 + Hb3 + Hb4", unit=hb, description="hemoglobin"),
            Observable("Cdarb", "Cc", unit="ng/mL", description="serum darbepoetin alfa"),
        ],
        citation=CITATION,
        description="Darbepoetin alfa stimulates hemoglobin production (Emax); one progenitor "
        "transit compartment feeds four red-cell lifespan compartments.",
    )


def _events() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(
        {
            "ID": [1],
            "TIME": [0.0],
            "EVID": [1],
            "CMT": ["depot"],
            "AMT": [2.25],
            "AMT_UNIT": ["ug/kg"],
            "II": [7.0],
            "ADDL": [11],
            "WT": [70.0],
        }
    )


def typical_run() -> TypicalRun:
    """Darbepoetin alfa 2.25 µg/kg SC weekly × 12, 70 kg, no platinum (Agoram 2006)."""
    return TypicalRun(
        description="darbepoetin alfa 2.25 ug/kg SC weekly x12, 70 kg, no platinum, 16 weeks",
        events=_events,
        t_end=16 * 7.0,
        dt=1.0,
        observable="Hb",
    )
