"""A patient's de-identified lab values as a model's observations.

Rows come from the store (``Store.lab_values``) or from a file read in memory
(:func:`ephemeral_rows`: one temporary pseudonym and a clock anchored at the first value, the
same rule as an import, nothing written). They become :class:`~hemolab.calibrate.Observations`
of the observables the model has a residual error model for, in the model's time unit and
the observable's unit; other analytes are counted and left out.
"""

from __future__ import annotations

import json
import secrets
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from hemolab._errors import HemolabError
from hemolab.patients._labs import LabHistory

__all__ = [
    "LabObservations",
    "ephemeral_patient",
    "ephemeral_rows",
    "fit_event_rows",
    "lab_observations",
]


@dataclass(frozen=True)
class LabObservations:
    """The observations and what was left out (analyte -> count)."""

    observations: Any  # hemolab.calibrate.Observations
    used: dict[str, int]
    unused: dict[str, int]
    t_last: float  # the last observation, model time unit, patient's clock


def ephemeral_rows(
    history: LabHistory, anchor: datetime | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """De-identify a one-patient history in memory: a temporary pseudonym (``T`` + 10 hex
    digits, never stored) and times in hours from ``anchor`` (default: the first value), or
    on the file's numeric clock, like an import would."""
    ids = {r.source_id for r in history.records}
    if len(ids) != 1:
        raise HemolabError(
            f"{history.file!r} holds {len(ids)} patients; calibrate one at a time "
            "(import the file and pass --store and --patient)"
        )
    numeric = any(r.time_h is not None for r in history.records)
    if not numeric and anchor is None:
        anchor = min(r.stamp for r in history.records if r.stamp is not None)
    rows = []
    for r in history.records:
        if r.time_h is not None:
            t = r.time_h
        else:
            assert r.stamp is not None and anchor is not None
            t = (r.stamp - anchor).total_seconds() / 3600.0
        rows.append({"time_h": t, "analyte": r.analyte, "observable": r.observable,
                     "value": None if r.value != r.value else r.value, "unit": r.unit,
                     "censored": r.censored, "lloq": r.lloq})  # fmt: skip
    return "T" + secrets.token_hex(5).upper(), sorted(
        rows, key=lambda x: (x["time_h"], x["analyte"])
    )


def ephemeral_patient(
    history: LabHistory, events: Any, model: Any, *, time_unit: str | None = None
) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
    """A lab history and a dosing history of the same patient on one clock, in memory.

    Date-times on both sides: the clock starts at the earlier of the first lab value and the
    first event (DATA-FORMATS §0: one anchor across a patient's sources). Numeric times on
    both: the two files share their clock. A mix cannot be linked and is refused. The events
    come back as rows in the model's units with ``TIME`` on that clock, ``ID`` 1 and no
    ``DATETIME`` (a date is an identifier)."""
    from hemolab.events import read_events
    from hemolab.model._units import time_factor

    ds = read_events(events, model=model, time_unit=time_unit)
    if ds.n_subjects != 1:
        raise HemolabError(f"the dosing history holds {ds.n_subjects} subjects; give one patient's")
    ev_anchor = ds.anchor(ds.subject_ids[0])
    numeric = any(r.time_h is not None for r in history.records)
    if numeric == (ev_anchor is not None):
        raise HemolabError(
            "the labs and the dosing history use different clocks (one gives date-times, the "
            "other numeric times); give both the same kind"
        )
    anchor = None
    shift = 0.0
    if ev_anchor is not None:
        first_lab = min(r.stamp for r in history.records if r.stamp is not None)
        anchor = min(first_lab, ev_anchor)
        shift = (ev_anchor - anchor).total_seconds() / 3600.0 * time_factor("h", model.time_unit)
    pseudonym, rows = ephemeral_rows(history, anchor)
    return pseudonym, rows, fit_event_rows(ds, shift)


def fit_event_rows(dataset: Any, shift: float = 0.0) -> list[dict[str, Any]]:
    """A one-patient event dataset as a fit keeps it: the model's units, ``TIME`` on the
    patient's clock (moved by ``shift``, model time unit), ``ID`` 1, no file row numbers."""
    frame = dataset.to_pandas()
    frame["ID"] = 1
    frame["TIME"] = frame["TIME"] + shift
    frame = frame.drop(columns=["ROW"])
    return json.loads(frame.to_json(orient="records") or "[]")


def lab_observations(rows: Sequence[Mapping[str, Any]], model: Any) -> LabObservations:
    """The rows' values of ``model``'s residual-error observables (see the module docstring)."""
    from hemolab.calibrate import Observations
    from hemolab.model._units import conversion_factor, time_factor

    have = {e.observable for e in model.residual_error}
    units = {o.name: o.unit for o in model.observables}
    units.update({s.name: s.unit for s in model.states})
    to_model_time = time_factor("h", model.time_unit)
    names, times, values, cens, lloq = [], [], [], [], []
    used: Counter[str] = Counter()
    unused: Counter[str] = Counter()
    factors: dict[str, float] = {}
    for r in rows:
        obs = r["observable"]
        if obs not in have:
            unused[r["analyte"]] += 1
            continue
        if obs not in factors:
            target = units.get(obs)
            try:
                factors[obs] = 1.0 if not target else conversion_factor(r["unit"], target)
            except HemolabError:
                raise HemolabError(
                    f"{r['analyte']} values are in {r['unit']!r}, which does not convert to "
                    f"{model.name}'s {obs} unit {target!r}"
                ) from None
        k = factors[obs]
        names.append(obs)
        times.append(float(r["time_h"]) * to_model_time)
        censored = bool(r["censored"])
        cens.append(censored)
        values.append(np.nan if censored or r["value"] is None else float(r["value"]) * k)
        lloq.append(np.nan if r.get("lloq") is None else float(r["lloq"]) * k)
        used[r["analyte"]] += 1
    if not names:
        found = ", ".join(sorted(unused)) or "none"
        raise HemolabError(
            f"no lab value is an observable of {model.name} with a residual error model "
            f"(it observes {', '.join(sorted(have)) or 'nothing'}; the labs hold {found})"
        )
    observations = Observations.of(names, times, values, cens, lloq)
    return LabObservations(observations, dict(used), dict(unused), float(max(times)))
