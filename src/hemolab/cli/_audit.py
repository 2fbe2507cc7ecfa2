"""``hemolab audit verify|report|rotate-key``: the store's audit trail, checked and read."""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from hemolab._errors import HemolabError
from hemolab.cli._app import _fail, console
from hemolab.cli._options import DEFAULT_STORE_DIR, JsonOut, StoreDir, sub_app

__all__ = ["audit_app"]

audit_app = sub_app("The audit trail of a store: verify its chain, show who accessed a patient.")


def _log(store: Path) -> Any:
    from hemolab.audit import AuditError, AuditLog

    if not (store / "audit.log").is_file():
        raise AuditError(f"store {str(store)!r} has no audit log")
    return AuditLog(store)


@audit_app.command("verify")
def verify(store: StoreDir = DEFAULT_STORE_DIR, json_out: JsonOut = False) -> None:
    """Check every entry's HMAC and link, and the log's end against the chain head kept with
    the key: exit 0 when nobody without the key altered, inserted or cut entries, 1 if not."""
    try:
        result = _log(store).verify()
    except HemolabError as exc:
        raise _fail(str(exc)) from None
    if json_out:
        print(json.dumps({"store": os.fspath(store), **result.to_dict()}, indent=2))
    else:
        state = "[green]intact[/]" if result.ok else "[bold red]ALTERED[/]"
        console.print(f"audit log of {escape(str(store))}: {result.n_entries} entries, {state}")
        for p in result.problems:
            console.print(f"  problem: {escape(p)}", highlight=False)
        for n in result.notes:
            console.print(f"  note: {escape(n)}", highlight=False)
    if not result.ok:
        raise typer.Exit(1)


def _report_doc(store: Path, patient: str) -> dict[str, Any]:
    from hemolab.store import Store, StoreError

    if not re.fullmatch(r"P[0-9A-F]{10}", patient):  # never echo what may be an identifier
        raise StoreError("--patient takes a pseudonym (P + 10 hex digits)")
    with Store(store) as st:
        if not st.is_patient(patient) and not st.audit_trail(patient):
            raise StoreError(f"no patient {patient!r} (nor a trail of one) in store {str(store)!r}")
        st.audit("read audit trail", patient, "hemolab audit report")
        trail = st.audit_trail(patient)
    result = _log(store).verify()
    users: dict[str, dict[str, Any]] = defaultdict(lambda: {"n": 0, "actions": set()})
    entries = []
    for e in trail:
        at = e["at"].isoformat()
        entries.append({"at": at, "user": e["actor"], "via": e["via"], "origin": e["origin"],
                        "action": e["action"], "detail": e["detail"]})  # fmt: skip
        u = users[e["actor"]]
        u["n"] += 1
        u["actions"].add(e["action"])
        u.setdefault("first", at)
        u["last"] = at
    return {
        "store": os.fspath(store),
        "patient": patient,
        "verified": result.ok,
        "problems": result.problems,
        "entries": entries,
        "users": [{"user": name, "n": u["n"], "first": u["first"], "last": u["last"],
                   "actions": sorted(u["actions"])} for name, u in sorted(users.items())],
    }  # fmt: skip


@audit_app.command("report")
def report(
    patient: Annotated[
        str, typer.Option("--patient", help="The patient's pseudonym (P + 10 hex digits).")
    ],
    store: StoreDir = DEFAULT_STORE_DIR,
    json_out: JsonOut = False,
) -> None:
    """Who accessed PATIENT's data: every read and change, by whom, through what, from where
    and when (this report's own reading is recorded too)."""
    try:
        doc = _report_doc(store, patient)
    except HemolabError as exc:
        raise _fail(str(exc)) from None
    if json_out:
        print(json.dumps(doc, indent=2))
        return
    if not doc["verified"]:
        console.print(
            "[bold red]the audit log does not verify: this trail may have been altered[/] "
            "(hemolab audit verify)"
        )
    table = Table(title=f"who accessed {patient}")
    for col in ("when (UTC)", "user", "via", "from", "action", "detail"):
        table.add_column(col)
    for e in doc["entries"]:
        table.add_row(e["at"][:19].replace("T", " "), escape(e["user"]), e["via"],
                      escape(e["origin"]), escape(e["action"]), escape(e["detail"]))  # fmt: skip
    console.print(table)
    for u in doc["users"]:
        console.print(
            f"{escape(u['user'])}: {u['n']} accesses ({', '.join(map(escape, u['actions']))}), "
            f"{u['first'][:19]} to {u['last'][:19]}",
            highlight=False,
        )


@audit_app.command("rotate-key")
def rotate_key(store: StoreDir = DEFAULT_STORE_DIR) -> None:
    """Sign from now on with a new HMAC key (after checking the chain under the old ones,
    which stay to verify the entries they signed)."""
    from hemolab.audit import Actor

    try:
        epoch = _log(store).rotate_key(Actor.cli())
    except HemolabError as exc:
        raise _fail(str(exc)) from None
    console.print(f"audit key rotated: entries are signed with key {epoch} from now on")
