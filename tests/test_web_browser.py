"""The web explorer in a real browser: ``hemolab serve`` in a subprocess on a free port over a
prepared store, driven by Playwright with Debian's Chromium (never a downloaded browser).

Covers signing in (the session cookie as the browser keeps it), a denied access, a
simulation whose plot follows a slider, a report download, and that no page breaks the
Content-Security-Policy. Screenshots go to ``test-artifacts/browser/``. Without Chromium or
Playwright the tests are skipped, except under CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._web import PASSWORD, make_store

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "test-artifacts" / "browser"


def _unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"browser tests cannot run under CI: {why}")
    pytest.skip(why)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    prepared = make_store(tmp_path_factory.mktemp("browser"))
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HEMOLAB_HOST_DEVICES": "1"}
    log = tmp_path_factory.mktemp("serverlog") / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from hemolab.cli import main; main()", "serve", "--port",
             str(port), "--store", str(prepared["store"])],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    try:
        while True:
            try:
                with urllib.request.urlopen(url + "/login", timeout=2) as res:
                    if res.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() - started > 90:
                raise AssertionError(f"hemolab serve did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield {"url": url, "startup_s": time.monotonic() - started, **prepared}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).is_file():
        _unavailable(f"{CHROMIUM} is missing (make install installs Debian's chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[dev]')")
        raise
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class Tab:
    """A page in a fresh browser context, with its console errors (CSP violations) kept."""

    def __init__(self, browser: Any, url: str) -> None:
        viewport = {"width": 1280, "height": 860}
        self.context = browser.new_context(accept_downloads=True, viewport=viewport)
        self.page = self.context.new_page()
        self.page.set_default_timeout(30_000)
        self.url = url
        self.errors: list[str] = []
        # script errors and CSP violations; an HTTP error status is the test's to check
        self.page.on("console", lambda m: m.type == "error" and not m.text.startswith(
            "Failed to load resource") and self.errors.append(m.text))  # fmt: skip
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def go(self, path: str) -> Any:
        return self.page.goto(self.url + path)

    def login(self, name: str, password: str = PASSWORD) -> None:
        self.go("/login")
        self.page.fill("input[name=name]", name)
        self.page.fill("input[name=password]", password)
        self.page.click("button[type=submit]")

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        assert not self.errors, self.errors
        self.context.close()


def test_login_keeps_a_secure_strict_http_only_cookie(server: dict[str, Any], browser: Any) -> None:
    tab = Tab(browser, server["url"])
    tab.go("/patients")
    assert tab.page.url.endswith("/login")  # signed out: to the login form
    tab.login("alice", "not the password")
    assert "wrong name or password" in tab.page.inner_text("main")
    tab.shot("01-login-failed")
    tab.login("alice")
    tab.page.wait_for_url(server["url"] + "/")
    assert "alice (analyst)" in tab.page.inner_text("header")
    (cookie,) = [c for c in tab.context.cookies() if c["name"] == "hemolab_session"]
    assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert tab.page.evaluate("document.cookie") == ""  # HttpOnly: no script reads it
    tab.shot("02-home")
    tab.page.click("text=Patients")
    tab.page.click("a[href^='/patients/']")
    tab.page.wait_for_selector("#labs-plot .main-svg")  # plotly drew the lab history
    assert "/P" not in tab.page.url  # a handle, never the pseudonym
    tab.shot("03-patient")
    tab.page.click("button:has-text('Sign out')")
    tab.page.wait_for_url(server["url"] + "/login")
    tab.close()


def test_a_denied_access(server: dict[str, Any], browser: Any) -> None:
    alice = Tab(browser, server["url"])
    alice.login("alice")
    alice.go("/patients")
    link = alice.page.get_attribute("a[href^='/patients/']", "href")
    bob = Tab(browser, server["url"])
    bob.login("bob")
    res = bob.go(link)  # alice's patient, by the link of alice's session
    assert res.status == 404 and "not found" in bob.page.inner_text("main")
    bob.shot("04-denied-patient")
    res = bob.go("/simulate")  # a viewer does not run simulations
    assert res.status == 403 and "analyst" in bob.page.inner_text("main")
    assert "Simulate" not in bob.page.inner_text("nav")
    bob.shot("05-denied-role")
    alice.close()
    bob.close()


def test_a_simulation_follows_the_sliders(server: dict[str, Any], browser: Any) -> None:
    from playwright.sync_api import expect

    tab = Tab(browser, server["url"])
    tab.login("alice")
    tab.go("/simulate?model=friberg_docetaxel")
    plot = tab.page.locator("#sim-plot")
    expect(plot).to_have_attribute("data-updates", "1", timeout=60_000)  # compiles first
    first = tab.page.inner_text("#sim-status")
    assert first.startswith("solved in")
    before = plot.evaluate("el => Math.min(...el.data[0].y)")
    tab.page.fill("#dose-amount", "60")  # a third of the dose: a shallower ANC nadir
    expect(plot).to_have_attribute("data-updates", "2")
    after = plot.evaluate("el => Math.min(...el.data[0].y)")
    assert after > before
    tab.page.locator("#p-MTT").fill("800")  # a longer maturation time: the slider moves
    expect(plot).to_have_attribute("data-updates", "3")
    ms = float(tab.page.inner_text("#sim-status").split()[2])
    assert ms < 3000, ms  # the compiled model is kept (about 0.1 s per update)
    tab.shot("06-simulate")
    tab.close()


def test_a_report_download(server: dict[str, Any], browser: Any, tmp_path: Path) -> None:
    tab = Tab(browser, server["url"])
    tab.login("bob")
    tab.go("/reports")
    tab.shot("07-reports")
    with tab.page.expect_download() as info:
        tab.page.click("a[download]")
    download = info.value
    assert download.suggested_filename == "summary.html"
    saved = tmp_path / "summary.html"
    download.save_as(saved)
    assert "a report" in saved.read_text()
    tab.close()


def test_a_long_run_shows_progress_and_is_cancelled(server: dict[str, Any], browser: Any) -> None:
    from playwright.sync_api import expect

    tab = Tab(browser, server["url"])
    tab.login("alice")
    tab.go("/protocols")
    row = tab.page.locator("form[data-protocol='docetaxel-protocol.toml']")
    row.locator("input[name=population]").fill("5000")
    row.locator("button").click()
    tab.page.wait_for_url("**/jobs/*")
    # the worker reports (a spawned process: it imports JAX first)
    expect(tab.page.locator("#job-status")).to_contain_text("/5000", timeout=60_000)
    tab.shot("08-job-running")
    tab.page.click("#job-cancel")
    expect(tab.page.locator("#job-status")).to_contain_text("cancelled")
    tab.go("/jobs")
    expect(tab.page.locator("#jobs tbody")).to_contain_text("cancelled")
    tab.shot("09-jobs")
    tab.close()
