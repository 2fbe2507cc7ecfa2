"""Release every compiled function hemolab and JAX keep, so that a long-lived process does not
run out of memory mappings.

XLA:CPU places each compiled executable's code and data in their own memory mappings (about
three per executable). They are freed only with the executable, and JAX, the engine (per
compiled model), the calibration kernels and the NUTS runners keep theirs for reuse. A process
that compiles many thousands of distinct functions (a test session, a service that loads model
after model) reaches Linux's ``vm.max_map_count`` (65,530 by default), and XLA then crashes
inside its compiler instead of reporting the failed ``mmap`` (design note 016). Calling
:func:`clear_caches` drops them all; the next call of each function compiles it again.
"""

from __future__ import annotations

import gc

__all__ = ["clear_caches", "memory_map_count"]


def clear_caches() -> None:
    """Forget every compiled function (JAX's and hemolab's); they recompile on next use."""
    import jax

    from hemolab.calibrate import _kernel, _nuts
    from hemolab.solve import _engine

    _engine._JIT_BY_CODE.clear()  # the solver loops, by generated code or model hash
    _kernel._CACHE.clear()  # calibration objectives
    _nuts._RUNNERS.clear()  # vectorized NUTS runs
    jax.clear_caches()
    gc.collect()


def memory_map_count() -> int | None:
    """How many memory mappings this process has (Linux), else None."""
    try:
        with open("/proc/self/maps", "rb") as fh:
            return sum(1 for _ in fh)
    except OSError:
        return None
