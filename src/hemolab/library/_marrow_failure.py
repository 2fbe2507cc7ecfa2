"""Progressive marrow failure: erythropoiesis whose production declines (the showcase model).

Structure: the lifespan-based indirect response model of erythropoiesis (Krzyzanski,
Ramakrishnan & Jusko 1999) in its transit-compartment form (Agoram 2006, MODELS.md §4): one
progenitor compartment (mean transit RBCPT) feeds four red-cell compartments whose gamma-
distributed lifespans have mean RBCLS; Hb is their sum and k_in = Hb0/RBCLS keeps the
untreated patient at Hb0. The disease is a loss of erythroid production capacity ``M``
(a fraction of normal, 1 at diagnosis) at a first-order rate ``kfail``: the picture of an
acquired marrow failure (aplastic anaemia, pure red-cell aplasia, myelodysplasia with a
falling erythroid output) in which the red cells themselves are normal and live their usual
lifespan. MODELS.md §4 target 1: when production stops, Hb falls with an S-shaped (gamma
lifespan) decline rather than the point-lifespan's straight line of Hb0/T_RBC per day.

What is *not* published: ``kfail`` and its variability. They are chosen so that a typical
patient loses about a third of Hb over six months (a "thinning blood" course a clinician
would call months, not weeks) and patients differ two-fold in pace; the residual error
(4 % proportional) is the order of a CBC analyser's Hb coefficient of variation plus
within-subject biological variation (≈ 1.5 % and ≈ 3 %). Design note 015 gives the rationale.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hemolab.library._typical import TypicalRun
from hemolab.model import Model, Observable, Parameter, ResidualError, State, Variability

if TYPE_CHECKING:
    import pandas as pd

CITATION = (
    "Structure: Krzyzanski W, Ramakrishnan R, Jusko WJ. Basic pharmacodynamic models for "
    "agents that alter production of natural cells. J Pharmacokinet Biopharm 1999;27(5):"
    "467-489; transit-compartment form and progenitor transit time from Agoram B et al. "
    "AAPS J 2006;8(3):E552-E563 (doi:10.1208/aapsj080364); red-cell lifespan 120 d (MODELS.md "
    "§7e). The first-order loss of production capacity (kfail) is hemolab's own, not fitted "
    "to published data (design note 015)."
)

_POS = (0.0, float("inf"))


def marrow_failure_hb() -> Model:
    """Hb under a first-order loss of erythroid production (see the module docstring).

    ``Hb0`` 13 g/dL at diagnosis (ω² 0.01), ``kfail`` 0.0035 d⁻¹ (ω² 0.25: patients differ
    about two-fold in pace), ``RBCLS`` 120 d (ω² 0.02), ``RBCPT`` 4.68 d (fixed). Hb is
    observed with 4 % proportional error. Time in days.
    """
    hb = "g/dL"
    return Model(
        "marrow_failure_hb",
        time_unit="d",
        states=[
            State(
                "M",
                "-kfail*M",
                initial=1.0,
                unit="1",
                positive=True,
                description="erythroid production capacity (fraction of normal)",
            ),
            State(
                "prog",
                "kin*M - prog/RBCPT",
                initial="kin*RBCPT",
                unit=hb,
                positive=True,
                description="progenitors (Hb to be)",
            ),
            State("Hb1", "prog/RBCPT - kls*Hb1", initial="Hb0/4", unit=hb, positive=True),
            State("Hb2", "kls*Hb1 - kls*Hb2", initial="Hb0/4", unit=hb, positive=True),
            State("Hb3", "kls*Hb2 - kls*Hb3", initial="Hb0/4", unit=hb, positive=True),
            State("Hb4", "kls*Hb3 - kls*Hb4", initial="Hb0/4", unit=hb, positive=True),
        ],
        parameters=[
            Parameter("Hb0", 13.0, unit=hb, bounds=_POS, description="Hb at diagnosis"),
            Parameter(
                "kfail",
                0.0035,
                unit="d-1",
                bounds=_POS,
                description="rate of loss of production capacity",
            ),
            Parameter("RBCLS", 120.0, unit="d", bounds=_POS, description="red-cell lifespan"),
            Parameter("RBCPT", 4.68, unit="d", bounds=_POS, description="progenitor MTT"),
        ],
        assignments={"kin": "Hb0/RBCLS", "kls": "4/RBCLS"},
        observables=[
            Observable("Hb", "Hb1 + Hb2 + Hb3 + Hb4", unit=hb, description="hemoglobin"),
        ],
        variability=Variability.diagonal(
            {"Hb0": 0.01, "kfail": 0.25, "RBCLS": 0.02},
            source="hemolab's assumption (design note 015): Hb at diagnosis CV 10 %, pace of "
            "failure CV 53 %, red-cell lifespan CV 14 %",
        ),
        residual_error=(
            ResidualError(
                "Hb",
                "proportional",
                proportional=0.04,
                source="analyser CV + within-subject variation (design note 015)",
            ),
        ),
        citation=CITATION,
        description="Acquired marrow failure: erythroid production capacity falls first-order; "
        "normal red cells live out a gamma-distributed lifespan, so Hb declines S-shaped.",
    )


def typical_run() -> TypicalRun:
    """The untreated course over a year from diagnosis."""

    def no_events() -> pd.DataFrame | None:
        return None

    return TypicalRun(
        description="untreated, one year from diagnosis",
        events=no_events,
        t_end=365.0,
        dt=1.0,
        observable="Hb",
    )
