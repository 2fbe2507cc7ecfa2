"""``hemolab keygen`` and ``hemolab import``: patient data into a store, de-identified.

Nothing identifying is printed: summaries carry pseudonyms and counts, errors name files,
rows and columns (DATA-FORMATS §0, §B).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from hemolab._errors import HemolabError
from hemolab.cli._app import _fail, console

KeyFile = Annotated[
    Path | None,
    typer.Option(
        "--key-file",
        help="The store's key (or HEMOLAB_KEY_FILE); create one with `hemolab keygen`.",
    ),
]


def keygen(
    key_file: Annotated[Path, typer.Option("--key-file", help="Where to write the new key.")],
) -> None:
    """Create a key for a store's key table (readable by its owner only; never overwritten)."""
    from hemolab.patients._keys import generate_key

    try:
        path = generate_key(key_file)
    except HemolabError as exc:
        raise _fail(str(exc)) from None
    console.print(f"key written to {path} (keep it apart from the store)", highlight=False)


def import_(
    source: Annotated[
        Path, typer.Argument(help="Lab history: CSV (§B) or FHIR R4 bundle (.json).")
    ],
    events: Annotated[
        Path | None,
        typer.Option(
            "--events",
            help="The patients' dosing and transfusion history (§A; ID = the labs' patient).",
        ),
    ] = None,
    store: Annotated[Path, typer.Option("--store", help="Store directory.")] = Path(
        "hemolab-store"
    ),
    key_file: KeyFile = None,
    time_unit: Annotated[
        str | None,
        typer.Option("--time-unit", help="Unit of a numeric time column (required then)."),
    ] = None,
    allow_partial_dates: Annotated[
        bool,
        typer.Option("--allow-partial-dates", help="FHIR: read a date without time as 00:00 UTC."),
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """De-identify a patient's lab history and add it to the store.

    Each patient gets a random pseudonym and a clock anchor at the first import, reused by
    every later import (matched through the encrypted key table). Values already stored are
    not added again.
    """
    from hemolab.patients import read_fhir, read_labs
    from hemolab.patients._event_history import read_event_history
    from hemolab.patients._keys import KeyTable, read_key
    from hemolab.store import Store

    try:
        key = read_key(key_file)
        if not source.is_file():
            raise HemolabError(f"lab history {source.name!r} does not exist")
        raw = source.read_bytes()
        if source.suffix.lower() == ".json":
            history = read_fhir(source, allow_partial_dates=allow_partial_dates)
        else:
            history = read_labs(source, time_unit=time_unit)
        dosing = None
        if events is not None:
            if not events.is_file():
                raise HemolabError(f"dosing history {events.name!r} does not exist")
            dosing = read_event_history(events, time_unit=time_unit)
        with Store(store) as st:
            keys = KeyTable(st.path, key)
            summary = st.import_labs(
                history,
                keys,
                source_bytes=raw,
                events=dosing,
                events_bytes=events.read_bytes() if events is not None else b"",
            )
    except HemolabError as exc:
        raise _fail(str(exc)) from None
    doc = {
        "store": os.fspath(store),
        "import_id": summary.import_id,
        "n_values": summary.n_values,
        "n_events": summary.n_events,
        "dropped": summary.dropped,
        "patients": [{"pseudonym": p, **info} for p, info in sorted(summary.patients.items())],
    }
    if json_out:
        print(json.dumps(doc, indent=2))
        return
    for p in doc["patients"]:
        state = "new patient" if p["new"] else "known patient"
        extra = ""
        if "n_events" in p:
            extra = f", {p['n_events']} events added ({p['n_event_duplicates']} already stored)"
        console.print(
            f"{p['pseudonym']}: {p['n_values']} values added ({state}; "
            f"{p['n_duplicates']} already stored){extra}",
            highlight=False,
        )
    if summary.dropped:
        dropped = ", ".join(f"{k} {v}" for k, v in sorted(summary.dropped.items()))
        console.print(f"dropped by status: {dropped}", highlight=False)
