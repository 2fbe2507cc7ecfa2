"""Colijn & Mackey 2005 (Part II file) against MODELS.md §5 and an independent SciPy solve."""

from __future__ import annotations

import bisect
import itertools

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.optimize import fsolve
from scipy.signal import find_peaks

import hemolab as hl
from hemolab.library._colijn_mackey import CITATION, colijn_mackey, typical_run

# myelo colijnPars05b (MODELS.md §5, Part II column), typed again so the reference does not read
# the model. Scaled units: Q 1e6/kg, N 1e8/kg, R 1e11/kg, P 1e10/kg.
PARS = dict(
    k0=8.0, theta2=0.3, s=4.0, gammaS=0.07, tauS=2.8,
    f0=0.40, theta1=0.36, n=1.0, gammaN=2.4, tauNM=3.5, AN=752.0,
    Krbar=1.17, Kr=0.0382, m=6.96, gammaR=0.001, tauRM=6.0, tauSum=120.0, tauRet=2.8, AR=5.63,
    Kpbar=0.372, Kp=11.66, r=1.29, gammaP=0.15, tauPM=7.0, tauPS=9.5, AP=28.2,
)  # fmt: skip
HISTORY = np.array([1.1, 7.0, 3.5, 2.94])  # Qss, Nss, Rss, Pss: initial value = constant past
MODELS_MD_STEADY = np.array([1.011, 6.58, 3.44, 1.92])  # MODELS.md §5 target 3
CN = {"AN": 0.1 * PARS["AN"], "k0": 0.5 * PARS["k0"]}  # MODELS.md §5 target 4

# every run in this file has 301 outputs and at most 169 delay-jump stops, so all share one
# compiled solver (same output and action buckets, ~10 s to compile cold); CN runs take ~3000
# steps per 117 days at rtol 1e-9, over the default 1024-segment ring, hence 4096 for all
SIM = dict(history_size=4096, throw=True)


@pytest.fixture(scope="module")
def model() -> hl.Model:
    return colijn_mackey()


def _rates(p: dict[str, float]):
    beta = lambda q: p["k0"] / (1 + (q / p["theta2"]) ** p["s"])  # noqa: E731
    kn = lambda x: p["f0"] / (1 + (x / p["theta1"]) ** p["n"])  # noqa: E731
    kr = lambda x: p["Krbar"] / (1 + p["Kr"] * x ** p["m"])  # noqa: E731
    kp = lambda x: p["Kpbar"] / (1 + p["Kp"] * x ** p["r"])  # noqa: E731
    return beta, kn, kr, kp


def _equilibrium(p: dict[str, float]) -> np.ndarray:
    """The positive steady state: every delayed value equals the present one."""
    beta, kn, kr, kp = _rates(p)
    aq = 2 * np.exp(-p["gammaS"] * p["tauS"])
    tau_rs = p["tauSum"] - p["tauRM"] - p["tauRet"]

    def f(logx):
        q, n, r, pl = np.exp(logx)
        return [
            (aq - 1) * beta(q) - kn(n) - kr(r) - kp(pl),
            p["AN"] * kn(n) * q / n - p["gammaN"],
            p["AR"] * kr(r) * q * (1 - np.exp(-p["gammaR"] * tau_rs)) / r - p["gammaR"],
            p["AP"] * kp(pl) * q * (1 - np.exp(-p["gammaP"] * p["tauPS"])) / pl - p["gammaP"],
        ]

    # xtol 1e-14 sat at MINPACK's precision limit: on one machine's CPU it warned "no further
    # improvement possible" (an error here). The residual is what must be small.
    logx = fsolve(f, np.log(HISTORY), xtol=1e-12)
    assert np.max(np.abs(f(logx))) < 1e-10
    return np.exp(logx)


def _reference(p: dict[str, float], t_obs: np.ndarray) -> np.ndarray:
    """Method of steps with DOP853 (rtol 1e-11) for the published equations, (4, len(t_obs)).

    Pieces end at the start's derivative jumps propagated by sums of up to four delays and are
    no longer than the shortest delay, so every delayed value is read from the constant
    history or from the 7th-order dense output of an already finished piece.
    """
    beta, kn, kr, kp = _rates(p)
    aq = 2 * np.exp(-p["gammaS"] * p["tauS"])
    tau_rs = p["tauSum"] - p["tauRM"] - p["tauRet"]
    e_r, e_p = np.exp(-p["gammaR"] * tau_rs), np.exp(-p["gammaP"] * p["tauPS"])
    lags = {
        "S": p["tauS"],
        "NM": p["tauNM"],
        "RM": p["tauRM"],
        "PM": p["tauPM"],
        "RS": p["tauRM"] + tau_rs,
        "PS": p["tauPM"] + p["tauPS"],
    }
    starts: list[float] = []
    pieces: list = []

    def past(s: float) -> np.ndarray:
        if s <= 0.0:
            return HISTORY
        return pieces[bisect.bisect_right(starts, s) - 1](s)

    def rhs(t, y):
        q, n, r, pl = y
        d = {k: past(t - lag) for k, lag in lags.items()}
        return [
            -(beta(q) + kn(n) + kr(r) + kp(pl)) * q + aq * beta(d["S"][0]) * d["S"][0],
            -p["gammaN"] * n + p["AN"] * kn(d["NM"][1]) * d["NM"][0],
            -p["gammaR"] * r
            + p["AR"] * (kr(d["RM"][2]) * d["RM"][0] - e_r * kr(d["RS"][2]) * d["RS"][0]),
            -p["gammaP"] * pl
            + p["AP"] * (kp(d["PM"][3]) * d["PM"][0] - e_p * kp(d["PS"][3]) * d["PS"][0]),
        ]

    t_end = float(t_obs[-1])
    shortest = min(lags.values())
    jumps = {
        sum(c)
        for k in range(1, 5)
        for c in itertools.combinations_with_replacement(sorted(set(lags.values())), k)
    }
    breaks = sorted({0.0, t_end} | {j for j in jumps if j < t_end})
    y = HISTORY.copy()
    for a, b in itertools.pairwise(breaks):
        edges = np.linspace(a, b, int(np.ceil((b - a) / shortest)) + 1)
        for c, d in itertools.pairwise(edges):
            sol = solve_ivp(
                rhs, (c, d), y, method="DOP853", rtol=1e-11, atol=1e-13, dense_output=True
            )
            starts.append(c)
            pieces.append(sol.sol)
            y = sol.y[:, -1]
    return np.array([past(t) for t in t_obs]).T


def test_citation_and_structure(model):
    assert "10.1016/j.jtbi.2005.03.033" in CITATION
    assert "10.1016/j.jtbi.2005.03.034" in CITATION
    assert "believed" in CITATION
    assert model.description.startswith("Experimental:")
    assert "EXPERIMENTAL" in (colijn_mackey.__doc__ or "")
    assert model.time_unit == "d"
    assert model.state_names == ("Q", "N", "R", "P")
    for name, value in PARS.items():
        assert model.parameter(name).value == value, name
    taus = {str(tau) for _, tau in model.delays}
    # τRS = τsum − τRM − τRet is an assignment, so the long delays read τRM + τRS
    assert taus == {"tauS", "tauNM", "tauRM", "tauPM", "tauRM + tauRS", "tauPM + tauPS"}
    run = typical_run()
    assert run.observable in model.observable_names
    assert run.events() is None and "Part II" in run.description


def test_settles_to_the_stable_steady_state(model):
    """MODELS.md §5 target 3 (derived): the Part II file is a normal set that settles to
    Q ≈ 1.011, N ≈ 6.58, R ≈ 3.44, P ≈ 1.92 (1 % relative). Those numbers were read from a
    run of ~1000 days: the red cells approach their equilibrium slowly (the 117-day
    lifespan delay), so at day 3000 the state is also within 1e-3 of the exact equilibrium
    of the published equations (solved here algebraically) and closer than at day 1000."""
    res = hl.simulate(model, t_end=3000.0, dt=10.0, rtol=1e-8, atol=1e-10, **SIM)
    x = np.stack([res.variable(s)[0] for s in "QNRP"])  # (4, T)
    eq = _equilibrium(PARS)
    np.testing.assert_allclose(x[:, -1], MODELS_MD_STEADY, rtol=0.01)
    np.testing.assert_allclose(x[:, -1], eq, rtol=1e-3)
    assert np.all(np.abs(x[:, -1] - eq) <= np.abs(x[:, 100] - eq))  # day 1000
    # no oscillation left: the last 500 days vary by < 0.1 %
    late = x[:, res.time[0] >= 2500.0]
    assert np.all(np.ptp(late, axis=1) < 1e-3 * late.mean(axis=1))
    # the listed P* = 2.94 is not the model's platelet steady state (MODELS.md scale issue)
    assert abs(eq[3] - 2.94) > 0.3 * 2.94


@pytest.mark.parametrize(("case", "tol"), [("normal", 1e-7), ("cn", 1e-6)])
def test_matches_independent_method_of_steps(model, case, tol):
    """Derived: hemolab (rtol 1e-9) and a SciPy DOP853 method of steps (rtol 1e-11) of the
    same published equations agree on all four states over 150 days, which covers the
    117.2-day red-cell lifespan delay reading the solved past; also for the CN set
    (oscillating, N down to ~0.06). Largest relative differences seen: 3e-9 (normal) and
    7e-8 (CN); they shrink tenfold with each tenfold smaller hemolab rtol, so they are
    hemolab's error, not the reference's. Asserted: 1e-7 and 1e-6 (>10× margin)."""
    p = dict(PARS, **CN) if case == "cn" else PARS
    grid = np.linspace(0.0, 150.0, 301)
    res = hl.simulate(
        model,
        grid=grid,
        params={k: p[k] for k in ("AN", "k0")},
        rtol=1e-9,
        atol=1e-11,
        **SIM,
    )
    ref = _reference(p, grid)
    got = np.stack([res.variable(s)[0] for s in "QNRP"])
    np.testing.assert_allclose(got, ref, rtol=tol)
    assert np.ptp(got[1]) > (5.0 if case == "cn" else 0.2)  # the comparison has dynamics


def test_cn_parameters_oscillate_with_a_20_day_period(model):
    """MODELS.md §5 target 4 (derived, low confidence, smoke test): A_N × 0.1 with k0 × 0.5
    gives sustained oscillations with period ≈ 20 days (asserted 15–25 days from platelet and
    stem-cell peaks after day 200), N dipping to severe-neutropenia levels; A_N × 0.5 alone
    stays at a stable steady state."""
    params = {
        "AN": np.array([CN["AN"], 0.5 * PARS["AN"]]),
        "k0": np.array([CN["k0"], PARS["k0"]]),
    }
    res = hl.simulate(model, t_end=600.0, dt=2.0, params=params, rtol=1e-7, atol=1e-9, **SIM)
    t = res.time[0]
    late = t >= 200.0
    cn = {s: res.variable(s)[0] for s in "QNRP"}
    for s in ("P", "Q"):
        x = cn[s][late]
        peaks, _ = find_peaks(x, prominence=0.2 * np.ptp(x))
        gaps = np.diff(t[late][peaks])
        assert len(gaps) >= 15, s
        assert 15.0 <= gaps.mean() <= 25.0, (s, gaps)
        assert np.all((gaps >= 15.0) & (gaps <= 25.0)), (s, gaps)
        # sustained: the amplitude of the last 200 days is not decaying
        assert np.ptp(cn[s][t >= 400.0]) > 0.7 * np.ptp(cn[s][(t >= 200.0) & (t < 400.0)]), s
    assert cn["N"][late].min() < 0.2 < 5.0 < cn["N"][late].max()
    stable = np.stack([res.variable(s)[1][t >= 400.0] for s in "QNRP"])
    assert np.all(np.ptp(stable, axis=1) < 1e-2 * stable.mean(axis=1))
