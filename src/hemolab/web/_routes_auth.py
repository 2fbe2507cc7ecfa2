"""Sign in and out. The login form carries a pre-session CSRF token (double submit: a cookie
and the same value in the form); failures are limited per user name and per client address
and audited under the name tried, never with the password."""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from hemolab.web._context import COOKIE, LOGIN_COOKIE, Current, actor_of, origin, web
from hemolab.web._data import open_store
from hemolab.web._users import SESSION_HOURS, Session, same

router = APIRouter()


class Login(BaseModel):
    name: str = Field(max_length=64)
    password: str = Field(max_length=1024)
    csrf: str = Field(max_length=100)


def _cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="strict",
                        secure=web(request).secure_cookies, path="/")  # fmt: skip


def _prelogin(request: Request, response: Response) -> str:
    token = secrets.token_urlsafe(32)
    _cookie(response, request, LOGIN_COOKIE, token, 3600)
    response.headers["X-CSRF-Token"] = token
    return token


@router.get("/login", include_in_schema=False)
def login_page(request: Request) -> Response:
    holder = Response()
    return _render_login(request, _prelogin(request, holder), None, 200, holder)


def _render_login(
    request: Request, csrf: str, error: str | None, status: int, base: Response | None = None
) -> Response:
    response = web(request).templates.TemplateResponse(
        request, "login.html", {"user": None, "csrf": csrf, "error": error}, status_code=status
    )
    if base is not None:
        for key, value in base.headers.items():
            if key.lower() in ("set-cookie", "x-csrf-token"):
                response.headers.append(key, value)
    return response


@router.get("/api/login", summary="A pre-session CSRF token for POST /api/login")
def login_token(request: Request, response: Response) -> dict[str, str]:
    return {"csrf": _prelogin(request, response)}


def _attempt(request: Request, body: Login) -> tuple[str | None, int, str]:
    """(session token or None, HTTP status, message)."""
    state = web(request)
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not same(body.csrf, expected):
        return None, 403, "the login form expired; reload the page"
    keys = (f"user:{body.name.lower()}", f"addr:{origin(request)}")
    wait = state.limiter.retry_after(*keys)
    if wait:
        _audit_failure(request, body.name, "rate limited")
        return None, 429, f"too many failed logins; try again in {wait // 60 + 1} min"
    user = state.users.verify(body.name, body.password)
    if user is None:
        state.limiter.failed(*keys)
        _audit_failure(request, body.name, "wrong name or password")
        return None, 401, "wrong name or password"
    state.limiter.succeeded(keys[0])
    with open_store(state.store_dir, actor_of(request, None, user.name)) as st:
        st.audit("login", None, f"role {user.role}")
    return state.users.open_session(user), 200, ""


def _audit_failure(request: Request, name: str, why: str) -> None:
    from hemolab.web._users import check_name

    try:  # a name that is no possible user name (a password typed in the wrong box) is not kept
        shown = check_name(name)
    except ValueError:
        shown = "(not a user name)"
    with open_store(web(request).store_dir, actor_of(request, None, shown)) as st:
        st.audit("login failed", None, why)


def _signed_in(request: Request, response: Response, token: str) -> Response:
    _cookie(response, request, COOKIE, token, int(SESSION_HOURS * 3600))
    response.delete_cookie(LOGIN_COOKIE, path="/")
    return response


@router.post("/login", include_in_schema=False)
def login_form(
    request: Request,
    name: str = Form(max_length=64),
    password: str = Form(max_length=1024),
    csrf: str = Form(max_length=100),
) -> Response:
    token, status, message = _attempt(request, Login(name=name, password=password, csrf=csrf))
    if token is None:
        fresh = Response()
        response = _render_login(request, _prelogin(request, fresh), message, status, fresh)
        if status == 429:
            response.headers["Retry-After"] = str(web(request).limiter.retry_after(
                f"user:{name.lower()}", f"addr:{origin(request)}"))  # fmt: skip
        return response
    return _signed_in(request, RedirectResponse("/", status_code=303), token)


@router.post("/api/login", summary="Sign in (JSON); sets the session cookie")
def login_api(request: Request, body: Login) -> Response:
    token, status, message = _attempt(request, body)
    if token is None:
        headers = {}
        if status == 429:
            wait = web(request).limiter.retry_after(f"user:{body.name.lower()}",
                                                    f"addr:{origin(request)}")  # fmt: skip
            headers["Retry-After"] = str(wait)
        return JSONResponse({"detail": message}, status_code=status, headers=headers)
    session = web(request).users.session(token)
    assert session is not None
    doc: dict[str, Any] = {"user": session.user.name, "role": session.user.role,
                           "csrf": session.csrf}  # fmt: skip
    return _signed_in(request, JSONResponse(doc), token)


@router.get("/api/session", summary="Who is signed in, and the session's CSRF token")
def session_info(session: Current) -> dict[str, str]:
    return {"user": session.user.name, "role": session.user.role, "csrf": session.csrf}


def _sign_out(request: Request, session: Session, response: Response) -> Response:
    web(request).users.close_session(session.token_sha256)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.post("/logout", include_in_schema=False)
def logout_form(request: Request, session: Current) -> Response:
    return _sign_out(request, session, RedirectResponse("/login", status_code=303))


@router.post("/api/logout", summary="Sign out: the session ends on the server")
def logout_api(request: Request, session: Current) -> Response:
    return _sign_out(request, session, JSONResponse({"signed_out": True}))
