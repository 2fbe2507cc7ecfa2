"""Open a store's DuckDB file, waiting while another process holds it.

DuckDB lets one process at a time open a database file read-write (note 022): a second
``hemolab`` command, or ``hemolab serve`` answering a request while an import runs, waits
with back-off (5 ms doubling to 250 ms) instead of failing, up to a deadline.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from hemolab._errors import HemolabError

__all__ = ["connect"]


def connect(path: Path, *, timeout_s: float = 120.0, what: str = "store") -> Any:
    """A read-write connection to the DuckDB file ``path``."""
    import duckdb

    deadline = time.monotonic() + timeout_s
    pause = 0.005
    while True:
        try:
            return duckdb.connect(str(path))
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise HemolabError(f"{path.name} of {what} {str(path.parent)!r}: {exc}") from None
            if time.monotonic() > deadline:
                raise HemolabError(
                    f"{path.name} of {what} {str(path.parent)!r} stayed locked by another "
                    f"process for {timeout_s:g} s"
                ) from None
            time.sleep(pause * (0.5 + random.random()))
            pause = min(pause * 2, 0.25)
