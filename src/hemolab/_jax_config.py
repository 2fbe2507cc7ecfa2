"""JAX configuration hemolab needs, applied once before any array is made.

* float64: clinical counts span 1e-4..1e3 and tolerances reach 1e-8; float32 cannot carry them.
* A persistent compilation cache (``$HEMOLAB_JAX_CACHE``, default
  ``~/.cache/hemolab/jax``; empty to disable): a model's solver compiles once per machine,
  not once per process (CLI runs, test workers, Ray/spawned workers).
"""

import os
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

_cache = os.environ.get("HEMOLAB_JAX_CACHE", str(Path.home() / ".cache" / "hemolab" / "jax"))
if _cache:
    try:
        Path(_cache).mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", _cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    except OSError:  # a read-only home: run without the cache
        pass
