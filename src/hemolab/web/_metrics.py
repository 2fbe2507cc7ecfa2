"""Summary numbers of an experiment's result tables, for the side-by-side comparison: per
variable the minimum and maximum of a long result table (DATA-FORMATS §C), or the median of
each numeric column (and the share of true values of each boolean one) of a per-patient
table such as a protocol's outcomes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["result_metrics"]

MAX_BYTES = 256 * 1024 * 1024
MAX_METRICS = 60


def result_metrics(path: Path) -> dict[str, Any]:
    """``name -> number`` (rounded to 6 significant digits) of one Parquet result."""
    import numpy as np
    import pyarrow.parquet as pq

    if not path.is_file() or path.stat().st_size > MAX_BYTES:
        return {}
    table = pq.read_table(path)
    out: dict[str, Any] = {"rows": table.num_rows}
    names = table.column_names
    if "variable" in names and "value" in names:
        variables = np.asarray(table.column("variable").to_pylist(), dtype=object)
        values = table.column("value").to_numpy(zero_copy_only=False).astype(float)
        for var in sorted({str(v) for v in variables}):
            sel = values[variables == var]
            sel = sel[np.isfinite(sel)]
            if sel.size:
                out[f"{var} min"] = _round(sel.min())
                out[f"{var} max"] = _round(sel.max())
    else:
        for name in names:
            column = table.column(name)
            kind = str(column.type)
            if kind == "bool":
                data = np.asarray(column.to_pylist(), dtype=float)
                out[f"{name} (share true)"] = _round(np.nanmean(data)) if data.size else None
            elif kind.startswith(("double", "float", "int", "uint")):
                data = column.to_numpy(zero_copy_only=False).astype(float)
                data = data[np.isfinite(data)]
                if data.size:
                    out[f"{name} (median)"] = _round(np.median(data))
    return dict(list(out.items())[:MAX_METRICS])


def _round(x: Any) -> float:
    return float(f"{float(x):.6g}")
