"""``hemolab import LABS --events EVENTS``: a dosing history stored with the labs, on one clock.

DATA-FORMATS §0: an events file's ``ID`` is a source identifier matched through the key table,
and the patient's anchor is fixed across all sources at the first import. A stored history is
checked against the model when it is calibrated, and gives the same fit as the same two files
calibrated directly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from typer.testing import CliRunner, Result

from hemolab import DatasetError
from hemolab.cli import app
from hemolab.cli._schemas import load_schema
from hemolab.cli._showcase import MRN, write_showcase_bundle
from hemolab.patients import read_labs
from hemolab.patients._event_history import read_event_history
from hemolab.patients._keys import KeyTable, generate_key, read_key
from hemolab.store import Store, StoreError

# a red-cell top-up of 1.5 g/dL ten days after the fourth CBC, into the youngest red cells
TOP_UP = f"ID,DATETIME,EVID,AMT,CMT\n{MRN},2026-08-14T10:30:00Z,1,1.5,Hb1\n"
IDENTIFIERS = (MRN, "7730021", "2026-08-14", "2026-05-04", "Grace")


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def clean(*texts: str) -> None:
    for text in texts:
        for ident in IDENTIFIERS:
            assert ident not in text, ident


@pytest.fixture(scope="module")
def showcase(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("events")
    bundle = write_showcase_bundle(d / "bundle.json")
    events = d / "events.csv"
    events.write_text(TOP_UP)
    key = d / "key"
    assert run("keygen", "--key-file", key).exit_code == 0
    res = run("import", bundle, "--events", events, "--store", d / "store", "--key-file", key,
              "--json")  # fmt: skip
    assert res.exit_code == 0, res.output
    clean(res.output)
    jsonschema.Draft202012Validator(load_schema("import")).validate(json.loads(res.stdout))
    return {"dir": d, "bundle": bundle, "events": events, "key": key, "store": d / "store",
            "import": json.loads(res.stdout)}  # fmt: skip


def test_events_join_the_fhir_patient_by_mrn_on_the_labs_clock(showcase: dict[str, Any]) -> None:
    doc = showcase["import"]
    (patient,) = doc["patients"]
    assert doc["n_events"] == 1 and patient["n_events"] == 1 and patient["new"]
    with Store(showcase["store"]) as st:
        (row,) = st.event_rows(patient["pseudonym"])
        trail = st.audit_trail(patient["pseudonym"])
        raw = st._db.execute("SELECT * FROM events").fetchall()
    # May 4 08:30 to Aug 14 10:30: 102 days and 2 hours on the labs' clock (anchor: first CBC)
    assert row["TIME"] == pytest.approx(102 * 24 + 2, abs=1e-9)
    assert row == {"TIME": row["TIME"], "EVID": "1", "AMT": "1.5", "CMT": "Hb1"}
    assert any(t["detail"].endswith("1 events") for t in trail)
    clean(repr(raw))
    # idempotent: the same files again add nothing
    again = run("import", showcase["bundle"], "--events", showcase["events"], "--store",
                showcase["store"], "--key-file", showcase["key"], "--json")  # fmt: skip
    p = json.loads(again.stdout)["patients"][0]
    assert p["n_events"] == 0 and p["n_event_duplicates"] == 1 and p["n_values"] == 0


def test_calibrating_the_stored_patient_uses_its_events(
    showcase: dict[str, Any], tmp_path: Path
) -> None:
    pseudonym = showcase["import"]["patients"][0]["pseudonym"]
    stored, direct = tmp_path / "stored.json", tmp_path / "direct.json"
    res = run("calibrate", "marrow_failure_hb", "--store", showcase["store"], "--patient",
              pseudonym, "--method", "map", "--out", stored)  # fmt: skip
    assert res.exit_code == 0, res.output
    assert run("calibrate", "marrow_failure_hb", "--labs", showcase["bundle"], "--events",
               showcase["events"], "--method", "map", "--out", direct).exit_code == 0  # fmt: skip
    a, b = json.loads(stored.read_text()), json.loads(direct.read_text())
    assert a["events"] == b["events"] and len(a["events"]) == 1
    assert a["events"][0]["TIME"] == pytest.approx(102 + 2 / 24, abs=1e-9)  # model unit: days
    for name, value in b["estimate"].items():
        assert a["estimate"][name] == pytest.approx(value, rel=1e-8), name
    clean(res.output, stored.read_text())
    with Store(showcase["store"]) as st:
        actions = [t["action"] for t in st.audit_trail(pseudonym)]
    assert actions.count("calibrate") >= 2  # the labs and the events were read, and audited


def test_bad_events_are_refused_and_nothing_is_stored(
    showcase: dict[str, Any], tmp_path: Path
) -> None:
    store, key = showcase["store"], showcase["key"]
    with Store(store) as st:
        before = st._db.execute("SELECT count(*) FROM events").fetchone()
        labs_before = st._db.execute("SELECT count(*) FROM lab_values").fetchone()

    def refused(text: str, *fragments: str, extra: tuple[str, ...] = ()) -> None:
        path = tmp_path / "bad.csv"
        path.write_text(text)
        res = run("import", showcase["bundle"], "--events", path, "--store", store,
                  "--key-file", key, *extra)  # fmt: skip
        assert res.exit_code == 2, res.output
        assert "Traceback" not in res.output
        for f in fragments:
            assert f in res.output, (f, res.output)
        clean(res.output)

    # every malformed row at once, each named by row and column
    refused(
        f"ID,DATETIME,EVID,AMT,CMT\n{MRN},2026-08-14,1,1.5,Hb1\n,2026-08-15T00:00:00Z,1,1,Hb1\n"
        f"{MRN},2026-08-16T00:00:00Z,9,1,Hb1\nMRN-1,2026-08-16T00:00:00Z,1,1,Hb1\n"
        f"{MRN},2026-08-17T00:00:00Z,1,1,Hb1\n",
        "4 problems", "row 1, column DATETIME", "row 2, column ID", "row 3, column EVID",
        "row 5, column ID: this patient's rows are not contiguous",
    )  # fmt: skip
    refused("ID,DATETIME,EVID,AMT,CMT\nMRN-0000000,2026-08-14T10:30:00Z,1,1.5,Hb1\n",
            "rows 1: the ID is no patient of the lab history or of the store")  # fmt: skip
    refused(f"ID,TIME,EVID,AMT,CMT\n{MRN},100,1,1.5,Hb1\n", "pass --time-unit")
    refused(f"ID,TIME,EVID,AMT,CMT\n{MRN},100,1,1.5,Hb1\n", "one patient has one clock",
            extra=("--time-unit", "d"))  # fmt: skip
    refused("EVID,AMT\n1,2\n", "column ID: missing", "exactly one of TIME")
    # nothing free-text is stored: a comment column, a name in a named column, mixing's DONOR
    refused(
        f"ID,DATETIME,EVID,AMT,CMT,NOTE,EVENT,DONOR,PRODUCT\n"
        f"{MRN},2026-08-14T10:30:00Z,1,1.5,Hb1,Grace Hopper,,,\n"
        f"{MRN},2026-08-15T10:30:00Z,1,x,Hb 1,,,,\n"
        f"{MRN},2026-08-16T10:30:00Z,2,,,,mix,{MRN},\n"
        f"{MRN},2026-08-17T10:30:00Z,2,,,,transfusion,,PLASMA-X\n",
        "6 problems", "row 1, column NOTE: expected a number (a covariate; free text",
        "row 2, column AMT: expected a number", "row 2, column CMT: expected a state",
        "row 3, column EVENT: sample mixing cannot be imported", "row 3, column DONOR",
        "row 4, column PRODUCT: expected one of PLASMA, PLT_APH",
    )  # fmt: skip
    with Store(store) as st:
        assert st._db.execute("SELECT count(*) FROM events").fetchone() == before
        assert st._db.execute("SELECT count(*) FROM lab_values").fetchone() == labs_before


def test_numeric_clocks_convert_durations_to_hours_and_bad_rows_fail_at_calibration(
    tmp_path: Path,
) -> None:
    labs = tmp_path / "labs.csv"
    values = "".join(f"7,{t},718-7,{13 - t / 30:.2f},g/dL\n" for t in range(0, 181, 30))
    labs.write_text("patient_id,time,loinc,value,unit\n" + values)
    events = tmp_path / "ev.csv"
    events.write_text("ID,TIME,EVID,AMT,CMT,II,ADDL,DUR\n7,10,1,1.0,Hb1,7,2,\n7,50,1,1,Hb1,,,0.5\n")
    history = read_event_history(events, time_unit="d")
    assert [r.time_h for r in history.rows] == [240.0, 1200.0]
    assert history.rows[0].fields["II"] == 168.0 and history.rows[1].fields["DUR"] == 12.0
    assert {r.source_id for r in history.rows} == {"7"}
    key = read_key(generate_key(tmp_path / "k"))
    with Store(tmp_path / "s") as st:
        keys = KeyTable(st.path, key)
        summary = st.import_labs(read_labs(labs, time_unit="d"), keys, source_bytes=b"l",
                                 events=history, events_bytes=b"e")  # fmt: skip
        (pseudonym,) = summary.patients
        rows = st.event_rows(pseudonym)
    assert summary.n_events == 2 and [r["TIME"] for r in rows] == [240.0, 1200.0]
    with pytest.raises(DatasetError, match=r"pass --time-unit"):
        read_event_history(events)
    # a compartment the model does not have is caught when the model meets the events
    bad = tmp_path / "bad.csv"
    bad.write_text("ID,TIME,EVID,AMT,CMT\n7,20,1,1.0,Spleen\n")
    with Store(tmp_path / "s") as st:
        wrong = read_event_history(bad, time_unit="d")
        st.import_labs(read_labs(labs, time_unit="d"), KeyTable(st.path, key), source_bytes=b"l",
                       events=wrong, events_bytes=b"b")  # fmt: skip
    res = run("calibrate", "marrow_failure_hb", "--store", tmp_path / "s", "--patient", pseudonym,
              "--method", "map", "--out", tmp_path / "f.json")  # fmt: skip
    assert res.exit_code == 2 and f"the events of {pseudonym}" in res.output and "CMT" in res.output
    assert not (tmp_path / "f.json").exists()
    with pytest.raises(StoreError, match="one patient has one clock"), Store(tmp_path / "s") as st:
        dated = tmp_path / "dated.csv"
        dated.write_text("ID,DATETIME,EVID,AMT,CMT\n7,2026-01-01T00:00:00Z,1,1,Hb1\n")
        st.import_labs(read_labs(labs, time_unit="d"), KeyTable(st.path, key), source_bytes=b"l",
                       events=read_event_history(dated), events_bytes=b"d")  # fmt: skip
