"""Shared set-up of the web tests: a store with two imported patients, users, signed-in clients.

The showcase bundle (a fictional patient with a name, MRN and birth date) is imported twice
under different identifiers, so each user can be granted one patient and refused the other.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from hemolab.cli import app
from hemolab.cli._showcase import MRN, write_showcase_bundle

PASSWORD = "correct horse battery"
# the second patient's identifiers (the first one's are the showcase's)
OTHER_MRN = "MRN-4471-XQ"
IDENTIFIERS = (MRN, "7730021", "Ada", "Lovelace", "1961-09-14", OTHER_MRN, "Grace", "Hopper")


def cheap_hasher() -> Any:
    """argon2id with small parameters: the tests log in often."""
    from argon2 import PasswordHasher

    return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def make_store(root: Path) -> dict[str, Any]:
    """A store with two patients and users alice (analyst, patient 1), bob (viewer, patient
    2), carol (admin, no patient); returns the pseudonyms."""
    from hemolab.web import UserStore

    store, key = root / "store", root / "key"
    runner = CliRunner()
    assert runner.invoke(app, ["keygen", "--key-file", str(key)]).exit_code == 0
    first = write_showcase_bundle(root / "bundle.json")
    text = first.read_text()
    second = root / "bundle2.json"
    second.write_text(text.replace(MRN, OTHER_MRN).replace(MRN.lower(), OTHER_MRN.lower())
                      .replace("Ada", "Grace")
                      .replace("Lovelace", "Hopper"))  # fmt: skip
    pseudonyms = []
    for bundle in (first, second):
        res = runner.invoke(app, ["import", str(bundle), "--store", str(store), "--key-file",
                                  str(key), "--json"])  # fmt: skip
        assert res.exit_code == 0, res.output
        pseudonyms.append(json.loads(res.stdout)["patients"][0]["pseudonym"])
    assert pseudonyms[0] != pseudonyms[1]
    users = UserStore(store, hasher=cheap_hasher())
    users.add("alice", "analyst", PASSWORD)
    users.add("bob", "viewer", PASSWORD)
    users.add("carol", "admin", PASSWORD)
    users.grant("alice", pseudonyms[0])
    users.grant("bob", pseudonyms[1])
    reports = store / "reports"
    reports.mkdir()
    (reports / "summary.html").write_text("<!doctype html><title>r</title><p>a report</p>")
    return {"store": store, "patients": pseudonyms, "key": key}


def login(client: Any, name: str, password: str = PASSWORD) -> Any:
    """Sign ``client`` in through the JSON API; returns the response."""
    token = client.get("/api/login").json()["csrf"]
    return client.post("/api/login", json={"name": name, "password": password, "csrf": token})


def csrf_of(client: Any) -> str:
    return client.get("/api/session").json()["csrf"]


def page_csrf(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m is not None
    return m.group(1)
