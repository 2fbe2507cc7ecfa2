"""An ABO-incompatible transfusion modelled (issue 8): the unit's red cells enter and are
destroyed at ``k_lysis``; its plasma stays. Checked in closed form and against a compatible
unit."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import hemolab as hl
from hemolab.events import read_events
from hemolab.model import haemolysis
from hemolab.patients import Demographics
from tests._models import RED_CELL_LIFESPAN_H, blood_volume_model

L_H = RED_CELL_LIFESPAN_H  # red-cell lifespan (h)


@pytest.fixture(scope="module")
def blood_model() -> hl.Model:
    return blood_volume_model("blood_volume_lysis_test")


PATIENT = {"p1": Demographics(sex="male", age=60.0, abo="O", rhd="POS")}
UNIT = pd.DataFrame(
    [{"ID": "p1", "TIME": 0.0, "EVID": 2, "EVENT": "transfusion", "PRODUCT": "RBC", "ABO": "A",
      "RHD": "POS"}]
)  # fmt: skip
GRID = [0.0, 1.0, 2.0, 4.0, 8.0, 24.0]


def _incompatible(model: hl.Model):
    with pytest.warns(hl.HemolabWarning, match="accepted to be modelled"):
        return read_events(UNIT, model=model, patients=PATIENT, allow_incompatible=True)


def test_incompatible_cells_are_destroyed_in_closed_form(blood_model) -> None:
    model = haemolysis(blood_model, half_life_h=1.0)
    res = hl.simulate(model, _incompatible(model), grid=GRID, rtol=1e-10, atol=1e-10)
    k, r, dur = math.log(2), 55.0 / 2.0, 2.0  # 55 g of Hb over the default 2 h
    t = np.asarray(GRID)
    during = r / k * (1 - np.exp(-k * t))
    after = r / k * (1 - np.exp(-k * dur)) * np.exp(-k * (t - dur))
    want = np.where(t <= dur, during, after)
    np.testing.assert_allclose(res.variable("lysis_Hbm")[0], want, rtol=1e-7, atol=1e-9)
    compatible = hl.simulate(blood_model, UNIT.assign(ABO="O"), grid=GRID, rtol=1e-10, atol=1e-10)
    hb_c, hb_i = compatible.variable("Hb")[0], res.variable("Hb")[0]
    assert hb_c[-1] - 14.0 == pytest.approx(55 / 49, rel=0.05)  # the unit's 1 g/dL
    assert abs(hb_i[-1] - 14.0) < 0.02  # destroyed: back at baseline once volume settles


def test_a_very_slow_lysis_is_a_compatible_unit(blood_model) -> None:
    model = haemolysis(blood_model, half_life_h=1e12)
    res = hl.simulate(model, _incompatible(model), grid=GRID, rtol=1e-10, atol=1e-10)
    compatible = hl.simulate(blood_model, UNIT.assign(ABO="O"), grid=GRID, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(res.variable("Hb")[0], compatible.variable("Hb")[0], rtol=1e-9)


def test_refused_without_a_model_of_the_reaction(blood_model) -> None:
    with pytest.raises(
        hl.DatasetError, match=r"allow_incompatible with hemolab\.model\.haemolysis"
    ):
        read_events(UNIT, model=blood_model, patients=PATIENT)
    with pytest.raises(hl.ScheduleError, match="needs a model that destroys it"):
        hl.simulate(blood_model, _incompatible(blood_model), grid=GRID)
    with pytest.raises(hl.ModelError, match="already models haemolysis"):
        haemolysis(haemolysis(blood_model))
    with pytest.raises(hl.ModelError, match="takes no blood products"):
        haemolysis(hl.get_model("mackey_glass"))
