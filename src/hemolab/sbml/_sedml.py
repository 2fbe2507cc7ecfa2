"""Running SED-ML simulation experiments (L1V2–L1V4) on SBML models with hemolab.

BioModels ships each curated model with a SED-ML file that says how its figures were made:
which model changes, which time course, which quantities, which plots. :func:`run_sedml`
reads one, runs every task with hemolab's own solver and writes the outputs: each ``report``
as ``<id>.csv`` (one column per data set), each ``plot2D`` as ``<id>.png``.

The file is read with the standard library's ``xml.etree``: python-libsedml ships its own
SWIG runtime, and loaded in one process with python-libsbml it breaks libsbml's math
(``ASTNode.getType`` then returns unwrapped objects), which hemolab's SBML import needs.

Supported: SBML models (source: a file beside the SED-ML, or the model file given), model
``changeAttribute`` changes of parameter values, species initial amounts/concentrations,
compartment sizes and kinetic-law local parameters (mapped onto hemolab parameters the way
``--param`` maps names: the parameter, or ``<id>__initial`` for a varying quantity's initial
value); ``uniformTimeCourse`` simulations (the KISAO algorithm is recorded, but hemolab's
solver runs at the caller's tolerances; stochastic algorithms are refused); ``task``;
data generators over species (concentrations unless ``hasOnlySubstanceUnits``, as in SBML
math), parameters, compartments, reaction rates and time, with parameters and MathML.

Anything else (repeated, nested or parameter-estimation tasks, steady-state or one-step
simulations, ``computeChange``/``addXML``/``changeXML``/``removeXML``, 3-D plots...) raises
:class:`~hemolab.UnsupportedSBMLError` naming the element: never a silently different
experiment. A malformed document raises :class:`~hemolab.SBMLError` naming the file and
element.
"""

from __future__ import annotations

import csv
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp

from hemolab._errors import SBMLError, SolveError, UnsupportedSBMLError

__all__ = ["SedmlRun", "run_sedml"]

SEDML_LANGUAGE = "urn:sedml:language:sbml"
TIME_SYMBOL = "urn:sedml:symbol:time"
STOCHASTIC_KISAO = frozenset({"KISAO:0000027", "KISAO:0000029", "KISAO:0000039", "KISAO:0000241"})
"""Gibson–Bruck, Gillespie direct, tau-leaping, Gillespie-like: an ODE solution is not what
they ask for."""

_TARGET = re.compile(
    r"""^/(?:\w+:)?sbml/(?:\w+:)?model
        /(?:\w+:)?listOf(?P<list>Species|Parameters|Compartments|Reactions)
        /(?:\w+:)?(?P<kind>species|parameter|compartment|reaction)
        \[@id=(?P<q>['"])(?P<id>[^'"]+)(?P=q)\]
        (?:/(?:\w+:)?kineticLaw/(?:\w+:)?listOf(?:Local)?Parameters
           /(?:\w+:)?(?:localParameter|parameter)\[@id=(?P<q2>['"])(?P<local>[^'"]+)(?P=q2)\])?
        (?:/@(?P<attr>\w+))?$""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class SedmlRun:
    """The outcome of :func:`run_sedml`.

    Attributes
    ----------
    sedml
        The SED-ML file.
    tasks
        Ids of the tasks run, in document order.
    outputs
        Output id → file written (``.csv`` report or ``.png`` plot); empty without
        ``out_dir``.
    data
        Data generator id → its values (one per output time of its task).
    algorithms
        Task id → KISAO id the SED-ML asked for (hemolab's solver was used).
    """

    sedml: Path
    tasks: tuple[str, ...]
    outputs: Mapping[str, Path]
    data: Mapping[str, np.ndarray]
    algorithms: Mapping[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "sedml": str(self.sedml),
            "tasks": list(self.tasks),
            "outputs": {k: str(v) for k, v in self.outputs.items()},
        }


# -- the document, read and checked before anything is solved ---------------------------------
@dataclass(frozen=True)
class _Target:
    kind: str  # species, parameter, compartment, reaction
    sid: str
    local: str | None = None  # a kinetic-law parameter of reaction ``sid``
    attr: str | None = None


@dataclass(frozen=True)
class _Model:
    id: str
    path: Path
    changes: tuple[tuple[_Target, float, str], ...]  # target, new value, XPath (for messages)


@dataclass(frozen=True)
class _Simulation:
    id: str
    initial: float
    start: float
    end: float
    points: int
    kisao: str

    @property
    def grid(self) -> np.ndarray:
        return np.linspace(self.start, self.end, self.points + 1)


@dataclass(frozen=True)
class _Variable:
    id: str
    task: str
    target: _Target | None  # None: time


@dataclass(frozen=True)
class _DataGenerator:
    id: str
    name: str
    variables: tuple[_Variable, ...]
    parameters: Mapping[str, float]
    math: str  # MathML text


@dataclass(frozen=True)
class _Curve:
    id: str
    name: str
    x: str
    y: str
    points: bool
    logx: bool
    logy: bool


@dataclass(frozen=True)
class _Output:
    id: str
    kind: str  # report, plot2D
    name: str
    columns: tuple[tuple[str, str], ...] = ()  # report: (label, dataGenerator)
    curves: tuple[_Curve, ...] = ()


@dataclass(frozen=True)
class _Document:
    path: Path
    models: Mapping[str, _Model]
    simulations: Mapping[str, _Simulation]
    tasks: Mapping[str, tuple[str, str]]  # task → (model, simulation)
    generators: Mapping[str, _DataGenerator]
    outputs: tuple[_Output, ...]


def run_sedml(
    sedml: str | os.PathLike[str],
    model: str | os.PathLike[str] | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    *,
    rtol: float = 1e-6,
    atol: float = 1e-8,
) -> SedmlRun:
    """Run the simulation experiment ``sedml`` and write its outputs to ``out_dir``.

    Parameters
    ----------
    sedml
        A SED-ML file (Level 1, Versions 2–4).
    model
        The SBML file of the experiment: it replaces the model source of the SED-ML (when the
        SED-ML names one file, or a file of the same name). Other sources are read relative
        to the SED-ML's folder.
    out_dir
        Folder (created if missing) for ``<report id>.csv`` and ``<plot id>.png``; ``None``
        computes the data only.
    rtol, atol
        hemolab's step control (the SED-ML's algorithm and its parameters are not used).

    Raises
    ------
    SBMLError
        Malformed SED-ML, or references to unknown elements (the message names them).
    UnsupportedSBMLError
        SED-ML constructs hemolab does not run, naming the element.
    SolveError
        A task's simulation failed.
    """
    doc = read_sedml(sedml, model)
    data, algorithms = _compute(doc, rtol=rtol, atol=atol)
    outputs: dict[str, Path] = {}
    if out_dir is not None:
        folder = Path(out_dir)
        folder.mkdir(parents=True, exist_ok=True)
        for out in doc.outputs:
            write = _write_report if out.kind == "report" else _write_plot
            outputs[out.id] = write(doc, out, data, folder)
    return SedmlRun(doc.path, tuple(doc.tasks), outputs, data, algorithms)


def read_sedml(
    sedml: str | os.PathLike[str], model: str | os.PathLike[str] | None = None
) -> _Document:
    """The experiment, checked (references, supported elements) before anything is solved."""
    path = Path(sedml)
    label = str(path)
    if not path.is_file():
        raise SBMLError(f"SED-ML file {label!r} does not exist")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        line = exc.position[0] if exc.position else None
        where = f"line {line}: " if line else ""
        raise SBMLError(f"{label}: {where}not well-formed XML ({exc})") from None
    ns, tag = _split(root.tag)
    if tag != "sedML":
        raise SBMLError(f"{label}: the root element is <{tag}>, not <sedML>")
    if ns not in _VERSIONS:
        raise UnsupportedSBMLError(
            f"{label}: SED-ML namespace {ns!r} is not supported (Level 1 Versions 2-4 are)"
        )
    r = _Reader(label, ns)
    known = {"listOfModels", "listOfSimulations", "listOfTasks", "listOfDataGenerators",
             "listOfOutputs", "notes", "annotation"}  # fmt: skip
    for child in root:
        name = r.name(child)
        if name not in known and name is not None:
            raise UnsupportedSBMLError(f"{label}: <{name}> is not supported")
    models = _models(r, root, path.parent, Path(model) if model is not None else None)
    simulations = _simulations(r, root)
    tasks: dict[str, tuple[str, str]] = {}
    for t in r.items(root, "listOfTasks"):
        tid = r.id(t)
        if r.name(t) != "task":
            raise UnsupportedSBMLError(
                f"{label}: {r.name(t)} {tid!r} is not supported (only plain tasks)"
            )
        mref = r.attr(t, "modelReference", f"task {tid!r}")
        sref = r.attr(t, "simulationReference", f"task {tid!r}")
        if mref not in models:
            raise SBMLError(f"{label}: task {tid!r} refers to unknown model {mref!r}")
        if sref not in simulations:
            raise SBMLError(f"{label}: task {tid!r} refers to unknown simulation {sref!r}")
        tasks[tid] = (mref, sref)
    generators = {}
    for dg in r.items(root, "listOfDataGenerators"):
        g = _generator(r, dg, tasks)
        generators[g.id] = g
    outputs = tuple(_output(r, out, generators) for out in r.items(root, "listOfOutputs"))
    return _Document(path, models, simulations, tasks, generators, outputs)


_VERSIONS = {f"http://sed-ml.org/sed-ml/level1/version{v}": v for v in (2, 3, 4)}
_MATHML = "http://www.w3.org/1998/Math/MathML"


def _split(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return "", tag


class _Reader:
    """Element access in the document's SED-ML namespace, with messages naming the file."""

    def __init__(self, label: str, ns: str):
        self.label = label
        self.ns = ns

    def name(self, el: ET.Element) -> str | None:
        """The local name of a SED-ML element (``None`` for comments and other namespaces)."""
        if not isinstance(el.tag, str):
            return None
        ns, local = _split(el.tag)
        return local if ns == self.ns else None

    def items(self, el: ET.Element, list_name: str) -> list[ET.Element]:
        """The SED-ML elements in ``el``'s ``listOf...`` child."""
        lst = el.find(f"{{{self.ns}}}{list_name}")
        return [] if lst is None else [c for c in lst if self.name(c) is not None]

    def id(self, el: ET.Element) -> str:
        value = el.get("id")
        if not value:
            line = getattr(el, "sourceline", None)
            raise SBMLError(
                f"{self.label}: a <{self.name(el)}> has no id" + (f" (line {line})" if line else "")
            )
        return value

    def attr(self, el: ET.Element, name: str, what: str) -> str:
        value = el.get(name)
        if value is None or value == "":
            raise SBMLError(f"{self.label}: {what} has no {name}")
        return value

    def number(self, el: ET.Element, name: str, what: str) -> float:
        text = self.attr(el, name, what)
        try:
            return float(text)
        except ValueError:
            raise SBMLError(f"{self.label}: {what}: {name} {text!r} is not a number") from None


def _models(
    r: _Reader, root: ET.Element, folder: Path, model_file: Path | None
) -> dict[str, _Model]:
    label = r.label
    raw: dict[str, ET.Element] = {}
    for m in r.items(root, "listOfModels"):
        mid = r.id(m)
        if r.name(m) != "model":
            raise UnsupportedSBMLError(f"{label}: {r.name(m)} {mid!r} is not supported")
        lang = m.get("language") or ""
        if lang and not lang.startswith(SEDML_LANGUAGE):
            raise UnsupportedSBMLError(
                f"{label}: model {mid!r} is in language {lang!r}; only SBML is supported"
            )
        raw[mid] = m
    sources = {
        m.get("source", "") for m in raw.values() if m.get("source", "").lstrip("#") not in raw
    }
    models: dict[str, _Model] = {}

    def resolve(mid: str, seen: tuple[str, ...]) -> _Model:
        if mid in models:
            return models[mid]
        if mid in seen:
            raise SBMLError(f"{label}: models {' -> '.join((*seen, mid))} refer to each other")
        m = raw[mid]
        source = r.attr(m, "source", f"model {mid!r}")
        changes = tuple(_change(r, c, mid) for c in r.items(m, "listOfChanges"))
        parent_id = source.lstrip("#")
        if parent_id in raw:  # a model derived from another one in this document
            parent = resolve(parent_id, (*seen, mid))
            models[mid] = _Model(mid, parent.path, parent.changes + changes)
            return models[mid]
        if model_file is not None and (len(sources) == 1 or Path(source).name == model_file.name):
            path = model_file
        elif ":" in source.split("/")[0]:  # urn:miriam:..., https://...
            raise UnsupportedSBMLError(
                f"{label}: model {mid!r} has source {source!r}; hemolab does not download "
                "models: give the SBML file"
            )
        else:
            path = folder / source
        if not path.is_file():
            raise SBMLError(f"{label}: the source of model {mid!r}, {str(path)!r}, does not exist")
        models[mid] = _Model(mid, path, changes)
        return models[mid]

    for mid in raw:
        resolve(mid, ())
    return models


def _change(r: _Reader, c: ET.Element, mid: str) -> tuple[_Target, float, str]:
    label, name = r.label, r.name(c)
    what = f"{name} {c.get('id')!r}" if c.get("id") else f"{name} of model {mid!r}"
    xpath = c.get("target", "")
    if name != "changeAttribute":
        raise UnsupportedSBMLError(
            f"{label}: {what} (target {xpath!r}) is not supported; only changeAttribute is"
        )
    xpath = r.attr(c, "target", what)
    target = _parse_target(xpath, label, what)
    allowed = {
        "parameter": ("value",),
        "compartment": ("size",),
        "species": ("initialConcentration", "initialAmount"),
        "reaction": ("value",),
    }[target.kind]
    if target.kind == "reaction" and target.local is None:
        raise UnsupportedSBMLError(f"{label}: {what}: cannot change reaction {target.sid!r}")
    if target.attr not in allowed:
        raise UnsupportedSBMLError(
            f"{label}: {what}: changing attribute {target.attr!r} of {target.kind} "
            f"{target.sid!r} is not supported ({', '.join(allowed)} is)"
        )
    return target, r.number(c, "newValue", what), xpath


def _parse_target(xpath: str, label: str, what: str) -> _Target:
    match = _TARGET.match(xpath.strip())
    if match is None:
        raise UnsupportedSBMLError(
            f"{label}: {what}: target {xpath!r} is not supported (an id of a species, "
            "parameter, compartment or reaction, e.g. "
            "/sbml:sbml/sbml:model/sbml:listOfParameters/sbml:parameter[@id='k1']/@value)"
        )
    kind = match["kind"]
    listed = {"Species": "species", "Parameters": "parameter", "Compartments": "compartment",
              "Reactions": "reaction"}[match["list"]]  # fmt: skip
    if kind != listed:
        raise SBMLError(f"{label}: {what}: target {xpath!r} puts a {kind} in listOf{match['list']}")
    return _Target(kind, match["id"], match["local"], match["attr"])


def _simulations(r: _Reader, root: ET.Element) -> dict[str, _Simulation]:
    label = r.label
    out = {}
    for s in r.items(root, "listOfSimulations"):
        sid = r.id(s)
        kind = r.name(s)
        if kind != "uniformTimeCourse":
            raise UnsupportedSBMLError(
                f"{label}: {kind} {sid!r} is not supported (only uniformTimeCourse)"
            )
        what = f"uniformTimeCourse {sid!r}"
        alg = s.find(f"{{{r.ns}}}algorithm")
        kisao = (alg.get("kisaoID") or "") if alg is not None else ""
        if kisao in STOCHASTIC_KISAO:
            raise UnsupportedSBMLError(
                f"{label}: simulation {sid!r} asks for the stochastic algorithm {kisao}; "
                "hemolab solves ODEs only"
            )
        t0 = r.number(s, "initialTime", what)
        start = r.number(s, "outputStartTime", what)
        end = r.number(s, "outputEndTime", what)
        steps = "numberOfSteps" if s.get("numberOfSteps") is not None else "numberOfPoints"
        points = r.number(s, steps, what)
        if (
            not all(np.isfinite([t0, start, end]))
            or not t0 <= start <= end
            or points < 1
            or points != int(points)
        ):
            raise SBMLError(
                f"{label}: {what}: needs initialTime <= outputStartTime <= outputEndTime and "
                f"an integer {steps} >= 1 (got {t0:g}, {start:g}, {end:g}, {points:g})"
            )
        if t0 > 0:
            raise UnsupportedSBMLError(
                f"{label}: {what}: initialTime {t0:g} > 0 is not supported (SBML models start "
                "at time 0)"
            )
        out[sid] = _Simulation(sid, t0, start, end, int(points), kisao)
    return out


def _generator(r: _Reader, dg: ET.Element, tasks: Mapping[str, tuple[str, str]]) -> _DataGenerator:
    label = r.label
    gid = r.id(dg)
    if r.name(dg) != "dataGenerator":
        raise UnsupportedSBMLError(f"{label}: {r.name(dg)} {gid!r} is not supported")
    variables = []
    for v in r.items(dg, "listOfVariables"):
        vid = r.id(v)
        where = f"variable {vid!r} of dataGenerator {gid!r}"
        task = v.get("taskReference") or ""
        if not task:
            raise UnsupportedSBMLError(f"{label}: {where} has no taskReference")
        if task not in tasks:
            raise SBMLError(f"{label}: {where} refers to unknown task {task!r}")
        if v.get("term") or v.get("dimensionTerm"):
            raise UnsupportedSBMLError(f"{label}: {where}: terms are not supported")
        if v.get("symbol"):
            if v.get("symbol") != TIME_SYMBOL:
                raise UnsupportedSBMLError(
                    f"{label}: {where}: symbol {v.get('symbol')!r} is not supported (only time)"
                )
            target = None
        elif v.get("target"):
            target = _parse_target(v.get("target", ""), label, where)
            if target.attr is not None or target.local is not None:
                raise UnsupportedSBMLError(
                    f"{label}: {where}: target {v.get('target')!r} is not supported (the "
                    "element's value over time is)"
                )
        else:
            raise SBMLError(f"{label}: {where} has neither target nor symbol")
        variables.append(_Variable(vid, task, target))
    params = {}
    for p in r.items(dg, "listOfParameters"):
        params[r.id(p)] = r.number(
            p, "value", f"parameter {p.get('id')!r} of dataGenerator {gid!r}"
        )
    math = dg.find(f"{{{_MATHML}}}math")
    if math is None:
        raise SBMLError(f"{label}: dataGenerator {gid!r} has no math")
    text = ET.tostring(math, encoding="unicode", default_namespace=_MATHML)
    return _DataGenerator(gid, dg.get("name") or "", tuple(variables), params, text)


def _output(r: _Reader, out: ET.Element, generators: Mapping[str, _DataGenerator]) -> _Output:
    label = r.label
    oid, kind = r.id(out), r.name(out) or ""
    name = out.get("name") or ""

    def ref(el: ET.Element, attr: str, what: str) -> str:
        value = r.attr(el, attr, what)
        if value not in generators:
            raise SBMLError(
                f"{label}: {what} of {kind} {oid!r} refers to unknown dataGenerator {value!r}"
            )
        return value

    if kind == "report":
        columns = []
        for ds in r.items(out, "listOfDataSets"):
            did = r.id(ds)
            columns.append((ds.get("label") or did, ref(ds, "dataReference", f"dataSet {did!r}")))
        return _Output(oid, kind, name, columns=tuple(columns))
    if kind != "plot2D":
        raise UnsupportedSBMLError(
            f"{label}: {kind} {oid!r} is not supported (report and plot2D are)"
        )
    curves = []
    for c in r.items(out, "listOfCurves"):
        cid = r.id(c)
        what = f"curve {cid!r}"
        if r.name(c) != "curve":
            raise UnsupportedSBMLError(
                f"{label}: {r.name(c)} {cid!r} of plot2D {oid!r} is not supported"
            )
        ctype = c.get("type") or ""
        if ctype not in ("", "points"):
            raise UnsupportedSBMLError(
                f"{label}: curve {cid!r} of plot2D {oid!r}: type {ctype!r} is not supported"
            )
        x = ref(c, "xDataReference", what)
        y = ref(c, "yDataReference", what)
        curves.append(
            _Curve(
                cid,
                c.get("name") or "",
                x,
                y,
                ctype == "points",
                c.get("logX", "false").strip() in ("true", "1"),
                c.get("logY", "false").strip() in ("true", "1"),
            )
        )
    return _Output(oid, kind, name, curves=tuple(curves))


# -- running the tasks -----------------------------------------------------------------------
def _compute(
    doc: _Document, *, rtol: float, atol: float
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Every task's variables, then every data generator."""
    from hemolab._simulate import simulate
    from hemolab.model import Observable
    from hemolab.sbml._import import import_sbml

    label = str(doc.path)
    # the quantities each task must report
    wanted: dict[str, dict[tuple[str, str], None]] = {t: {} for t in doc.tasks}
    for g in doc.generators.values():
        for v in g.variables:
            if v.target is not None:
                wanted[v.task][(v.target.kind, v.target.sid)] = None
    imports: dict[Path, Any] = {}
    values: dict[tuple[str, str, str], np.ndarray] = {}  # (task, kind, id) → values
    times: dict[str, np.ndarray] = {}
    algorithms: dict[str, str] = {}
    for tid, (mid, sid) in doc.tasks.items():
        mdl, sim = doc.models[mid], doc.simulations[sid]
        algorithms[tid] = sim.kisao
        if mdl.path not in imports:
            imports[mdl.path] = import_sbml(mdl.path)
        imp = imports[mdl.path]
        params = _parameters(imp, mdl, label)
        quantities = list(wanted[tid])
        extra = [
            Observable(f"sedml_{k}__", _quantity(imp, kind, qid, label, tid))
            for k, (kind, qid) in enumerate(quantities)
        ]
        model = imp.model.replace(observables=(*imp.model.observables, *extra))
        grid = sim.grid
        lead = 1 if sim.initial < sim.start else 0  # start the clock at initialTime (<= 0)
        if lead:
            grid = np.concatenate([[sim.initial], grid])
        try:
            res = simulate(model, grid=grid, params=params, rtol=rtol, atol=atol, throw=True)
        except SolveError as exc:
            raise SolveError(f"{label}: task {tid!r}: {exc}", exc.indices) from None
        times[tid] = res.time[0, lead:]
        for k, (kind, qid) in enumerate(quantities):
            values[(tid, kind, qid)] = res.variable(f"sedml_{k}__")[0, lead:]
    data = {}
    for gid, g in doc.generators.items():
        data[gid] = _evaluate(g, values, times, label)
    return data, algorithms


def _parameters(imp: Any, mdl: _Model, label: str) -> dict[str, float]:
    """The model's changes as hemolab parameter values (``--param``'s names)."""
    declared = {p.name: p.value for p in imp.model.parameters}
    out: dict[str, float] = {}
    for target, value, xpath in mdl.changes:
        where = f"{label}: model {mdl.id!r}, change of {xpath!r}"
        if target.kind == "reaction":
            name = f"{_base(imp, target.sid, 'reaction')}__{target.local}"
            if name not in declared:
                raise SBMLError(
                    f"{where}: reaction {target.sid!r} has no local parameter {target.local!r}"
                )
            out[name] = value
            continue
        var = imp.variables.get(target.sid)
        if var is None or var.kind != target.kind:
            raise SBMLError(f"{where}: the model has no {target.kind} {target.sid!r}")
        base = _base(imp, target.sid, var.kind)
        name = base if var.role == "parameter" else f"{base}__initial"
        if name not in declared:
            why = "an assignment rule" if var.role == "assignment" else "an initial assignment"
            raise UnsupportedSBMLError(
                f"{where}: the value of {target.kind} {target.sid!r} is set by {why}; "
                "it cannot be changed"
            )
        if var.kind == "species":
            value = _declared_quantity(imp, var, target.attr or "", value, out, declared, where)
        out[name] = value
    return out


def _declared_quantity(
    imp: Any,
    var: Any,
    attr: str,
    value: float,
    current: Mapping[str, float],
    declared: Mapping[str, float],
    where: str,
) -> float:
    """A new initial amount or concentration in the quantity the species declares (what its
    ``<id>__initial`` parameter holds), converted with its compartment's size."""
    import libsbml

    doc = libsbml.readSBMLFromFile(imp.source)
    species = doc.getModel().getSpecies(var.sbml_id)
    amount_declared = bool(species.isSetInitialAmount())
    if (attr == "initialAmount") == amount_declared:
        return value
    comp = imp.variables[var.compartment]
    cname = _base(imp, comp.sbml_id, "compartment")
    if comp.role != "parameter":
        raise UnsupportedSBMLError(
            f"{where}: species {var.sbml_id!r} declares its initial "
            f"{'amount' if amount_declared else 'concentration'} and compartment "
            f"{comp.sbml_id!r} varies: cannot convert the {attr}"
        )
    size = current.get(cname, declared[cname])
    return value * size if amount_declared else value / size


def _base(imp: Any, sid: str, kind: str) -> str:
    """The hemolab-safe name of an SBML id (``sbml_<id>`` for reserved words)."""
    if kind == "reaction":
        sym = imp.symbols.get(sid)
        return sym.name.removesuffix("__rate") if sym is not None else sid
    return imp.variables[sid].name.removesuffix("__amount").removesuffix("__rule")


def _quantity(imp: Any, kind: str, qid: str, label: str, task: str) -> Any:
    """A target's value in hemolab symbols; species as in SBML math (concentration unless
    ``hasOnlySubstanceUnits``)."""
    if kind == "reaction":
        if qid not in imp.symbols or imp.variables.get(qid) is not None:
            raise SBMLError(f"{label}: task {task!r}: the model has no reaction {qid!r}")
        return imp.symbols[qid]
    var = imp.variables.get(qid)
    if var is None or var.kind != kind:
        raise SBMLError(f"{label}: task {task!r}: the model has no {kind} {qid!r}")
    return imp.expression(qid)


def _evaluate(
    g: _DataGenerator,
    values: Mapping[tuple[str, str, str], np.ndarray],
    times: Mapping[str, np.ndarray],
    label: str,
) -> np.ndarray:
    """A data generator's math over its variables' time courses."""
    import libsbml

    from hemolab.model._expr import TIME
    from hemolab.sbml._math import MathContext, to_sympy

    where = f"{label}: dataGenerator {g.id!r}"
    symbols: dict[str, Any] = {}
    arrays: list[np.ndarray] = []
    for k, v in enumerate(g.variables):
        symbols[v.id] = sp.Symbol(f"v{k}", real=True)
        if v.target is None:
            arrays.append(times[v.task])
        else:
            arrays.append(values[(v.task, v.target.kind, v.target.sid)])
    for pid, value in g.parameters.items():
        symbols.setdefault(pid, sp.Float(value))
    lengths = {a.shape[0] for a in arrays}
    if len(lengths) > 1:
        raise UnsupportedSBMLError(f"{where} combines tasks with different numbers of output times")
    ast = libsbml.readMathMLFromString(g.math)
    try:
        expr = to_sympy(ast, MathContext(symbols, None, where))
    except SBMLError:
        raise
    except Exception as exc:  # an operator hemolab's SBML math does not know
        raise UnsupportedSBMLError(f"{where}: math not supported ({exc})") from None
    if TIME in expr.free_symbols:
        raise UnsupportedSBMLError(f"{where}: the csymbol time in math; use a time variable")
    args = [sp.Symbol(f"v{k}", real=True) for k in range(len(arrays))]
    fn = sp.lambdify(args, expr, modules="numpy")
    n = lengths.pop() if lengths else 1
    with np.errstate(all="ignore"):
        out = np.asarray(fn(*arrays), dtype=np.float64)
    return np.broadcast_to(out, (n,)).copy()


# -- outputs -----------------------------------------------------------------------------------
def _write_report(
    doc: _Document, out: _Output, data: Mapping[str, np.ndarray], folder: Path
) -> Path:
    """``<report id>.csv``: one column per data set, headed by its label."""
    columns = [(head, data[ref]) for head, ref in out.columns]
    path = folder / f"{out.id}.csv"
    rows = max((len(c) for _, c in columns), default=0)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([h for h, _ in columns])
        for i in range(rows):
            writer.writerow([repr(float(c[i])) if i < len(c) else "" for _, c in columns])
    return path


def _write_plot(doc: _Document, out: _Output, data: Mapping[str, np.ndarray], folder: Path) -> Path:
    """``<plot id>.png``: the curves, with a legend of their names."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    for c in out.curves:
        gen = doc.generators[c.y]
        ax.plot(data[c.x], data[c.y], "o" if c.points else "-", label=c.name or gen.name or gen.id)
    if any(c.logx for c in out.curves):
        ax.set_xscale("log")
    if any(c.logy for c in out.curves):
        ax.set_yscale("log")
    if out.curves:
        xgen = doc.generators[out.curves[0].x]
        ax.set_xlabel(xgen.name or xgen.id)
        ax.legend(fontsize="small")
    ax.set_title(out.name or out.id)
    path = folder / f"{out.id}.png"
    fig.savefig(path, dpi=100)
    return path
