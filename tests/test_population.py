"""Virtual populations: IIV draws, covariates, residual error, chunked runs, omega files."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import hemolab as hl
from hemolab.cli._demo import demo_events
from hemolab.population import (
    BLOCK,
    BandSketch,
    Categorical,
    Empirical,
    LogNormal,
    Normal,
    Population,
    Uniform,
    read_omega,
    simulate_population,
)

T_END = 24.0 * 30


@pytest.fixture(scope="module")
def docetaxel() -> hl.Model:
    return hl.get_model("friberg_docetaxel")


# --- Variability and ResidualError ------------------------------------------------------------


def test_variability_validates_its_matrix():
    v = hl.Variability(("a", "b"), ((0.1, 0.05), (0.05, 0.2)), source="x")
    np.testing.assert_array_equal(v.matrix, [[0.1, 0.05], [0.05, 0.2]])
    assert hl.Variability.from_cv({"a": 30.0}).matrix[0, 0] == pytest.approx(math.log(1.09))
    assert hl.Variability.from_cv({"a": 30.0}).cv_percent()["a"] == pytest.approx(30.0)
    for omega, match in (
        (((0.1, 0.0),), "2×2"),
        (((0.1, 0.05), (0.0, 0.2)), "symmetric"),
        (((0.1, 0.0), (0.0, -0.2)), "negative variance"),
        (((0.1, 0.5), (0.5, 0.1)), "positive semi-definite"),
        (((0.1, float("nan")), (float("nan"), 0.1)), "non-finite"),
    ):
        with pytest.raises(hl.ModelError, match=match):
            hl.Variability(("a", "b"), omega)
    with pytest.raises(hl.ModelError, match="twice"):
        hl.Variability(("a", "a"), ((0.1, 0.0), (0.0, 0.1)))


def test_model_checks_declared_variability(docetaxel):
    with pytest.raises(hl.ModelError, match="unknown parameter"):
        docetaxel.replace(variability=hl.Variability.diagonal({"nope": 0.1}))
    with pytest.raises(hl.ModelError, match="unknown observable"):
        docetaxel.replace(residual_error=(hl.ResidualError("Hb", additive=0.5, kind="additive"),))
    with pytest.raises(hl.ModelError, match="two residual errors"):
        docetaxel.replace(
            residual_error=(hl.ResidualError("ANC", proportional=0.1),) * 2,
        )
    m = hl.Model(
        "signed",
        time_unit="d",
        states=[hl.State("x", "-k*x", initial=1.0)],
        parameters=[hl.Parameter("k", 0.1, bounds=(-1.0, 1.0))],
    )
    with pytest.raises(hl.ModelError, match="positive parameter"):
        m.replace(variability=hl.Variability.diagonal({"k": 0.1}))


def test_residual_error_models_are_the_nonmem_forms():
    f = np.array([0.5, 2.0, 10.0])
    eps = np.array([1.0, -2.0, 0.5])
    add = hl.ResidualError("ANC", "additive", additive=0.3)
    prop = hl.ResidualError("ANC", "proportional", proportional=0.2)
    comb = hl.ResidualError("ANC", "combined", additive=0.3, proportional=0.2)
    expo = hl.ResidualError("ANC", "exponential", additive=0.424)
    np.testing.assert_allclose(add.apply(f, eps), f + 0.3 * eps)
    np.testing.assert_allclose(prop.apply(f, eps), f * (1 + 0.2 * eps))
    np.testing.assert_allclose(comb.apply(f, eps), f + np.sqrt(0.09 + (0.2 * f) ** 2) * eps)
    np.testing.assert_allclose(expo.apply(f, eps), f * np.exp(0.424 * eps))
    np.testing.assert_allclose(comb.sd(f), np.sqrt(0.09 + 0.04 * f**2))
    assert np.isnan(prop.apply(np.array([np.nan]), np.array([1.0]))[0])
    with pytest.raises(hl.ModelError, match="additive and/or proportional"):
        hl.ResidualError("ANC", "combined")
    with pytest.raises(hl.ModelError, match="kind"):
        hl.ResidualError("ANC", "weird", additive=1.0)  # type: ignore[arg-type]
    with pytest.raises(hl.ModelError, match="finite SD"):
        hl.ResidualError("ANC", "additive", additive=-1.0)


def test_library_declares_the_published_variability():
    """MODELS.md, "How the library uses this page": which models carry which IIV."""
    doc = hl.get_model("friberg_docetaxel").variability
    assert doc is not None and doc.parameters == ("Circ0", "MTT", "Slope")
    np.testing.assert_allclose(np.diag(doc.matrix), [0.064, 0.019, 0.128])
    kloft = hl.get_model("friberg_docetaxel_kloft2006")
    assert kloft.variability == doc
    assert kloft.parameter("Circ0").value == pytest.approx(5.22, abs=0.005)
    assert kloft.parameter("Slope").value == pytest.approx(15.57, abs=0.005)
    pac = hl.get_model("friberg_paclitaxel").variability
    assert pac is not None
    assert dict(zip(pac.parameters, np.diag(pac.matrix), strict=True)) == {
        "Circ0": 0.107,
        "MTT": 0.0296,
        "Slope": 0.176,
    }
    plt = hl.get_model("friberg_platelets").variability
    assert plt is not None and plt.cv_percent() == pytest.approx({"PLT0": 32.9})
    for name in ("mackey_glass", "michor_cml", "agoram_darbepoetin", "romiplostim_wang2010"):
        assert hl.get_model(name).variability is None, name


# --- Population draws -------------------------------------------------------------------------


def test_population_rows_do_not_depend_on_chunking(docetaxel):
    pop = Population(docetaxel, n=2 * BLOCK + 300, seed=11, covariates={"BSA": Normal(1.8, 0.2)})
    whole = pop.parameters()
    for cuts in ([0, 1, BLOCK - 1, BLOCK + 5, 2 * BLOCK + 300], [0, 700, 1500, 2 * BLOCK + 300]):
        parts = [pop.parameters(a, b) for a, b in itertools.pairwise(cuts)]
        for name, values in whole.items():
            np.testing.assert_array_equal(np.concatenate([p[name] for p in parts]), values)
    again = Population(docetaxel, n=2 * BLOCK + 300, seed=11, covariates={"BSA": Normal(1.8, 0.2)})
    np.testing.assert_array_equal(again.etas(), pop.etas())
    other = Population(docetaxel, n=10, seed=12)
    assert not np.array_equal(other.etas(), pop.etas(0, 10))
    # the first rows of a larger population are the smaller population
    small = Population(docetaxel, n=100, seed=11)
    np.testing.assert_array_equal(small.etas(), pop.etas(0, 100))


def test_etas_follow_a_correlated_omega(docetaxel):
    omega = ((0.09, 0.03, 0.0), (0.03, 0.04, -0.01), (0.0, -0.01, 0.16))
    var = hl.Variability(("MTT", "Slope", "Circ0"), omega)
    pop = Population(docetaxel, n=40_000, seed=5, variability=var)
    eta = pop.etas()
    # sample covariance of 40,000 draws: standard error of each entry <= ~0.0012
    np.testing.assert_allclose(np.cov(eta.T), omega, atol=0.005)
    np.testing.assert_allclose(eta.mean(axis=0), 0.0, atol=0.01)
    params = pop.parameters(0, 40_000)
    # log-normal: the median of θ·exp(η) is the typical value
    assert np.median(params["MTT"]) == pytest.approx(88.7, rel=0.01)
    np.testing.assert_allclose(np.log(params["Slope"] / 8.58), eta[:, 1], atol=1e-14)


def test_singular_omega_draws_perfectly_correlated_etas(docetaxel):
    var = hl.Variability(("MTT", "Slope"), ((0.04, 0.04), (0.04, 0.04)))
    eta = Population(docetaxel, n=500, seed=1, variability=var).etas()
    np.testing.assert_allclose(eta[:, 0], eta[:, 1], atol=1e-12)
    assert eta[:, 0].std() == pytest.approx(0.2, rel=0.1)


def test_population_refuses_bad_requests(docetaxel):
    with pytest.raises(hl.HemolabError, match="declares no inter-individual variability"):
        Population(hl.get_model("mackey_glass"), n=10, seed=1)
    with pytest.raises(hl.HemolabError, match="n >= 1"):
        Population(docetaxel, n=0, seed=1)
    with pytest.raises(hl.HemolabError, match="seed"):
        Population(docetaxel, n=5, seed=-1)
    with pytest.raises(hl.HemolabError, match="not covariates"):
        Population(docetaxel, n=5, seed=1, covariates={"WT": 70.0})
    with pytest.raises(hl.HemolabError, match="does not have"):
        Population(docetaxel, n=5, seed=1, variability=hl.Variability.diagonal({"XX": 0.1}))
    with pytest.raises(hl.HemolabError, match="outside"):
        Population(docetaxel, n=5, seed=1).parameters(3, 9)
    with pytest.raises(hl.ModelError, match="no parameter"):
        Population(docetaxel, n=5, seed=1, typical={"nope": 1.0})


def test_covariate_distributions():
    rng = np.random.default_rng(0)
    x = Normal(1.8, 0.5, 1.5, 2.0).sample(rng, 10_000)
    assert x.min() >= 1.5 and x.max() <= 2.0
    y = LogNormal(70.0, 20.0).sample(rng, 20_000)
    assert np.median(y) == pytest.approx(70.0, rel=0.02)
    assert np.std(np.log(y)) == pytest.approx(math.sqrt(math.log(1.04)), rel=0.03)
    z = Categorical((0.0, 1.0), (0.3, 0.7)).sample(rng, 20_000)
    assert z.mean() == pytest.approx(0.7, abs=0.015)
    u = Uniform(1.0, 2.0).sample(rng, 1000)
    assert u.min() >= 1.0 and u.max() < 2.0
    assert set(Empirical((1.6, 1.9)).sample(rng, 100)) == {1.6, 1.9}
    for bad in (
        lambda: Normal(1.0, -1.0),
        lambda: Normal(5.0, 1.0, 0.0, 2.0),
        lambda: LogNormal(0.0, 10.0),
        lambda: Uniform(2.0, 1.0),
        lambda: Categorical((0.0, 1.0), (0.5, 0.6)),
        lambda: Empirical(()),
    ):
        with pytest.raises(hl.HemolabError):
            bad()


# --- Quantile sketch --------------------------------------------------------------------------


def test_band_sketch_quantiles_are_within_their_relative_accuracy():
    rng = np.random.default_rng(1)
    x = np.exp(rng.normal(0.0, 2.0, (6000, 5)))
    x[:, 1] -= 3.0  # negative and positive values
    x[:200, 2] = 0.0  # exact zeros
    x[7, 3] = np.nan  # a failed patient
    x[:, 4] = np.linspace(1e-30, 1.0, 6000)  # far below the peak: collapsed into one bin
    whole, a, b = BandSketch(5), BandSketch(5), BandSketch(5)
    whole.add(x)
    a.add(x[:2500])
    b.add(x[2500:])
    a.merge(b)
    for q in (0.0, 0.05, 0.5, 0.95, 1.0):
        exact = np.array([np.quantile(c[np.isfinite(c)], q, method="lower") for c in x.T])
        est = whole.quantile(q)
        np.testing.assert_array_equal(a.quantile(q), est)  # merging is exact
        np.testing.assert_allclose(est[:4], exact[:4], rtol=0.005)
        if q >= 0.05:
            np.testing.assert_allclose(est[4], exact[4], rtol=0.005)
    assert whole.count[3] == 5999
    assert np.isnan(BandSketch(2).quantile(0.5)).all()
    with pytest.raises(ValueError, match="expected"):
        whole.add(np.zeros((3, 4)))


# --- Simulating a population ------------------------------------------------------------------


def test_chunked_run_equals_one_chunk_and_writes_one_sorted_file(docetaxel, tmp_path):
    pop = Population(docetaxel, n=300, seed=3, covariates={"BSA": Normal(1.8, 0.2, 1.4, 2.4)})
    events = demo_events(bsa=None).iloc[:2]
    kw = {"t_end": T_END, "dt": 24.0, "run_id": "r", "scenario": "s"}
    one = simulate_population(pop, events, chunk_size=300, out=tmp_path / "one.parquet", **kw)
    many = simulate_population(pop, events, chunk_size=128, out=tmp_path / "many.parquet", **kw)
    assert many.chunks == 3 and one.chunks == 1
    assert one.results is not None and many.results is not None
    np.testing.assert_array_equal(one.results.values, many.results.values)
    t1 = pq.read_table(tmp_path / "one.parquet")
    t2 = pq.read_table(tmp_path / "many.parquet")
    assert t1.equals(t2)
    ids = t1.column("patient_id").to_pylist()
    assert ids == sorted(ids) and ids[0] == "V0000000" and ids[-1] == "V0000299"
    meta = pq.read_schema(tmp_path / "many.parquet").metadata
    assert json.loads(meta[b"hemolab.seed"]) == 3
    assert json.loads(meta[b"hemolab.population"])["omega"]["parameters"] == [
        "Circ0",
        "MTT",
        "Slope",
    ]
    events_file = pq.read_table(tmp_path / "many.events.parquet")
    assert events_file.num_rows == 2 * 300
    assert not list(tmp_path.glob(".*.tmp"))
    # per-patient metrics are the minima and maxima of the kept trajectories
    anc = many.results.variable("ANC")
    m = many.metrics[many.metrics["variable"] == "ANC"]
    np.testing.assert_array_equal(m["min"], anc.min(axis=1))
    np.testing.assert_array_equal(m["t_max"], many.time[anc.argmax(axis=1)])
    # the bands agree with exact quantiles of the kept trajectories to the sketch's accuracy
    for q in (0.05, 0.5, 0.95):
        exact = np.quantile(anc, q, axis=0, method="lower")
        np.testing.assert_allclose(many.bands["ANC"][q], exact, rtol=many.band_accuracy)
    assert many.incidence("ANC", 1.0) == pytest.approx(np.mean(anc.min(axis=1) < 1.0))


def test_per_body_size_doses_scale_with_each_patients_bsa(docetaxel):
    """100 mg/m² with a sampled BSA: each patient's dose, hence Cmax, is proportional to BSA."""
    pop = Population(docetaxel, n=40, seed=9, covariates={"BSA": Uniform(1.4, 2.4)})
    res = simulate_population(pop, demo_events(bsa=None).iloc[:1], grid=[1.0]).results
    assert res is not None
    bsa = pop.covariate_values()["BSA"]
    cmax = res.variable("Cdoc")[:, -1]
    np.testing.assert_allclose(cmax / bsa, cmax[0] / bsa[0], rtol=1e-9)
    ev = res.events.to_pandas()
    np.testing.assert_allclose(ev.groupby("patient_id")["amount"].first().to_numpy(), 100 * bsa)


def test_untreated_population_and_residual_error(docetaxel):
    pop = Population(docetaxel, n=50, seed=4)
    run = simulate_population(pop, t_end=48.0, dt=24.0, residual_error=True, run_id="x")
    res = run.results
    assert res is not None
    i = res.variables.index("ANC_obs")
    assert res.kinds[i] == "derived" and res.units[i] == "10*9/L"
    anc = res.variable("ANC")
    # untreated: every patient stays at its own baseline Circ0
    np.testing.assert_allclose(anc, pop.parameters()["Circ0"][:, None] * np.ones((1, 3)))
    eps = pop.residual_noise(0, 50, 3).reshape(50, 3)
    np.testing.assert_allclose(res.variable("ANC_obs"), anc * np.exp(0.424 * eps), rtol=1e-12)
    assert "ANC_obs" in run.bands
    summary = run.summary()
    assert summary["population"]["seed"] == 4 and summary["status"]["ok"] == 50
    assert summary["variables"]["ANC"]["nadir"]["median"] == pytest.approx(
        float(np.median(anc.min(axis=1)))
    )


def test_population_run_rejects_bad_input(docetaxel, tmp_path):
    pop = Population(docetaxel, n=4, seed=1)
    two_subjects = pd.concat([demo_events().iloc[:1], demo_events().iloc[:1].assign(ID=2)])
    with pytest.raises(hl.HemolabError, match="one regimen"):
        simulate_population(pop, two_subjects, t_end=24.0)
    with pytest.raises(hl.HemolabError, match="declares no residual error"):
        simulate_population(
            Population(hl.get_model("friberg_paclitaxel").replace(residual_error=()), n=2, seed=1),
            t_end=24.0,
            residual_error=True,
        )
    with pytest.raises(hl.HemolabError, match="sets 'params'"):
        simulate_population(pop, t_end=24.0, params={"MTT": 1.0})
    with pytest.raises(hl.HemolabError, match="chunk_size"):
        simulate_population(pop, t_end=24.0, chunk_size=0)
    with pytest.raises(KeyError, match="no variable 'Hb'"):
        simulate_population(pop, t_end=24.0, band_variables=["Hb"])
    # a failed write leaves neither a partial file nor a temporary one
    target = tmp_path / "keep.parquet"
    target.write_bytes(b"previous result")
    with pytest.raises(KeyError):
        simulate_population(pop, t_end=24.0, out=target, band_variables=["Hb"])
    assert target.read_bytes() == b"previous result"
    assert not list(tmp_path.glob(".*.tmp"))


# --- omega files ------------------------------------------------------------------------------


def test_read_omega_csv_and_json(tmp_path):
    csv = tmp_path / "omega.csv"
    csv.write_text(",MTT,Slope\nMTT,0.019,0.01\nSlope,0.01,0.128\n")
    v = read_omega(csv)
    assert v.parameters == ("MTT", "Slope")
    np.testing.assert_array_equal(v.matrix, [[0.019, 0.01], [0.01, 0.128]])
    diag = tmp_path / "omega.json"
    diag.write_text(json.dumps({"MTT": 0.019, "Slope": 0.128}))
    assert read_omega(diag).matrix[1, 1] == 0.128
    full = tmp_path / "full.json"
    full.write_text(json.dumps({"parameters": ["MTT"], "omega": [[0.02]]}))
    assert read_omega(full).parameters == ("MTT",)


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("a.csv", ",MTT,Slope\nMTT,0.019,0\n", "must be square"),
        ("b.csv", ",MTT,Slope\nSlope,0.019,0\nMTT,0,0.1\n", "row 2: first column 'Slope'"),
        ("c.csv", ",MTT\nMTT,abc\n", "row 2, column MTT: 'abc' is not a number"),
        ("d.csv", ",MTT,Slope\nMTT,0.1,0.5\nSlope,0.5,0.1\n", "positive semi-definite"),
        ("e.json", "{not json", "invalid JSON"),
        ("f.json", "[1, 2]", "expected an object"),
        ("g.json", '{"MTT": "x"}', "'x' is not a number"),
        ("h.txt2", "", "expected .csv or .json"),
    ],
)
def test_read_omega_names_the_problem(tmp_path: Path, name, text, match):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(hl.HemolabError, match=match) as info:
        read_omega(path)
    assert name in str(info.value)
    with pytest.raises(hl.HemolabError, match="does not exist"):
        read_omega(tmp_path / "missing.csv")
