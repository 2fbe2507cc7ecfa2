"""The model library (list, a model's equations and parameters) and the interactive
simulation: a library model's parameters and dose from sliders, solved in the server process
with the compiled model kept, on a fixed grid and dose count (no recompiling per update)."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from hemolab.web._context import Analyst, Viewer, web

router = APIRouter()

GRID_POINTS = 301
N_DOSES = 4
# t_end per model (its time unit), and a dose: (compartment, amount, unit, interval, duration)
T_END = {"friberg_docetaxel": 2016.0, "friberg_docetaxel_kloft2006": 2016.0,
         "friberg_paclitaxel": 2016.0, "friberg_platelets": 2016.0, "mackey_glass": 300.0,
         "marrow_failure_hb": 365.0, "agoram_darbepoetin": 84.0, "michor_cml": 730.0,
         "romiplostim_wang2010": 672.0, "colijn_mackey": 200.0}  # fmt: skip
DOSES = {
    "friberg_docetaxel": ("A1", 180.0, "mg", 504.0, 1.0),
    "friberg_docetaxel_kloft2006": ("A1", 180.0, "mg", 504.0, 1.0),
    "friberg_paclitaxel": ("A1", 315.0, "mg", 504.0, 3.0),
}


def _model(name: str) -> Any:
    from hemolab.library import get_model, list_models

    if name not in list_models():
        raise HTTPException(404, "no such model in the library")
    return get_model(name)


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def model_doc(model: Any) -> dict[str, Any]:
    """A model for the web: equations, parameters (units, bounds, IIV), observables."""
    cv = model.variability.cv_percent() if model.variability is not None else {}
    dose = DOSES.get(model.name)
    keys = ("cmt", "amount", "unit", "interval", "duration")
    states = [{"name": s.name, "ddt": str(s.ddt), "unit": s.unit, "initial": str(s.initial),
               "history": None if s.history is None else str(s.history)}
              for s in model.states]  # fmt: skip
    parameters = [{"name": p.name, "value": p.value, "unit": p.unit,
                   "lower": _finite(p.bounds[0]), "upper": _finite(p.bounds[1]),
                   "iiv_cv_percent": cv.get(p.name), "description": p.description}
                  for p in model.parameters]  # fmt: skip
    covariates = [{"name": c.name, "default": c.default, "unit": c.unit,
                   "description": c.description} for c in model.covariates]  # fmt: skip
    observables = [{"name": o.name, "expr": str(o.expr), "unit": o.unit}
                   for o in model.observables]  # fmt: skip
    return {
        "name": model.name,
        "time_unit": model.time_unit,
        "citation": model.citation,
        "description": model.description,
        "has_delays": model.has_delays,
        "assignments": [{"name": k, "expr": str(v)} for k, v in model.assignments.items()],
        "states": states,
        "parameters": parameters,
        "covariates": covariates,
        "observables": observables,
        "variability": None if model.variability is None else model.variability.source,
        "t_end": T_END.get(model.name, 100.0),
        "dose": None if dose is None else dict(zip(keys, dose, strict=True)),
    }


@router.get("/api/models", summary="The model library")
def models(session: Viewer) -> list[dict[str, Any]]:
    from hemolab.library import get_model, list_models

    return [{"name": n, "time_unit": (m := get_model(n)).time_unit, "citation": m.citation,
             "description": m.description, "states": len(m.states),
             "parameters": len(m.parameters)} for n in list_models()]  # fmt: skip


@router.get("/api/models/{name}", summary="A model: equations, parameters with units")
def model(name: str, session: Viewer) -> dict[str, Any]:
    return model_doc(_model(name))


@router.get("/models", include_in_schema=False)
def models_page(request: Request, session: Viewer) -> Response:
    return web(request).templates.TemplateResponse(
        request, "models.html", {"session": session, "models": models(session)}
    )


@router.get("/models/{name}", include_in_schema=False)
def model_page(name: str, request: Request, session: Viewer) -> Response:
    return web(request).templates.TemplateResponse(
        request, "model.html", {"session": session, "m": model(name, session)}
    )


@router.get("/simulate", include_in_schema=False)
def simulate_page(request: Request, session: Analyst) -> Response:
    from hemolab.library import list_models

    return web(request).templates.TemplateResponse(
        request, "simulate.html", {"session": session, "models": list_models()}
    )


class Dose(BaseModel):
    amount: float = Field(ge=0, le=1e6)
    interval: float = Field(gt=0, le=1e5)


class SimulateRequest(BaseModel):
    model: str = Field(max_length=100)
    params: dict[str, float] = Field(default_factory=dict, max_length=200)
    dose: Dose | None = None
    t_end: float | None = Field(default=None, gt=0, le=1e6)


@router.post("/api/simulate", summary="Simulate a library model (typical patient)")
def simulate(body: SimulateRequest, request: Request, session: Analyst) -> dict[str, Any]:
    from hemolab._simulate import get_compiled, simulate as run

    mdl = _model(body.model)
    bounds = {p.name: p.bounds for p in mdl.parameters}
    for name, value in body.params.items():
        if name not in bounds:
            raise HTTPException(422, f"{mdl.name} has no parameter {name!r}"[:200])
        lo, hi = bounds[name]
        if not (math.isfinite(value) and lo <= value <= hi):
            raise HTTPException(422, f"{name} must be within [{lo:g}, {hi:g}]")
    state = web(request)
    with state.compile_lock:  # once per model per server process, kept
        cm = state.compiled.get(mdl.name)
        if cm is None:
            cm = state.compiled[mdl.name] = get_compiled(mdl)
    t_end = body.t_end or T_END.get(mdl.name, 100.0)
    grid = np.linspace(0.0, t_end, GRID_POINTS)
    events = None
    if body.dose is not None and mdl.name in DOSES:
        import pandas as pd

        cmt, _, _, _, duration = DOSES[mdl.name]
        events = pd.DataFrame({"ID": 1, "TIME": [k * body.dose.interval for k in range(N_DOSES)],
                               "EVID": 1, "CMT": cmt, "AMT": body.dose.amount,
                               "DUR": duration})  # fmt: skip
    started = time.perf_counter()
    res = run(cm, events, params=body.params, grid=grid, rtol=1e-6, atol=1e-8)
    elapsed = time.perf_counter() - started
    names = list(mdl.observable_names) + list(mdl.state_names)
    times = res.time[0]
    keep = ~np.isnan(times)
    series = {n: [None if not math.isfinite(v) else float(v) for v in res.variable(n)[0][keep]]
              for n in names}  # fmt: skip
    units = {o.name: o.unit for o in mdl.observables} | {s.name: s.unit for s in mdl.states}
    return {"model": mdl.name, "time_unit": mdl.time_unit, "time": times[keep].tolist(),
            "series": series, "units": units, "status": res.status_labels[0],
            "elapsed_ms": round(1000 * elapsed, 1)}  # fmt: skip
