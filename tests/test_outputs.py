"""``simulate(outputs=[...])``: a selection of variables gives the same numbers as the full run.

The selection only changes which dense outputs are formed (for states alone, the steps form
dense-output coefficients for the selected columns only), never the steps taken, so values
agree with the full run to rounding (1e-13 relative), for ODE and delay models, closed-form
(linear) states, observables and the stiff stepper.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import hemolab as hl
from hemolab.library import get_model, typical_run


def _run(name: str, outputs: list[str] | None, **kw: object) -> hl.Results:
    run = typical_run(name)
    return hl.simulate(
        get_model(name),
        run.events(),
        params=run.params,
        t_end=run.t_end,
        dt=run.dt,
        outputs=outputs,
        **kw,  # type: ignore[arg-type]
    )


def _same(full: hl.Results, part: hl.Results, names: list[str]) -> None:
    assert list(part.variables) == names
    assert part.values.shape == (*full.values.shape[:2], len(names))
    for v in names:
        a, b = full.variable(v), part.variable(v)
        np.testing.assert_allclose(b, a, rtol=1e-13, atol=1e-300, err_msg=v)
        assert np.isfinite(b).all()


@pytest.mark.parametrize(
    ("model", "pick"),
    [
        ("friberg_docetaxel", ["Circ", "Prol"]),  # log states only: dense columns selected
        ("friberg_docetaxel", ["ANC", "Circ"]),  # an observable first: every state is formed
        ("mackey_glass", ["x"]),  # a delay model keeps every column for its history
    ],
)
def test_selection_matches_full_run(model: str, pick: list[str]) -> None:
    full = _run(model, None)
    names = [v for v in full.variables if v in pick]
    assert len(names) == len(pick), f"{pick} not all in {full.variables}"
    _same(full, _run(model, pick), pick)


def test_closed_form_state_selected_alone_and_with_others() -> None:
    """A linear (PK) state is formed from its closed form, not the dense output."""
    m = hl.Model(
        "pk_pd",
        time_unit="h",
        states=[
            hl.State("A", "-CL/V*A", initial=0.0),
            hl.State("R", "kin*(1 - A/V/(EC50 + A/V)) - kout*R", initial=1.0, positive=True),
        ],
        parameters=[
            hl.Parameter(k, v) for k, v in dict(CL=2.0, V=10.0, kin=0.1, kout=0.1, EC50=3.0).items()
        ],
    )
    doses = pd.DataFrame({"ID": 1, "TIME": [0.0, 12.0], "EVID": 1, "AMT": 100.0, "CMT": "A"})
    cm = hl.compile_model(m)
    assert cm.linear_states, "A should be solved in closed form"
    kw = {"t_end": 48.0, "dt": 0.7, "params": {"CL": np.array([1.0, 2.0, 3.0])}}
    full = hl.simulate(cm, doses, **kw)  # type: ignore[arg-type]
    for pick in (["A"], ["R", "A"], ["R"]):
        _same(full, hl.simulate(cm, doses, outputs=pick, **kw), pick)  # type: ignore[arg-type]


def test_selection_with_the_stiff_stepper() -> None:
    full = _run("friberg_docetaxel", None, solver="rodas")
    _same(full, _run("friberg_docetaxel", ["Circ"], solver="rodas"), ["Circ"])


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        (["Circ", "Neutrophils"], "no variable 'Neutrophils'; its states and observables are"),
        ([], "outputs is empty"),
        (["Circ", "Circ"], "'Circ' given more than once"),
    ],
)
def test_bad_selection_names_what_is_wrong(outputs: list[str], message: str) -> None:
    with pytest.raises(hl.HemolabError, match=message):
        _run("friberg_docetaxel", outputs)


def test_a_single_name_string_is_one_variable() -> None:
    part = _run("friberg_docetaxel", "Circ")  # type: ignore[arg-type]
    assert list(part.variables) == ["Circ"]
