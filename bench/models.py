"""Benchmark-only models of BENCHMARKS.md, built with hemolab's public API.

- :func:`friberg_p1`: the P1 Friberg variant (one-compartment PK, Slope in L/mg).
- :func:`friberg_p4` with :func:`p4_triggers`: P1 plus the P4 growth-factor rescue (a
  parameter ``rescue`` multiplying kprol, switched by ``EVID=2, EVENT=param`` rows) and the
  bookkeeping of Circ < 0.5 episodes at their exact crossing times.
"""

from __future__ import annotations

import hemolab as hl
from bench.problems import P4_THRESHOLD

_NEUT = "10*9/L"
_INF = float("inf")


def _friberg(name: str, *, kprol: str, extra: list[hl.Parameter], observables: list) -> hl.Model:
    chain = [
        ("Prol", f"{kprol}*Prol*(1 - Edrug)*(Circ0/Circ)**gamma - ktr*Prol"),
        ("T1", "ktr*Prol - ktr*T1"),
        ("T2", "ktr*T1 - ktr*T2"),
        ("T3", "ktr*T2 - ktr*T3"),
        ("Circ", "ktr*T3 - ktr*Circ"),
    ]
    return hl.Model(
        name,
        time_unit="h",
        states=[
            hl.State("A", "-(CL/V)*A", unit="mg"),
            *(hl.State(n, e, initial="Circ0", unit=_NEUT, positive=True) for n, e in chain),
        ],
        parameters=[
            hl.Parameter("CL", 36.0, unit="L/h", bounds=(0, _INF)),
            hl.Parameter("V", 30.0, unit="L", bounds=(0, _INF)),
            hl.Parameter("MTT", 125.0, unit="h", bounds=(0, _INF)),
            hl.Parameter("Circ0", 5.0, unit=_NEUT, bounds=(0, _INF)),
            hl.Parameter("Slope", 20.0, unit="L/mg", bounds=(0, _INF)),
            hl.Parameter("gamma", 0.17, bounds=(0, 5)),
            *extra,
        ],
        assignments={"ktr": "4/MTT", "Conc": "A/V", "Edrug": "Slope*Conc"},
        observables=[hl.Observable("ANC", "Circ", unit=_NEUT), *observables],
        citation="BENCHMARKS.md P1 (Friberg 2002 structure, one-compartment PK)",
    )


def friberg_p1() -> hl.Model:
    """One-compartment PK (mg, Slope in L/mg) driving the Friberg neutrophil chain."""
    return _friberg("friberg_p1", kprol="ktr", extra=[], observables=[])


def friberg_p4() -> hl.Model:
    """P1 with the P4 rescue: ``dProl/dt = rescue*ktr*Prol*(1 - Edrug)*(Circ0/Circ)^gamma
    - ktr*Prol`` (kprol = ktr times ``rescue``, 1 by default, 1.5 while the rescue runs).

    ``t_down`` and ``max_below`` (h) are written only by :func:`p4_triggers`; the observables
    ``TDOWN`` and ``MAXBELOW`` report them on the output grid.
    """
    return _friberg(
        "friberg_p4_rescue",
        kprol="rescue*ktr",
        extra=[
            hl.Parameter("rescue", 1.0, bounds=(0, _INF)),
            hl.Parameter("t_down", 0.0, unit="h"),
            hl.Parameter("max_below", 0.0, unit="h"),
        ],
        observables=[
            hl.Observable("TDOWN", "t_down", unit="h"),
            hl.Observable("MAXBELOW", "max_below", unit="h"),
        ],
    )


def p4_triggers() -> list[hl.Trigger]:
    """State triggers that keep the longest closed Circ < 0.5 episode, at exact crossings.

    ``down`` (Circ falls below 0.5) records ``t_down = t``; ``up`` (Circ rises above 0.5)
    sets ``max_below = max(max_below, t - t_down)``. Both crossing times are located by
    hemolab's root finding on the step's dense output. Circ starts at Circ0 > 0.5, so the
    ``up`` condition holds at the start and (``initial_value=True``) does not fire there.
    """
    return [
        hl.Trigger(f"Circ < {P4_THRESHOLD!r}", {"t_down": "t"}, name="down"),
        hl.Trigger(
            f"Circ > {P4_THRESHOLD!r}", {"max_below": "max(max_below, t - t_down)"}, name="up"
        ),
    ]
