"""The instruction tape: any program of one padded shape runs with one compiled interpreter."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

from hemolab._errors import UnsupportedError
from hemolab.compile._tape import build_tape, interpret

x, y, z = sp.symbols("x y z", real=True)
POINT = {x: 0.7, y: 1.3, z: -0.4}

EXPRESSIONS = [
    x + y * z - 3,
    x**2 + y**-1 + sp.sqrt(y) + x**2.5,
    sp.exp(x) * sp.log(y) + sp.sin(z) * sp.cos(x) + sp.tan(x),
    sp.sinh(x) + sp.cosh(z) + sp.tanh(y) + sp.asin(x) + sp.acos(x) + sp.atan(y),
    sp.asinh(z) + sp.acosh(y) + sp.atanh(x) + sp.Abs(z) + sp.floor(y) + sp.ceiling(z),
    sp.sec(x) + sp.csc(y) + sp.cot(x) + sp.acot(y) + sp.log(y, 10),
    sp.Piecewise((x, y > 2), (z, x < 1), (y, True)),
    sp.Piecewise((1, sp.And(x > 0, y < 2)), (2, sp.Or(z > 0, sp.Not(x > 0)))),
    sp.Min(x, y, z) + sp.Max(x, z) + sp.gamma(y + 1),
    sp.Piecewise((1, sp.Eq(x, 0.7)), (0, True)) + sp.Piecewise((1, sp.Ne(y, 1.3)), (0, True)),
    sp.Integer(5),
]


@pytest.fixture(scope="module")
def run():
    return jax.jit(interpret, static_argnums=(5,))


def test_every_operation_matches_sympy(run):
    tape = build_tape(EXPRESSIONS, [x, y, z]).padded(256, 32, 320)
    got = run(tape.ops, tape.length, tape.constants, tape.outputs, jnp.array([0.7, 1.3, -0.4]), 320)
    expected = [float(e.subs(POINT).evalf(30)) for e in EXPRESSIONS]
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-13)


def test_two_programs_share_one_compilation(run):
    first = build_tape([x * y + 1], [x, y, z]).padded(64, 8, 96)
    second = build_tape([sp.exp(z) - x, y**3, sp.Piecewise((x, z < 0), (y, True))], [x, y, z])
    second_in_first_shape = second.padded(64, 8, 96)
    run(
        first.ops,
        first.length,
        first.constants,
        np.zeros(3, np.int32),
        jnp.array([1.0, 2.0, 3.0]),
        96,
    )
    after_first = run._cache_size()
    s2 = second_in_first_shape
    out = run(s2.ops, s2.length, s2.constants, s2.outputs, jnp.array([1.0, 2.0, -3.0]), 96)
    assert run._cache_size() == after_first  # the second program reused the compilation
    np.testing.assert_allclose(np.asarray(out), [np.exp(-3.0) - 1.0, 8.0, 1.0], rtol=1e-14)


def test_common_subexpressions_are_computed_once():
    shared = sp.exp(x * y)
    tape = build_tape([shared + 1, shared * 2, shared - z], [x, y, z])
    n_exp = int(np.sum(tape.ops[:, 0] == 7))  # "exp"
    assert n_exp == 1


def test_forward_derivatives_flow_through_the_chosen_operation(run):
    e = sp.Piecewise((sp.log(x) * y, x > 0), (x * y, True))  # log(-1) is NaN, not chosen
    tape = build_tape([e], [x, y]).padded(32, 4, 48)

    def f(v):
        return run(tape.ops, tape.length, tape.constants, tape.outputs, v, 48)[0]

    for point in ([2.0, 3.0], [-1.0, 3.0]):
        jac = jax.jacfwd(f)(jnp.array(point))
        exact = [float(sp.diff(e, s).subs({x: point[0], y: point[1]})) for s in (x, y)]
        np.testing.assert_allclose(np.asarray(jac), exact, rtol=1e-14)
        assert np.all(np.isfinite(np.asarray(jac)))


def test_unknown_functions_are_refused():
    with pytest.raises(UnsupportedError, match="besselj"):
        build_tape([sp.besselj(0, x)], [x])
    with pytest.raises(ValueError, match="smaller"):
        build_tape([x + y], [x, y]).padded(0, 0, 1)
