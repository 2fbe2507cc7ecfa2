"""Shared constants of the event dataset (DATA-FORMATS §A) and the warning helper."""

from __future__ import annotations

import inspect
import os
import warnings
from collections.abc import Mapping
from types import MappingProxyType

from hemolab._errors import HemolabWarning

__all__ = [
    "EVENT_KINDS",
    "PRODUCTS",
    "PRODUCT_DEFAULTS",
    "RESERVED_COLUMNS",
    "TRANSFUSION_DEFAULT_DURATION_H",
    "warn",
]

RESERVED_COLUMNS: frozenset[str] = frozenset(
    {
        # NONMEM-compatible columns
        "ID",
        "TIME",
        "DATETIME",
        "EVID",
        "AMT",
        "AMT_UNIT",
        "RATE",
        "DUR",
        "CMT",
        "II",
        "ADDL",
        "SS",
        "MDV",
        "DV",
        "DVID",
        "CENS",
        "LIMIT",
        "OCC",
        # hemolab events
        "EVENT",
        "PRODUCT",
        "VOLUME",
        "UNITS",
        "FRACTION",
        "PART",
        "DONOR",
        "DEPLETE",
        "HB_G",
        "HCT",
        "PLT_E9",
        "ABO",
        "RHD",
        "PARAM",
        "VALUE",
    }
)
"""Column names with a meaning of their own: never read as covariates (upper case)."""

EVENT_KINDS: tuple[str, ...] = ("transfusion", "phlebotomy", "param", "mix")
"""Values of the ``EVENT`` column (``EVID=2`` rows)."""

PRODUCTS: tuple[str, ...] = ("RBC", "WB", "PLT_APH", "PLT_POOL", "PLASMA")
"""Blood products accepted by ``EVENT=transfusion``."""

PRODUCT_DEFAULTS: Mapping[str, Mapping[str, float]] = MappingProxyType(
    {
        # Per-unit typical values (Canadian Blood Services), DATA-FORMATS §A.
        "RBC": MappingProxyType({"VOLUME": 287.0, "HCT": 0.67, "HB_G": 55.0, "PLT_E9": 0.0}),
        "WB": MappingProxyType({"VOLUME": 496.0, "HCT": 0.41, "HB_G": 62.0, "PLT_E9": 83.0}),
        "PLT_APH": MappingProxyType({"VOLUME": 277.0, "HCT": 0.0, "HB_G": 0.0, "PLT_E9": 252.0}),
        "PLT_POOL": MappingProxyType({"VOLUME": 181.0, "HCT": 0.0, "HB_G": 0.0, "PLT_E9": 243.0}),
        "PLASMA": MappingProxyType({"VOLUME": 289.0, "HCT": 0.0, "HB_G": 0.0, "PLT_E9": 0.0}),
    }
)
"""Per-unit content of each product when the row leaves a column empty."""

TRANSFUSION_DEFAULT_DURATION_H = 2.0
"""Duration of a transfusion whose ``DUR`` is empty, in hours."""

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _stack_level() -> int:
    """Stack level of the first frame outside hemolab, so that warnings point at user code."""
    frame = inspect.currentframe()
    level = 0
    while frame is not None:
        if not os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR + os.sep):
            return level
        frame = frame.f_back
        level += 1
    return level


def warn(message: str) -> None:
    """Issue a :class:`~hemolab.HemolabWarning` that points at the caller's code."""
    warnings.warn(message, HemolabWarning, stacklevel=_stack_level())
