"""The benchmark-only P1 Friberg variant of BENCHMARKS.md, built with hemolab's public API."""

from __future__ import annotations

import hemolab as hl


def friberg_p1() -> hl.Model:
    """One-compartment PK (mg, Slope in L/mg) driving the Friberg neutrophil chain."""
    neut = "10*9/L"
    chain = [
        ("Prol", "ktr*Prol*(1 - Edrug)*(Circ0/Circ)**gamma - ktr*Prol"),
        ("T1", "ktr*Prol - ktr*T1"),
        ("T2", "ktr*T1 - ktr*T2"),
        ("T3", "ktr*T2 - ktr*T3"),
        ("Circ", "ktr*T3 - ktr*Circ"),
    ]
    return hl.Model(
        "friberg_p1",
        time_unit="h",
        states=[
            hl.State("A", "-(CL/V)*A", unit="mg"),
            *(hl.State(n, e, initial="Circ0", unit=neut, positive=True) for n, e in chain),
        ],
        parameters=[
            hl.Parameter("CL", 36.0, unit="L/h", bounds=(0, float("inf"))),
            hl.Parameter("V", 30.0, unit="L", bounds=(0, float("inf"))),
            hl.Parameter("MTT", 125.0, unit="h", bounds=(0, float("inf"))),
            hl.Parameter("Circ0", 5.0, unit=neut, bounds=(0, float("inf"))),
            hl.Parameter("Slope", 20.0, unit="L/mg", bounds=(0, float("inf"))),
            hl.Parameter("gamma", 0.17, bounds=(0, 5)),
        ],
        assignments={"ktr": "4/MTT", "Conc": "A/V", "Edrug": "Slope*Conc"},
        observables=[hl.Observable("ANC", "Circ", unit=neut)],
        citation="BENCHMARKS.md P1 (Friberg 2002 structure, one-compartment PK)",
    )
