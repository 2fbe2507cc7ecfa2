"""``simulate``: the one entry point from a model (and optionally an event dataset) to results."""

from __future__ import annotations

import os
import uuid
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from hemolab._errors import HemolabError, ModelError, ScheduleError
from hemolab.compile._compiled import CompiledModel, compile_model
from hemolab.model._model import Model
from hemolab.results._results import Results, provenance
from hemolab.solve._engine import ActionTable, run_actions
from hemolab.solve._status import Status

if TYPE_CHECKING:
    import pandas as pd

    from hemolab.events._dataset import EventDataset
    from hemolab.events._trigger import Trigger

__all__ = ["get_compiled", "make_grid", "simulate"]

_COMPILED: weakref.WeakValueDictionary[str, CompiledModel] = weakref.WeakValueDictionary()


def get_compiled(model: Model | CompiledModel) -> CompiledModel:
    """The compiled form of ``model``, generated once per model definition (by hash)."""
    if isinstance(model, CompiledModel):
        return model
    if not isinstance(model, Model):
        raise ModelError(f"expected a hemolab Model or CompiledModel, got {type(model).__name__}")
    from hemolab.compile._compiled import model_hash

    key = model_hash(model)
    cm = _COMPILED.get(key)
    if cm is None:
        cm = compile_model(model)
        _COMPILED[key] = cm
    return cm


def make_grid(t_end: float | None, dt: float | None, grid: Any = None) -> np.ndarray | None:
    """Output grid from ``grid`` or ``0, dt, ..., t_end`` (inclusive)."""
    if grid is not None:
        g = np.asarray(grid, dtype=np.float64).ravel()
        if g.size and (not np.all(np.isfinite(g)) or np.any(np.diff(g) < 0)):
            raise ScheduleError("grid must be finite and non-decreasing")
        return np.unique(g)
    if t_end is None:
        return None
    if not np.isfinite(t_end) or t_end < 0:
        raise ScheduleError(f"t_end must be a finite time >= 0, got {t_end}")
    if dt is None:
        dt = t_end / 100 if t_end > 0 else 1.0
    if not dt > 0:
        raise ScheduleError(f"dt must be > 0, got {dt}")
    n = int(np.floor(t_end / dt + 1e-9))
    g = np.arange(n + 1) * dt
    if g[-1] < t_end - 1e-9 * max(1.0, t_end):
        g = np.append(g, t_end)
    return g


def simulate(
    model: Model | CompiledModel,
    events: EventDataset | str | os.PathLike[str] | pd.DataFrame | None = None,
    *,
    params: Mapping[str, Any] | None = None,
    grid: Any = None,
    t_end: float | None = None,
    dt: float | None = None,
    time_unit: str | None = None,
    dose_before_obs: bool = False,
    covariate_interp: str = "nocb",
    rtol: float = 1e-6,
    atol: float = 1e-8,
    max_steps: int = 100_000,
    chunk_size: int | None = None,
    history_size: int | None = None,
    solver: str = "auto",
    triggers: Sequence[Trigger] = (),
    throw: bool = False,
    progress: Callable[[int, int], None] | None = None,
    run_id: str | None = None,
    scenario: str = "base",
    patient_ids: list[str] | None = None,
    outputs: Sequence[str] | None = None,
    initial_states: Mapping[str, Any] | None = None,
) -> Results:
    """Simulate a model for one patient, a batch of patients, or every subject of a dataset.

    Main arguments
    --------------
    model
        A :class:`~hemolab.Model` (compiled once and cached) or a compiled model.
    events
        An event dataset (DATA-FORMATS §A): a path, a DataFrame or an ``EventDataset``.
        Without events the model runs from its initial state over the grid.
    params
        Parameter or covariate values: scalars, or arrays of length N for a batch of N
        patients (with a dataset: one value per subject; a dataset with ``EVENT=mix`` rows
        also takes R × subjects values, replicate-major, for R replicates whose donors and
        recipients pair by replicate).
    grid, t_end, dt
        Output times in the model's time unit: ``grid`` explicitly, or ``0:dt:t_end``. With a
        dataset the outputs are the union of the grid and the observation times.

    Other arguments
    ---------------
    initial_states
        ``state → value`` (scalar, or one per patient) replacing the model's initial state
        at the start, e.g. the state of a calibrated patient at their last observation. Not
        with delays, steady-state doses or mixing (their runs start from the model's
        initial state); a reset (EVID 3/4) returns to the model's initial state.
    outputs
        The states and observables to report, in this order (default: all). Fewer variables
        cost less: only their dense output is formed (libRoadRunner's selections, mrgsolve's
        ``outvars``).
    time_unit
        Time unit of the dataset (default: the model's).
    dose_before_obs
        Observations tied with a dose report the post-dose value (default: pre-dose, §A).
    covariate_interp
        Time-varying covariates between records: ``"nocb"`` (NONMEM's default) or ``"locf"``.
    rtol, atol, max_steps
        Step control. Positive states are controlled in relative terms (log coordinates).
    chunk_size
        Patients advanced together by a compiled loop (its lanes; a call holds up to 4,096,
        a finished patient's lane taking the next). Default: 64, or 256 for delay models,
        the faster of the two in the benchmarks (design note 002).
    history_size
        Segments kept per patient for delays (default 64, or what an earlier run of the
        model needed; grown automatically on overflow).
    triggers
        State-triggered events (:class:`~hemolab.Trigger`): assignments made when a
        condition on the running solution becomes true, at the exact crossing time.
    solver
        ``"auto"`` (the model's ``stiff`` flag, else stiffness detected from the Jacobian at
        the initial state), ``"dopri5"`` (explicit) or ``"rodas"`` (stiff, Rosenbrock).
    throw
        Raise :class:`~hemolab.SolveError` if any patient fails instead of returning its
        status.
    progress
        Called with ``(done, total)`` patients after each chunk.

    Returns
    -------
    Results
        Values of states and observables at the output times, with per-patient status.

    Examples
    --------
    >>> import hemolab as hl
    >>> m = hl.Model("decay", time_unit="d",
    ...     states=[hl.State("x", "-k*x", initial=1.0)], parameters=[hl.Parameter("k", 0.1)])
    >>> res = hl.simulate(m, t_end=10.0, dt=1.0)
    >>> round(float(res.variable("x")[0, -1]), 6)
    0.367879
    """
    cm = get_compiled(model)
    mdl = cm.model
    all_variables = mdl.state_names + mdl.observable_names
    out_vars = _output_indices(outputs, all_variables, mdl.name)
    run_id = run_id or uuid.uuid4().hex[:12]
    g = make_grid(t_end, dt, grid)
    from hemolab.events import EventDataset as _EventDataset, Schedule, build_schedule, read_events

    dataset: _EventDataset | None = None
    if events is not None:
        if isinstance(events, _EventDataset):
            dataset = events
        else:
            dataset = read_events(events, model=mdl, time_unit=time_unit)
    n_replicates = 1  # copies of a dataset's linked (mixing) subjects, one per parameter set
    if dataset is None:
        if g is None or g.size == 0:
            raise ScheduleError(
                "nothing to report: give an output grid (grid=..., or t_end and dt) or events"
            )
        inputs = cm.inputs_from(dict(params or {}))
        schedule = Schedule.from_grid(mdl, g, n_subjects=1)
    else:
        n_rows = _batch_size(params)
        population = dataset.n_subjects == 1 and n_rows > 1
        covs = dataset.initial_covariates()
        S0 = dataset.n_subjects
        if _has_mixes(dataset) and n_rows > S0 and n_rows % S0 == 0:
            # replicates of linked subjects (a population, posterior draws): parameter rows
            # replicate-major, donors and recipients paired by replicate (DATA-FORMATS §A)
            n_replicates = n_rows // S0
            dataset = replace(dataset, subjects=dataset.subjects * n_replicates)
            covs = np.tile(covs, (n_replicates, 1))
        n = n_rows if population else dataset.n_subjects
        base = cm.inputs_from(dict(params or {}), n=n)
        inputs = _with_covariates(cm, base, np.repeat(covs, n, axis=0) if population else covs)
        props = cm.host_dose_props(inputs)
        from hemolab.events import DoseProperties

        if population and not _same_rows(props):
            # patient-specific lag/rate/duration move event times: one schedule per patient
            dataset = replace(dataset, subjects=dataset.subjects * n)
            population = False
        if population:
            props = {k: v[:1] for k, v in props.items()}
        schedule = build_schedule(
            dataset,
            mdl,
            grid=g,
            dose_props=DoseProperties(**props),
            dose_before_obs=dose_before_obs,
            covariate_interp=covariate_interp,  # type: ignore[arg-type]
        )
        if population and patient_ids is None:
            patient_ids = [f"V{i:07d}" for i in range(n)]
        if population and schedule.ss_requests:
            schedule = schedule.repeat_subject(n)
    from hemolab.solve._choice import choose_stepper

    stepper = choose_stepper(cm, inputs, solver)
    values = schedule.value
    if getattr(schedule, "ss_requests", ()):
        from hemolab.solve._steady import fill_steady_states

        values = fill_steady_states(
            cm,
            inputs,
            schedule,
            rtol=rtol,
            atol=atol,
            stepper=stepper,
            file=str(getattr(dataset, "file", "") or "the event dataset"),
        )
    if dataset is None:
        t0 = np.minimum(schedule.start_time, 0.0)
    else:  # a subject's clock starts at its first record, whether or not it makes an action
        first = np.array([sub.records[0].time for sub in dataset.subjects], dtype=np.float64)
        if schedule.n_subjects != len(first):  # a population over one subject
            first = np.repeat(first, schedule.n_subjects)
        t0 = np.fmin(schedule.start_time, first)
    compiled_triggers = None
    triggers = tuple(mdl.triggers) + tuple(triggers)
    if triggers:
        from hemolab.compile._triggers import compile_triggers
        from hemolab.events._trigger import parse_triggers

        compiled_triggers = compile_triggers(cm, parse_triggers(list(triggers), mdl))
    y_init = _initial_states(cm, initial_states, inputs.shape[0], schedule)
    donor_failed = None
    if schedule.mix_requests:
        from hemolab.solve._mixing import fill_mixing

        values, donor_failed = fill_mixing(
            cm,
            inputs,
            schedule,
            values,
            t0=t0,
            rtol=rtol,
            atol=atol,
            max_steps=max_steps,
            stepper=stepper,
            triggers=compiled_triggers,
            history_size=history_size,
            file=str(getattr(dataset, "file", "") or "the event dataset"),
        )
    table = ActionTable(
        time=schedule.time,
        op=schedule.op,
        target=schedule.target,
        value=values,
        n_outputs=int(schedule.out_time.shape[1]),
    )
    raw = run_actions(
        cm,
        inputs,
        table,
        t0=t0,
        rtol=rtol,
        atol=atol,
        max_steps=max_steps,
        chunk_size=chunk_size,
        history_size=history_size,
        progress=progress,
        stepper=stepper,
        triggers=compiled_triggers,
        out_vars=out_vars,
        y_init=y_init,
    )
    N = inputs.shape[0]
    status = raw.status
    if donor_failed is not None and donor_failed.any():
        status = np.where(
            donor_failed & (status == int(Status.OK)), int(Status.DONOR_FAILED), status
        ).astype(status.dtype)
    rows = np.arange(N) if schedule.n_subjects == N else np.zeros(N, dtype=np.int64)
    if patient_ids is None:
        if dataset is not None:
            patient_ids = list(schedule.subject_ids)
        else:
            patient_ids = [f"V{i:07d}" for i in range(N)]
    if len(patient_ids) != N:
        raise HemolabError(f"patient_ids has {len(patient_ids)} entries for {N} patients")
    # replicates of linked subjects (set above where the dataset was repeated): row r is
    # replicate r // subjects
    replicate = (np.arange(N) // max(1, N // n_replicates)).astype(np.int32)
    units = tuple(s.unit for s in mdl.states) + tuple(o.unit for o in mdl.observables)
    kinds = ("state",) * len(mdl.states) + ("observable",) * len(mdl.observables)
    keep = list(range(len(all_variables))) if out_vars is None else list(out_vars)
    variables = tuple(all_variables[i] for i in keep)
    units = tuple(units[i] for i in keep)
    kinds = tuple(kinds[i] for i in keep)
    meta = provenance(
        version=_version(),
        model=mdl.name,
        model_hash=cm.hash,
        solver=stepper.name + ("+method-of-steps" if cm.has_delays else ""),
        rtol=rtol,
        atol=atol,
        max_steps=max_steps,
        inputs_hash=_hash_array(inputs),
        events_file=str(getattr(dataset, "file", "") or ""),
    )
    res = Results(
        values=raw.values,
        time=schedule.out_time[rows],
        occasion=schedule.out_occasion[rows],
        is_observation=schedule.out_is_obs[rows],
        variables=variables,
        units=units,
        kinds=kinds,
        status=status,
        n_steps=raw.n_steps,
        patient_ids=tuple(patient_ids),
        replicate=replicate,
        time_unit=mdl.time_unit,
        run_id=run_id,
        scenario=scenario,
        metadata=meta,
        events=_events_table(schedule, run_id, scenario, list(patient_ids)),
        trigger_names=compiled_triggers.names if compiled_triggers is not None else (),
        trigger_count=raw.trigger_count,
        trigger_first_time=raw.trigger_first,
    )
    if throw:
        res.raise_on_failure()
    return res


def _output_indices(
    outputs: Sequence[str] | None, variables: Sequence[str], model: str
) -> tuple[int, ...] | None:
    """Indices of the requested ``outputs`` among the model's variables (None: all)."""
    if outputs is None:
        return None
    if isinstance(outputs, str):
        outputs = [outputs]
    names = list(outputs)
    if not names:
        raise HemolabError("outputs is empty: name at least one state or observable")
    unknown = [v for v in names if v not in variables]
    if unknown:
        raise HemolabError(
            f"outputs: model {model!r} has no variable {', '.join(map(repr, unknown))}; "
            f"its states and observables are {', '.join(variables)}"
        )
    repeated = sorted({v for v in names if names.count(v) > 1})
    if repeated:
        raise HemolabError(f"outputs: {', '.join(map(repr, repeated))} given more than once")
    return tuple(list(variables).index(v) for v in names)


def _initial_states(
    cm: CompiledModel, given: Mapping[str, Any] | None, n: int, schedule: Any
) -> np.ndarray | None:
    """``(n, n_states)`` initial states, NaN where the model's own apply; None: all its own."""
    if not given:
        return None
    mdl = cm.model
    if cm.has_delays:
        raise ScheduleError(
            f"initial_states: model {mdl.name!r} has delays, whose history before the start "
            "would not match the given states"
        )
    if schedule.ss_requests or schedule.mix_requests:
        raise ScheduleError(
            "initial_states cannot be combined with steady-state doses or mixing (their "
            "pre-solves start from the model's initial state)"
        )
    y = np.full((n, len(mdl.state_names)), np.nan)
    for name, value in given.items():
        if name not in mdl.state_names:
            raise ScheduleError(
                f"initial_states: {name!r} is not a state of {mdl.name!r} "
                f"({', '.join(mdl.state_names)})"
            )
        v = np.asarray(value, dtype=np.float64)
        if v.ndim > 1 or (v.ndim == 1 and v.shape[0] not in (1, n)):
            raise ScheduleError(
                f"initial_states[{name!r}] has shape {v.shape}; expected a scalar or ({n},)"
            )
        if not np.isfinite(v).all():
            raise ScheduleError(f"initial_states[{name!r}] must be finite")
        y[:, mdl.state_names.index(name)] = np.broadcast_to(v, (n,))
    return y


def _has_mixes(dataset: Any) -> bool:
    return any(rec.event == "mix" for sub in dataset.subjects for rec in sub.records)


def _batch_size(params: Mapping[str, Any] | None) -> int:
    sizes = {int(np.size(v)) for v in (params or {}).values() if np.ndim(v) > 0}
    return max(sizes, default=1)


def _same_rows(props: Mapping[str, np.ndarray]) -> bool:
    """Whether host dose properties (which move event times) are equal for all patients."""
    for key in ("lag", "rate", "duration", "f"):
        a = props[key]
        if not np.array_equal(a, np.broadcast_to(a[:1], a.shape), equal_nan=True):
            return False
    return True


def _with_covariates(cm: CompiledModel, base: np.ndarray, initial: np.ndarray) -> np.ndarray:
    out = base.copy()
    n_par = len(cm.model.parameters)
    cols = slice(n_par, n_par + len(cm.model.covariates))
    cov = np.asarray(initial, dtype=np.float64)
    if cov.size:
        have = ~np.isnan(cov)
        out[:, cols] = np.where(have, cov, out[:, cols])
    missing = [
        cm.model.inputs[j] for j in np.flatnonzero(np.isnan(out[:, cols]).any(axis=0)) + n_par
    ]
    if missing:
        raise ScheduleError(
            f"covariate(s) {missing} have no value in the dataset and no default in model "
            f"{cm.model.name!r}"
        )
    return out


def _events_table(schedule: Any, run_id: str, scenario: str, patient_ids: list[str]) -> Any:
    """Applied events as the ``<stem>.events.parquet`` table of DATA-FORMATS §C.

    With one dataset subject shared by a population, its events are listed for every patient.
    """
    records = getattr(schedule, "events", ())
    if not records:
        return None
    import pyarrow as pa

    subjects = list(schedule.subject_ids)
    if len(subjects) == len(patient_ids):
        owners = {sid: [pid] for sid, pid in zip(subjects, patient_ids, strict=True)}
    else:  # a population over one subject
        owners = {subjects[0]: list(patient_ids)}
    rows = [(pid, e) for e in records for pid in owners.get(e["patient_id"], [e["patient_id"]])]
    n = len(rows)
    return pa.table(
        {
            "run_id": pa.array([run_id] * n, type=pa.string()),
            "scenario": pa.array([scenario] * n, type=pa.string()),
            "patient_id": pa.array([pid for pid, _ in rows], type=pa.string()),
            "replicate": pa.array([0] * n, type=pa.int32()),
            "time": pa.array([e["time"] for _, e in rows], type=pa.float64()),
            "kind": pa.array([e["kind"] for _, e in rows], type=pa.string()),
            "target": pa.array([e["target"] for _, e in rows], type=pa.string()),
            "product": pa.array([e["product"] for _, e in rows], type=pa.string()),
            "amount": pa.array([e["amount"] for _, e in rows], type=pa.float64()),
            "unit": pa.array([e["unit"] for _, e in rows], type=pa.string()),
        }
    ).sort_by([("patient_id", "ascending"), ("time", "ascending")])


def _hash_array(a: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


def _version() -> str:
    from hemolab import __version__

    return __version__
