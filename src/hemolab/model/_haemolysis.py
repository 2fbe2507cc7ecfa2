"""An ABO-incompatible transfusion modelled: the unit's red cells enter and are destroyed.

:func:`haemolysis` adds, for every state that receives a unit's red-cell content (``RBC_ML``,
``HB_G`` in the model's transfusion map), a state ``lysis_<state>`` holding the incompatible
cells still in circulation: an incompatible unit's content goes into both, and
``lysis_<state>`` decays at ``k_lysis``, taking its amount out of ``<state>`` as it goes. So
the unit's red cells (and their haemoglobin) vanish with half-life ``ln 2 / k_lysis`` while
its plasma volume stays, exactly and without touching the model's own red-cell kinetics.

The rate is an assumption, not a published number: acute haemolytic reactions to ABO-
incompatible red cells destroy them intravascularly within hours; the default half-life is
one hour, and ``k_lysis`` is a parameter (set it, or give it inter-individual variability).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from hemolab._errors import ModelError

__all__ = ["LYSIS_HALF_LIFE_H", "haemolysis"]

LYSIS_HALF_LIFE_H = 1.0
"""Default half-life (h) of ABO-incompatible red cells in circulation (assumption)."""

_RED_CELL_KEYS = ("RBC_ML", "HB_G")


def haemolysis(model: Any, half_life_h: float = LYSIS_HALF_LIFE_H) -> Any:
    """``model`` able to take ABO-incompatible red cells: they enter and are destroyed with
    half-life ``half_life_h`` hours (a new model named ``<model>+haemolysis``)."""
    from hemolab.model._model import Parameter, State
    from hemolab.model._units import time_factor

    if model.blood is None:
        raise ModelError(f"model {model.name!r} takes no blood products (no BloodSpec)")
    if model.blood.lysis_map:
        raise ModelError(f"model {model.name!r} already models haemolysis")
    if not (math.isfinite(half_life_h) and half_life_h > 0):
        raise ModelError(f"half_life_h must be > 0, got {half_life_h}")
    targets = sorted(
        {s for key in _RED_CELL_KEYS for s in model.blood.transfusion_map.get(key, {})}
    )
    if not targets:
        raise ModelError(
            f"model {model.name!r}: no state receives red cells (RBC_ML or HB_G in its "
            "transfusion_map), so there is nothing to destroy"
        )
    k = math.log(2.0) / (half_life_h * time_factor("h", model.time_unit))
    units = {s.name: s.unit for s in model.states}
    states = [
        replace(s, ddt=f"({s.ddt}) - k_lysis * lysis_{s.name}") if s.name in targets else s
        for s in model.states
    ]
    states += [
        State(f"lysis_{t}", f"-k_lysis * lysis_{t}", unit=units[t],
              description=f"ABO-incompatible cells still circulating, in {t}")
        for t in targets
    ]  # fmt: skip
    lysis_map = {
        key: {f"lysis_{s}": f for s, f in model.blood.transfusion_map[key].items()}
        for key in _RED_CELL_KEYS
        if model.blood.transfusion_map.get(key)
    }
    params = [
        *model.parameters,
        Parameter("k_lysis", k, unit=f"1/{model.time_unit}", bounds=(0.0, math.inf),
                  description="destruction rate of ABO-incompatible red cells (assumption: "
                  f"half-life {half_life_h:g} h)"),
    ]  # fmt: skip
    return model.replace(
        name=f"{model.name}+haemolysis",
        states=tuple(states),
        parameters=tuple(params),
        blood=replace(model.blood, lysis_map=lysis_map),
    )
