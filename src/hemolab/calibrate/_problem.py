"""A calibration batch on the host: each patient's observations, dosing history and prior
centre packed into padded arrays.

The arrays are the compiled objective's *arguments*, never baked into it: one compiled
objective serves every patient and every batch of the same model and bucket sizes (the
batch, action and observation widths are padded to powers of two). Padding patients carry
no observations (their objective is the prior alone); padding observations are masked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from hemolab._errors import HemolabError

__all__ = ["BatchArrays", "CalibrationError", "Observations", "Patient", "pack_batch"]


class CalibrationError(HemolabError, ValueError):
    """The data or the model cannot be calibrated as asked."""


@dataclass(frozen=True)
class Observations:
    """One patient's observations, in the model's time unit and canonical units.

    ``value`` is NaN where ``censored`` (below ``lloq``).
    """

    observable: tuple[str, ...]
    time: np.ndarray
    value: np.ndarray
    censored: np.ndarray
    lloq: np.ndarray

    @classmethod
    def of(
        cls,
        observable: Sequence[str],
        time: Sequence[float] | np.ndarray,
        value: Sequence[float] | np.ndarray,
        censored: Sequence[bool] | np.ndarray | None = None,
        lloq: Sequence[float] | np.ndarray | None = None,
    ) -> Observations:
        n = len(observable)
        c = np.zeros(n, bool) if censored is None else np.asarray(censored, bool)
        lq = np.full(n, np.nan) if lloq is None else np.asarray(lloq, np.float64)
        return cls(tuple(observable), np.asarray(time, np.float64),
                   np.asarray(value, np.float64), c, lq)  # fmt: skip

    def until(self, t: float) -> Observations:
        """The observations at times ``<= t`` (the data a forecast made at ``t`` had)."""
        keep = self.time <= t
        return Observations(tuple(o for o, k in zip(self.observable, keep, strict=True) if k),
                            self.time[keep], self.value[keep], self.censored[keep],
                            self.lloq[keep])  # fmt: skip


@dataclass(frozen=True)
class Patient:
    """What one patient's fit needs: observations, the dosing history (an event dataset of
    one subject, or None) and fixed inputs (covariates, parameters not estimated)."""

    observations: Observations
    events: Any = None
    params: Mapping[str, float] | None = None


class BatchArrays(NamedTuple):
    """Device arguments of the compiled objective (N patients, A actions, M observations)."""

    inputs: Any  # (N, P) parameters then covariates; estimated columns overwritten
    act_time: Any  # (N, A)
    act_op: Any  # (N, A) int32
    act_target: Any  # (N, A) int32
    act_value: Any  # (N, A)
    act_stop: Any  # (N, A)
    t0: Any  # (N,)
    slot: Any  # (N, M) int32 output slot of each observation
    var: Any  # (N, M) int32 index of its variable among the kernel's outputs
    y: Any  # (N, M) observed value (1 where censored or padding)
    censored: Any  # (N, M) bool
    lloq: Any  # (N, M) (1 where not censored)
    mask: Any  # (N, M) bool: a real observation
    log_pop: Any  # (N, d) prior centre of log θ
    rtol: Any  # ()
    atol: Any  # ()
    max_steps: Any  # () int32


def _check(obs: Observations, variables: list[str], where: str) -> None:
    n = len(obs.observable)
    if n == 0 or not (len(obs.time) == len(obs.value) == len(obs.censored) == n):
        raise CalibrationError(f"{where}: observations need equal numbers (> 0) of times, "
                               "values and names")  # fmt: skip
    bad = sorted({o for o in obs.observable if o not in variables})
    if bad:
        raise CalibrationError(f"{where}: the model has no variable {', '.join(bad)}")
    if not np.all(np.isfinite(obs.time)):
        raise CalibrationError(f"{where}: observation times must be finite")
    real = ~obs.censored
    if not np.all(np.isfinite(obs.value[real])):
        raise CalibrationError(f"{where}: uncensored values must be finite")
    if np.any(~(obs.lloq[obs.censored] > 0)):
        raise CalibrationError(f"{where}: a censored observation needs an LLOQ > 0")


def pack_batch(
    cm: Any,
    patients: Sequence[Patient],
    names: Sequence[str],
    out_names: Sequence[str],
    *,
    rtol: float,
    atol: float,
    max_steps: int = 100_000,
) -> tuple[BatchArrays, int, tuple[frozenset[int] | None, frozenset[int]]]:
    """Pack ``patients`` into padded arrays; also the output-slot width T and the
    operation spec (what the compiled loop must handle)."""
    from hemolab.events import Schedule, build_schedule, read_events
    from hemolab.events._schedule import DoseProperties
    from hemolab.solve._engine import (
        ActionTable,
        _discontinuity_stops,
        _op_spec,
        _padded,
        _pow2,
    )

    mdl = cm.model
    variables = list(mdl.state_names + mdl.observable_names)
    cols = [mdl.inputs.index(n) for n in names]
    n = len(patients)
    if n == 0:
        raise CalibrationError("no patients to fit")
    inputs = np.empty((n, cm.n_inputs))
    tables, t0s, slots, outs = [], np.empty(n), [], []
    datasets: dict[int, Any] = {}  # one reading per events object (a batch often shares one)
    for i, p in enumerate(patients):
        where = f"patient {i}"
        obs = p.observations
        _check(obs, variables, where)
        missing = sorted({o for o in obs.observable if o not in out_names})
        if missing:
            raise CalibrationError(
                f"{where}: no residual error model for {', '.join(missing)} in {mdl.name!r}"
            )
        inputs[i] = cm.inputs_from(dict(p.params or {}))[0]
        times = np.unique(obs.time)
        if p.events is None:
            sched = Schedule.from_grid(mdl, times, n_subjects=1)
            t0 = float(min(sched.start_time[0], 0.0))
        else:
            dataset = datasets.get(id(p.events))
            if dataset is None:
                dataset = datasets[id(p.events)] = read_events(p.events, model=mdl)
            if dataset.n_subjects != 1:
                raise CalibrationError(
                    f"{where}: the dosing history holds {dataset.n_subjects} subjects, not one"
                )
            props = cm.host_dose_props(inputs[i][None, :])
            sched = build_schedule(dataset, mdl, grid=times, dose_props=DoseProperties(**props))
            t0 = float(min(sched.start_time[0], dataset.subjects[0].records[0].time))
        out_time = np.asarray(sched.out_time[0])
        # each observation's output slot: the first output time within 1e-9 of it
        near = np.abs(out_time[None, :] - np.asarray(obs.time)[:, None]) <= 1e-9
        if not np.all(near.any(axis=1)):
            raise CalibrationError(f"{where}: internal: an observation time is not on the grid")
        slot = np.argmax(near, axis=1)
        tables.append(sched)
        t0s[i] = t0
        slots.append(slot)
        outs.append(int(sched.out_time.shape[1]))
    A0 = max(int(s.time.shape[1]) for s in tables)

    def stack(attr: str, fill: float | int) -> np.ndarray:
        return np.stack([np.pad(np.asarray(getattr(s, attr)[0]), (0, A0 - s.time.shape[1]),
                                constant_values=fill) for s in tables])  # fmt: skip

    T = _pow2(max(outs), 8)
    table = ActionTable(time=stack("time", np.inf), op=stack("op", 0), target=stack("target", 0),
                        value=stack("value", 0.0), n_outputs=T)  # fmt: skip
    if cm.has_delays:
        table, _ = _discontinuity_stops(cm, inputs, table, t0s)
    act = _padded(table)
    spec = _op_spec(act[1], act[2])

    N = _pow2(n, 1)
    M = _pow2(max(len(p.observations.time) for p in patients), 8)
    slot = np.zeros((N, M), np.int32)
    var = np.zeros((N, M), np.int32)
    y = np.ones((N, M))
    cens = np.zeros((N, M), bool)
    lloq = np.ones((N, M))
    mask = np.zeros((N, M), bool)
    for i, p in enumerate(patients):
        obs, k = p.observations, len(p.observations.time)
        slot[i, :k] = slots[i]
        var[i, :k] = [list(out_names).index(o) for o in obs.observable]
        cens[i, :k] = obs.censored
        y[i, :k] = np.where(obs.censored, 1.0, obs.value)
        lloq[i, :k] = np.where(obs.censored, obs.lloq, 1.0)
        mask[i, :k] = True
    log_pop = np.log(inputs[:, cols])

    def rows(a: np.ndarray) -> np.ndarray:  # padding patients repeat patient 0
        return np.concatenate([a, np.repeat(a[:1], N - n, axis=0)]) if n < N else a

    arrays = BatchArrays(
        inputs=rows(inputs), act_time=rows(act[0]), act_op=rows(act[1]),
        act_target=rows(act[2]), act_value=rows(act[3]), act_stop=rows(act[4]),
        t0=rows(t0s), slot=slot, var=var, y=y, censored=cens, lloq=lloq, mask=mask,
        log_pop=rows(log_pop), rtol=np.float64(rtol), atol=np.float64(atol),
        max_steps=np.int32(max_steps),
    )  # fmt: skip
    if not np.all(np.isfinite(arrays.log_pop)):
        raise CalibrationError("a prior centre is not a positive finite value (log θ_pop)")
    return arrays, T, spec
