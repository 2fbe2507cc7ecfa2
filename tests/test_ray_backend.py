"""The Ray backend of population runs (issue 6, design note 010): the same Parquet files as the
local run, bit for bit, on ``ray.init(num_cpus=2)``; a worker killed mid-run is retried and no
chunk is lost or written twice; the CLI's ``--backend``; a clear error without Ray.

One Ray session serves the module (started once, shut down at the end); the module stays on
one xdist worker. Skipped without Ray, but failing under CI (``make install`` installs it).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import jsonschema
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import hemolab as hl
from hemolab.cli import app
from hemolab.cli._demo import demo_events
from hemolab.cli._schemas import load_schema
from hemolab.population import Normal, Population, PopulationResult, simulate_population
from hemolab.population._population import patient_ids
from hemolab.population._ray import FORK_WARNING, KILL_ONCE_ENV, _in_order

pytestmark = [pytest.mark.slow, pytest.mark.ray]

N, CHUNK = 300, 100
RUN = {"t_end": 24.0 * 30, "dt": 24.0, "run_id": "r", "scenario": "s", "chunk_size": CHUNK}
VOLATILE = {b"hemolab.created", b"hemolab.host"}  # metadata that names when and where


def require_ray() -> ModuleType:
    """Import Ray; skip if missing, but fail under CI (the ``ray`` extra is installed)."""
    try:
        return importlib.import_module("ray")
    except ImportError as error:
        if os.environ.get("CI"):
            pytest.fail(f"ray is missing under CI: {error}; run `make install`")
        pytest.skip(f"ray not installed ({error}); pip install -e '.[ray]'")


@pytest.fixture(scope="module")
def kill_flag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The workers' fault-injection flag: present (disarmed) until a test removes it."""
    flag = tmp_path_factory.mktemp("ray") / "kill-once"
    flag.touch()
    return flag


@pytest.fixture(scope="module")
def ray_session(kill_flag: Path) -> Iterator[ModuleType]:
    """Ray on this machine's two cores, for the whole module."""
    ray = require_ray()
    with warnings.catch_warnings():  # Ray starts its processes by fork+exec
        warnings.filterwarnings("ignore", FORK_WARNING, RuntimeWarning)
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
            runtime_env={"env_vars": {KILL_ONCE_ENV: str(kill_flag)}},
        )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def population() -> Population:
    """Sampled BSA (one regimen per patient, doses per m²) across three chunks."""
    model = hl.get_model("friberg_docetaxel")
    return Population(model, n=N, seed=3, covariates={"BSA": Normal(1.8, 0.2, 1.4, 2.4)})


@pytest.fixture(scope="module")
def local(population: Population, tmp_path_factory: pytest.TempPathFactory) -> PopulationResult:
    out = tmp_path_factory.mktemp("local") / "pop.parquet"
    return run_population(population, out, "local")


def run_population(population: Population, out: Path, backend: str) -> PopulationResult:
    t0 = time.perf_counter()
    res = simulate_population(
        population,
        demo_events(bsa=None).iloc[:2],
        out=out,
        residual_error=True,  # drawn by the driver from the population's seed
        backend=backend,
        **RUN,
    )
    print(f"{backend}: {N} patients in {time.perf_counter() - t0:.2f} s")
    return res


def assert_same_files(a: Path, b: Path, skip: tuple[str, ...] = ()) -> None:
    """Same rows in the same order, values bit for bit, and the same metadata apart from
    creation time and host; the same for the events files. Columns ``skip`` may differ."""
    for stem in ("", ".events"):
        pa_, pb = a.with_name(a.stem + stem + ".parquet"), b.with_name(b.stem + stem + ".parquet")
        assert pa_.exists() == pb.exists()
        if not pa_.exists():  # no events applied
            continue
        ta, tb = pq.read_table(pa_), pq.read_table(pb)
        assert ta.schema.equals(tb.schema, check_metadata=False)
        assert ta.num_rows == tb.num_rows
        for name in (c for c in ta.column_names if c not in skip):
            ca, cb = ta.column(name).combine_chunks(), tb.column(name).combine_chunks()
            if pa.types.is_floating(ca.type):
                bits = lambda c: c.to_numpy(zero_copy_only=False).view(np.uint64)  # noqa: E731
                assert np.array_equal(bits(ca), bits(cb)), name
            else:
                assert ca.equals(cb), name
        ma, mb = dict(ta.schema.metadata or {}), dict(tb.schema.metadata or {})
        if not stem:
            assert set(ma) == set(mb) and set(ma) >= VOLATILE
        assert {k: v for k, v in ma.items() if k not in VOLATILE} == {
            k: v for k, v in mb.items() if k not in VOLATILE
        }


def assert_each_patient_once(path: Path, local: PopulationResult) -> None:
    """Every patient's rows (times × variables) once, in patient order: no chunk is missing or
    written twice."""
    assert local.results is not None
    rows = local.time.size * len(local.results.variables)
    ids = pq.read_table(path, columns=["patient_id"]).column("patient_id").to_pylist()
    assert ids == [pid for pid in patient_ids(0, N) for _ in range(rows)]


def assert_same_summaries(a: PopulationResult, b: PopulationResult) -> None:
    assert a.status_counts == b.status_counts and a.chunks == b.chunks == N // CHUNK
    assert a.metrics.equals(b.metrics)
    for var, bands in a.bands.items():
        for q, values in bands.items():
            np.testing.assert_array_equal(values, b.bands[var][q])
    assert a.results is not None and b.results is not None
    np.testing.assert_array_equal(a.results.values, b.results.values)


# --- the same file as the local run -----------------------------------------------------------


def test_ray_run_writes_the_local_file_bitwise(
    ray_session: ModuleType, population: Population, local: PopulationResult, tmp_path: Path
) -> None:
    res = run_population(population, tmp_path / "pop.parquet", "ray")
    assert res.backend == "ray" and local.backend == "local"
    assert local.out is not None and res.out is not None
    assert res.out == tmp_path / "pop.parquet"
    assert_same_files(local.out, res.out)
    assert_each_patient_once(res.out, local)
    assert_same_summaries(local, res)
    assert res.summary()["population"]["backend"] == "ray"
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_killed_worker_is_retried_and_no_chunk_is_lost_or_doubled(
    ray_session: ModuleType,
    population: Population,
    local: PopulationResult,
    kill_flag: Path,
    tmp_path: Path,
) -> None:
    kill_flag.unlink()  # armed: the first chunk to start kills its worker (os._exit)
    res = run_population(population, tmp_path / "pop.parquet", "ray")
    assert kill_flag.exists(), "no worker was killed"
    assert local.out is not None and res.out is not None
    assert_same_files(local.out, res.out)
    assert_each_patient_once(res.out, local)
    assert_same_summaries(local, res)


def test_solve_errors_come_back_as_hemolab_errors(
    ray_session: ModuleType, population: Population, tmp_path: Path
) -> None:
    out = tmp_path / "pop.parquet"
    with pytest.raises(hl.ScheduleError, match="t_end"):
        simulate_population(population, t_end=-1.0, out=out, backend="ray", chunk_size=CHUNK)
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))


def fake_ray(cancelled: list[Any], newest_first: bool) -> Any:
    """Just enough of Ray for ``_in_order``: tasks in flight finish newest (or oldest) first;
    a task's result is its row range."""

    def wait(refs: list[Any], num_returns: int = 1, timeout: float | None = None) -> Any:
        if newest_first:
            return refs[-num_returns:], refs[:-num_returns]
        return refs[:num_returns], refs[num_returns:]

    errors = SimpleNamespace(RayTaskError=type("E1", (Exception,), {}), RayError=Exception)
    return SimpleNamespace(
        wait=wait, get=lambda ref: ref, cancel=cancelled.append, exceptions=errors
    )


def test_chunks_are_yielded_in_order_with_at_most_a_window_unwritten() -> None:
    submitted: list[tuple[int, int]] = []

    def remote(job: Any, start: int, stop: int) -> tuple[int, int]:
        submitted.append((start, stop))
        return start, stop

    task = SimpleNamespace(remote=remote)
    bounds = [(a, a + 10) for a in range(0, 95, 10)]
    out = []
    for k, chunk in enumerate(
        _in_order(fake_ray([], newest_first=True), task, "job", bounds, window=4)
    ):
        assert len(submitted) - k <= 4  # in flight or waiting for their turn, this one included
        out.append(chunk)
    assert out == submitted == bounds
    # stopping early (a failed write) cancels what is in flight
    cancelled: list[Any] = []
    submitted.clear()
    run = _in_order(fake_ray(cancelled, newest_first=False), task, "job", bounds, window=4)
    assert next(run) == (0, 10)
    run.close()
    assert cancelled == [(10, 20), (20, 30), (30, 40)]


# --- command line -----------------------------------------------------------------------------


def simulate_cli(out: Path, *extra: str) -> Any:
    args = ["simulate", "friberg_docetaxel", "--out", str(out), "--t-end", "30d", "--dt", "1d"]
    args += ["--population", str(N), "--seed", "5", "--chunk-size", str(CHUNK), "--json"]
    return CliRunner().invoke(app, [*args, *extra])


def test_cli_backend_ray_writes_the_local_file(
    ray_session: ModuleType, kill_flag: Path, tmp_path: Path
) -> None:
    docs = {}
    for backend in ("local", "ray"):
        if backend == "ray":
            kill_flag.unlink()  # Ray's notice of the dead worker must not reach stdout's JSON
        result = simulate_cli(tmp_path / f"{backend}.parquet", "--backend", backend)
        assert result.exit_code == 0, result.output
        docs[backend] = json.loads(result.stdout)
        jsonschema.Draft202012Validator(load_schema("simulate")).validate(docs[backend])
        assert docs[backend]["population"]["backend"] == backend
    assert kill_flag.exists(), "no worker was killed"
    # two runs of the command: two random run ids, the rest identical
    assert_same_files(tmp_path / "local.parquet", tmp_path / "ray.parquet", skip=("run_id",))
    assert docs["ray"]["variables"] == docs["local"]["variables"]


def test_cli_rejects_an_unknown_backend(tmp_path: Path) -> None:
    result = simulate_cli(tmp_path / "x.parquet", "--backend", "dask")
    assert result.exit_code == 2, result.output
    flat = " ".join(result.stderr.replace("│", " ").split())  # Typer's boxed usage error
    assert "Invalid value for '--backend'" in flat and "'dask' is not one of 'local', 'ray'" in flat
    assert not (tmp_path / "x.parquet").exists()


def assert_one_error(result: Any, fragment: str) -> None:
    """Exit code 2 and one ``error:`` line naming the problem, no traceback (as test_cli)."""
    assert result.exit_code == 2, result.output
    err = result.stderr
    assert "Traceback" not in result.output and err.lstrip().startswith("error:"), err
    assert fragment in " ".join(err.split()), err


def test_cli_backend_ray_needs_a_population(tmp_path: Path) -> None:
    args = ["simulate", "friberg_docetaxel", "--out", str(tmp_path / "x.parquet")]
    result = CliRunner().invoke(app, [*args, "--t-end", "2d", "--backend", "ray"])
    assert_one_error(result, "--backend ray runs virtual populations")


# --- without Ray --------------------------------------------------------------------------------


def test_without_ray_the_ray_backend_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    pop = Population(hl.get_model("friberg_docetaxel"), n=CHUNK, seed=1)
    out = tmp_path / "pop.parquet"
    untreated = {"t_end": 24.0 * 30, "dt": 24.0, "out": out}  # shapes the CLI test compiled
    with pytest.raises(hl.HemolabError, match=r"install hemolab\[ray\]"):
        simulate_population(pop, backend="ray", **untreated)
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))
    assert_one_error(simulate_cli(out, "--backend", "ray"), "install hemolab[ray]")
    # the local default needs nothing of Ray
    assert simulate_population(pop, **untreated).backend == "local"
    assert out.exists()


def test_unknown_backend_in_the_api() -> None:
    pop = Population(hl.get_model("friberg_docetaxel"), n=2, seed=1)
    with pytest.raises(hl.HemolabError, match=r"backend must be one of \['local', 'ray'\]"):
        simulate_population(pop, t_end=24.0, backend="dask")


# --- the experiment store under concurrent writers ------------------------------------------


def test_two_cli_runs_and_a_ray_sweep_recording_at_once_all_land(
    ray_session: ModuleType, tmp_path: Path
) -> None:
    """Issue 8: two ``hemolab simulate --store`` processes and four Ray tasks write to one
    store at the same time (DuckDB admits one writer process at a time: design note 022)."""
    import subprocess

    from hemolab.experiments import ExperimentStore
    from test_experiments import EVENTS_CSV, MODEL_PY

    store = tmp_path / "store"
    ExperimentStore(store)
    (tmp_path / "decay.py").write_text(MODEL_PY)
    (tmp_path / "events.csv").write_text(EVENTS_CSV)
    cli = str(Path(sys.executable).with_name("hemolab"))
    runs = [
        subprocess.Popen(
            [cli, "simulate", str(tmp_path / "decay.py"), "--events", str(tmp_path / "events.csv"),
             "--t-end", "24h", "--out", str(tmp_path / f"r{k}.parquet"), "--store", str(store),
             "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=os.environ | {"HEMOLAB_HOST_DEVICES": "1"},
        )
        for k in range(2)
    ]  # fmt: skip

    @ray_session.remote
    def sweep(root: str, task: int) -> list[str]:
        import pyarrow as pa_
        import pyarrow.parquet as pq_

        from hemolab.experiments import ExperimentStore as Store

        ids = []
        for i in range(5):
            with Store(root).start("sweep", label=f"task {task} point {i}", seed=i) as exp:
                path = Path(root) / f"tmp-{task}-{i}.parquet"
                pq_.write_table(pa_.table({"x": [float(task), float(i)]}), path)
                exp.add_result("point.parquet", path)
                ids.append(exp.id)
        return ids

    swept = ray_session.get([sweep.remote(str(store), t) for t in range(4)])
    for p in runs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
        assert json.loads(out)["experiment"]
    records = ExperimentStore(store).list()
    assert sorted(r.kind for r in records) == ["simulate"] * 2 + ["sweep"] * 20
    assert all(r.status == "complete" for r in records)
    assert {r.id for r in records if r.kind == "sweep"} == {i for ids in swept for i in ids}
    assert all(len(r.results) >= 1 for r in records)
