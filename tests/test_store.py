"""Importing patients into a store: pseudonyms, clocks, encrypted keys, audit, no identifiers.

DATA-FORMATS §0: one random pseudonym and one clock anchor per patient, fixed at the first
import and reused by every later import; the key table encrypted apart; identifiers never in
the database, the output or an error.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hemolab import DatasetError
from hemolab.cli import app
from hemolab.patients import read_fhir, read_labs
from hemolab.patients._keys import KeyTable, KeyTableError, generate_key, read_key
from hemolab.store import Store, StoreError

MRN = "MRN-0048151623"
OTHER = "MRN-7700000001"
FIRST = f"""patient_id,datetime,loinc,value,unit
{MRN},2024-03-05T08:00:00+00:00,718-7,11.0,g/dL
{MRN},2024-03-06T08:00:00+00:00,718-7,10.5,g/dL
{OTHER},2024-01-01T00:00:00+01:00,777-3,<20,10*9/L
"""
LATER = f"""patient_id,datetime,loinc,value,unit
{MRN},2024-03-06T08:00:00+00:00,718-7,10.5,g/dL
{MRN},2024-04-05T08:00:00+00:00,718-7,9.0,g/dL
"""


@pytest.fixture
def key(tmp_path: Path) -> bytes:
    return read_key(generate_key(tmp_path / "secret" / "store.key"))


def _import(store_dir: Path, key: bytes, text: str, tmp_path: Path, name: str = "l.csv"):
    path = tmp_path / name
    path.write_text(text)
    with Store(store_dir) as st:
        return st.import_labs(read_labs(path), KeyTable(st.path, key), source_bytes=text.encode())


def test_pseudonyms_and_anchors_are_fixed_at_the_first_import(tmp_path: Path, key: bytes) -> None:
    store = tmp_path / "store"
    first = _import(store, key, FIRST, tmp_path)
    assert first.n_values == 3 and all(p["new"] for p in first.patients.values())
    keys = KeyTable(store, key)
    a, b = keys.lookup(MRN), keys.lookup(OTHER)
    assert a is not None and b is not None and a.pseudonym != b.pseudonym
    again = _import(store, key, LATER, tmp_path, "later.csv")
    assert list(again.patients) == [a.pseudonym]
    assert again.patients[a.pseudonym] == {"new": False, "n_values": 1, "n_duplicates": 1}
    with Store(store) as st:
        values = st.lab_values(a.pseudonym)
        censored = st.lab_values(b.pseudonym)
        trail = st.audit_trail(a.pseudonym)
    # the clock starts at the first import's first value and is kept by later imports
    assert [v["time_h"] for v in values] == [0.0, 24.0, 31 * 24.0]
    assert [v["value"] for v in values] == [11.0, 10.5, 9.0]
    assert censored[0]["censored"] and censored[0]["value"] is None and censored[0]["lloq"] == 20
    assert [t["action"] for t in trail] == ["import", "import", "read"]
    assert all(t["actor"] for t in trail)


def test_nothing_identifying_is_stored_outside_the_key_table(tmp_path: Path, key: bytes) -> None:
    store = tmp_path / "store"
    _import(store, key, FIRST, tmp_path)
    for file in store.iterdir():
        data = file.read_bytes()
        assert MRN.encode() not in data and b"0048151623" not in data, file.name
        assert b"2024-03-05" not in data or file.name != "keys.enc"
    assert "MRN" not in repr(KeyTable(store, key))


def test_a_wrong_or_tampered_key_table_refuses_to_open(tmp_path: Path, key: bytes) -> None:
    store = tmp_path / "store"
    _import(store, key, FIRST, tmp_path)
    other = read_key(generate_key(tmp_path / "other.key"))
    with pytest.raises(KeyTableError, match="the key does not open this store's key table"):
        KeyTable(store, other)
    enc = store / "keys.enc"
    blob = bytearray(enc.read_bytes())
    blob[len(blob) // 2] ^= 1
    enc.write_bytes(bytes(blob))
    with pytest.raises(KeyTableError, match="wrong key file, or the table was altered"):
        KeyTable(store, key)
    with pytest.raises(KeyTableError, match="never overwrites a key"):
        generate_key(tmp_path / "other.key")
    (tmp_path / "bad.key").write_text("not a key")
    with pytest.raises(KeyTableError, match="does not hold a key made by `hemolab keygen`"):
        read_key(tmp_path / "bad.key")


def test_a_failed_import_changes_nothing(tmp_path: Path, key: bytes) -> None:
    store = tmp_path / "store"
    _import(store, key, FIRST, tmp_path)
    before = {f.name: f.read_bytes() for f in store.iterdir() if f.name == "keys.enc"}
    with pytest.raises(DatasetError):
        _import(store, key, FIRST + f"{MRN},2024-05-01T00:00:00Z,718-7,abc,g/dL\n", tmp_path)
    numeric = "patient_id,time,loinc,value,unit\nX,0,718-7,12,g/dL\n"
    path = tmp_path / "n.csv"
    path.write_text(numeric.replace("X", MRN))
    with Store(store) as st, pytest.raises(StoreError, match="has a date-time clock in the store"):
        st.import_labs(read_labs(path, time_unit="h"), KeyTable(st.path, key), source_bytes=b"")
    assert {f.name: f.read_bytes() for f in store.iterdir() if f.name == "keys.enc"} == before
    # a new patient listed before the mismatched one gets no pseudonym in the caller's table
    path.write_text(numeric.replace("X", "MRN-NEW-0001") + f"{MRN},1,718-7,12,g/dL\n")
    table = KeyTable(store, key)
    with Store(store) as st, pytest.raises(StoreError, match="date-time clock"):
        st.import_labs(read_labs(path, time_unit="h"), table, source_bytes=b"")
    assert table.lookup("MRN-NEW-0001") is None and len(table) == 2
    with Store(store) as st:
        pseudonym = KeyTable(store, key).lookup(MRN)
        assert pseudonym is not None and len(st.lab_values(pseudonym.pseudonym)) == 2


def test_fhir_demographics_are_bucketed(tmp_path: Path, key: bytes) -> None:
    doc = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"resource": {"resourceType": "Patient", "id": "q", "gender": "male",
                          "birthDate": "1931-05-02"}},
            {"resource": {"resourceType": "Observation", "status": "final",
                          "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
                          "subject": {"reference": "Patient/q"},
                          "effectiveDateTime": "2024-03-05T08:30:00+01:00",
                          "valueQuantity": {"value": 9.1, "system": "http://unitsofmeasure.org",
                                            "code": "g/dL"}}},
        ],
    }  # fmt: skip
    with Store(tmp_path / "s") as st:
        summary = st.import_labs(read_fhir(doc), KeyTable(st.path, key), source_bytes=b"{}")
        (pseudonym,) = summary.patients
        row = st._db.execute(
            "SELECT sex, age, clock FROM patients WHERE pseudonym = ?", [pseudonym]
        ).fetchone()
    assert row == ("male", 90, "datetime")  # 93 years old: over 89, reported as 90


def test_cli_keygen_and_import(tmp_path: Path) -> None:
    import jsonschema

    from hemolab.cli._schemas import load_schema

    runner = CliRunner()
    keyfile = tmp_path / "k.key"
    res = runner.invoke(app, ["keygen", "--key-file", str(keyfile)])
    assert res.exit_code == 0 and keyfile.stat().st_mode & 0o077 == 0
    labs = tmp_path / "labs.csv"
    labs.write_text(FIRST)
    args = ["import", str(labs), "--store", str(tmp_path / "st"), "--key-file", str(keyfile)]
    res = runner.invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    jsonschema.Draft202012Validator(load_schema("import")).validate(doc)
    assert doc["n_values"] == 3 and len(doc["patients"]) == 2
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "already stored" in again.output
    assert "MRN" not in res.output + again.output
    missing = runner.invoke(app, ["import", str(labs), "--store", str(tmp_path / "st")])
    assert missing.exit_code == 2 and "needs the store's key: pass --key-file" in missing.output
    bad = tmp_path / "bad.csv"
    bad.write_text(FIRST.replace("g/dL", "furlong"))
    res = runner.invoke(app, ["import", str(bad), "--store", str(tmp_path / "st"),
                              "--key-file", str(keyfile)])  # fmt: skip
    assert res.exit_code == 2 and "row 1, column unit" in res.output and "MRN" not in res.output
