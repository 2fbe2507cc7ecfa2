"""The audit trail: an HMAC-chained log whose key and head live apart from the store.

``hemolab audit verify`` must detect any modification, insertion, removal, reordering or
truncation by someone without the key (design note 028); ``hemolab audit report`` shows who
accessed a patient, web users and OS users alike.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import multiprocessing
import os
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from hemolab.audit import Actor, AuditError, AuditLog, audit_key_dir
from hemolab.cli import app
from hemolab.cli._schemas import load_schema
from hemolab.patients import read_labs
from hemolab.patients._keys import KeyTable, generate_key, read_key
from hemolab.store import Store

MRN = "MRN-5550001234"
LABS = f"""patient_id,datetime,loinc,value,unit
{MRN},2024-03-05T08:00:00+00:00,718-7,11.0,g/dL
{MRN},2024-03-06T08:00:00+00:00,718-7,10.5,g/dL
"""
ALICE = Actor("alice", "web", "10.0.0.7")
MALLORY = Actor("mallory", "web", "10.0.0.66")


@pytest.fixture
def store(tmp_path: Path) -> tuple[Path, str, bytes]:
    """A store with one imported patient, read once by alice and once by mallory."""
    key = read_key(generate_key(tmp_path / "secret" / "k"))
    path = tmp_path / "store"
    (tmp_path / "l.csv").write_text(LABS)
    with Store(path) as st:
        summary = st.import_labs(read_labs(tmp_path / "l.csv"), KeyTable(path, key),
                                 source_bytes=LABS.encode())  # fmt: skip
    (pseudonym,) = summary.patients
    for who in (ALICE, MALLORY):
        with Store(path, actor=who) as st:
            st.lab_values(pseudonym)
    return path, pseudonym, key


def _lines(path: Path) -> list[str]:
    return (path / "audit.log").read_text().splitlines(keepends=True)


def _write(path: Path, lines: list[str]) -> None:
    (path / "audit.log").write_text("".join(lines))


def _valid(stdout: str, schema: str) -> dict:
    doc = json.loads(stdout)
    jsonschema.Draft202012Validator(load_schema(schema)).validate(doc)
    return doc


def _problems(path: Path) -> list[str]:
    result = AuditLog(path).verify()
    assert result.ok == (not result.problems)
    return result.problems


def test_every_access_is_chained_and_verifies(store: tuple[Path, str, bytes]) -> None:
    path, pseudonym, _ = store
    with Store(path) as st:
        trail = st.audit_trail(pseudonym)
    assert [(t["actor"], t["via"], t["action"]) for t in trail] == [
        (trail[0]["actor"], "cli", "import"),
        ("alice", "web", "read"),
        ("mallory", "web", "read"),
    ]
    assert trail[1]["origin"] == "10.0.0.7" and trail[2]["detail"] == "2 lab values"
    result = AuditLog(path).verify()
    assert result.ok and result.n_entries == 3 and not result.notes
    res = CliRunner().invoke(app, ["audit", "verify", "--store", str(path), "--json"])
    assert res.exit_code == 0 and _valid(res.stdout, "audit-verify")["n_entries"] == 3
    text = CliRunner().invoke(app, ["audit", "verify", "--store", str(path)])
    assert text.exit_code == 0 and "3 entries, intact" in " ".join(text.output.split())
    # the key and head are apart from the store, owner-only
    key_dir = audit_key_dir(path)
    assert not key_dir.is_relative_to(path)
    assert {p.name for p in key_dir.iterdir()} == {"key.json", "head.json"}
    assert (key_dir / "key.json").stat().st_mode & 0o077 == 0
    head = json.loads((key_dir / "head.json").read_text())
    assert head["count"] == 3 and head["mac"] == json.loads(_lines(path)[-1])["mac"]
    # nothing identifying in the log
    assert MRN not in (path / "audit.log").read_text()


@pytest.mark.parametrize(
    "tamper, expected",
    [
        ("modify", "MAC does not match"),
        ("delete middle", "entries removed"),
        ("insert forged", "MAC does not match"),
        ("insert garbage", "not an audit entry"),
        ("swap", "where entry"),
        ("truncate last", "cut off the end"),
        ("truncate all", "cut off the end"),
        ("replace last", "MAC does not match"),
        ("duplicate", "inserted or repeated"),
    ],
)
def test_verify_detects_tampering_without_the_key(
    store: tuple[Path, str, bytes], tamper: str, expected: str
) -> None:
    path, _, _ = store
    lines = _lines(path)
    entries = [json.loads(x) for x in lines]
    if tamper == "modify":  # mallory rewrites her own read as alice's
        entries[2]["user"] = "alice"
        lines[2] = json.dumps(entries[2], sort_keys=True) + "\n"
    elif tamper == "delete middle":
        lines = [lines[0], lines[2]]
    elif tamper == "insert forged":
        forged = dict(entries[1], user="bob", seq=2)
        forged["mac"] = hmac.new(b"guess", b"x", hashlib.sha256).hexdigest()
        lines.insert(1, json.dumps(forged, sort_keys=True) + "\n")
    elif tamper == "insert garbage":
        lines.insert(1, "not json at all\n")
    elif tamper == "swap":
        lines[1], lines[2] = lines[2], lines[1]
    elif tamper == "truncate last":
        lines = lines[:-1]
    elif tamper == "truncate all":
        lines = []
    elif tamper == "replace last":
        entries[2]["detail"] = "0 lab values"
        lines[2] = json.dumps(entries[2], sort_keys=True) + "\n"
    elif tamper == "duplicate":
        lines.insert(2, lines[1])
    _write(path, lines)
    problems = _problems(path)
    assert problems and any(expected in p for p in problems), problems
    # the CLI says so and exits 1
    res = CliRunner().invoke(app, ["audit", "verify", "--store", str(path), "--json"])
    assert res.exit_code == 1 and not _valid(res.stdout, "audit-verify")["ok"]


def test_the_head_catches_what_the_chain_alone_cannot(store: tuple[Path, str, bytes]) -> None:
    """Cutting the last entry leaves a valid chain: only the head, kept with the key, shows it;
    then the next append keeps chaining from the head, so the gap stays visible."""
    path, pseudonym, _ = store
    _write(path, _lines(path)[:-1])
    assert any("head says 3" in p for p in _problems(path))
    with Store(path, actor=ALICE) as st:
        st.lab_values(pseudonym)
    assert any("entries removed" in p for p in _problems(path))


def test_an_interrupted_append_is_recognised_and_repaired(store: tuple[Path, str, bytes]) -> None:
    path, pseudonym, _ = store
    head = audit_key_dir(path) / "head.json"
    before = head.read_bytes()
    with Store(path, actor=ALICE) as st:
        st.lab_values(pseudonym)
    head.write_bytes(before)  # the process died between the line and the head
    result = AuditLog(path).verify()
    assert result.ok and any("one entry ahead" in n for n in result.notes)
    # a torn line (power cut mid-write) is left aside by the next append
    with (path / "audit.log").open("a") as fh:
        fh.write('{"seq": 5, "at": "2024')
    result = AuditLog(path).verify()
    assert result.ok and any("torn last line" in n for n in result.notes), result
    with Store(path, actor=ALICE) as st:
        st.lab_values(pseudonym)
    result = AuditLog(path).verify()
    assert result.ok and result.n_entries == 5, result


def test_a_missing_key_refuses_access_and_a_wrong_key_fails_verify(
    store: tuple[Path, str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, pseudonym, _ = store
    monkeypatch.setenv("HEMOLAB_AUDIT_DIR", str(tmp_path / "elsewhere"))
    with Store(path, actor=ALICE) as st, pytest.raises(AuditError, match="HEMOLAB_AUDIT_DIR"):
        st.lab_values(pseudonym)  # no read without a trail
    monkeypatch.undo()
    key_file = audit_key_dir(path) / "key.json"
    doc = json.loads(key_file.read_text())
    doc["keys"]["1"] = os.urandom(32).hex()
    key_file.write_text(json.dumps(doc))
    assert sum("MAC does not match" in p for p in _problems(path)) == 3


def test_rotation_signs_on_with_a_new_key_and_old_key_forgeries_show(
    store: tuple[Path, str, bytes],
) -> None:
    """After a rotation, whoever holds the old key can no longer rewrite history: the first
    entry under the new key seals the old entries' last MAC."""
    path, pseudonym, _ = store
    res = CliRunner().invoke(app, ["audit", "rotate-key", "--store", str(path)])
    assert res.exit_code == 0, res.output
    with Store(path, actor=ALICE) as st:
        st.lab_values(pseudonym)
    assert AuditLog(path).verify().ok
    entries = [json.loads(x) for x in _lines(path)]
    assert [e["epoch"] for e in entries] == [1, 1, 1, 2, 2]
    # forge with the old key: rewrite mallory's read as alice's and re-MAC entries 3..
    keys = json.loads((audit_key_dir(path) / "key.json").read_text())
    old = bytes.fromhex(keys["keys"]["1"])
    from hemolab.audit._log import _mac

    entries[2]["user"] = "alice"
    entries[2]["mac"] = _mac(old, entries[2])
    _write(path, [json.dumps(e, sort_keys=True) + "\n" for e in entries])
    assert any("does not follow" in p for p in _problems(path))
    # a log that does not verify is not rotated (that would launder it)
    res = CliRunner().invoke(app, ["audit", "rotate-key", "--store", str(path)])
    assert res.exit_code == 2 and "does not verify" in res.output


def _append_many(store: str, who: str, n: int) -> None:
    log = AuditLog(store)
    for i in range(n):
        log.append(Actor(who, "cli", "test"), "read", "P0000000001", f"{i}")


def test_concurrent_appends_from_two_processes_keep_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "store"
    AuditLog(path).append(ALICE, "start")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(str(path), who, 40)) for who in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    result = AuditLog(path).verify()
    assert result.ok and result.n_entries == 81


def test_the_old_database_table_moves_into_the_log(tmp_path: Path) -> None:
    import duckdb

    path = tmp_path / "store"
    path.mkdir()
    con = duckdb.connect(str(path / "hemolab.duckdb"))
    con.execute("CREATE TABLE audit (at_time TIMESTAMPTZ NOT NULL, actor TEXT NOT NULL, "
                "action TEXT NOT NULL, pseudonym TEXT, detail TEXT)")  # fmt: skip
    con.execute("INSERT INTO audit VALUES ('2025-01-02 03:04:05+00', 'carol', 'read', "
                "'P00000000AA', '3 lab values')")  # fmt: skip
    con.close()
    with Store(path) as st:
        (entry,) = st.audit_trail("P00000000AA")
        tables = {r[0] for r in st._db.execute("SHOW TABLES").fetchall()}
    assert entry["actor"] == "carol" and entry["at"].year == 2025 and "audit" not in tables
    assert AuditLog(path).verify().ok


def test_audit_report_shows_who_read_the_patient(store: tuple[Path, str, bytes]) -> None:
    path, pseudonym, _ = store
    runner = CliRunner()
    res = runner.invoke(app, ["audit", "report", "--patient", pseudonym, "--store", str(path),
                              "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = _valid(res.stdout, "audit-report")
    assert doc["verified"] and doc["patient"] == pseudonym
    users = {u["user"]: u for u in doc["users"]}
    assert users["mallory"]["n"] == 1 and users["mallory"]["actions"] == ["read"]
    assert [e["origin"] for e in doc["entries"] if e["user"] == "mallory"] == ["10.0.0.66"]
    assert doc["entries"][-1]["action"] == "read audit trail"  # this report is on record too
    table = runner.invoke(app, ["audit", "report", "--patient", pseudonym, "--store", str(path)])
    assert table.exit_code == 0 and "mallory" in table.output and "10.0.0.66" in table.output
    # an identifier given by mistake is refused without being echoed; unknown pseudonyms named
    bad = runner.invoke(app, ["audit", "report", "--patient", MRN, "--store", str(path)])
    assert bad.exit_code == 2 and MRN not in bad.output
    unknown = runner.invoke(app, ["audit", "report", "--patient", "P0123456789",
                                  "--store", str(path)])  # fmt: skip
    assert unknown.exit_code == 2 and "P0123456789" in unknown.output
    # a report over an altered log says so
    lines = _lines(path)
    _write(path, lines[:1] + lines[2:])
    flagged = runner.invoke(app, ["audit", "report", "--patient", pseudonym, "--store",
                                  str(path), "--json"])  # fmt: skip
    assert flagged.exit_code == 0 and not json.loads(flagged.stdout)["verified"]


def test_verify_on_a_store_without_a_log_is_a_clear_error(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["audit", "verify", "--store", str(tmp_path)])
    assert res.exit_code == 2 and "has no audit log" in res.output


def test_using_an_experiment_made_from_a_patient_is_on_the_patients_trail(
    store: tuple[Path, str, bytes],
) -> None:
    from hemolab.experiments import ExperimentStore, patients_of

    path, pseudonym, _ = store
    exps = ExperimentStore(path)
    with exps.start("forecast", spec={"threshold": "Hb<7"}) as made:
        made.add_input("fit.json", data=json.dumps({"patient": pseudonym}).encode())
    with exps.start("simulate", spec={"note": "XP0123456789Y is no pseudonym"}) as virtual:
        virtual.add_input("model.bin", data=b"binary P0123456789 not scanned")
    assert patients_of(exps.get(made.id)) == {pseudonym}
    assert patients_of(exps.get(virtual.id)) == set()
    runner = CliRunner()
    for args in (["experiments", "show", made.id], ["experiments", "show", virtual.id]):
        assert runner.invoke(app, [*args, "--store", str(path)]).exit_code == 0
    (entry,) = [e for e in AuditLog(path).entries(pseudonym) if e["action"] == "show experiment"]
    assert entry["detail"] == f"experiment {made.id}" and entry["via"] == "cli"
