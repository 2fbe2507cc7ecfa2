"""Rewrite a DuckDB file without its free blocks: deleted rows gone from the disk too.

DuckDB marks the blocks of deleted rows free but leaves their bytes in the file until they
are reused, so a deleted patient's values could still be read off the disk. ``purge`` copies
the live database into a new file (``COPY FROM DATABASE``) while holding the old one open
read-write (no other process can write meanwhile), then renames the copy over it.
"""

from __future__ import annotations

import os
from pathlib import Path

from hemolab.store._connect import connect

__all__ = ["purge"]


def purge(path: str | os.PathLike[str], *, con: object = None, timeout_s: float = 120.0) -> None:
    """Compact the DuckDB file ``path`` (through ``con`` when the caller holds it open)."""
    db = Path(path)
    own = con is None
    c = connect(db, timeout_s=timeout_s) if own else con
    fresh = db.with_name(f".{db.name}.purge.tmp")
    fresh.unlink(missing_ok=True)
    try:
        c.execute("CHECKPOINT")  # type: ignore[attr-defined]
        row = c.execute("SELECT current_database()").fetchone()  # type: ignore[attr-defined]
        name = row[0]
        c.execute(f"ATTACH '{fresh}' AS hl_purged")  # type: ignore[attr-defined]
        try:
            c.execute(f'COPY FROM DATABASE "{name}" TO hl_purged')  # type: ignore[attr-defined]
        finally:
            c.execute("DETACH hl_purged")  # type: ignore[attr-defined]
        with fresh.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(fresh, db)
    finally:
        fresh.unlink(missing_ok=True)
        if own:
            c.close()  # type: ignore[attr-defined]
