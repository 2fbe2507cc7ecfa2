"""The server's state and the dependencies every route uses: who is signed in (session cookie),
the CSRF check of every state-changing request, roles, and a granted patient by handle."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request

from hemolab.web._data import make_actor, open_store, resolve
from hemolab.web._guard import RateLimiter
from hemolab.web._jobs import JobManager
from hemolab.web._users import Session, UserStore, same

__all__ = ["COOKIE", "LOGIN_COOKIE", "Unauthenticated", "WebState", "current", "require"]

COOKIE = "hemolab_session"
LOGIN_COOKIE = "hemolab_login"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class Unauthenticated(Exception):
    """No live session: the API answers 401, a page redirects to the login form."""


@dataclass
class WebState:
    store_dir: Path
    users: UserStore
    limiter: RateLimiter
    jobs: JobManager
    templates: Any
    secure_cookies: bool
    protocols: dict[str, Path]
    compiled: dict[str, Any] = field(default_factory=dict)
    compile_lock: threading.Lock = field(default_factory=threading.Lock)


def web(request: Request) -> WebState:
    return request.app.state.web


def origin(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def current(request: Request) -> Session:
    """The signed-in session; for POST, PUT, PATCH and DELETE also the CSRF token (header
    ``X-CSRF-Token`` or form field ``csrf``), compared in constant time."""
    token = request.cookies.get(COOKIE, "")
    session = web(request).users.session(token) if token else None
    if session is None:
        raise Unauthenticated()
    if request.method not in SAFE_METHODS:
        sent = request.headers.get("x-csrf-token")
        kind = request.headers.get("content-type", "")
        if sent is None and kind.startswith(("application/x-www-form-urlencoded",
                                              "multipart/form-data")):  # fmt: skip
            form = await request.form()
            value = form.get("csrf")
            sent = value if isinstance(value, str) else None
        if not sent or not same(sent, session.csrf):
            raise HTTPException(403, "missing or wrong CSRF token; reload the page")
    request.state.session = session
    return session


def require(role: str) -> Any:
    """A dependency: the session, if its user's role includes ``role``."""

    async def dependency(session: Annotated[Session, Depends(current)]) -> Session:
        if not session.user.can(role):
            raise HTTPException(403, f"this needs the {role} role")
        return session

    return dependency


viewer = require("viewer")
analyst = require("analyst")
admin = require("admin")
Current = Annotated[Session, Depends(current)]
Viewer = Annotated[Session, Depends(viewer)]
Analyst = Annotated[Session, Depends(analyst)]
Admin = Annotated[Session, Depends(admin)]


def actor_of(request: Request, session: Session | None, name: str | None = None) -> Any:
    return make_actor(name or (session.user.name if session else "anonymous"), origin(request))


@contextmanager
def store_for(request: Request, session: Session) -> Iterator[Any]:
    with open_store(web(request).store_dir, actor_of(request, session)) as st:
        yield st


@contextmanager
def patient_store(
    request: Request, session: Session, handle: str, action: str
) -> Iterator[tuple[Any, str]]:
    """The store and the pseudonym behind ``handle``, if granted to the user (else 404)."""
    granted = web(request).users.granted(session.user.name)
    with store_for(request, session) as st:
        yield st, resolve(st, session, handle, granted, action)
