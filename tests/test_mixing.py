"""Sample mixing (``EVENT=mix``, DATA-FORMATS §A): donors first, exact mass balance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hemolab as hl
from hemolab import DatasetError, HemolabWarning, ScheduleError
from hemolab.events import read_events
from tests._models import blood_volume_model

STATES = ("Hbm", "RCV", "PV")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
GRID = [0.0, 5.0, 10.0, 30.0]


@pytest.fixture(scope="module")
def model() -> hl.Model:
    return blood_volume_model()


def _obs(ids: list[str]) -> list[dict]:
    return [{"ID": i, "TIME": 0.0, "EVID": 0} for i in ids]


def _mix(recipient: str, donor: str, time: float = 10.0, **cells) -> dict:
    return {"ID": recipient, "TIME": time, "EVID": 2, "EVENT": "mix", "DONOR": donor, **cells}


def _frame(rows: list[dict]) -> pd.DataFrame:
    """Rows grouped by ID (contiguous), in the order given within each ID."""
    order = list(dict.fromkeys(r["ID"] for r in rows))
    return pd.DataFrame(sorted(rows, key=lambda r: order.index(r["ID"])))


def _states(res: hl.Results, subject: int, t: float) -> np.ndarray:
    i = list(res.time[subject]).index(t)
    return np.array([res.variable(s)[subject, i] for s in STATES])


def _simulate(model, rows, **kw) -> hl.Results:
    return hl.simulate(model, _frame(rows), grid=GRID, rtol=1e-10, atol=1e-10, **kw)


def test_whole_blood_moves_with_exact_mass_balance(model) -> None:
    """500 mL of the donor's blood, depleted: what the donor loses the recipient gains."""
    params = {"WT": np.array([70.0, 50.0])}  # the recipient (50 kg) is smaller
    base = _simulate(model, _obs(["R", "D"]), params=params)
    rows = [*_obs(["R", "D"]), _mix("R", "D", VOLUME=500.0, DEPLETE=1)]
    res = _simulate(model, rows, params=params)
    r0, d0 = _states(base, 0, 10.0), _states(base, 1, 10.0)
    r1, d1 = _states(res, 0, 10.0), _states(res, 1, 10.0)
    f = 500.0 / (d0[1] + d0[2])  # of the donor's blood volume RCV + PV
    np.testing.assert_allclose(r1 - r0, f * d0, rtol=1e-12)
    np.testing.assert_allclose(d0 - d1, r1 - r0, rtol=1e-12)
    np.testing.assert_allclose(r1 + d1, r0 + d0, rtol=1e-14)
    assert res.variable("BV")[1, 2] == pytest.approx(3500.0 - 500.0, rel=1e-9)
    # before the mix nothing changed; after it the recipient's Hb is the volume-weighted mean
    np.testing.assert_array_equal(res.variable("Hbm")[:, :2], base.variable("Hbm")[:, :2])
    assert res.variable("Hb")[0, 2] == pytest.approx(14.0, rel=1e-9)  # same Hb in both
    # the plasma volume relaxes back to 70 mL/kg in both subjects
    assert res.variable("BV")[0, 3] == pytest.approx(4900.0, rel=1e-2)
    assert res.variable("BV")[1, 3] == pytest.approx(3500.0, rel=1e-2)
    events = res.events.to_pandas()
    assert sorted(events["kind"]) == ["donation", "mix"]
    assert set(events["amount"]) == {500.0} and set(events["product"]) == {"whole"}
    assert list(res.status_labels) == ["ok", "ok"]


def test_without_depletion_the_donor_is_untouched(model) -> None:
    base = _simulate(model, _obs(["R", "D"]))
    res = _simulate(model, [*_obs(["R", "D"]), _mix("R", "D", VOLUME=250.0)])
    np.testing.assert_array_equal(res.variable("Hbm")[1], base.variable("Hbm")[1])
    assert res.variable("BV")[0, 2] == pytest.approx(4900.0 + 250.0, rel=1e-9)


def test_parts_fraction_and_named_states(model) -> None:
    """PART selects states; FRACTION is of the recipient's blood volume."""
    params = {"Hb0": np.array([8.0, 16.0, 16.0])}  # an anaemic recipient, two donors
    base = _simulate(model, _obs(["R", "D1", "D2"]), params=params)
    rows = [
        *_obs(["R", "D1", "D2"]),
        _mix("R", "D1", FRACTION=0.1, PART="cells"),
        _mix("R", "D2", time=10.0, VOLUME=100.0, PART="PV"),
    ]
    res = _simulate(model, rows, params=params)
    r0, d1, d2 = (_states(base, k, 10.0) for k in range(3))
    r1 = _states(res, 0, 10.0)
    f1 = 0.1 * (r0[1] + r0[2]) / (d1[1] + d1[2])  # 490 mL of D1's blood
    f2 = 100.0 / (d2[1] + d2[2])
    expected = r0 + f1 * d1 * np.array([1, 1, 0]) + f2 * d2 * np.array([0, 0, 1])
    np.testing.assert_allclose(r1, expected, rtol=1e-12)
    assert res.variable("Hb")[0, 2] > base.variable("Hb")[0, 2] + 0.5  # cells raised it


def test_a_chain_is_solved_in_dependency_order(model) -> None:
    """A gives to B at 5 h, B to C at 10 h (and at the same time, file order): C receives A's
    cells through B."""
    params = {"Hb0": np.array([10.0, 12.0, 16.0])}  # C, B, A
    base = _simulate(model, _obs(["C", "B", "A"]), params=params)
    rows = [
        *_obs(["C", "B", "A"]),
        _mix("C", "B", VOLUME=400.0, DEPLETE=1),
        _mix("B", "A", time=5.0, VOLUME=400.0, DEPLETE=1),
    ]
    res = _simulate(model, rows, params=params)
    assert list(res.status_labels) == ["ok"] * 3
    total0 = sum(_states(base, k, 10.0) for k in range(3))
    total1 = sum(_states(res, k, 10.0) for k in range(3))
    # nothing created or lost (the model is linear; 5 h of solving apart: solver tolerance)
    np.testing.assert_allclose(total1, total0, rtol=1e-9)
    hb = res.variable("Hb")[:, 2]
    assert hb[0] > 10.0 + 0.05  # C got blood richer than its own
    # the same at one time: B receives from A, then gives (file order, both at 10 h)
    same = [*_obs(["C", "B", "A"]), _mix("C", "B", VOLUME=400.0), _mix("B", "A", VOLUME=400.0)]
    res2 = _simulate(model, same, params=params)
    b_after = _states(res2, 1, 10.0)
    # B gives after its own mix at 10 h: C's gain holds some of A's Hb
    f_c = 400.0 / (b_after[1] + b_after[2])
    c_gain = _states(res2, 0, 10.0) - _states(base, 0, 10.0)
    np.testing.assert_allclose(c_gain, f_c * b_after, rtol=1e-12)


def test_a_failed_donor_marks_its_recipient(model) -> None:
    """The donor's plasma volume explodes (kv < 0) before the mix at 10 h."""
    rows = [*_obs(["R", "D"]), _mix("R", "D", VOLUME=100.0)]
    res = _simulate(model, rows, params={"kv": np.array([np.log(2) / 4.0, -80.0])})
    labels = list(res.status_labels)
    assert labels[0] == "donor_failed" and labels[1] not in ("ok", "donor_failed")


def test_an_unsafe_donation_warns_and_too_much_is_refused(model) -> None:
    rows = [*_obs(["R", "D"]), _mix("R", "D", VOLUME=1000.0, DEPLETE=1)]
    with pytest.warns(HemolabWarning, match=r"more than 15 %.*row 2 \(20 %\)"):
        _simulate(model, rows)
    rows = [*_obs(["R", "D"]), _mix("R", "D", VOLUME=6000.0)]
    with pytest.raises(ScheduleError, match=r"row 2: the mix takes 6000 mL of donor blood"):
        _simulate(model, rows)


@pytest.mark.parametrize(
    ("rows", "row", "column", "message"),
    [
        ([_mix("R", "X", VOLUME=1.0)], 2, "DONOR", "names no ID of this dataset"),
        ([_mix("R", "R", VOLUME=1.0)], 2, "DONOR", "own ID"),
        ([_mix("R", "D")], 2, "VOLUME", "exactly one of VOLUME"),
        ([_mix("R", "D", VOLUME=1.0, FRACTION=0.1)], 2, "VOLUME", "exactly one of VOLUME"),
        ([_mix("R", "D", FRACTION=1.5)], 2, "FRACTION", "must be in (0, 1]"),
        ([_mix("R", "D", VOLUME=-5.0)], 2, "VOLUME", "must be > 0"),
        ([_mix("R", "D", VOLUME=1.0, PART="bones")], 2, "PART", "not whole, plasma, cells"),
        ([_mix("R", "D", VOLUME=1.0, DEPLETE=2)], 2, "DEPLETE", "is not 0 or 1"),
        ([_mix("R", "D", VOLUME=1.0), _mix("D", "R", VOLUME=1.0)], 2, "DONOR", "donor cycle"),
    ],
)
def test_bad_mixes_are_refused_naming_row_and_column(model, rows, row, column, message) -> None:
    frame = _frame([*_obs(["R", "D"]), *rows])
    with pytest.raises(DatasetError) as exc:
        read_events(frame, model=model)
    issue = next(i for i in exc.value.issues if i.column == column)
    assert issue.row == row or (column == "DONOR" and message == "donor cycle")
    assert message in issue.message
    assert "X" not in issue.message.replace("ID", "")  # a DONOR's text is an identifier


def test_a_cycle_through_three_subjects_names_its_rows(model) -> None:
    rows = [
        *_obs(["A", "B", "C"]),
        _mix("A", "B", VOLUME=1.0),
        _mix("B", "C", VOLUME=1.0),
        _mix("C", "A", VOLUME=1.0),
    ]
    with pytest.raises(DatasetError, match=r"donor cycle: the mixes on rows 2, 4, 6"):
        read_events(_frame(rows), model=model)


def test_mixing_needs_a_shared_clock_and_blood(model) -> None:
    rows = pd.DataFrame(
        [
            {"ID": "R", "DATETIME": "2024-01-01T00:00:00+00:00", "EVID": 2, "EVENT": "mix",
             "DONOR": "D", "VOLUME": 1.0},
            {"ID": "D", "DATETIME": "2024-01-01T00:00:00+00:00", "EVID": 0},
        ]
    )  # fmt: skip
    with pytest.raises(DatasetError, match="give TIME"):
        read_events(rows, model=model)
    pk = hl.Model("pk_nomix", "h", [hl.State("A", "-k*A")], [hl.Parameter("k", 1.0)])
    with pytest.raises(DatasetError, match="declares no blood"):
        read_events(_frame([*_obs(["R", "D"]), _mix("R", "D", VOLUME=1.0)]), model=pk)


def test_replicates_pair_donor_and_recipient_by_index(model) -> None:
    """Three replicates of (R, D), parameters replicate-major: each R receives from its own D."""
    hb0 = np.array([8.0, 13.0, 8.0, 16.0, 8.0, 20.0])  # (R, D) per replicate
    rows = [*_obs(["R", "D"]), _mix("R", "D", VOLUME=500.0, DEPLETE=1)]
    res = _simulate(model, rows, params={"Hb0": hb0})
    assert list(res.replicate) == [0, 0, 1, 1, 2, 2]
    alone = [_simulate(model, rows, params={"Hb0": hb0[2 * r : 2 * r + 2]}) for r in range(3)]
    for r in range(3):
        np.testing.assert_allclose(
            res.variable("Hbm")[2 * r : 2 * r + 2], alone[r].variable("Hbm"), rtol=1e-12
        )
    gain = res.variable("Hb")[[0, 2, 4], 2]
    assert gain[0] < gain[1] < gain[2]  # richer donors give more


def test_the_samples_example_records_and_reruns_identically(tmp_path) -> None:
    """``hemolab simulate`` of the demo's mixing dataset, recorded, rerun from its record."""
    import json
    from pathlib import Path

    from typer.testing import CliRunner

    from hemolab.cli._app import app

    examples = Path(__file__).resolve().parents[1] / "examples"
    runner = CliRunner()
    store = tmp_path / "store"
    args = ["simulate", str(examples / "samples_model.py"), "--events",
            str(examples / "samples-treated.csv"), "--t-end", "130d", "--dt", "10d", "--out",
            str(tmp_path / "r.parquet"), "--store", str(store), "--json"]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["status"]["ok"] == 2
    again = runner.invoke(app, ["experiments", "rerun", doc["experiment"], "--store", str(store),
                                "--json"])  # fmt: skip
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["identical"] is True


def test_an_anaemic_donor_warns_before_giving(model) -> None:
    """AABB: no donation below Hb 12.5 g/dL; the donor here has 11 g/dL."""
    rows = [*_obs(["R", "D"]), _mix("R", "D", VOLUME=200.0, DEPLETE=1)]
    with pytest.warns(HemolabWarning, match=r"below 12.5 g/dL .* row 2 \(Hb 11.0 g/dL\)"):
        _simulate(model, rows, params={"Hb0": np.array([14.0, 11.0])})
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning without depletion, or a healthy donor
        _simulate(model, [*_obs(["R", "D"]), _mix("R", "D", VOLUME=200.0)],
                  params={"Hb0": np.array([14.0, 11.0])})  # fmt: skip
        _simulate(model, rows)


def _varying(model: hl.Model) -> hl.Model:
    """The test model with between-patient variability in Hb0 (a population needs one)."""
    import dataclasses

    params = tuple(
        dataclasses.replace(p, bounds=(0.0, np.inf)) if p.name == "Hb0" else p
        for p in model.parameters
    )
    return model.replace(parameters=params, variability=hl.Variability(("Hb0",), ((0.04,),)))


def test_a_population_copies_the_linked_set(model) -> None:
    """``simulate_population`` over a donor and a recipient: each virtual patient a copy of
    the pair, each subject its own draw, donors paired by copy, chunks of whole copies;
    equal to one ``simulate`` of the R x S rows, with bands and metrics per sample."""
    from hemolab.population import simulate_population

    m = _varying(model)
    rows = [*_obs(["R", "D"]), _mix("R", "D", VOLUME=500.0, DEPLETE=1)]
    res = simulate_population(hl.Population(m, n=3, seed=5), _frame(rows), grid=GRID,
                              chunk_size=5, rtol=1e-10, atol=1e-10,
                              band_variables=["Hb"])  # fmt: skip
    direct = hl.simulate(m, _frame(rows), params=hl.Population(m, n=6, seed=5).parameters(),
                         grid=GRID, rtol=1e-10, atol=1e-10)  # fmt: skip
    assert res.n == 6 and res.chunks == 2  # chunks of 4 rows (two copies), then 2
    assert res.results is not None
    assert list(res.results.patient_ids) == [
        f"V{k:07d}-{s}" for k in range(3) for s in ("T0000000", "T0000001")
    ]
    np.testing.assert_array_equal(res.results.variable("Hb"), direct.variable("Hb"))
    assert set(res.bands) == {"Hb@T0000000", "Hb@T0000001"}
    recipients = res.metrics[res.metrics["variable"] == "Hb@T0000000"]
    assert all(pid.endswith("-T0000000") for pid in recipients["patient_id"])
    np.testing.assert_array_equal(recipients["final"], direct.variable("Hb")[0::2, -1])
    assert res.summary()["n_patients"] == 6


def test_a_population_refuses_unlinked_subjects_and_sampled_covariates(model) -> None:
    from hemolab.population import simulate_population

    m = _varying(model)
    with pytest.raises(hl.HemolabError, match="subjects linked by EVENT=mix"):
        simulate_population(hl.Population(m, n=2, seed=1), _frame(_obs(["R", "D"])), grid=GRID)
    rows = [*_obs(["R", "D"]), _mix("R", "D", VOLUME=500.0)]
    pop = hl.Population(m, n=2, seed=1, covariates={"WT": hl.population.Normal(70.0, 10.0)})
    with pytest.raises(hl.HemolabError, match="sampled covariates are not supported"):
        simulate_population(pop, _frame(rows), grid=GRID)


def test_cli_simulate_population_mixes(tmp_path) -> None:
    """``hemolab simulate --population N`` over the samples example: N copies of (A, D)."""
    import json

    import jsonschema
    from typer.testing import CliRunner

    from hemolab.cli._app import app
    from hemolab.cli._schemas import load_schema

    out = tmp_path / "pop.parquet"
    res = CliRunner().invoke(app, ["simulate", str(EXAMPLES / "samples_model.py"), "--events",
                                   str(EXAMPLES / "samples-treated.csv"), "--population", "3",
                                   "--seed", "2", "--t-end", "120d", "--dt", "10d", "--out",
                                   str(out), "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    jsonschema.validate(doc, load_schema("simulate"))
    assert doc["n_patients"] == 6 and doc["status"]["ok"] == 6
    hb_a, hb_d = doc["variables"]["Hb@T0000000"], doc["variables"]["Hb@T0000001"]
    assert hb_a["peak"]["median"] > 17 and hb_d["nadir"]["median"] < 9  # A too many, D too few
    frame = pd.read_parquet(out, columns=["patient_id"])
    assert sorted(set(frame["patient_id"]))[:2] == ["V0000000-T0000000", "V0000000-T0000001"]
