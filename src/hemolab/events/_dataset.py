"""The event dataset: NONMEM-style rows read, checked and normalized (DATA-FORMATS §A).

:func:`read_events` reads a CSV or Parquet file (or a pandas ``DataFrame``), checks every rule
of DATA-FORMATS §A against a :class:`~hemolab.model.Model`, and returns an
:class:`EventDataset`: per subject, normalized :class:`EventRecord` s whose times, amounts and
rates are already in the model's units. Every violation is collected and reported at once in
one :class:`~hemolab.DatasetError` (as pharmpy's ``check_dataset`` does).

Source identifiers (the ``ID`` column) never appear in a message, warning or ``repr``: subjects
get temporary pseudonyms ``T0000000``, ``T0000001``... in file order, and the mapping back is
kept in memory only (:meth:`EventDataset.temporary_id`), for the store to link later.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any

from hemolab._errors import DatasetError, DatasetIssue

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from hemolab.model import Model

__all__ = ["EventDataset", "EventRecord", "SubjectEvents", "read_events"]


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One checked row of an event dataset, in the model's units.

    Times (``time``, ``ii``, ``dur``) are in the model's time unit; ``amt`` and ``rate`` are in
    the dosed state's unit (``AMT_UNIT`` applied, per-kg and per-m² doses scaled) and per model
    time unit. Missing optional numbers are NaN.

    Attributes
    ----------
    row
        1-based data row in the source (header excluded).
    time
        Time on the subject's clock (``TIME``, or hours since the first ``DATETIME``).
    evid
        0 observation, 1 dose, 2 other/hemolab event, 3 reset, 4 reset and dose, 5 replace,
        6 multiply.
    cmt
        0-based index of the state named by ``CMT``, or ``None``.
    cmt_off
        ``True`` for a negative ``CMT`` on an ``EVID=2`` row (turn the compartment off).
    amt, rate, dur, ii, addl, ss
        Dose fields; ``rate`` keeps the codes 0, -1 (model rate) and -2 (model duration);
        ``ss`` is 0, 1 or 2 (3 is read as 1).
    mdv, dv, dvid, cens, limit, occ
        Observation fields; ``dvid`` is the observable (or state) name.
    event
        ``"transfusion"``, ``"phlebotomy"``, ``"param"``, ``"mix"`` or ``None``.
    product, units, volume, hb_g, hct, plt_e9
        Transfusion fields (per unit, defaults filled in); ``volume`` is also the phlebotomy
        volume in mL.
    abo, rhd
        The product's ABO group and RhD (``POS``/``NEG``) when the row gives them.
    incompatible
        The unit is incompatible with its patient and was accepted to be modelled
        (``allow_incompatible``): its red cells are destroyed (:func:`~hemolab.model.haemolysis`).
    param, value
        ``EVENT=param``: the parameter or covariate name and its new value.
    donor, fraction, part, part_states, deplete
        ``EVENT=mix``: the donor's temporary pseudonym, the ``FRACTION`` of the recipient's
        blood volume (or NaN: ``volume`` mL of donor blood is given), ``PART`` as written
        (``whole``, ``plasma``, ``cells`` or a ``;``-list of states), the 0-based states it
        selects, and whether the donor loses what it gives (``DEPLETE=1``).
    covariates
        One value per model covariate (``Model.covariate_names``), NaN where absent.
    """

    row: int
    time: float
    evid: int
    cmt: int | None = None
    cmt_off: bool = False
    amt: float = 0.0
    rate: float = 0.0
    dur: float = math.nan
    ii: float = 0.0
    addl: int = 0
    ss: int = 0
    mdv: int = 0
    dv: float = math.nan
    dvid: str | None = None
    cens: int = 0
    limit: float = math.nan
    occ: int | None = None
    event: str | None = None
    product: str | None = None
    units: float = math.nan
    volume: float = math.nan
    hb_g: float = math.nan
    hct: float = math.nan
    plt_e9: float = math.nan
    abo: str | None = None
    rhd: str | None = None
    incompatible: bool = False
    param: str | None = None
    value: float = math.nan
    donor: str | None = None
    fraction: float = math.nan
    part: str | None = None
    part_states: tuple[int, ...] = ()
    deplete: bool = False
    covariates: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class SubjectEvents:
    """The records of one subject, in file order, under its temporary pseudonym."""

    subject_id: str
    records: tuple[EventRecord, ...]


@dataclass(frozen=True, repr=False)
class EventDataset:
    """A checked event dataset: per-subject records in the model's units.

    Attributes
    ----------
    file
        The source's file name (no directory), or the name given for a ``DataFrame``.
    model_name
        The model the dataset was checked against.
    time_unit
        The model's time unit, in which every time of the records is expressed.
    source_time_unit
        The time unit the dataset was written in (``TIME``, ``II``, ``DUR``).
    state_names, covariate_names
        The model's states (``EventRecord.cmt`` indexes them) and covariates
        (``EventRecord.covariates`` follows them).
    subjects
        One :class:`SubjectEvents` per subject, in the order of first appearance in the file.
    columns
        The dataset's columns (upper case) that hemolab read.
    ignored_columns
        Columns that are neither §A columns nor model covariates (as written in the file).
    ids_are_temporary
        Pseudonyms are temporary (no store was used; DATA-FORMATS §0).
    """

    file: str
    model_name: str
    time_unit: str
    source_time_unit: str
    state_names: tuple[str, ...]
    covariate_names: tuple[str, ...]
    subjects: tuple[SubjectEvents, ...]
    columns: tuple[str, ...] = ()
    ignored_columns: tuple[str, ...] = ()
    ids_are_temporary: bool = True
    # Source identifiers and DATETIME anchors are identifying: kept out of repr and comparisons.
    _id_map: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    _anchors: Mapping[str, datetime] = field(default_factory=dict, repr=False, compare=False)

    def __repr__(self) -> str:
        n_records = sum(len(s.records) for s in self.subjects)
        return (
            f"EventDataset(file={self.file!r}, model_name={self.model_name!r}, "
            f"n_subjects={self.n_subjects}, n_records={n_records}, time_unit={self.time_unit!r})"
        )

    @property
    def n_subjects(self) -> int:
        """Number of subjects."""
        return len(self.subjects)

    @property
    def subject_ids(self) -> tuple[str, ...]:
        """Temporary pseudonyms, in file order."""
        return tuple(s.subject_id for s in self.subjects)

    @property
    def has_occasions(self) -> bool:
        """Whether the dataset has an ``OCC`` column (otherwise occasions count resets)."""
        return "OCC" in self.columns

    def initial_covariates(self) -> np.ndarray:
        """Each subject's covariate values at the start: ``(n_subjects, n_covariates)``.

        The first non-missing value of each covariate (what both NOCB and LOCF give at the
        first record); NaN where a subject never has one (use the model's default). Equal to
        ``Schedule.initial_covariates``, without building a schedule.
        """
        import numpy as np

        out = np.full((self.n_subjects, len(self.covariate_names)), np.nan)
        for k, subject in enumerate(self.subjects):
            for c in range(len(self.covariate_names)):
                for rec in subject.records:
                    if not math.isnan(rec.covariates[c]):
                        out[k, c] = rec.covariates[c]
                        break
        return out

    def temporary_id(self, source_id: object) -> str:
        """Return the temporary pseudonym of a source identifier (``KeyError`` if absent)."""
        return self._id_map[_normalize_id(source_id)]

    def anchor(self, subject_id: str) -> datetime | None:
        """The temporary clock anchor of a subject read from ``DATETIME`` (else ``None``)."""
        return self._anchors.get(subject_id)

    def to_pandas(self) -> pd.DataFrame:
        """Return the normalized records as a long table, one row per record.

        Columns: ``ID`` (the temporary pseudonym), the :class:`EventRecord` fields in upper case
        (``CMT`` as the state name) and one column per model covariate. Times are in
        :attr:`time_unit`.
        """
        import pandas as pd

        names = [f.name for f in fields(EventRecord) if f.name != "covariates"]
        rows: list[dict[str, Any]] = []
        for subject in self.subjects:
            for rec in subject.records:
                row: dict[str, Any] = {"ID": subject.subject_id}
                for name in names:
                    row[name.upper()] = getattr(rec, name)
                if rec.cmt is not None:
                    row["CMT"] = self.state_names[rec.cmt]
                for cov, v in zip(self.covariate_names, rec.covariates, strict=True):
                    row[cov] = v
                rows.append(row)
        columns = ["ID", *(n.upper() for n in names), *self.covariate_names]
        return pd.DataFrame(rows, columns=columns)


def _normalize_id(value: object) -> str:
    """One text per identifier: ``1``, ``1.0`` and ``"1"`` are the same subject."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        return value.strip()
    return str(value)


def read_events(
    source: str | os.PathLike[str] | pd.DataFrame,
    *,
    model: Model,
    time_unit: str | None = None,
    file_name: str | None = None,
    patients: Mapping[str, Any] | None = None,
    allow_incompatible: bool = False,
) -> EventDataset:
    """Read an event dataset and check it against a model (DATA-FORMATS §A).

    Every rule is checked and every violation collected; if there is any, one
    :class:`~hemolab.DatasetError` lists them all with file, row and column. Times, amounts
    and rates are converted to the model's units.

    Parameters
    ----------
    source
        A CSV or Parquet path (``.parquet``/``.pq``), or a pandas ``DataFrame``.

    Other Parameters
    ----------------
    model
        The model the events apply to (states for ``CMT``, covariates, dose properties, blood).
    time_unit
        Unit of ``TIME``, ``II`` and ``DUR`` in the dataset; default: the Parquet key-value
        metadata ``time_unit`` if present, else the model's time unit.
    file_name
        Name used in messages (default: the file's name, or ``"<DataFrame>"``).
    patients
        Patient records by source ``ID`` (:func:`hemolab.patients.read_patient_records`):
        a transfusion row whose product has an ``ABO`` (and ``RHD``) is checked against its
        patient's blood group (MODELS.md §7d) and refused when incompatible.
    allow_incompatible
        Accept incompatible units instead, to model the reaction: the model must then
        destroy them (:func:`hemolab.model.haemolysis`); each one warns.

    Returns
    -------
    EventDataset
        Per-subject records in file order, under temporary pseudonyms ``T0000000``...

    Raises
    ------
    DatasetError
        Listing every violation; messages name rows and columns, never an ``ID`` value.

    Warns
    -----
    HemolabWarning
        ``SS=3`` read as ``SS=1``; a per-kg or per-m² dose scaled with the model's default
        body size.

    Examples
    --------
    >>> import pandas as pd
    >>> import hemolab as hl
    >>> from hemolab.events import read_events
    >>> m = hl.Model("pk", time_unit="h",
    ...     states=[hl.State("A", "-k*A", unit="mg")], parameters=[hl.Parameter("k", 0.1)])
    >>> df = pd.DataFrame({"ID": [1, 1], "TIME": [0, 2], "EVID": [1, 0], "AMT": [100, 0]})
    >>> read_events(df, model=m).subject_ids
    ('T0000000',)
    """
    from hemolab.events._checks import check_table

    columns, metadata_unit, name = _load(source, file_name)
    if time_unit is None:
        time_unit = metadata_unit
    elif metadata_unit is not None and metadata_unit != time_unit:
        issue = DatasetIssue(
            name,
            None,
            None,
            f"time_unit={time_unit!r} disagrees with the file's metadata time_unit "
            f"{metadata_unit!r}; pass the unit the file is written in",
        )
        raise DatasetError([issue])
    return check_table(
        columns,
        model=model,
        time_unit=time_unit,
        file=name,
        patients=patients or {},
        allow_incompatible=allow_incompatible,
    )


def _load(
    source: str | os.PathLike[str] | pd.DataFrame, file_name: str | None
) -> tuple[dict[str, list[Any]], str | None, str]:
    """Read the source into ``{column name as written: cells}``, metadata time unit, name."""
    import pandas as pd

    metadata_unit: str | None = None
    if isinstance(source, pd.DataFrame):
        frame = source
        name = file_name or "<DataFrame>"
    else:
        path = os.fspath(source)
        name = file_name or os.path.basename(path)
        if path.lower().endswith((".parquet", ".pq")):
            import pyarrow.parquet as pq

            table = pq.read_table(path)
            meta = table.schema.metadata or {}
            raw = meta.get(b"time_unit")
            if raw is not None:
                metadata_unit = raw.decode().strip()
            frame = table.to_pandas()
        else:
            # Everything as text: '.', '' and 'NA' are missing values, decided by the checker.
            try:
                frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
            except pd.errors.EmptyDataError:
                raise DatasetError(
                    [DatasetIssue(name, None, None, "the file is empty; expected a header row")]
                ) from None
            except (pd.errors.ParserError, UnicodeDecodeError) as exc:
                msg = f"not a readable CSV file ({type(exc).__name__})"
                raise DatasetError([DatasetIssue(name, None, None, msg)]) from None
    names = [str(c).strip() for c in frame.columns]
    seen: dict[str, int] = {}
    issues = []
    for k, c in enumerate(names):
        # pandas renames a repeated CSV header "AMT" to "AMT.1": the same column twice
        base = c.rsplit(".", 1)[0] if c.rsplit(".", 1)[-1].isdigit() else None
        key = c  # names that differ only in case are reported by the checker
        if key in seen or (base is not None and base in seen):
            shown = base if key not in seen and base is not None else c
            issues.append(
                DatasetIssue(name, None, shown, f"column {shown!r} appears more than once")
            )
        seen.setdefault(key, k)
    if issues:
        raise DatasetError(issues)
    columns = {c: frame.iloc[:, k].tolist() for k, c in enumerate(names)}
    return columns, metadata_unit, name
