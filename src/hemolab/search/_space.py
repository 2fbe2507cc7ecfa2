"""A declared search space: continuous, integer and categorical variables with bounds, and
constraints between them; from Python or a TOML file, checked before anything runs.

A point of the space is a dict ``name -> value``; a batch of points is a dict ``name ->
array`` (categorical values as their labels). Optimisers work in the unit cube: each
variable maps to [0, 1] (integers and categories by equal-width bins), and
:meth:`SearchSpace.decode` turns cube coordinates into values.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from hemolab._errors import HemolabError
from hemolab._toml import TomlLines as _Lines

__all__ = [
    "Categorical",
    "Constraint",
    "Continuous",
    "Integer",
    "SearchSpace",
    "SearchSpaceError",
    "read_search_space",
]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class SearchSpaceError(HemolabError, ValueError):
    """A search space is invalid; the message names the file, line and field."""


@dataclass(frozen=True)
class Continuous:
    """A real variable in ``[low, high]`` (``log=True``: searched on a log scale)."""

    name: str
    low: float
    high: float
    unit: str = ""
    log: bool = False

    def decode(self, u: np.ndarray) -> np.ndarray:
        if self.log:
            return np.exp(np.log(self.low) + u * (np.log(self.high) - np.log(self.low)))
        return self.low + u * (self.high - self.low)

    def encode(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self.log:
            return (np.log(x) - np.log(self.low)) / (np.log(self.high) - np.log(self.low))
        return (x - self.low) / (self.high - self.low)

    def grid(self, n: int) -> np.ndarray:
        return self.decode(np.linspace(0.0, 1.0, n))


@dataclass(frozen=True)
class Integer:
    """An integer variable in ``[low, high]`` (both included)."""

    name: str
    low: int
    high: int
    unit: str = ""

    @property
    def size(self) -> int:
        return self.high - self.low + 1

    def decode(self, u: np.ndarray) -> np.ndarray:
        k = np.minimum(np.floor(np.asarray(u) * self.size), self.size - 1)
        return (self.low + np.maximum(k, 0)).astype(np.int64)

    def encode(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) - self.low + 0.5) / self.size

    def grid(self, n: int) -> np.ndarray:
        if n >= self.size:
            return np.arange(self.low, self.high + 1, dtype=np.int64)
        return np.unique(np.round(np.linspace(self.low, self.high, n)).astype(np.int64))


@dataclass(frozen=True)
class Categorical:
    """One of ``choices`` (labels: strings or numbers)."""

    name: str
    choices: tuple[Any, ...]

    def decode(self, u: np.ndarray) -> np.ndarray:
        k = np.minimum(np.floor(np.asarray(u) * len(self.choices)), len(self.choices) - 1)
        return np.asarray(self.choices, dtype=object)[np.maximum(k, 0).astype(np.int64)]

    def encode(self, x: np.ndarray) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.choices)}
        return (np.array([index[v] for v in np.asarray(x, dtype=object).ravel()]) + 0.5) / len(
            self.choices
        )

    def grid(self, n: int) -> np.ndarray:
        return np.asarray(self.choices, dtype=object)


Variable = Continuous | Integer | Categorical


@dataclass(frozen=True)
class Constraint:
    """``expression`` (an inequality over the variables, e.g. ``dose * 7 / interval <= 60``)
    that every evaluated point must satisfy; ``where`` says where it was declared."""

    expression: str
    where: str = ""
    _fn: Any = field(default=None, compare=False, repr=False)

    def violation(self, points: Mapping[str, np.ndarray]) -> np.ndarray:
        """How far each point is from satisfying it (0 where it holds)."""
        return np.maximum(np.asarray(self._fn(points), dtype=np.float64), 0.0)


def _compile_constraint(text: str, names: Sequence[str], where: str) -> Constraint:
    import sympy as sp

    def fail(why: str) -> SearchSpaceError:
        return SearchSpaceError(f"{where}: constraint {text!r}: {why}")

    symbols = {n: sp.Symbol(n) for n in names}
    try:
        expr: Any = sp.parse_expr(text, local_dict=dict(symbols), evaluate=False)
    except (sp.SympifyError, SyntaxError, TypeError) as exc:
        raise fail(f"not an expression ({type(exc).__name__})") from None
    if not isinstance(expr, sp.core.relational.Relational) or isinstance(expr, (sp.Eq, sp.Ne)):
        raise fail("must be an inequality (<=, >=, <, >) between expressions of the variables")
    unknown = sorted(str(s) for s in expr.free_symbols if str(s) not in symbols)
    if unknown:
        raise fail(f"unknown variable {unknown[0]!r} (variables: {', '.join(names)})")
    # g <= 0 where it holds
    lhs, rhs = cast(Any, expr.lhs), cast(Any, expr.rhs)
    g = lhs - rhs if isinstance(expr, (sp.LessThan, sp.StrictLessThan)) else rhs - lhs
    used = sorted(str(s) for s in g.free_symbols)
    f = sp.lambdify([symbols[n] for n in used], g, modules="numpy")

    def fn(points: Mapping[str, np.ndarray]) -> np.ndarray:
        args = [np.asarray(points[n], dtype=np.float64) for n in used]
        n = len(next(iter(points.values()))) if points else 1
        return np.broadcast_to(np.asarray(f(*args), dtype=np.float64), (n,))

    return Constraint(text, where, fn)


@dataclass(frozen=True)
class SearchSpace:
    """Variables (in order) and the constraints between them.

    Examples
    --------
    >>> from hemolab.search import Continuous, Integer, SearchSpace
    >>> dose, interval = Continuous("dose", 50, 150, "mg/m2"), Integer("interval", 14, 28, "d")
    >>> space = SearchSpace([dose, interval], constraints=["dose * 7 / interval <= 40"])
    >>> space.feasible({"dose": np.array([100.0, 150.0]), "interval": np.array([21, 21])})
    array([ True, False])
    """

    variables: Sequence[Variable]
    constraints: Sequence[Constraint | str] = ()
    name: str = ""
    source: str = ""  # the file it was read from, if any

    def __post_init__(self) -> None:
        where = self.source or "search space"
        seen: set[str] = set()
        for v in self.variables:
            _check_variable(v, where)
            if v.name in seen:
                raise SearchSpaceError(f"{where}: variable {v.name!r} is declared twice")
            seen.add(v.name)
        if not self.variables:
            raise SearchSpaceError(f"{where}: no variables to search")
        compiled = tuple(
            c
            if isinstance(c, Constraint) and c._fn is not None
            else _compile_constraint(
                c if isinstance(c, str) else c.expression,
                self.names,
                c.where if isinstance(c, Constraint) and c.where else where,
            )
            for c in self.constraints
        )
        object.__setattr__(self, "variables", tuple(self.variables))
        object.__setattr__(self, "constraints", compiled)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.variables)

    @property
    def dim(self) -> int:
        return len(self.variables)

    def decode(self, u: np.ndarray) -> dict[str, np.ndarray]:
        """Points from unit-cube coordinates ``u`` (n, dim), clipped to the cube."""
        u = np.clip(np.atleast_2d(np.asarray(u, dtype=np.float64)), 0.0, 1.0)
        return {v.name: v.decode(u[:, j]) for j, v in enumerate(self.variables)}

    def encode(self, points: Mapping[str, Any]) -> np.ndarray:
        return np.stack([v.encode(np.atleast_1d(points[v.name])) for v in self.variables], axis=1)

    def violation(self, points: Mapping[str, np.ndarray]) -> np.ndarray:
        """Sum of the constraints' violations per point (0: feasible)."""
        n = len(np.atleast_1d(next(iter(points.values()))))
        numeric = {k: v for k, v in points.items() if np.asarray(v).dtype != object}
        total = np.zeros(n)
        for c in self.constraints:
            assert isinstance(c, Constraint)
            total += c.violation(numeric)
        return total

    def feasible(self, points: Mapping[str, np.ndarray]) -> np.ndarray:
        return self.violation(points) <= 0.0

    def grid(self, per_axis: int | Mapping[str, int]) -> dict[str, np.ndarray]:
        """Every combination of ``per_axis`` values per variable (all choices and, for an
        integer variable with fewer values, all of them)."""
        counts = {
            v.name: per_axis if isinstance(per_axis, int) else per_axis.get(v.name, 1)
            for v in self.variables
        }
        axes = [v.grid(max(int(counts[v.name]), 1)) for v in self.variables]
        index = np.stack(np.meshgrid(*[np.arange(len(a)) for a in axes], indexing="ij"), -1)
        index = index.reshape(-1, len(axes))
        return {v.name: axes[j][index[:, j]] for j, v in enumerate(self.variables)}


def _check_variable(v: Any, where: str) -> None:
    if not isinstance(v, (Continuous, Integer, Categorical)):
        raise SearchSpaceError(f"{where}: {v!r} is not a Continuous, Integer or Categorical")
    if not _NAME.fullmatch(v.name):
        raise SearchSpaceError(f"{where}: variable name {v.name!r} is not an identifier")
    if isinstance(v, Categorical):
        if len(v.choices) < 1 or len(set(v.choices)) != len(v.choices):
            raise SearchSpaceError(
                f"{where}: variable {v.name!r}: choices must be distinct and at least one"
            )
        return
    lo, hi = v.low, v.high
    if not (isinstance(lo, (int, float)) and isinstance(hi, (int, float))) or not (
        math.isfinite(lo) and math.isfinite(hi)
    ):
        raise SearchSpaceError(
            f"{where}: variable {v.name!r}: low and high must be finite "
            f"numbers, got {lo!r} and {hi!r}"
        )
    if isinstance(v, Integer) and (int(lo) != lo or int(hi) != hi):
        raise SearchSpaceError(f"{where}: variable {v.name!r}: integer bounds, got {lo} and {hi}")
    if not lo < hi if isinstance(v, Continuous) else not lo <= hi:
        raise SearchSpaceError(
            f"{where}: variable {v.name!r}: infeasible bounds: low {lo} is not below high {hi}"
        )
    if isinstance(v, Continuous) and v.log and lo <= 0:
        raise SearchSpaceError(f"{where}: variable {v.name!r}: a log scale needs low > 0, got {lo}")


# --- TOML --------------------------------------------------------------------------------------

_FIELDS = {
    "continuous": {"type", "low", "high", "unit", "log"},
    "integer": {"type", "low", "high", "unit"},
    "categorical": {"type", "choices"},
}


def read_search_space(
    path: str | os.PathLike[str],
    *,
    search_fields: frozenset[str] = frozenset(),
    tables: frozenset[str] = frozenset(),
) -> SearchSpace:
    """Read a search space from TOML::

        [search]
        name = "docetaxel dose and interval"

        [variables.dose]
        type = "continuous"      # or "integer", "categorical"
        low = 50
        high = 150
        unit = "mg/m2"

        [variables.schedule]
        type = "categorical"
        choices = ["q14d", "q21d"]

        [[constraints]]
        expr = "dose <= 120"

    Every problem is an error naming the file, the line and the field. ``search_fields`` and
    ``tables``: further ``[search]`` fields and tables that a caller reads (a protocol
    search's ``protocol``, ``method``, ``[objective]``).
    """
    p = Path(path)
    if not p.is_file():
        raise SearchSpaceError(f"search space {str(p)!r} does not exist or is not a file")
    text = p.read_text(encoding="utf-8", errors="replace")
    lines = _Lines(text, str(p))
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SearchSpaceError(f"{p}: not valid TOML: {exc}") from None
    unknown = sorted(set(doc) - {"search", "variables", "constraints"} - tables)
    if unknown:
        expected = ["[search]", "[variables.NAME]", "[[constraints]]", *(f"[{t}]" for t in tables)]
        raise SearchSpaceError(
            f"{lines.of(unknown[0])}: unknown table [{unknown[0]}] (expected {', '.join(expected)})"
        )
    head = doc.get("search", {})
    allowed = {"name"} | search_fields
    if not isinstance(head, dict) or set(head) - allowed:
        bad = sorted(set(head) - allowed) if isinstance(head, dict) else ["search"]
        raise SearchSpaceError(
            f"{lines.of('search', bad[0])}: unknown field {bad[0]!r} in [search] "
            f"(expected: {', '.join(sorted(allowed))})"
        )
    variables: list[Variable] = []
    declared = doc.get("variables", {})
    if not isinstance(declared, dict) or not declared:
        raise SearchSpaceError(f"{p}: no [variables.NAME] tables: nothing to search")
    for name, spec in declared.items():
        table = f"variables.{name}"
        if not isinstance(spec, dict):
            raise SearchSpaceError(
                f"{lines.of('variables', name)}: variables.{name} must be a table with a type"
            )
        kind = spec.get("type")
        if not isinstance(kind, str) or kind not in _FIELDS:  # type = [] is unhashable
            raise SearchSpaceError(
                f"{lines.of(table, 'type')}: variables.{name}.type must be "
                f"continuous, integer or categorical, got {kind!r}"
            )
        extra = sorted(set(spec) - _FIELDS[kind])
        if extra:
            raise SearchSpaceError(
                f"{lines.of(table, extra[0])}: variables.{name}: unknown "
                f"field {extra[0]!r} for a {kind} variable (expected: "
                f"{', '.join(sorted(_FIELDS[kind]))})"
            )
        missing = (
            sorted({"low", "high"} - set(spec))
            if kind != "categorical"
            else ([] if "choices" in spec else ["choices"])
        )
        if missing:
            raise SearchSpaceError(
                f"{lines.of(table)}: variables.{name}: missing field {missing[0]!r}"
            )
        where = lines.of(table, "low" if kind != "categorical" else "choices")
        for fld in ("low", "high"):
            if fld in spec and (
                isinstance(spec[fld], bool) or not isinstance(spec[fld], (int, float))
            ):
                raise SearchSpaceError(
                    f"{lines.of(table, fld)}: variables.{name}.{fld} must be "
                    f"a number, got {spec[fld]!r}"
                )
        try:
            if kind == "continuous":
                v: Variable = Continuous(
                    name,
                    float(spec["low"]),
                    float(spec["high"]),
                    str(spec.get("unit", "")),
                    bool(spec.get("log", False)),
                )
            elif kind == "integer":
                v = Integer(name, spec["low"], spec["high"], str(spec.get("unit", "")))
            else:
                if not isinstance(spec["choices"], list):
                    raise SearchSpaceError(f"{where}: variables.{name}.choices must be a list")
                v = Categorical(name, tuple(spec["choices"]))
            _check_variable(v, where)
        except SearchSpaceError as exc:
            text_ = str(exc)
            raise SearchSpaceError(
                text_ if text_.startswith(str(p)) else f"{where}: {text_}"
            ) from None
        variables.append(v)
    names = [v.name for v in variables]
    constraints: list[Constraint] = []
    declared_c = doc.get("constraints", [])
    if not isinstance(declared_c, list):
        raise SearchSpaceError(
            f"{lines.of('constraints')}: constraints must be [[constraints]] tables"
        )
    for k, c in enumerate(declared_c):
        where = lines.of("constraints", "expr", nth=k)
        if not isinstance(c, dict) or set(c) != {"expr"} or not isinstance(c["expr"], str):
            raise SearchSpaceError(f'{where}: each [[constraints]] has one field, expr = "..."')
        constraints.append(_compile_constraint(c["expr"], names, where))
    return SearchSpace(variables, constraints, name=str(head.get("name", "")), source=str(p))
