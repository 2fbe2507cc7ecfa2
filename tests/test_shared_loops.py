"""Models whose generated code is the same share one compiled solver loop (``_code_key``):
SBML Test Suite cases that differ only in numbers, a model rebuilt with new typical values.
Delay models (and models taking blood products) share loops only with an equal model built
again (same hash), as the next test builds it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

import hemolab as hl
from hemolab._simulate import get_compiled
from hemolab.solve import _engine


def _decay(name: str, k: float, rhs: str = "-k*x") -> hl.Model:
    return hl.Model(
        name,
        time_unit="h",
        states=[hl.State("x", rhs, initial="x0")],
        parameters=[hl.Parameter("k", k), hl.Parameter("x0", 2.0)],
    )


def test_models_differing_in_names_of_the_model_and_values_share_one_loop() -> None:
    a, b = _decay("first", 0.5), _decay("second", 0.2)
    ka, kb = _engine._code_key(get_compiled(a)), _engine._code_key(get_compiled(b))
    assert ka is not None and ka == kb
    grid = np.linspace(0.0, 5.0, 11)
    ra = hl.simulate(a, grid=grid, rtol=1e-10, atol=1e-12)
    loops = len(_engine._JIT_BY_CODE[ka])
    rb = hl.simulate(b, grid=grid, rtol=1e-10, atol=1e-12)
    assert len(_engine._JIT_BY_CODE[ka]) == loops  # b ran a's loop, with its own values
    np.testing.assert_allclose(ra.variable("x")[0], 2.0 * np.exp(-0.5 * grid), rtol=1e-8)
    np.testing.assert_allclose(rb.variable("x")[0], 2.0 * np.exp(-0.2 * grid), rtol=1e-8)


def test_other_equations_and_delay_models_get_loops_of_their_own() -> None:
    key = _engine._code_key(get_compiled(_decay("first", 0.5)))
    assert _engine._code_key(get_compiled(_decay("first", 0.5, rhs="-k*x*x"))) != key
    assert _engine._code_key(get_compiled(_decay("first", 0.5).replace(
        observables=[hl.Observable("twice", "2*x")]))) != key  # fmt: skip
    assert _engine._code_key(get_compiled(hl.get_model("mackey_glass"))) is None


def test_a_delay_model_built_again_reuses_its_loop_and_a_changed_one_does_not() -> None:
    first = hl.get_model("mackey_glass")
    again = hl.get_model("mackey_glass")
    assert first is not again
    key = _engine._loop_key(get_compiled(first), None)
    assert key == _engine._loop_key(get_compiled(again), None)
    kw = {"t_end": 20.0, "dt": 1.0}
    r1 = hl.simulate(first, **kw)
    loops = len(_engine._JIT_BY_CODE[key])
    del first
    r2 = hl.simulate(again, **kw)
    assert len(_engine._JIT_BY_CODE[key]) == loops
    np.testing.assert_array_equal(r1.values, r2.values)
    changed = again.replace(
        parameters=[replace(p, value=18.0) if p.name == "tau" else p for p in again.parameters]
    )
    assert _engine._loop_key(get_compiled(changed), None) != key
