"""Exported kernels: traced once per machine, loaded by later processes, never stale."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hemolab as hl
from hemolab import _exported
from hemolab._exported import ExportedKernel


def _refuse_export(*_: object, **__: object) -> None:
    raise AssertionError("traced and exported again instead of loading the saved module")


def test_a_saved_kernel_is_loaded_not_traced_and_a_bad_file_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEMOLAB_JAX_CACHE", str(tmp_path))
    fn = jax.jit(lambda x, k: jnp.sin(x) * k)
    x = jnp.linspace(0.0, 1.0, 5)
    expected = np.asarray(fn(x, np.int32(3)))
    first = ExportedKernel("demo", fn, ["v1"])
    np.testing.assert_array_equal(first(x, np.int32(3)), expected)
    (saved,) = (tmp_path / "hemolab-exported").iterdir()

    # a new process (a new kernel object): loaded from the file, never exported again
    with monkeypatch.context() as m:
        m.setattr(jax.export, "export", _refuse_export)
        np.testing.assert_array_equal(ExportedKernel("demo", fn, ["v1"])(x, np.int32(3)), expected)

    # other shapes or another key: another entry; the first stays
    ExportedKernel("demo", fn, ["v1"])(jnp.zeros(7), np.int32(1))
    ExportedKernel("demo", fn, ["v2"])(x, np.int32(3))
    assert len(list(saved.parent.iterdir())) == 3 and saved.exists()

    # a truncated entry is exported again, atomically (no temporary file left behind)
    saved.write_bytes(saved.read_bytes()[:100])
    np.testing.assert_array_equal(ExportedKernel("demo", fn, ["v1"])(x, np.int32(3)), expected)
    assert saved.stat().st_size > 100
    assert not [p for p in saved.parent.iterdir() if p.name.startswith(".tmp-")]


def test_without_a_cache_directory_the_jitted_function_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HEMOLAB_JAX_CACHE", raising=False)
    monkeypatch.setattr(jax.export, "export", _refuse_export)
    fn = jax.jit(lambda x: x + 1.0)
    assert float(ExportedKernel("plain", fn, [])(jnp.float64(1.0))) == 2.0
    assert _exported.exported_dir() is None


def test_the_fingerprint_follows_hemolab_source(monkeypatch: pytest.MonkeyPatch) -> None:
    before = _exported.code_fingerprint()
    _exported.code_fingerprint.cache_clear()
    real = Path.read_bytes

    def edited(path: Path) -> bytes:
        data = real(path)
        return data + b"\n# edited" if path.name == "_loop.py" else data

    monkeypatch.setattr(Path, "read_bytes", edited)
    try:
        assert _exported.code_fingerprint() != before
    finally:
        monkeypatch.undo()
        _exported.code_fingerprint.cache_clear()
    assert _exported.code_fingerprint() == before


@pytest.mark.slow
def test_a_map_fit_through_the_saved_search_equals_the_plain_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hemolab.calibrate import Observations, fit_map
    from hemolab.library import get_model

    # the smallest library model with a calibration setup: three compiles of the search
    # and Laplace kernels take ~100 s here, against ~430 s for friberg_docetaxel in CI
    model = get_model("marrow_failure_hb")
    events = None
    t = np.array([0.0, 30, 60, 90, 120])
    obs = Observations.of(["Hb"] * t.size, t, [13.1, 12.6, 11.8, 11.5, 10.2])
    plain = fit_map(model, obs, events)

    monkeypatch.setenv("HEMOLAB_JAX_CACHE", str(tmp_path))
    hl.clear_caches()
    saved = fit_map(model, obs, events)
    hl.clear_caches()  # as in a new process: the search is loaded from its file
    monkeypatch.setattr(jax.export, "export", _refuse_export)
    loaded = fit_map(model, obs, events)
    saved_files = sorted(p.name.split("-")[0] for p in (tmp_path / "hemolab-exported").iterdir())
    assert saved_files == ["laplace", "map"]  # the search and the Laplace step, once each
    for name in plain.names:
        assert saved.estimate[name] == loaded.estimate[name]
        assert saved.estimate[name] == pytest.approx(plain.estimate[name], rel=1e-12)
    np.testing.assert_allclose(loaded.log_covariance, plain.log_covariance, rtol=1e-10)
