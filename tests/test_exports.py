"""The public API is exported explicitly, completely and in order (STYLE.md, httpx's test)."""

from __future__ import annotations

import hemolab as hl


def test_all_is_sorted_and_complete():
    public = sorted(n for n in dir(hl) if not n.startswith("_") or n == "__version__")
    modules = {
        "audit", "calibrate", "cli", "compile", "events", "experiments", "forecast", "library",
        "model", "patients", "population", "protocols", "reports", "results", "sbml", "search",
        "solve", "store", "web",
    }  # fmt: skip
    assert hl.__all__ == sorted(hl.__all__)
    assert set(hl.__all__) == set(public) - modules


def test_every_export_has_a_docstring():
    for name in hl.__all__:
        obj = getattr(hl, name)
        if callable(obj):
            assert obj.__doc__, name
