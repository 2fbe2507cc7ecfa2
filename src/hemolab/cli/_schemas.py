"""JSON Schemas (draft 2020-12) of the CLI's ``--json`` outputs, shipped as package data.

One schema per command, in ``hemolab/schemas/<command>.schema.json``: ``models``,
``simulate`` (``simulate-sedml`` when it runs a SED-ML file), ``sbml-suite`` and ``demo``.
They are the contract scripts rely on; the tests validate every ``--json`` output against
them.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from hemolab._errors import HemolabError

__all__ = ["load_schema", "schema_names"]

_SUFFIX = ".schema.json"


def schema_names() -> list[str]:
    """Names of the shipped schemas (the commands with ``--json``), sorted."""
    folder = resources.files("hemolab").joinpath("schemas")
    return sorted(p.name[: -len(_SUFFIX)] for p in folder.iterdir() if p.name.endswith(_SUFFIX))


def load_schema(name: str) -> dict[str, Any]:
    """Return the JSON Schema of one command's ``--json`` output.

    Parameters
    ----------
    name
        The command (``"models"``, ``"simulate"``, ``"demo"``); ``"models.schema.json"`` is
        accepted too.

    Returns
    -------
    dict
        The parsed schema.

    Raises
    ------
    HemolabError
        If there is no schema of that name; the message lists the available ones.

    Examples
    --------
    >>> load_schema("models")["title"]
    'hemolab models --json'
    """
    stem = name.removesuffix(_SUFFIX)
    resource = resources.files("hemolab").joinpath("schemas", stem + _SUFFIX)
    if not resource.is_file():
        raise HemolabError(f"no JSON schema {name!r}; available: {', '.join(schema_names())}")
    return json.loads(resource.read_text(encoding="utf-8"))
