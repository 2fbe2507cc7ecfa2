"""SED-ML experiments through ``hemolab simulate MODEL --sedml FILE --out DIR``.

Curated BioModels entries (tests/data/biomodels/*/SOURCE.md) with their SED-ML files, run by
the command line in-process and compared with libRoadRunner: every reported value within
``ATOL + RTOL * |roadrunner|`` (RTOL 1e-5, ATOL 1e-8), both simulators at rtol 1e-10 / atol
1e-12. The BioModels files only plot; the comparison adds a report of every data generator
to a copy. Bad input: a change of an unknown id, unsupported elements and malformed XML fail
with one ``error:`` line naming the element or file.
"""

from __future__ import annotations

import csv
import importlib
import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import numpy as np
import pytest
from typer.testing import CliRunner, Result

import hemolab as hl
from hemolab.cli import app
from hemolab.cli._schemas import load_schema
from hemolab.sbml import run_sedml

DATA = Path(__file__).parent / "data" / "biomodels"
RTOL = 1e-5
ATOL = 1e-8
SOLVER = ("--rtol", "1e-10", "--atol", "1e-12")
SED = "http://sed-ml.org/sed-ml/level1/version2"

# (model, SED-ML): Moore 2004 CML/T cells, Cucuianu 2010 AML/stem cells, Andersen 2017 MPN
CASES = [
    ("BIOMD0000000733/Moore_2004_fig6.xml", "BIOMD0000000733/Moore_2004_fig6.sedml"),
    ("BIOMD0000000799/Cucuianu2010.xml", "BIOMD0000000799/Cucuianu2010.sedml"),
    ("BIOMD0000000852/Andersen2017.xml", "BIOMD0000000852/Andersen2017.sedml"),
]


def require_roadrunner() -> ModuleType:
    """libRoadRunner; skip if missing, but fail under CI (the peers are installed there)."""
    try:
        return importlib.import_module("roadrunner")
    except ImportError as error:
        if os.environ.get("CI"):
            pytest.fail(f"libroadrunner is missing under CI: {error}; run `make install`")
        pytest.skip(f"libroadrunner not installed ({error}); pip install -e '.[peers]'")


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    return CliRunner()


def run(runner: CliRunner, *args: str | Path) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def read_csv(path: Path) -> dict[str, np.ndarray]:
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    return {h: np.array([float(r[j]) for r in rows[1:]]) for j, h in enumerate(rows[0])}


def with_report(sedml: Path, out: Path) -> Path:
    """A copy of ``sedml`` with a report ``all_data`` of every data generator (by id)."""
    tree = ET.parse(sedml)
    ET.register_namespace("", SED)
    root = tree.getroot()
    outputs = root.find(f"{{{SED}}}listOfOutputs")
    assert outputs is not None
    report = ET.SubElement(outputs, f"{{{SED}}}report", id="all_data")
    sets = ET.SubElement(report, f"{{{SED}}}listOfDataSets")
    for dg in root.iter(f"{{{SED}}}dataGenerator"):
        ET.SubElement(sets, f"{{{SED}}}dataSet", id=f"ds_{dg.get('id')}", label=str(dg.get("id")),
                      dataReference=str(dg.get("id")))  # fmt: skip
    path = out / sedml.name
    tree.write(path, xml_declaration=True, encoding="UTF-8")
    return path


def roadrunner_courses(rr_module: Any, model: Path, sedml: Path) -> dict[str, np.ndarray]:
    """Each single-variable data generator of a BioModels SED-ML file, by libRoadRunner."""
    root = ET.parse(sedml).getroot()
    sim = root.find(f".//{{{SED}}}uniformTimeCourse")
    assert sim is not None
    start, end = float(sim.get("outputStartTime", 0)), float(sim.get("outputEndTime", 0))
    n = int(sim.get("numberOfPoints", 0))
    selections, ids = ["time"], ["time"]
    for dg in root.iter(f"{{{SED}}}dataGenerator"):
        var = dg.find(f".//{{{SED}}}variable")
        assert var is not None
        ids.append(str(dg.get("id")))
        if var.get("symbol"):
            selections.append("time")
            continue
        target = str(var.get("target"))
        sid = target.split("'")[1]
        selections.append(f"[{sid}]" if "listOfSpecies" in target else sid)
    rr = rr_module.RoadRunner(str(model))
    rr.integrator.relative_tolerance = 1e-10
    rr.integrator.absolute_tolerance = 1e-12
    out = rr.simulate(start, end, n + 1, selections=selections)
    return {k: np.asarray(out[:, j]) for j, k in enumerate(ids) if k != "time"}


def assert_close(actual: np.ndarray, expected: np.ndarray, what: str) -> float:
    """Within ATOL + RTOL·|expected| everywhere; returns the largest relative difference."""
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    err = np.abs(actual - expected)
    bad = err > ATOL + RTOL * np.abs(expected)
    assert not bad.any(), (what, int(np.argmax(bad)), actual[bad][:3], expected[bad][:3])
    return float(np.max(err / (ATOL + np.abs(expected))))


@pytest.mark.slow
@pytest.mark.peers
@pytest.mark.parametrize(("model", "sedml"), CASES, ids=[c[0].split("/")[0] for c in CASES])
def test_biomodels_sedml_matches_roadrunner(
    runner: CliRunner, tmp_path: Path, model: str, sedml: str
) -> None:
    rr = require_roadrunner()
    experiment = with_report(DATA / sedml, tmp_path)
    out = tmp_path / "out"
    result = run(runner, "simulate", DATA / model, "--sedml", experiment, "--out", out,
                 *SOLVER, "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    jsonschema.validate(summary, load_schema("simulate-sedml"))
    assert summary["tasks"] == ["task1"]
    plots = [k for k in summary["outputs"] if k != "all_data"]
    assert plots
    for plot in plots:
        png = Path(summary["outputs"][plot])
        assert png == out / f"{plot}.png" and png.stat().st_size > 1000
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = read_csv(Path(summary["outputs"]["all_data"]))
    expected = roadrunner_courses(rr, DATA / model, DATA / sedml)
    assert set(report) == set(expected)
    worst = max(assert_close(report[k], v, k) for k, v in expected.items())
    assert worst < RTOL


@pytest.mark.slow
@pytest.mark.peers
def test_model_changes_and_report_match_roadrunner(runner: CliRunner, tmp_path: Path) -> None:
    """A hemolab-written SED-ML (L1V3): derived model with parameter and initial-value
    changes, an output window, data generators with parameters and math, a log plot."""
    rr_module = require_roadrunner()
    model = DATA / "BIOMD0000000733/Moore_2004_fig6.xml"
    sedml = DATA / "BIOMD0000000733/Moore_2004_hemolab_changes.sedml"
    result = run(runner, "simulate", model, "--sedml", sedml, "--out", tmp_path, *SOLVER)
    assert result.exit_code == 0, result.output
    tumour = read_csv(tmp_path / "report_tumour.csv")
    late = read_csv(tmp_path / "report_late.csv")
    assert (tmp_path / "plot_tumour.png").stat().st_size > 1000
    assert list(tumour) == [
        "time",
        "tumor_cells_baseline",
        "tumor_cells_strong",
        "T_cells_thousands_strong",
        "log10_C_over_Cmax_strong",
    ]

    def rr_run(changed: bool) -> np.ndarray:
        rr = rr_module.RoadRunner(str(model))
        rr.integrator.relative_tolerance = 1e-10
        rr.integrator.absolute_tolerance = 1e-12
        if changed:  # initial values first: changing one resets parameters set before
            rr.setValue("init([eff_Tcells])", 60.0)
            rr.setValue("init(tumor_cells)", 20000.0)  # an amount (compartment size 1)
            rr["gamma_C"] = 0.0051
            rr["Ae"] = 1.2
        sel = ["time", "[naive_Tcells]", "[eff_Tcells]", "[tumor_cells]"]
        return np.asarray(rr.simulate(0, 700, 141, selections=sel))

    base, strong = rr_run(False), rr_run(True)
    np.testing.assert_array_equal(tumour["time"], np.linspace(0, 700, 141))
    assert_close(tumour["tumor_cells_baseline"], base[:, 3], "baseline")
    assert_close(tumour["tumor_cells_strong"], strong[:, 3], "strong")
    assert_close(tumour["T_cells_thousands_strong"], 1e-3 * (strong[:, 1] + strong[:, 2]), "T")
    assert_close(tumour["log10_C_over_Cmax_strong"], np.log10(strong[:, 3] / 230000.0), "log")
    np.testing.assert_allclose(late["time"], np.linspace(100, 700, 61), rtol=0, atol=1e-12)
    assert_close(late["eff_Tcells"], strong[20::2, 2], "late")


def test_run_sedml_api_without_outputs() -> None:
    res = run_sedml(
        DATA / "BIOMD0000000799/Cucuianu2010.sedml", DATA / "BIOMD0000000799/Cucuianu2010.xml"
    )
    assert res.outputs == {} and res.tasks == ("task1",)
    assert res.algorithms == {"task1": "KISAO:0000019"}
    assert res.data["time_task1"].shape == (101,)
    assert res.data["y_Leukemic_Cell_2_task1"][0] == pytest.approx(1.5)


# -- bad input ---------------------------------------------------------------------------------
MINIMAL = """<?xml version="1.0" encoding="UTF-8"?>
<sedML xmlns="http://sed-ml.org/sed-ml/level1/version3" level="1" version="3">
  <listOfModels>
    <model id="model" language="urn:sedml:language:sbml" source="Cucuianu2010.xml">
      <listOfChanges>{changes}</listOfChanges>
    </model>
  </listOfModels>
  <listOfSimulations>
    <uniformTimeCourse id="sim1" initialTime="0" outputStartTime="0" outputEndTime="10"
        numberOfPoints="10"><algorithm kisaoID="KISAO:0000019"/></uniformTimeCourse>
    {simulations}
  </listOfSimulations>
  <listOfTasks><task id="task1" modelReference="model" simulationReference="sim1"/>{tasks}
  </listOfTasks>
  <listOfDataGenerators>
    <dataGenerator id="dg_y"><listOfVariables>
      <variable id="y" taskReference="task1"
        target="/sbml:sbml/sbml:model/sbml:listOfSpecies/sbml:species[@id='y_Leukemic_Cell']"/>
    </listOfVariables>
    <math xmlns="http://www.w3.org/1998/Math/MathML"><ci> y </ci></math></dataGenerator>
  </listOfDataGenerators>
  <listOfOutputs>
    <report id="r"><listOfDataSets><dataSet id="d" label="y" dataReference="dg_y"/>
    </listOfDataSets></report>{outputs}
  </listOfOutputs>
</sedML>
"""


def write_sedml(tmp_path: Path, name: str = "exp.sedml", **parts: str) -> Path:
    text = MINIMAL.format(
        **({"changes": "", "simulations": "", "tasks": "", "outputs": ""} | parts)
    )
    path = tmp_path / name
    path.write_text(text)
    return path


def assert_bad_input(result: Result, *fragments: str) -> None:
    """Exit code 2, one ``error:`` message naming what was wrong, no traceback."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    err = " ".join(result.stderr.split())
    assert "Traceback" not in result.output and err.startswith("error:"), err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


MODEL = DATA / "BIOMD0000000799/Cucuianu2010.xml"


def test_change_of_unknown_id_names_it(runner: CliRunner, tmp_path: Path) -> None:
    change = (
        '<changeAttribute target="/sbml:sbml/sbml:model/sbml:listOfParameters/'
        'sbml:parameter[@id=\'no_such_rate\']/@value" newValue="2"/>'
    )
    sedml = write_sedml(tmp_path, changes=change)
    result = run(runner, "simulate", MODEL, "--sedml", sedml, "--out", tmp_path / "o")
    assert_bad_input(result, str(sedml), "no_such_rate", "parameter")
    with pytest.raises(hl.SBMLError, match="no_such_rate"):
        run_sedml(sedml, MODEL)


@pytest.mark.parametrize(
    ("parts", "element"),
    [
        (
            {"tasks": '<repeatedTask id="scan" range="r" resetModel="true"/>'},
            "repeatedTask 'scan'",
        ),
        ({"simulations": '<steadyState id="ss"/>'}, "steadyState 'ss'"),
        (
            {"changes": '<addXML id="add1" target="/sbml:sbml/sbml:model"><newXML/></addXML>'},
            "addXML 'add1'",
        ),
        (
            {
                "changes": '<computeChange id="cc1" target="/sbml:sbml/sbml:model/sbml:listOf'
                "Parameters/sbml:parameter[@id='k']/@value\"/>"
            },
            "computeChange 'cc1'",
        ),
        ({"outputs": '<plot3D id="p3"/>'}, "plot3D 'p3'"),
    ],
    ids=["repeatedTask", "steadyState", "addXML", "computeChange", "plot3D"],
)
def test_unsupported_element_is_named(
    runner: CliRunner, tmp_path: Path, parts: dict[str, str], element: str
) -> None:
    sedml = write_sedml(tmp_path, **parts)
    with pytest.raises(hl.UnsupportedSBMLError, match=element):
        run_sedml(sedml, MODEL)
    result = run(runner, "simulate", MODEL, "--sedml", sedml, "--out", tmp_path / "o")
    assert_bad_input(result, element)
    assert not (tmp_path / "o").exists()  # checked before anything is solved or written


def test_malformed_xml_names_the_file(runner: CliRunner, tmp_path: Path) -> None:
    sedml = tmp_path / "broken.sedml"
    sedml.write_text('<sedML xmlns="http://sed-ml.org/sed-ml/level1/version3"><listOfModels>')
    with pytest.raises(hl.SBMLError, match=r"broken\.sedml"):
        run_sedml(sedml, MODEL)
    result = run(runner, "simulate", MODEL, "--sedml", sedml, "--out", tmp_path / "o")
    assert_bad_input(result, str(sedml), "not well-formed")


def test_unknown_references_are_named(tmp_path: Path) -> None:
    sedml = write_sedml(
        tmp_path, tasks='<task id="task2" modelReference="model" simulationReference="nosim"/>'
    )
    with pytest.raises(hl.SBMLError, match="task 'task2' refers to unknown simulation 'nosim'"):
        run_sedml(sedml, MODEL)


def test_sedml_conflicts_with_grid_options(runner: CliRunner, tmp_path: Path) -> None:
    sedml = write_sedml(tmp_path)
    result = run(runner, "simulate", MODEL, "--sedml", sedml, "--out", tmp_path, "--t-end",
                 "10", "--dt", "1")  # fmt: skip
    assert_bad_input(result, "--t-end, --dt cannot be combined with --sedml")
    result = run(runner, "simulate", "friberg", "--sedml", sedml, "--out", tmp_path)
    assert_bad_input(result, "SBML model file")
