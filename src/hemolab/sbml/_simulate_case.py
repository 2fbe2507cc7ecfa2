"""Simulating one SBML Test Suite case with hemolab: import, solve on the case's grid, and
report the listed variables as amounts or concentrations."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hemolab.model import Observable

__all__ = ["simulate_case"]

RTOL = 1e-10
ATOL = 1e-14


def simulate_case(case: Any) -> pd.DataFrame:
    """The case's time course (``time`` + its variables) as hemolab computes it."""
    from hemolab._simulate import simulate
    from hemolab.sbml._import import import_sbml

    imp = import_sbml(case.model_path)
    settings = case.settings
    extra = []
    for k, v in enumerate(settings.variables):
        if v not in imp.variables:
            from hemolab._errors import SBMLError

            raise SBMLError(f"case {case.id}: variable {v!r} is not in the model")
        quantity = (
            "amount"
            if v in settings.amount
            else "concentration"
            if v in settings.concentration
            else None
        )
        extra.append(Observable(f"case_out_{k}__", imp.expression(v, quantity)))
    model = imp.model.replace(observables=tuple(imp.model.observables) + tuple(extra))
    times = np.asarray(settings.times, dtype=np.float64)
    try:
        res = simulate(model, grid=times, rtol=RTOL, atol=ATOL, max_steps=1_000_000, throw=True)
    finally:
        _release_when_crowded()
    # positional columns: a variable may itself be called "time" (case 01820)
    values = [res.variable(f"case_out_{k}__")[0] for k in range(len(settings.variables))]
    return pd.DataFrame(
        np.column_stack([res.time[0], *values]), columns=["time", *settings.variables]
    )


# a third of Linux's default vm.max_map_count (65,530), as in the test suite (design note 016)
MAX_MEMORY_MAPS = 24_000


def _release_when_crowded() -> None:
    """Free the compiled cases once this process holds many memory mappings. Not after every
    case: clearing also drops JAX's small shared functions, which every case then recompiled
    (12 % of a case's time, measured)."""
    from hemolab._caches import clear_caches, memory_map_count

    count = memory_map_count()
    if count is not None and count > MAX_MEMORY_MAPS:
        clear_caches()
