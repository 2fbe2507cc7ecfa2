"""Two blood samples for the mixing story of ``make demo``: red and white cells in circulation.

An illustrative composition, not a published model (hemolab's own; design note 026):

- white cells: the Friberg et al. (2002) transit chain in the marrow (``Prol`` → ``T1..T3``,
  10⁹/L, MTT 84.1 h, feedback exponent 0.161, baseline 5.05 × 10⁹/L as fitted for docetaxel),
  released into a circulating *amount* ``NEU`` (10⁹ cells), so that mixing moves cells;
  ANC = NEU / blood volume;
- red cells: haemoglobin mass ``Hbm`` (g) made at Hb0·BV0/100 per lifespan and lost with a
  120-day lifespan (MODELS.md §7e), red-cell volume Hbm / MCHC (33 g/dL);
- plasma volume ``PV`` (mL) relaxes with a 4-h half-life until the blood volume is 70 mL/kg
  (DATA-FORMATS §A: volume re-equilibrated by ≈ 24 h);
- an erythropoiesis-stimulating drug (``ESA``, µg, one compartment, t½ ≈ 2 d) raises red-cell
  production by up to ``Emax`` (the darbepoetin-like half-life is the only published number
  here; ``Emax`` and ``EC50`` are assumptions);
- two diseases (``hemolab.Disease``, off until switched on by ``EVENT=param``): Sample A's
  destroys white cells and shifts the marrow to red cells (too many red cells), Sample D's
  destroys red cells (haemolysis).
"""

import math

import hemolab as hl

HOURS = 24.0  # the model runs in days; the published times are in hours


def model() -> hl.Model:
    base = hl.Model(
        "blood_samples",
        time_unit="d",
        states=[
            hl.State("Prol", "ktr*Prol*(Circ0/anc)**gam - ktr*Prol", initial="Circ0",
                     unit="10*9/L", positive=True),
            hl.State("T1", "ktr*(Prol - T1)", initial="Circ0", unit="10*9/L", positive=True),
            hl.State("T2", "ktr*(T1 - T2)", initial="Circ0", unit="10*9/L", positive=True),
            hl.State("T3", "ktr*(T2 - T3)", initial="Circ0", unit="10*9/L", positive=True),
            hl.State("NEU", "ktr*T3*BV0/1000 - ktr*NEU", initial="Circ0*BV0/1000",
                     unit="10*9", positive=True),
            hl.State("Hbm", "kin*Fprod*(1 + Emax*Cesa/(EC50 + Cesa)) - Hbm/Lrbc", initial="Hbm0",
                     unit="g", positive=True),
            hl.State("PV", "-kv*(PV + Hbm/MCHC - BV0)", initial="BV0 - Hbm0/MCHC", unit="mL"),
            hl.State("ESA", "-kesa*ESA", initial=0.0, unit="ug"),
        ],
        parameters=[
            hl.Parameter("Circ0", 5.05, unit="10*9/L", bounds=(0.0, math.inf)),
            hl.Parameter("MTT", 84.1 / HOURS, unit="d"),
            hl.Parameter("gam", 0.161),
            hl.Parameter("Hb0", 14.0, unit="g/dL"),
            hl.Parameter("Lrbc", 120.0, unit="d", bounds=(0.0, math.inf)),
            hl.Parameter("Fprod", 1.0, description="red-cell production, fraction of normal"),
            hl.Parameter("MCHC", 0.33, unit="g/mL"),
            hl.Parameter("BVkg", 70.0, unit="mL/kg"),
            hl.Parameter("kv", math.log(2) / (4.0 / HOURS), unit="d-1"),
            hl.Parameter("kesa", math.log(2) / 2.0, unit="d-1"),
            hl.Parameter("Vesa", 3.0, unit="L"),
            hl.Parameter("Emax", 1.5),
            hl.Parameter("EC50", 1.0, unit="ug/L"),
        ],
        covariates=[hl.Covariate("WT", default=70.0, unit="kg")],
        assignments={
            "ktr": "4/MTT",
            "BV0": "BVkg*WT",
            "Hbm0": "Hb0*BV0/100",
            "kin": "Hbm0/Lrbc",
            "bv": "PV + Hbm/MCHC",
            "anc": "1000*NEU/bv",
            "Cesa": "ESA/Vesa",
        },
        observables=[
            hl.Observable("ANC", "anc", unit="10*9/L"),
            hl.Observable("Hb", "100*Hbm/bv", unit="g/dL"),
            hl.Observable("BV", "bv", unit="mL"),
        ],
        blood=hl.BloodSpec(
            volume_ml="PV + Hbm/MCHC",
            cell_states=("NEU", "Hbm"),
            plasma_states=("PV",),
            transfusion_map={"HB_G": {"Hbm": 1.0}, "PLASMA_ML": {"PV": 1.0}},
            volume_rule="plasma volume relaxes (t½ 4 h) until PV + Hbm/MCHC = 70 mL/kg",
        ),
        description="Illustrative (hemolab's own composition): circulating white and red "
        "cells, plasma volume and an ESA-like drug, for the sample-mixing demo.",
        # between-patient variability for virtual populations of these samples (assumption:
        # 20 % CV in the white-cell baseline and in the red-cell lifespan)
        variability=hl.Variability(("Circ0", "Lrbc"), ((0.04, 0.0), (0.0, 0.04)),
                                   source="assumption (illustrative)"),
    )
    wbc = hl.Disease(
        "wbc_destruction",
        loss={"Prol": 0.25},
        scale={"Fprod": 1.5},
        active=False,
        source="assumption: marrow white-cell precursors destroyed at 0.25/d, red-cell output up 50 %",
    )
    haemolysis = hl.Disease(
        "haemolysis", loss={"Hbm": 0.01}, active=False, source="assumption: red-cell life ~55 d"
    )
    return haemolysis.apply(wbc.apply(base))
