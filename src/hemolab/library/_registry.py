"""The model library registry: name → factory and typical regimen.

Adding a model is one module (a factory returning a :class:`~hemolab.Model` with its citation,
and ``typical_run()``) plus its test, and one line here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hemolab._errors import ModelError
from hemolab.library import (
    _agoram,
    _colijn_mackey,
    _friberg,
    _friberg_paclitaxel,
    _friberg_platelets,
    _mackey_glass,
    _marrow_failure,
    _michor,
    _romiplostim,
)
from hemolab.library._typical import TypicalRun
from hemolab.model import Model

__all__ = ["LibraryEntry", "get_model", "list_models", "typical_run"]


@dataclass(frozen=True)
class LibraryEntry:
    """A library model: its factory, the regimen ``hemolab demo`` runs it under, and whether
    its initial state is a drug-free steady state (checked by the contract tests)."""

    factory: Callable[[], Model]
    typical_run: Callable[[], TypicalRun]
    steady_state: bool = True


_REGISTRY: dict[str, LibraryEntry] = {
    "agoram_darbepoetin": LibraryEntry(_agoram.agoram_darbepoetin, _agoram.typical_run),
    "colijn_mackey": LibraryEntry(
        _colijn_mackey.colijn_mackey, _colijn_mackey.typical_run, steady_state=False
    ),
    "friberg_docetaxel": LibraryEntry(_friberg.friberg_docetaxel, _friberg.typical_run),
    "friberg_docetaxel_kloft2006": LibraryEntry(
        _friberg.friberg_docetaxel_kloft2006, _friberg.typical_run
    ),
    "friberg_paclitaxel": LibraryEntry(
        _friberg_paclitaxel.friberg_paclitaxel, _friberg_paclitaxel.typical_run
    ),
    "friberg_platelets": LibraryEntry(
        _friberg_platelets.friberg_platelets, _friberg_platelets.typical_run
    ),
    "mackey_glass": LibraryEntry(
        _mackey_glass.mackey_glass, _mackey_glass.typical_run, steady_state=False
    ),
    "marrow_failure_hb": LibraryEntry(
        _marrow_failure.marrow_failure_hb, _marrow_failure.typical_run, steady_state=False
    ),
    "michor_cml": LibraryEntry(_michor.michor_cml, _michor.typical_run, steady_state=False),
    "romiplostim_wang2010": LibraryEntry(
        _romiplostim.romiplostim_wang2010, _romiplostim.typical_run
    ),
}


def list_models() -> list[str]:
    """Names of the library models, sorted."""
    return sorted(_REGISTRY)


def _entry(name: str) -> LibraryEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ModelError(f"no library model {name!r}; available: {list_models()}") from None


def get_model(name: str) -> Model:
    """A fresh library model by name (``hemolab models`` lists them)."""
    return _entry(name).factory()


def typical_run(name: str) -> TypicalRun:
    """The typical regimen of a library model (what ``hemolab demo`` runs)."""
    return _entry(name).typical_run()
