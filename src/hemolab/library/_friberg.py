"""Friberg 2002 semi-mechanistic myelosuppression model with docetaxel (Bruno 1996 PK).

Two published parameter sets: Friberg 2002 (Table 4, first row) and Kloft 2006 (DDMoRe
DDMODEL00000224, with its covariates on baseline and slope). Both use the Kloft 2006 IIV
(MODELS.md, "How the library uses this page") and its log-additive residual error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from hemolab.library._typical import TypicalRun
from hemolab.model import (
    Covariate,
    Model,
    Observable,
    Parameter,
    ResidualError,
    State,
    Variability,
)

if TYPE_CHECKING:
    import pandas as pd

CITATION = (
    "Friberg LE, Henningsson A, Maas H, Nguyen L, Karlsson MO. Model of chemotherapy-induced "
    "myelosuppression with parameter consistency across drugs. J Clin Oncol "
    "2002;20(24):4713-4721. doi:10.1200/JCO.2002.02.140. PK: Bruno R et al. J Pharmacokinet "
    "Biopharm 1996;24:153-172 (Table II, first column)."
)
KLOFT_CITATION = (
    "Kloft C, Wallin J, Henningsson A, Chatelut E, Karlsson MO. Population pharmacokinetic-"
    "pharmacodynamic model for neutropenia with patient subgroup identification: comparison "
    "across anticancer drugs. Clin Cancer Res 2006;12(18):5481-5490. "
    "doi:10.1158/1078-0432.CCR-06-0815 (values via DDMoRe DDMODEL00000224, used unchanged by "
    "Netterberg I et al. Cancer Chemother Pharmacol 2017;80:343-353, "
    "doi:10.1007/s00280-017-3366-x)."
)
KLOFT_IIV = Variability.diagonal(
    {"Circ0": 0.064, "MTT": 0.019, "Slope": 0.128},
    source="Kloft 2006 docetaxel IIV variances (DDMODEL00000224: BA 0.064, MTT 0.019, "
    "Slope 0.128); MODELS.md's documented default for the Friberg 2002 typical values too",
)
KLOFT_RESIDUAL = ResidualError(
    "ANC",
    "exponential",
    additive=0.424,
    source="Kloft 2006 log-additive residual SD 0.424 (DDMODEL00000224)",
)

ParameterSet = Literal["friberg2002", "kloft2006"]


def friberg_docetaxel(parameter_set: ParameterSet = "friberg2002") -> Model:
    """Friberg 2002 neutropenia model, docetaxel linear-effect set, Bruno three-compartment PK.

    ``parameter_set="friberg2002"`` (MODELS.md §1, Friberg 2002 Table 4 first row as
    transcribed by ``radivot/myelo``): Circ0 5.05 ×10⁹/L, MTT 88.7 h, γ 0.161, Slope
    8.58 L/µmol. ``"kloft2006"`` (Kloft 2006 via DDMODEL00000224): Circ0 5.22, MTT 84.2 h,
    γ 0.1445, Slope 15.57 L/µmol, with Kloft's covariates on the baseline (``SEXF``, ``ECOG1``,
    ``PRIOR``, ``AAG`` piecewise around 1.34 g/L) and on the slope (``AAG``); their defaults
    are the reference patient (male, ECOG 0, untreated, AAG 1.34 g/L).

    PK (both sets): V1 7.4 L, CL 38.5 L/h, k12 1.06, k21 1.51, k13 1.26, k31 0.084 h⁻¹; molar
    mass 0.808 mg/µmol. Doses go into ``A1`` (mg); 100 mg/m² doses need ``AMT_UNIT=mg/m2``
    and the ``BSA`` covariate (default 1.8 m²). IIV: Kloft 2006 variances (Circ0 0.064, MTT
    0.019, Slope 0.128); residual error: log-additive SD 0.424.
    """
    neut = "10*9/L"
    kloft = parameter_set == "kloft2006"
    if parameter_set not in ("friberg2002", "kloft2006"):
        raise ValueError(f"parameter_set must be 'friberg2002' or 'kloft2006', got {parameter_set}")
    circ0, mtt, gamma, slope = (
        (5.21965, 84.1791, 0.144543, 15.5711) if kloft else (5.05, 88.7, 0.161, 8.58)
    )
    covariates = [Covariate("BSA", default=1.8, unit="m2", description="body surface area")]
    assignments = {"ktr": "4/MTT", "kprol": "ktr", "Cp": "A1/V1/MW"}
    extra: list[Parameter] = []
    if kloft:
        covariates += [
            Covariate("SEXF", default=0.0, unit="1", description="1 female, 0 male"),
            Covariate("ECOG1", default=0.0, unit="1", description="1 if ECOG status >= 1"),
            Covariate("PRIOR", default=0.0, unit="1", description="1 after prior therapy"),
            Covariate("AAG", default=1.34, unit="g/L", description="alpha-1 acid glycoprotein"),
        ]
        extra = [
            Parameter("eSEXF", -0.121451, unit="1", description="female on baseline"),
            Parameter("eECOG", 0.130406, unit="1", description="ECOG >= 1 on baseline"),
            Parameter("ePRIOR", -0.146837, unit="1", description="prior therapy on baseline"),
            Parameter("eAAGlo", 0.174677, unit="L/g", description="AAG <= 1.34 on baseline"),
            Parameter("eAAGhi", 0.494618, unit="L/g", description="AAG > 1.34 on baseline"),
            Parameter("eAAGsl", -0.350693, unit="L/g", description="AAG on slope"),
            Parameter("AAGref", 1.34, unit="g/L", description="AAG reference (cohort median)"),
        ]
        assignments |= {
            "dAAG": "AAG - AAGref",
            "BAcov": "(1 + eSEXF*SEXF)*(1 + eECOG*ECOG1)*(1 + ePRIOR*PRIOR)"
            "*(1 + piecewise(eAAGlo*dAAG, dAAG <= 0, eAAGhi*dAAG))",
            "BA": "Circ0*BAcov",
            "Edrug": "Slope*(1 + eAAGsl*dAAG)*Cp",
        }
        base = "BA"
    else:
        assignments["Edrug"] = "Slope*Cp"
        base = "Circ0"
    return Model(
        "friberg_docetaxel_kloft2006" if kloft else "friberg_docetaxel",
        time_unit="h",
        states=[
            State("A1", "-(CL/V1)*A1 - k12*A1 + k21*A2 - k13*A1 + k31*A3", unit="mg"),
            State("A2", "k12*A1 - k21*A2", unit="mg"),
            State("A3", "k13*A1 - k31*A3", unit="mg"),
            State(
                "Prol",
                f"kprol*Prol*(1 - Edrug)*({base}/Circ)**gamma - ktr*Prol",
                initial=base,
                unit=neut,
                positive=True,
            ),
            State("T1", "ktr*Prol - ktr*T1", initial=base, unit=neut, positive=True),
            State("T2", "ktr*T1 - ktr*T2", initial=base, unit=neut, positive=True),
            State("T3", "ktr*T2 - ktr*T3", initial=base, unit=neut, positive=True),
            State("Circ", "ktr*T3 - ktr*Circ", initial=base, unit=neut, positive=True),
        ],
        parameters=[
            Parameter("CL", 38.5, unit="L/h", bounds=(0, float("inf")), description="clearance"),
            Parameter("V1", 7.4, unit="L", bounds=(0, float("inf")), description="central volume"),
            Parameter("k12", 1.06, unit="h-1", bounds=(0, float("inf"))),
            Parameter("k21", 1.51, unit="h-1", bounds=(0, float("inf"))),
            Parameter("k13", 1.26, unit="h-1", bounds=(0, float("inf"))),
            Parameter("k31", 0.084, unit="h-1", bounds=(0, float("inf"))),
            Parameter("MW", 0.808, unit="mg/umol", description="docetaxel molar mass"),
            Parameter("Circ0", circ0, unit=neut, bounds=(0, float("inf")), description="baseline"),
            Parameter("MTT", mtt, unit="h", bounds=(0, float("inf")), description="transit time"),
            Parameter("gamma", gamma, bounds=(0, 5), description="feedback exponent"),
            Parameter("Slope", slope, unit="L/umol", bounds=(0, float("inf"))),
            *extra,
        ],
        covariates=covariates,
        assignments=assignments,
        observables=[
            Observable("ANC", "Circ", unit=neut, description="absolute neutrophil count"),
            Observable("Cdoc", "Cp", unit="umol/L", description="docetaxel plasma conc."),
        ],
        citation=KLOFT_CITATION + " PK: Bruno 1996." if kloft else CITATION,
        description=(
            "Chemotherapy-induced neutropenia: proliferating pool, three transit compartments "
            "and circulating neutrophils with (Circ0/Circ)^gamma feedback"
            + (" (Kloft 2006 parameters and covariates)." if kloft else ".")
        ),
        variability=KLOFT_IIV,
        residual_error=(KLOFT_RESIDUAL,),
    )


def friberg_docetaxel_kloft2006() -> Model:
    """Friberg model with the Kloft 2006 docetaxel parameters and covariates (see
    :func:`friberg_docetaxel`, ``parameter_set="kloft2006"``). Kloft CC et al. Clin Cancer Res
    2006;12:5481-5490, doi:10.1158/1078-0432.CCR-06-0815 (via DDMODEL00000224)."""
    return friberg_docetaxel("kloft2006")


def _docetaxel_events() -> pd.DataFrame:
    import pandas as pd

    n = 4
    return pd.DataFrame(
        {
            "ID": [1] * n,
            "TIME": [k * 21 * 24.0 for k in range(n)],
            "EVID": [1] * n,
            "CMT": ["A1"] * n,
            "AMT": [100.0] * n,
            "AMT_UNIT": ["mg/m2"] * n,
            "DUR": [1.0] * n,
            "BSA": [1.8] * n,
        }
    )


def typical_run() -> TypicalRun:
    """Docetaxel 100 mg/m² 1-h IV infusion every 21 days × 4, BSA 1.8 m² (MODELS.md §1)."""
    return TypicalRun(
        description="docetaxel 100 mg/m2 1-h IV q21d x4, BSA 1.8 m2",
        events=_docetaxel_events,
        t_end=4 * 21 * 24.0,
        dt=6.0,
        observable="ANC",
    )
