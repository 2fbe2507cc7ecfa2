"""Patients granted to the user: a list, a patient's de-identified lab history, its forecast
history, and a fit with a forecast as a background job. A patient is named by its handle
(``/patients/{handle}``), valid only in the session that listed it."""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from hemolab.web._context import Analyst, Viewer, actor_of, patient_store, store_for, web
from hemolab.web._data import handle_of, open_store, patients
from hemolab.web._users import Session

router = APIRouter()

FIT_MODELS = ("marrow_failure_hb",)  # models whose observables a stored lab history has


def _listing(request: Request, session: Session) -> list[dict[str, Any]]:
    granted = web(request).users.granted(session.user.name)
    with store_for(request, session) as st:
        rows = patients(st, granted)
    return [{"handle": handle_of(session, r.pop("pseudonym")), **r} for r in rows]


@router.get("/api/patients", summary="The patients granted to you (by per-session handle)")
def patient_list(request: Request, session: Viewer) -> list[dict[str, Any]]:
    return _listing(request, session)


@router.get("/patients", include_in_schema=False)
def patients_page(request: Request, session: Viewer) -> Response:
    return web(request).templates.TemplateResponse(
        request, "patients.html", {"session": session, "patients": _listing(request, session)}
    )


@router.get("/patients/{handle}", include_in_schema=False)
def patient_page(handle: str, request: Request, session: Viewer) -> Response:
    with patient_store(request, session, handle, "open patient page") as (st, pseudonym):
        st.audit("web page", pseudonym, "patient page")
    return web(request).templates.TemplateResponse(
        request, "patient.html",
        {"session": session, "handle": handle, "pseudonym": pseudonym, "fit_models": FIT_MODELS},
    )  # fmt: skip


@router.get("/api/patients/{handle}/labs", summary="A patient's de-identified lab history")
def labs(handle: str, request: Request, session: Viewer) -> dict[str, Any]:
    with patient_store(request, session, handle, "read labs") as (st, pseudonym):
        rows = st.lab_values(pseudonym)
    return {"time_unit": "h", "values": rows}


@router.get("/api/patients/{handle}/forecasts", summary="A patient's forecast history")
def forecasts(handle: str, request: Request, session: Viewer) -> list[dict[str, Any]]:
    with patient_store(request, session, handle, "read forecasts") as (st, pseudonym):
        rows = st.forecasts(pseudonym)
    return [{**r, "made_at": r["made_at"].isoformat()} for r in rows]


class FitRequest(BaseModel):
    model: str = Field(default="marrow_failure_hb", max_length=100)
    threshold: str = Field(default="Hb<7", max_length=40)
    horizon_days: float = Field(default=180.0, gt=0, le=3650)


@router.post("/api/patients/{handle}/fit", summary="Fit and forecast a patient (a job)")
def fit(handle: str, body: FitRequest, request: Request, session: Analyst) -> dict[str, Any]:
    from hemolab.library import get_model
    from hemolab.model._units import time_factor

    if body.model not in FIT_MODELS:
        raise HTTPException(422, f"model must be one of {', '.join(FIT_MODELS)}")
    from hemolab._errors import HemolabError
    from hemolab.forecast import Threshold

    try:
        Threshold.parse(body.threshold)
    except HemolabError:
        raise HTTPException(422, "threshold: an observable, < <= > >=, a number (Hb<7)") from None
    with patient_store(request, session, handle, "calibrate") as (st, pseudonym):
        rows = st.lab_values(pseudonym, actor_action="calibrate")
        events = st.event_rows(pseudonym, actor_action="calibrate")
    mdl = get_model(body.model)
    state = web(request)
    actor = actor_of(request, session)

    def keep(result: dict[str, Any]) -> dict[str, Any]:
        text = result.pop("fit")
        doc = result["forecast"]
        with open_store(state.store_dir, actor) as st:
            st.record_forecast(pseudonym, doc, hashlib.sha256(text.encode()).hexdigest())
        return result

    args = {"model": body.model, "rows": rows, "events": events, "pseudonym": pseudonym,
            "threshold": body.threshold,
            "horizon": body.horizon_days * time_factor("d", mdl.time_unit)}  # fmt: skip
    try:
        job = state.jobs.submit(session.user.name, "fit", f"fit {body.model} to a patient",
                                "hemolab.web._workers:fit_patient", args,
                                on_result=keep)  # fmt: skip
    except LookupError as exc:
        raise HTTPException(429, str(exc)) from None
    return job.to_json()
