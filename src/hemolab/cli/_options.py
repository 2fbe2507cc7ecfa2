"""Options shared by the store's command groups (``experiments``, ``audit``, ``store``,
``patients``), declared once so that their names and help read the same everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["DEFAULT_STORE_DIR", "JsonOut", "StoreDir", "sub_app"]

DEFAULT_STORE_DIR = Path("hemolab-store")
StoreDir = Annotated[Path, typer.Option("--store", help="Store directory.")]
JsonOut = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def sub_app(help_text: str) -> typer.Typer:
    """A command group (``hemolab <group> <command>``) that shows its help when bare."""
    return typer.Typer(help=help_text, no_args_is_help=True, add_completion=False)
