"""Per-patient solve status: one enum shared by the engine and the result table (§C)."""

from __future__ import annotations

import enum

__all__ = ["Status"]


class Status(enum.IntEnum):
    """Outcome of one patient's solve. ``RUNNING`` never reaches a result."""

    RUNNING = -1
    OK = 0
    MAX_STEPS = 1
    STEP_TOO_SMALL = 2
    NONFINITE = 3
    HISTORY_OVERFLOW = 4
    DONOR_FAILED = 5
    CENSORED = 6

    @property
    def label(self) -> str:
        """The name used in result tables (DATA-FORMATS §C), e.g. ``max_steps``."""
        return self.name.lower()
