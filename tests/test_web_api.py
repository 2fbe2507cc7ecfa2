"""The web explorer's API through FastAPI's TestClient: sign-in and out, session cookies,
CSRF, login rate limiting, roles, grants and handles, the interactive simulation, jobs (a
real protocol run in a spawned worker, a cancelled one) and the ``hemolab users`` commands."""

from __future__ import annotations

import json
import sqlite3
import time
import warnings
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from typer.testing import CliRunner

from hemolab.cli import app as cli
from hemolab.cli._schemas import load_schema
from tests._web import PASSWORD, cheap_hasher, csrf_of, login, make_store, page_csrf

with warnings.catch_warnings():  # starlette's notice about httpx, at import
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return make_store(tmp_path_factory.mktemp("web"))


def client(prepared: dict[str, Any], **options: Any) -> TestClient:
    from hemolab.web import create_app

    options.setdefault("password_hasher", cheap_hasher())
    app = create_app(prepared["store"], **options)
    return TestClient(app, base_url="https://testserver", raise_server_exceptions=False)


@pytest.fixture(scope="module")
def shared(prepared: dict[str, Any]) -> Any:
    """One application for the tests that do not count failures or change grants."""
    with client(prepared) as c:
        yield c.app


def signed_in(app: Any, name: str) -> TestClient:
    c = TestClient(app, base_url="https://testserver", raise_server_exceptions=False)
    assert login(c, name).status_code == 200
    return c


def audit(prepared: dict[str, Any]) -> list[dict[str, Any]]:
    from hemolab.store import Store

    with Store(prepared["store"]) as st:
        return st.audit_trail()


# sign-in, sessions, CSRF ---------------------------------------------------------------------
def test_login_sets_a_strict_secure_http_only_cookie_and_logout_ends_the_session(
    prepared: dict[str, Any],
) -> None:
    c = client(prepared)
    assert c.get("/api/session").status_code == 401
    res = login(c, "alice")
    assert res.status_code == 200 and res.json()["role"] == "analyst"
    cookie = next(h for h in res.headers.get_list("set-cookie") if h.startswith("hemolab_session"))
    flags = cookie.lower()
    assert "httponly" in flags and "samesite=strict" in flags and "secure" in flags
    token = c.cookies.get("hemolab_session")
    assert token and len(token) >= 43  # 256 bits, URL-safe base64
    users = sqlite3.connect(prepared["store"] / "users.sqlite")
    stored = [r[0] for r in users.execute("SELECT token_sha256 FROM sessions")]
    assert token not in stored  # only the token's hash is kept
    csrf = csrf_of(c)
    assert c.post("/api/logout").status_code == 403  # no CSRF token
    assert c.post("/api/logout", headers={"X-CSRF-Token": csrf}).status_code == 200
    assert c.get("/api/session").status_code == 401
    replay = TestClient(c.app, base_url="https://testserver", cookies={"hemolab_session": token})
    assert replay.get("/api/session").status_code == 401  # the old token is dead


def test_page_login_and_logout_with_form_fields(prepared: dict[str, Any]) -> None:
    c = client(prepared)
    page = c.get("/login")
    assert page.status_code == 200
    token = page_csrf(page.text)
    fresh = client(prepared)  # no login cookie at all, and an empty token: refused
    empty = fresh.post("/api/login", json={"name": "bob", "password": PASSWORD, "csrf": ""})
    assert empty.status_code == 403
    bad = c.post("/login", data={"name": "bob", "password": PASSWORD, "csrf": "forged"},
                 follow_redirects=False)  # fmt: skip
    assert bad.status_code == 403
    token = page_csrf(bad.text)
    ok = c.post("/login", data={"name": "bob", "password": PASSWORD, "csrf": token},
                follow_redirects=False)  # fmt: skip
    assert ok.status_code == 303 and ok.headers["location"] == "/"
    home = c.get("/", headers={"accept": "text/html"})
    assert home.status_code == 200 and "bob (viewer)" in home.text
    out = c.post("/logout", data={"csrf": page_csrf(home.text)}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    again = c.get("/", headers={"accept": "text/html"}, follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == "/login"


def test_state_changing_requests_need_the_sessions_csrf_token(shared: Any) -> None:
    c = signed_in(shared, "alice")
    body = {"model": "mackey_glass"}
    assert c.post("/api/simulate", json=body).status_code == 403
    assert c.post("/api/simulate", json=body, headers={"X-CSRF-Token": "x" * 43}).status_code == 403
    other = signed_in(shared, "alice")  # another session's token is no good either
    res = c.post("/api/simulate", json=body, headers={"X-CSRF-Token": csrf_of(other)})
    assert res.status_code == 403
    good = c.post("/api/simulate", json=body, headers={"X-CSRF-Token": csrf_of(c)})
    assert good.status_code == 200


def test_failed_logins_are_limited_per_name_and_per_address_and_audited(
    prepared: dict[str, Any],
) -> None:
    with client(prepared) as c:

        def at(address: str) -> TestClient:
            return TestClient(c.app, base_url="https://testserver", client=(address, 5000))

        secret = "Wrong-Password-Planted-77"
        first = at("10.0.0.1")
        for _ in range(5):
            assert login(first, "bob", secret).status_code == 401
        refused = login(first, "bob")  # even the right password, now
        assert refused.status_code == 429
        assert 0 < int(refused.headers["retry-after"]) <= 15 * 60
        second = at("10.0.0.2")
        assert login(second, "bob").status_code == 429  # the name is blocked from anywhere
        assert login(second, "alice").status_code == 200  # that address is not
        # per address: five failures over different names block a sixth name there
        third = at("10.0.0.3")
        for k in range(5):
            assert login(third, f"nobody{k}", secret).status_code == 401
        assert login(third, "carol").status_code == 429
        assert login(at("10.0.0.4"), "carol").status_code == 200
    trail = audit(prepared)
    failed = [a for a in trail if a["action"] == "login failed"]
    assert len(failed) >= 10
    assert not any(secret in str(a) for a in trail)


def test_a_password_typed_as_the_name_is_not_kept(prepared: dict[str, Any]) -> None:
    c = client(prepared)
    assert login(c, "my secret words!", "x").status_code == 401
    assert not any("my secret words" in str(a) for a in audit(prepared))


def test_an_outdated_hash_is_replaced_at_the_next_login(prepared: dict[str, Any]) -> None:
    from argon2 import PasswordHasher

    def digest() -> str:
        db = sqlite3.connect(prepared["store"] / "users.sqlite")
        return db.execute("SELECT hash FROM users WHERE name = 'bob'").fetchone()[0]

    before = digest()
    assert before.startswith("$argon2id$") and "m=1024" in before
    c = client(prepared, password_hasher=PasswordHasher())  # today's default parameters
    assert login(c, "bob").status_code == 200
    after = digest()
    assert after != before and "m=65536" in after and PASSWORD not in after


# roles, grants, handles ----------------------------------------------------------------------
def test_roles(shared: Any) -> None:
    viewer, analyst, admin = (signed_in(shared, n) for n in ("bob", "alice", "carol"))
    sim = {"model": "mackey_glass"}
    assert viewer.post("/api/simulate", json=sim,
                       headers={"X-CSRF-Token": csrf_of(viewer)}).status_code == 403  # fmt: skip
    assert viewer.get("/api/models").status_code == 200
    for c in (viewer, analyst):
        assert c.get("/api/users").status_code == 403
        assert c.get("/api/audit").status_code == 403
        assert c.get("/admin", headers={"accept": "text/html"}).status_code == 403
    assert admin.get("/api/users").status_code == 200
    assert admin.get("/api/audit").status_code == 200
    nav = viewer.get("/", headers={"accept": "text/html"}).text
    assert "/simulate" not in nav and "/admin" not in nav


def test_each_user_sees_only_granted_patients_by_handles(
    prepared: dict[str, Any], shared: Any
) -> None:
    alice, bob, carol = (signed_in(shared, n) for n in ("alice", "bob", "carol"))
    mine, theirs = alice.get("/api/patients").json(), bob.get("/api/patients").json()
    assert len(mine) == 1 and len(theirs) == 1 and carol.get("/api/patients").json() == []
    handle = mine[0]["handle"]
    assert alice.get(f"/api/patients/{handle}/labs").status_code == 200
    # a second session of the same user gets another handle for the same patient
    again = signed_in(shared, "alice").get("/api/patients").json()[0]["handle"]
    assert again != handle
    # bob, with alice's handle: exactly the answer to a handle that never existed
    stolen, unknown = bob.get(f"/api/patients/{handle}/labs"), bob.get("/api/patients/0/labs")
    assert stolen.status_code == unknown.status_code == 404
    assert stolen.json() == unknown.json() == {"detail": "not found"}
    for p in prepared["patients"]:
        page = alice.get("/patients", headers={"accept": "text/html"}).text
        assert f"/patients/{p}" not in page  # links carry handles, never pseudonyms
    # even the handle bob's own session would give alice's patient answers the same
    from hemolab.web._data import handle_of

    bob_session = shared.state.web.users.session(bob.cookies.get("hemolab_session"))
    forged = handle_of(bob_session, prepared["patients"][0])
    assert bob.get(f"/api/patients/{forged}/labs").json() == {"detail": "not found"}
    denied = [a for a in audit(prepared) if a["action"] == "denied read labs"]
    assert any(a["pseudonym"] == prepared["patients"][0] for a in denied)  # named: not granted
    assert any(a["pseudonym"] is None for a in denied)  # unknown handles
    assert all(a["actor"] == "bob" and a["via"] == "web" and a["origin"] == "testclient"
               for a in denied)  # fmt: skip


def test_experiments_and_reports_of_a_patient_follow_the_patients_grants(
    prepared: dict[str, Any], shared: Any
) -> None:
    """An experiment made from a patient's data (its spec or fit names the pseudonym) is that
    patient's data: listed, shown, compared and reported only to users granted the patient,
    each use on the trail; to others exactly as an unknown id."""
    from hemolab.experiments import ExperimentStore

    first = prepared["patients"][0]
    with ExperimentStore(prepared["store"]).start("forecast", spec={"patient": first}) as exp:
        exp.add_input("fit.json", data=json.dumps({"patient": first}).encode())
    (prepared["store"] / "reports" / "of-alice.html").write_text(
        f"<!doctype html><title>r</title><p>figures of {exp.id}</p>"
    )
    alice, bob, carol = (signed_in(shared, n) for n in ("alice", "bob", "carol"))
    assert exp.id in [e["id"] for e in alice.get("/api/experiments").json()]
    assert alice.get(f"/api/experiments/{exp.id}").status_code == 200
    assert "of-alice.html" in [r["name"] for r in alice.get("/api/reports").json()]
    assert alice.get("/api/reports/of-alice.html/download").status_code == 200
    unknown = "E20000101T000000-000000"
    for other in (bob, carol):  # a viewer granted another patient, an admin granted none
        assert exp.id not in [e["id"] for e in other.get("/api/experiments").json()]
        got = other.get(f"/api/experiments/{exp.id}")
        assert (
            got.status_code == 404 and got.json() == other.get(f"/api/experiments/{unknown}").json()
        )
        assert other.get(f"/experiments/compare?a={exp.id}&b={exp.id}").status_code == 404
        assert "of-alice.html" not in [r["name"] for r in other.get("/api/reports").json()]
        assert other.get("/api/reports/of-alice.html/download").status_code == 404
        assert other.get("/reports/of-alice.html").status_code == 404
    bob_csrf = csrf_of(bob)
    refused = bob.post("/api/reports", json={"experiments": [exp.id]},
                       headers={"X-CSRF-Token": bob_csrf})  # fmt: skip
    assert refused.status_code in (403, 404)  # a viewer may not write reports anyway
    trail = [a for a in audit(prepared) if a["pseudonym"] == first and "experiment" in a["action"]]
    assert any(a["action"] == "read experiment" and a["actor"] == "alice" for a in trail)
    assert {a["actor"] for a in trail if a["action"] == "denied read experiment"} >= {
        "bob",
        "carol",
    }


def test_admin_grants_and_revokes_and_a_revoked_patient_disappears_at_once(
    prepared: dict[str, Any],
) -> None:
    with client(prepared) as c:
        admin, bob = signed_in(c.app, "carol"), signed_in(c.app, "bob")
        h = {"X-CSRF-Token": csrf_of(admin)}
        first = prepared["patients"][0]
        assert admin.post("/api/users/grant", json={"name": "bob", "pseudonym": first},
                          headers=h).status_code == 200  # fmt: skip
        handles = [p["handle"] for p in bob.get("/api/patients").json()]
        assert len(handles) == 2
        assert all(bob.get(f"/api/patients/{x}/labs").status_code == 200 for x in handles)
        assert admin.post("/api/users/revoke", json={"name": "bob", "pseudonym": first},
                          headers=h).json() == {"revoked": True}  # fmt: skip
        codes = sorted(bob.get(f"/api/patients/{x}/labs").status_code for x in handles)
        assert codes == [200, 404]
        missing = admin.post("/api/users/grant", json={"name": "bob", "pseudonym": "P0000000000"},
                             headers=h)  # fmt: skip
        assert missing.status_code == 404
        new = admin.post("/api/users", json={"name": "dave", "role": "viewer",
                                             "password": "long enough pw"}, headers=h)  # fmt: skip
        assert new.status_code == 200
        short = admin.post("/api/users", json={"name": "erin", "role": "viewer",
                                               "password": "short"}, headers=h)  # fmt: skip
        assert short.status_code == 422 and "short" not in short.text
        assert "dave" in [u["name"] for u in admin.get("/api/users").json()]
        actions = [a["action"] for a in admin.get("/api/audit").json()]
        assert {"grant", "revoke", "add user"} <= set(actions)


# pages, headers, API description ------------------------------------------------------------
def test_pages_render_and_carry_security_headers(shared: Any) -> None:
    c = signed_in(shared, "alice")
    for url in ("/", "/models", "/models/friberg_docetaxel", "/patients", "/simulate",
                "/protocols", "/jobs", "/experiments", "/reports"):  # fmt: skip
        res = c.get(url, headers={"accept": "text/html"})
        assert res.status_code == 200, url
        assert "default-src 'self'" in res.headers["content-security-policy"]
        assert res.headers["x-frame-options"] == "DENY"
        assert res.headers["x-content-type-options"] == "nosniff"
        assert res.headers["referrer-policy"] == "no-referrer"
        assert "cdn" not in res.text.lower()
    model = c.get("/models/friberg_docetaxel").text
    assert "dProl/dt" in model and "Friberg" in model and "MTT" in model
    js = c.get("/vendor/plotly.min.js")
    assert js.status_code == 200 and len(js.content) > 1_000_000


def test_openapi_is_public_and_docs_pages_are_off(prepared: dict[str, Any]) -> None:
    c = client(prepared)
    doc = c.get("/openapi.json").json()
    assert "/api/patients/{handle}/labs" in doc["paths"] and "/api/simulate" in doc["paths"]
    assert c.get("/docs").status_code == 404 and c.get("/redoc").status_code == 404


# simulation ----------------------------------------------------------------------------------
def test_simulate_updates_with_the_compiled_model_kept(shared: Any) -> None:
    c = signed_in(shared, "alice")
    h = {"X-CSRF-Token": csrf_of(c)}
    body: dict[str, Any] = {"model": "friberg_docetaxel", "dose": {"amount": 180, "interval": 504}}
    first = c.post("/api/simulate", json=body, headers=h).json()
    assert first["status"] == "ok" and len(first["time"]) == 301
    nadir = min(first["series"]["ANC"])
    body["dose"]["amount"] = 90
    body["params"] = {"MTT": 100.0}
    started = time.perf_counter()
    second = c.post("/api/simulate", json=body, headers=h).json()
    took = time.perf_counter() - started
    assert min(second["series"]["ANC"]) > nadir  # half the dose, a shallower nadir
    assert took < 5.0, took  # no recompiling (measured: ~0.15 s after a 5 s first call)
    bad = c.post("/api/simulate", json={"model": "friberg_docetaxel", "params": {"MTT": -1}},
                 headers=h)  # fmt: skip
    assert bad.status_code == 422 and "MTT" in bad.json()["detail"]
    unknown = c.post("/api/simulate", json={"model": "nope"}, headers=h)
    assert unknown.status_code == 404


# jobs ----------------------------------------------------------------------------------------
def wait_for(c: TestClient, job_id: str, timeout: float = 240.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = c.get(f"/api/jobs/{job_id}").json()
        if job["status"] in ("done", "failed", "cancelled"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} still {job['status']} after {timeout} s")


def test_a_protocol_job_runs_in_a_worker_and_is_recorded(shared: Any) -> None:
    alice, bob = signed_in(shared, "alice"), signed_in(shared, "bob")
    h = {"X-CSRF-Token": csrf_of(alice)}
    names = [p["name"] for p in alice.get("/api/protocols").json()]
    assert "docetaxel-protocol.toml" in names and "docetaxel-template.toml" not in names
    job = alice.post(
        "/api/protocols/run",
        headers=h,
        json={"protocol": "docetaxel-protocol.toml", "population": 16, "seed": 3},
    )
    assert job.status_code == 200
    jid = job.json()["id"]
    assert bob.get(f"/api/jobs/{jid}").status_code == 404  # not bob's
    done = wait_for(alice, jid)
    assert done["status"] == "done", done["message"]
    result = done["result"]
    assert result["n_patients"] == 16 and result["limits"]
    assert result["experiment"] in [e["id"] for e in alice.get("/api/experiments").json()]
    page = alice.get("/experiments/compare", params={"a": result["experiment"],
                                                     "b": result["experiment"]})  # fmt: skip
    assert page.status_code == 200 and "docetaxel" in page.text
    assert "metrics.outcomes.parquet.ANC_nadir (median)" in page.text  # side by side
    metrics = alice.get(f"/api/experiments/{result['experiment']}").json()["metrics"]
    assert metrics["outcomes.parquet"]["rows"] == 16
    # a report of it, written by a worker into the store's reports/, then downloaded
    rep = alice.post("/api/reports", headers=h, json={"experiments": [result["experiment"]]})
    written = wait_for(alice, rep.json()["id"])
    assert written["status"] == "done", written["message"]
    name = written["result"]["report"]
    assert name in [r["name"] for r in alice.get("/api/reports").json()]
    down = bob.get(f"/api/reports/{name}/download")  # a viewer reads reports
    assert down.status_code == 200 and "research use" in down.text
    assert bob.post("/api/reports", headers={"X-CSRF-Token": csrf_of(bob)},
                    json={"experiments": [result["experiment"]]}).status_code == 403  # fmt: skip
    unknown = alice.post("/api/reports", headers=h, json={"experiments": ["E1"]})
    assert unknown.status_code == 404
    traversal = alice.post("/api/protocols/run", headers=h,
                           json={"protocol": "../examples/docetaxel-protocol.toml"})  # fmt: skip
    assert traversal.status_code == 404


def test_a_job_can_be_cancelled_by_its_owner(shared: Any) -> None:
    alice, bob = signed_in(shared, "alice"), signed_in(shared, "bob")
    h = {"X-CSRF-Token": csrf_of(alice)}
    job = alice.post(
        "/api/protocols/run",
        headers=h,
        json={"protocol": "docetaxel-protocol.toml", "population": 5000, "seed": 1},
    )
    jid = job.json()["id"]
    assert (
        bob.post(f"/api/jobs/{jid}/cancel", headers={"X-CSRF-Token": csrf_of(bob)}).status_code
        == 403
    )  # a viewer
    time.sleep(1.0)
    res = alice.post(f"/api/jobs/{jid}/cancel", headers=h).json()
    assert res["cancelled"] and res["status"] == "cancelled"
    job_doc = shared.state.web.jobs._jobs[jid]
    assert not job_doc.process.is_alive()
    assert alice.get(f"/api/jobs/{jid}").json()["status"] == "cancelled"
    again = alice.post(f"/api/jobs/{jid}/cancel", headers=h).json()
    assert again["cancelled"] is False


def test_a_fit_job_needs_the_analyst_role_and_a_granted_patient(
    prepared: dict[str, Any], shared: Any
) -> None:
    alice, bob = signed_in(shared, "alice"), signed_in(shared, "bob")
    handle = bob.get("/api/patients").json()[0]["handle"]
    res = bob.post(f"/api/patients/{handle}/fit", json={}, headers={"X-CSRF-Token": csrf_of(bob)})
    assert res.status_code == 403
    mine = alice.get("/api/patients").json()[0]["handle"]
    h = {"X-CSRF-Token": csrf_of(alice)}
    bad = alice.post(f"/api/patients/{mine}/fit", json={"threshold": "Hb"}, headers=h)
    assert bad.status_code == 422
    assert alice.post(f"/api/patients/{handle}/fit", json={}, headers=h).status_code == 404


# hemolab users -------------------------------------------------------------------------------
def test_users_commands(tmp_path: Path, prepared: dict[str, Any]) -> None:
    store = tmp_path / "store"
    run = CliRunner().invoke
    password = "a long password 123"
    res = run(cli, ["users", "add", "zoe", "--role", "analyst", "--password-stdin", "--store",
                    str(store)], input=password + "\n")  # fmt: skip
    assert res.exit_code == 0, res.output
    assert run(cli, ["users", "add", "zoe", "--role", "viewer", "--password-stdin", "--store",
                     str(store)], input=password + "\n").exit_code == 2  # fmt: skip
    bad_role = run(cli, ["users", "add", "yan", "--role", "root", "--password-stdin",
                         "--store", str(store)], input=password + "\n")  # fmt: skip
    assert bad_role.exit_code == 2 and "viewer" in bad_role.output
    short = run(cli, ["users", "add", "yan", "--role", "viewer", "--password-stdin", "--store",
                      str(store)], input="short\n")  # fmt: skip
    assert short.exit_code == 2 and "short" not in short.output
    listed = run(cli, ["users", "list", "--json", "--store", str(store)])
    doc = json.loads(listed.stdout)
    jsonschema.Draft202012Validator(load_schema("users-list")).validate(doc)
    assert doc["users"] == [{"name": "zoe", "role": "analyst", "n_patients": 0}]
    table = run(cli, ["users", "list", "--store", str(store)])
    assert table.exit_code == 0 and "zoe" in table.output
    raw = (store / "users.sqlite").read_bytes()
    assert password.encode() not in raw and b"$argon2id$" in raw
    # grants name stored patients only
    pstore, patient = prepared["store"], prepared["patients"][0]
    assert run(cli, ["users", "add", "yan", "--role", "viewer", "--password-stdin", "--store",
                     str(pstore)], input=password + "\n").exit_code == 0  # fmt: skip
    assert run(cli, ["users", "grant", "yan", patient, "--store", str(pstore)]).exit_code == 0
    nope = run(cli, ["users", "grant", "yan", "P0000000000", "--store", str(pstore)])
    assert nope.exit_code == 2
    assert run(cli, ["users", "grant", "yan", "MRN-7730021", "--store", str(pstore)]
               ).exit_code == 2  # fmt: skip
    out = run(cli, ["users", "revoke", "yan", patient, "--store", str(pstore)])
    assert out.exit_code == 0 and "revoked" in out.output
    actions = [a["action"] for a in audit(prepared) if a["pseudonym"] == patient]
    assert "grant" in actions and "revoke" in actions


def test_serve_binds_to_localhost_by_default() -> None:
    import inspect

    from hemolab.cli._web import serve

    defaults = {k: p.default for k, p in inspect.signature(serve).parameters.items()}
    assert defaults["host"] == "127.0.0.1" and defaults["port"] == 8000
    res = CliRunner().invoke(cli, ["serve", "--help"])
    assert res.exit_code == 0
    for flag in ("--host", "--port", "--store"):
        assert flag in res.output
    assert CliRunner().invoke(cli, ["serve", "--port", "0"]).exit_code == 2


def test_the_web_package_exports_its_names_sorted() -> None:
    import hemolab.web as web

    assert web.__all__ == sorted(web.__all__)
    assert set(web.__all__) == {n for n in dir(web) if not n.startswith("_")}


def test_the_limiter_forgets_expired_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    from hemolab.web import _guard

    monkeypatch.setattr(_guard, "MAX_KEYS", 10)
    limiter = _guard.RateLimiter(limit=2, window_s=0.05)
    for k in range(10):
        limiter.failed(f"user:{k}")
    assert limiter.retry_after("user:0") == 0  # one failure of two allowed
    time.sleep(0.1)
    limiter.failed("user:last")  # the eleventh key: the expired ten are dropped
    assert list(limiter._failures) == ["user:last"]


def test_result_metrics_of_long_and_per_patient_tables(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from hemolab.web._metrics import result_metrics

    long = tmp_path / "long.parquet"
    pq.write_table(pa.table({"variable": ["ANC", "ANC", "Circ"], "value": [1.0, 3.0, 2.0]}), long)
    assert result_metrics(long) == {"rows": 3, "ANC min": 1.0, "ANC max": 3.0, "Circ min": 2.0,
                                    "Circ max": 2.0}  # fmt: skip
    wide = tmp_path / "wide.parquet"
    pq.write_table(pa.table({"ANC_nadir": [0.5, 1.0, 2.0], "broken": [True, False, False],
                             "status": ["ok", "ok", "ok"]}), wide)  # fmt: skip
    assert result_metrics(wide) == {"rows": 3, "ANC_nadir (median)": 1.0,
                                    "broken (share true)": 0.333333}  # fmt: skip
    assert result_metrics(tmp_path / "missing.parquet") == {}


class InlineJobs:
    """A fake JobManager: runs a job's target in this process at once (coverage sees the
    worker functions; the real manager's spawned workers are tested above)."""

    def __init__(self) -> None:
        from hemolab.web._jobs import JobManager

        self.real = JobManager()
        self.stages: list[str] = []

    def submit(self, owner: str, kind: str, label: str, target: str, args: dict[str, Any], *,
               on_result: Any = None) -> Any:  # fmt: skip
        import importlib

        from hemolab.web._jobs import Job

        module, _, name = target.partition(":")
        fn = getattr(importlib.import_module(module), name)
        result = fn(args, lambda stage, done=0, total=0: self.stages.append(stage))
        if on_result is not None:
            result = on_result(result)
        job = Job(f"inline{len(self.real._jobs)}", owner, kind, label, status="done",
                  result=result)  # fmt: skip
        self.real._jobs[job.id] = job
        return job

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


@pytest.mark.slow
def test_a_fit_and_forecast_kept_in_the_patients_history(prepared: dict[str, Any]) -> None:
    with client(prepared) as c:
        c.app.state.web.jobs = InlineJobs()
        alice = signed_in(c.app, "alice")
        handle = alice.get("/api/patients").json()[0]["handle"]
        h = {"X-CSRF-Token": csrf_of(alice)}
        job = alice.post(f"/api/patients/{handle}/fit", headers=h,
                         json={"threshold": "Hb<7", "horizon_days": 182})  # fmt: skip
        assert job.status_code == 200
        result = alice.get(f"/api/jobs/{job.json()['id']}").json()["result"]
        assert "fit" not in result  # the fit file (with the pseudonym) stays on the server
        fc = result["forecast"]
        assert fc["t_last_observation"] == 184.0 and fc["method"] == "laplace"
        assert fc["t_last_observation"] < fc["lower"] < fc["median"] < fc["upper"]
        bands = result["bands"]
        assert all(lo <= mid <= hi for lo, mid, hi in zip(bands["q05"], bands["q50"],
                                                          bands["q95"], strict=True))  # fmt: skip
        assert len(result["observed"]["time"]) == 7
        history = alice.get(f"/api/patients/{handle}/forecasts").json()
        assert history[-1]["median"] == fc["median"]
    kept = [a for a in audit(prepared) if a["action"] == "forecast"]
    assert kept and kept[-1]["actor"] == "alice" and kept[-1]["via"] == "web"
    calibrated = [a for a in audit(prepared) if a["action"] == "calibrate"]
    assert calibrated[-1]["pseudonym"] == prepared["patients"][0]


def test_protocol_and_report_workers_in_process(prepared: dict[str, Any]) -> None:
    with client(prepared) as c:
        jobs = c.app.state.web.jobs = InlineJobs()
        alice = signed_in(c.app, "alice")
        h = {"X-CSRF-Token": csrf_of(alice)}
        run = alice.post(
            "/api/protocols/run",
            headers=h,
            json={"protocol": "docetaxel-protocol.toml", "population": 8},
        )
        result = alice.get(f"/api/jobs/{run.json()['id']}").json()["result"]
        assert result["n_patients"] == 8 and "solving" in jobs.stages
        rep = alice.post("/api/reports", headers=h, json={"experiments": [result["experiment"]]})
        name = alice.get(f"/api/jobs/{rep.json()['id']}").json()["result"]["report"]
        assert alice.get(f"/reports/{name}").status_code == 200
