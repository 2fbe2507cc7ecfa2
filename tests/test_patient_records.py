"""Patient records (DATA-FORMATS §B) and the ABO/RhD check of transfusion rows against them
(MODELS.md §7d): an incompatible unit is refused with the row; nothing identifies a patient."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

import hemolab as hl
from hemolab.events import read_events
from hemolab.patients import read_patient_records


@pytest.fixture(scope="module")
def blood_model() -> hl.Model:
    """A minimal blood model: Hb mass in a constant 5-L blood volume (no dynamics needed)."""
    return hl.Model(
        "abo_test",
        time_unit="h",
        states=[hl.State("Hbm", "0", initial=700.0, unit="g"), hl.State("PV", "0", initial=3000.0,
                                                                        unit="mL")],
        parameters=[hl.Parameter("RCV", 2000.0, unit="mL")],
        observables=[hl.Observable("Hb", "100*Hbm/(PV + RCV)", unit="g/dL")],
        blood=hl.BloodSpec(
            volume_ml="PV + RCV",
            cell_states=("Hbm",),
            plasma_states=("PV",),
            transfusion_map={"HB_G": {"Hbm": 1.0}, "PLASMA_ML": {"PV": 1.0}},
            volume_rule="none (test)",
        ),
    )  # fmt: skip


RECORDS = """patient_id,sex,age,weight_kg,abo,rhd
alice-2931,F,34,61,O,NEG
bob-7710,male,70,82,AB,POS
carol-0042,female,61,,A,
dan-5521,M,45,90,,
"""


@pytest.fixture()
def records(tmp_path):
    f = tmp_path / "patients.csv"
    f.write_text(RECORDS)
    return read_patient_records(f)


def test_records_are_read(records) -> None:
    alice = records["alice-2931"]
    assert (alice.sex, alice.age, alice.weight_kg, alice.abo, alice.rhd) == (
        "female",
        34.0,
        61.0,
        "O",
        "NEG",
    )
    assert str(alice.blood_group) == "O-" and alice.childbearing_potential
    assert str(records["carol-0042"].blood_group) == "A" and records["dan-5521"].blood_group is None


def test_bad_records_are_all_reported_without_identifiers(tmp_path) -> None:
    f = tmp_path / "bad.csv"
    f.write_text(
        "patient_id,sex,age,abo,rhd,colour\n"
        "zed-1,X,34,O,NEG,\n"
        "zed-2,F,300,Q,NEG,\n"
        "zed-3,F,40,A,maybe,\n"
        "zed-2,F,40,A,POS,\n"
        ",F,40,A,POS,\n"
    )
    with pytest.raises(hl.DatasetError) as err:
        read_patient_records(f)
    got = {(i.row, i.column) for i in err.value.issues}
    assert got == {
        (None, "colour"), (1, "sex"), (2, "age"), (2, "abo"), (3, "rhd"), (4, "patient_id"),
        (5, "patient_id"),
    }  # fmt: skip
    assert "zed" not in str(err.value)


def _transfusions(*rows: tuple[str, str, str | None, str | None]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"ID": pid, "TIME": 1.0, "EVID": 2, "EVENT": "transfusion", "PRODUCT": product,
             "ABO": abo, "RHD": rhd}
            for pid, product, abo, rhd in rows
        ]
    )  # fmt: skip


def test_compatible_units_pass_and_incompatible_ones_are_refused(blood_model, records) -> None:
    ok = _transfusions(
        ("alice-2931", "RBC", "O", "NEG"),  # O- to O-
        ("bob-7710", "RBC", "A", "POS"),  # AB+ receives any red cells
        ("bob-7710", "PLASMA", "AB", None),  # AB receives AB plasma only
        ("carol-0042", "RBC", "O", None),  # RhD of the patient unknown: a warning
    )
    with pytest.warns(hl.HemolabWarning, match="RhD of the unit or the patient unknown"):
        ds = read_events(ok, model=blood_model, patients=records)
    assert [r.abo for s in ds.subjects for r in s.records] == ["O", "A", "AB", "O"]
    bad = _transfusions(
        ("alice-2931", "RBC", "A", "NEG"),  # ABO-incompatible red cells
        ("alice-2931", "RBC", "O", "POS"),  # D-positive cells to a D-negative patient
        ("bob-7710", "PLASMA", "O", None),  # O plasma to an AB patient
        ("carol-0042", "WB", "O", None),  # whole blood must be identical
    )
    with pytest.raises(hl.DatasetError) as err:
        read_events(bad, model=blood_model, patients=records, file_name="tx.csv")
    issues = err.value.issues
    assert [(i.row, i.column) for i in issues] == [(1, "ABO"), (2, "ABO"), (3, "ABO"), (4, "ABO")]
    text = str(err.value)
    assert "ABO-incompatible red cells" in text and "D-negative recipient" in text
    assert "ABO-incompatible plasma" in text and "ABO-identical" in text
    assert "alice" not in text and "bob" not in text


def test_unknown_group_warns_and_no_records_checks_nothing(blood_model, records) -> None:
    rows = _transfusions(("dan-5521", "RBC", "A", "POS"))
    with pytest.warns(hl.HemolabWarning, match="blood group is not in the patient records"):
        read_events(rows, model=blood_model, patients=records)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_events(_transfusions(("x", "RBC", "B", "POS")), model=blood_model)


def test_platelets_for_a_d_negative_woman_of_childbearing_potential(blood_model, records):
    with pytest.raises(hl.DatasetError, match="child-bearing potential"):
        read_events(
            _transfusions(("alice-2931", "PLT_APH", "O", "POS")), model=blood_model,
            patients=records,
        )  # fmt: skip


MODEL_FILE = """
import hemolab as hl

model = hl.Model(
    "abo_cli",
    time_unit="h",
    states=[hl.State("Hbm", "0", initial=700.0, unit="g"),
            hl.State("PV", "0", initial=3000.0, unit="mL")],
    parameters=[hl.Parameter("RCV", 2000.0, unit="mL")],
    observables=[hl.Observable("Hb", "100*Hbm/(PV + RCV)", unit="g/dL")],
    blood=hl.BloodSpec(volume_ml="PV + RCV", cell_states=("Hbm",), plasma_states=("PV",),
                       transfusion_map={"HB_G": {"Hbm": 1.0}, "PLASMA_ML": {"PV": 1.0}},
                       volume_rule="none (test)"),
)
"""


def test_cli_simulate_checks_transfusions_against_patient_records(tmp_path) -> None:
    from typer.testing import CliRunner

    from hemolab.cli._app import app

    model = tmp_path / "abo_model.py"
    model.write_text(MODEL_FILE)
    people = tmp_path / "patients.csv"
    people.write_text(RECORDS)
    events = tmp_path / "tx.csv"
    _transfusions(("alice-2931", "RBC", "A", "NEG")).to_csv(events, index=False)
    args = ["simulate", str(model), "--events", str(events), "--patients", str(people)]
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "r.parquet")])
    assert res.exit_code == 2, res.output
    assert "tx.csv" in res.output and "row 1" in res.output and "ABO-incompatible" in res.output
    assert "alice" not in res.output
    _transfusions(("alice-2931", "RBC", "O", "NEG")).to_csv(events, index=False)
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "r.parquet"), "--json"])
    assert res.exit_code == 0, res.output


def test_cli_allow_incompatible_needs_a_model_of_the_reaction(tmp_path) -> None:
    from typer.testing import CliRunner

    from hemolab.cli._app import app

    model = tmp_path / "abo_model.py"
    model.write_text(MODEL_FILE)
    people = tmp_path / "patients.csv"
    people.write_text(RECORDS)
    events = tmp_path / "tx.csv"
    _transfusions(("alice-2931", "RBC", "A", "NEG")).to_csv(events, index=False)
    out = str(tmp_path / "r.parquet")
    base = ["simulate", str(model), "--events", str(events), "--out", out]
    res = CliRunner().invoke(app, [*base, "--allow-incompatible"])
    assert res.exit_code == 2 and "needs --patients" in res.output
    res = CliRunner().invoke(app, [*base, "--patients", str(people), "--allow-incompatible"])
    assert res.exit_code == 2 and "needs a model that destroys it" in res.output, res.output
    model.write_text(MODEL_FILE.replace("model = hl.Model(", "base = hl.Model(") + (
        "\nfrom hemolab.model import haemolysis\nmodel = haemolysis(base)\n"
    ))  # fmt: skip
    res = CliRunner().invoke(app, [*base, "--patients", str(people), "--allow-incompatible"])
    assert res.exit_code == 0, res.output
    assert "incompatible unit accepted to be modelled" in res.output
