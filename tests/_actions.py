"""Build small action tables by hand (the solver's contract) for engine tests."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hemolab.events._ops import OP_OUTPUT
from hemolab.solve import ActionTable


def table(
    grid: Sequence[float], events: Sequence[tuple[float, int, int, float]] = (), post=True
) -> ActionTable:
    """Outputs at ``grid`` (after events at equal times) and ``(time, op, target, value)``."""
    rows = [(t, op, tgt, v, 1, k) for k, (t, op, tgt, v) in enumerate(events)]
    rows += [(float(t), OP_OUTPUT, i, 0.0, 2 if post else 0, i) for i, t in enumerate(grid)]
    rows.sort(key=lambda r: (r[0], r[4], r[5]))
    arr = np.array([r[:4] for r in rows], dtype=np.float64)
    return ActionTable(
        time=arr[None, :, 0],
        op=arr[None, :, 1].astype(np.int32),
        target=arr[None, :, 2].astype(np.int32),
        value=arr[None, :, 3],
        n_outputs=len(grid),
    )
