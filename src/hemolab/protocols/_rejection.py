"""The risk of rejection: blood products of a stated group given to patients of every group.

A protocol's transfusion may name the product's group (``group = "A+"``: an uncrossmatched
emergency unit, or a regional stock). Each virtual patient then has a blood group, drawn from
the population's frequencies (a covariate ``hl_blood_group``: the index into
:data:`BLOOD_GROUPS`), and per transfusion line *j* two indicators are part of the model:

- ``hl_inc{j}``: the unit is incompatible with the patient (MODELS.md §7d, :mod:`hemolab.events.
  _abo`), for any reason (ABO, or RhD: a D-negative patient given D-positive red cells);
- ``hl_haem{j}``: its red cells are ABO-incompatible (RBC, WB), so they are destroyed: an
  acute haemolytic reaction.

Every patient receives the same events (one action table for the population), so the
destruction cannot be switched per patient by the events. Instead each red-cell line *j*
also doses a bookkeeping state ``hl_lysis{j}_<s>`` per red-cell state *s* (the same amount as
the unit gives *s*, over the same duration), which decays at ``hl_k_lysis``; *s* loses
``hl_k_lysis * hl_haem{j} * hl_lysis{j}_<s>``. For a compatible patient ``hl_haem{j} = 0``
and nothing is lost; for an incompatible one the unit's red cells vanish with half-life
:data:`~hemolab.model.LYSIS_HALF_LIFE_H`, as :func:`hemolab.model.haemolysis` models a single
incompatible unit (design note 024).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from hemolab._errors import HemolabError
from hemolab.model import Covariate, Model, Observable, Parameter, State
from hemolab.protocols._protocol import Protocol, ProtocolError, Transfusion

__all__ = [
    "BLOOD_GROUPS",
    "US_BLOOD_GROUP_FREQUENCIES",
    "blood_group_code",
    "rejection_model",
    "transfusion_lines",
    "uses_blood_groups",
]

BLOOD_GROUPS = ("O+", "O-", "A+", "A-", "B+", "B-", "AB+", "AB-")
US_BLOOD_GROUP_FREQUENCIES: Mapping[str, float] = {
    "O+": 0.374, "O-": 0.066, "A+": 0.357, "A-": 0.063,
    "B+": 0.085, "B-": 0.015, "AB+": 0.034, "AB-": 0.006,
}  # fmt: skip
"""ABO/RhD frequencies of the US population (American Red Cross / AABB donor education
figures; rule-of-thumb): the default when a population's frequencies are not given."""

COVARIATE = "hl_blood_group"
_RED_CELL_KEYS = ("RBC_ML", "HB_G")


def uses_blood_groups(protocol: Protocol) -> bool:
    """Some transfusion names its product's group (so patients' groups matter)."""
    return any(tr.group is not None for p in protocol.phases for tr in p.transfusions)


def blood_group_code(text: str) -> int:
    """The index of ``"A+"`` (or ``"A pos"``, ``"a NEG"``) in :data:`BLOOD_GROUPS`."""
    from hemolab.events._abo import BloodGroup

    g = BloodGroup.parse(text)
    if g.rhd_positive is None:
        raise HemolabError(f"blood group {text!r} needs its RhD ({g.abo}+ or {g.abo}-)")
    return BLOOD_GROUPS.index(str(g))


def frequencies(given: Mapping[str, float] | None) -> np.ndarray:
    """Per :data:`BLOOD_GROUPS`, the population's share (checked: known groups, sum 1)."""
    given = US_BLOOD_GROUP_FREQUENCIES if given is None else given
    p = np.zeros(len(BLOOD_GROUPS))
    for text, share in given.items():
        try:
            code = blood_group_code(text)
        except HemolabError as exc:
            raise ProtocolError(f"blood_groups: {exc}") from None
        if isinstance(share, bool) or not isinstance(share, int | float) or not share >= 0:
            raise ProtocolError(f"blood_groups: share of {text!r} must be >= 0, got {share!r}")
        p[code] += float(share)
    if not math.isclose(float(p.sum()), 1.0, rel_tol=1e-6):
        raise ProtocolError(f"blood_groups: the shares must sum to 1, got {p.sum():.6g}")
    return p / p.sum()


def _indicator(codes: Sequence[int]) -> str:
    """1 when the covariate is one of ``codes`` (integers), else 0."""
    if not codes:
        return "0"
    return " + ".join(f"max(0, 1 - abs({COVARIATE} - {c}))" for c in codes)


def transfusion_lines(protocol: Protocol) -> list[tuple[float, Transfusion]]:
    """Every transfusion line with its phase's start, in phase order."""
    return [
        (t0, tr)
        for p, t0 in zip(protocol.phases, protocol.phase_starts(), strict=True)
        for tr in p.transfusions
    ]


def incompatible_groups(tr: Transfusion) -> tuple[list[int], list[int]]:
    """The recipient groups (codes) a unit of ``tr`` is incompatible with, and those among
    them whose incompatibility destroys its red cells (ABO, RBC or WB)."""
    from hemolab.events._abo import BloodGroup, compatibility, destroys_red_cells

    if tr.group is None:
        return [], []
    donor = BloodGroup.parse(tr.group)
    any_, haem = [], []
    for code, text in enumerate(BLOOD_GROUPS):
        recipient = BloodGroup.parse(text)
        if not compatibility(tr.product, donor, recipient).ok:
            any_.append(code)
            if destroys_red_cells(tr.product, donor, recipient):
                haem.append(code)
    return any_, haem


def rejection_model(model: Model, protocol: Protocol) -> tuple[Model, pd.DataFrame]:
    """The model with each patient's blood group (covariate), the per-line indicators, the
    bookkeeping states that destroy ABO-incompatible red cells, and their dose rows."""
    from hemolab.events._common import PRODUCT_DEFAULTS, TRANSFUSION_DEFAULT_DURATION_H
    from hemolab.model._haemolysis import LYSIS_HALF_LIFE_H
    from hemolab.model._units import time_factor

    lines = transfusion_lines(protocol)
    if model.blood is None:
        raise ProtocolError(
            f"model {model.name!r} takes no blood products (no BloodSpec): the protocol's "
            "transfusions need one"
        )
    red = {
        s: (key, float(f))
        for key in _RED_CELL_KEYS
        for s, f in model.blood.transfusion_map.get(key, {}).items()
    }
    h = time_factor("h", model.time_unit)
    params = [Parameter("hl_k_lysis", math.log(2.0) / (LYSIS_HALF_LIFE_H * h))]
    assignments = dict(model.assignments)
    observables = list(model.observables)
    lysis: dict[str, list[str]] = {}
    new_states: list[State] = []
    rows: list[dict[str, object]] = []
    for j, (t0, tr) in enumerate(lines):
        any_, haem = incompatible_groups(tr)
        assignments[f"hl_inc{j}"] = _indicator(any_)
        assignments[f"hl_haem{j}"] = _indicator(haem)
        observables += [Observable(f"HL_INC{j}", f"hl_inc{j}"),
                        Observable(f"HL_HAEM{j}", f"hl_haem{j}")]  # fmt: skip
        if not haem:
            continue
        if not red:
            raise ProtocolError(
                f"model {model.name!r}: no state receives red cells (RBC_ML or HB_G in its "
                "transfusion_map), so an ABO-incompatible unit cannot be destroyed"
            )
        per_unit = PRODUCT_DEFAULTS[tr.product]
        content = {"RBC_ML": per_unit["VOLUME"] * per_unit["HCT"], "HB_G": per_unit["HB_G"]}
        dur = tr.duration if tr.duration is not None else TRANSFUSION_DEFAULT_DURATION_H * h
        for s, (key, factor) in red.items():
            name = f"hl_lysis{j}_{s}"
            unit = next(x.unit for x in model.states if x.name == s)
            new_states.append(State(name, f"-hl_k_lysis * {name}", unit=unit,
                                    description=f"line {j + 1}'s red cells in {s}"))  # fmt: skip
            lysis.setdefault(s, []).append(f"hl_k_lysis * hl_haem{j} * {name}")
            amount = tr.units * content[key] * factor
            for t in tr.times():
                rows.append({"ID": 1, "TIME": t0 + float(t), "EVID": 1, "AMT": amount,
                             "CMT": name, "DUR": dur})  # fmt: skip
    taken = set(model.parameter_names) | set(model.state_names) | set(model.assignments)
    clash = sorted(({"hl_k_lysis", COVARIATE} | {s.name for s in new_states}) & taken)
    if clash:
        raise ProtocolError(f"model {model.name!r} already has {clash[0]!r}")
    states = [
        replace(s, ddt=f"({s.ddt}) - " + " - ".join(lysis[s.name])) if s.name in lysis else s
        for s in model.states
    ]
    out = model.replace(
        states=(*states, *new_states),
        parameters=(*model.parameters, *params),
        # the default is never used (run_protocol gives every patient a group), but a
        # population's sampled covariate is applied after the inputs are formed
        covariates=(*model.covariates, Covariate(COVARIATE, 0.0)),
        assignments=assignments,
        observables=tuple(observables),
    )
    return out, pd.DataFrame(rows)
