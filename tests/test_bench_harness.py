"""The P3/P4 benchmark harness: deterministic P3 data, and P4 episode durations from hemolab's
crossing triggers against an independent brute-force estimate (SciPy on a 0.1-h grid)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.problems import (
    P3_OBS_TIMES_H,
    P3_SIGMA,
    P4_DURATION_GATE_H,
    P4Protocol,
    p1_patient_rows,
    p1_population,
    p3_noise,
    p4_episodes_from_grid,
    p4_grade4,
    p4_longest_episode,
    p4_protocols,
)
from bench.references import (
    p3_data,
    p3_predict,
    p3_reference_map,
    p4_longest_from_crossings,
    p4_reference,
)


def test_p3_data_is_deterministic_and_a_prefix_of_the_batch() -> None:
    truths, obs = p3_data(3, cache_dir=None)
    again_truths, again = p3_data(3, cache_dir=None)
    np.testing.assert_array_equal(obs, again)
    assert truths == again_truths
    assert obs.shape == (3, len(P3_OBS_TIMES_H)) and np.all(obs > 0)
    np.testing.assert_array_equal(p3_noise(3), p3_noise(60)[:3])
    # y = Circ_true * exp(0.15 * noise): the noise comes back out of the data
    noise = np.log(obs[1] / p3_predict(truths[1])) / P3_SIGMA
    np.testing.assert_allclose(noise, p3_noise(3)[1], atol=1e-9)
    assert round(truths[0]["Slope"], 2) == 15.50  # P1 patient 0 is the single-fit truth


def test_p4_protocol_set_is_fixed() -> None:
    first, again = p4_protocols(5), p4_protocols(5)
    assert first == again and p4_protocols(3) == first[:3]
    assert first[0] == P4Protocol(100.0, 21, False, 1)
    assert first[1].dose_intensity == pytest.approx(75.0)
    switches = first[2].rescue_switches_h()
    assert switches[:2] == [(72.0, 1.5), (312.0, 1.0)]
    assert all(t < first[2].t_end_h for t, _ in switches)


def test_longest_episode_counts_an_open_episode_to_the_end() -> None:
    longest = p4_longest_episode(
        t_down=np.array([100.0, 900.0, 0.0]),
        max_below=np.array([50.0, 10.0, 0.0]),
        circ_end=np.array([1.0, 0.3, 2.0]),
        t_end=1000.0,
    )
    np.testing.assert_array_equal(longest, [50.0, 100.0, 0.0])
    crossings = np.array([[10.0, -1.0], [30.0, 1.0], [900.0, -1.0]])
    assert p4_longest_from_crossings(crossings, 1000.0) == 100.0


def test_p4_reference_finds_a_shallow_dip_inside_one_solver_step() -> None:
    """Patient 180 under P1's regimen dips to 0.49907 for 6.6 h, inside one DOP853 step:
    only the Circ-minimum event of the reference finds the two crossings."""
    protocol = p4_protocols(1)[0]
    grid = np.arange(150.0, 260.0, 0.01)
    crossings, circ = p4_reference(p1_patient_rows(p1_population(181))[180], protocol, grid)
    assert circ is not None
    brute = p4_episodes_from_grid(grid, circ)[0]
    assert crossings.shape == (2, 2) and list(crossings[:, 1]) == [-1.0, 1.0]
    longest = p4_longest_from_crossings(crossings, protocol.t_end_h)
    assert abs(longest - brute) <= 0.01 + 1e-9 and 6.5 < longest < 6.7


def test_p4_hemolab_crossing_durations_match_a_brute_force_grid() -> None:
    """20 patients at 150 mg every 14 days with a rescue from day 7 (param events): 7 have
    Circ < 0.5 episodes, one longer than 7 days."""
    from bench.hemolab_runner import run_p4

    protocol = P4Protocol(150.0, 14, True, 7)
    params = p1_population(20)
    _, solve_fn = run_p4(params, [protocol])
    longest, failures = solve_fn()
    assert failures == [{}]
    grid = np.arange(0.0, protocol.t_end_h, 0.1)
    crossings, circ = [], []
    for row in p1_patient_rows(params):
        c, values = p4_reference(row, protocol, grid)
        assert values is not None
        crossings.append(c)
        circ.append(values)
    brute = p4_episodes_from_grid(grid, np.stack(circ), protocol.t_end_h)
    assert (brute > 0).sum() >= 5 and p4_grade4(brute).sum() >= 1  # the check has teeth
    np.testing.assert_allclose(longest[0], brute, rtol=0, atol=0.1 + 1e-6)
    exact = [p4_longest_from_crossings(c, protocol.t_end_h) for c in crossings]
    np.testing.assert_allclose(longest[0], exact, rtol=0, atol=P4_DURATION_GATE_H)
    np.testing.assert_array_equal(p4_grade4(longest[0]), p4_grade4(brute))


@pytest.mark.slow
def test_p3_hemolab_fit_matches_the_tight_reference_map() -> None:
    """bench P3's hemolab fit (``fit_map_batch`` over the patients, data as arguments) lands
    on the tight SciPy/DOP853 MAP of BENCHMARKS.md P3 within its 1e-3 gate."""
    from bench import hemolab_runner
    from bench.problems import P3_FREE, P3_MAP_GATE_REL

    truths, obs = p3_data(2, cache_dir=None)
    fixed = [{k: v for k, v in t.items() if k not in P3_FREE} for t in truths]
    _, solve_fn = hemolab_runner.run_p3(obs, fixed)
    theta, failures = solve_fn()
    assert failures == {} and theta.shape == (2, 3)
    for i in range(2):
        ref = p3_reference_map(obs[i], fixed[i], cache_dir=None)
        np.testing.assert_allclose(theta[i], ref, rtol=P3_MAP_GATE_REL)


def test_p3_report_prints_the_single_fit_and_batch_ratios(capsys: pytest.CaptureFixture) -> None:
    """The P3 table names its single-fit ratio apart from the batch's (it raised KeyError)."""
    from types import SimpleNamespace

    from bench.run import finish_p3, print_tables

    peer = {"seconds": 0.016, "min_s": 0.015, "extrapolated": False, "n_measured": 1,
            "accuracy": {"map_max_rel_error": 7e-6}, "failed": {}, "load_s": 0.05,
            "simulations": 34, "nfev": 10, "seconds_per_simulation": 0.0005}  # fmt: skip
    batch = {"seconds": 1.56, "min_s": 1.5, "extrapolated": False, "n_measured": 50,
             "accuracy": {"map_max_rel_error": 1e-4}, "failed": {}}  # fmt: skip
    hemolab = {"hemolab_s": 2.8, "min_s": 2.7, "compile_s": 17.0,
               "accuracy": {"map_max_rel_error": 1.6e-6}, "failed_patients": {},
               "single_fit": {"hemolab_s": 0.032}}  # fmt: skip
    ctx = SimpleNamespace(n=50, reference_s=0.01)
    result = finish_p3(ctx, {"libroadrunner-lsq": peer, "libroadrunner-lsq-batch": batch},
                       hemolab)  # type: ignore[arg-type]  # fmt: skip
    assert result["ratios"]["libroadrunner-lsq (single fit)"] == pytest.approx(0.5)
    print_tables({"P3": {**result, "peak_rss_mb": None}})  # main() adds the peak RSS
    out = capsys.readouterr().out
    assert "│ 0.5 " in out and "│ 0.557 " in out
