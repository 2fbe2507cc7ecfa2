"""JAX configuration hemolab needs, applied once before any array is made.

* float64: clinical counts span 1e-4..1e3 and tolerances reach 1e-8; float32 cannot carry them.
* One XLA host device per core (at most 8; ``HEMOLAB_HOST_DEVICES`` overrides, 1 disables):
  the engine runs a batch's halves on both cores at once (P2: 0.41 s -> 0.18 s on 2 cores).
  It takes effect only if JAX has not started its CPU backend before hemolab is imported.
* XLA:CPU's classic elemental emitters instead of its newer fusion emitters (jaxlib 0.10 only,
  where the flag exists; an ``xla_cpu_use_fusion_emitters`` in ``XLA_FLAGS`` wins). Compiling
  hemolab's solver loops takes 15-40 % less time; run times move both ways (design note 020).
* A persistent compilation cache, opt-in (``$HEMOLAB_JAX_CACHE=DIR``): a model's solver then
  compiles once per machine, not once per process. Off by default since jaxlib 0.10.2's CPU
  executable (de)serialisation segfaulted twice in one test run (once reading, once writing
  an entry; CHANGELOG). Bounded to 4 GiB, which also makes JAX lock it across processes.
"""

import os
from pathlib import Path

from jaxlib.version import __version__ as _jaxlib_version

# jaxlib versions known to have the flag (an unknown flag in XLA_FLAGS aborts the process)
_FUSION_EMITTERS_FLAG = "xla_cpu_use_fusion_emitters"
_FLAG_VERSIONS = ("0.10.",)

_flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in _flags:
    _n = int(os.environ.get("HEMOLAB_HOST_DEVICES", "0") or 0) or min(os.cpu_count() or 1, 8)
    if _n > 1:
        _flags = f"{_flags} --xla_force_host_platform_device_count={_n}".strip()
if _FUSION_EMITTERS_FLAG not in _flags and _jaxlib_version.startswith(_FLAG_VERSIONS):
    _flags = f"{_flags} --{_FUSION_EMITTERS_FLAG}=false".strip()
if _flags:
    os.environ["XLA_FLAGS"] = _flags

import jax  # noqa: E402  (XLA_FLAGS must be set first)

jax.config.update("jax_enable_x64", True)

_cache = os.environ.get("HEMOLAB_JAX_CACHE", "")
if _cache:
    try:
        Path(_cache).mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", _cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
        # a size bound turns on JAX's file lock around every cache read and write; without
        # it entries are written in place, and a process reading one half-written (two test
        # workers, a CLI run beside a benchmark) crashed in deserialisation
        jax.config.update("jax_compilation_cache_max_size", 4 * 2**30)
    except OSError:  # a read-only home: run without the cache
        pass
