"""A pytest plugin that counts the inputs the fuzz tests try and reports them (design note 031).

A fuzz test calls :func:`tried` once per input it feeds a reader (``tried("labs CSV")``).
At the end of the run the terminal summary prints one line::

    fuzzing: 4,210 inputs tried — event dataset 500, FHIR bundle 600, labs CSV 800, ...

Under pytest-xdist each worker counts its own inputs and hands them to the controller in
``config.workeroutput`` when it finishes; the controller adds them up in
``pytest_testnodedown`` and prints the same line. Registered from ``tests/conftest.py``.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

_KEY = "hemolab_fuzz_counts"
_COUNTS: Counter[str] = Counter()  # this process's inputs tried, per reader


def tried(reader: str, n: int = 1) -> None:
    """Count ``n`` inputs fed to ``reader`` (a short label: "labs CSV", "FHIR bundle")."""
    _COUNTS[reader] += n


def summary_line(counts: Counter[str] | dict[str, int]) -> str:
    """``fuzzing: N inputs tried — reader n, ...`` (readers by name), or "" when none."""
    total = sum(counts.values())
    if not total:
        return ""
    parts = ", ".join(f"{name} {n:,}" for name, n in sorted(counts.items()) if n)
    return f"fuzzing: {total:,} inputs tried — {parts}"


class FuzzCounts:
    """The hooks; one instance per pytest process (controller or worker)."""

    def __init__(self) -> None:
        self.from_workers: Counter[str] = Counter()

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        workeroutput = getattr(session.config, "workeroutput", None)
        if workeroutput is not None:  # an xdist worker: send the counts to the controller
            workeroutput[_KEY] = json.dumps(dict(_COUNTS))

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error) -> None:  # the controller, per worker
        sent = getattr(node, "workeroutput", {}).get(_KEY)
        if sent:
            self.from_workers.update(json.loads(sent))

    def pytest_terminal_summary(self, terminalreporter, exitstatus, config) -> None:
        if getattr(config, "workeroutput", None) is not None:
            return
        line = summary_line(_COUNTS + self.from_workers)
        if line:
            terminalreporter.write_sep("-", "fuzz counts")
            terminalreporter.write_line(line)


def register(config: pytest.Config) -> None:
    """Register the plugin once (from a ``pytest_configure`` hook)."""
    if not config.pluginmanager.has_plugin(_KEY):
        config.pluginmanager.register(FuzzCounts(), _KEY)
