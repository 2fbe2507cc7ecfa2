"""Benchmark references and peers against the published numbers of BENCHMARKS.md.

The references (``bench/references.py``) are SciPy-only; every number checked here is quoted
in BENCHMARKS.md with the tolerance stated next to it. The peer smoke tests check that the
peers compute the same problem (libRoadRunner within 1e-4 on nadirs, jitcdde within 1e-4 on
t <= 200). A missing peer skips locally and FAILS when ``CI`` is set.
"""

from __future__ import annotations

import importlib
import json
import os
from types import ModuleType

import numpy as np
import pytest

from bench.problems import (
    P1_DOSE_TIMES_H,
    P1_GRID_H,
    P1_HARD_PATIENT,
    P2_GRID,
    p1_patient,
    p1_population,
    p2_batch,
)
from bench.references import p1_reference, p1_reference_many, p2_reference


def require_peer(module: str) -> ModuleType:
    """Import a peer simulator; skip if missing, but fail under CI (peers are installed)."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        if os.environ.get("CI"):
            pytest.fail(f"peer {module!r} is missing under CI: {error}; run `make install`")
        pytest.skip(f"peer {module!r} not installed ({error}); pip install -e '.[peers]'")


# -- problems ------------------------------------------------------------------------------


def test_p1_population_matches_published_patients() -> None:
    pop = p1_population(10_000)
    np.testing.assert_allclose(
        [pop[k][0] for k in ("CL", "MTT", "Circ0", "Slope")],
        [55.09, 81.90, 4.974, 15.50],
        rtol=1e-3,
    )
    hard = p1_patient(P1_HARD_PATIENT)
    # BENCHMARKS.md quotes patient 5358 to 3 significant digits.
    assert (round(hard["CL"], 1), round(hard["MTT"]), round(hard["Slope"], 1)) == (13.6, 139, 45.4)
    assert np.all(pop["V"] == 30.0)
    assert np.all(pop["gamma"] == 0.17)


def test_p1_population_beyond_10000_keeps_the_defining_rows() -> None:
    small, large = p1_population(10_000), p1_population(10_003)
    for name, values in small.items():
        np.testing.assert_array_equal(large[name][:10_000], values)
    assert p1_patient(10_002)["CL"] == large["CL"][10_002]


def test_p1_schedule_and_grid() -> None:
    np.testing.assert_array_equal(P1_DOSE_TIMES_H, [0, 504, 1008, 1512, 2016, 2520])
    assert P1_GRID_H.shape == (127,)
    assert P1_GRID_H[0] == 0.0 and P1_GRID_H[-1] == 3024.0


def test_p2_batch() -> None:
    batch = p2_batch()
    assert batch["x0"].shape == batch["beta"].shape == (1000,)
    assert (batch["x0"][0], batch["beta"][0]) == (0.5, 0.2)
    rest = slice(1, None)
    assert np.all((batch["x0"][rest] >= 0.2) & (batch["x0"][rest] <= 1.4))
    assert np.all((batch["beta"][rest] >= 0.18) & (batch["beta"][rest] <= 0.22))
    np.testing.assert_array_equal(p2_batch(10)["beta"], batch["beta"][:10])


# -- references ----------------------------------------------------------------------------


def test_p1_reference_patient_0_nadir() -> None:
    circ = p1_reference(p1_patient(0))
    assert P1_GRID_H[np.argmin(circ)] == 672.0
    np.testing.assert_allclose(circ.min(), 1.71012835, rtol=1e-8)
    assert circ[0] == pytest.approx(p1_patient(0)["Circ0"], rel=1e-12)


def test_p1_reference_patient_5358_log_states() -> None:
    circ = p1_reference(p1_patient(P1_HARD_PATIENT))
    assert P1_GRID_H[np.argmin(circ)] == 3000.0
    np.testing.assert_allclose(circ.min(), 1.9678e-4, rtol=1e-4)
    np.testing.assert_allclose(circ[-1], 1.2928e-3, rtol=1e-4)


def test_p2_reference_item_0() -> None:
    x = p2_reference(0.5, 0.2, 200.0)
    assert x.shape == (201,) and x[0] == 0.5
    np.testing.assert_allclose(x[200], 0.9426105152, rtol=0, atol=1e-8)


def test_p1_reference_cache_is_keyed_by_inputs(tmp_path) -> None:
    rows = [p1_patient(0), p1_patient(1)]
    first = p1_reference_many(rows, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("p1-*.npy"))) == 1
    np.testing.assert_array_equal(p1_reference_many(rows, cache_dir=tmp_path), first)
    changed = [{**rows[0], "Slope": rows[0]["Slope"] * 1.01}, rows[1]]
    second = p1_reference_many(changed, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("p1-*.npy"))) == 2
    assert not np.array_equal(second[0], first[0])
    np.testing.assert_array_equal(second[1], first[1])


# -- peers ---------------------------------------------------------------------------------


@pytest.mark.peers
def test_libroadrunner_loop_agrees_with_reference_on_nadirs() -> None:
    require_peer("roadrunner")
    from bench.peers import RoadRunnerP1

    params = p1_population(5)
    reference = p1_reference_many([p1_patient(i) for i in range(5)], cache_dir=None)
    seconds, circ, failures = RoadRunnerP1().solve(params, P1_GRID_H)
    assert failures == {} and seconds > 0
    np.testing.assert_allclose(circ.min(axis=1), reference.min(axis=1), rtol=1e-4)


@pytest.mark.peers
def test_libroadrunner_records_the_cvode_failure_of_patient_5358() -> None:
    require_peer("roadrunner")
    from bench.peers import RoadRunnerP1

    rows = [p1_patient(0), p1_patient(P1_HARD_PATIENT), p1_patient(1)]
    params = {k: np.array([row[k] for row in rows]) for k in rows[0]}
    _, circ, failures = RoadRunnerP1().solve(params, P1_GRID_H)
    assert list(failures) == [1] and "CV_CONV_FAILURE" in failures[1]
    assert np.isnan(circ[1]).all()
    assert np.isfinite(circ[[0, 2]]).all()  # the model is still usable after the failure


@pytest.mark.peers
def test_libroadrunner_pool_matches_loop() -> None:
    require_peer("roadrunner")
    from bench.peers import RoadRunnerP1, RoadRunnerP1Pool

    params = p1_population(12)
    _, loop_circ, _ = RoadRunnerP1().solve(params, P1_GRID_H)
    with RoadRunnerP1Pool(2, chunk=5) as pool:
        _, pool_circ, failures = pool.solve(params, P1_GRID_H)
    assert failures == {}
    np.testing.assert_array_equal(pool_circ, loop_circ)


def test_scipy_lsoda_peer_agrees_with_reference_on_nadirs() -> None:
    from bench.peers import scipy_lsoda_p1

    params = p1_population(2)
    reference = np.stack([p1_reference(p1_patient(i)) for i in range(2)])
    _, circ, failures = scipy_lsoda_p1(params, P1_GRID_H)
    assert failures == {}
    np.testing.assert_allclose(circ.min(axis=1), reference.min(axis=1), rtol=1e-4)


@pytest.mark.peers
def test_jitcdde_item_0_agrees_with_reference() -> None:
    require_peer("jitcdde")
    from bench.peers import JitcddeMackeyGlass

    reference = p2_reference(0.5, 0.2, 200.0)
    with JitcddeMackeyGlass() as dde:
        _, x, failures = dde.solve(np.array([0.5]), np.array([0.2]), P2_GRID)
    assert failures == {}
    np.testing.assert_allclose(x[0, :201], reference, rtol=0, atol=1e-4)


@pytest.mark.slow
@pytest.mark.peers
def test_run_py_prints_one_json_object_last(capsys) -> None:
    require_peer("jitcdde")
    from bench.run import main

    assert main(["P2", "--n", "3", "--repeats", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("problem", "n", "hemolab_s", "min_s", "compile_s", "write_s", "peers"):
        assert key in result
    for key in ("ratios", "accuracy", "peak_rss_mb", "failed_patients"):
        assert key in result
    assert result["problem"] == "P2" and result["n"] == 3
    assert result["peer_details"]["jitcdde"]["accuracy"]["max_abs_error"] < 1e-4
