"""Simulation results: arrays in memory, the long table of DATA-FORMATS §C on the way out.

Results keep the solver's dense arrays (patients × output times × variables) and convert to
the tidy long table on demand (pandas, polars, Parquet with provenance metadata) or to a wide
view for plotting. Rows are sorted by ``run_id, scenario, patient_id, replicate, variable,
stat, occasion, time`` so serial and chunked runs of one experiment write identical files.
"""

from __future__ import annotations

import json
import platform
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hemolab._errors import SolveError
from hemolab.solve._status import Status

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl

__all__ = ["Results"]

_STATUS_LABELS = [s.label for s in Status if s != Status.RUNNING]


@dataclass(frozen=True, eq=False)
class Results:
    """The outcome of :func:`hemolab.simulate`.

    Attributes
    ----------
    values
        ``(N, T, V)`` float64: states then observables at each output slot; NaN where the
        patient failed or the slot is padding.
    time, occasion, is_observation
        ``(N, T)``: output times (model time unit, NaN padding), occasion (increments at each
        reset) and whether the slot is a dataset observation (pre-dose) or a grid time.
    variables, units, kinds
        Per variable ``V``: name, UCUM unit (or ``None``), ``state`` or ``observable``.
    status
        ``(N,)`` :class:`Status` codes; ``status_labels`` gives DATA-FORMATS §C names.
    metadata
        Provenance written into the Parquet key-value metadata.
    trigger_names, trigger_count, trigger_first_time
        State-triggered events: names, ``(N, K)`` firing counts and first firing times
        (NaN where a trigger never fired) — the time-to-threshold of a run.
    """

    values: np.ndarray
    time: np.ndarray
    occasion: np.ndarray
    is_observation: np.ndarray
    variables: tuple[str, ...]
    units: tuple[str | None, ...]
    kinds: tuple[str, ...]
    status: np.ndarray
    n_steps: np.ndarray
    patient_ids: tuple[str, ...]
    replicate: np.ndarray
    time_unit: str
    run_id: str
    scenario: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    events: Any = None  # pyarrow Table of applied events, or None
    trigger_names: tuple[str, ...] = ()
    trigger_count: np.ndarray | None = None  # (N, K) times each trigger fired
    trigger_first_time: np.ndarray | None = None  # (N, K) first firing time (NaN: never)

    # -- summaries -----------------------------------------------------------------------------
    @property
    def n_patients(self) -> int:
        return int(self.values.shape[0])

    @property
    def status_labels(self) -> list[str]:
        return [Status(int(s)).label for s in self.status]

    @property
    def failed(self) -> np.ndarray:
        """Batch indices of the patients whose solve did not finish (status ≠ ok)."""
        return np.flatnonzero(self.status != Status.OK)

    def raise_on_failure(self) -> Results:
        """Raise :class:`SolveError` naming the failed batch indices; return self otherwise."""
        bad = self.failed
        if len(bad):
            counts: dict[str, int] = {}
            for i in bad:
                label = Status(int(self.status[i])).label
                counts[label] = counts.get(label, 0) + 1
            shown = ", ".join(map(str, bad[:20])) + (" ..." if len(bad) > 20 else "")
            raise SolveError(
                f"{len(bad)} of {self.n_patients} patients did not solve ({counts}); "
                f"batch indices: {shown}. Use throw=False to get their status instead.",
                bad.tolist(),
            )
        return self

    def variable(self, name: str) -> np.ndarray:
        """``(N, T)`` values of one variable."""
        try:
            return self.values[:, :, self.variables.index(name)]
        except ValueError:
            raise KeyError(f"no variable {name!r}; variables: {list(self.variables)}") from None

    # -- tables --------------------------------------------------------------------------------
    def to_arrow(self) -> pa.Table:
        """The long table of DATA-FORMATS §C, sorted, as a pyarrow Table."""
        N, T, V = self.values.shape
        valid = ~np.isnan(self.time)  # (N, T)
        pid_order = np.argsort(np.asarray(self.patient_ids), kind="stable")
        pid_rank = np.empty(N, dtype=np.int64)
        pid_rank[pid_order] = np.arange(N)
        patients = np.lexsort((self.replicate, pid_rank))  # order: patient_id, replicate
        var_sort = np.argsort(np.asarray(self.variables, dtype=object), kind="stable")
        # order: patient_id, replicate, variable, occasion, time. Slots are normally already
        # in (occasion, time) order within a patient, so no sort of the long table is needed.
        p_idx, v_idx, t_idx = np.meshgrid(patients, var_sort, np.arange(T), indexing="ij")
        p_idx, v_idx, t_idx = p_idx.ravel(), v_idx.ravel(), t_idx.ravel()
        keep = valid[p_idx, t_idx]
        p_idx, v_idx, t_idx = p_idx[keep], v_idx[keep], t_idx[keep]
        if not _slots_sorted(self.occasion, self.time, valid):
            rank = np.empty(V, dtype=np.int64)
            rank[var_sort] = np.arange(V)
            times = self.time[p_idx, t_idx]
            occ = self.occasion[p_idx, t_idx]
            order = np.lexsort((times, occ, rank[v_idx], self.replicate[p_idx], pid_rank[p_idx]))
            p_idx, v_idx, t_idx = p_idx[order], v_idx[order], t_idx[order]
        n = len(p_idx)
        label_index = {s.value: k for k, s in enumerate(s for s in Status if s != Status.RUNNING)}
        per_patient = np.array([label_index[int(c)] for c in self.status], dtype=np.int32)
        status_idx = per_patient[p_idx] if N else np.zeros(0, dtype=np.int32)

        def dict_col(indices: np.ndarray, labels: Sequence[str]) -> pa.Array:
            """Dictionary column of ``labels[indices]`` with a unique dictionary."""
            uniq = sorted(set(labels))
            code = np.array([uniq.index(x) for x in labels], dtype=np.int32)
            return pa.DictionaryArray.from_arrays(
                pa.array(code[indices], type=pa.int32()), pa.array(uniq, type=pa.string())
            )

        units = [u if u is not None else "" for u in self.units]

        def str_col(indices: np.ndarray, labels: Sequence[str]) -> pa.Array:
            """Plain string column of ``labels[indices]``, decoded in Arrow (no Python str)."""
            return pa.DictionaryArray.from_arrays(
                pa.array(indices, type=pa.int32()), pa.array(list(labels), type=pa.string())
            ).cast(pa.string())

        zeros = np.zeros(n, dtype=np.int32)
        table = pa.table(
            {
                "run_id": str_col(zeros, [self.run_id]),
                "scenario": str_col(zeros, [self.scenario]),
                "patient_id": str_col(p_idx.astype(np.int32), self.patient_ids),
                "replicate": pa.array(self.replicate[p_idx].astype(np.int32)),
                "occasion": pa.array(self.occasion[p_idx, t_idx].astype(np.int32)),
                "time": pa.array(self.time[p_idx, t_idx], type=pa.float64()),
                "variable": dict_col(v_idx.astype(np.int32), self.variables),
                "value": pa.array(self.values[p_idx, t_idx, v_idx], type=pa.float64()),
                "unit": dict_col(v_idx.astype(np.int32), units),
                "kind": dict_col(v_idx.astype(np.int32), self.kinds),
                "status": dict_col(status_idx, _STATUS_LABELS),
            }
        )
        return table.replace_schema_metadata(self._schema_metadata())

    def to_pandas(self) -> pd.DataFrame:
        """The long table as a pandas DataFrame."""
        return self.to_arrow().to_pandas()

    def to_polars(self) -> pl.DataFrame:
        """The long table as a polars DataFrame."""
        import polars as pl

        out = pl.from_arrow(self.to_arrow())
        if not isinstance(out, pl.DataFrame):  # pragma: no cover - from_arrow of a Table
            raise TypeError("expected a DataFrame")
        return out

    def wide(self) -> pd.DataFrame:
        """One row per (patient, occasion, time), one column per variable: for plotting."""
        import pandas as pd

        valid = ~np.isnan(self.time)
        p, t = np.nonzero(valid)
        # the long table's order: patient_id, replicate, occasion, time
        N = self.n_patients
        pid_rank = np.empty(N, dtype=np.int64)
        pid_rank[np.argsort(np.asarray(self.patient_ids), kind="stable")] = np.arange(N)
        order = np.lexsort((self.time[p, t], self.occasion[p, t], self.replicate[p], pid_rank[p]))
        p, t = p[order], t[order]
        frame = pd.DataFrame(
            {
                "patient_id": np.asarray(self.patient_ids, dtype=object)[p],
                "replicate": self.replicate[p],
                "occasion": self.occasion[p, t],
                "time": self.time[p, t],
            }
        )
        for k, name in enumerate(self.variables):
            frame[name] = self.values[p, t, k]
        frame["status"] = np.asarray(self.status_labels, dtype=object)[p]
        return frame

    # -- files ---------------------------------------------------------------------------------
    def _schema_metadata(self) -> dict[bytes, bytes]:
        meta = {
            "hemolab.created": datetime.now(UTC).isoformat(timespec="seconds"),
            "hemolab.host": platform.node(),
            "hemolab.time_unit": self.time_unit,
            "hemolab.seed": "null",  # §C: no random draws unless a population sets one
            **{k: str(v) for k, v in self.metadata.items()},
        }
        return {k.encode(): v.encode() for k, v in meta.items()}

    def write_parquet(self, path: str | Path) -> Path:
        """Write the long table (and ``<stem>.events.parquet`` when events were applied).

        Both files are written to temporary names in the target folder and renamed only once
        both are complete, so an existing result is replaced only on success and never left
        half-written. A stale ``<stem>.events.parquet`` from an earlier run is removed when
        this result applied no events.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        ev_path = path.with_name(path.stem + ".events.parquet")
        has_events = self.events is not None and self.events.num_rows > 0
        tag = uuid.uuid4().hex[:8]
        written: list[tuple[Path, Path]] = []
        try:
            for table, final in ((self.to_arrow(), path), (self.events, ev_path)):
                if final is ev_path and not has_events:
                    continue
                tmp = final.with_name(f".{final.name}.{tag}.tmp")
                written.append((tmp, final))
                pq.write_table(table, tmp)
        except BaseException:
            for tmp, _ in written:
                tmp.unlink(missing_ok=True)
            raise
        for tmp, final in reversed(written):  # the events first: the result marks completion
            tmp.replace(final)
        if not has_events:
            ev_path.unlink(missing_ok=True)
        return path

    def summary(self) -> dict[str, Any]:
        """Machine-readable summary (used by ``hemolab simulate --json``)."""
        counts = {label: 0 for label in _STATUS_LABELS}
        for label in self.status_labels:
            counts[label] += 1
        per_var = {}
        for k, name in enumerate(self.variables):
            col = self.values[:, :, k]
            finite = col[np.isfinite(col)]
            per_var[name] = {
                "unit": self.units[k],
                "kind": self.kinds[k],
                "min": float(finite.min()) if finite.size else None,
                "max": float(finite.max()) if finite.size else None,
            }
        return {
            "run_id": self.run_id,
            "scenario": self.scenario,
            "model": self.metadata.get("hemolab.model", ""),
            "model_hash": self.metadata.get("hemolab.model_hash", ""),
            "time_unit": self.time_unit,
            "n_patients": self.n_patients,
            "n_times": int(np.sum(~np.isnan(self.time))),
            "status": counts,
            "steps": {
                "mean": float(np.mean(self.n_steps)) if self.n_steps.size else 0.0,
                "max": int(np.max(self.n_steps)) if self.n_steps.size else 0,
            },
            "variables": per_var,
        }


def read_metadata(path: str | Path) -> dict[str, str]:
    """The hemolab key-value metadata of a result file."""
    meta = pq.read_schema(path).metadata or {}
    return {k.decode(): v.decode() for k, v in meta.items() if k.startswith(b"hemolab.")}


def _slots_sorted(occasion: np.ndarray, time: np.ndarray, valid: np.ndarray) -> bool:
    """Whether each patient's valid output slots come in (occasion, time) order, padding last."""
    if not np.all(valid[:, :-1] | ~valid[:, 1:]):  # a valid slot after padding
        return False
    occ = np.where(valid, occasion, np.iinfo(np.int64).max)
    t = np.where(valid, time, np.inf)
    d_occ = np.diff(occ, axis=1)
    d_t = np.diff(t, axis=1)
    both = valid[:, 1:]
    return bool(np.all(~both | (d_occ > 0) | ((d_occ == 0) & (d_t >= 0))))


def provenance(**items: Any) -> dict[str, str]:
    """Provenance entries under the ``hemolab.`` prefix (JSON for non-strings)."""
    return {
        f"hemolab.{k}": v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str)
        for k, v in items.items()
    }
