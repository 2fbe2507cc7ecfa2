"""Batched adaptive ODE/DDE solving with exact events."""

from hemolab import _jax_config  # noqa: F401  (float64 and the compile cache, first)
from hemolab.solve._dopri5 import DOPRI5 as DOPRI5, Stepper as Stepper
from hemolab.solve._engine import (
    ActionTable as ActionTable,
    RawSolution as RawSolution,
    make_solve_fn as make_solve_fn,
    run_actions as run_actions,
)
from hemolab.solve._pinned import pinned_jit as pinned_jit
from hemolab.solve._status import Status as Status
