"""Simulating a virtual population in chunks: bounded memory, one long result file.

``simulate_population`` draws the rows of one chunk, solves them with :func:`hemolab.simulate`
(the compiled model is reused across chunks), appends the chunk's long table to the result
file, and folds the chunk into per-patient metrics (nadir, peak, final value) and per-time
quantile sketches. Only those summaries outlive a chunk, so memory does not grow with the
population (``bench/population_stream.py`` measures it); ``keep_results`` keeps the full
trajectories as well for small populations.

With ``backend="ray"`` the chunks are solved on Ray workers (:mod:`hemolab.population._ray`)
and come back to this process, which folds and writes them in chunk order exactly as above:
the result file is the local run's (design note 010).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hemolab._errors import HemolabError, ScheduleError
from hemolab.model._variability import ResidualError
from hemolab.population._population import Population, patient_ids
from hemolab.population._sketch import BandSketch

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from hemolab.results._results import Results

__all__ = ["BACKENDS", "PopulationResult", "simulate_population"]

QUANTILES = (0.05, 0.5, 0.95)
BACKENDS = ("local", "ray")
"""Where chunks are solved: this process, or Ray workers (the optional ``hemolab[ray]``)."""


@dataclass
class PopulationResult:
    """Summaries of a population run (and the trajectories when they were kept).

    Attributes
    ----------
    population
        The :class:`Population` that was simulated.
    time
        Output times shared by every patient (model time unit).
    bands
        ``variable → {quantile → (T,) values}``: the median and 90 % band per time, from
        bounded-memory sketches (relative accuracy ``band_accuracy``).
    metrics
        One row per patient and band variable: ``min``, ``t_min``, ``max``, ``t_max``,
        ``final`` (NaN for failed patients) and ``status``.
    status_counts
        ``status label → patients``.
    out
        The long result file (DATA-FORMATS §C), when one was written.
    results
        The full :class:`~hemolab.Results` when ``keep_results`` was on, else ``None``.
    """

    population: Population
    run_id: str
    scenario: str
    time_unit: str
    time: np.ndarray
    bands: dict[str, dict[float, np.ndarray]]
    band_accuracy: float
    metrics: pd.DataFrame
    status_counts: dict[str, int]
    out: Path | None = None
    results: Results | None = None
    chunks: int = 0
    n_steps_mean: float = 0.0
    n_steps_max: int = 0
    backend: str = "local"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return self.population.n

    @property
    def n_failed(self) -> int:
        return int(sum(v for k, v in self.status_counts.items() if k != "ok"))

    def incidence(self, variable: str, below: float) -> float:
        """Fraction of the patients that solved whose ``variable`` fell below ``below``
        at an output time."""
        m = self.metrics[(self.metrics["variable"] == variable) & (self.metrics["status"] == "ok")]
        if m.empty:
            raise HemolabError(f"no metrics for variable {variable!r}")
        return float(np.mean(np.asarray(m["min"], dtype=np.float64) < below))

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary: the keys of ``hemolab simulate --json`` plus ``population``.

        Per variable: ``min``/``max`` over every patient and time, and the population's
        median and 90 % interval of each patient's minimum (``nadir``) and maximum.
        """
        from hemolab.results._results import _STATUS_LABELS

        units = self.extra.get("units", {})
        per_var = {}
        for var in self.bands:
            m = self.metrics[(self.metrics["variable"] == var) & (self.metrics["status"] == "ok")]
            lo = np.asarray(m["min"], dtype=np.float64)
            hi = np.asarray(m["max"], dtype=np.float64)
            unit, kind = units.get(var, (None, "derived"))
            per_var[var] = {
                "unit": unit,
                "kind": kind,
                "min": _f(np.nanmin(lo)) if np.isfinite(lo).any() else None,
                "max": _f(np.nanmax(hi)) if np.isfinite(hi).any() else None,
                "nadir": _quantiles(lo),
                "peak": _quantiles(hi),
            }
        return {
            "run_id": self.run_id,
            "scenario": self.scenario,
            "model": self.population.model.name,
            "model_hash": str(self.extra.get("model_hash", "")),
            "time_unit": self.time_unit,
            "n_patients": self.n,
            "n_times": int(self.time.size) * self.n,
            "status": {label: int(self.status_counts.get(label, 0)) for label in _STATUS_LABELS},
            "steps": {"mean": self.n_steps_mean, "max": self.n_steps_max},
            "variables": per_var,
            "out": str(self.out) if self.out else "",
            "population": {
                **self.population.describe(),
                "chunks": self.chunks,
                "band_accuracy": self.band_accuracy,
                "backend": self.backend,
            },
        }


def _quantiles(x: np.ndarray) -> dict[str, float | None]:
    """Median and 90 % interval of finite ``x`` (None when there is none)."""
    x = x[np.isfinite(x)]
    if not x.size:
        return {"q05": None, "median": None, "q95": None}
    q = np.quantile(x, QUANTILES)
    return {"q05": _f(q[0]), "median": _f(q[1]), "q95": _f(q[2])}


def _f(x: Any) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


def simulate_population(
    population: Population,
    events: Any = None,
    *,
    grid: Any = None,
    t_end: float | None = None,
    dt: float | None = None,
    out: str | os.PathLike[str] | None = None,
    chunk_size: int = 2048,
    residual_error: bool | Sequence[ResidualError] = False,
    band_variables: Sequence[str] | None = None,
    band_accuracy: float = 0.005,
    keep_results: bool | None = None,
    progress: Callable[[int, int], None] | None = None,
    run_id: str | None = None,
    scenario: str = "base",
    backend: str = "local",
    ray_address: str | None = None,
    **simulate_options: Any,
) -> PopulationResult:
    """Simulate every patient of ``population`` in chunks of ``chunk_size``.

    Parameters
    ----------
    population
        The virtual patients.
    events
        A one-subject event dataset (DATA-FORMATS §A) used as every patient's regimen, or
        ``None`` (untreated, from the initial state). Doses per body size (``mg/m2``,
        ``ug/kg``) scale with each patient's sampled ``BSA``/``WT``. A dataset of subjects
        linked by ``EVENT=mix`` (donors and recipients) is copied for every virtual patient:
        ``population.n`` copies of its S subjects, each subject its own draw (N x S rows,
        ids ``V0000000-<sample>``), donors paired with their recipients by copy, and bands
        and metrics per sample (``Hb@<sample>``).
    grid, t_end, dt
        Output times, as in :func:`hemolab.simulate`.
    out
        Long result file (Parquet, DATA-FORMATS §C) to write chunk by chunk; written to a
        temporary name and renamed when complete.
    residual_error
        ``True`` adds ``<observable>_obs`` variables drawn with the model's residual error
        models; or give :class:`~hemolab.model.ResidualError` objects.
    band_variables
        Variables with median/90 % bands and per-patient metrics (default: observables).
    keep_results
        Also return the full trajectories (default: when ``n <= 10,000``).
    backend
        ``"local"`` solves the chunks in this process; ``"ray"`` on Ray workers (needs
        ``pip install 'hemolab[ray]'``), a few chunks in flight, written here in chunk order:
        the same file as the local run (design note 010).
    ray_address
        Ray cluster to connect to when this process is not connected yet (default: the
        ``RAY_ADDRESS`` environment variable, else a local Ray on this machine's cores,
        which stays up for later runs until ``ray.shutdown()`` or the end of the process).
        Workers on other machines need hemolab installed.
    simulate_options
        Passed to :func:`hemolab.simulate` (``rtol``, ``atol``, ``solver``, ``triggers``…).
    """

    from hemolab._simulate import get_compiled

    model = population.model
    if chunk_size < 1:
        raise HemolabError(f"chunk_size must be >= 1, got {chunk_size}")
    if backend not in BACKENDS:
        raise HemolabError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
    for key in ("params", "patient_ids", "progress", "run_id", "scenario"):
        if key in simulate_options:
            raise HemolabError(f"simulate_population sets {key!r} itself")
    cm = get_compiled(model)
    run_id = run_id or uuid.uuid4().hex[:12]
    keep = population.n <= 10_000 if keep_results is None else keep_results
    errors = _residual_models(model, residual_error)
    regimen = _Regimen.make(events, model, population, simulate_options.get("time_unit"))
    samples = regimen.samples
    if samples:  # each virtual patient is a copy of the linked set: S rows
        population = replace(population, n=population.n * len(samples))
    chosen = _chosen_outputs(simulate_options.get("outputs"), model, errors)
    default_bands = [v for v in model.observable_names if chosen is None or v in chosen]
    if chosen is not None and not default_bands:
        default_bands = list(chosen)
    bands_for = list(band_variables) if band_variables is not None else default_bands
    bands_for += [f"{e.observable}_obs" for e in errors if f"{e.observable}_obs" not in bands_for]
    if samples:  # a band over donors and recipients together would describe nobody
        bands_for = [f"{v}{SAMPLE_SEP}{sid}" for v in bands_for for sid in samples]

    out_path = Path(out) if out is not None else None
    tag = uuid.uuid4().hex[:8]
    writers: dict[str, pq.ParquetWriter] = {}
    tmp_paths: dict[str, Path] = {}
    sketches: dict[str, BandSketch] = {}
    metric_parts: list[pd.DataFrame] = []
    kept: list[Results] = []
    status_counts: dict[str, int] = {}
    steps_total = 0.0
    steps_max = 0
    times: np.ndarray | None = None
    n_chunks = 0
    meta_extra = {
        "hemolab.seed": json.dumps(int(population.seed)),
        "hemolab.population": json.dumps(population.describe(), sort_keys=True, default=str),
    }
    job = _ChunkJob(population, regimen, grid, t_end, dt, run_id, scenario, simulate_options)
    if samples:  # whole copies of the linked set per chunk (donors solved with recipients)
        chunk_size = max(1, chunk_size // len(samples)) * len(samples)
    bounds = [(a, min(a + chunk_size, population.n)) for a in range(0, population.n, chunk_size)]
    solved = _solved_chunks(job, cm, bounds, backend, ray_address)
    try:
        for (start, stop), res in zip(bounds, solved, strict=True):
            if errors:
                res = _with_residual_error(res, errors, population, start, stop)
            res = replace(res, metadata={**res.metadata, **meta_extra, "hemolab.inputs_hash": ""})
            if times is None:
                times = np.array(res.time[0], dtype=np.float64)
                for var in bands_for:
                    _rows_of(res, var, samples)  # raises KeyError naming the variables
                    sketches[var] = BandSketch(times.size, band_accuracy)
            assert times is not None
            if res.time.shape[1] != times.size or not np.allclose(
                res.time, times[None, :], equal_nan=True
            ):
                raise ScheduleError(
                    "patients of a population must share their output times (one regimen)"
                )
            for var in bands_for:
                sketches[var].add(_rows_of(res, var, samples)[1])
            metric_parts.append(_metrics(res, bands_for, times, samples))
            for label in res.status_labels:
                status_counts[label] = status_counts.get(label, 0) + 1
            steps_total += float(np.sum(res.n_steps))
            steps_max = max(steps_max, int(np.max(res.n_steps, initial=0)))
            if out_path is not None:
                _append(writers, tmp_paths, "result", out_path, res.to_arrow(), tag)
                if res.events is not None and res.events.num_rows:
                    ev_path = out_path.with_name(out_path.stem + ".events.parquet")
                    _append(writers, tmp_paths, "events", ev_path, res.events, tag)
            if keep:
                kept.append(res)
            n_chunks += 1
            if progress is not None:
                progress(stop, population.n)
        for w in writers.values():
            w.close()
        writers.clear()
    except BaseException:
        solved.close()  # Ray: cancel the chunks still in flight
        for w in writers.values():
            w.close()
        for p in tmp_paths.values():
            p.unlink(missing_ok=True)
        raise
    if out_path is not None:
        ev_final = out_path.with_name(out_path.stem + ".events.parquet")
        if "events" in tmp_paths:
            tmp_paths["events"].replace(ev_final)
        else:
            ev_final.unlink(missing_ok=True)
        tmp_paths["result"].replace(out_path)
    import pandas as pd

    assert times is not None
    return PopulationResult(
        population=population,
        run_id=run_id,
        scenario=scenario,
        time_unit=model.time_unit,
        time=times,
        bands={v: {q: s.quantile(q) for q in QUANTILES} for v, s in sketches.items()},
        band_accuracy=band_accuracy,
        metrics=pd.concat(metric_parts, ignore_index=True),
        status_counts=status_counts,
        out=out_path,
        results=_concat(kept) if keep else None,
        chunks=n_chunks,
        n_steps_mean=steps_total / population.n,
        n_steps_max=steps_max,
        backend=backend,
        extra={"model_hash": cm.hash, "units": _units(cm.model, bands_for, errors)},
    )


@dataclass(frozen=True)
class _ChunkJob:
    """What solving any chunk of a run needs: the population, its regimen, the options.

    Pickled once and shared by every Ray worker; a chunk is then just its rows
    ``[start, stop)``, which give the same patients and parameters wherever they are drawn
    (blockwise seeding, design note 006).
    """

    population: Population
    regimen: _Regimen
    grid: Any
    t_end: float | None
    dt: float | None
    run_id: str
    scenario: str
    options: Mapping[str, Any]

    def solve(self, cm: Any, start: int, stop: int) -> Results:
        """The solved rows ``[start, stop)`` (before residual error and population metadata)."""
        from hemolab._simulate import simulate

        ev, params = self.regimen.chunk(self.population, start, stop)
        samples = self.regimen.samples
        ids = patient_ids(start, stop)
        if samples:  # row r: sample r % S of virtual patient r // S
            S = len(samples)
            ids = [f"V{r // S:07d}-{samples[r % S]}" for r in range(start, stop)]
        return simulate(
            cm,
            ev,
            params=params,
            grid=self.grid,
            t_end=self.t_end,
            dt=self.dt,
            patient_ids=ids,
            run_id=self.run_id,
            scenario=self.scenario,
            **self.options,
        )


def _solved_chunks(
    job: _ChunkJob,
    cm: Any,
    bounds: Sequence[tuple[int, int]],
    backend: str,
    ray_address: str | None,
) -> Generator[Results, None, None]:
    """The solved chunks in order of ``bounds``: solved here one at a time, or on Ray."""
    if backend == "ray":
        from hemolab.population._ray import solve_chunks

        return solve_chunks(job, bounds, address=ray_address)
    return (job.solve(cm, start, stop) for start, stop in bounds)


def _units(model: Any, variables: Sequence[str], errors: Sequence[ResidualError]) -> dict:
    """``variable → (unit, kind)`` for the band variables."""
    info = {s.name: (s.unit, "state") for s in model.states}
    info |= {o.name: (o.unit, "observable") for o in model.observables}
    info |= {f"{e.observable}_obs": (info[e.observable][0], "derived") for e in errors}
    return {v: info.get(v.rpartition(SAMPLE_SEP)[0] or v, (None, "derived")) for v in variables}


def _append(
    writers: dict[str, pq.ParquetWriter],
    paths: dict[str, Path],
    key: str,
    final: Path,
    table: pa.Table,
    tag: str,
) -> None:
    import pyarrow.parquet as pq

    if key not in writers:
        final.parent.mkdir(parents=True, exist_ok=True)
        paths[key] = final.with_name(f".{final.name}.{tag}.tmp")
        writers[key] = pq.ParquetWriter(paths[key], table.schema)
    w = writers[key]
    w.write_table(table.replace_schema_metadata(w.schema.metadata).cast(w.schema))


def _residual_models(model: Any, spec: bool | Sequence[ResidualError]) -> list[ResidualError]:
    if spec is False:
        return []
    if spec is True:
        if not model.residual_error:
            raise HemolabError(
                f"model {model.name!r} declares no residual error model; give ResidualError "
                "objects (residual_error=[ResidualError('ANC', 'proportional', "
                "proportional=0.2)])"
            )
        return list(model.residual_error)
    errs = list(spec)
    for e in errs:
        if e.observable not in model.observable_names:
            raise HemolabError(
                f"residual error for {e.observable!r}: not an observable of model "
                f"{model.name!r} ({list(model.observable_names)})"
            )
    return errs


def _chosen_outputs(outputs: Any, model: Any, errors: Sequence[ResidualError]) -> list[str] | None:
    """The ``outputs=`` selection as a list (None: every variable); residual errors need their
    observables in it."""
    if outputs is None:
        return None
    chosen = [outputs] if isinstance(outputs, str) else list(outputs)
    missing = [e.observable for e in errors if e.observable not in chosen]
    if missing:
        raise HemolabError(
            f"residual error is added to {', '.join(missing)}: include "
            f"{'it' if len(missing) == 1 else 'them'} in outputs (given: {', '.join(chosen)})"
        )
    return chosen


def _with_residual_error(
    res: Results, errors: list[ResidualError], population: Population, start: int, stop: int
) -> Results:
    """``<observable>_obs`` variables: predictions plus residual error (kind ``derived``)."""
    N, T, _ = res.values.shape
    eps = population.residual_noise(start, stop, T * len(errors)).reshape(N, T, len(errors))
    extra = np.stack(
        [e.apply(res.variable(e.observable), eps[:, :, k]) for k, e in enumerate(errors)], axis=2
    )
    idx = [res.variables.index(e.observable) for e in errors]
    return replace(
        res,
        values=np.concatenate([res.values, extra], axis=2),
        variables=res.variables + tuple(f"{e.observable}_obs" for e in errors),
        units=res.units + tuple(res.units[i] for i in idx),
        kinds=res.kinds + ("derived",) * len(errors),
    )


SAMPLE_SEP = "@"
"""``Hb@D``: the band and metrics of variable Hb over the copies of linked sample D."""


def _rows_of(res: Results, key: str, samples: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The chunk rows a band variable covers and their values: every row, or (linked
    samples, ``var@sample``) the rows of that sample (row r is sample r % S)."""
    if not samples:
        return np.arange(len(res.patient_ids)), res.variable(key)
    var, _, sid = key.rpartition(SAMPLE_SEP)
    rows = np.arange(samples.index(sid), len(res.patient_ids), len(samples))
    return rows, res.variable(var)[rows]


def _metrics(
    res: Results, variables: Sequence[str], times: np.ndarray, samples: Sequence[str] = ()
) -> pd.DataFrame:
    import pandas as pd

    frames = []
    all_labels = np.asarray(res.status_labels, dtype=object)
    all_ids = np.asarray(res.patient_ids, dtype=object)
    for var in variables:
        at, v = _rows_of(res, var, samples)
        labels = all_labels[at]
        ok = np.isfinite(v).any(axis=1)
        safe_min = np.where(np.isfinite(v), v, np.inf)
        safe_max = np.where(np.isfinite(v), v, -np.inf)
        i_min, i_max = safe_min.argmin(axis=1), safe_max.argmax(axis=1)
        rows = np.arange(v.shape[0])
        frames.append(
            pd.DataFrame(
                {
                    "patient_id": list(all_ids[at]),
                    "variable": var,
                    "min": np.where(ok, v[rows, i_min], np.nan),
                    "t_min": np.where(ok, times[i_min], np.nan),
                    "max": np.where(ok, v[rows, i_max], np.nan),
                    "t_max": np.where(ok, times[i_max], np.nan),
                    "final": v[:, -1],
                    "status": labels,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _concat(parts: list[Results]) -> Results:
    if len(parts) == 1:
        return parts[0]
    first = parts[0]

    def cat(name: str) -> Any:
        return np.concatenate([getattr(r, name) for r in parts], axis=0)

    events = None
    if any(r.events is not None for r in parts):
        import pyarrow as pa

        events = pa.concat_tables([r.events for r in parts if r.events is not None])
    return replace(
        first,
        values=cat("values"),
        time=cat("time"),
        occasion=cat("occasion"),
        is_observation=cat("is_observation"),
        status=cat("status"),
        n_steps=cat("n_steps"),
        patient_ids=tuple(pid for r in parts for pid in r.patient_ids),
        replicate=cat("replicate"),
        events=events,
        trigger_count=cat("trigger_count") if first.trigger_count is not None else None,
        trigger_first_time=cat("trigger_first_time")
        if first.trigger_first_time is not None
        else None,
    )


@dataclass(frozen=True)
class _Regimen:
    """A one-subject regimen applied to every patient of a chunk, or a set of subjects linked
    by ``EVENT=mix`` (donors and recipients) copied for every virtual patient."""

    frame: Any  # DataFrame of the template subject, or None
    dataset: Any  # its EventDataset (validated once), or None
    sampled_covariates: tuple[str, ...]

    @property
    def samples(self) -> tuple[str, ...]:
        """The linked subjects' ids in dataset order (empty for a one-subject regimen)."""
        if self.dataset is None or self.dataset.n_subjects == 1:
            return ()
        return tuple(self.dataset.subject_ids)

    @classmethod
    def make(cls, events: Any, model: Any, population: Population, time_unit: Any) -> _Regimen:
        sampled = tuple(population.covariates)
        if events is None:
            return cls(None, None, sampled)
        import pandas as pd

        from hemolab.events import EventDataset, read_events

        if isinstance(events, EventDataset):
            if sampled:
                raise HemolabError(
                    "sampled covariates need the regimen as a table (path or DataFrame), not "
                    "an EventDataset"
                )
            dataset, frame = events, None
        else:
            frame = events if isinstance(events, pd.DataFrame) else _read_table(events)
            checked = frame
            if sampled:  # check the regimen as the first patient will see it
                checked = frame.copy()
                first = population.covariate_values(0, 1)
                for name in sampled:
                    checked[_column(frame, name)] = float(first[name][0])
            dataset = read_events(checked, model=model, time_unit=time_unit)
        if dataset.n_subjects > 1 and _links_subjects(dataset):
            if sampled:
                raise HemolabError(
                    "a population of linked (mixing) subjects takes its covariates from the "
                    "event dataset: sampled covariates are not supported there"
                )
            return cls(frame, dataset, sampled)
        if dataset.n_subjects != 1:
            raise HemolabError(
                f"a population runs one regimen: the event dataset has {dataset.n_subjects} "
                "subjects, give one (its ID is replaced by the virtual patient ids), or "
                "subjects linked by EVENT=mix (each virtual patient a copy of the set)"
            )
        return cls(frame, dataset, sampled)

    def chunk(
        self, population: Population, start: int, stop: int
    ) -> tuple[Any, Mapping[str, np.ndarray]]:
        params = population.parameters(start, stop)
        if self.dataset is None:
            return None, params
        if not self.sampled_covariates:
            return self.dataset, params
        # per-patient covariates (and the doses they scale): one subject per patient
        frame = self.frame
        m = stop - start
        reps = frame.loc[np.tile(frame.index.to_numpy(), m)].reset_index(drop=True)
        reps["ID"] = np.repeat(np.arange(start + 1, stop + 1), len(frame))
        for name in self.sampled_covariates:
            reps[_column(reps, name)] = np.repeat(params[name], len(frame))
        rest = {k: v for k, v in params.items() if k not in self.sampled_covariates}
        return reps, rest


def _links_subjects(dataset: Any) -> bool:
    return any(rec.event == "mix" for sub in dataset.subjects for rec in sub.records)


def _column(frame: Any, name: str) -> str:
    """The dataset column holding covariate ``name`` (case-insensitive, as the reader does)."""
    return next((c for c in frame.columns if c.upper() == name.upper()), name)


def _read_table(path: Any) -> pd.DataFrame:
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise HemolabError(f"event dataset {str(p)!r} does not exist")
    if p.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(p)
    return pd.read_csv(p)
