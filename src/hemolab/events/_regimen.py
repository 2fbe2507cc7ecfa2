"""Regimens as values: courses of a drug, series of courses with escalation or de-escalation,
turned into the NONMEM-style event dataset every hemolab run reads (DATA-FORMATS §A).

A :class:`Course` is ``n_doses`` doses of one amount every ``interval``, from ``start``; it
becomes one dataset row with ``II``/``ADDL``. A :class:`Regimen` is courses in time order
(one drug, one dosing compartment each), built directly, as a :meth:`Regimen.series` ("several
series of the drug": every course ``factor`` times the previous one, or listed amounts), or
by appending regimens (``a.then(b, gap=...)``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from hemolab._errors import HemolabError

__all__ = ["Course", "Regimen", "RegimenError"]


class RegimenError(HemolabError, ValueError):
    """A regimen that cannot be given as declared; the message names the course."""


@dataclass(frozen=True)
class Course:
    """``n_doses`` doses of ``amount`` (in ``unit``; default: the dosed state's unit) every
    ``interval`` from ``start``, into compartment ``cmt`` (1-based index or state name), as a
    bolus or, with ``duration``, an infusion. Times in the regimen's time unit."""

    amount: float
    start: float = 0.0
    n_doses: int = 1
    interval: float = 0.0
    cmt: int | str = 1
    unit: str | None = None
    duration: float | None = None

    @property
    def last_dose(self) -> float:
        return self.start + (self.n_doses - 1) * self.interval

    @property
    def total(self) -> float:
        return self.amount * self.n_doses

    def times(self) -> list[float]:
        return [self.start + k * self.interval for k in range(self.n_doses)]

    def _check(self, where: str) -> None:
        def bad(why: str) -> RegimenError:
            return RegimenError(f"{where}: {why}")

        if not (isinstance(self.amount, (int, float)) and math.isfinite(self.amount)):
            raise bad(f"amount must be a finite number, got {self.amount!r}")
        if self.amount <= 0:
            raise bad(f"amount must be > 0, got {self.amount:g}")
        if not math.isfinite(self.start) or self.start < 0:
            raise bad(f"start must be a finite time >= 0, got {self.start!r}")
        if not isinstance(self.n_doses, int) or isinstance(self.n_doses, bool) or self.n_doses < 1:
            raise bad(f"n_doses must be an integer >= 1, got {self.n_doses!r}")
        if self.n_doses > 1 and not (math.isfinite(self.interval) and self.interval > 0):
            raise bad(f"{self.n_doses} doses need an interval > 0, got {self.interval!r}")
        if self.duration is not None and not (math.isfinite(self.duration) and self.duration > 0):
            raise bad(
                f"duration must be > 0 (an infusion) or None (a bolus), got {self.duration!r}"
            )
        if self.duration is not None and self.n_doses > 1 and self.duration > self.interval:
            raise bad(f"infusions of {self.duration:g} overlap at an interval of {self.interval:g}")


@dataclass(frozen=True)
class Regimen:
    """Courses in time order; ``time_unit`` is the unit of every time (``"h"``, ``"d"``).

    Examples
    --------
    >>> from hemolab.events import Regimen
    >>> r = Regimen.series(100.0, n_courses=3, course_every=21.0, factor=1.25, time_unit="d",
    ...                    unit="mg/m2", cmt="A1", duration=1 / 24)
    >>> [c.amount for c in r.courses]
    [100.0, 125.0, 156.25]
    >>> r.to_dataset(covariates={"BSA": 1.8})[["TIME", "AMT", "II", "ADDL"]].values.tolist()
    [[0.0, 100.0, 0.0, 0.0], [21.0, 125.0, 0.0, 0.0], [42.0, 156.25, 0.0, 0.0]]
    """

    courses: Sequence[Course]
    time_unit: str = "h"
    name: str = ""

    def __post_init__(self) -> None:
        courses = tuple(self.courses)
        if not courses:
            raise RegimenError(f"regimen {self.name or ''!r}: no courses")
        for k, c in enumerate(courses):
            c._check(f"course {k + 1}")
            if k and c.start < courses[k - 1].start:
                raise RegimenError(
                    f"course {k + 1} starts at {c.start:g}, before course {k} "
                    f"({courses[k - 1].start:g}): list courses in time order"
                )
            if k and c.cmt == courses[k - 1].cmt and c.start <= courses[k - 1].last_dose:
                raise RegimenError(
                    f"course {k + 1} starts at {c.start:g} {self.time_unit}, but course {k} "
                    f"doses until {courses[k - 1].last_dose:g}: courses into one compartment "
                    "must not overlap"
                )
        object.__setattr__(self, "courses", courses)

    @classmethod
    def series(
        cls,
        amount: float | Sequence[float],
        *,
        n_courses: int | None = None,
        course_every: float,
        factor: float = 1.0,
        max_amount: float | None = None,
        doses_per_course: int = 1,
        dose_every: float = 0.0,
        start: float = 0.0,
        cmt: int | str = 1,
        unit: str | None = None,
        duration: float | None = None,
        time_unit: str = "h",
        name: str = "",
    ) -> Regimen:
        """Courses every ``course_every`` from ``start``: the first of ``amount`` and each next
        ``factor`` times the previous (escalation > 1, de-escalation < 1, capped at
        ``max_amount``), or the listed amounts, one per course."""
        if isinstance(amount, (int, float)):
            if n_courses is None or n_courses < 1:
                raise RegimenError(f"a series needs n_courses >= 1, got {n_courses!r}")
            if not (math.isfinite(factor) and factor > 0):
                raise RegimenError(f"factor must be a number > 0, got {factor!r}")
            amounts = [amount * factor**k for k in range(n_courses)]
        else:
            amounts = [float(a) for a in amount]
            if n_courses is not None and n_courses != len(amounts):
                raise RegimenError(f"{len(amounts)} amounts for n_courses={n_courses}")
            if factor != 1.0:
                raise RegimenError("give listed amounts or a factor, not both")
        if max_amount is not None:
            amounts = [min(a, max_amount) for a in amounts]
        if not (math.isfinite(course_every) and course_every > 0):
            raise RegimenError(f"course_every must be > 0, got {course_every!r}")
        courses = [
            Course(a, start + k * course_every, doses_per_course, dose_every, cmt, unit, duration)
            for k, a in enumerate(amounts)
        ]
        return cls(courses, time_unit, name)

    def then(self, other: Regimen, *, gap: float = 0.0) -> Regimen:
        """This regimen, then ``other`` shifted to start ``gap`` after this one's last dose
        (``other``'s own start offsets kept)."""
        if other.time_unit != self.time_unit:
            raise RegimenError(
                f"cannot append a regimen in {other.time_unit} to one in {self.time_unit}"
            )
        if not (math.isfinite(gap) and gap > 0):
            raise RegimenError(f"gap must be > 0, got {gap!r}")
        shift = self.end + gap
        moved = [replace(c, start=c.start + shift) for c in other.courses]
        return Regimen((*self.courses, *moved), self.time_unit, self.name or other.name)

    @property
    def end(self) -> float:
        """The time of the last dose."""
        return max(c.last_dose for c in self.courses)

    def total(self) -> float:
        """The sum of every dose (in the courses' units)."""
        return sum(c.total for c in self.courses)

    def dose_times(self) -> list[tuple[float, float]]:
        """Every dose as ``(time, amount)``, in time order."""
        return sorted((t, c.amount) for c in self.courses for t in c.times())

    def to_dataset(
        self, subject: str | int = 1, *, covariates: Mapping[str, float] | None = None
    ) -> Any:
        """The event dataset (pandas, DATA-FORMATS §A): one ``EVID=1`` row per course with
        ``II``/``ADDL``, ``DUR`` for infusions, ``AMT_UNIT`` where given, and ``covariates``
        as constant columns."""
        import pandas as pd

        rows = []
        for c in self.courses:
            row: dict[str, Any] = {
                "ID": subject,
                "TIME": float(c.start),
                "EVID": 1,
                "AMT": float(c.amount),
                "CMT": c.cmt,
                "II": float(c.interval if c.n_doses > 1 else 0.0),
                "ADDL": int(c.n_doses - 1),
            }
            if any(x.duration is not None for x in self.courses):
                row["DUR"] = float(c.duration) if c.duration is not None else math.nan
            if any(x.unit is not None for x in self.courses):
                row["AMT_UNIT"] = c.unit
            rows.append(row)
        frame = pd.DataFrame(rows)
        for k, v in (covariates or {}).items():
            frame[k] = float(v)
        return frame
