"""No partial write to the patient store (design notes 014 and 031).

A store holding an earlier good import (labs and events of two patients) receives mutated lab
histories (CSV and FHIR) and mutated events files through the public API (``read_labs``,
``read_fhir``, ``read_event_history``, ``Store.import_labs`` with a ``KeyTable``) and through
``hemolab import`` (Typer's runner, in process). Properties:

* a read or an import that fails raises a ``HemolabError`` (the command exits with 2), and the
  store's tables (every row of ``patients``, ``lab_values``, ``events``, ``imports``,
  ``forecasts``: all tables but the audit trail) and the decrypted key table are exactly as
  before;
* an import that succeeds keeps every earlier row and every earlier key;
* the planted identifier never reaches a message, the command's output or the database file.

Few examples: each copies the store and opens DuckDB.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pytest
from cryptography.fernet import Fernet
from hypothesis import example, given, settings, strategies as st
from typer.testing import CliRunner

from hemolab._errors import HemolabError
from hemolab.cli import app
from hemolab.patients import read_fhir, read_labs
from hemolab.patients._event_history import read_event_history
from hemolab.patients._keys import KeyTable, generate_key, read_key
from hemolab.store import Store
from tests._fuzz_counts import tried
from tests.properties._fuzz import DATA, FUZZ, SECRET, header_holds, messages, mutated_text, write

LABS = (DATA / "fuzz" / "labs-datetime.csv").read_text()
EVENTS = f"""ID,DATETIME,EVID,AMT,CMT,II,EVENT,PRODUCT,UNITS
{SECRET},2024-03-05T10:00:00+01:00,1,100,central,24,.,.,.
{SECRET},2024-03-06T10:00:00+01:00,2,.,.,.,transfusion,RBC,2
2,2024-03-05T06:00:00Z,1,50,central,.,.,.,.
"""
BUNDLE = (DATA / "fuzz" / "bundle.json").read_text()
SKIPPED = {"audit"}  # the audit trail records failed attempts too (and moves to audit.log)


def snapshot(store: Path, key: bytes) -> tuple[dict[str, Counter[str]], dict[str, Any]]:
    """Every row of every table but the audit trail, and the decrypted key table."""
    db = duckdb.connect(str(store / Store.DB), read_only=True)
    try:
        names = [
            r[0] for r in db.execute("SELECT table_name FROM information_schema.tables").fetchall()
        ]
        tables = {
            name: Counter(repr(row) for row in db.execute(f'SELECT * FROM "{name}"').fetchall())
            for name in sorted(set(names) - SKIPPED)
        }
    finally:
        db.close()
    keys_file = store / KeyTable.FILE
    keys = json.loads(Fernet(key).decrypt(keys_file.read_bytes())) if keys_file.exists() else {}
    return tables, keys


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Any]:
    """A store after one good import (two patients, labs and events); its key file."""
    root = tmp_path_factory.mktemp("store-fuzz")
    key_file = generate_key(root / "store.key")
    store = root / "store"
    labs = write(root / "labs.csv", LABS)
    events = write(root / "events.csv", EVENTS)
    with Store(store) as st_:
        keys = KeyTable(st_.path, read_key(key_file))
        st_.import_labs(
            read_labs(labs),
            keys,
            source_bytes=labs.read_bytes(),
            events=read_event_history(events, time_unit="h"),
            events_bytes=events.read_bytes(),
        )
    before = snapshot(store, read_key(key_file))
    assert sum(before[0]["lab_values"].values()) == 5 and len(before[1]["patients"]) == 2
    return store, key_file, before


def fresh(base: tuple[Path, Path, Any], tmp_path: Path) -> Path:
    store = tmp_path / "store"
    shutil.rmtree(store, ignore_errors=True)
    shutil.copytree(base[0], store)
    return store


def assert_kept(before: Any, after: Any, *, failed: bool) -> None:
    tables, keys = before
    tables_after, keys_after = after
    if failed:
        assert tables_after == tables, "a failed import changed the store's tables"
        assert keys_after == keys, "a failed import changed the key table"
        return
    for name, rows in tables.items():
        assert not rows - tables_after[name], f"an import lost rows of {name}"
    for source, entry in keys["patients"].items():
        assert keys_after["patients"][source] == entry, "an import changed a patient's key"


def import_files(store: Path, key: bytes, labs: Path, events: Path | None) -> None:
    """What ``hemolab import`` does, through the public API."""
    history = read_fhir(labs) if labs.suffix == ".json" else read_labs(labs, time_unit="h")
    dosing = None if events is None else read_event_history(events, time_unit="h")
    with Store(store) as st_:
        st_.import_labs(
            history,
            KeyTable(st_.path, key),
            source_bytes=labs.read_bytes(),
            events=dosing,
            events_bytes=b"" if events is None else events.read_bytes(),
        )


@settings(FUZZ, max_examples=60)
@given(
    labs=st.one_of(mutated_text([LABS], max_changes=2), st.just(LABS.encode())),
    events=st.one_of(st.none(), mutated_text([EVENTS], max_changes=2)),
    fhir=st.one_of(st.none(), mutated_text([BUNDLE], max_changes=2)),
)
# an identifier as the specimen: read_labs passed free text on, and the store kept it
@example(labs=LABS.replace("blood", SECRET, 1).encode(), events=None, fhir=None)
def test_a_failed_import_writes_nothing(
    base: tuple[Path, Path, Any], tmp_path: Path, labs: bytes, events: bytes | None, fhir
) -> None:
    tried("store import")
    store = fresh(base, tmp_path)
    key = read_key(base[1])
    lab_path = write(tmp_path / ("labs.json" if fhir is not None else "labs.csv"), fhir or labs)
    events_path = None if events is None else write(tmp_path / "events.csv", events)
    failed = False
    try:
        import_files(store, key, lab_path, events_path)
    except HemolabError as exc:
        failed = True
        planted = header_holds(fhir or labs) or (events is not None and header_holds(events))
        assert planted or SECRET not in messages(exc)
    assert_kept(base[2], snapshot(store, key), failed=failed)
    assert SECRET.encode() not in (store / Store.DB).read_bytes()


@settings(FUZZ, max_examples=15)
@given(
    labs=mutated_text([LABS], max_changes=2),
    events=st.one_of(st.none(), mutated_text([EVENTS], max_changes=2)),
)
def test_a_failed_hemolab_import_writes_nothing(
    base: tuple[Path, Path, Any], tmp_path: Path, labs: bytes, events: bytes | None
) -> None:
    tried("hemolab import (CLI)")
    store = fresh(base, tmp_path)
    lab_path = write(tmp_path / "labs.csv", labs)
    args = ["import", str(lab_path), "--store", str(store), "--key-file", str(base[1])]
    args += ["--time-unit", "h"]
    if events is not None:
        args += ["--events", str(write(tmp_path / "events.csv", events))]
    result = CliRunner().invoke(app, args)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code in (0, 2), result.output
    planted = header_holds(labs) or (events is not None and header_holds(events))
    assert planted or SECRET not in result.output
    assert_kept(base[2], snapshot(store, read_key(base[1])), failed=result.exit_code != 0)
