"""Which stepper solves a model: declared (``Model.stiff``), requested, or detected."""

from __future__ import annotations

import weakref

import numpy as np

from hemolab._errors import UnsupportedError
from hemolab.compile._compiled import CompiledModel
from hemolab.solve._dopri5 import DOPRI5, Stepper

__all__ = ["SOLVERS", "choose_stepper"]

SOLVERS = ("auto", "dopri5", "rodas")


def choose_stepper(cm: CompiledModel, inputs: np.ndarray, solver: str = "auto") -> Stepper:
    """The stepper for ``solver`` (``auto`` honours ``Model.stiff``, else detects stiffness)."""
    if solver not in SOLVERS:
        raise UnsupportedError(f"solver {solver!r} is not one of {SOLVERS}")
    stiff: bool
    if solver == "dopri5":
        stiff = False
    elif solver == "rodas":
        stiff = True
    elif cm.model.stiff is not None:
        stiff = cm.model.stiff
    else:
        stiff = _detect_stiffness(cm, inputs)
    if not stiff:
        return DOPRI5
    if cm.has_delays:
        raise UnsupportedError(
            f"model {cm.model.name!r} has delays and needs a stiff solver; the stiff stepper "
            "does not support delays yet"
        )
    from hemolab.solve._rosenbrock import RODAS

    return RODAS


_DECISIONS: weakref.WeakKeyDictionary[CompiledModel, dict[bytes, bool]] = (
    weakref.WeakKeyDictionary()
)


def _detect_stiffness(cm: CompiledModel, inputs: np.ndarray) -> bool:
    """Stiffness detection (see ``_stiffness.py``), memoised per model and probed patients."""
    from hemolab.solve._stiffness import is_stiff

    probe = np.ascontiguousarray(np.atleast_2d(inputs)[:4], dtype=np.float64)
    memo = _DECISIONS.setdefault(cm, {})
    key = probe.tobytes()
    if key not in memo:
        memo[key] = bool(is_stiff(cm, probe))
    return memo[key]
