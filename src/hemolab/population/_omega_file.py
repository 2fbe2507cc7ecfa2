"""Reading a user's omega (IIV covariance) from a file: ``hemolab simulate --omega FILE``.

Two formats, both naming the parameters so that a matrix cannot be applied to the wrong ones:

* CSV, a square matrix with the parameter names as header and first column (NONMEM's
  ``$OMEGA BLOCK`` as a table)::

      ,MTT,Slope
      MTT,0.019,0.01
      Slope,0.01,0.128

* JSON, either ``{"MTT": 0.019, "Slope": 0.128}`` (variances, independent etas) or
  ``{"parameters": ["MTT", "Slope"], "omega": [[0.019, 0.01], [0.01, 0.128]]}``.

Values are variances and covariances of η (ω², log scale), not CVs.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

from hemolab._errors import HemolabError, ModelError
from hemolab.model._variability import Variability

__all__ = ["read_omega"]


def read_omega(path: str | os.PathLike[str]) -> Variability:
    """The :class:`~hemolab.model.Variability` in ``path`` (CSV or JSON, see module doc)."""
    p = Path(path)
    if not p.is_file():
        raise HemolabError(f"omega file {str(p)!r} does not exist")
    try:
        if p.suffix.lower() == ".json":
            var = _from_json(p)
        elif p.suffix.lower() in (".csv", ".txt"):
            var = _from_csv(p)
        else:
            raise HemolabError(f"omega file {str(p)!r}: expected .csv or .json")
    except ModelError as exc:
        raise HemolabError(f"omega file {str(p)!r}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise HemolabError(f"omega file {str(p)!r}: not UTF-8 text (byte {exc.start})") from None
    return var


def _number(p: Path, where: str, text: object) -> float:
    try:
        x = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):  # OverflowError: a JSON int beyond 1e308
        raise HemolabError(f"omega file {str(p)!r}, {where}: {text!r} is not a number") from None
    if not math.isfinite(x):
        raise HemolabError(f"omega file {str(p)!r}, {where}: {text!r} is not finite")
    return x


def _from_json(p: Path) -> Variability:
    try:
        doc = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise HemolabError(
            f"omega file {str(p)!r}: invalid JSON ({exc.msg}, line {exc.lineno})"
        ) from None
    if isinstance(doc, dict) and "omega" in doc:
        names = doc.get("parameters")
        rows = doc["omega"]
        if not isinstance(names, list) or not isinstance(rows, list):
            raise HemolabError(
                f"omega file {str(p)!r}: 'parameters' must be a list of names and 'omega' a "
                "list of rows"
            )
        matrix = [
            [_number(p, f"omega[{i}][{j}]", x) for j, x in enumerate(row)]
            for i, row in enumerate(rows)
            if isinstance(row, list) or _bad_row(p, i)
        ]
        return Variability(tuple(str(n) for n in names), tuple(map(tuple, matrix)), str(p))
    if isinstance(doc, dict) and doc:
        return Variability.diagonal(
            {str(k): _number(p, f"key {k!r}", v) for k, v in doc.items()}, str(p)
        )
    raise HemolabError(
        f"omega file {str(p)!r}: expected an object of variances or "
        '{"parameters": [...], "omega": [[...]]}'
    )


def _bad_row(p: Path, i: int) -> bool:
    raise HemolabError(f"omega file {str(p)!r}: omega row {i} is not a list")


def _from_csv(p: Path) -> Variability:
    with p.open(newline="") as fh:
        rows = [r for r in csv.reader(fh) if any(c.strip() for c in r)]
    if len(rows) < 2:
        raise HemolabError(f"omega file {str(p)!r}: expected a header row and one row per name")
    names = [c.strip() for c in rows[0][1:]]
    if not names or any(not n for n in names):
        raise HemolabError(f"omega file {str(p)!r}, row 1: the header must name every column")
    if len(rows) - 1 != len(names):
        raise HemolabError(
            f"omega file {str(p)!r}: {len(names)} columns but {len(rows) - 1} rows; the matrix "
            "must be square"
        )
    matrix = []
    for i, row in enumerate(rows[1:], start=2):
        if row[0].strip() != names[i - 2]:
            raise HemolabError(
                f"omega file {str(p)!r}, row {i}: first column {row[0].strip()!r} should be "
                f"{names[i - 2]!r} (rows in the header's order)"
            )
        if len(row) - 1 != len(names):
            raise HemolabError(
                f"omega file {str(p)!r}, row {i}: {len(row) - 1} values, expected {len(names)}"
            )
        matrix.append(
            tuple(_number(p, f"row {i}, column {names[j]}", x) for j, x in enumerate(row[1:]))
        )
    return Variability(tuple(names), tuple(matrix), str(p))
