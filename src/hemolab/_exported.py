"""Big compiled loops traced once per machine: saved as exported StableHLO (``jax.export``)
beside JAX's persistent compilation cache, so that a new process neither traces nor compiles
them.

JAX's persistent cache (``$HEMOLAB_JAX_CACHE``) saves XLA's compilation only: a new process
still traces and lowers the function, and for the MAP search (a solver loop under forward
over forward differentiation) that alone took 10-20 s of a 15-40 s first fit. The exported
module skips both; its compilation is then a hit in the persistent cache.

An entry is keyed by what determines the program: the function's name and key parts (the
model and its options, given by the caller), the arguments' shapes and dtypes, JAX's
version and a fingerprint of hemolab's own source, so that an edited solver never runs a
stale program. Entries are written atomically; an unreadable one is exported again.
Without ``$HEMOLAB_JAX_CACHE`` the plain jitted function runs.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = ["ExportedKernel", "code_fingerprint", "exported_dir"]

_SUBDIR = "hemolab-exported"


def exported_dir() -> Path | None:
    """Where exported kernels live (``$HEMOLAB_JAX_CACHE/hemolab-exported``), or None."""
    root = os.environ.get("HEMOLAB_JAX_CACHE", "")
    return Path(root) / _SUBDIR if root else None


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """SHA-256 of hemolab's Python source and the JAX and jaxlib versions."""
    from importlib.metadata import version

    root = Path(__file__).resolve().parent
    h = hashlib.sha256(f"jax {version('jax')} jaxlib {version('jaxlib')}".encode())
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


@lru_cache(maxsize=1)
def _register_types() -> None:
    from jax import export

    from hemolab.calibrate._kernel import LaplaceResult, LmResult
    from hemolab.calibrate._problem import BatchArrays

    for cls in (BatchArrays, LmResult, LaplaceResult):
        export.register_namedtuple_serialization(cls, serialized_name=f"hemolab.{cls.__name__}")


class ExportedKernel:
    """``fn`` (a ``jax.jit`` function of arrays only) through the exported-module cache."""

    def __init__(self, name: str, fn: Any, key: Sequence[str]) -> None:
        self.name = name
        self.fn = fn
        self.key = tuple(key)
        self._loaded: dict[str, Callable[..., Any]] = {}

    def __call__(self, *args: Any) -> Any:
        folder = exported_dir()
        if folder is None:
            return self.fn(*args)
        digest = self._digest(args)
        call = self._loaded.get(digest)
        if call is None:
            call = self._load_or_export(folder / f"{self.name}-{digest[:32]}.jaxexport", args)
            self._loaded[digest] = call
        return call(*args)

    def _digest(self, args: tuple[Any, ...]) -> str:
        import jax
        import numpy as np

        leaves, tree = jax.tree.flatten(args)
        avals = [(tuple(np.shape(x)), np.dtype(x.dtype if hasattr(x, "dtype") else type(x)).str)
                 for x in leaves]  # fmt: skip
        text = repr((code_fingerprint(), self.name, self.key, str(tree), avals))
        return hashlib.sha256(text.encode()).hexdigest()

    def _load_or_export(self, path: Path, args: tuple[Any, ...]) -> Callable[..., Any]:
        import jax
        from jax import export

        _register_types()
        exp = None
        if path.exists():
            try:
                exp = export.deserialize(bytearray(path.read_bytes()))
            except Exception:  # a truncated or foreign file: export again
                exp = None
        if exp is None:
            exp = export.export(self.fn)(*args)
            _write_atomically(path, bytes(exp.serialize()))
        return jax.jit(exp.call)


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename: a reader sees the
    old file, the new one or none. A read-only cache is not an error (nothing is saved)."""
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
        tmp = None
    except OSError:
        pass
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
