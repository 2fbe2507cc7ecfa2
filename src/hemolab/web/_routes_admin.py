"""Administration (the admin role): users, their grants, and the store's audit trail."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from hemolab.web._context import Admin, store_for, web
from hemolab.web._data import audit_trail
from hemolab.web._users import UserError

router = APIRouter()


class NewUser(BaseModel):
    name: str = Field(max_length=64)
    role: str = Field(max_length=20)
    password: str = Field(max_length=1024)


class Grant(BaseModel):
    name: str = Field(max_length=64)
    pseudonym: str = Field(max_length=20)


@router.get("/api/users", summary="Users, their roles and granted patient counts")
def users(request: Request, session: Admin) -> list[dict[str, Any]]:
    return web(request).users.users()


@router.post("/api/users", summary="Add a user")
def add_user(body: NewUser, request: Request, session: Admin) -> dict[str, str]:
    try:
        user = web(request).users.add(body.name, body.role, body.password)
    except UserError as exc:
        raise HTTPException(422, str(exc)) from None
    with store_for(request, session) as st:
        st.audit("add user", None, f"{user.name} ({user.role})")
    return {"name": user.name, "role": user.role}


def _known(st: Any, pseudonym: str) -> None:
    found = st._db.execute("SELECT count(*) FROM patients WHERE pseudonym = ?",
                           [pseudonym]).fetchone()  # fmt: skip
    if not found or not found[0]:
        raise HTTPException(404, "no such patient in the store")


@router.post("/api/users/grant", summary="Grant a user a patient (by pseudonym, in the body)")
def grant(body: Grant, request: Request, session: Admin) -> dict[str, Any]:
    with store_for(request, session) as st:
        try:
            from hemolab.web._users import check_pseudonym

            check_pseudonym(body.pseudonym)
            _known(st, body.pseudonym)
            web(request).users.grant(body.name, body.pseudonym)
        except UserError as exc:
            raise HTTPException(422, str(exc)) from None
        st.audit("grant", body.pseudonym, f"to {body.name}")
    return {"granted": True}


@router.post("/api/users/revoke", summary="Revoke a user's grant of a patient")
def revoke(body: Grant, request: Request, session: Admin) -> dict[str, Any]:
    try:
        gone = web(request).users.revoke(body.name, body.pseudonym)
    except UserError as exc:
        raise HTTPException(422, str(exc)) from None
    if gone:
        with store_for(request, session) as st:
            st.audit("revoke", body.pseudonym, f"from {body.name}")
    return {"revoked": gone}


@router.get("/api/audit", summary="The store's audit trail (latest 500 entries)")
def audit(request: Request, session: Admin) -> list[dict[str, Any]]:
    with store_for(request, session) as st:
        rows = audit_trail(st)
    return [{**r, "at": r["at"].isoformat()} for r in rows]


@router.get("/admin", include_in_schema=False)
def admin_page(request: Request, session: Admin) -> Response:
    return web(request).templates.TemplateResponse(
        request, "admin.html",
        {"session": session, "users": users(request, session),
         "audit": list(reversed(audit(request, session)))[:200]},
    )  # fmt: skip
