"""The model library registry: name → factory."""

from __future__ import annotations

from collections.abc import Callable

from hemolab._errors import ModelError
from hemolab.library._agoram import agoram_darbepoetin
from hemolab.library._friberg import friberg_docetaxel
from hemolab.library._mackey_glass import mackey_glass
from hemolab.library._michor import michor_cml
from hemolab.library._romiplostim import romiplostim_wang2010
from hemolab.model import Model

__all__ = ["get_model", "list_models"]

_REGISTRY: dict[str, Callable[[], Model]] = {
    "agoram_darbepoetin": agoram_darbepoetin,
    "friberg_docetaxel": friberg_docetaxel,
    "mackey_glass": mackey_glass,
    "michor_cml": michor_cml,
    "romiplostim_wang2010": romiplostim_wang2010,
}


def list_models() -> list[str]:
    """Names of the library models, sorted."""
    return sorted(_REGISTRY)


def get_model(name: str) -> Model:
    """A fresh library model by name (``hemolab models`` lists them)."""
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise ModelError(f"no library model {name!r}; available: {list_models()}") from None
