"""Property tests: random regimens of a linear model against closed-form superposition.

For ``x' = -k·x`` (k = 0.2 h⁻¹) the amount at time t is the sum over doses of

    bolus a at t_d:                    a·e^{-k(t−t_d)}                         (t > t_d)
    zero-order rate R over D from t_s: R/k·(1 − e^{-k·min(t−t_s, D)})·e^{-k·max(t−t_s−D, 0)}

An observation tied with a dose reports the pre-dose value (DATA-FORMATS §A), so only doses
strictly before t count. Solver rtol 1e-10 / atol 1e-12; the assertions are 1e-7 relative
(exact zeros before the first dose).

Shapes are bounded so that every example runs in the same compiled bucket: at most 6 boluses,
2 infusions (2 actions each) and 5 observations (≤ 15 actions → 16; ≤ 8 output slots), and
at most 4 subjects per dataset (one call of 4 lanes).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from hypothesis import given, settings, strategies as st

import hemolab as hl

K = 0.2  # h⁻¹
MODEL = hl.Model(
    "linear_decay",
    time_unit="h",
    states=[hl.State("x", "-k*x", unit="mg")],
    parameters=[hl.Parameter("k", K, unit="h-1")],
)
SOLVER = {"rtol": 1e-10, "atol": 1e-12}
RTOL = 1e-7
SETTINGS = settings(max_examples=80, deadline=None, derandomize=True, database=None)

LATTICE = 0.25  # h
dose_times = st.integers(0, 48 * 4).map(lambda i: i * LATTICE)  # [0, 48] h
obs_times = st.integers(0, 60 * 4).map(lambda i: i * LATTICE)  # past the last dose too
amounts = st.floats(0.1, 100.0, allow_nan=False, allow_infinity=False)


@dataclass(frozen=True)
class Dose:
    time: float
    amt: float
    rate: float = 0.0  # > 0: the RATE column (duration AMT/RATE)
    dur: float = 0.0  # > 0: the DUR column (rate AMT/DUR)

    @property
    def row(self) -> dict[str, object]:
        row: dict[str, object] = {"TIME": self.time, "EVID": 1, "AMT": self.amt}
        if self.rate:
            row["RATE"] = self.rate
        if self.dur:
            row["DUR"] = self.dur
        return row

    def amount_at(self, t: float) -> float:
        """This dose's contribution at ``t``, pre-dose at ``t == time``."""
        if t <= self.time:
            return 0.0
        if not self.rate and not self.dur:
            return self.amt * math.exp(-K * (t - self.time))
        length = self.amt / self.rate if self.rate else self.dur
        rate = self.rate or self.amt / self.dur
        running = min(t - self.time, length)
        after = max(t - self.time - length, 0.0)
        return rate / K * -math.expm1(-K * running) * math.exp(-K * after)


@dataclass(frozen=True)
class Regimen:
    doses: tuple[Dose, ...]
    observations: tuple[float, ...]
    order: tuple[int, ...]  # tie-breaking key per row (doses first, then observations)

    def rows(self, subject: object = 1) -> list[dict[str, object]]:
        """Rows sorted by time; rows at equal times in the order given by ``order``."""
        rows = [d.row for d in self.doses] + [
            {"TIME": t, "EVID": 0, "AMT": 0} for t in self.observations
        ]
        keyed = sorted(zip(rows, self.order, strict=True), key=lambda r: (r[0]["TIME"], r[1]))
        return [{"ID": subject, **row} for row, _ in keyed]

    def expected(self) -> np.ndarray:
        """Closed-form amounts at the sorted observation times."""
        times = sorted(self.observations)
        return np.array([sum(d.amount_at(t) for d in self.doses) for t in times])


@st.composite
def regimens(draw: st.DrawFn, *, times: st.SearchStrategy[float] = dose_times) -> Regimen:
    boluses = draw(st.lists(st.builds(Dose, times, amounts), min_size=1, max_size=6))
    infusions = draw(
        st.lists(
            st.one_of(
                st.builds(Dose, times, amounts, rate=st.floats(0.5, 50.0)),
                st.builds(Dose, times, amounts, dur=st.integers(1, 96).map(lambda i: i * LATTICE)),
            ),
            max_size=2,
        )
    )
    doses = tuple(boluses + infusions)
    # observations anywhere on the lattice, or tied with a dose
    obs = st.one_of(obs_times, st.sampled_from([d.time for d in doses]))
    observations = tuple(draw(st.lists(obs, min_size=1, max_size=5)))
    n = len(doses) + len(observations)
    order = tuple(draw(st.permutations(range(n))))
    return Regimen(doses, observations, order)


def dataset(rows: list[dict[str, object]]) -> pd.DataFrame:
    """Rows as text, as read from a CSV; absent cells are missing ('.')."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    return pd.DataFrame([[str(row.get(c, ".")) for c in columns] for row in rows], columns=columns)


def simulate(rows: list[dict[str, object]]) -> hl.Results:
    with warnings.catch_warnings():
        # ties of observations and doses warn which rule applied (pre-dose); expected here
        warnings.simplefilter("ignore", hl.HemolabWarning)
        res = hl.simulate(MODEL, dataset(rows), **SOLVER)
    assert res.status_labels == ["ok"] * res.n_patients
    return res


def outputs(res: hl.Results, i: int = 0) -> tuple[np.ndarray, np.ndarray]:
    keep = ~np.isnan(res.time[i])
    return res.time[i][keep], res.variable("x")[i][keep]


def assert_closed_form(x: np.ndarray, regimen: Regimen) -> None:
    expected = regimen.expected()
    zero = expected == 0.0  # nothing dosed strictly before: exactly the initial state
    np.testing.assert_array_equal(x[zero], 0.0)
    np.testing.assert_allclose(x[~zero], expected[~zero], rtol=RTOL, atol=0.0)


@SETTINGS
@given(regimens())
def test_observations_equal_closed_form_superposition(regimen: Regimen) -> None:
    res = simulate(regimen.rows())
    t, x = outputs(res)
    np.testing.assert_array_equal(t, sorted(regimen.observations))
    assert res.is_observation[0][: len(t)].all()
    assert_closed_form(x, regimen)


@SETTINGS
@given(
    # few distinct times, so that doses (and observations) often share one
    regimen=regimens(times=st.sampled_from([0.0, 6.0, 12.0])),
    reorder=st.randoms(use_true_random=False),
)
def test_row_order_of_simultaneous_doses_does_not_matter(regimen: Regimen, reorder) -> None:
    shuffled = list(regimen.order)
    reorder.shuffle(shuffled)
    other = Regimen(regimen.doses, regimen.observations, tuple(shuffled))
    t1, x1 = outputs(simulate(regimen.rows()))
    t2, x2 = outputs(simulate(other.rows()))
    np.testing.assert_array_equal(t1, t2)
    # boluses at one time may be added in another order: equal up to rounding of the sum
    np.testing.assert_allclose(x1, x2, rtol=1e-12, atol=0.0)
    assert_closed_form(x1, regimen)


@SETTINGS
@given(
    regimen=regimens(),
    others=st.lists(regimens(), min_size=1, max_size=3),
    position=st.integers(0, 3),
)
def test_subject_values_do_not_depend_on_other_subjects(
    regimen: Regimen, others: list[Regimen], position: int
) -> None:
    alone = simulate(regimen.rows("target"))
    position = min(position, len(others))
    subjects = [*others[:position], regimen, *others[position:]]
    rows = [row for j, r in enumerate(subjects) for row in r.rows(f"S{j}")]
    together = simulate(rows)
    assert together.n_patients == len(subjects)
    t1, x1 = outputs(alone)
    t2, x2 = outputs(together, position)
    np.testing.assert_array_equal(t1, t2)
    np.testing.assert_array_equal(x1, x2)  # bitwise: each patient's arithmetic is its own
