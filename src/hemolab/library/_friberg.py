"""Friberg 2002 semi-mechanistic myelosuppression model with docetaxel (Bruno 1996 PK)."""

from __future__ import annotations

from hemolab.model import Covariate, Model, Observable, Parameter, State

CITATION = (
    "Friberg LE, Henningsson A, Maas H, Nguyen L, Karlsson MO. Model of chemotherapy-induced "
    "myelosuppression with parameter consistency across drugs. J Clin Oncol "
    "2002;20(24):4713-4721. doi:10.1200/JCO.2002.02.140. PK: Bruno R et al. J Pharmacokinet "
    "Biopharm 1996;24:153-172 (Table II, first column)."
)


def friberg_docetaxel() -> Model:
    """Friberg 2002 neutropenia model, docetaxel linear-effect set, Bruno three-compartment PK.

    Parameters follow MODELS.md §1 (Friberg 2002 Table 4 first row as transcribed by
    ``radivot/myelo``): Circ0 5.05 ×10⁹/L, MTT 88.7 h, γ 0.161, Slope 8.58 L/µmol; PK
    V1 7.4 L, CL 38.5 L/h, k12 1.06, k21 1.51, k13 1.26, k31 0.084 h⁻¹; molar mass
    0.808 mg/µmol. Doses go into ``A1`` (mg); 100 mg/m² doses need ``AMT_UNIT=mg/m2`` and the
    ``BSA`` covariate (default 1.8 m²).
    """
    neut = "10*9/L"
    return Model(
        "friberg_docetaxel",
        time_unit="h",
        states=[
            State("A1", "-(CL/V1)*A1 - k12*A1 + k21*A2 - k13*A1 + k31*A3", unit="mg"),
            State("A2", "k12*A1 - k21*A2", unit="mg"),
            State("A3", "k13*A1 - k31*A3", unit="mg"),
            State(
                "Prol",
                "kprol*Prol*(1 - Edrug)*(Circ0/Circ)**gamma - ktr*Prol",
                initial="Circ0",
                unit=neut,
                positive=True,
            ),
            State("T1", "ktr*Prol - ktr*T1", initial="Circ0", unit=neut, positive=True),
            State("T2", "ktr*T1 - ktr*T2", initial="Circ0", unit=neut, positive=True),
            State("T3", "ktr*T2 - ktr*T3", initial="Circ0", unit=neut, positive=True),
            State("Circ", "ktr*T3 - ktr*Circ", initial="Circ0", unit=neut, positive=True),
        ],
        parameters=[
            Parameter("CL", 38.5, unit="L/h", bounds=(0, float("inf")), description="clearance"),
            Parameter("V1", 7.4, unit="L", bounds=(0, float("inf")), description="central volume"),
            Parameter("k12", 1.06, unit="h-1", bounds=(0, float("inf"))),
            Parameter("k21", 1.51, unit="h-1", bounds=(0, float("inf"))),
            Parameter("k13", 1.26, unit="h-1", bounds=(0, float("inf"))),
            Parameter("k31", 0.084, unit="h-1", bounds=(0, float("inf"))),
            Parameter("MW", 0.808, unit="mg/umol", description="docetaxel molar mass"),
            Parameter("Circ0", 5.05, unit=neut, bounds=(0, float("inf")), description="baseline"),
            Parameter("MTT", 88.7, unit="h", bounds=(0, float("inf")), description="transit time"),
            Parameter("gamma", 0.161, bounds=(0, 5), description="feedback exponent"),
            Parameter("Slope", 8.58, unit="L/umol", bounds=(0, float("inf"))),
        ],
        covariates=[Covariate("BSA", default=1.8, unit="m2", description="body surface area")],
        assignments={
            "ktr": "4/MTT",
            "kprol": "ktr",
            "Cp": "A1/V1/MW",
            "Edrug": "Slope*Cp",
        },
        observables=[
            Observable("ANC", "Circ", unit=neut, description="absolute neutrophil count"),
            Observable("Cdoc", "Cp", unit="umol/L", description="docetaxel plasma conc."),
        ],
        citation=CITATION,
        description="Chemotherapy-induced neutropenia: proliferating pool, three transit "
        "compartments and circulating neutrophils with (Circ0/Circ)^gamma feedback.",
    )
