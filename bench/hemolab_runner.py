"""The hemolab side of the benchmarks: one function per problem, nothing else imports hemolab.

Contract (what ``bench/run.py`` relies on)
------------------------------------------
``run_p1(params, grid) -> (compile_s, solve_fn)`` and ``run_p2(x0, beta, grid) ->
(compile_s, solve_fn)``:

- ``compile_s``: explicit one-time model build/compilation, in seconds. A lazy JIT on the
  first call is measured by ``bench/run.py`` itself: it times the first ``solve_fn()`` apart
  and reports ``compile_s = build + first call - median later call`` (and ``first_call_s``).
- ``solve_fn()``: solves the whole batch, from the parameters already in memory to **NumPy**
  arrays on the grid (block until ready: the transfer is part of the timing), and returns
  ``(outputs, failures)``: ``outputs`` float64 ``(n, len(grid))`` (P1: ``Circ``; P2: ``x``),
  ``failures`` a ``{item index: message}`` dict, empty when every item finished.

``run_p3(...)`` raises ``NotImplementedError("hemolab calibration not wired yet")`` until
hemolab has a calibration entry point (:func:`calibration_entry_point`, the one place that
looks); :func:`p3_building_blocks` measures what exists (forward solves, forward-mode
Jacobians through the solver). ``run_p4(params, protocols) -> (compile_s, solve_fn)`` with
``solve_fn() -> (longest (K, n) in h, failures per protocol)``: one evaluation per protocol.

JAX is imported here, lazily, by ``import hemolab``. ``bench/run.py`` calls this module only
after every spawn-based peer has run; never fork after calling it.

Both functions raise ``NotImplementedError("hemolab solver not wired yet")`` while
``hemolab.simulate`` does not exist; ``bench/run.py`` then reports ``hemolab_s: null``.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from bench.problems import (
    P1_ATOL,
    P1_DOSE_MG,
    P1_DOSE_TIMES_H,
    P1_RTOL,
    P2_ATOL,
    P2_GAMMA,
    P2_HILL,
    P2_RTOL,
    P2_TAU,
    P3_ATOL,
    P3_DOSE_TIMES_H,
    P3_FREE,
    P3_OBS_TIMES_H,
    P3_PRIOR_MEDIAN,
    P3_PRIOR_OMEGA,
    P3_RTOL,
    P3_SIGMA,
    P3_START,
    P4_ATOL,
    P4_RTOL,
    P4Protocol,
    p4_longest_episode,
)

if TYPE_CHECKING:
    from hemolab.solve import ActionTable

SolveFn = Callable[[], tuple[np.ndarray, dict[int, str]]]
"""``solve_fn() -> (outputs, failures)``."""

NOT_WIRED = "hemolab solver not wired yet"
NOT_WIRED_CALIBRATION = "hemolab calibration not wired yet"
CALIBRATION_ENTRY_POINTS = ("fit", "calibrate", "fit_map", "map_fit")
"""Names under which a hemolab calibration entry point would appear (checked in order)."""
SEARCH_ENTRY_POINTS = ("search", "search_protocol", "optimize_protocol")
"""Names under which a hemolab protocol search would appear."""
P4_CROSSING_METHOD = (
    "hemolab.Trigger root finding: triggers 'Circ < 0.5' (t_down = t) and 'Circ > 0.5' "
    "(max_below = max(max_below, t - t_down)) fire at crossing times located by bisection on "
    "the step's dense output; sign changes are looked for between step ends only (a dip that "
    "starts and ends inside one step would be missed); an episode still open at the end of "
    "treatment counts up to it"
)


def _import_hemolab() -> ModuleType:
    """Import hemolab (from ``src/`` when not installed) or raise ``NotImplementedError``."""
    try:
        import hemolab
    except ModuleNotFoundError:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
        try:
            import hemolab
        except ModuleNotFoundError as error:
            raise NotImplementedError(f"{NOT_WIRED}: cannot import hemolab ({error})") from error
    if not hasattr(hemolab, "simulate"):
        raise NotImplementedError(f"{NOT_WIRED}: hemolab.simulate does not exist")
    return hemolab


def build_p1_model(hl: ModuleType) -> object:
    """Return the benchmark-only P1 Friberg model, :func:`bench.models.friberg_p1`.

    States ``A`` (mg, dosed) and ``Prol, T1, T2, T3, Circ`` (1e9/L, positive); parameters
    ``CL, V, MTT, Circ0, Slope, gamma`` (see :mod:`bench.problems`).

    Parameters
    ----------
    hl : module
        The imported ``hemolab`` (``bench.models`` imports it too).

    Returns
    -------
    hemolab.Model
        The model.
    """
    del hl  # bench.models builds it with the public API
    from bench.models import friberg_p1

    return friberg_p1()


def build_p2_model(hl: ModuleType) -> object:
    """Build the P2 Mackey-Glass DDE with hemolab's public API.

    ``dx/dt = beta x(t - tau) / (1 + x(t - tau)^n) - gamma x``, gamma 0.1, n 10, tau 17;
    ``beta`` and the constant history ``x0`` are per-item parameters.
    """
    return hl.Model(
        "mackey_glass_p2_bench",
        time_unit="d",
        states=[
            hl.State(
                "x",
                "beta*x(t - tau)/(1 + x(t - tau)**n) - gamma*x",
                initial="x0",
                history="x0",
                positive=False,  # x stays in [0.2, 1.5]: plain coordinates are more accurate here
            )
        ],
        parameters=[
            hl.Parameter("beta", 0.2),
            hl.Parameter("gamma", P2_GAMMA),
            hl.Parameter("n", P2_HILL),
            hl.Parameter("tau", P2_TAU),
            hl.Parameter("x0", 0.5),
        ],
    )


def _failures(res: object) -> dict[int, str]:
    """``{batch index: status label}`` of the failed items of a ``hemolab.Results``."""
    labels = res.status_labels  # type: ignore[attr-defined]
    return {int(i): labels[i] for i in res.failed}  # type: ignore[attr-defined]


def run_p1(params: dict[str, np.ndarray], grid: np.ndarray) -> tuple[float, SolveFn]:
    """Build the P1 model and return ``(compile_s, solve_fn)`` for this population.

    Parameters
    ----------
    params : dict of str to numpy.ndarray
        ``CL, V, MTT, Circ0, Slope, gamma``, each of shape ``(n,)``.
    grid : numpy.ndarray
        Output times (h), 127 points 0..3024.

    Returns
    -------
    compile_s : float
        Explicit model build and compilation, seconds (JIT on the first call is measured by
        ``bench/run.py``).
    solve_fn : callable
        ``solve_fn() -> (Circ (n, len(grid)) numpy float64, failures dict)``.

    Raises
    ------
    NotImplementedError
        While hemolab's solver is not wired in.
    """
    hl = _import_hemolab()
    import pandas as pd

    start = time.perf_counter()
    compiled = hl.compile_model(build_p1_model(hl))
    # One regimen shared by the whole population: six 100 mg boluses into A every 504 h.
    doses = pd.DataFrame(
        {
            "ID": [1],
            "TIME": P1_DOSE_TIMES_H[0],
            "EVID": 1,
            "AMT": P1_DOSE_MG,
            "CMT": "A",
            "II": P1_DOSE_TIMES_H[1] - P1_DOSE_TIMES_H[0],
            "ADDL": len(P1_DOSE_TIMES_H) - 1,
        }
    )
    compile_s = time.perf_counter() - start

    def solve_fn() -> tuple[np.ndarray, dict[int, str]]:
        # only Circ is reported, as libRoadRunner's selections ask of it in the same run
        res = hl.simulate(
            compiled,
            doses,
            params=params,
            grid=grid,
            rtol=P1_RTOL,
            atol=P1_ATOL,
            outputs=["Circ"],
        )
        return np.asarray(res.variable("Circ"), dtype=np.float64), _failures(res)

    return compile_s, solve_fn


def run_p2(x0: np.ndarray, beta: np.ndarray, grid: np.ndarray) -> tuple[float, SolveFn]:
    """Build the P2 model and return ``(compile_s, solve_fn)`` for this batch.

    Parameters
    ----------
    x0, beta : numpy.ndarray
        Constant histories and production rates, shape ``(n,)``.
    grid : numpy.ndarray
        Output times 0, 1, ..., 1000.

    Returns
    -------
    compile_s : float
        Explicit model build and compilation, seconds.
    solve_fn : callable
        ``solve_fn() -> (x (n, len(grid)) numpy float64, failures dict)``.

    Raises
    ------
    NotImplementedError
        While hemolab's solver is not wired in.
    """
    hl = _import_hemolab()
    start = time.perf_counter()
    compiled = hl.compile_model(build_p2_model(hl))
    compile_s = time.perf_counter() - start
    params = {"beta": np.asarray(beta, np.float64), "x0": np.asarray(x0, np.float64)}

    def solve_fn() -> tuple[np.ndarray, dict[int, str]]:
        res = hl.simulate(
            compiled, params=params, grid=grid, rtol=P2_RTOL, atol=P2_ATOL, outputs=["x"]
        )
        return np.asarray(res.variable("x"), dtype=np.float64), _failures(res)

    return compile_s, solve_fn


# -- P3 ------------------------------------------------------------------------------------


def entry_point(hl: ModuleType, names: tuple[str, ...]) -> str | None:
    """Return the first of ``names`` that ``hl`` exports as a callable, or ``None``.

    Exported means in ``hl.__all__``: a subpackage such as ``hemolab.calibrate`` becomes an
    attribute of ``hemolab`` once anything imports it, but it is not an entry point.
    """
    exported = set(getattr(hl, "__all__", ()))
    return next((n for n in names if n in exported and callable(getattr(hl, n, None))), None)


def calibration_entry_point() -> str | None:
    """Name of hemolab's calibration entry point, or ``None`` while there is none.

    The one place that decides whether P3's fit can be timed (:data:`CALIBRATION_ENTRY_POINTS`).
    """
    return entry_point(_import_hemolab(), CALIBRATION_ENTRY_POINTS)


def search_entry_point() -> str | None:
    """Name of hemolab's protocol search entry point, or ``None`` while there is none."""
    return entry_point(_import_hemolab(), SEARCH_ENTRY_POINTS)


def build_p3_model(hl: ModuleType) -> object:
    """The P1 model with P3's priors (log-normal, SD ``P3_PRIOR_OMEGA`` on Slope, MTT and
    Circ0 around the typical values) and its 15 % log-normal error on ``ANC`` (= Circ)."""
    import dataclasses

    return dataclasses.replace(
        build_p1_model(hl),  # type: ignore[arg-type]
        variability=hl.Variability.diagonal(
            {name: P3_PRIOR_OMEGA**2 for name in P3_FREE}, source="BENCHMARKS.md P3"
        ),
        residual_error=(hl.ResidualError("ANC", "exponential", additive=P3_SIGMA),),
    )


def p3_patients(hl: ModuleType, observations: np.ndarray, fixed: list[dict[str, float]]) -> list:
    """One ``hemolab.calibrate.Patient`` per row of ``observations`` (ANC = Circ at P3's times)."""
    from hemolab.calibrate import Observations, Patient

    doses = p3_doses()
    return [
        Patient(Observations.of(["ANC"] * len(P3_OBS_TIMES_H), P3_OBS_TIMES_H, y), doses, f)
        for y, f in zip(np.asarray(observations), fixed, strict=True)
    ]


def run_p3(observations: np.ndarray, fixed: list[dict[str, float]]) -> tuple[float, SolveFn]:
    """MAP fits of P3 patients with hemolab: ``(compile_s, solve_fn)``.

    ``solve_fn() -> (theta (n, 3) of Slope, MTT, Circ0, failures)``: every patient in one
    batched ``hemolab.calibrate.fit_map_batch`` call (the data are arguments of the compiled
    objective), started at :data:`bench.problems.P3_START`, at P3's tolerances. The MAP
    alone (``laplace=False``): the Laplace step is timed apart (:func:`run_p3_laplace`).
    """
    hl = _import_hemolab()
    from hemolab.calibrate import fit_map_batch

    start = time.perf_counter()
    model = build_p3_model(hl)
    hl.compile_model(model)
    patients = p3_patients(hl, observations, fixed)
    starts = [dict(zip(P3_FREE, P3_START.tolist(), strict=True))] * len(patients)
    build_s = time.perf_counter() - start

    def solve_fn() -> tuple[np.ndarray, dict[int, str]]:
        fits = fit_map_batch(model, patients, rtol=P3_RTOL, atol=P3_ATOL, starts=starts,
                             laplace=False)  # fmt: skip
        theta = np.array([[f.estimate[name] for name in P3_FREE] for f in fits])
        failures = {i: f"not converged (|g| {f.gradient_norm:.1e})"
                    for i, f in enumerate(fits) if not f.converged}  # fmt: skip
        return theta, failures

    return build_s, solve_fn


def run_p3_laplace(
    observations: np.ndarray, fixed: list[dict[str, float]]
) -> tuple[float, SolveFn]:
    """The Laplace step at P3 MAP estimates: ``(build_s, solve_fn)``; ``solve_fn()`` is one
    ``hemolab.calibrate.laplace_batch`` call (exact Hessian of every patient's objective at
    its MAP) returning ``(log-parameter SDs (n, 3), failures)``."""
    hl = _import_hemolab()
    from hemolab.calibrate import fit_map_batch, laplace_batch

    start = time.perf_counter()
    model = build_p3_model(hl)
    patients = p3_patients(hl, observations, fixed)
    fits = fit_map_batch(model, patients, rtol=P3_RTOL, atol=P3_ATOL, laplace=False)
    build_s = time.perf_counter() - start

    def solve_fn() -> tuple[np.ndarray, dict[int, str]]:
        out = laplace_batch(model, patients, fits, rtol=P3_RTOL, atol=P3_ATOL)
        sd = np.sqrt(np.array([np.diag(f.log_covariance) for f in out]))
        failures = {i: "the Hessian is not positive definite"
                    for i, f in enumerate(out) if not np.all(np.isfinite(sd[i]))}  # fmt: skip
        return sd, failures

    return build_s, solve_fn


def p3_laplace_step_s(
    observations: np.ndarray, fixed: list[dict[str, float]], repeats: int = 20
) -> float:
    """Median seconds of the Laplace kernel alone (exact Hessian at the MAP, on data already
    packed and on the device, result blocked): the marginal cost of ``laplace=True`` in a
    fit, without :func:`run_p3_laplace`'s packing of the patients again."""
    import jax
    import jax.numpy as jnp

    hl = _import_hemolab()
    from hemolab.calibrate import fit_map_batch
    from hemolab.calibrate._map import _prepare

    model = build_p3_model(hl)
    patients = p3_patients(hl, observations, fixed)
    fits = fit_map_batch(model, patients, rtol=P3_RTOL, atol=P3_ATOL, laplace=False)
    names, arrays, kernel, dev = _prepare(model, patients, None, P3_RTOL, P3_ATOL)
    phi = np.array(arrays.log_pop, dtype=np.float64)
    phi[: len(fits)] = np.log([[f.estimate[nm] for nm in names] for f in fits])
    phi_dev = jnp.asarray(phi)
    jax.block_until_ready(kernel.laplace(phi_dev, dev))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(kernel.laplace(phi_dev, dev))
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def run_p3_nuts(observations: np.ndarray, fixed: list[dict[str, float]]) -> dict[str, object]:
    """NUTS for P3's patient (4 chains x (1000 warmup + 1000 draws), NUTS's default tolerances):
    first call (compiles) and a second timed call, with the diagnostics."""
    hl = _import_hemolab()
    from hemolab.calibrate import fit_map_batch, sample_nuts

    model = build_p3_model(hl)
    patients = p3_patients(hl, observations[:1], fixed[:1])
    fits = fit_map_batch(model, patients, rtol=P3_RTOL, atol=P3_ATOL)
    out: dict[str, object] = {}
    for label, seed in (("first_call_s", 0), ("seconds", 1)):
        start = time.perf_counter()
        (post,) = sample_nuts(model, patients, chains=4, warmup=1000, draws=1000, seed=seed,
                              start=fits)  # fmt: skip
        out[label] = time.perf_counter() - start
        out.update(max_rhat=float(post.rhat.max()), min_ess=float(post.ess.min()),
                   divergences=post.divergences, mean_tree_steps=post.mean_tree_steps)  # fmt: skip
    return out


def p3_doses() -> object:
    """The P3 event dataset: 100 mg boluses into ``A`` at 0 and 504 h."""
    import pandas as pd

    return pd.DataFrame(
        {"ID": 1, "TIME": P3_DOSE_TIMES_H, "EVID": 1, "AMT": P1_DOSE_MG, "CMT": "A"}
    )


def _bolus_output_table(cm: object, dose_times: object, output_times: object) -> ActionTable:
    """The solver's action table of P1-style runs: 100 mg boluses into ``A``, then outputs.

    Built as ``tests/_actions.py`` builds engine tables (the contract of
    ``hemolab.solve.make_solve_fn``): at equal times the dose comes first (Circ does not
    jump at a dose, so pre/post is the same).
    """
    from hemolab.events import OP_BOLUS, OP_OUTPUT
    from hemolab.solve import ActionTable

    a_index = cm.model.state_names.index("A")  # type: ignore[attr-defined]
    rows = [(float(t), OP_BOLUS, a_index, P1_DOSE_MG, 1, k) for k, t in enumerate(dose_times)]  # type: ignore[call-overload]
    rows += [(float(t), OP_OUTPUT, i, 0.0, 2, i) for i, t in enumerate(output_times)]  # type: ignore[call-overload]
    rows.sort(key=lambda r: (r[0], r[4], r[5]))
    arr = np.array([r[:4] for r in rows], dtype=np.float64)
    return ActionTable(
        time=arr[None, :, 0],
        op=arr[None, :, 1].astype(np.int32),
        target=arr[None, :, 2].astype(np.int32),
        value=arr[None, :, 3],
        n_outputs=len(output_times),  # type: ignore[arg-type]
    )


def _timed(fn: Callable[[], object], repeats: int) -> tuple[float, list[float], object]:
    """First call apart (compilation), then ``repeats`` calls: ``(first_s, times, last)``."""
    start = time.perf_counter()
    last = fn()
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        last = fn()
        times.append(time.perf_counter() - start)
    return first, times, last


def _block(value: object) -> object:
    import jax

    return jax.block_until_ready(value)


def p3_building_blocks(
    observations: np.ndarray,
    fixed: list[dict[str, float]],
    truth: dict[str, float],
    circ_true: np.ndarray,
    *,
    repeats: int = 20,
) -> dict[str, object]:
    """Time the pieces a hemolab MAP fit will be made of (not a fit time).

    Measured at the fit's start (:data:`bench.problems.P3_START`) for patient 0 and for the
    whole batch (``observations`` has one row per patient):

    - ``forward_simulate_s``: one ``hemolab.simulate`` of patient 0 on the observation grid,
      from the model and dataset to NumPy (schedule building included);
    - ``forward_fn_s``: one call of the jitted pure solve function
      (``hemolab.solve.make_solve_fn``) of patient 0, to device arrays (blocked);
    - ``jacobian_s``: one jitted ``jax.jacfwd`` of patient 0's 15 residuals (12 data, 3
      prior, :func:`bench.problems.p3_residuals`) with respect to ``phi = log(Slope, MTT,
      Circ0)``, the data an argument of the compiled function;
    - ``jacobian_batch_s``: the same for every patient at once (three batched JVPs);
    - ``compile_s``: first calls minus steady calls, summed over the four;
    - accuracy: ``forward_max_rel_error`` (patient 0 at its ``truth`` vs the tight reference
      ``circ_true`` at the observation times) and ``jacobian_fd_max_abs_diff`` (vs central
      differences, step 1e-4).

    Returns
    -------
    dict
        The timings (medians of ``repeats``), ``*_min_s``, accuracies, ``n_patients`` and a
        ``note``.
    """
    hl = _import_hemolab()
    import jax
    import jax.numpy as jnp

    from hemolab.solve import make_solve_fn

    n = len(fixed)
    model = build_p1_model(hl)
    start = time.perf_counter()
    cm = hl.compile_model(model)
    build_s = time.perf_counter() - start
    doses = p3_doses()
    start_params = [{**row, **dict(zip(P3_FREE, P3_START.tolist(), strict=True))} for row in fixed]

    def simulate_one() -> np.ndarray:
        res = hl.simulate(
            cm, doses, params=start_params[0], grid=P3_OBS_TIMES_H, rtol=P3_RTOL, atol=P3_ATOL
        )
        return np.asarray(res.variable("Circ"), dtype=np.float64)

    sim_first, sim_times, _ = _timed(simulate_one, repeats)

    inputs_of = cm.inputs_from  # type: ignore[attr-defined]
    names = list(start_params[0])
    base = jnp.asarray(
        inputs_of({k: np.array([row[k] for row in start_params]) for k in names}, n=n)
    )
    columns = jnp.asarray([cm.model.inputs.index(name) for name in P3_FREE])  # type: ignore[attr-defined]
    circ_index = cm.model.state_names.index("Circ")  # type: ignore[attr-defined]
    solve = make_solve_fn(
        cm, _bolus_output_table(cm, P3_DOSE_TIMES_H, P3_OBS_TIMES_H), rtol=P3_RTOL, atol=P3_ATOL
    )
    log_median = jnp.log(jnp.asarray(P3_PRIOR_MEDIAN))

    def residuals(phi: jax.Array, base: jax.Array, log_obs: jax.Array) -> jax.Array:
        values, _ = solve(base.at[:, columns].set(jnp.exp(phi)))
        data = (log_obs - jnp.log(values[:, :, circ_index])) / P3_SIGMA
        prior = (phi - log_median) / P3_PRIOR_OMEGA
        return jnp.concatenate([data, prior], axis=1)

    def jacobian(phi: jax.Array, base: jax.Array, log_obs: jax.Array) -> jax.Array:
        """Per-patient Jacobians ``(N, 15, 3)``: one JVP per parameter, all patients at once
        (patients are independent, so a tangent along column k of every row is enough)."""
        tangents = jnp.broadcast_to(jnp.eye(3)[:, None, :], (3, *phi.shape))
        f = lambda p: residuals(p, base, log_obs)  # noqa: E731
        cols = jax.vmap(lambda v: jax.jvp(f, (phi,), (v,))[1])(tangents)
        return jnp.moveaxis(cols, 0, -1)

    forward_jit = jax.jit(lambda inputs: solve(inputs)[0])
    residuals_jit = jax.jit(residuals)
    jacobian_jit = jax.jit(jacobian)
    single_jac = jax.jit(
        lambda phi, base, log_obs: jax.jacfwd(lambda p: residuals(p[None], base, log_obs)[0])(phi)
    )
    phi0 = jnp.tile(jnp.log(jnp.asarray(P3_START)), (n, 1))
    log_obs = jnp.log(jnp.asarray(observations, dtype=jnp.float64))
    b0, o0 = base[:1], log_obs[:1]

    fwd_first, fwd_times, _ = _timed(lambda: _block(forward_jit(b0)), repeats)
    jac_first, jac_times, jac0 = _timed(lambda: _block(single_jac(phi0[0], b0, o0)), repeats)
    batch_first, batch_times, _ = _timed(
        lambda: _block(jacobian_jit(phi0, base, log_obs)), max(3, repeats // 4)
    )

    # accuracy: forward solve at the truth, Jacobian against central differences
    truth0 = jnp.log(jnp.asarray([truth[name] for name in P3_FREE]))
    circ_truth = np.asarray(solve(b0.at[:, columns].set(jnp.exp(truth0)[None]))[0])[0]
    forward_error = float(np.max(np.abs(circ_truth[:, circ_index] / circ_true - 1.0)))
    eps = 1e-4
    fd = np.stack(
        [
            (
                np.asarray(residuals_jit(phi0[:1] + eps * np.eye(3)[k], b0, o0))[0]
                - np.asarray(residuals_jit(phi0[:1] - eps * np.eye(3)[k], b0, o0))[0]
            )
            / (2 * eps)
            for k in range(3)
        ],
        axis=-1,
    )
    fd_diff = float(np.max(np.abs(np.asarray(jac0) - fd)))
    med = statistics.median
    blocks = {
        "forward_simulate_s": med(sim_times),
        "forward_simulate_min_s": min(sim_times),
        "forward_fn_s": med(fwd_times),
        "forward_fn_min_s": min(fwd_times),
        "jacobian_s": med(jac_times),
        "jacobian_min_s": min(jac_times),
        "jacobian_batch_s": med(batch_times),
        "jacobian_batch_min_s": min(batch_times),
        "n_patients": n,
        "compile_s": build_s
        + sum(
            max(first - med(times), 0.0)
            for first, times in (
                (sim_first, sim_times),
                (fwd_first, fwd_times),
                (jac_first, jac_times),
                (batch_first, batch_times),
            )
        ),
        "forward_max_rel_error": forward_error,
        "jacobian_fd_max_abs_diff": fd_diff,
        "note": (
            "building blocks of a fit, not fit times: one forward solve of patient 0 on the "
            "12 observation times (through hemolab.simulate, and as the jitted "
            "hemolab.solve.make_solve_fn), one jax.jacfwd of its 15 MAP residuals w.r.t. "
            "log(Slope, MTT, Circ0), and the same Jacobian for the whole batch"
        ),
    }
    return blocks


# -- P4 ------------------------------------------------------------------------------------


def p4_dataset(protocol: P4Protocol) -> object:
    """The P4 event dataset of one protocol (DATA-FORMATS §A).

    Six boluses (one row, ``II``/``ADDL``) and, with the rescue, ``EVID=2, EVENT=param,
    PARAM=rescue`` rows setting 1.5 and back to 1 at every switch before the end.
    """
    import pandas as pd

    rows: list[dict[str, object]] = [
        {
            "ID": 1,
            "TIME": 0.0,
            "EVID": 1,
            "AMT": protocol.dose_mg,
            "CMT": "A",
            "II": protocol.interval_h,
            "ADDL": len(protocol.dose_times_h) - 1,
        }
    ]
    for t, factor in protocol.rescue_switches_h():
        rows.append(
            {"ID": 1, "TIME": t, "EVID": 2, "EVENT": "param", "PARAM": "rescue", "VALUE": factor}
        )
    frame = pd.DataFrame(rows)
    return frame.sort_values("TIME", kind="stable").reset_index(drop=True)


def run_p4(
    params: dict[str, np.ndarray], protocols: list[P4Protocol]
) -> tuple[float, Callable[[], tuple[np.ndarray, list[dict[int, str]]]]]:
    """Build the P4 model and return ``(compile_s, solve_fn)`` evaluating every protocol.

    Parameters
    ----------
    params : dict of str to numpy.ndarray
        The P1 population (``CL, V, MTT, Circ0, Slope, gamma``, each ``(n,)``).
    protocols : list of bench.problems.P4Protocol
        The protocols; one evaluation each, in order.

    Returns
    -------
    compile_s : float
        Explicit model build (JIT on the first call is measured by ``bench/run.py``).
    solve_fn : callable
        ``solve_fn() -> (longest (K, n) in h, [failures of each protocol])``: per protocol the
        event dataset is built, the population simulated to the end of treatment with the
        crossing triggers (:data:`P4_CROSSING_METHOD`), and the longest episode computed.
    """
    hl = _import_hemolab()
    from bench.models import friberg_p4, p4_triggers

    start = time.perf_counter()
    compiled = hl.compile_model(friberg_p4())
    triggers = p4_triggers()
    compile_s = time.perf_counter() - start
    n = len(params["CL"])

    def evaluate(protocol: P4Protocol) -> tuple[np.ndarray, dict[int, str]]:
        t_end = protocol.t_end_h
        res = hl.simulate(
            compiled,
            p4_dataset(protocol),
            params=params,
            grid=[t_end],
            triggers=triggers,
            rtol=P4_RTOL,
            atol=P4_ATOL,
        )
        if float(res.time[0, -1]) != t_end:
            raise RuntimeError(f"last output at {res.time[0, -1]} h, expected {t_end} h")
        circ, t_down, max_below = (
            np.asarray(res.variable(name))[:, -1] for name in ("Circ", "TDOWN", "MAXBELOW")
        )
        return p4_longest_episode(t_down, max_below, circ, t_end), _failures(res)

    def solve_fn() -> tuple[np.ndarray, list[dict[int, str]]]:
        longest = np.empty((len(protocols), n))
        failures = []
        for k, protocol in enumerate(protocols):
            longest[k], fails = evaluate(protocol)
            failures.append(fails)
        return longest, failures

    return compile_s, solve_fn


P1_SENSITIVITY_PARAMETERS = ("CL", "MTT", "Circ0", "Slope")
"""The parameters with IIV in P1: forward sensitivities are taken with respect to these."""


def p1_sensitivities(
    params: dict[str, np.ndarray], grid: np.ndarray, *, repeats: int = 3
) -> dict[str, object]:
    """Cost of forward sensitivities on P1, relative to a plain solve of the same function.

    Both go through ``hemolab.solve.make_solve_fn`` (the pure function calibration and search
    differentiate), jitted, for the patients in ``params``: the plain solve returns Circ on
    the grid; the sensitivities are four JVPs (one per parameter of
    :data:`P1_SENSITIVITY_PARAMETERS`, each along that column for every patient: patients are
    independent), vmapped, i.e. dCirc/dθ for every patient and grid time. ``ratio`` is the
    median sensitivity time over the median plain time (BENCHMARKS.md asks for <= 5).
    ``fd_max_rel_diff`` checks the derivatives of patient 0 against central differences.
    """
    hl = _import_hemolab()
    import jax
    import jax.numpy as jnp

    from hemolab.solve import make_solve_fn, pinned_jit

    cm = hl.compile_model(build_p1_model(hl))
    circ = cm.model.state_names.index("Circ")  # type: ignore[attr-defined]
    table = _bolus_output_table(cm, P1_DOSE_TIMES_H, grid)
    # only Circ, as calibration asks for the observed variables only
    solve = make_solve_fn(cm, table, rtol=P1_RTOL, atol=P1_ATOL, out_vars=(circ,))
    n = len(next(iter(params.values())))
    inputs = jnp.asarray(cm.inputs_from(params, n=n))  # type: ignore[attr-defined]
    cols = [cm.model.inputs.index(name) for name in P1_SENSITIVITY_PARAMETERS]  # type: ignore[attr-defined]
    tangents = jnp.stack([jnp.zeros_like(inputs).at[:, c].set(1.0) for c in cols])

    plain = pinned_jit(lambda x: solve(x)[0][:, :, 0])
    sens = pinned_jit(
        lambda x: jax.vmap(lambda v: jax.jvp(lambda y: solve(y)[0][:, :, 0], (x,), (v,))[1])(
            tangents
        )
    )
    plain_first, plain_times, _ = _timed(lambda: _block(plain(inputs)), repeats)
    sens_first, sens_times, ds = _timed(lambda: _block(sens(inputs)), repeats)
    ds = np.asarray(ds)
    worst = 0.0
    x0 = inputs[:1]
    one = jax.jit(lambda x: solve(x)[0][:, :, 0])
    for k, c in enumerate(cols):
        h = 1e-6 * float(x0[0, c])
        up = np.asarray(one(x0.at[0, c].add(h)))[0]
        down = np.asarray(one(x0.at[0, c].add(-h)))[0]
        fd = (up - down) / (2 * h)
        scale = np.max(np.abs(fd)) + 1e-30
        worst = max(worst, float(np.max(np.abs(ds[k, 0] - fd)) / scale))
    med = statistics.median
    return {
        "n": n,
        "parameters": list(P1_SENSITIVITY_PARAMETERS),
        "plain_s": med(plain_times),
        "sensitivities_s": med(sens_times),
        "ratio": med(sens_times) / med(plain_times),
        "compile_s": max(plain_first - med(plain_times), 0.0)
        + max(sens_first - med(sens_times), 0.0),
        "fd_max_rel_diff": worst,
    }
