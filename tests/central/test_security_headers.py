"""Every HTML page central serves carries the security headers and still renders under them."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from typing import Any

import pytest

from central import create_app, init_registry
from central.config import load_config
from tests.conftest import LiveServer, runtime

SAMPLE_ARGS = {"code": "MA01-HAT-BAG-20251109-00027-A9K2-X", "gtin": "04006381333931"}
SAMPLE_ARGS["qualifiers"] = "21/ABC123"


def get_routes(app: Any) -> list[tuple[str, str]]:
    """Return (endpoint, URL) of every GET route, its arguments filled with samples."""
    routes = []
    for rule in app.url_map.iter_rules():
        if "GET" not in (rule.methods or ()) or rule.endpoint == "static":
            continue
        path = rule.rule
        for name in rule.arguments:
            path = re.sub(rf"<(?:[a-z]+:)?{name}>", SAMPLE_ARGS.get(name, "x"), path)
        routes.append((rule.endpoint, path))
    return routes


def assert_page_headers(resp: Any, what: str) -> None:
    h = resp.headers
    csp = {
        part.split()[0]: part.split()[1:]
        for part in h.get("Content-Security-Policy", "").split(";")
        if part.strip()
    }
    assert csp.get("frame-ancestors") == ["'none'"], (what, h)
    assert csp.get("default-src") == ["'none'"], (what, csp)
    assert "'unsafe-inline'" not in sum(csp.values(), []), (what, csp)
    assert h.get("X-Frame-Options") == "DENY", what
    assert h.get("X-Content-Type-Options") == "nosniff", what
    assert h.get("Referrer-Policy") == "no-referrer", what
    # Whatever the page carries inline is allowed by this answer's nonce, and nothing else.
    nonce = next((s for s in csp.get("style-src", []) if s.startswith("'nonce-")), None)
    body = resp.get_data(as_text=True)
    for tag in re.findall(r"<style\b[^>]*>", body):
        assert nonce is not None and f'nonce="{nonce[7:-1]}"' in tag, (what, tag)
    # Scripts only as files from central itself: no inline script, no handler attributes.
    assert csp.get("script-src", ["'self'"]) == ["'self'"], (what, csp)
    for tag in re.findall(r"<script\b[^>]*>", body):
        assert re.search(r'\bsrc="/static/[\w.-]+\.js"', tag), (what, tag)
    assert not re.search(r"<script\b[^>]*>[^<]", body), what
    assert not re.search(r"\son\w+=", body) and " style=" not in body, what


def test_every_html_answer_carries_the_security_headers(client):
    app = client.application
    html = set()
    for endpoint, path in get_routes(app):
        resp = client.get(path, headers={"Accept": "text/html"})
        assert resp.headers.get("X-Content-Type-Options") == "nosniff", path
        if resp.mimetype == "text/html":
            html.add(endpoint)
            assert_page_headers(resp, path)
    assert {"public.verify_page", "public.verify_form", "public.digital_link"} <= html
    # Error pages under /v/ are HTML too; JSON errors carry nosniff.
    for resp in (client.post("/v/x"), client.delete("/v/x")):
        assert resp.mimetype == "text/html"
        assert_page_headers(resp, "error page")
    assert client.get("/nowhere").headers["X-Content-Type-Options"] == "nosniff"


def test_the_rate_limited_page_carries_the_security_headers(central_config):
    cfg = {**central_config, "verify_rate_limit": "1/hour"}
    init_registry(load_config(cfg), dt.datetime.now(dt.UTC))
    app = create_app(cfg)
    try:
        c = app.test_client()
        assert c.get("/v/ABC").status_code == 200
        resp = c.get("/v/ABC")
        assert resp.status_code == 429 and resp.mimetype == "text/html"
        assert_page_headers(resp, "429 page")
    finally:
        runtime(app).close()


@pytest.mark.browser
def test_the_verify_page_renders_in_chromium_without_csp_violations(tmp_path):
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("headless Chromium is needed (bash .ci/run installs it)", pytrace=False)
    cfg = {"home": str(tmp_path / "central"), "verify_flush_seconds": 0.05}
    init_registry(load_config(cfg), dt.datetime.now(dt.UTC))
    app = create_app(cfg)
    server = LiveServer(app)
    messages: list[str] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=chromium,
                args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"],
            )
            try:
                page = browser.new_page(viewport={"width": 390, "height": 844})
                page.on("console", lambda m: messages.append(f"{m.type}: {m.text}"))
                page.goto(server.url + "/v/")
                page.fill("#code", "MA01-HAT-BAG-20251109-00027-A9K2-X")
                page.click("button[type=submit]")  # the form posts to the page itself
                page.wait_for_selector("#verdict")
                # The nonce'd stylesheet applied: the verdict has its coloured background.
                background = page.eval_on_selector(
                    "#verdict", "e => getComputedStyle(e).backgroundColor"
                )
                assert background not in ("rgba(0, 0, 0, 0)", "transparent"), background
                page.screenshot(path=str(tmp_path / "verify-page-csp.png"), full_page=True)
            finally:
                browser.close()
    finally:
        server.close()
        runtime(app).close()
    violations = [m for m in messages if "Content Security Policy" in m or "Refused" in m]
    assert violations == [], violations
