"""The result table of DATA-FORMATS §C: columns, types, order, status, files, metadata."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import hemolab as hl
from hemolab._simulate import get_compiled

COLUMNS = [
    "run_id",
    "scenario",
    "patient_id",
    "replicate",
    "occasion",
    "time",
    "variable",
    "value",
    "unit",
    "kind",
    "status",
]
SORT_KEYS = ["run_id", "scenario", "patient_id", "replicate", "variable", "occasion", "time"]
EVENT_COLUMNS = [
    "run_id",
    "scenario",
    "patient_id",
    "replicate",
    "time",
    "kind",
    "product",
    "amount",
    "unit",
]
STATUS_LABELS = [s.label for s in hl.Status if s != hl.Status.RUNNING]
SOLVER = {"rtol": 1e-8, "atol": 1e-10}


def text_dataset(rows: list[dict[str, object]]) -> pd.DataFrame:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    return pd.DataFrame([[str(row.get(c, ".")) for c in columns] for row in rows], columns=columns)


@pytest.fixture(scope="module")
def decay() -> hl.Model:
    return hl.Model(
        "decay",
        time_unit="d",
        # nonlinear, so it is integrated step by step (a linear one is solved in closed form)
        states=[hl.State("x", "-k*x*(1 + x/xs)", initial=1.0, unit="mg")],
        parameters=[hl.Parameter("k", 0.1, unit="d-1"), hl.Parameter("xs", 1.0, unit="mg")],
    )


@pytest.fixture(scope="module")
def with_failure(decay: hl.Model) -> hl.Results:
    """Three patients; the fast-decaying one (k = 50/d) runs out of its 60 steps."""
    return hl.simulate(
        decay, t_end=10.0, dt=1.0, params={"k": np.array([0.1, 50.0, 0.3])}, max_steps=60
    )


@pytest.fixture(scope="module")
def two_subjects(one_cmt: hl.Model) -> hl.Results:
    """Two subjects (ids given in reverse order), doses, a reset and dose at 6 h."""
    rows = [
        {"ID": "b", "TIME": 0, "EVID": 1, "AMT": 100, "CMT": 1},
        {"ID": "b", "TIME": 3, "EVID": 0},
        {"ID": "b", "TIME": 6, "EVID": 4, "AMT": 50, "CMT": 2},
        {"ID": "b", "TIME": 7.5, "EVID": 0},
        {"ID": "a", "TIME": 0, "EVID": 1, "AMT": 2, "AMT_UNIT": "mg/kg", "CMT": 2, "WT": 60},
        {"ID": "a", "TIME": 2.5, "EVID": 0, "WT": 60},
    ]
    return hl.simulate(
        one_cmt,
        text_dataset(rows),
        t_end=12.0,
        dt=3.0,
        run_id="r1",
        scenario="arm-A",
        patient_ids=["P2", "P1"],
        **SOLVER,
    )


# --- the long table -------------------------------------------------------------------------


def test_columns_in_order_with_arrow_types(two_subjects: hl.Results) -> None:
    table = two_subjects.to_arrow()
    assert table.column_names == COLUMNS
    schema = table.schema
    for name in ("run_id", "scenario", "patient_id"):
        assert schema.field(name).type == pa.string()
    assert schema.field("replicate").type == pa.int32()
    assert schema.field("occasion").type == pa.int32()
    assert schema.field("time").type == pa.float64()
    assert schema.field("value").type == pa.float64()
    for name in ("variable", "unit", "kind", "status"):
        t = schema.field(name).type
        assert pa.types.is_dictionary(t) and t.value_type == pa.string(), name


def test_rows_sorted_by_the_section_c_keys(two_subjects: hl.Results) -> None:
    df = two_subjects.to_pandas()
    keys = df[SORT_KEYS].astype({"variable": str})
    resorted = keys.sort_values(SORT_KEYS, kind="stable")
    assert resorted.index.tolist() == keys.index.tolist()
    assert df["patient_id"].unique().tolist() == ["P1", "P2"]  # given as P2, P1
    assert df["variable"].astype(str).unique().tolist() == ["Cc", "central", "depot"]
    # the reset patient: occasion 1 before 6 h, occasion 2 from the (post-event) grid time 6 h
    p2 = df[(df["patient_id"] == "P2") & (df["variable"] == "central")]
    assert p2["occasion"].tolist() == [1, 1, 2, 2, 2, 2]
    assert p2["time"].tolist() == [0.0, 3.0, 6.0, 7.5, 9.0, 12.0]
    p1 = df[(df["patient_id"] == "P1") & (df["variable"] == "central")]
    assert p1["time"].tolist() == [0.0, 2.5, 3.0, 6.0, 9.0, 12.0]
    np.testing.assert_allclose(p1["value"], 120 * np.exp(-0.2 * p1["time"]), rtol=1e-6)
    assert set(df["run_id"]) == {"r1"} and set(df["scenario"]) == {"arm-A"}
    assert set(df["replicate"]) == {0}


def test_units_and_kinds(two_subjects: hl.Results) -> None:
    df = two_subjects.to_pandas()
    per_var = df.groupby("variable", observed=True)[["unit", "kind"]].first()
    assert per_var.astype(str).to_dict("index") == {
        "Cc": {"unit": "mg/L", "kind": "observable"},
        "central": {"unit": "mg", "kind": "state"},
        "depot": {"unit": "mg", "kind": "state"},
    }


def test_values_are_nan_where_the_status_is_not_ok(with_failure: hl.Results) -> None:
    assert with_failure.status_labels == ["ok", "max_steps", "ok"]
    df = with_failure.to_pandas()
    failed = df[df["patient_id"] == "V0000001"]
    assert len(failed) == 11 and failed["value"].isna().all()
    assert set(failed["status"].astype(str)) == {"max_steps"}
    assert failed["time"].tolist() == list(np.arange(11.0))  # the rows are still there
    fine = df[df["patient_id"] != "V0000001"]
    assert fine["value"].notna().all() and set(fine["status"].astype(str)) == {"ok"}
    ok0 = fine[fine["patient_id"] == "V0000000"]
    # Bernoulli: 1/x = (1/x0 + 1/xs) e^{kt} - 1/xs with x0 = xs = 1
    np.testing.assert_allclose(ok0["value"], 1 / (2 * np.exp(0.1 * ok0["time"]) - 1), rtol=1e-5)
    # every label of the shared enum is in the dictionary, in one fixed order
    status = with_failure.to_arrow().column("status").combine_chunks()
    assert status.dictionary.to_pylist() == sorted(STATUS_LABELS)
    counts = dict.fromkeys(STATUS_LABELS, 0) | {"ok": 2, "max_steps": 1}
    assert with_failure.summary()["status"] == counts


def test_throw_names_the_failed_batch_index(decay: hl.Model) -> None:
    with pytest.raises(hl.SolveError, match="batch indices: 1") as exc:
        hl.simulate(
            decay,
            t_end=10.0,
            dt=1.0,
            params={"k": np.array([0.1, 50.0, 0.3])},
            max_steps=60,
            throw=True,
        )
    assert exc.value.indices == (1,)


def test_to_polars_agrees_with_to_pandas(two_subjects: hl.Results) -> None:
    pdf = two_subjects.to_pandas()
    pldf = two_subjects.to_polars()
    assert pldf.columns == COLUMNS
    for name in COLUMNS:
        left = pldf[name].to_list()
        right = pdf[name].astype(object if name != "value" else float).tolist()
        if name == "value":
            np.testing.assert_array_equal(np.array(left, dtype=float), np.array(right))
        else:
            assert left == [
                str(x) if name in ("variable", "unit", "kind", "status") else x for x in right
            ], name


def test_wide_agrees_with_to_pandas(two_subjects: hl.Results, with_failure: hl.Results) -> None:
    for res in (two_subjects, with_failure):
        long = res.to_pandas()
        wide = res.wide()
        assert list(wide.columns[:4]) == ["patient_id", "replicate", "occasion", "time"]
        for name in res.variables:
            part = long[long["variable"] == name]
            np.testing.assert_array_equal(wide[name].to_numpy(), part["value"].to_numpy())
            for key in ("patient_id", "replicate", "occasion", "time"):
                assert wide[key].tolist() == part[key].tolist(), key
        status = long[long["variable"] == res.variables[0]]["status"].astype(str)
        assert wide["status"].tolist() == status.tolist()


# --- files ----------------------------------------------------------------------------------


def test_write_parquet_round_trip_and_metadata(
    two_subjects: hl.Results, one_cmt: hl.Model, tmp_path: Path
) -> None:
    path = two_subjects.write_parquet(tmp_path / "sub" / "res.parquet")
    assert path.is_file()
    assert sorted(p.name for p in path.parent.iterdir()) == ["res.events.parquet", "res.parquet"]
    back = pq.read_table(path)
    assert back.schema.equals(two_subjects.to_arrow().schema, check_metadata=False)
    pd.testing.assert_frame_equal(back.to_pandas(), two_subjects.to_pandas())
    meta = hl.read_metadata(path)
    assert meta["hemolab.version"] == hl.__version__
    assert meta["hemolab.model"] == "one_cmt"
    assert meta["hemolab.model_hash"] == get_compiled(one_cmt).hash
    assert meta["hemolab.solver"] == "dopri5"
    assert float(meta["hemolab.rtol"]) == 1e-8 and float(meta["hemolab.atol"]) == 1e-10
    assert meta["hemolab.time_unit"] == "h"
    for key in (
        "hemolab.max_steps",
        "hemolab.inputs_hash",
        "hemolab.events_file",
        "hemolab.seed",
        "hemolab.created",
        "hemolab.host",
    ):
        assert key in meta, key


def test_events_parquet_beside_the_result(two_subjects: hl.Results, tmp_path: Path) -> None:
    path = two_subjects.write_parquet(tmp_path / "res.parquet")
    events = pq.read_table(tmp_path / "res.events.parquet")
    names = events.column_names
    # §C's columns in §C's order; `target` (state or parameter) is design note 003's addition
    assert [c for c in names if c in EVENT_COLUMNS] == EVENT_COLUMNS
    assert set(names) - set(EVENT_COLUMNS) <= {"target"}
    df = events.to_pandas()
    assert set(df["run_id"]) == {"r1"} and set(df["scenario"]) == {"arm-A"}
    assert events.schema.field("replicate").type == pa.int32()
    # sorted by patient, then time (like the result table): "a" gets 2 mg/kg × 60 kg = 120 mg
    # into central; "b" gets 100 mg into depot, a reset and 50 mg into central at 6 h
    assert df["patient_id"].tolist() == sorted(df["patient_id"])
    assert df["time"].tolist() == [0.0, 0.0, 6.0, 6.0]
    assert df["kind"].tolist() == ["bolus", "bolus", "reset", "bolus"]
    np.testing.assert_array_equal(df["amount"], [120.0, 100.0, np.nan, 50.0])
    assert events.column("unit").to_pylist() == ["mg", "mg", None, "mg"]
    assert events.column("product").null_count == 4
    assert path.is_file()


def test_event_patient_ids_follow_the_results(two_subjects: hl.Results) -> None:
    ids = set(two_subjects.events.column("patient_id").to_pylist())
    assert ids <= set(two_subjects.patient_ids)


def test_no_events_file_without_a_dataset(with_failure: hl.Results, tmp_path: Path) -> None:
    stale = tmp_path / "res.events.parquet"
    stale.write_bytes(b"from an earlier run")
    with_failure.write_parquet(tmp_path / "res.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res.parquet"]  # stale one removed


def test_write_is_atomic(
    with_failure: hl.Results, decay: hl.Model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "res.parquet"
    with_failure.write_parquet(path)
    before = path.read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["res.parquet"]  # no .tmp left

    import hemolab.results._results as results_module

    def broken(table: pa.Table, where: object, **kw: object) -> None:
        Path(str(where)).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(results_module.pq, "write_table", broken)
    other = hl.simulate(decay, t_end=2.0, dt=1.0)
    with pytest.raises(OSError, match="disk full"):
        other.write_parquet(path)
    assert path.read_bytes() == before  # replaced only on success
    assert [p.name for p in tmp_path.iterdir()] == ["res.parquet"]
    monkeypatch.undo()
    other.write_parquet(path)
    assert pq.read_table(path).num_rows == 3
    assert [p.name for p in tmp_path.iterdir()] == ["res.parquet"]


def test_same_experiment_same_metadata(decay: hl.Model) -> None:
    a = hl.simulate(decay, t_end=5.0, dt=1.0, run_id="same")
    b = hl.simulate(decay, t_end=5.0, dt=1.0, run_id="same")
    assert dict(a.metadata) == dict(b.metadata)


# --- chunking -------------------------------------------------------------------------------


def test_bitwise_identical_when_a_patient_moves_to_another_chunk(one_cmt: hl.Model) -> None:
    """A patient's values do not depend on its batch neighbours or the chunk size."""
    rng = np.random.default_rng(7)
    n = 10
    cl = rng.uniform(0.5, 5.0, n)
    amt = rng.uniform(10, 200, n).round(3)
    rows = []
    for i in range(n):
        rows += [
            {"ID": i, "TIME": 0, "EVID": 1, "AMT": amt[i], "CMT": 1},
            {"ID": i, "TIME": 1.7 + i / 10, "EVID": 0},
        ]
    full = hl.simulate(
        one_cmt, text_dataset(rows), t_end=24.0, dt=3.0, params={"CL": cl}, chunk_size=4
    )
    # patient 6 sat in the second chunk of 4 (with 4, 5, 7); now it goes first, among others
    pick = [6, 0, 9, 3, 8, 1]
    sub_rows = [r for i in pick for r in rows if r["ID"] == i]
    moved = hl.simulate(
        one_cmt,
        text_dataset(sub_rows),
        t_end=24.0,
        dt=3.0,
        params={"CL": cl[pick]},
        chunk_size=64,
    )
    assert full.status_labels == ["ok"] * n and moved.status_labels == ["ok"] * len(pick)
    for j, i in enumerate(pick):
        np.testing.assert_array_equal(moved.values[j], full.values[i])
        np.testing.assert_array_equal(moved.time[j], full.time[i])
