"""Reading a protocol from TOML, every problem reported with the file, line and field::

[protocol]
name = "docetaxel, three weekly cycles"
model = "friberg_docetaxel"   # a library model, or a model file (relative to this file)
time_unit = "d"               # of bare numbers below (default: the model's)

[population]                  # optional: a virtual population of the model
n = 200
seed = 7
# blood_groups = { "O+" = 0.374, ... }   # ABO/RhD shares (default: the US population's)

[monitoring]
observables = ["ANC"]
every = "1d"

[[phase]]
name = "cycle 1"
duration = "21d"              # a number, or text with a unit suffix ("504h", "3w")
parameters = { }              # parameters held at other values during the phase

[[phase.dose]]
cmt = "A1"
amount = 100
unit = "mg/m2"                # optional: AMT_UNIT
start = 0                     # from the phase's start
every = "7d"                  # with count > 1
count = 1
duration = "1h"               # optional: an infusion

[[phase.transfusion]]         # optional: blood products (the model needs a BloodSpec)
product = "RBC"               # RBC, WB, PLT_APH, PLT_POOL, PLASMA
units = 2
start = "1d"                  # also every, count, duration (default 2 h)
group = "O-"                  # the product's group; absent: matched to each patient

[[limit]]
name = "grade-4 neutropenia > 7 d"
when = "ANC < 0.5"            # or "rejection": an incompatible product given
longer_than = "7d"            # absent: the condition must never hold
max_probability = 0.10

[[rule]]
name = "hold below 1.0"
when = "ANC < 1.0"
action = "hold"               # or "reduce" (with factor = 0.75), "stop", "move on"
cmt = "A1"                    # optional: default every dosed state
# phase = "cycle 1"           # "move on": the phase it ends early (later phases follow)
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hemolab._errors import HemolabError
from hemolab._toml import TomlLines
from hemolab.protocols._protocol import (
    Dose,
    Limit,
    Monitoring,
    Phase,
    Protocol,
    ProtocolError,
    Rule,
    Transfusion,
)

__all__ = ["ProtocolFile", "placeholders", "protocol_model", "read_protocol"]

_TABLES = {"protocol", "population", "monitoring", "phase", "limit", "rule"}
_HEAD = {"name", "model", "time_unit"}
_PHASE = {"name", "duration", "start", "parameters", "dose", "transfusion"}
_TRANSFUSION = {"product", "units", "start", "every", "count", "duration", "group"}
_DOSE = {"cmt", "amount", "unit", "start", "every", "count", "duration"}
_LIMIT = {"name", "when", "longer_than", "max_probability"}
_RULE = {"name", "when", "action", "cmt", "factor", "phase"}


@dataclass(frozen=True)
class ProtocolFile:
    """A protocol read from a file, with the model and population it names."""

    protocol: Protocol
    model: str  # library name, or a model file's absolute path
    population_n: int | None
    population_seed: int | None
    path: Path
    blood_groups: Mapping[str, float] | None = None  # the population's ABO/RhD shares


def protocol_model(path: str | os.PathLike[str]) -> str:
    """The model a protocol file names: a library name, or a model file's absolute path
    (relative to the protocol file), without reading the rest."""
    p = Path(path)
    if not p.is_file():
        raise ProtocolError(f"protocol {str(p)!r} does not exist or is not a file")
    text = p.read_text(encoding="utf-8", errors="replace")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProtocolError(f"{p}: not valid TOML: {exc}") from None
    lines = TomlLines(text, str(p))
    head = doc.get("protocol")
    if not isinstance(head, dict):
        raise ProtocolError(f"{p}: missing table [protocol]")
    model = head.get("model")
    if not isinstance(model, str) or not model.strip():
        raise ProtocolError(f"{lines.of('protocol', 'model')}: model must name a model")
    return _model_path(p, model.strip())


def _model_path(p: Path, model: str) -> str:
    if model.lower().endswith((".xml", ".sbml", ".ant", ".antimony", ".py")):
        return str((p.parent / model).resolve())
    return model


def read_protocol(
    path: str | os.PathLike[str],
    *,
    time_unit: str | None = None,
    values: Mapping[str, Any] | None = None,
) -> ProtocolFile:
    """Read ``path`` (TOML, format in this module's docstring). ``time_unit``: the model's
    time unit, into which every duration is converted; default: the named library model's.

    A protocol *template* (searched by ``hemolab search``) writes ``{name}`` in a text value
    where a search variable goes: ``amount = "{dose}"``, ``every = "{interval}d"``. ``values``
    fills them (a text that is then a number becomes that number); a placeholder without a
    value is an error naming its line.
    """
    from hemolab.model._units import TIME_UNITS, parse_duration, time_factor

    p = Path(path)
    if not p.is_file():
        raise ProtocolError(f"protocol {str(p)!r} does not exist or is not a file")
    text = p.read_text(encoding="utf-8", errors="replace")
    lines = TomlLines(text, str(p))
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProtocolError(f"{p}: not valid TOML: {exc}") from None

    def fail(where: str, message: str) -> ProtocolError:
        return ProtocolError(f"{where}: {message}")

    doc = _fill(doc, dict(values or {}), lines)
    unknown = sorted(set(doc) - _TABLES)
    if unknown:
        raise fail(
            lines.of(unknown[0]),
            f"unknown table [{unknown[0]}] (expected [protocol], [population], [monitoring], "
            "[[phase]], [[phase.dose]], [[limit]], [[rule]])",
        )
    head = _table(doc, "protocol", lines, fail, required=True)
    _only(head, _HEAD, "protocol", lines.of("protocol"), lines, fail)
    name = _text(head, "name", lines.of("protocol", "name"), fail, default=p.stem)
    model = _text(head, "model", lines.of("protocol", "model"), fail)
    model_path = _model_path(p, model)
    unit_text = head.get("time_unit")
    if time_unit is None:
        time_unit = _library_time_unit(model, lines.of("protocol", "model"), fail)
    if unit_text is not None and (not isinstance(unit_text, str) or unit_text not in TIME_UNITS):
        raise fail(
            lines.of("protocol", "time_unit"),
            f"time_unit {unit_text!r} is not one of {', '.join(TIME_UNITS)}",
        )
    bare_unit = str(unit_text) if unit_text is not None else time_unit

    def duration(value: Any, where: str, field_: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise fail(
                where, f"{field_} must be a number or a duration such as '21d', got {value!r}"
            )
        try:
            x = parse_duration(str(value), bare_unit)
        except HemolabError as exc:
            raise fail(where, f"{field_}: {exc}") from None
        return x * time_factor(bare_unit, time_unit)

    pop = _table(doc, "population", lines, fail)
    _only(pop, {"n", "seed", "blood_groups"}, "population", lines.of("population"), lines, fail)
    shares = pop.get("blood_groups")
    if shares is not None:
        from hemolab.protocols._rejection import frequencies

        if not isinstance(shares, dict):
            msg = 'blood_groups must be a table of shares, e.g. { "O+" = 0.38, "A+" = 0.34 }'
            raise fail(lines.of("population", "blood_groups"), msg)
        try:
            frequencies(shares)
        except ProtocolError as exc:
            raise fail(lines.of("population", "blood_groups"), str(exc)) from None
    n = _integer(pop, "n", lines.of("population", "n"), fail, minimum=1)
    seed = _integer(pop, "seed", lines.of("population", "seed"), fail, minimum=0)
    if (n is None) != (seed is None):
        raise fail(lines.of("population"), "[population] needs both n and seed (reproducible)")

    mon = _table(doc, "monitoring", lines, fail, required=True)
    known = {"observables", "every", "normal"}
    _only(mon, known, "monitoring", lines.of("monitoring"), lines, fail)
    obs = mon.get("observables")
    if not isinstance(obs, list) or not obs or not all(isinstance(o, str) for o in obs):
        raise fail(
            lines.of("monitoring", "observables"),
            'observables must be a non-empty list of names, e.g. ["ANC"]',
        )
    if "every" not in mon:
        raise fail(lines.of("monitoring"), "missing field 'every' (how often to monitor)")
    every = duration(mon["every"], lines.of("monitoring", "every"), "every")
    normal: dict[str, tuple[float, float]] = {}
    raw_normal = mon.get("normal", {})
    if not isinstance(raw_normal, dict):
        msg = "normal must be a table of ranges, e.g. normal = { ANC = [1.5, 8.0] }"
        raise fail(lines.of("monitoring", "normal"), msg)
    for observable, bounds in raw_normal.items():
        ok = (
            isinstance(bounds, list)
            and len(bounds) == 2
            and all(isinstance(b, int | float) and not isinstance(b, bool) for b in bounds)
        )
        if not ok:
            msg = f"normal range of {observable!r} must be [low, high] (two numbers)"
            raise fail(lines.of("monitoring", "normal"), msg)
        normal[observable] = (float(bounds[0]), float(bounds[1]))

    raw_phases = doc.get("phase")
    if not isinstance(raw_phases, list) or not raw_phases:
        raise fail(str(p), "no [[phase]] tables: a protocol has at least one phase")
    phases: list[Phase] = []
    dose_k = tr_k = 0
    for k, ph in enumerate(raw_phases):
        where = lines.of("phase", nth=k)
        if not isinstance(ph, dict):
            raise fail(where, "each [[phase]] must be a table")
        _only(ph, _PHASE, f"phase #{k + 1}", where, lines, fail, table="phase", nth=k)
        pname = _text(ph, "name", lines.of("phase", "name", nth=k), fail, default=f"phase {k + 1}")
        if "duration" not in ph:
            raise fail(where, f"phase {pname!r}: missing field 'duration'")
        dur = duration(ph["duration"], lines.of("phase", "duration", nth=k), "duration")
        start = (
            duration(ph["start"], lines.of("phase", "start", nth=k), "start")
            if "start" in ph
            else None
        )
        params = ph.get("parameters", {})
        if not isinstance(params, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for v in params.values()
        ):
            raise fail(
                lines.of("phase", "parameters", nth=k),
                f"phase {pname!r}: parameters must map names to numbers",
            )
        doses: list[Dose] = []
        dose_tables = _subtables(ph, "dose", dose_k, _DOSE, pname, where, lines, fail)
        dose_k += len(dose_tables)
        for d, at in dose_tables:
            cmt = _text(d, "cmt", at("cmt"), fail)
            amount = d.get("amount")
            if isinstance(amount, bool) or not isinstance(amount, (int, float)):
                raise fail(
                    at("amount"), f"phase {pname!r}: amount must be a number, got {amount!r}"
                )
            count = _integer(d, "count", at("count"), fail, minimum=1) or 1
            doses.append(
                Dose(
                    cmt=cmt,
                    amount=float(amount),
                    start=duration(d.get("start", 0), at("start"), "start"),
                    every=duration(d["every"], at("every"), "every") if "every" in d else None,
                    count=count,
                    duration=duration(d.get("duration", 0), at("duration"), "duration"),
                    unit=_text(d, "unit", at("unit"), fail) if "unit" in d else None,
                )
            )
        transfusions: list[Transfusion] = []
        tr_tables = _subtables(ph, "transfusion", tr_k, _TRANSFUSION, pname, where, lines, fail)
        tr_k += len(tr_tables)
        for tr, tat in tr_tables:
            transfusions.append(
                Transfusion(
                    product=_text(tr, "product", tat("product"), fail).upper(),
                    units=_integer(tr, "units", tat("units"), fail, minimum=1) or 1,
                    start=duration(tr.get("start", 0), tat("start"), "start"),
                    every=duration(tr["every"], tat("every"), "every") if "every" in tr else None,
                    count=_integer(tr, "count", tat("count"), fail, minimum=1) or 1,
                    duration=(
                        duration(tr["duration"], tat("duration"), "duration")
                        if "duration" in tr
                        else None
                    ),
                    group=_text(tr, "group", tat("group"), fail) if "group" in tr else None,
                )
            )
        phases.append(
            Phase(
                pname,
                dur,
                tuple(doses),
                {str(a): float(b) for a, b in params.items()},
                start,
                tuple(transfusions),
            )
        )

    limits: list[Limit] = []
    raw_limits = doc.get("limit", [])
    if not isinstance(raw_limits, list):
        raise fail(lines.of("limit"), "limits are [[limit]] tables")
    for k, lim in enumerate(raw_limits):
        where = lines.of("limit", nth=k)
        if not isinstance(lim, dict):
            raise fail(where, "each [[limit]] must be a table")
        _only(lim, _LIMIT, f"limit #{k + 1}", where, lines, fail, table="limit", nth=k)
        lname = _text(lim, "name", lines.of("limit", "name", nth=k), fail, default=f"limit {k + 1}")
        when = _text(lim, "when", lines.of("limit", "when", nth=k), fail)
        longer = (
            duration(lim["longer_than"], lines.of("limit", "longer_than", nth=k), "longer_than")
            if "longer_than" in lim
            else None
        )
        mp = lim.get("max_probability", 0.0)
        if isinstance(mp, bool) or not isinstance(mp, (int, float)) or not 0 <= mp <= 1:
            raise fail(
                lines.of("limit", "max_probability", nth=k),
                f"limit {lname!r}: max_probability must be a number in [0, 1], got {mp!r}",
            )
        limit = Limit(lname, when, longer, float(mp))
        try:
            if not limit.is_rejection:
                limit.relation()
        except ProtocolError as exc:
            raise fail(lines.of("limit", "when", nth=k), str(exc)) from None
        limits.append(limit)

    rules: list[Rule] = []
    raw_rules = doc.get("rule", [])
    if not isinstance(raw_rules, list):
        raise fail(lines.of("rule"), "rules are [[rule]] tables")
    for k, rule in enumerate(raw_rules):
        where = lines.of("rule", nth=k)
        if not isinstance(rule, dict):
            raise fail(where, "each [[rule]] must be a table")
        _only(rule, _RULE, f"rule #{k + 1}", where, lines, fail, table="rule", nth=k)
        rname = _text(rule, "name", lines.of("rule", "name", nth=k), fail, default=f"rule {k + 1}")
        rwhen = _text(rule, "when", lines.of("rule", "when", nth=k), fail)
        action = _text(rule, "action", lines.of("rule", "action", nth=k), fail)
        factor = rule.get("factor")
        if factor is not None and (
            isinstance(factor, bool) or not isinstance(factor, (int, float))
        ):
            raise fail(
                lines.of("rule", "factor", nth=k), f"factor must be a number, got {factor!r}"
            )
        cmt = _text(rule, "cmt", lines.of("rule", "cmt", nth=k), fail) if "cmt" in rule else None
        rphase = None
        if "phase" in rule:
            rphase = _text(rule, "phase", lines.of("rule", "phase", nth=k), fail)
        rfactor = None if factor is None else float(factor)
        rules.append(Rule(rname, rwhen, action, cmt, rfactor, rphase))

    try:
        protocol = Protocol(
            name,
            tuple(phases),
            Monitoring(tuple(obs), every, normal),
            tuple(limits),
            str(p),
            tuple(rules),
        )
    except ProtocolError as exc:
        raise fail(_blame(lines, raw_phases, raw_limits, raw_rules, str(exc)), str(exc)) from None
    return ProtocolFile(protocol, model_path, n, seed, p, shares)


_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?)")


def placeholders(path: str | os.PathLike[str]) -> set[str]:
    """The ``{name}`` placeholders a protocol template uses (in its text values).

    Raises :class:`ProtocolError` when the file is missing or is no TOML."""
    p = Path(path)
    if not p.is_file():
        raise ProtocolError(f"protocol {str(p)!r} does not exist or is not a file")
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8", errors="replace"))
    except tomllib.TOMLDecodeError as exc:
        raise ProtocolError(f"{p}: not valid TOML: {exc}") from None
    found: set[str] = set()

    def walk(x: Any) -> None:
        if isinstance(x, str):
            for expr in _PLACEHOLDER.findall(x):
                found.update(_IDENT.findall(expr))
        elif isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(doc)
    return found


def _fill(doc: Any, values: dict[str, Any], lines: TomlLines) -> Any:
    """``doc`` with every ``{name}`` replaced by ``values[name]``; numeric results as numbers."""
    if isinstance(doc, dict):
        return {k: _fill(v, values, lines) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_fill(v, values, lines) for v in doc]
    if not isinstance(doc, str) or "{" not in doc:
        return doc
    for expr in _PLACEHOLDER.findall(doc):
        missing = [n for n in _IDENT.findall(expr) if n not in values]
        if missing:
            line = next((i + 1 for i, t in enumerate(lines.lines) if "{" + expr + "}" in t), None)
            where = f"{lines.path}:{line}" if line else lines.path
            raise ProtocolError(
                f"{where}: placeholder {{{expr}}} uses {missing[0]!r}, which has no value: this "
                "protocol is a template (give the value, or search it with hemolab search)"
            )
    text = _PLACEHOLDER.sub(lambda m: _show(_arithmetic(m.group(1), values, lines)), doc)
    if _NUMBER.fullmatch(text.strip()):
        number = float(text)
        return (
            int(number)
            if number.is_integer() and "." not in text and "e" not in text.lower()
            else number
        )
    return text


def _arithmetic(expr: str, values: Mapping[str, Any], lines: TomlLines) -> Any:
    """``{dose}`` or ``{cycles * interval}``: a variable, or + - * / of variables and numbers."""
    import ast
    import operator

    ops: dict[type, Any] = {
        ast.Add: operator.add,
        ast.Sub: operator.sub,
        ast.Mult: operator.mul,
        ast.Div: operator.truediv,
        ast.USub: operator.neg,
    }

    def bad() -> ProtocolError:
        line = next((i + 1 for i, t in enumerate(lines.lines) if "{" + expr + "}" in t), None)
        where = f"{lines.path}:{line}" if line else lines.path
        return ProtocolError(
            f"{where}: placeholder {{{expr}}} is not a variable or + - * / of variables and numbers"
        )

    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Name):
            return values[node.id]
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in ops:
            return ops[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in ops:
            return ops[type(node.op)](ev(node.operand))
        raise bad()

    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError:
        raise bad() from None
    if isinstance(tree.body, ast.Name):
        return values[tree.body.id]  # any value, a category's text included
    return ev(tree)


def _show(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return str(value)


def _blame(
    lines: TomlLines,
    raw_phases: list[Any],
    raw_limits: list[Any],
    raw_rules: list[Any],
    message: str,
) -> str:
    """The line of the phase or limit a protocol-level message names first (else the file)."""
    best: tuple[int, str] | None = None
    for table, raw in (("phase", raw_phases), ("limit", raw_limits), ("rule", raw_rules)):
        for k, item in enumerate(raw):
            if not isinstance(item, dict):
                continue
            at = message.find(f"{table} {item.get('name', f'{table} {k + 1}')!r}")
            if at >= 0 and (best is None or at < best[0]):
                best = (at, lines.of(table, nth=k))
    return best[1] if best else lines.path


def _library_time_unit(model: str, where: str, fail: Any) -> str:
    from hemolab.library import get_model, list_models

    if model in list_models():
        return get_model(model).time_unit
    raise fail(
        where,
        f"model {model!r} is not a library model ({', '.join(list_models())}); for a model "
        "file, pass its time unit (read_protocol(..., time_unit=...))",
    )


def _table(
    doc: dict[str, Any], name: str, lines: TomlLines, fail: Any, required: bool = False
) -> dict[str, Any]:
    t = doc.get(name)
    if t is None:
        if required:
            raise fail(lines.path, f"missing table [{name}]")
        return {}
    if not isinstance(t, dict):
        raise fail(lines.of(name), f"[{name}] must be a table")
    return t


def _only(
    t: dict[str, Any],
    allowed: set[str],
    what: str,
    where: str,
    lines: TomlLines,
    fail: Any,
    table: str | None = None,
    nth: int = 0,
) -> None:
    extra = sorted(set(t) - allowed)
    if extra:
        loc = lines.of(table or what, extra[0], nth=nth) if table or what else where
        raise fail(
            loc, f"unknown field {extra[0]!r} in {what} (expected: {', '.join(sorted(allowed))})"
        )


def _subtables(
    ph: dict[str, Any],
    key: str,
    first: int,
    allowed: set[str],
    pname: str,
    where: str,
    lines: TomlLines,
    fail: Any,
) -> list[tuple[dict[str, Any], Any]]:
    """A phase's ``[[phase.<key>]]`` tables, each checked (a table, known fields only), with
    a function giving the line of each of its fields; ``first``: the file-wide index of the
    phase's first such table (their lines are counted over the whole file)."""
    raw = ph.get(key, [])
    if not isinstance(raw, list):
        raise fail(where, f"phase {pname!r}: {key}s are [[phase.{key}]] tables")
    out: list[tuple[dict[str, Any], Any]] = []
    for i, table in enumerate(raw):
        nth = first + i

        def at(field: str, _n: int = nth) -> str:
            return lines.of(f"phase.{key}", field, nth=_n)

        if not isinstance(table, dict):
            raise fail(lines.of(f"phase.{key}", nth=nth), f"each [[phase.{key}]] must be a table")
        extra = sorted(set(table) - allowed)
        if extra:
            raise fail(
                at(extra[0]),
                f"phase {pname!r}: unknown {key} field {extra[0]!r} "
                f"(expected: {', '.join(sorted(allowed))})",
            )
        out.append((table, at))
    return out


def _text(t: dict[str, Any], key: str, where: str, fail: Any, default: str | None = None) -> str:
    v = t.get(key, default)
    if v is None:
        raise fail(where, f"missing field {key!r}")
    if not isinstance(v, str) or not v.strip():
        raise fail(where, f"{key} must be a non-empty string, got {v!r}")
    return v.strip()


def _integer(t: dict[str, Any], key: str, where: str, fail: Any, minimum: int) -> int | None:
    if key not in t:
        return None
    v = t[key]
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise fail(where, f"{key} must be an integer >= {minimum}, got {v!r}")
    return int(v)
