"""The phone verify page in headless Chromium at phone size (#7): the serial never breaks
inside a part, the Verify button is thumb-sized, unknown and malformed are told apart in
words, the manufacturer, local dates and the checked-often warning show, and the 429 page
has the same look. Set LINELEDGER_SHOTS_DIR to keep the screenshots."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import zoneinfo
from pathlib import Path
from typing import Any

import pytest

from central import admin, create_app, init_registry
from central.config import load_config
from tests.central.helpers import event, forged, grant, push, serial_of
from tests.conftest import LiveServer, runtime

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FRENCH_MONTH = re.compile(
    r"^(janvier|février|mars|avril|mai|juin|juillet|août|septembre|octobre|novembre|décembre)"
    r" \d{4}$"
)


def _app(tmp_path: Path, name: str, **extra: Any) -> Any:
    cfg = {"home": str(tmp_path / name), "verify_flush_seconds": 0.05, **extra}
    init_registry(load_config(cfg), dt.datetime.now(dt.UTC))
    return create_app(cfg)


def _seed(app: Any) -> dict[str, str]:
    """Return codes in each state: genuine, warning (checked from 3 places), unknown, malformed."""
    rt = runtime(app)
    now = dt.datetime.now(dt.UTC)
    admin.add_tenant(rt.store, "MA01", "Maison Atelier", "Europe/Paris", now)
    admin.add_product(rt.store, "MA01", "TOTE-01", "BAG", "Tote bag", "04006381333931", now)
    admin.add_work_order(rt.store, "MA01", "WO-HAT-1", "TOTE-01", "HAT", 1000, now)
    admin.set_flag(rt.store, "MA01", "FF_VERIFY_PUBLIC_MODE", "standard", now)
    enroll = admin.create_enroll_code(rt.store, "MA01", "L1", 1, now)
    token = admin.enroll_agent(rt.store, enroll.code, "host", "test", now).token
    h = {"Authorization": f"Bearer {token}"}
    c = app.test_client()
    today = dt.datetime.now(zoneinfo.ZoneInfo("Europe/Paris")).date()
    g = grant(c, h, f"MA01-HAT-BAG-{today:%Y%m%d}", 10)
    push(
        c,
        h,
        [
            event("issued", serial_of(g, 1), g.lease_id, "WO-HAT-1"),
            event("issued", serial_of(g, 2), g.lease_id, "WO-HAT-1"),
        ],
    )
    for addr in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
        rt.tally.add(serial_of(g, 1), now - dt.timedelta(days=1), "198.51.100.3")
        rt.tally.add(serial_of(g, 2), now, addr)
    rt.tally.flush()
    genuine = serial_of(g, 1)
    return {
        "genuine": genuine,
        "warning": serial_of(g, 2),
        "unknown": forged(g.scope, 5),
        "malformed": genuine[:-7],  # the label's end not scanned
    }


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("headless Chromium is needed (bash .ci/run installs it)", pytrace=False)
    return path


def _layout(page: Any) -> dict[str, Any]:
    facts: dict[str, Any] = page.evaluate(
        """() => {
          const segs = [...document.querySelectorAll('#serial .seg')];
          const b = document.querySelector('button[type=submit]').getBoundingClientRect();
          const verdict = document.querySelector('#verdict');
          return {
            serial: document.querySelector('#serial')?.textContent ?? null,
            segs_broken: segs.filter(s => s.getClientRects().length !== 1).map(s => s.textContent),
            serial_lines: new Set(segs.map(s => Math.round(s.getBoundingClientRect().top))).size,
            button_h: b.height, button_w: b.width,
            verdict: verdict ? verdict.textContent.trim() : null,
            verdict_bg: verdict ? getComputedStyle(verdict).backgroundColor : null,
            overflow: document.documentElement.scrollWidth > window.innerWidth,
          };
        }"""
    )
    return facts


def test_the_phone_verify_page(tmp_path):
    shots = Path(os.environ.get("LINELEDGER_SHOTS_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    app = _app(tmp_path, "main", verify_warn_client_days=3)
    limited = _app(tmp_path, "limited", verify_rate_limit="1/hour")
    codes = _seed(app)
    server, limited_server = LiveServer(app), LiveServer(limited)
    messages: list[str] = []
    statics: list[tuple[str, int]] = []
    seen: dict[str, dict[str, Any]] = {}
    try:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=_chromium(),
                args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"],
            )
            try:
                for width in (390, 320):
                    context = browser.new_context(
                        viewport={"width": width, "height": 844}, locale="fr-FR"
                    )
                    page = context.new_page()
                    page.on("console", lambda m: messages.append(f"{m.type}: {m.text}"))
                    page.on("response", lambda r: statics.append((r.url, r.status)))
                    for state, code in codes.items():
                        page.goto(f"{server.url}/v/{code}")
                        page.wait_for_selector("#verdict")
                        if state in ("genuine", "warning"):
                            page.wait_for_selector("time[data-localised]")
                            month = page.text_content("time[data-format=month]") or ""
                            assert FRENCH_MONTH.match(month), month
                        seen[f"{state}-{width}"] = facts = _layout(page)
                        facts["page"] = page.content()
                        page.screenshot(path=str(shots / f"verify-{state}-{width}.png"))
                    page.goto(f"{limited_server.url}/v/{codes['genuine']}")
                    resp = page.goto(f"{limited_server.url}/v/{codes['genuine']}")
                    assert resp is not None and resp.status == 429
                    assert int(resp.headers["retry-after"]) > 0
                    seen[f"429-{width}"] = facts = _layout(page)
                    facts["page"] = page.content()
                    page.screenshot(path=str(shots / f"verify-429-{width}.png"))
                    context.close()
            finally:
                browser.close()
    finally:
        server.close()
        limited_server.close()
        runtime(app).close()
        runtime(limited).close()
    for name, facts in seen.items():
        assert facts["button_h"] >= 44 and facts["button_w"] >= 44, (name, facts)
        assert not facts["overflow"], name
        assert facts["verdict_bg"] not in ("rgba(0, 0, 0, 0)", "transparent"), name
        if not name.startswith("429"):
            assert facts["segs_broken"] == [], (name, facts)
            state = name.split("-")[0]
            assert facts["serial"] == codes[state], (name, facts["serial"])
    # The full serial fits on one line of a 390 px phone.
    assert seen["genuine-390"]["serial_lines"] == 1
    assert seen["unknown-390"]["verdict"] == "We don't recognise this code"
    assert seen["malformed-390"]["verdict"] == "This doesn't look like a complete code"
    assert "scanned the whole label" in seen["malformed-390"]["page"]
    assert "Maison Atelier" in seen["genuine-390"]["page"]
    assert "Maison Atelier" not in seen["unknown-390"]["page"]
    assert 'id="warning"' in seen["warning-390"]["page"]
    assert 'id="warning"' not in seen["genuine-390"]["page"]
    assert seen["429-390"]["verdict"] == "Too many checks from your network"
    violations = [m for m in messages if "Content Security Policy" in m or "Refused" in m]
    assert violations == [], violations
    # The page's stylesheet and script came from central itself, every time.
    static = [(u, st) for u, st in statics if "/static/" in u]
    assert {u.rsplit("/", 1)[1] for u, _ in static} == {"verify.css", "verify.js"}
    assert all(st in (200, 304) for _, st in static), static
