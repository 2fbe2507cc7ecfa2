"""``create_app``: the FastAPI application of ``hemolab serve``.

Server-rendered pages (Jinja2, autoescaped) with a little same-origin JavaScript, and a JSON
API under ``/api`` described at ``/openapi.json``. Every page and API route needs a session
except the login form, the static files and the API description. Errors answer with a short
message: never a traceback, never data of the request. Design note 030.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from hemolab.web._context import Unauthenticated, Viewer, WebState, web
from hemolab.web._data import Busy, NotFound
from hemolab.web._guard import BodyLimit, RateLimiter, SecurityHeaders
from hemolab.web._jobs import JobManager
from hemolab.web._users import UserStore

__all__ = ["create_app"]

MAX_BODY = 10 * 1024 * 1024
_HERE = Path(__file__).parent
_log = logging.getLogger("hemolab.web")


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api") and "text/html" in request.headers.get(
        "accept", ""
    )


def _validation_message(exc: RequestValidationError) -> str:
    """The first problem, named by its location: never the input that was sent."""
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            return "malformed JSON body"
        loc = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
        return f"invalid request: {loc or 'body'}: {err.get('msg', 'not accepted')}"[:300]
    return "invalid request"


def _static_routes(app: FastAPI) -> None:
    from fastapi.staticfiles import StaticFiles

    app.mount("/static", StaticFiles(directory=_HERE / "static"), name="static")
    plotly_js: list[bytes] = []

    @app.get("/vendor/plotly.min.js", include_in_schema=False)
    def plotly() -> Response:  # served from the plotly package: never a CDN
        if not plotly_js:
            from plotly.offline import get_plotlyjs

            plotly_js.append(get_plotlyjs().encode())
        return Response(plotly_js[0], media_type="text/javascript",
                        headers={"Cache-Control": "public, max-age=86400"})  # fmt: skip


def create_app(
    store_dir: str | os.PathLike[str],
    *,
    secure_cookies: bool = True,
    max_body_bytes: int = MAX_BODY,
    login_limit: int = 5,
    login_window_s: float = 15 * 60,
    protocol_dirs: tuple[Path, ...] | None = None,
    password_hasher: Any = None,
) -> FastAPI:
    """The web application over the store directory ``store_dir``.

    Main arguments
    --------------
    store_dir
        The store (``hemolab.duckdb``, ``experiments.duckdb``, ``users.sqlite``,
        ``reports/``); created if missing.

    Other arguments
    ---------------
    secure_cookies
        Mark cookies ``Secure`` (browsers accept them on ``http://127.0.0.1`` and
        ``localhost``; keep it on).
    max_body_bytes
        Larger request bodies get 413.
    login_limit, login_window_s
        Failed logins allowed per user name and per client address in the window (then 429).
    protocol_dirs
        Folders of runnable protocol files (default: ``<store>/protocols`` and the source
        tree's ``examples/``).
    password_hasher
        An argon2 ``PasswordHasher`` (default parameters unless given).
    """
    from jinja2 import Environment, FileSystemLoader, select_autoescape
    from starlette.templating import Jinja2Templates

    from hemolab.web import (
        _routes_admin,
        _routes_auth,
        _routes_models,
        _routes_patients,
        _routes_runs,
    )

    store = Path(store_dir)
    store.mkdir(parents=True, exist_ok=True)
    if protocol_dirs is None:
        protocol_dirs = (store / "protocols", _HERE.parents[2] / "examples")
    env = Environment(
        loader=FileSystemLoader(_HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    jobs = JobManager()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        jobs.shutdown()

    app = FastAPI(
        title="hemolab",
        summary="The in-silico hematology laboratory's web explorer (research use only).",
        version=_version(),
        docs_url=None,  # Swagger UI would load its scripts from a CDN
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.web = WebState(
        store_dir=store,
        users=UserStore(store, hasher=password_hasher),
        limiter=RateLimiter(login_limit, login_window_s),
        jobs=jobs,
        templates=Jinja2Templates(env=env),
        secure_cookies=secure_cookies,
        protocols=_routes_runs.find_protocols(*protocol_dirs),
    )
    for module in (_routes_auth, _routes_models, _routes_patients, _routes_runs, _routes_admin):
        # flat in app.routes (not an included router): the security tests enumerate them there
        for route in module.router.routes:
            app.router.routes.append(route)
    _static_routes(app)

    @app.get("/", include_in_schema=False)
    def home(request: Request, session: Viewer) -> Response:
        return web(request).templates.TemplateResponse(request, "home.html", {"session": session})

    _handlers(app)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    return app


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hemolab")
    except PackageNotFoundError:  # pragma: no cover - a source tree without metadata
        return "0"


def _handlers(app: FastAPI) -> None:
    def error(request: Request, status: int, message: str, **headers: str) -> Response:
        if _wants_html(request):
            session = getattr(request.state, "session", None)
            return web(request).templates.TemplateResponse(
                request, "error.html", {"session": session, "status": status, "message": message},
                status_code=status, headers=headers or None,
            )  # fmt: skip
        return JSONResponse({"detail": message}, status_code=status, headers=headers or None)

    @app.exception_handler(Unauthenticated)
    async def unauthenticated(request: Request, exc: Unauthenticated) -> Response:
        if _wants_html(request) and request.method == "GET":
            return RedirectResponse("/login", status_code=303)
        return JSONResponse({"detail": "sign in first"}, status_code=401)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> Response:
        return error(request, 404, "not found")

    @app.exception_handler(Busy)
    async def busy(request: Request, exc: Busy) -> Response:
        return error(request, 503, "the store is busy (an import is running); try again",
                     **{"Retry-After": "5"})  # fmt: skip

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else "request refused"
        if exc.status_code == 404:
            message = "not found" if message == "Not Found" else message
        return error(request, exc.status_code, message, **(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        return error(request, 422, _validation_message(exc))

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> Response:
        # the type only: a message or traceback could quote data of the request
        _log.error("internal error in %s %s: %s", request.method, request.url.path,
                   type(exc).__name__)  # fmt: skip
        return JSONResponse({"detail": "internal error"}, status_code=500)
