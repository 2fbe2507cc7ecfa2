"""Transfusion and phlebotomy end to end on a small blood-volume model (DATA-FORMATS §A)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import hemolab as hl
from tests._models import RED_CELL_LIFESPAN_H, blood_volume_model

L_H = RED_CELL_LIFESPAN_H  # red-cell lifespan (h)


@pytest.fixture(scope="module")
def blood_model() -> hl.Model:
    return blood_volume_model("blood_volume_test")


def test_one_rbc_unit_raises_hb_by_about_1_g_dl_at_24h(blood_model):
    """MODELS.md §7c: 55 g Hb into 49 dL → +1.12 g/dL once volume has re-equilibrated."""
    ev = pd.DataFrame(
        {"ID": [1], "TIME": [0.0], "EVID": [2], "EVENT": ["transfusion"], "PRODUCT": ["RBC"]}
    )
    res = hl.simulate(blood_model, ev, grid=[0.0, 1.0, 24.0], rtol=1e-10, atol=1e-10)
    hb = res.variable("Hb")[0]
    assert hb[2] - 14.0 == pytest.approx(55 / 49, rel=0.05)  # volume 98 % re-equilibrated
    # mass balance: the unit's 55 g entered over 2 h and decay with the lifespan (closed form)
    excess_2h = 27.5 * L_H * (1 - np.exp(-2 / L_H))
    expected = 686.0 + excess_2h * np.exp(-22 / L_H)
    assert res.variable("Hbm")[0, 2] == pytest.approx(expected, rel=1e-9)
    assert res.variable("BV")[0, 2] == pytest.approx(4900.0, rel=2e-3)
    events = res.events.to_pandas()
    assert list(events["kind"]) == ["transfusion"] and events["product"][0] == "RBC"


def test_two_units_raise_hb_by_about_2(blood_model):
    """MODELS.md §7 clinical target 2: 2 units PRBC → ≈ +2 g/dL (±0.5)."""
    ev = pd.DataFrame(
        {
            "ID": [1],
            "TIME": [0.0],
            "EVID": [2],
            "EVENT": ["transfusion"],
            "PRODUCT": ["RBC"],
            "UNITS": [2],
        }
    )
    res = hl.simulate(blood_model, ev, grid=[24.0])
    assert res.variable("Hb")[0, 0] - 14.0 == pytest.approx(2.0, abs=0.5)


def test_phlebotomy_keeps_concentrations_then_dilutes(blood_model):
    ev = pd.DataFrame(
        {"ID": [1], "TIME": [1.0], "EVID": [2], "EVENT": ["phlebotomy"], "VOLUME": [500.0]}
    )
    res = hl.simulate(blood_model, ev, grid=[1.0, 48.0], rtol=1e-10, atol=1e-10)
    hb = res.variable("Hb")[0]
    hbm = res.variable("Hbm")[0]
    hbm_before = 686.0  # at steady state
    assert hbm[0] == pytest.approx(hbm_before * (1 - 500 / 4900), rel=1e-9)
    assert hb[0] == pytest.approx(14.0, rel=1e-9)  # same concentration at that instant
    assert hb[1] < 13.0  # plasma refills: dilution
