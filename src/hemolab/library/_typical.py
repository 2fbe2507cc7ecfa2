"""A library model's typical regimen: what ``hemolab demo`` runs for it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["TypicalRun"]


@dataclass(frozen=True)
class TypicalRun:
    """One run of a model under the regimen of its paper.

    Attributes
    ----------
    description
        The regimen in words (``"romiplostim 10 µg/kg IV, single dose"``).
    events
        Returns the event dataset (DATA-FORMATS §A) as a DataFrame, or ``None`` for an
        untreated run from the initial state.
    t_end, dt
        Output grid in the model's time unit.
    observable
        The clinical observable to summarise (nadir, peak, final value).
    params
        Parameter values that differ from the typical ones for this run.
    log_scale
        Plot the observable on a log axis (e.g. a BCR-ABL ratio falling by decades).
    """

    description: str
    events: Callable[[], pd.DataFrame | None]
    t_end: float
    dt: float
    observable: str
    params: dict[str, float] | None = None
    log_scale: bool = False
