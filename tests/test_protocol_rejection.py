"""Blood products in a protocol and the risk of rejection (issue 8): each virtual patient's
blood group drawn from the population's shares, a product of a stated group checked against
it (MODELS.md §7d), ABO-incompatible red cells destroyed, and the risk reported and limited.
Checked against the single-patient path (a dataset transfusion marked incompatible, with
``hemolab.model.haemolysis``) and against the compatibility table patient by patient."""

from __future__ import annotations

import json
import warnings

import jsonschema
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import hemolab as hl
from hemolab.cli._app import app
from hemolab.cli._schemas import load_schema
from hemolab.events import read_events
from hemolab.events._abo import BloodGroup, compatibility
from hemolab.model import haemolysis
from hemolab.patients import Demographics
from hemolab.protocols import (
    BLOOD_GROUPS,
    US_BLOOD_GROUP_FREQUENCIES,
    Dose,
    Limit,
    Monitoring,
    Phase,
    Protocol,
    ProtocolError,
    Rule,
    Transfusion,
    read_protocol,
    run_protocol,
)
from tests._models import blood_volume_model

DAY = 24.0
TOL = {"rtol": 1e-10, "atol": 1e-10}


@pytest.fixture(scope="module")
def model() -> hl.Model:
    return blood_volume_model("blood_volume_rejection_test")


def _protocol(group: str | None = "A+", units: int = 2, limit: bool = True) -> Protocol:
    tr = Transfusion("RBC", units=units, start=DAY, group=group)
    limits = [Limit("rejection", "rejection", max_probability=0.01)] if limit else []
    return Protocol("p", [Phase("a", 4 * DAY, transfusions=[tr])], Monitoring(["Hb"], 1.0),
                    limits=limits)  # fmt: skip


def _dataset_path(model: hl.Model, patient_group: str, units: int = 2) -> tuple[float, float]:
    """Hb peak and final (hourly grid) of the same transfusion as a dataset row, checked
    against the patient's record: marked incompatible (and destroyed) when it is."""
    g = BloodGroup.parse(patient_group)
    record = {"p": Demographics(sex="male", age=60.0, abo=g.abo,
                                rhd="POS" if g.rhd_positive else "NEG")}  # fmt: skip
    row = pd.DataFrame([{"ID": "p", "TIME": DAY, "EVID": 2, "EVENT": "transfusion",
                         "PRODUCT": "RBC", "UNITS": units, "ABO": "A", "RHD": "POS"}])  # fmt: skip
    lysing = haemolysis(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hl.HemolabWarning)
        events = read_events(row, model=lysing, patients=record, allow_incompatible=True)
    grid = np.arange(0.0, 4 * DAY + 0.5, 1.0)
    hb = np.asarray(hl.simulate(lysing, events, grid=grid, **TOL).variable("Hb"))[0]
    return float(hb.max()), float(hb[-1])


@pytest.mark.parametrize("group", ["A+", "O+", "B-", "A-", "AB-"])
def test_one_patient_matches_the_dataset_transfusion(model, group) -> None:
    """A+ red cells: destroyed in an O or B patient (ABO), given in full to A and AB (a
    D-negative one counts as incompatible, RhD, but the cells are not destroyed)."""
    r = run_protocol(_protocol(), model, blood_group=group, **TOL)
    row = r.patients.iloc[0]
    peak, final = _dataset_path(model, group)
    assert row["Hb_peak"] == pytest.approx(peak, rel=1e-7)
    assert row["Hb_final"] == pytest.approx(final, rel=1e-7)
    ok = compatibility("RBC", BloodGroup("A", True), BloodGroup.parse(group)).ok
    destroyed = BloodGroup.parse(group).abo in ("O", "B")
    assert row["incompatible units"] == (0 if ok else 2)
    assert row["haemolysed units"] == (2 if destroyed else 0)
    assert r.limits[0].n_violated == (0 if ok else 1)
    if destroyed:  # the unit's 2 x 55 g of Hb gone again: back near baseline
        assert abs(final - 14.0) < 0.05
    else:
        assert final - 14.0 == pytest.approx(2 * 55 / 49, rel=0.05)


def test_population_risk_patient_by_patient(model) -> None:
    pop = hl.Population(model, n=600, seed=11,
                        variability=hl.model.Variability(("Hb0",), ((1e-6,),)))  # fmt: skip
    r = run_protocol(_protocol(), model, population=pop)
    t = r.patients
    assert set(t["blood group"]) <= set(BLOOD_GROUPS)
    for group, rows in t.groupby("blood group"):
        ok = compatibility("RBC", BloodGroup("A", True), BloodGroup.parse(str(group))).ok
        assert (rows["incompatible units"] == (0 if ok else 2)).all(), group
    # the shares drawn follow the US frequencies (600 draws: within 4 standard errors)
    share = t["blood group"].value_counts(normalize=True)
    for g, p in US_BLOOD_GROUP_FREQUENCIES.items():
        se = np.sqrt(p * (1 - p) / len(t))
        assert abs(share.get(g, 0.0) - p) < 4 * se + 1e-3, g
    rej = r.summary()["rejection"]
    n_bad = int((t["incompatible units"] > 0).sum())
    assert rej["n_incompatible"] == n_bad == r.limits[0].n_violated
    assert rej["n_haemolytic"] == int(t["blood group"].str.match(r"^(O|B)[+-]$").sum())
    assert rej["probability"] == pytest.approx(n_bad / 600)
    assert r.limits[0].broken_from == DAY and r.limits[0].exceeded_by == 2
    assert not r.limits[0].met
    # destroyed red cells leave their patients' Hb below the compatible ones'
    haem = t["haemolysed units"] > 0
    assert t.loc[haem, "Hb_final"].max() < t.loc[~haem, "Hb_final"].min()


def test_universal_donor_and_matched_units_carry_no_risk(model) -> None:
    pop = hl.Population(model, n=200, seed=2,
                        variability=hl.model.Variability(("Hb0",), ((1e-6,),)))  # fmt: skip
    r = run_protocol(_protocol("O-"), model, population=pop,
                     blood_groups={"O-": 0.5, "AB+": 0.5})  # fmt: skip
    assert r.rejection is not None and r.rejection["n_incompatible"] == 0
    assert set(r.patients["blood group"]) == {"O-", "AB+"}
    assert r.limits[0].met
    matched = run_protocol(_protocol(None, limit=False), model, population=pop)
    assert matched.rejection is None and "rejection" not in matched.summary()


def test_bad_transfusions_and_groups_are_refused(model) -> None:
    mon = Monitoring(["Hb"], 1.0)
    for tr, message in [
        (Transfusion("BLOOD"), "product must be one of"),
        (Transfusion("RBC", units=0), "units must be a whole number"),
        (Transfusion("RBC", group="A"), "needs its RhD"),
        (Transfusion("RBC", group="C+"), "not an ABO group"),
        (Transfusion("RBC", start=10.0), "at or after the phase ends"),
        (Transfusion("RBC", count=2), "need every > 0"),
    ]:
        with pytest.raises(ProtocolError, match=message):
            Protocol("p", [Phase("a", 10.0, transfusions=[tr])], mon)
    with pytest.raises(ProtocolError, match="no transfusion names its product's group"):
        run_protocol(_protocol(None), model, blood_group="A+")
    with pytest.raises(ProtocolError, match="give the patient's blood_group"):
        run_protocol(_protocol(), model)
    with pytest.raises(ProtocolError, match="must sum to 1"):
        run_protocol(_protocol(), model, population=hl.Population(model, n=2, seed=1,
                     variability=hl.model.Variability(("Hb0",), ((0.01,),))),
                     blood_groups={"A+": 0.5})  # fmt: skip
    on_anc = Protocol("p", [Phase("a", 96.0, transfusions=[Transfusion("RBC", group="A+")])],
                      Monitoring(["ANC"], 1.0))  # fmt: skip
    with pytest.raises(ProtocolError, match="takes no blood products"):
        run_protocol(on_anc, hl.get_model("friberg_docetaxel"), blood_group="A+")
    with pytest.raises(ProtocolError, match="phases hold doses only"):
        Protocol(
            "p",
            [Phase("a", 10.0, [Dose("RCV", 1.0)], transfusions=[Transfusion("RBC")]),
             Phase("b", 10.0)],
            mon,
            rules=[Rule("r", "Hb < 10", "move on", phase="a")],
        )  # fmt: skip


_MODEL_FILE = """
import dataclasses
from hemolab.model import Variability
from tests._models import blood_volume_model

base = blood_volume_model()
positive = tuple(
    dataclasses.replace(p, bounds=(0.0, float("inf"))) if p.name == "Hb0" else p
    for p in base.parameters
)
model = base.replace(parameters=positive, variability=Variability(("Hb0",), ((1e-6,),)))
"""


def test_protocol_file_with_transfusions_runs_from_the_cli(tmp_path, model) -> None:
    model_file = tmp_path / "blood.py"
    model_file.write_text(_MODEL_FILE)
    text = """
[protocol]
name = "two uncrossmatched units"
model = "blood.py"
time_unit = "h"

[population]
n = 60
seed = 4
blood_groups = { "O+" = 0.5, "A+" = 0.5 }

[monitoring]
observables = ["Hb"]
every = "6h"

[[phase]]
name = "bleeding"
duration = "4d"

[[phase.transfusion]]
product = "RBC"
units = 2
start = "1d"
group = "A+"

[[limit]]
name = "rejection"
when = "rejection"
max_probability = 0.05
"""
    f = tmp_path / "p.toml"
    f.write_text(text)
    read = read_protocol(f, time_unit="h")
    assert read.blood_groups == {"O+": 0.5, "A+": 0.5}
    assert read.protocol.phases[0].transfusions == (Transfusion("RBC", 2, 24.0, group="A+"),)
    runner = CliRunner()
    res = runner.invoke(app, ["run", str(f), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    jsonschema.validate(summary, load_schema("run"))
    rej = summary["rejection"]
    assert rej["blood_groups"]["O+"] + rej["blood_groups"]["A+"] == 60
    assert rej["n_incompatible"] == rej["n_haemolytic"] == rej["blood_groups"]["O+"]
    assert summary["limits"][0]["n_violated"] == rej["n_incompatible"]
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace('group = "A+"', 'group = "A+"\ncolour = "red"'))
    res = runner.invoke(app, ["run", str(bad), "--json"])
    assert res.exit_code == 2
    assert "unknown transfusion field 'colour'" in res.output
    assert f"{bad}:" in res.output.replace("\n", "")
