"""Patient records from CSV (DATA-FORMATS §B): ``patient_id`` and any of ``sex``, ``age`` (or
``birth_year``), ``weight_kg``, ``height_cm``, ``abo``, ``rhd``; one row per patient.

Every problem is collected and reported at once with the file, row and column, never a
cell's text (an identifier may sit in any column of a shifted row).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from hemolab._errors import DatasetError, DatasetIssue
from hemolab.patients._labs import Demographics

__all__ = ["read_patient_records"]

_COLUMNS = ("patient_id", "sex", "age", "birth_year", "weight_kg", "height_cm", "abo", "rhd")
_MISSING = frozenset({"", ".", "NA"})
_SEX = {"f": "female", "female": "female", "m": "male", "male": "male", "other": "other",
        "unknown": "unknown"}  # fmt: skip
_RHD = {"POS": "POS", "+": "POS", "POSITIVE": "POS", "NEG": "NEG", "-": "NEG", "NEGATIVE": "NEG"}
_WHAT = "patient record"


def read_patient_records(path: str | os.PathLike[str]) -> dict[str, Demographics]:
    """Read a CSV of patient records; ``source id → Demographics``.

    Raises :class:`~hemolab.DatasetError` listing every problem: a missing ``patient_id``
    column or cell, an unknown column, a patient listed twice, a value out of range (age
    0-130, weight 0.3-400 kg, height 20-260 cm), an ABO group other than O, A, B, AB or an
    RhD other than POS/NEG (+/-).
    """
    import pandas as pd

    p = Path(path)
    name = p.name
    if not p.is_file():
        raise DatasetError([DatasetIssue(name, None, None, "the file does not exist")], _WHAT)
    try:
        frame = pd.read_csv(p, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        reason = type(exc).__name__
        raise DatasetError(
            [DatasetIssue(name, None, None, f"not a readable CSV file ({reason})")], _WHAT
        ) from None
    issues: list[DatasetIssue] = []
    cols = {c.strip().lower(): c for c in frame.columns}
    unknown = sorted(set(cols) - set(_COLUMNS))
    for c in unknown:
        issues.append(
            DatasetIssue(name, None, cols[c], f"unknown column; expected {', '.join(_COLUMNS)}")
        )
    if "patient_id" not in cols:
        issues.append(DatasetIssue(name, None, "patient_id", "the file has no patient_id column"))
        raise DatasetError(issues, _WHAT)
    out: dict[str, Demographics] = {}
    for i in range(len(frame)):
        row = i + 1

        def cell(col: str, _i: int = i) -> str | None:
            if col not in cols:
                return None
            text = str(frame.iloc[_i][cols[col]]).strip()
            return None if text in _MISSING else text

        def number(col: str, low: float, high: float, _row: int = row) -> float | None:
            text = cell(col)
            if text is None:
                return None
            try:
                x = float(text)
            except ValueError:
                issues.append(DatasetIssue(name, _row, cols[col], "not a number"))
                return None
            if not (math.isfinite(x) and low <= x <= high):
                issues.append(
                    DatasetIssue(name, _row, cols[col], f"{x:g} is outside {low:g}-{high:g}")
                )
                return None
            return x

        pid = cell("patient_id")
        if pid is None:
            issues.append(DatasetIssue(name, row, cols["patient_id"], "patient_id is missing"))
            continue
        if pid in out:
            issues.append(
                DatasetIssue(name, row, cols["patient_id"], "this patient is already listed")
            )
            continue
        fields: dict[str, Any] = {}
        sex = cell("sex")
        if sex is not None:
            if sex.lower() not in _SEX:
                issues.append(
                    DatasetIssue(name, row, cols["sex"], "expected female, male, other, unknown")
                )
            else:
                fields["sex"] = _SEX[sex.lower()]
        fields["age"] = number("age", 0, 130)
        year = number("birth_year", 1870, 2200)
        fields["birth_year"] = None if year is None else int(year)
        fields["weight_kg"] = number("weight_kg", 0.3, 400)
        fields["height_cm"] = number("height_cm", 20, 260)
        abo = cell("abo")
        if abo is not None:
            if abo.upper() not in ("O", "A", "B", "AB"):
                issues.append(DatasetIssue(name, row, cols["abo"], "expected O, A, B or AB"))
            else:
                fields["abo"] = abo.upper()
        rhd = cell("rhd")
        if rhd is not None:
            if rhd.upper() not in _RHD:
                issues.append(DatasetIssue(name, row, cols["rhd"], "expected POS or NEG (+, -)"))
            else:
                fields["rhd"] = _RHD[rhd.upper()]
        out[pid] = Demographics(**fields)
    if issues:
        raise DatasetError(issues, _WHAT)
    return out
