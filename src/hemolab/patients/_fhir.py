"""Lab histories from FHIR R4 JSON bundles (DATA-FORMATS §B), parsed with ``fhir.resources``.

Each entry's resource is validated on its own (``fhir.resources.R4B``: R4 content), so one
malformed entry is reported with its number and element and the others are still checked;
every problem is reported at once and nothing is returned half-read. Rules, per
``Observation``:

* status ``final``, ``amended``, ``corrected`` kept; ``preliminary`` kept and flagged; the
  others dropped and counted;
* the analyte is the coding with system ``http://loinc.org`` whose code hemolab reads;
* the value is ``valueQuantity`` with system ``http://unitsofmeasure.org``, read by its
  ``code`` (never the display ``unit``); ``Decimal`` becomes float; a ``<`` or ``<=``
  comparator marks a censored value (below the LLOQ, which is the value);
* the time is ``effectiveDateTime``, ``effectiveInstant`` or ``effectivePeriod.start``, with
  a time of day and an offset (partial dates are rejected unless ``allow_partial_dates``,
  which reads a date as midnight UTC);
* each ``component`` with its own LOINC code and quantity is a separate value.

``Patient`` resources give sex and birth year. Messages name the entry and the element and
never echo an identifier, a reference or a date.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from datetime import UTC, date, datetime
from typing import Any

from hemolab._errors import DatasetError, DatasetIssue, UnitError
from hemolab.patients._analytes import ANALYTES, analyte_for_loinc
from hemolab.patients._labs import Demographics, LabHistory, LabRecord

__all__ = ["read_fhir"]

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
_BUNDLE_TYPES = ("collection", "searchset", "transaction")
_KEEP = frozenset({"final", "amended", "corrected"})
_FLAG = frozenset({"preliminary"})
_WHAT = "FHIR bundle"


def read_fhir(
    source: str | os.PathLike[str] | dict[str, Any],
    *,
    allow_partial_dates: bool = False,
    file_name: str | None = None,
) -> LabHistory:
    """Read the laboratory ``Observation``s of a FHIR R4 ``Bundle`` (a path or a parsed dict).

    Raises :class:`~hemolab.DatasetError` listing every problem (entry number and element).
    """
    from fhir.resources.R4B.observation import Observation
    from fhir.resources.R4B.patient import Patient
    from pydantic import ValidationError

    doc, name = _load(source, file_name)
    issues: list[DatasetIssue] = []

    def issue(entry: int | None, element: str | None, message: str) -> None:
        issues.append(DatasetIssue(name, entry, element, message, "entry", "element"))

    if not isinstance(doc, dict) or doc.get("resourceType") != "Bundle":
        raise DatasetError([DatasetIssue(name, None, None, "expected a FHIR Bundle")], _WHAT)
    if doc.get("type") not in _BUNDLE_TYPES:
        raise DatasetError(
            [
                DatasetIssue(
                    name, None, "type", f"expected a Bundle of type {', '.join(_BUNDLE_TYPES)}"
                )
            ],
            _WHAT,
        )
    entries = doc.get("entry") or []
    if not isinstance(entries, list):
        raise DatasetError([DatasetIssue(name, None, "entry", "expected a list")], _WHAT)

    records: list[LabRecord] = []
    demographics: dict[str, Demographics] = {}
    dropped: Counter[str] = Counter()
    observations: list[tuple[int, Any]] = []
    for k, entry in enumerate(entries, start=1):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            issue(k, "resource", "missing; expected a resource")
            continue
        kind = resource.get("resourceType")
        cls = {"Observation": Observation, "Patient": Patient}.get(str(kind))
        if cls is None:
            dropped[f"resource {kind}"] += 1
            continue
        try:
            parsed = cls.model_validate(resource)
        except ValidationError as exc:
            for err in exc.errors():  # their messages, never their input values
                where = ".".join(str(p) for p in err["loc"]) or None
                issue(k, where, f"not a valid {kind}: {err['msg']}")
            continue
        if kind == "Patient":
            refs = [f"Patient/{parsed.id}"] if parsed.id else []
            if isinstance(entry.get("fullUrl"), str):
                refs.append(entry["fullUrl"])
            info = _demographics(parsed)
            for ref in refs:
                demographics[ref] = info
        else:
            observations.append((k, parsed))

    for k, obs in observations:
        status = str(obs.status)
        if status not in _KEEP | _FLAG:
            dropped[status] += 1
            continue
        subject = obs.subject.reference if obs.subject is not None else None
        if not subject:
            issue(k, "subject", "missing; expected a reference to the patient")
            continue
        stamp = _effective(obs, allow_partial_dates)
        if stamp is None:
            issue(
                k,
                "effective[x]",
                "expected effectiveDateTime, effectiveInstant or effectivePeriod.start with a "
                "time of day and an offset (partial dates are rejected by default)",
            )
            continue
        parts: list[tuple[str, Any, Any]] = []
        if obs.valueQuantity is not None or not obs.component:
            parts.append(("", obs.code, obs.valueQuantity))
        for j, comp in enumerate(obs.component or []):
            parts.append((f"component[{j}].", comp.code, comp.valueQuantity))
        for prefix, code, qty in parts:
            record = _record(k, prefix, code, qty, subject, stamp, status, issue)
            if record is not None:
                records.append(record)
    if issues:
        raise DatasetError(sorted(issues, key=lambda i: i.row or 0), _WHAT)  # in entry order
    if not records:
        raise DatasetError(
            [DatasetIssue(name, None, None, "no laboratory value to read in the bundle")], _WHAT
        )
    return LabHistory(name, tuple(records), dict(dropped), demographics)


def _record(
    k: int, prefix: str, code: Any, qty: Any, subject: str, stamp: datetime, status: str, issue
) -> LabRecord | None:
    """One value of an observation (or of one of its components), or None after an issue."""
    codes = [c.code for c in (code.coding or []) if c.system == LOINC and c.code] if code else []
    analyte = next((a for a in map(analyte_for_loinc, codes) if a is not None), None)
    if analyte is None:
        accepted = "; ".join(f"{a.key} {', '.join(a.loinc)}" for a in ANALYTES.values())
        issue(k, f"{prefix}code", f"no LOINC coding hemolab reads (accepted: {accepted})")
        return None
    if qty is None or qty.value is None:
        issue(k, f"{prefix}valueQuantity", "missing; expected a quantity with a UCUM code")
        return None
    if qty.system != UCUM or not qty.code:
        issue(
            k,
            f"{prefix}valueQuantity",
            f"expected system {UCUM} and a UCUM code (the display unit is not read)",
        )
        return None
    try:
        factor = analyte.factor(str(qty.code))
    except UnitError as exc:
        issue(k, f"{prefix}valueQuantity.code", str(exc))
        return None
    value = float(qty.value)
    if not math.isfinite(value) or value < 0:
        issue(k, f"{prefix}valueQuantity.value", "expected a number >= 0")
        return None
    comparator = str(qty.comparator) if qty.comparator is not None else None
    if comparator not in (None, "<", "<="):
        issue(
            k,
            f"{prefix}valueQuantity.comparator",
            "only '<' or '<=' (below the limit of quantification) can be read",
        )
        return None
    censored = comparator is not None
    return LabRecord(
        source_id=subject,
        analyte=analyte.key,
        observable=analyte.observable,
        value=math.nan if censored else value * factor,
        unit=analyte.unit,
        censored=censored,
        lloq=value * factor if censored else None,
        preliminary=status in _FLAG,
        time_h=None,
        stamp=stamp,
        specimen=None,
        row=k,
    )


def _effective(obs: Any, allow_partial: bool) -> datetime | None:
    """The observation's time (UTC), or None when missing or not precise enough."""
    value = obs.effectiveDateTime or obs.effectiveInstant
    if value is None and obs.effectivePeriod is not None:
        value = obs.effectivePeriod.start
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            return None
        try:
            return value.astimezone(UTC)
        except OverflowError:  # 0001-01-01T00:00+14:00 is before year 1 in UTC
            return None
    if allow_partial and isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if allow_partial and value is not None:
        try:
            parts = [int(x) for x in str(value).split("-")] + [1, 1]
            return datetime(parts[0], parts[1], parts[2], tzinfo=UTC)
        except ValueError:
            return None
    return None


def _demographics(patient: Any) -> Demographics:
    birth = patient.birthDate
    year = None
    if isinstance(birth, date):
        year = birth.year
    elif birth is not None:
        try:
            year = int(str(birth)[:4])
        except ValueError:
            year = None
    return Demographics(sex=str(patient.gender) if patient.gender else None, birth_year=year)


def _load(source: Any, file_name: str | None) -> tuple[Any, str]:
    if isinstance(source, dict):
        return source, file_name or "<bundle>"
    path = os.fspath(source)
    name = file_name or os.path.basename(path)
    issue = None
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh), name
    except FileNotFoundError:
        issue = "the file does not exist"
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        issue = f"not valid JSON ({type(exc).__name__} at position {getattr(exc, 'pos', '?')})"
    raise DatasetError([DatasetIssue(name, None, None, issue)], _WHAT)
