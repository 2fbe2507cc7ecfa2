"""Protocols over the posterior draws of a calibrated patient, from where the patient is now."""

from __future__ import annotations

import numpy as np
import pytest

import hemolab as hl
from hemolab import HemolabError
from hemolab.calibrate import FitRecord
from hemolab.calibrate._problem import Observations
from hemolab.compile import model_hash
from hemolab.library import get_model
from hemolab.protocols import Limit, Monitoring, Phase, Protocol, patient_now, run_protocol

T_LAST = 180.0  # days: six monthly CBCs after diagnosis


@pytest.fixture(scope="module")
def model() -> hl.Model:
    return get_model("marrow_failure_hb")


@pytest.fixture(scope="module")
def fit(model) -> FitRecord:
    """A NUTS-like fit: 40 draws around the showcase truth (no dosing history)."""
    rng = np.random.default_rng(3)
    draws = np.column_stack(
        [
            12.6 * np.exp(0.05 * rng.standard_normal(40)),
            0.0042 * np.exp(0.3 * rng.standard_normal(40)),
        ]
    )
    days = np.arange(0.0, T_LAST + 1, 30.0)
    return FitRecord(
        model="marrow_failure_hb",
        model_hash=model_hash(model),
        method="nuts",
        names=("Hb0", "kfail"),
        estimate={"Hb0": 12.6, "kfail": 0.0042},
        log_covariance=np.eye(2) * 0.01,
        draws=draws,
        patient="T0000000",
        temporary_patient=True,
        time_unit="d",
        observations=Observations.of(["Hb"] * len(days), days, np.full(len(days), 11.0)),
    )


def test_the_patient_now_is_each_draw_at_the_last_observation(model, fit) -> None:
    now = patient_now(fit, model, n_draws=25, seed=1)
    assert now.n == 25 and now.t_last == T_LAST and now.patient == "T0000000"
    direct = hl.simulate(model, params=now.draws, grid=[0.0, T_LAST], rtol=1e-6, atol=1e-8)
    for s in model.state_names:
        np.testing.assert_allclose(now.states[s], direct.variable(s)[:, -1], rtol=1e-12)


def test_a_protocol_over_the_draws_continues_each_patient(model, fit) -> None:
    """60 more days from the state at day 180 equal the course from diagnosis to day 240."""
    now = patient_now(fit, model, n_draws=25, seed=1)
    proto = Protocol(
        "watch", [Phase("watch", 60.0)], Monitoring(["Hb"], 1.0), [Limit("anaemia", "Hb < 7")]
    )
    r = run_protocol(proto, model, draws=now.draws, initial_states=now.states, rtol=1e-8,
                     atol=1e-10)  # fmt: skip
    assert r.n == 25 and r.status_counts == {"ok": 25}
    fine = hl.simulate(model, params=now.draws, t_end=T_LAST + 60.0, dt=0.01, rtol=1e-8,
                       atol=1e-10, outputs=["Hb"])  # fmt: skip
    t = np.asarray(fine.time[0])
    hb = np.asarray(fine.variable("Hb"))
    after = t >= T_LAST - 1e-9
    np.testing.assert_allclose(r.patients["Hb_final"], hb[:, -1], rtol=1e-6)
    below = (hb[:, after] < 7.0).any(axis=1)
    np.testing.assert_array_equal(r.patients["anaemia violated"].to_numpy(bool), below)
    assert 0 < below.sum() < 25, "the check needs patients on both sides"
    first = np.array([t[after][np.argmax(b)] - T_LAST if b.any() else np.nan
                      for b in hb[:, after] < 7.0])  # fmt: skip
    np.testing.assert_allclose(r.patients["anaemia first"], first, atol=0.02)


def test_bad_combinations_are_refused(model, fit) -> None:
    now = patient_now(fit, model, n_draws=5, seed=1)
    proto = Protocol("p", [Phase("a", 10.0, parameters={"kfail": 0.0})], Monitoring(["Hb"], 1.0))
    with pytest.raises(HemolabError, match="'kfail' is also drawn"):
        run_protocol(proto, model, draws=now.draws, initial_states=now.states)
    plain = Protocol("p", [Phase("a", 10.0)], Monitoring(["Hb"], 1.0))
    pop = hl.Population(model, n=3, seed=1)
    with pytest.raises(HemolabError, match="not both"):
        run_protocol(plain, model, population=pop, draws=now.draws)
    with pytest.raises(hl.ScheduleError, match="'nope' is not a state"):
        hl.simulate(model, t_end=1.0, dt=1.0, initial_states={"nope": 1.0})
    other = get_model("friberg_docetaxel")
    with pytest.raises(HemolabError, match="not of 'friberg_docetaxel'"):
        patient_now(fit, other)


WATCH = """[protocol]
name = "watch two months"
model = "marrow_failure_hb"
time_unit = "d"

[monitoring]
observables = ["Hb"]
every = "1d"

[[phase]]
name = "watch"
duration = "60d"

[[limit]]
name = "Hb < 7"
when = "Hb < 7"
max_probability = 0.5
"""


def test_cli_run_over_a_fit_records_and_reruns(model, fit, tmp_path) -> None:
    import dataclasses
    import json

    import jsonschema
    from typer.testing import CliRunner

    from hemolab.audit import AuditLog
    from hemolab.cli._app import app
    from hemolab.cli._schemas import load_schema

    # a stored patient's fit: its use is audited in the store it is recorded in
    fit_path = dataclasses.replace(fit, patient="P00000000AB", temporary_patient=False).save(
        tmp_path / "fit.json"
    )
    proto = tmp_path / "watch.toml"
    proto.write_text(WATCH)
    runner = CliRunner()
    store = tmp_path / "store"
    args = ["run", str(proto), "--fit", str(fit_path), "--draws", "25", "--seed", "1", "--json"]
    res = runner.invoke(app, [*args, "--store", str(store)])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    jsonschema.Draft202012Validator(load_schema("run")).validate(doc)
    assert doc["fit"] == {"patient": "P00000000AB", "t_last_observation": T_LAST,
                          "time_unit": "d", "n_draws": 25}  # fmt: skip
    (entry,) = AuditLog(store).entries("P00000000AB")
    assert entry["action"] == "run protocol" and entry["detail"] == "25 posterior draws of fit.json"
    now = patient_now(fit, model, n_draws=25, seed=1)
    api = run_protocol(
        Protocol("w", [Phase("watch", 60.0)], Monitoring(["Hb"], 1.0), [Limit("Hb < 7", "Hb < 7")]),
        model,
        draws=now.draws,
        initial_states=now.states,
    )
    assert doc["limits"][0]["n_violated"] == api.limits[0].n_violated
    again = runner.invoke(app, ["experiments", "rerun", doc["experiment"], "--store", str(store),
                                "--json"])  # fmt: skip
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["identical"] is True
    bad = runner.invoke(app, [*args, "--population", "10"])
    assert bad.exit_code == 2 and "--fit runs the patient's posterior draws" in bad.output


TREAT = WATCH.replace('name = "watch"\nduration = "60d"', 'name = "treat"\nduration = "60d"\n'
                      'parameters = { RBCLS = "{life}" }')  # fmt: skip
SPACE = """[search]
name = "longer-lived red cells"
protocol = "treat.toml"
method = "grid"
per_axis = 3

[objective]
maximise = "median_final(Hb)"

[variables.life]
type = "continuous"
low = 80
high = 160
unit = "d"
"""


def test_cli_search_over_a_fit(model, fit, tmp_path) -> None:
    """A search evaluated over the patient's posterior draws: longer red-cell lives keep more
    Hb, so the longest wins; recorded with the fit, rerun identically."""
    import json

    import jsonschema
    from typer.testing import CliRunner

    from hemolab.cli._app import app
    from hemolab.cli._schemas import load_schema

    fit_path = fit.save(tmp_path / "fit.json")
    (tmp_path / "treat.toml").write_text(TREAT)
    (tmp_path / "space.toml").write_text(SPACE)
    runner = CliRunner()
    store = tmp_path / "store"
    args = ["search", str(tmp_path / "space.toml"), "--fit", str(fit_path), "--draws", "10",
            "--seed", "2", "--json", "--store", str(store)]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    jsonschema.Draft202012Validator(load_schema("search")).validate(doc)
    assert doc["fit"]["n_draws"] == 10 and doc["population"] == {"n": 10, "seed": 2}
    assert doc["best"] == {"life": 160.0} and doc["n_evaluated"] == 3
    again = runner.invoke(app, ["experiments", "rerun", doc["experiment"], "--store", str(store),
                                "--json"])  # fmt: skip
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["identical"] is True
