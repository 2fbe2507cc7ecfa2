"""``hemolab store backup|restore|rotate-key`` and ``hemolab patients delete``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from hemolab._errors import HemolabError
from hemolab.cli._app import _fail, console
from hemolab.cli._options import DEFAULT_STORE_DIR, JsonOut, StoreDir, sub_app
from hemolab.cli._patients import KeyFile

__all__ = ["patients_app", "store_app"]

store_app = sub_app("Look after a store: back it up, restore it, rotate its key-table key.")
patients_app = sub_app("The patients of a store: delete one (data, key-table entry, results).")


@store_app.command("backup")
def backup(
    out: Annotated[Path, typer.Option("--out", help="The backup file to write (.tar.gz).")],
    store: StoreDir = DEFAULT_STORE_DIR,
    json_out: JsonOut = False,
) -> None:
    """Write every file of the store (checked by SHA-256 on restore) to one .tar.gz, taken
    while nobody writes. The keys (key table's and audit's) are not in it: keep them apart."""
    from hemolab.store import backup_store

    try:
        manifest = backup_store(store, out)
    except HemolabError as exc:
        raise _fail(str(exc)) from None
    doc = {"store": os.fspath(store), "backup": os.fspath(out), "files": len(manifest["files"]),
           "bytes": out.stat().st_size, "audit_entries": manifest["audit_entries"]}  # fmt: skip
    if json_out:
        print(json.dumps(doc, indent=2))
        return
    console.print(
        f"backed up {doc['files']} files of {escape(str(store))} to {escape(str(out))} "
        f"({doc['bytes']:,} bytes)",
        highlight=False,
    )


@store_app.command("restore")
def restore(
    backup_file: Annotated[Path, typer.Argument(help="A backup made by `hemolab store backup`.")],
    store: StoreDir = DEFAULT_STORE_DIR,
    force: Annotated[
        bool, typer.Option("--force", help="Move a store already there aside (kept).")
    ] = False,
    json_out: JsonOut = False,
) -> None:
    """Restore a backup into --store: every file checked against the backup's manifest
    before anything moves; the audit log records which of its entries the backup predates."""
    from hemolab.store import restore_store

    try:
        done = restore_store(backup_file, store, force=force)
    except HemolabError as exc:
        raise _fail(str(exc)) from None
    doc = {"store": os.fspath(store), "backup": os.fspath(backup_file), "files": done["files"],
           "moved_aside": done["moved_aside"],
           "audit": None if done["audit"] is None else done["audit"]["detail"]}  # fmt: skip
    if json_out:
        print(json.dumps(doc, indent=2))
        return
    console.print(f"restored {doc['files']} files into {escape(str(store))}", highlight=False)
    if doc["moved_aside"]:
        console.print(f"the store that was there is kept at {escape(doc['moved_aside'])}")
    if doc["audit"]:
        console.print(f"audit: {escape(doc['audit'])}", highlight=False)


@store_app.command("rotate-key")
def rotate_key(
    new_key_file: Annotated[
        Path,
        typer.Option("--new-key-file", help="The new key (made now if the file does not exist)."),
    ],
    store: StoreDir = DEFAULT_STORE_DIR,
    key_file: KeyFile = None,
) -> None:
    """Re-encrypt the store's key table under a new key (atomic: the table is under the old
    key or the new one, never neither). Then keep the new key apart and retire the old one."""
    from hemolab.patients._keys import KeyTable, generate_key, read_key
    from hemolab.store import Store

    try:
        old = read_key(key_file)
        if not new_key_file.exists():
            generate_key(new_key_file)
        new = read_key(new_key_file)
        if new == old:
            raise HemolabError("the new key is the old key; make one with `hemolab keygen`")
        if not (store / KeyTable.FILE).is_file():
            raise HemolabError(f"store {str(store)!r} has no key table")
        with Store(store) as st:
            table = KeyTable(store, old)
            table.rekey(new)
            table.save()
            st.audit("rotate key table key", None, f"{len(table)} entries re-encrypted")
    except HemolabError as exc:
        raise _fail(str(exc)) from None
    console.print(
        f"key table of {escape(str(store))} now opens with {escape(str(new_key_file))}; "
        "the old key no longer opens it",
        highlight=False,
    )


@patients_app.command("delete")
def delete(
    pseudonym: Annotated[str, typer.Argument(help="The patient's pseudonym.")],
    store: StoreDir = DEFAULT_STORE_DIR,
    key_file: KeyFile = None,
    json_out: JsonOut = False,
) -> None:
    """Delete a patient: lab values, events, forecasts, the key-table entry and every
    experiment made from the patient's data. The audit trail keeps a `delete` entry."""
    from hemolab.patients._keys import KeyTable, read_key
    from hemolab.store import Store

    try:
        key = read_key(key_file)
        with Store(store) as st:
            counts = st.delete_patient(pseudonym, KeyTable(store, key))
    except HemolabError as exc:
        raise _fail(str(exc)) from None
    if json_out:
        print(json.dumps({"store": os.fspath(store), "pseudonym": pseudonym, **counts}, indent=2))
        return
    parts = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items())
    console.print(f"deleted {pseudonym}: {parts}", highlight=False)
