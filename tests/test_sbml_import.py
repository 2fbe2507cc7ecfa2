"""SBML and Antimony import: selected SBML Test Suite cases, Antimony, and bad input.

The whole shared case set runs in ``tests/test_sbml_conformance.py``; here one case per
feature keeps the inner loop honest. The case folders come from ``../shared/sbml-cases``;
their absence is a failure, not a skip.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import hemolab as hl
from hemolab.sbml import import_sbml, read_antimony, read_sbml
from hemolab.sbml._simulate_case import simulate_case
from hemolab.sbml._suite import compare, load_case

SHARED_CASES = Path(__file__).resolve().parents[2] / "shared" / "sbml-cases"

FEATURES = {
    "00001": "mass action in one compartment",
    "00025": "function definitions",
    "00026": "event without delay",
    "00029": "assignment rule",
    "00031": "rate rule",
    "00037": "initial assignment",
    "00049": "0-dimensional compartment",
    "00052": "varying compartment",
    "00058": "local parameters",
    "00928": "event firing at t = 0 (initialValue false, time >= 0)",
    "00937": "delay of an assignment rule of time",
    "00974": "species reference in math",
    "00976": "conversion factors",
    "01103": "assigned variable stoichiometry",
    "01198": "concentration rate rule in a varying compartment",
    "00407": "event with a delay",
    "00932": "delayed event that is not persistent",
    "00935": "event priorities with persistent and non-persistent events",
    "01325": "delayed event using the values when it acts",
    "01330": "simultaneous events using trigger-time values",
    "01507": "delayed concentration assignment in a varying compartment",
    "01519": "delay() in a non-persistent trigger",
    "01703": "window trigger a long step would jump over",
    "00979": "ids that are the generated code's names (y, p)",
    "00950": "constant INF and NaN parameters",
    "00955": "0^0 = 1 through time^time",
    "00961": "avogadro csymbol",
    "01199": "piecewise returning a boolean in a condition",
}


@pytest.fixture(scope="module")
def cases_dir() -> Path:
    assert SHARED_CASES.is_dir(), (
        f"the SBML Test Suite cases are missing: expected {SHARED_CASES} (../shared/sbml-cases "
        "beside the clone)"
    )
    return SHARED_CASES


@pytest.mark.parametrize("case_id", sorted(FEATURES))
def test_feature_cases_pass(cases_dir: Path, case_id: str) -> None:
    case = load_case(cases_dir / case_id)
    reason = compare(case, simulate_case(case))
    assert reason is None, f"{case_id} ({FEATURES[case_id]}): {reason}"


def test_species_are_amount_states_reported_by_id(cases_dir: Path) -> None:
    imp = import_sbml(cases_dir / "00001" / "00001-sbml-l3v2.xml")
    m = imp.model
    assert m.state_names == ("S1__amount", "S2__amount")
    assert m.observable_names == ("S1", "S2")
    assert {p.name for p in m.parameters} >= {"k1", "compartment", "S1__initial"}
    res = hl.simulate(m, grid=[0.0, 1.0], params={"k1": 2.0}, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(res.variable("S1")[0], 1.5e-4 * np.exp(-2.0 * np.array([0, 1])))


def test_read_antimony_and_an_epo_like_model() -> None:
    m = read_antimony(
        """
        model lidr
          compartment blood = 5
          species R in blood = 0
          J1: -> R; kin*blood
          J2: R -> ; R/T*blood
          kin = 0.125; T = 120
        end
        """
    )
    res = hl.simulate(m, grid=[0.0, 120.0, 1200.0], rtol=1e-10, atol=1e-12)
    # dR/dt = kin - R/T (concentrations): R(t) = kin·T·(1 - exp(-t/T))
    expected = 0.125 * 120 * (1 - np.exp(-np.array([0.0, 120.0, 1200.0]) / 120))
    np.testing.assert_allclose(res.variable("R")[0], expected, rtol=1e-8, atol=1e-12)


def test_bad_documents_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(hl.SBMLError, match="does not exist"):
        read_sbml(tmp_path / "missing.xml")
    broken = tmp_path / "broken.xml"
    broken.write_text(_document("<listOfSpecies><species id='S' compartment='nowhere'")[:-20])
    with pytest.raises(hl.SBMLError, match=r"broken\.xml: line \d+"):
        read_sbml(broken)
    with pytest.raises(hl.SBMLError, match="Antimony string"):
        read_antimony("model x\n  S1 -> ; k*\nend")
    # a missing reference (species in an undeclared compartment): the id and the line
    missing = _document(COMPARTMENT + SPECIES.replace("compartment='c'", "compartment='nowhere'"))
    with pytest.raises(hl.SBMLError, match=r"(?s)line \d+.*nowhere"):
        read_sbml(missing)
    # an unknown unit
    furlong = _document(
        "<listOfParameters><parameter id='k' value='1' units='furlong' constant='true'/>"
        "</listOfParameters>"
    )
    with pytest.raises(hl.SBMLError, match=r"(?s)line \d+.*furlong"):
        read_sbml(furlong)
    # math naming an id that is not declared
    undeclared = _document(
        COMPARTMENT
        + SPECIES
        + f"<listOfRules><rateRule variable='S'>{MATH_S.replace('>S<', '>ghost<')}</rateRule>"
        "</listOfRules>"
    )
    with pytest.raises(hl.SBMLError, match="ghost"):
        read_sbml(undeclared)


def _document(body: str) -> str:
    return (
        "<?xml version='1.0' encoding='UTF-8'?>\n"
        "<sbml xmlns='http://www.sbml.org/sbml/level3/version2/core' level='3' version='2'>\n"
        f"<model id='m'>{body}</model></sbml>\n"
    )


COMPARTMENT = (
    "<listOfCompartments><compartment id='c' size='1' constant='true'/></listOfCompartments>"
)
SPECIES = (
    "<listOfSpecies><species id='S' compartment='c' initialAmount='1' "
    "hasOnlySubstanceUnits='false' boundaryCondition='false' constant='false'/></listOfSpecies>"
)
MATH_S = "<math xmlns='http://www.w3.org/1998/Math/MathML'><ci>S</ci></math>"


def test_unsupported_constructs_are_refused_by_name() -> None:
    algebraic = _document(
        COMPARTMENT
        + SPECIES
        + f"<listOfRules><algebraicRule>{MATH_S}</algebraicRule></listOfRules>"
    )
    with pytest.raises(hl.UnsupportedSBMLError, match="algebraic rules"):
        read_sbml(algebraic)
    fast = _document(
        COMPARTMENT
        + SPECIES
        + "<listOfReactions><reaction id='quick' reversible='false' fast='true'>"
        "<listOfReactants><speciesReference species='S' stoichiometry='1' constant='true'/>"
        f"</listOfReactants><kineticLaw>{MATH_S}</kineticLaw></reaction></listOfReactions>"
    )
    fast = fast.replace("level3/version2", "level3/version1").replace("version='2'", "version='1'")
    with pytest.raises(hl.UnsupportedSBMLError, match="reaction 'quick' is fast"):
        read_sbml(fast)


def test_simulate_cli_reads_sbml_and_sets_initial_values(cases_dir: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from hemolab.cli import app

    out = tmp_path / "s.parquet"
    model = cases_dir / "00001" / "00001-sbml-l3v2.xml"
    result = CliRunner().invoke(
        app,
        ["simulate", str(model), "--t-end", "1", "--dt", "1", "--param", "S1=3e-4", "--param",
         "k1=2", "--out", str(out), "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    import json

    doc = json.loads(result.stdout)
    np.testing.assert_allclose(doc["variables"]["S1"]["max"], 3e-4)
    np.testing.assert_allclose(doc["variables"]["S1"]["min"], 3e-4 * np.exp(-2.0), rtol=1e-5)
