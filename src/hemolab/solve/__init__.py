"""Batched adaptive ODE/DDE solving with exact events."""

import jax as _jax

# hemolab's engine is float64 throughout (clinical counts span 1e-4..1e3, tolerances 1e-8).
_jax.config.update("jax_enable_x64", True)

from hemolab.solve._engine import (  # noqa: E402
    ActionTable as ActionTable,
    RawSolution as RawSolution,
    run_actions as run_actions,
)
from hemolab.solve._status import Status as Status  # noqa: E402
