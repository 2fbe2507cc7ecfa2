"""Regimens as values: courses, series with escalation and de-escalation, appended regimens,
and the event dataset they become (the same solution as the rows written by hand)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import hemolab as hl
from hemolab.events import RegimenError


def test_a_series_escalates_deescalates_and_caps() -> None:
    up = hl.Regimen.series(
        100.0, n_courses=4, course_every=21.0, factor=1.25, max_amount=180.0, time_unit="d"
    )
    assert [c.amount for c in up.courses] == [100.0, 125.0, 156.25, 180.0]
    assert [c.start for c in up.courses] == [0.0, 21.0, 42.0, 63.0] and up.end == 63.0
    down = hl.Regimen.series(
        [150.0, 120.0, 90.0], course_every=14.0, doses_per_course=3, dose_every=1.0, time_unit="d"
    )
    assert down.dose_times()[:4] == [(0.0, 150.0), (1.0, 150.0), (2.0, 150.0), (14.0, 120.0)]
    assert down.total() == pytest.approx(3 * (150 + 120 + 90))
    both = up.then(down, gap=28.0)
    assert both.courses[4].start == 63.0 + 28.0 and len(both.courses) == 7
    assert both.end == 91.0 + 28.0 + 2.0


def test_the_dataset_of_a_regimen_gives_the_hand_written_solution(one_cmt: hl.Model) -> None:
    regimen = hl.Regimen(
        [
            hl.Course(100.0, start=0.0, n_doses=3, interval=12.0, cmt="central"),
            hl.Course(50.0, start=48.0, n_doses=2, interval=24.0, cmt="central", duration=2.0),
        ],
        time_unit="h",
    )
    by_hand = pd.DataFrame(
        {
            "ID": [1] * 5,
            "TIME": [0.0, 12.0, 24.0, 48.0, 72.0],
            "EVID": [1] * 5,
            "AMT": [100.0, 100.0, 100.0, 50.0, 50.0],
            "CMT": ["central"] * 5,
            "DUR": [np.nan, np.nan, np.nan, 2.0, 2.0],
        }
    )
    grid = np.linspace(0.0, 96.0, 97)
    a = hl.simulate(one_cmt, regimen.to_dataset(), grid=grid, rtol=1e-10, atol=1e-12)
    b = hl.simulate(one_cmt, by_hand, grid=grid, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(a.variable("Cc"), b.variable("Cc"), rtol=1e-9, atol=1e-12)
    assert a.variable("Cc")[0, 13] > a.variable("Cc")[0, 11]  # the second dose arrived
    frame = regimen.to_dataset(7, covariates={"WT": 82.0})
    assert list(frame["ADDL"]) == [2, 1] and list(frame["II"]) == [12.0, 24.0]
    assert set(frame["ID"]) == {7} and set(frame["WT"]) == {82.0}


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: hl.Regimen([]), "no courses"),
        (lambda: hl.Regimen([hl.Course(-5.0)]), "course 1: amount must be > 0, got -5"),
        (lambda: hl.Regimen([hl.Course(5.0, n_doses=3)]), "course 1: 3 doses need an interval"),
        (
            lambda: hl.Regimen([hl.Course(5.0, n_doses=2, interval=1.0, duration=2.0)]),
            "infusions of 2 overlap at an interval of 1",
        ),
        (
            lambda: hl.Regimen([hl.Course(5.0, start=10.0), hl.Course(5.0, start=0.0)]),
            "course 2 starts at 0, before course 1",
        ),
        (
            lambda: hl.Regimen(
                [hl.Course(5.0, n_doses=4, interval=7.0), hl.Course(5.0, start=14.0)], time_unit="d"
            ),
            "course 2 starts at 14 d, but course 1 doses until 21",
        ),
        (lambda: hl.Regimen.series(10.0, n_courses=0, course_every=7.0), "n_courses >= 1"),
        (
            lambda: hl.Regimen.series([1.0, 2.0], n_courses=3, course_every=7.0),
            "2 amounts for n_courses=3",
        ),
        (
            lambda: hl.Regimen.series(10.0, n_courses=2, course_every=7.0).then(
                hl.Regimen.series(10.0, n_courses=2, course_every=7.0, time_unit="d"), gap=1.0
            ),
            "cannot append a regimen in d to one in h",
        ),
    ],
)
def test_regimens_that_cannot_be_given_are_refused(build, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RegimenError, match=message):
        build()
