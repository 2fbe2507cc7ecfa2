"""Time to threshold over forecast draws, and CTCAE v5.0 grades, against hand-built cases.

Trajectories are straight lines, so the linear interpolation between grid points finds
their crossings exactly: Hb = 12 - s·t crosses 7 g/dL at t = 5/s.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from hemolab import HemolabError
from hemolab.forecast import (
    CTCAE_VERSION,
    Threshold,
    ctcae_grades,
    first_crossing,
    time_to_threshold,
)

HB7 = Threshold.parse("Hb<7")


def test_thresholds_parse_or_say_what_is_expected() -> None:
    assert Threshold.parse("Hb<7") == Threshold("Hb", "<", 7.0)
    assert Threshold.parse(" ANC <= 0.5 ") == Threshold("ANC", "<=", 0.5)
    assert str(Threshold.parse("PLT>4.5e2")) == "PLT>450"
    for bad in ("Hb=7", "7<Hb", "Hb<abc", "Hb<1.2.3", ""):
        with pytest.raises(HemolabError, match="threshold"):
            Threshold.parse(bad)


def test_first_crossing_interpolates_and_handles_start_never_and_failed() -> None:
    t = np.arange(0.0, 101.0, 10.0)
    line = 12.0 - 0.1 * t  # crosses 7 at t = 50
    rows = np.stack([line, 12.0 + 0 * t, np.where(t > 20, np.nan, line), 12.0 - 0.08 * t])
    got = first_crossing(t, rows, HB7)
    assert got[0] == pytest.approx(50.0) and math.isinf(got[1]) and math.isnan(got[2])
    assert got[3] == pytest.approx(62.5)
    assert first_crossing(t, line, HB7, start=55.0)[0] == 55.0  # already below: crosses there
    assert first_crossing(t, line, HB7, start=45.0)[0] == pytest.approx(50.0)  # start off-grid
    assert first_crossing(t, 2 + 0.1 * t, Threshold.parse("Hb>=7"))[0] == pytest.approx(50.0)
    with pytest.raises(HemolabError, match="strictly increasing"):
        first_crossing(t[::-1], line, HB7)
    with pytest.raises(HemolabError, match="do not match"):
        first_crossing(t, line[:-1], HB7)


def test_time_to_threshold_quantiles_and_probability() -> None:
    t = np.arange(0.0, 400.5, 0.5)
    crossings = np.linspace(10.0, 200.0, 100)  # draw d crosses at crossings[d]
    values = 12.0 - (5.0 / crossings)[:, None] * t[None, :]
    tt = time_to_threshold(t, values, HB7, start=0.0, horizon=100.0)
    # inverted-CDF quantiles of 100 draws: the 50th, 5th and 95th smallest
    assert tt.median == pytest.approx(crossings[49], rel=1e-9)
    assert tt.lower == pytest.approx(crossings[4], rel=1e-9)
    assert tt.upper == pytest.approx(crossings[94], rel=1e-9)
    assert tt.p_within_horizon == np.mean(crossings <= 100.0)
    assert tt.n_draws == 100 and tt.n_failed == 0 and tt.level == 0.9
    # half the draws never cross: the median and upper bound are not reached
    flat = np.concatenate([values[:40], np.full((60, t.size), 12.0)])
    tt = time_to_threshold(t, flat, HB7, start=0.0, horizon=100.0)
    assert tt.median is None and tt.upper is None and tt.lower == pytest.approx(crossings[4])
    with pytest.raises(HemolabError, match="before start \\+ horizon"):
        time_to_threshold(t, values, HB7, start=350.0, horizon=100.0)
    with pytest.raises(HemolabError, match="no draw could be computed"):
        time_to_threshold(t, np.full((3, t.size), np.nan), HB7, start=0.0, horizon=10.0)


def test_ctcae_v5_grades() -> None:
    assert CTCAE_VERSION == "5.0"
    anc = [2.0, 1.7, 1.2, 0.7, 0.3, float("nan"), 1.5, 0.5]
    assert ctcae_grades("ANC", np.array(anc)).tolist() == [0, 1, 2, 3, 4, -1, 1, 3]
    assert ctcae_grades("PLT", np.array([150, 75, 74.9, 30, 10])).tolist() == [0, 1, 2, 3, 4]
    assert ctcae_grades("Hb", np.array([12.5, 11, 9, 7]), sex="female").tolist() == [0, 1, 2, 3]
    assert ctcae_grades("Hb", np.array([13.0]), sex="male").tolist() == [1]
    assert ctcae_grades("ANC", np.array([1.7]), lln=1.5).tolist() == [0]
    with pytest.raises(HemolabError, match="needs the lower limit of normal"):
        ctcae_grades("Hb", np.array([9.0]))
    with pytest.raises(HemolabError, match=r"no CTCAE v5\.0 grade for 'Retic'"):
        ctcae_grades("Retic", np.array([9.0]))
