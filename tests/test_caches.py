"""``hemolab.clear_caches`` releases compiled executables (and their memory mappings), and
everything works again afterwards (recompiled on use)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import hemolab as hl
from hemolab._caches import memory_map_count


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/maps is Linux's")
def test_clear_caches_releases_memory_maps_and_results_stay_the_same() -> None:
    model = hl.get_model("mackey_glass")
    grid = np.linspace(0.0, 50.0, 11)
    hl.clear_caches()
    before = memory_map_count()
    first = hl.simulate(model, grid=grid, params={"beta": np.linspace(0.1, 0.3, 3)})
    compiled = memory_map_count()
    assert before is not None and compiled is not None and compiled > before + 30
    hl.clear_caches()
    released = memory_map_count()
    assert released is not None and released < compiled - 30
    again = hl.simulate(model, grid=grid, params={"beta": np.linspace(0.1, 0.3, 3)})
    np.testing.assert_array_equal(again.variable("x"), first.variable("x"))
