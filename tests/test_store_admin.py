"""Looking after a store: backup and restore (after a simulated disk loss), deleting a
patient, rotating the key table's key. Each leaves an audit entry; none loses what it should
keep."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from hemolab.audit import Actor, AuditLog
from hemolab.cli import app
from hemolab.cli._schemas import load_schema
from hemolab.experiments import ExperimentStore
from hemolab.patients import read_labs
from hemolab.patients._keys import KeyTable, KeyTableError, generate_key, read_key
from hemolab.store import Store, StoreError, backup_store, restore_store

MRN, OTHER = "MRN-3141592653", "MRN-2718281828"
LABS = f"""patient_id,datetime,loinc,value,unit
{MRN},2024-03-05T08:00:00+00:00,718-7,11.0,g/dL
{MRN},2024-03-06T08:00:00+00:00,718-7,10.5,g/dL
{OTHER},2024-01-01T00:00:00+00:00,718-7,13.0,g/dL
"""


@pytest.fixture
def filled(tmp_path: Path) -> dict:
    """A store with two patients, a forecast-free history, and two experiments: one made from
    the first patient's data, one not."""
    key_file = generate_key(tmp_path / "secret" / "k")
    key = read_key(key_file)
    store = tmp_path / "store"
    (tmp_path / "l.csv").write_text(LABS)
    with Store(store) as st:
        summary = st.import_labs(read_labs(tmp_path / "l.csv"), KeyTable(store, key),
                                 source_bytes=LABS.encode())  # fmt: skip
    keys = KeyTable(store, key)
    a, b = keys.lookup(MRN), keys.lookup(OTHER)
    assert a is not None and b is not None and len(summary.patients) == 2
    exps = ExperimentStore(store)
    with exps.start("calibrate", spec={"patient": a.pseudonym}) as mine:
        mine.add_input("fit.json", data=json.dumps({"patient": a.pseudonym}).encode())
    with exps.start("simulate", spec={"model": "friberg"}) as other:
        other.add_input("notes.txt", data=b"virtual patients only")
    return {"store": store, "key": key, "key_file": key_file, "a": a.pseudonym,
            "b": b.pseudonym, "mine": mine.id, "other": other.id}  # fmt: skip


def _valid(stdout: str, schema: str) -> dict:
    doc = json.loads(stdout)
    jsonschema.Draft202012Validator(load_schema(schema)).validate(doc)
    return doc


def _snapshot(store: Path, key: bytes) -> dict:
    with Store(store, actor=Actor("snap", "cli", "test")) as st:
        patients = sorted(r[0] for r in st._db.execute("SELECT pseudonym FROM patients").fetchall())
        values = {p: st.lab_values(p) for p in patients}
    keys = KeyTable(store, key)
    return {
        "values": values,
        "keys": {sid: keys.lookup(sid) for sid in (MRN, OTHER)},
        "experiments": {
            r.id: {n: f.sha256 for n, f in r.inputs.items()} for r in ExperimentStore(store).list()
        },
    }


def test_restore_after_a_disk_loss_brings_back_everything_and_says_what_the_trail_lacks(
    filled: dict, tmp_path: Path
) -> None:
    store, key = filled["store"], filled["key"]
    before = _snapshot(store, key)
    runner = CliRunner()
    res = runner.invoke(app, ["store", "backup", "--store", str(store), "--out",
                              str(tmp_path / "b.tar.gz"), "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = _valid(res.stdout, "store-backup")
    assert doc["files"] >= 6 and doc["bytes"] > 0
    with Store(store, actor=Actor("late", "web", "10.1.1.1")) as st:  # after the backup
        st.lab_values(filled["a"])
    n_before_loss = len(AuditLog(store).entries())
    shutil.rmtree(store)  # the disk is gone; the keys were kept apart
    res = runner.invoke(app, ["store", "restore", str(tmp_path / "b.tar.gz"), "--store",
                              str(store), "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    done = _valid(res.stdout, "store-restore")
    assert done["moved_aside"] is None and "after the backup" in done["audit"]
    after = _snapshot(store, key)
    assert after["values"] == before["values"] and after["keys"] == before["keys"]
    assert after["experiments"] == before["experiments"]
    for record in ExperimentStore(store).list():
        for f in record.inputs.values():
            assert f.path.is_file()
    result = AuditLog(store).verify()
    assert result.ok, result.problems
    assert any("restored from a backup" in n for n in result.notes)
    restore = next(e for e in AuditLog(store).entries() if e["action"] == "restore")
    assert f"the head was {n_before_loss} entries" in restore["detail"]


def test_restore_refuses_an_occupied_target_unless_forced_and_keeps_it(
    filled: dict, tmp_path: Path
) -> None:
    store = filled["store"]
    backup_store(store, tmp_path / "b.tar.gz")
    with pytest.raises(StoreError, match="not empty"):
        restore_store(tmp_path / "b.tar.gz", store)
    (store / "extra-note.txt").write_text("made after the backup")
    done = restore_store(tmp_path / "b.tar.gz", store, force=True)
    aside = Path(done["moved_aside"])
    assert (aside / "extra-note.txt").is_file() and not (store / "extra-note.txt").exists()
    assert AuditLog(store).verify().ok


def _rewrite(src: Path, dest: Path, change) -> None:
    with tarfile.open(src, "r:gz") as tar, tarfile.open(dest, "w:gz") as out:
        for m in tar.getmembers():
            data = tar.extractfile(m).read()  # type: ignore[union-attr]
            m, data = change(m, data)
            if m is not None:
                m.size = len(data)
                out.addfile(m, io.BytesIO(data))


@pytest.mark.parametrize("damage", ["flip a byte", "drop a file", "traversal", "absolute",
                                    "link", "not a backup", "unlisted"])  # fmt: skip
def test_a_damaged_or_hostile_backup_changes_nothing(
    filled: dict, tmp_path: Path, damage: str
) -> None:
    good = tmp_path / "b.tar.gz"
    backup_store(filled["store"], good)
    bad = tmp_path / "bad.tar.gz"
    target = tmp_path / "restored"

    def change(m: tarfile.TarInfo, data: bytes):
        if m.name == "keys.enc":
            if damage == "flip a byte":
                return m, bytes([data[0] ^ 1]) + data[1:]
            if damage == "drop a file":
                return None, data
            if damage in ("traversal", "absolute", "unlisted"):
                m.name = {"traversal": "../escaped.enc", "absolute": "/tmp/escaped.enc",
                          "unlisted": "experiments/surprise.bin"}[damage]  # fmt: skip
            if damage == "link":
                m.type, m.linkname = tarfile.SYMTYPE, "/etc/passwd"
                return m, b""
        return m, data

    if damage == "not a backup":
        bad.write_bytes(b"PK\x03\x04 this is a zip, not a backup")
    else:
        _rewrite(good, bad, change)
    with pytest.raises(StoreError) as err:
        restore_store(bad, target)
    assert "bad.tar.gz" in str(err.value)
    assert not target.exists() and not (tmp_path / "escaped.enc").exists()
    assert not list(tmp_path.glob(".restored.restoring-*"))  # the staging folder is gone
    res = CliRunner().invoke(app, ["store", "restore", str(bad), "--store", str(target)])
    assert res.exit_code == 2 and "Traceback" not in res.output


def test_restore_needs_the_audit_key_kept_apart(
    filled: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backup_store(filled["store"], tmp_path / "b.tar.gz")
    monkeypatch.setenv("HEMOLAB_AUDIT_DIR", str(tmp_path / "no-keys-here"))
    with pytest.raises(Exception, match="HEMOLAB_AUDIT_DIR"):
        restore_store(tmp_path / "b.tar.gz", tmp_path / "restored")
    assert not (tmp_path / "restored").exists()


def test_deleting_a_patient_removes_data_key_and_results_but_not_the_trail(filled: dict) -> None:
    store, key, a, b = filled["store"], filled["key"], filled["a"], filled["b"]
    (store / "reports").mkdir()
    (store / "reports" / "of-a.html").write_text(f"<p>figures of {filled['mine']}</p>")
    (store / "reports" / "virtual.html").write_text(f"<p>figures of {filled['other']}</p>")
    runner = CliRunner()
    res = runner.invoke(app, ["patients", "delete", a, "--store", str(store), "--key-file",
                              str(filled["key_file"]), "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    counts = _valid(res.stdout, "patients-delete")
    assert counts["lab_values"] == 2 and counts["patients"] == 1
    assert counts["key_entries"] == 1 and counts["experiments"] == 1 and counts["reports"] == 1
    assert [p.name for p in (store / "reports").iterdir()] == ["virtual.html"]
    with Store(store) as st:
        assert not st.is_patient(a) and st.is_patient(b)
        for table in ("lab_values", "events", "forecasts", "patients"):
            rows = st._db.execute(f"SELECT count(*) FROM {table} WHERE pseudonym = ?", [a])
            assert rows.fetchone() == (0,)
        assert len(st.lab_values(b)) == 1
    keys = KeyTable(store, key)
    assert keys.lookup(MRN) is None and keys.lookup(OTHER) is not None
    ids = [r.id for r in ExperimentStore(store).list()]
    assert ids == [filled["other"]]
    assert not (store / "experiments" / filled["mine"]).exists()
    assert a.encode() not in b"".join(p.read_bytes() for p in store.rglob("*")
                                      if p.is_file() and p.name != "audit.log")  # fmt: skip
    # the trail stays, with the deletion on it, and still verifies
    trail = runner.invoke(app, ["audit", "report", "--patient", a, "--store", str(store),
                                "--json"])  # fmt: skip
    actions = [e["action"] for e in json.loads(trail.stdout)["entries"]]
    assert "delete" in actions and AuditLog(store).verify().ok
    # deleting again: no such patient (named: it is a pseudonym)
    again = runner.invoke(app, ["patients", "delete", a, "--store", str(store), "--key-file",
                                str(filled["key_file"])])  # fmt: skip
    assert again.exit_code == 2 and a in again.output
    # an identifier given by mistake is refused and not echoed
    wrong = runner.invoke(app, ["patients", "delete", OTHER, "--store", str(store),
                                "--key-file", str(filled["key_file"])])  # fmt: skip
    assert wrong.exit_code == 2 and OTHER not in wrong.output


def test_rotating_the_key_table_key(filled: dict, tmp_path: Path) -> None:
    store, old_file = filled["store"], filled["key_file"]
    new_file = tmp_path / "secret" / "new.key"
    res = CliRunner().invoke(app, ["store", "rotate-key", "--store", str(store), "--key-file",
                                   str(old_file), "--new-key-file", str(new_file)])  # fmt: skip
    assert res.exit_code == 0, res.output
    with pytest.raises(KeyTableError, match="does not open"):
        KeyTable(store, read_key(old_file))
    keys = KeyTable(store, read_key(new_file))
    a = keys.lookup(MRN)
    assert a is not None and a.pseudonym == filled["a"] and len(keys) == 2
    assert AuditLog(store).entries()[-1]["action"] == "rotate key table key"
    same = CliRunner().invoke(app, ["store", "rotate-key", "--store", str(store), "--key-file",
                                    str(new_file), "--new-key-file", str(new_file)])  # fmt: skip
    assert same.exit_code == 2 and "the new key is the old key" in same.output


def test_backup_refuses_what_is_not_a_store(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match="not a hemolab store"):
        backup_store(tmp_path / "empty", tmp_path / "b.tar.gz")
    res = CliRunner().invoke(app, ["store", "backup", "--store", str(tmp_path / "empty"),
                                   "--out", str(tmp_path / "nowhere" / "b.tar.gz")])  # fmt: skip
    assert res.exit_code == 2 and not (tmp_path / "b.tar.gz").exists()


def test_web_users_come_back_from_a_backup_but_their_sessions_do_not(
    filled: dict, tmp_path: Path
) -> None:
    from argon2 import PasswordHasher

    from hemolab.web import UserStore

    fast = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    users = UserStore(filled["store"], hasher=fast)
    alice = users.add("alice", "viewer", "correct horse battery")
    users.grant("alice", filled["a"])
    token = users.open_session(alice)
    backup_store(filled["store"], tmp_path / "b.tar.gz")
    shutil.rmtree(filled["store"])
    restore_store(tmp_path / "b.tar.gz", filled["store"])
    again = UserStore(filled["store"], hasher=fast)
    assert again.verify("alice", "correct horse battery") is not None
    assert again.granted("alice") == [filled["a"]]
    assert again.session(token) is None
