"""The experiment store: records, atomic results, crash safety (SIGKILL at random moments),
writers in several processes at once, and ``hemolab experiments list|show|rerun``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from hemolab.cli import app
from hemolab.experiments import ExperimentError, ExperimentStore, content_sha256
from hemolab.experiments._store import _sha256
from test_cli import assert_bad_input, validated

# A writer process: experiment after experiment, each with an input and three Parquet results
# of 20,000 rows; prints "ready" once its first experiment is complete.
WRITER = """
import sys
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
from pathlib import Path
from hemolab.experiments import ExperimentStore
store, tag, count = ExperimentStore(sys.argv[1]), sys.argv[2], int(sys.argv[3])
tmp = Path(sys.argv[1]) / f"scratch-{tag}"
tmp.mkdir(exist_ok=True)
rng = np.random.default_rng(abs(hash(tag)) % 2**32)
for i in range(count):
    with store.start("note", label=f"{tag} {i}", spec={"tag": tag, "i": i}, seed=i) as exp:
        exp.add_input("spec.txt", data=f"{tag} {i}".encode())
        for k in range(3):
            pq.write_table(pa.table({"x": rng.normal(size=20_000)}), tmp / f"r{k}.parquet")
            exp.add_result(f"r{k}.parquet", tmp / f"r{k}.parquet")
            if i == 1 and k == 1 and len(sys.argv) > 4:  # hold inside the second experiment
                print("inside", flush=True)
                sys.stdin.readline()
    if i == 0:
        print("ready", flush=True)
"""


def _writer(store: Path, tag: str, count: int, hold: bool = False) -> subprocess.Popen[str]:
    env = os.environ | {"HEMOLAB_HOST_DEVICES": "1"}
    argv = [sys.executable, "-c", WRITER, str(store), tag, str(count)] + (["hold"] if hold else [])
    return subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate()


def _check_store(store: ExperimentStore) -> dict[str, int]:
    """Every listed file is complete (its hash matches), every complete experiment has its
    three results, and nothing is left running. Returns the count of each status."""
    counts: dict[str, int] = {}
    for r in store.list():
        counts[r.status] = counts.get(r.status, 0) + 1
        assert r.status in ("complete", "incomplete"), (r.id, r.status, r.error)
        for f in r.files:
            assert _sha256(f.path) == f.sha256, (r.id, f.name)
            if f.content_sha256 is not None:
                assert content_sha256(f.path)[0] == f.content_sha256
        if r.status == "complete":
            assert sorted(r.results) == ["r0.parquet", "r1.parquet", "r2.parquet"]
            assert pq.read_table(r.results["r1.parquet"].path).num_rows == 20_000
    return counts


def test_a_record_holds_its_inputs_results_and_versions_and_a_failure_its_error(
    tmp_path: Path,
) -> None:
    store = ExperimentStore(tmp_path / "store")
    table = pa.table({"time": [0.0, 1.0], "value": [1.5, 2.5]})
    pq.write_table(table, tmp_path / "a.parquet")
    with store.start("note", label="first", spec={"dose_mg": 100}, seed=7, rtol=1e-6) as exp:
        exp.add_input("events.csv", data=b"ID,TIME\n1,0\n")
        exp.add_result("a.parquet", tmp_path / "a.parquet")
    rec = store.get(exp.id)
    assert rec.status == "complete" and rec.ended is not None and rec.ended >= rec.started
    assert rec.spec == {"dose_mg": 100} and rec.seed == 7 and rec.rtol == 1e-6
    assert {"python", "hemolab", "jax", "duckdb", "pyarrow"} <= set(rec.versions)
    assert rec.inputs["events.csv"].path.read_bytes() == b"ID,TIME\n1,0\n"
    assert rec.results["a.parquet"].n_rows == 2

    # the content hash is of the rows, not the file: other metadata, same hash
    pq.write_table(table.replace_schema_metadata({"created": "later"}), tmp_path / "b.parquet")
    assert content_sha256(tmp_path / "b.parquet")[0] == rec.results["a.parquet"].content_sha256
    pq.write_table(pa.table({"time": [0.0, 1.0], "value": [1.5, 2.25]}), tmp_path / "c.parquet")
    assert content_sha256(tmp_path / "c.parquet")[0] != rec.results["a.parquet"].content_sha256

    with pytest.raises(ZeroDivisionError), store.start("note", label="second") as bad:
        _ = 1 / 0
    failed = store.get(bad.id)
    assert failed.status == "failed" and failed.error == "ZeroDivisionError: division by zero"
    assert [r.id for r in store.list()] == [exp.id, bad.id]
    assert [r.id for r in store.list(status="failed")] == [bad.id]


def test_bad_requests_are_refused_with_what_was_expected(tmp_path: Path) -> None:
    store = ExperimentStore(tmp_path / "store")
    with pytest.raises(ExperimentError, match="no experiment 'E1' in store"):
        store.get("E1")
    with pytest.raises(ExperimentError, match=r"kind name '\.\./x' must be letters"):
        store.begin("../x")
    with pytest.raises(ExperimentError, match="spec must be plain JSON"):
        store.begin("note", spec={"x": float("nan")})
    with store.start("note") as exp:
        with pytest.raises(ExperimentError, match=r"input name '\.\./\.\./etc' must be"):
            exp.add_input("../../etc", data=b"x")
        with pytest.raises(ExperimentError, match="is not a file"):
            exp.add_result("r.parquet", tmp_path / "missing.parquet")
        with pytest.raises(ExperimentError, match="exactly one"):
            exp.add_input("x.txt")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExperimentError, match="is a file, not a directory"):
        ExperimentStore(tmp_path / "file")


def test_sigkill_at_random_moments_leaves_every_earlier_experiment_intact(
    tmp_path: Path,
) -> None:
    """A writer killed 8 times at random moments (in a transaction, a copy, an fsync):
    the store stays readable, complete experiments keep every result, the killed one is
    incomplete, and the next writer goes on."""
    root = tmp_path / "store"
    ExperimentStore(root)
    rng = np.random.default_rng(20261127)
    killed = incomplete = 0
    store, counts = ExperimentStore(root), {}
    for trial in range(9):
        proc = _writer(root, f"t{trial}", 1000, hold=trial == 8)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready", proc.communicate()[1]
        if trial == 8:  # one kill surely inside an experiment, between two of its results
            assert proc.stdout.readline().strip() == "inside"
        else:
            time.sleep(float(rng.uniform(0.05, 0.6)))
        _kill(proc)
        killed += 1
        store = ExperimentStore(root)
        counts = _check_store(store)
        # killed inside an experiment or between two (then nothing is running)
        assert counts.get("incomplete", 0) in (incomplete, incomplete + 1), counts
        incomplete = counts.get("incomplete", 0)
        assert counts["complete"] >= trial + 1
    held = [r for r in store.list() if r.label == "t8 1"]
    assert [r.status for r in held] == ["incomplete"]
    assert sorted(held[0].results) == ["r0.parquet", "r1.parquet"]
    # the next experiment started marks the dead ones incomplete in the catalogue itself
    with ExperimentStore(root).start("note"):
        pass
    raw = ExperimentStore(root).catalogue.read(
        lambda db: db.execute(
            "SELECT count(*) FROM experiments WHERE status = 'incomplete'"
        ).fetchone()[0]
    )
    assert raw == incomplete
    print(
        f"\n{killed} writers killed, {incomplete} inside an experiment; "
        f"{counts['complete']} complete experiments intact"
    )


def test_writers_in_three_processes_at_once_all_land(tmp_path: Path) -> None:
    root = tmp_path / "store"
    ExperimentStore(root)
    procs = [_writer(root, f"w{k}", 12) for k in range(3)]
    reader = ExperimentStore(root)
    seen = 0
    while any(p.poll() is None for p in procs):  # a reader beside them never blocks them
        seen = max(seen, len(reader.list()))
        time.sleep(0.05)
    for p in procs:
        _, err = p.communicate()
        assert p.returncode == 0, err
    counts = _check_store(reader)
    assert counts == {"complete": 36}
    assert {r.label for r in reader.list()} == {f"w{k} {i}" for k in range(3) for i in range(12)}
    assert seen >= 1


# --- command line --------------------------------------------------------------------------

MODEL_PY = """
import hemolab as hl

model = hl.Model(
    "decay_pk",
    time_unit="h",
    states=[hl.State("central", "-(CL/V)*central", unit="mg")],
    parameters=[hl.Parameter("CL", 2.0, unit="L/h"), hl.Parameter("V", 10.0, unit="L")],
    observables=[hl.Observable("Cc", "central/V", unit="mg/L")],
)
"""
EVENTS_CSV = "ID,TIME,EVID,AMT,CMT\n1,0,1,100,1\n1,12,1,50,1\n"


def _run(*args: str | Path) -> object:
    return CliRunner().invoke(app, [str(a) for a in args])


def test_simulate_with_a_store_records_and_reruns_identically(tmp_path: Path) -> None:
    store = tmp_path / "store"
    model_file, events = tmp_path / "decay.py", tmp_path / "events.csv"
    model_file.write_text(MODEL_PY)
    events.write_text(EVENTS_CSV)
    doc = validated(
        _run(
            "simulate",
            model_file,
            "--events",
            events,
            "--t-end",
            "24h",  # type: ignore[arg-type]
            "--dt",
            "1h",
            "--out",
            tmp_path / "r.parquet",
            "--store",
            store,
            "--json",
        ),
        "simulate",
    )
    exp_id = doc["experiment"]
    listed = validated(_run("experiments", "list", "--store", store, "--json"), "experiments-list")  # type: ignore[arg-type]
    assert [e["id"] for e in listed["experiments"]] == [exp_id]
    assert listed["experiments"][0]["status"] == "complete"
    shown = validated(
        _run("experiments", "show", exp_id, "--store", store, "--json"),  # type: ignore[arg-type]
        "experiments-show",
    )
    assert shown["model"]["name"] == "decay_pk" and shown["solver"]["rtol"] == 1e-6
    assert {f["name"] for f in shown["inputs"]} == {"model.py", "events.csv"}
    results = {f["name"]: f for f in shown["results"]}
    assert set(results) == {"result.parquet", "result.events.parquet"}  # applied doses too
    stored = pq.read_table(results["result.parquet"]["path"])
    assert stored.equals(pq.read_table(tmp_path / "r.parquet"))
    assert set(stored["run_id"].to_pylist()) == {exp_id}  # DATA-FORMATS §C: the experiment id

    # the rerun reads the stored copies: the originals may be gone
    model_file.unlink()
    events.write_text("ID,TIME,EVID,AMT,CMT\n1,0,1,999,1\n")
    again = validated(
        _run("experiments", "rerun", exp_id, "--store", store, "--json"),  # type: ignore[arg-type]
        "experiments-rerun",
    )
    assert again["identical"] and again["original"] == exp_id and again["status"] == "complete"
    child = ExperimentStore(store).get(again["rerun"])
    assert child.parent == exp_id

    # a stored input changed behind the store's back: refused, nothing run
    Path(shown["inputs"][0]["path"]).write_bytes(b"tampered")
    assert_bad_input(_run("experiments", "rerun", exp_id, "--store", store), "was modified")  # type: ignore[arg-type]
    assert len(ExperimentStore(store).list()) == 2
    assert_bad_input(
        _run("experiments", "show", "E20260101T000000-abcdef", "--store", store),  # type: ignore[arg-type]
        "no experiment 'E20260101T000000-abcdef'",
    )
    assert_bad_input(_run("experiments", "list", "--store", tmp_path / "none"), "no experiments")  # type: ignore[arg-type]
    assert_bad_input(
        _run("experiments", "list", "--store", store, "--status", "done"),  # type: ignore[arg-type]
        "--status must be one of",
    )


def test_a_virtual_population_reruns_identically_from_its_seed(tmp_path: Path) -> None:
    store = tmp_path / "store"
    doc = validated(
        _run(
            "simulate",
            "friberg_docetaxel",
            "--population",
            "24",
            "--seed",
            "5",  # type: ignore[arg-type]
            "--t-end",
            "240h",
            "--dt",
            "24h",
            "--chunk-size",
            "10",
            "--out",
            tmp_path / "pop.parquet",
            "--store",
            store,
            "--json",
        ),
        "simulate",
    )
    rec = ExperimentStore(store).get(doc["experiment"])
    assert rec.seed == 5 and rec.model_name == "friberg_docetaxel"
    assert rec.results["result.parquet"].n_rows == pq.read_table(tmp_path / "pop.parquet").num_rows
    assert rec.inputs["model.xml"].path.read_text().lstrip().startswith("<?xml")
    again = validated(
        _run("experiments", "rerun", rec.id, "--store", store, "--json"),  # type: ignore[arg-type]
        "experiments-rerun",
    )
    assert again["identical"], again


def test_a_failed_simulation_is_recorded_as_failed(tmp_path: Path) -> None:
    store = tmp_path / "store"
    model_file = tmp_path / "decay.py"
    model_file.write_text(MODEL_PY)
    bad = tmp_path / "events.csv"
    bad.write_text("ID,TIME,EVID,AMT,CMT\n1,0,1,100,7\n")
    assert_bad_input(
        _run(
            "simulate",
            model_file,
            "--events",
            bad,
            "--out",  # type: ignore[arg-type]
            tmp_path / "r.parquet",
            "--store",
            store,
        ),
        "CMT",
    )
    (rec,) = ExperimentStore(store).list()
    assert rec.status == "failed" and "CMT" in (rec.error or "")
    assert json.loads(json.dumps(rec.to_json()))["results"] == []
