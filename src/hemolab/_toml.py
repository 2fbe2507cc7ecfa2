"""Where a table or key sits in a TOML text, for errors that name the file and line
(``tomllib`` gives values, not positions). Shared by the search-space and protocol readers."""

from __future__ import annotations

import re

__all__ = ["TomlLines"]


class TomlLines:
    """Where a table or key is in a TOML text (tomllib gives values, not positions)."""

    def __init__(self, text: str, path: str) -> None:
        self.lines = text.splitlines()
        self.path = path

    def of(self, table: str | None, key: str | None = None, nth: int = 0) -> str:
        header = None
        if table is not None:
            pattern = re.compile(
                r"^\s*\[\[?\s*"
                + re.escape(table).replace(r"\.", r"\s*\.\s*")
                + r"\s*\]\]?\s*(#.*)?$"
            )
            hits = [i for i, line in enumerate(self.lines) if pattern.match(line)]
            header = hits[nth] if len(hits) > nth else None
        start = 0 if header is None else header + 1
        if key is not None:
            kp = re.compile(r"^\s*" + re.escape(key) + r"\s*=")
            for i in range(start, len(self.lines)):
                if i > start and header is not None and self.lines[i].lstrip().startswith("["):
                    break
                if kp.match(self.lines[i]):
                    return f"{self.path}:{i + 1}"
        return f"{self.path}:{header + 1}" if header is not None else self.path
