"""Mackey–Glass 1977 blood-cell production delay equation."""

from __future__ import annotations

from hemolab.library._typical import TypicalRun
from hemolab.model import Model, Observable, Parameter, State

CITATION = (
    "Mackey MC, Glass L. Oscillation and chaos in physiological control systems. Science "
    "1977;197(4300):287-289. doi:10.1126/science.267326."
)


def mackey_glass() -> Model:
    """Mackey–Glass ``dx/dt = β x(t-τ)/(1 + x(t-τ)^n) − γ x`` in rescaled units (x = P/θ).

    β 0.2 d⁻¹, γ 0.1 d⁻¹, n 10 (MODELS.md §2); τ 17 d (the chaotic benchmark regime of
    BENCHMARKS.md P2; MG77's Fig. 2 used 6 and 20); constant history x0 = 0.5.
    """
    return Model(
        "mackey_glass",
        time_unit="d",
        states=[
            State(
                "x",
                "beta*x(t - tau)/(1 + x(t - tau)**n) - gamma*x",
                initial="x0",
                history="x0",
                unit="1",
                # x(t) >= x(0)·e^{-γt} > 0 by the equation itself; plain coordinates keep the
                # absolute error control that BENCHMARKS.md P2's 1e-5 gate is about
                positive=False,
                description="circulating cells / θ",
            )
        ],
        parameters=[
            Parameter("beta", 0.2, unit="d-1", bounds=(0, float("inf"))),
            Parameter("gamma", 0.1, unit="d-1", bounds=(0, float("inf"))),
            Parameter("n", 10.0, unit="1", bounds=(0, 100)),
            Parameter("tau", 17.0, unit="d", bounds=(0, float("inf"))),
            Parameter("x0", 0.5, unit="1", bounds=(0, float("inf"))),
        ],
        observables=[Observable("cells", "x", unit="1", description="rescaled cell count")],
        citation=CITATION,
        description="Delayed negative feedback on blood-cell production (periodic and chaotic "
        "regimes).",
    )


def typical_run() -> TypicalRun:
    """Untreated, 600 days from the constant past x0 = 0.5 (the chaotic τ = 17 regime)."""
    return TypicalRun(
        description="untreated, constant history x0 = 0.5, tau 17 d (aperiodic regime)",
        events=lambda: None,
        t_end=600.0,
        dt=1.0,
        observable="cells",
    )
