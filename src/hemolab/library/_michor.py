"""Michor 2005 four-compartment model of chronic myeloid leukaemia under imatinib."""

from __future__ import annotations

from hemolab.library._typical import TypicalRun
from hemolab.model import Model, Observable, Parameter, State

CITATION = (
    "Michor F, Hughes TP, Iwasa Y, Branford S, Shah NP, Sawyers CL, Nowak MA. Dynamics of "
    "chronic myeloid leukaemia. Nature 2005;435(7046):1267-1270. doi:10.1038/nature03669. "
    "Parameters and homeostatic term as implemented in radivot/myelo (myelo/R/michor05.R)."
)

_CELLS = "{cells}"
_RATE = "d-1"
_POS = (0.0, float("inf"))


def michor_cml() -> Model:
    """Michor 2005 CML model: normal (x), imatinib-sensitive (y) and resistant (z) lineages.

    Each lineage has stem (0), progenitor (1), differentiated (2) and terminally differentiated
    (3) cells. Normal stem cells are held at 2×10⁶ by λ(x0) = −λk·(x0 − K) (the ``myelo`` form,
    MODELS.md §3); leukaemic stem cells divide at r_y and mutate to resistance with
    probability u per division. Imatinib (``imatinib`` = 1; 0 = untreated) divides a_y by 100
    and b_y by 750 and spares normal and resistant cells. The initial state is the ``myelo``
    Fig. 4 state x = (2e6, 2e8, 2e10, 2e12), y = ``leuk0``·(2.5e5, 5e7, 1e10, 1e12), z = 0, so
    ``BCR_ABL_pct`` = 100·(y3 + z3)/(y3 + z3 + 2·x3) starts at 20 %. Defaults u = 0 and
    r_z = 0.023 d⁻¹; set ``u`` = 4e-8 for resistance studies. Time in days.

    The homeostatic term puts an eigenvalue near −10⁶ d⁻¹ at the normal steady state, so the
    model declares ``stiff=True``.
    """
    states = [
        _state("x0", "(lam - d0)*x0", initial="2e6", positive=True),
        _state("x1", "ax*x0 - d1*x1", initial="2e8", positive=True),
        _state("x2", "bx*x1 - d2*x2", initial="2e10", positive=True),
        _state("x3", "cx*x2 - d3*x3", initial="2e12", positive=True),
        # leuk0 = 0 (no leukaemia) is allowed, so the y states are not declared positive
        _state("y0", "(ry*(1 - u) - d0)*y0", initial="leuk0*2.5e5"),
        _state("y1", "ay_eff*y0 - d1*y1", initial="leuk0*5e7"),
        _state("y2", "by_eff*y1 - d2*y2", initial="leuk0*1e10"),
        _state("y3", "cy*y2 - d3*y3", initial="leuk0*1e12"),
        _state("z0", "(rz - d0)*z0 + ry*u*y0"),
        _state("z1", "az*z0 - d1*z1"),
        _state("z2", "bz*z1 - d2*z2"),
        _state("z3", "cz*z2 - d3*z3"),
    ]
    return Model(
        "michor_cml",
        time_unit="d",
        states=states,
        parameters=[
            Parameter("d0", 0.003, unit=_RATE, bounds=_POS, description="stem-cell death"),
            Parameter("d1", 0.008, unit=_RATE, bounds=_POS, description="progenitor death"),
            Parameter("d2", 0.05, unit=_RATE, bounds=_POS, description="differentiated death"),
            Parameter("d3", 1.0, unit=_RATE, bounds=_POS, description="terminal death"),
            Parameter("ax", 0.8, unit=_RATE, bounds=_POS, description="normal x0 -> x1"),
            Parameter("bx", 5.0, unit=_RATE, bounds=_POS, description="normal x1 -> x2"),
            Parameter("cx", 100.0, unit=_RATE, bounds=_POS, description="normal x2 -> x3"),
            Parameter("ry", 0.008, unit=_RATE, bounds=_POS, description="leukaemic stem division"),
            Parameter("ay", 1.6, unit=_RATE, bounds=_POS, description="leukaemic y0 -> y1"),
            Parameter("by", 10.0, unit=_RATE, bounds=_POS, description="leukaemic y1 -> y2"),
            Parameter("cy", 100.0, unit=_RATE, bounds=_POS, description="leukaemic y2 -> y3"),
            Parameter("rz", 0.023, unit=_RATE, bounds=_POS, description="resistant stem division"),
            Parameter("az", 1.6, unit=_RATE, bounds=_POS, description="resistant z0 -> z1"),
            Parameter("bz", 10.0, unit=_RATE, bounds=_POS, description="resistant z1 -> z2"),
            Parameter("cz", 100.0, unit=_RATE, bounds=_POS, description="resistant z2 -> z3"),
            Parameter("u", 0.0, unit="1", bounds=(0, 1), description="resistance per division"),
            Parameter("lamk", 0.5, unit="d-1/{cells}", bounds=_POS, description="homeostatic gain"),
            Parameter("K", 2e6, unit=_CELLS, bounds=_POS, description="normal stem set point"),
            Parameter("imatinib", 0.0, unit="1", bounds=(0, 1), description="0 off, 1 on"),
            Parameter("leuk0", 1.0, unit="1", bounds=_POS, description="initial y burden scale"),
        ],
        assignments={
            "lam": "-lamk*(x0 - K)",
            "ay_eff": "ay/(1 + 99*imatinib)",
            "by_eff": "by/(1 + 749*imatinib)",
        },
        observables=[
            Observable(
                "BCR_ABL_pct",
                "100*(y3 + z3)/(y3 + z3 + 2*x3)",
                unit="%",
                description="BCR-ABL/BCR ratio (normal cells carry two BCR copies)",
            ),
            Observable("leukemic_stem", "y0 + z0", unit=_CELLS, description="y0 + z0"),
        ],
        stiff=True,
        citation=CITATION,
        description="Chronic myeloid leukaemia: normal, imatinib-sensitive and resistant "
        "four-stage lineages; bi-exponential BCR-ABL decline under imatinib.",
    )


def _state(name: str, ddt: str, initial: str = "0", *, positive: bool = False) -> State:
    return State(
        name, ddt, initial=initial, unit=_CELLS, positive=positive, description=_DESCRIPTIONS[name]
    )


_DESCRIPTIONS = {
    f"{lin}{k}": f"{kind} {stage} cells"
    for lin, kind in (("x", "normal"), ("y", "sensitive leukaemic"), ("z", "resistant"))
    for k, stage in enumerate(("stem", "progenitor", "differentiated", "terminally diff."))
}


def typical_run() -> TypicalRun:
    """Continuous imatinib for one year from the MODELS.md §3 initial state."""
    return TypicalRun(
        description="continuous imatinib from day 0 for 365 days (a_y/100, b_y/750)",
        events=lambda: None,
        t_end=365.0,
        dt=1.0,
        observable="BCR_ABL_pct",
        params={"imatinib": 1.0},
        log_scale=True,
    )
