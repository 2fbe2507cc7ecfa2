"""Security of the web explorer, with the routes enumerated from the application itself (a
route added later is covered without editing this file): unauthenticated requests, a patient
of another user, path traversal, oversized bodies, malformed JSON, internal errors. No
response may carry a source identifier, a pseudonym in a link, or a traceback."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.routing import APIRoute

from tests._web import IDENTIFIERS, PASSWORD, cheap_hasher, csrf_of, login, make_store

with warnings.catch_warnings():  # starlette's notice about httpx, at import
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

# what anyone may fetch: the login form and its token, the API description, scripts
PUBLIC = {
    ("GET", "/login"),
    ("POST", "/login"),
    ("GET", "/api/login"),
    ("POST", "/api/login"),
    ("GET", "/openapi.json"),
    ("GET", "/vendor/plotly.min.js"),
}
PLANTED = "PLANTED-SECRET-0xC0FFEE"
_PSEUDONYM_LINK = re.compile(r"""(?:href|src|action)=["'][^"']*P[0-9A-F]{10}""")
SEEN: list[str] = []  # every response body and header of this module, scanned at the end


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from hemolab.web import create_app
    from hemolab.web._jobs import Job

    prepared = make_store(tmp_path_factory.mktemp("websec"))
    store = prepared["store"]
    (store / "secret.html").write_text(PLANTED)  # beside reports/, never to be served
    app = create_app(store, password_hasher=cheap_hasher(), max_body_bytes=1024 * 1024)
    app.state.web.users.add("erin", "analyst", PASSWORD)  # an analyst with another patient
    app.state.web.users.grant("erin", prepared["patients"][1])

    async def boom() -> None:
        raise RuntimeError(f"{IDENTIFIERS[0]} {PLANTED}")

    app.add_api_route("/api/boom-for-tests", boom)
    # a finished job of alice's with a patient's curves in its result
    job = Job("alicesjob0000001", "alice", "fit", "fit", status="done", result={"x": PLANTED})
    app.state.web.jobs._jobs[job.id] = job
    with TestClient(app, base_url="https://testserver", raise_server_exceptions=False) as c:
        yield {"app": app, "client": c, **prepared}


def new_client(env: dict[str, Any], name: str | None = None) -> TestClient:
    c = TestClient(env["app"], base_url="https://testserver", raise_server_exceptions=False)
    if name is not None:
        assert login(c, name).status_code == 200
    return c


def record(res: Any) -> Any:
    if res.url.path.startswith("/vendor/"):  # plotly.js (its calendars name a month Adar)
        return res
    SEEN.append(res.text)
    SEEN.append(str(dict(res.headers)))
    return res


def routes(app: Any) -> list[tuple[str, str, APIRoute]]:
    """(method, path, route) of every API and page route (the static mount aside)."""
    out = []
    for r in app.routes:
        if isinstance(r, APIRoute) and r.path != "/api/boom-for-tests":
            out.extend((m, r.path, r) for m in sorted(r.methods - {"HEAD"}))
    assert len(out) > 30
    return out


def fill(path: str, **values: str) -> str:
    defaults = {"handle": "0" * 20, "job_id": "nojob", "name": "friberg_docetaxel",
                "experiment_id": "E20260101T000000-abcdef"}  # fmt: skip
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), defaults[m.group(1)]), path)


def send(c: TestClient, method: str, url: str, **kw: Any) -> Any:
    return record(c.request(method, url, follow_redirects=False, **kw))


# unauthenticated ---------------------------------------------------------------------------
def test_every_route_but_the_public_ones_refuses_an_unauthenticated_request(env) -> None:
    anonymous = new_client(env)
    checked = 0
    for method, path, _ in routes(env["app"]):
        if (method, path) in PUBLIC:
            continue
        for accept in ("application/json", "text/html"):
            res = send(anonymous, method, fill(path), headers={"accept": accept},
                       json={} if method == "POST" else None)  # fmt: skip
            if res.status_code == 303:  # a page: to the login form, nothing else
                assert res.headers["location"] == "/login", (method, path)
                assert method == "GET" and accept == "text/html"
            else:
                assert res.status_code == 401, (method, path, res.status_code)
                assert res.json() == {"detail": "sign in first"}
            checked += 1
    # a forged or expired cookie is no session
    forged = TestClient(env["app"], base_url="https://testserver",
                        cookies={"hemolab_session": "A" * 43})  # fmt: skip
    assert send(forged, "GET", "/api/patients").status_code == 401
    assert checked >= 60


def test_the_public_routes_give_nothing_away(env) -> None:
    anonymous = new_client(env)
    for method, path in PUBLIC:
        if method == "GET":
            res = send(anonymous, method, path)
            assert res.status_code == 200, path
    doc = anonymous.get("/openapi.json").text
    for p in env["patients"]:
        assert p not in doc


# another user's patient --------------------------------------------------------------------
def patient_routes(app: Any) -> list[tuple[str, str, APIRoute]]:
    found = [r for r in routes(app) if "{handle}" in r[1]]
    assert len(found) >= 4
    return found


def test_every_patient_route_refuses_another_users_patient_like_an_unknown_one(env) -> None:
    from hemolab.web._data import handle_of

    alice = new_client(env, "alice")
    alices = alice.get("/api/patients").json()[0]["handle"]
    for name in ("erin", "bob"):  # an analyst and a viewer, each granted another patient
        other = new_client(env, name)
        session = env["app"].state.web.users.session(other.cookies.get("hemolab_session"))
        own_key = handle_of(session, env["patients"][0])  # even the right key for that patient
        h = {"X-CSRF-Token": csrf_of(other), "accept": "application/json"}
        for method, path, _ in patient_routes(env["app"]):
            answers = []
            for handle in (alices, own_key, "f" * 20):
                res = send(other, method, fill(path, handle=handle), headers=h,
                           json={} if method == "POST" else None)  # fmt: skip
                answers.append((res.status_code, res.text))
            assert len(set(answers)) == 1, (name, method, path, answers)  # indistinguishable
            assert answers[0][0] in (403, 404), (name, method, path)  # 403: the role, first
            if name == "erin":
                assert answers[0][0] == 404
    # and alice herself gets her patient on every GET route
    for method, path, _ in patient_routes(env["app"]):
        if method == "GET":
            res = send(alice, method, fill(path, handle=alices), headers={"accept": "text/html"})
            assert res.status_code == 200, path


def test_jobs_of_another_user_are_refused(env) -> None:
    for name in ("erin", "bob"):
        other = new_client(env, name)
        h = {"X-CSRF-Token": csrf_of(other)}
        for method, path, _ in routes(env["app"]):
            if "{job_id}" not in path:
                continue
            res = send(other, method, fill(path, job_id="alicesjob0000001"), headers=h)
            assert res.status_code in (403, 404), (name, method, path)
            assert PLANTED not in res.text
        assert all(j["owner"] == name for j in other.get("/api/jobs").json())


# traversal, sizes, bodies ------------------------------------------------------------------
TRAVERSALS = (
    "../secret.html", "..%2Fsecret.html", "%2e%2e%2fsecret.html", "..%252Fsecret.html",
    "....//secret.html", "..\\secret.html", "/etc/passwd", "%2Fetc%2Fpasswd",
    "summary.html%00.html", "../users.sqlite", "..%2F..%2F..%2Fetc%2Fpasswd", "%2e%2e",
    "%2e", "~", "summary.html/..%2F..%2Fsecret.html",
)  # fmt: skip


def test_path_traversal_in_every_path_parameter(env) -> None:
    admin = new_client(env, "carol")
    alice = new_client(env, "alice")
    n = 0
    for method, path, _ in routes(env["app"]):
        params = re.findall(r"\{(\w+)\}", path)
        for param in params:
            for bad in TRAVERSALS:
                for c in (admin, alice):
                    res = send(c, method, fill(path, **{param: bad}),
                               headers={"X-CSRF-Token": csrf_of(c)})  # fmt: skip
                    assert res.status_code in (400, 403, 404, 405, 422), (path, bad)
                    body = res.text
                    assert PLANTED not in body and "root:" not in body
                    assert "SQLite format" not in body and "$argon2" not in body
                    n += 1
    assert n > 100
    # the report that exists is served, with a sandboxing CSP
    ok = send(alice, "GET", "/reports/summary.html")
    assert ok.status_code == 200 and "sandbox" in ok.headers["content-security-policy"]
    down = send(alice, "GET", "/api/reports/summary.html/download")
    assert "attachment" in down.headers["content-disposition"]


def test_protocol_names_in_bodies_cannot_reach_files(env) -> None:
    alice = new_client(env, "alice")
    h = {"X-CSRF-Token": csrf_of(alice)}
    for bad in (*TRAVERSALS, "/work/examples/docetaxel-protocol.toml", "secret.html"):
        res = send(alice, "POST", "/api/protocols/run", headers=h, json={"protocol": bad})
        assert res.status_code == 404, bad


def post_routes(app: Any) -> list[tuple[str, str, APIRoute]]:
    return [r for r in routes(app) if r[0] == "POST"]


def test_oversized_bodies_are_refused_on_every_post_route(env) -> None:
    alice = new_client(env, "alice")
    h = {"X-CSRF-Token": csrf_of(alice), "content-type": "application/json"}
    big = b'{"x": "' + b"a" * (1024 * 1024 + 10) + b'"}'
    for _, path, _ in post_routes(env["app"]):
        res = send(alice, "POST", fill(path), headers=h, content=big)
        assert res.status_code == 413, path
        assert res.headers["x-frame-options"] == "DENY"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        for _ in range(40):
            yield b"a" * 65536

    streamed = send(alice, "POST", "/api/simulate", headers=h, content=chunks())
    assert streamed.status_code == 413


def test_malformed_json_and_wrong_types_get_a_short_answer_without_the_input(env) -> None:
    alice = new_client(env, "alice")
    h = {"X-CSRF-Token": csrf_of(alice), "content-type": "application/json"}
    n = 0
    for _, path, route in post_routes(env["app"]):
        if route.body_field is None:
            continue
        for body in (b'{"model": ', b"\xff\xfe", b"[1, 2", b'{"a": NaN'):
            res = send(alice, "POST", fill(path), headers=h, content=body)
            assert res.status_code in (400, 422), (path, body)
            assert len(res.text) < 400
            n += 1
        planted = {k: IDENTIFIERS[0] for k in ("model", "name", "password", "protocol",
                                               "threshold", "pseudonym", "csrf")}  # fmt: skip
        planted |= {"population": IDENTIFIERS[0], "horizon_days": IDENTIFIERS[0]}
        res = send(alice, "POST", fill(path), headers=h, json=[planted])
        assert res.status_code in (400, 403, 404, 422), path
    assert n >= 20


def test_an_internal_error_says_nothing_of_it(env) -> None:
    alice = new_client(env, "alice")
    res = send(alice, "GET", "/api/boom-for-tests")
    assert res.status_code == 500 and res.json() == {"detail": "internal error"}


def test_pages_link_by_handle_never_by_pseudonym(env) -> None:
    for name in ("alice", "carol"):
        c = new_client(env, name)
        for method, path, _ in routes(env["app"]):
            if method != "GET" or "{" in path:
                continue
            res = send(c, "GET", path, headers={"accept": "text/html"})
            assert not _PSEUDONYM_LINK.search(res.text), path


def test_zz_no_response_carried_an_identifier_or_a_traceback() -> None:
    assert len(SEEN) > 500
    text = "\n".join(SEEN)
    for ident in IDENTIFIERS:
        assert ident not in text, ident
    assert "Traceback" not in text and 'File "' not in text
    assert PLANTED not in text
