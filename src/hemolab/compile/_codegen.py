"""Code generation: sympy expressions → Python source of a per-patient JAX (or NumPy) function.

The generated functions take flat 1-D arrays (``y`` states, ``p`` inputs = parameters then
covariates, ``z`` delayed values) for ONE patient; the solver batches them with ``vmap``.
Generating source (instead of ``sympy.lambdify``) keeps the assignments as shared local
variables (computed once per call, like a hand-written RHS) and lets us print powers cheaply.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType

import sympy as sp
from sympy.printing.numpy import JaxPrinter, NumPyPrinter

from hemolab.model._expr import TIME, delayed

__all__ = ["generate_function"]


def _local(name: str) -> str:
    """The Python local of a model name: prefixed, so that no model name (``y``, ``p``,
    ``where``, ``e``, ``lambda``...) can shadow the arguments or the namespace's functions."""
    return name if name == "t" else f"s_{name}"


class _PowMixin:
    """Cheap powers: x**2 → x*x, x**-1 → 1/x, x**0.5 → sqrt(x), x**a → exp(a*log(x)).
    Symbols print as their prefixed locals (``_local``)."""

    _module: str

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        return _local(expr.name)

    def _print_Pow(self, expr: sp.Pow, rational: bool = False) -> str:
        base, exp = expr.args
        b = self.parenthesize(base, 100)  # type: ignore[attr-defined]
        if exp.is_Integer:
            n = int(exp)
            if n == 0:
                return "1.0"
            if 0 < n <= 4:
                return "(" + "*".join([b] * n) + ")"
            if -4 <= n < 0:
                return "(1.0/(" + "*".join([b] * (-n)) + "))"
            return f"({b}**{n})"
        if exp == sp.Rational(1, 2):
            return f"sqrt({self._print(base)})"  # type: ignore[attr-defined]
        if exp == -sp.Rational(1, 2):
            return f"(1.0/sqrt({self._print(base)}))"  # type: ignore[attr-defined]
        if not exp.is_number:
            # exp/log (not pow: faster, and the same bits in every batch shape), with SBML's
            # 0**0 = 1 where the exponent is 0
            e = self._print(exp)  # type: ignore[attr-defined]
            return f"where(({e}) == 0, 1.0, exp(({e})*log({self._print(base)})))"  # type: ignore[attr-defined]
        return f"exp(({self._print(exp)})*log({self._print(base)}))"  # type: ignore[attr-defined]


class _JaxCode(_PowMixin, JaxPrinter):
    pass


class _NumpyCode(_PowMixin, NumPyPrinter):
    pass


def generate_function(
    name: str,
    outputs: Sequence[sp.Expr],
    *,
    state_names: Sequence[str],
    input_names: Sequence[str],
    assignments: Sequence[tuple[str, sp.Expr]],
    delays: Sequence[tuple[str, sp.Expr]] = (),
    backend: str = "jax",
    covariate_slopes: dict[str, tuple[int, int]] | None = None,
) -> tuple[str, dict[str, object]]:
    """Source of ``def name(t, y, p, z): return stack([outputs...])`` and its namespace.

    Assignments not needed by the outputs are pruned. ``delayed(X, tau)`` terms become the
    entries of ``z`` (in the order of ``delays``).
    """
    lag_symbols = {
        delayed(sp.Symbol(s, real=True), tau): sp.Symbol(f"__z{k}", real=True)
        for k, (s, tau) in enumerate(delays)
    }

    def sub(e: sp.Expr) -> sp.Expr:
        if lag_symbols and e.has(delayed):
            e = e.xreplace(lag_symbols)  # type: ignore[assignment]
        return e

    outs = [sub(e) for e in outputs]
    assign = [(n, sub(e)) for n, e in assignments]
    # prune assignments that no output needs (walk backwards over the sorted list)
    needed: set[str] = set()
    for e in outs:
        needed |= {s.name for s in e.free_symbols}  # type: ignore[attr-defined]
    kept: list[tuple[str, sp.Expr]] = []
    for n, e in reversed(assign):
        if n in needed:
            kept.append((n, e))
            needed |= {s.name for s in e.free_symbols}  # type: ignore[attr-defined]
    kept.reverse()

    printer = (_JaxCode if backend == "jax" else _NumpyCode)({"fully_qualified_modules": False})
    lines = [f"def {name}(t, y, p, z):"]
    for i, s in enumerate(state_names):
        if s in needed:
            lines.append(f"    {_local(s)} = y[{i}]")
    slopes = covariate_slopes or {}
    for j, s in enumerate(input_names):
        if s in needed:
            if s in slopes:  # linearly interpolated covariate: value + slope·(t - t_ref)
                a, b = slopes[s]
                lines.append(f"    {_local(s)} = p[{j}] + p[{a}]*(t - p[{b}])")
            else:
                lines.append(f"    {_local(s)} = p[{j}]")
    for name in sorted(n for n in needed if n.startswith("__raw_")):
        lines.append(f"    {_local(name)} = p[{int(name[6:])}]")  # an input entry as stored
    for k in range(len(delays)):
        if f"__z{k}" in needed:
            lines.append(f"    {_local(f'__z{k}')} = z[{k}]")
    for n, e in kept:
        lines.append(f"    {_local(n)} = {printer.doprint(e)}")
    body = ", ".join(f"({printer.doprint(e)}) + zero" for e in outs)
    lines.append("    zero = 0.0 * t")
    lines.append(f"    return stack([{body}]) if {len(outs)} else zeros((0,))")
    source = "\n".join(lines) + "\n"

    namespace: dict[str, object] = {}
    mod: ModuleType
    if backend == "jax":
        import jax.numpy as jnp

        mod = jnp
    else:
        import numpy as np

        mod = np
    for fn in printer.module_imports.get("jax.numpy", set()) | printer.module_imports.get(
        "numpy", set()
    ):
        namespace[fn] = getattr(mod, fn)
    from functools import reduce

    namespace.update(
        reduce=reduce,
        numpy=mod,
        stack=mod.stack,
        zeros=mod.zeros,
        where=mod.where,
        exp=mod.exp,
        log=mod.log,
        sqrt=mod.sqrt,
        nan=mod.nan,
        inf=mod.inf,
        pi=mod.pi,
        e=mod.e,
    )
    if backend == "jax":
        from jax.scipy.special import gamma
    else:
        from scipy.special import gamma
    namespace["gamma"] = gamma  # SBML factorial(n) = gamma(n + 1)
    namespace["t"] = TIME  # overwritten by the argument; keeps linters of the source honest
    code = compile(source, f"<hemolab:{name}>", "exec")
    exec(code, namespace)
    return source, namespace
