"""Test configuration: float64 everywhere, seeded keys, shared compiled models."""

from __future__ import annotations

import os
import tempfile

import jax
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)
# audit keys and chain heads of the tests' stores go to a folder of this run, not the home
os.environ.setdefault("HEMOLAB_AUDIT_DIR", tempfile.mkdtemp(prefix="hemolab-audit-keys-"))

import hemolab as hl  # noqa: E402
from tests import _fuzz_counts  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    # the fuzz tests' input counts, summed over xdist workers (design note 031)
    _fuzz_counts.register(config)


@pytest.fixture(scope="session")
def rng() -> np.random.Generator:
    return np.random.default_rng(20261125)


@pytest.fixture(scope="session")
def p1_model() -> hl.Model:
    from bench.models import friberg_p1

    return friberg_p1()


@pytest.fixture(scope="session")
def p1_compiled(p1_model: hl.Model) -> hl.CompiledModel:
    from hemolab._simulate import get_compiled

    return get_compiled(p1_model)


@pytest.fixture(scope="session")
def mg_model() -> hl.Model:
    return hl.get_model("mackey_glass")


@pytest.fixture(scope="session")
def one_cmt() -> hl.Model:
    """One-compartment PK with a depot: the hand-computable reference for every EVID."""
    return hl.Model(
        "one_cmt",
        time_unit="h",
        states=[
            hl.State("depot", "-ka*depot", unit="mg", bioavailability="F1", lag="ALAG"),
            hl.State(
                "central",
                "ka*depot - (CL/V)*central",
                unit="mg",
                infusion_rate="R2",
                infusion_duration="D2",
            ),
        ],
        parameters=[
            hl.Parameter("ka", 1.0, unit="h-1"),
            hl.Parameter("CL", 2.0, unit="L/h"),
            hl.Parameter("V", 10.0, unit="L"),
            hl.Parameter("F1", 1.0),
            hl.Parameter("ALAG", 0.0, unit="h"),
            hl.Parameter("R2", 5.0, unit="mg/h"),
            hl.Parameter("D2", 2.0, unit="h"),
        ],
        covariates=[hl.Covariate("WT", default=70.0, unit="kg")],
        observables=[hl.Observable("Cc", "central/V", unit="mg/L")],
    )


# A test whose worker dies (a segfault in native code) runs once more in a fresh worker; a
# second crash fails it. Ordinary failures are never rerun. Design note 016.
_CRASHED: set[str] = set()


def pytest_handlecrashitem(crashitem: str, report: pytest.TestReport, sched) -> None:
    if crashitem in _CRASHED or not hasattr(sched, "mark_test_pending"):
        return
    try:
        sched.mark_test_pending(crashitem)
    except NotImplementedError:
        return
    _CRASHED.add(crashitem)
    report.outcome = "rerun"  # type: ignore[assignment]


def pytest_report_teststatus(report: pytest.TestReport):
    if report.outcome == "rerun":
        return "rerun", "R", ("RERUN (worker crashed)", {"yellow": True})
    return None


# XLA:CPU keeps about three memory mappings per compiled executable; a worker that compiles
# every test's functions passed Linux's vm.max_map_count (65,530) halfway through the suite
# and XLA segfaulted in its compiler. Past this many mappings, a module's compiled functions
# are released when it ends (hemolab.clear_caches; design note 016).
_MAP_BUDGET = 24_000


@pytest.fixture(autouse=True, scope="module")
def _bounded_memory_maps():
    yield
    count = hl._caches.memory_map_count()
    if count is not None and count > _MAP_BUDGET:
        hl.clear_caches()
