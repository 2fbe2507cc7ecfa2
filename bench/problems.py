"""Exact problem definitions of the P1 and P2 benchmarks (BENCHMARKS.md).

Everything here is plain NumPy so that references, peers and hemolab all read the same
inputs. Nothing here imports hemolab, SciPy or JAX.

P1 -- Friberg population (one-compartment PK, Slope in L/mg):

    dA/dt    = -(CL/V) A                     Conc = A/V, Edrug = Slope Conc
    dProl/dt = kprol Prol (1 - Edrug) (Circ0/Circ)^gamma - ktr Prol
    dT1/dt   = ktr (Prol - T1), dT2/dt = ktr (T1 - T2), dT3/dt = ktr (T2 - T3)
    dCirc/dt = ktr (T3 - Circ)               ktr = kprol = 4/MTT

P2 -- Mackey-Glass batch:

    dx/dt = beta x(t - tau) / (1 + x(t - tau)^n) - gamma x,  gamma 0.1, n 10, tau 17

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
