"""Small models shared by the dataset and schedule tests."""

from __future__ import annotations

import hemolab as hl


def pk_model(**changes: object) -> hl.Model:
    """One-compartment PK with a depot: F and lag on the depot, model rate/duration on central."""
    model = hl.Model(
        "pk1",
        time_unit="h",
        states=[
            hl.State("depot", "-KA*depot", unit="mg", bioavailability="F1", lag="TLAG"),
            hl.State(
                "central",
                "KA*depot - CL/V*central",
                unit="mg",
                infusion_rate="R1",
                infusion_duration="D1",
            ),
        ],
        parameters=[
            hl.Parameter("KA", 1.0, unit="h-1"),
            hl.Parameter("CL", 5.0, unit="L/h", bounds=(0.0, 1000.0)),
            hl.Parameter("V", 50.0, unit="L"),
            hl.Parameter("F1", 0.8),
            hl.Parameter("TLAG", 0.5, unit="h"),
            hl.Parameter("R1", 20.0, unit="mg/h"),
            hl.Parameter("D1", 4.0, unit="h"),
        ],
        covariates=[hl.Covariate("WT", 70.0, unit="kg"), hl.Covariate("BSA", None, unit="m2")],
    )
    return model.replace(**changes) if changes else model


def blood_model() -> hl.Model:
    return hl.Model(
        "blood1",
        time_unit="h",
        states=[
            hl.State("Hb", "-kHb*Hb", initial=700.0, unit="g"),
            hl.State("PLT", "-kP*PLT", initial=1000.0, unit="10*9"),
            hl.State("Vp", "-kV*(Vp - V0)", initial="V0", unit="mL"),
        ],
        parameters=[
            hl.Parameter("kHb", 0.001, unit="h-1"),
            hl.Parameter("kP", 0.01, unit="h-1"),
            hl.Parameter("kV", 0.1, unit="h-1"),
            hl.Parameter("V0", 2750.0, unit="mL"),
        ],
        blood=hl.BloodSpec(
            volume_ml="V0/0.55",
            cell_states=("Hb", "PLT"),
            plasma_states=("Vp",),
            transfusion_map={"HB_G": {"Hb": 1.0}, "PLT_E9": {"PLT": 0.67}, "PLASMA_ML": {"Vp": 1}},
        ),
    )


RED_CELL_LIFESPAN_H = 120 * 24.0


def blood_volume_model(name: str = "blood_volume_test") -> hl.Model:
    """Hb mass, red-cell volume and plasma volume; total blood volume returns to 70 mL/kg
    (plasma t½ 4 h) and red cells to their baseline over their 120-day lifespan."""
    import math

    return hl.Model(
        name,
        time_unit="h",
        states=[
            hl.State("Hbm", "(Hbm0 - Hbm)/L", initial="Hbm0", unit="g"),
            hl.State("RCV", "(RCV0 - RCV)/L", initial="BV0*Hct0", unit="mL"),
            hl.State("PV", "-kv*(PV + RCV - BV0)", initial="BV0*(1 - Hct0)", unit="mL"),
        ],
        parameters=[
            hl.Parameter("Hct0", 0.42),
            hl.Parameter("BVkg", 70.0, unit="mL/kg"),
            hl.Parameter("Hb0", 14.0, unit="g/dL"),
            hl.Parameter("L", RED_CELL_LIFESPAN_H, unit="h"),
            hl.Parameter("kv", math.log(2) / 4.0, unit="h-1"),
        ],
        covariates=[hl.Covariate("WT", default=70.0, unit="kg")],
        assignments={"BV0": "BVkg*WT", "Hbm0": "Hb0*BV0/100", "RCV0": "BV0*Hct0"},
        observables=[
            hl.Observable("Hb", "100*Hbm/(PV + RCV)", unit="g/dL"),  # 100 mL per dL
            hl.Observable("BV", "PV + RCV", unit="mL"),
        ],
        blood=hl.BloodSpec(
            volume_ml="PV + RCV",
            cell_states=("Hbm", "RCV"),
            plasma_states=("PV",),
            transfusion_map={
                "HB_G": {"Hbm": 1.0},
                "RBC_ML": {"RCV": 1.0},
                "PLASMA_ML": {"PV": 1.0},
            },
            volume_rule="plasma volume relaxes (t½ 4 h) until PV + RCV = 70 mL/kg",
        ),
    )
