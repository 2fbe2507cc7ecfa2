"""Exact problem definitions of the P1-P4 benchmarks (BENCHMARKS.md).

Everything here is plain NumPy so that references, peers and hemolab all read the same
inputs. Nothing here imports hemolab, SciPy or JAX.

P1 -- Friberg population (one-compartment PK, Slope in L/mg):

    dA/dt    = -(CL/V) A                     Conc = A/V, Edrug = Slope Conc
    dProl/dt = kprol Prol (1 - Edrug) (Circ0/Circ)^gamma - ktr Prol
    dT1/dt   = ktr (Prol - T1), dT2/dt = ktr (T1 - T2), dT3/dt = ktr (T2 - T3)
    dCirc/dt = ktr (T3 - Circ)               ktr = kprol = 4/MTT

P2 -- Mackey-Glass batch:

    dx/dt = beta x(t - tau) / (1 + x(t - tau)^n) - gamma x,  gamma 0.1, n 10, tau 17

P3 -- MAP calibration of one P1 patient from 12 ANC observations over two cycles (Slope, MTT,
Circ0 free with the population's log-normal priors; CL, V, gamma fixed at the patient's
values), and a batch of 50 such patients. The synthetic data need a tight solve of the truth,
so they are made in :func:`bench.references.p3_data`; the noise draw and the objective live here.

P4 -- one protocol (dose, interval, growth-factor rescue) evaluated over 1,000 P1 patients:
dose intensity and P(grade-4 neutropenia). :class:`P4Protocol` holds the event times.

Population rule for N > 10,000
------------------------------
BENCHMARKS.md defines the population as the first N rows of
``default_rng(20261124).normal(0, omega, size=(10000, 4))``. For any N we draw
``default_rng(20261124).normal(0, omega, size=(N, 4))``: NumPy's ``Generator.normal`` fills
the array in C order from one stream, so the first 10,000 rows are bit-identical to the
10,000-row draw (checked for N = 1,000,000 with NumPy 2.4; :func:`p1_eta` re-checks it on
every call with N > 10,000 by comparing against the defining draw).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# -- P1 ------------------------------------------------------------------------------------

P1_SEED = 20261124
"""Seed of the P1 population draw."""
P1_DEFINING_ROWS = 10_000
"""Row count of the draw that defines the population (BENCHMARKS.md)."""
P1_OMEGA = float(np.sqrt(np.log(1.09)))
"""Standard deviation of every eta (CV 30 %)."""
P1_ETA_COLUMNS = ("CL", "MTT", "Circ0", "Slope")
"""Column order of the eta draw."""
P1_TYPICAL = {"CL": 36.0, "V": 30.0, "MTT": 125.0, "Circ0": 5.0, "Slope": 20.0, "gamma": 0.17}
"""Typical values: CL (L/h), V (L), MTT (h), Circ0 (1e9/L), Slope (L/mg), gamma (-)."""
P1_PARAMETER_NAMES = ("CL", "V", "MTT", "Circ0", "Slope", "gamma")
"""Keys of a P1 parameter dictionary, in this order."""
P1_DOSE_MG = 100.0
"""IV bolus amount (mg)."""
P1_DOSE_TIMES_H = np.arange(6, dtype=np.float64) * 504.0
"""Bolus times (h): 0, 504, ..., 2520 (6 cycles of 21 days)."""
P1_GRID_H = np.arange(127, dtype=np.float64) * 24.0
"""Output grid (h): 0, 24, ..., 3024 (127 points)."""
P1_RTOL = 1e-6
P1_ATOL = 1e-8
P1_HARD_PATIENT = 5358
"""Index of the patient that is always solved for the accuracy gate (``V0005358``)."""
P1_GATE_PATIENTS = 100
"""Patients 0..99 are checked on nadirs."""
P1_NADIR_GATE_REL = 1e-4
P1_HARD_GATE_REL = 1e-3


def p1_eta(n: int) -> np.ndarray:
    """Return the first ``n`` rows of the P1 eta draw.

    Parameters
    ----------
    n : int
        Number of patients, ``n >= 1``.

    Returns
    -------
    numpy.ndarray
        Shape ``(n, 4)``, columns :data:`P1_ETA_COLUMNS`.

    Raises
    ------
    ValueError
        If ``n < 1``, or if NumPy ever stops reproducing the defining 10,000 rows as the
        prefix of a larger draw (then the extension rule in the module docstring is void).
    """
    if n < 1:
        raise ValueError(f"population size must be >= 1, got {n}")
    rows = max(n, P1_DEFINING_ROWS)
    eta = np.random.default_rng(P1_SEED).normal(0.0, P1_OMEGA, size=(rows, 4))
    if rows > P1_DEFINING_ROWS:
        defining = np.random.default_rng(P1_SEED).normal(0.0, P1_OMEGA, size=(P1_DEFINING_ROWS, 4))
        if not np.array_equal(defining, eta[:P1_DEFINING_ROWS]):
            raise ValueError(
                "numpy.random.default_rng no longer gives the 10,000 defining rows as the prefix"
                f" of a {rows}-row draw; the N > 10,000 extension rule of bench/problems.py is void"
            )
    return eta[:n]


def p1_population(n: int) -> dict[str, np.ndarray]:
    """Return the parameters of the first ``n`` P1 patients.

    Parameters
    ----------
    n : int
        Population size (any ``n >= 1``; see the module docstring for ``n > 10,000``).

    Returns
    -------
    dict of str to numpy.ndarray
        Keys :data:`P1_PARAMETER_NAMES`, each a float64 array of shape ``(n,)``.
        ``V`` and ``gamma`` have no variability.

    Examples
    --------
    >>> pop = p1_population(1)
    >>> round(float(pop["CL"][0]), 2), round(float(pop["MTT"][0]), 2)
    (55.09, 81.9)
    """
    eta = p1_eta(n)
    params = {name: np.full(n, P1_TYPICAL[name]) for name in P1_PARAMETER_NAMES}
    for column, name in enumerate(P1_ETA_COLUMNS):
        params[name] = P1_TYPICAL[name] * np.exp(eta[:, column])
    return params


def p1_patient(i: int) -> dict[str, float]:
    """Return the parameters of P1 patient ``i`` (0-based; ``V0005358`` is ``i = 5358``).

    Parameters
    ----------
    i : int
        Patient index, ``i >= 0``; available whatever population size is benchmarked.

    Returns
    -------
    dict of str to float
        Keys :data:`P1_PARAMETER_NAMES`.
    """
    if i < 0:
        raise ValueError(f"patient index must be >= 0, got {i}")
    population = p1_population(i + 1)
    return {name: float(values[i]) for name, values in population.items()}


def p1_patient_rows(params: dict[str, np.ndarray]) -> list[dict[str, float]]:
    """Split a parameter dictionary of arrays into one dictionary of floats per patient."""
    n = len(params["CL"])
    return [{name: float(params[name][i]) for name in P1_PARAMETER_NAMES} for i in range(n)]


def p1_gate_indices(n: int) -> np.ndarray:
    """Return the patient indices whose nadirs are checked: ``0 .. min(n, 100) - 1``."""
    return np.arange(min(n, P1_GATE_PATIENTS))


# -- P2 ------------------------------------------------------------------------------------

P2_SEED = 17
P2_BATCH = 1000
P2_GAMMA = 0.1
P2_HILL = 10.0
P2_TAU = 17.0
P2_T_END = 1000.0
P2_GRID = np.arange(1001, dtype=np.float64)
"""Output grid: 0, 1, ..., 1000."""
P2_RTOL = 1e-6
P2_ATOL = 1e-8
P2_GATE_ITEMS = 10
"""Items 0..9 are checked."""
P2_GATE_T_END = 200.0
"""Only t <= 200 is checked (the system is chaotic)."""
P2_GATE_ABS = 1e-5


def p2_batch(n: int = P2_BATCH) -> dict[str, np.ndarray]:
    """Return the P2 batch: constant histories ``x0`` and production rates ``beta``.

    ``rng = default_rng(17)``; ``x0 = rng.uniform(0.2, 1.4, 1000)`` then
    ``beta = rng.uniform(0.18, 0.22, 1000)``; item 0 is replaced by ``(0.5, 0.2)``. The draw
    is always of 1000 items, so ``n <= 1000`` selects a prefix.

    Parameters
    ----------
    n : int, default 1000
        Number of items, ``1 <= n <= 1000``.

    Returns
    -------
    dict of str to numpy.ndarray
        ``{"x0": (n,), "beta": (n,)}``.
    """
    if not 1 <= n <= P2_BATCH:
        raise ValueError(f"P2 batch size must be in 1..{P2_BATCH}, got {n}")
    rng = np.random.default_rng(P2_SEED)
    x0 = rng.uniform(0.2, 1.4, P2_BATCH)
    beta = rng.uniform(0.18, 0.22, P2_BATCH)
    x0[0], beta[0] = 0.5, 0.2
    return {"x0": x0[:n], "beta": beta[:n]}


# -- P3 ------------------------------------------------------------------------------------

P3_SEED = 20261125
"""Seed of the observation noise: ``default_rng(P3_SEED).normal(0, 1, size=(n, 12))``."""
P3_PATIENT = 0
"""The single-fit truth is P1 patient 0 (CL 55.09, MTT 81.90, Circ0 4.974, Slope 15.50)."""
P3_BATCH = 50
"""The batch benchmark fits P1 patients 0..49, patient ``i`` with noise row ``i``."""
P3_DOSE_TIMES_H = P1_DOSE_TIMES_H[:2].copy()
"""Two cycles of P1 dosing: 100 mg at 0 and 504 h."""
P3_OBS_DAYS = (0, 4, 7, 10, 14, 18, 21, 25, 28, 31, 35, 41)
"""Observation days: a baseline, then about twice a week over both cycles (day 21 is the
pre-dose count of cycle 2, reported before the dose)."""
P3_OBS_TIMES_H = np.asarray(P3_OBS_DAYS, dtype=np.float64) * 24.0
P3_SIGMA = 0.15
"""Log-normal observation error: ``log y = log Circ + N(0, 0.15**2)``."""
P3_FREE = ("Slope", "MTT", "Circ0")
"""Estimated parameters, in this order (as ``phi = log(theta)``)."""
P3_PRIOR_MEDIAN = np.array([P1_TYPICAL[name] for name in P3_FREE])
"""Prior medians: the typical values (Slope 20, MTT 125, Circ0 5)."""
P3_PRIOR_OMEGA = P1_OMEGA
"""Prior standard deviation of each ``log(theta)``: sqrt(ln 1.09), as in the population."""
P3_START = P3_PRIOR_MEDIAN.copy()
"""Start of every fit: the prior medians."""
P3_RTOL = P1_RTOL
P3_ATOL = P1_ATOL
P3_MAP_GATE_REL = 1e-3
"""A fit counts as converged when its parameters are within 1e-3 relative of the tight MAP."""


def p3_noise(n: int = P3_BATCH) -> np.ndarray:
    """Return the standard-normal noise rows of the first ``n`` P3 patients.

    ``default_rng(P3_SEED).normal(0, 1, size=(max(n, 50), 12))[:n]``: patient ``i`` always
    gets row ``i``, whatever ``n``.
    """
    if n < 1:
        raise ValueError(f"P3 batch size must be >= 1, got {n}")
    rows = max(n, P3_BATCH)
    return np.random.default_rng(P3_SEED).normal(0.0, 1.0, size=(rows, len(P3_OBS_DAYS)))[:n]


def p3_observe(circ_true: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Apply the 15 % log-normal error: ``y = Circ * exp(0.15 * noise)`` (same shapes)."""
    return np.asarray(circ_true, dtype=np.float64) * np.exp(P3_SIGMA * np.asarray(noise))


def p3_residuals(log_pred: np.ndarray, log_obs: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Return the 15 MAP residuals of one patient: 12 data terms, then 3 prior terms.

    ``(log y - log Circ(phi)) / sigma`` and ``(phi - log prior median) / omega``; half their
    sum of squares is the negative log posterior in ``phi = log(Slope, MTT, Circ0)`` up to a
    constant.

    Parameters
    ----------
    log_pred : numpy.ndarray
        Model ``log Circ`` at :data:`P3_OBS_TIMES_H`, shape ``(12,)``.
    log_obs : numpy.ndarray
        Observed ``log y``, shape ``(12,)``.
    phi : numpy.ndarray
        ``log`` of :data:`P3_FREE`, shape ``(3,)``.
    """
    data = (np.asarray(log_obs) - np.asarray(log_pred)) / P3_SIGMA
    prior = (np.asarray(phi) - np.log(P3_PRIOR_MEDIAN)) / P3_PRIOR_OMEGA
    return np.concatenate([data, prior])


def p3_patient_params(phi: np.ndarray, fixed: dict[str, float]) -> dict[str, float]:
    """Full P1 parameter dictionary from ``phi = log(Slope, MTT, Circ0)`` and the fixed rest."""
    params = dict(fixed)
    params.update({name: float(np.exp(v)) for name, v in zip(P3_FREE, phi, strict=True)})
    return params


# -- P4 ------------------------------------------------------------------------------------

P4_PATIENTS = 1000
"""The P1 population's first 1,000 rows."""
P4_CYCLES = 6
P4_RESCUE_FACTOR = 1.5
"""The rescue multiplies kprol (proliferation, not the transit rate ktr) by 1.5."""
P4_RESCUE_DAYS = 10.0
"""The rescue lasts 10 days from its start day, after each dose."""
P4_THRESHOLD = 0.5
"""Grade-4 neutropenia: Circ < 0.5 (1e9/L) ..."""
P4_GRADE4_MIN_H = 168.0
"""... lasting more than 7 days (168 h)."""
P4_P_MAX = 0.10
"""Constraint: P(grade 4) <= 10 %."""
P4_SEED = 20261126
"""Seed of the benchmark's protocol draw (:func:`p4_protocols`)."""
P4_PROTOCOLS = 5
P4_RTOL = P1_RTOL
P4_ATOL = P1_ATOL
P4_REFERENCE_PATIENTS = 100
"""Patients 0..99 of every protocol are checked against the tight reference's crossings."""
P4_DURATION_GATE_H = 0.05
"""Longest-episode durations within 0.05 h (3 min) of the reference."""
P4_PROBABILITY_TOL = 0.002
"""hemolab and the peer must agree on P(grade 4) within 0.002 (2 of 1,000 patients, which
can sit within solver error of the 168-h cut)."""


@dataclass(frozen=True)
class P4Protocol:
    """One P4 protocol: dose, interval, growth-factor rescue.

    Six cycles: boluses of ``dose_mg`` at ``k * interval_d`` days, ``k = 0..5``; the
    treatment ends at ``6 * interval_d`` days (the end of the last cycle, also the end of the
    simulation). With ``rescue``, kprol is multiplied by 1.5 on
    ``[t_k + rescue_start_d, t_k + rescue_start_d + 10 d)`` after every dose ``t_k`` (cut at
    the end of treatment; with intervals >= 14 d windows never overlap).
    """

    dose_mg: float
    interval_d: int
    rescue: bool
    rescue_start_d: int

    def __post_init__(self) -> None:
        if not (50.0 <= self.dose_mg <= 150.0 and 14 <= self.interval_d <= 28):
            raise ValueError(f"protocol outside dose 50-150 mg, interval 14-28 d: {self}")
        if not 1 <= self.rescue_start_d <= 7:
            raise ValueError(f"rescue start day must be 1..7, got {self.rescue_start_d}")

    @property
    def interval_h(self) -> float:
        return 24.0 * self.interval_d

    @property
    def dose_times_h(self) -> np.ndarray:
        """Bolus times (h)."""
        return np.arange(P4_CYCLES, dtype=np.float64) * self.interval_h

    @property
    def t_end_h(self) -> float:
        """End of treatment and of the simulation (h)."""
        return P4_CYCLES * self.interval_h

    def rescue_switches_h(self) -> list[tuple[float, float]]:
        """``(time, kprol factor from then on)`` of every rescue switch before the end."""
        if not self.rescue:
            return []
        switches = []
        for t_dose in self.dose_times_h.tolist():
            on = t_dose + 24.0 * self.rescue_start_d
            switches += [(on, P4_RESCUE_FACTOR), (on + 24.0 * P4_RESCUE_DAYS, 1.0)]
        return [(t, f) for t, f in switches if t < self.t_end_h]

    @property
    def dose_intensity(self) -> float:
        """Objective: total dose / total treatment time (mg/week) = dose * 7 / interval."""
        return P4_CYCLES * self.dose_mg / (self.t_end_h / 168.0)

    def as_dict(self) -> dict[str, float | int | bool]:
        return {
            "dose_mg": self.dose_mg,
            "interval_d": self.interval_d,
            "rescue": self.rescue,
            "rescue_start_d": self.rescue_start_d,
            "dose_intensity_mg_per_week": self.dose_intensity,
        }


def p4_protocols(k: int = P4_PROTOCOLS) -> list[P4Protocol]:
    """Return the benchmark's fixed protocol set (the first ``k`` of it).

    Three anchors, then draws: protocol 0 is P1's regimen (100 mg every 21 days, no rescue);
    1 and 2 are the most dose-intense corner (150 mg every 14 days) without and with a rescue
    from day 3, so that the constraint is violated and then met; the others come from ``rng
    = default_rng(P4_SEED)``, drawn in turn per protocol as a random search would: ``dose =
    rng.uniform(50, 150)``, ``interval = rng.integers(14, 29)``, ``rescue = rng.random() <
    0.5``, ``start = rng.integers(1, 8)`` (drawn even when the rescue is off, so protocol
    ``j`` does not depend on ``k``).
    """
    protocols = [
        P4Protocol(P1_DOSE_MG, 21, False, 1),
        P4Protocol(150.0, 14, False, 3),
        P4Protocol(150.0, 14, True, 3),
    ]
    rng = np.random.default_rng(P4_SEED)
    while len(protocols) < k:
        dose = float(rng.uniform(50.0, 150.0))
        interval = int(rng.integers(14, 29))
        rescue = bool(rng.random() < 0.5)
        start = int(rng.integers(1, 8))
        protocols.append(P4Protocol(dose, interval, rescue, start))
    return protocols[:k]


def p4_longest_episode(
    t_down: np.ndarray, max_below: np.ndarray, circ_end: np.ndarray, t_end: float
) -> np.ndarray:
    """Longest Circ < 0.5 episode (h) from crossing bookkeeping at the end of treatment.

    ``max_below`` is the longest episode closed by an upward crossing, ``t_down`` the time of
    the last downward crossing; an episode still open at ``t_end`` (``circ_end < 0.5``) counts
    up to ``t_end``. An episode that runs across a dose counts whole.
    """
    open_episode = np.where(np.asarray(circ_end) < P4_THRESHOLD, t_end - np.asarray(t_down), 0.0)
    return np.maximum(np.asarray(max_below, dtype=np.float64), open_episode)


def p4_grade4(longest_h: np.ndarray) -> np.ndarray:
    """Whether each patient had grade-4 neutropenia (an episode longer than 168 h)."""
    return np.asarray(longest_h) > P4_GRADE4_MIN_H


def p4_episodes_from_grid(
    grid: np.ndarray, circ: np.ndarray, t_end: float | None = None
) -> np.ndarray:
    """Brute-force longest episode per row: grid points below 0.5, each worth one spacing.

    For a uniform ``grid`` of spacing ``h`` this is within ``h`` of the exact longest episode
    (no root finding): the independent check of the crossing-based durations.
    """
    grid = np.asarray(grid, dtype=np.float64)
    h = float(grid[1] - grid[0])
    below = np.atleast_2d(np.asarray(circ)) < P4_THRESHOLD
    if t_end is not None:
        below &= grid[None, :] < t_end
    longest = np.zeros(below.shape[0])
    for i, row in enumerate(below):
        edges = np.diff(np.concatenate([[0], row.astype(np.int8), [0]]))
        starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        if starts.size:
            longest[i] = h * float((stops - starts).max())
    return longest
