"""The operator page as a line operator sees it: a real service, a real browser.

The service runs with a real store, a real central on loopback and the printer simulator on
a real socket; headless Chromium (Debian's, driven by Playwright) reads the page. With
LINELEDGER_SCREENSHOT_DIR set, the screenshots are kept there for a person to look at.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import shutil
import socket
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from edge_agent.issuing import Issuer
from edge_agent.service import Service
from edge_agent.web import BackgroundServer, create_operator_app
from printers.simulator import PrinterSimulator
from protocol.serials import Scope, render
from tests.printers.decoding import decode_png
from tests.procs import HANG_GUARD, edge, json_lines, wait_for

# Browser waits are for conditions; the timeout only says "this hangs" (see tests.procs).
WAIT_MS = HANG_GUARD * 1000
DESKTOP = {"width": 1280, "height": 800}
TABLET = {"width": 768, "height": 1024}
# Longest standard serial: a 6-character org and a 4-letter category (not this line's).
LONG_SERIAL = render(Scope("MAISON", "HAT", "BAGS", dt.date(2025, 11, 9)), 27, b"k" * 32)


@pytest.fixture
def line(agents) -> Iterator[tuple[Service, Any, PrinterSimulator]]:
    agent = agents.enroll(operator_port=0, sync_interval=0.2, pool_interval=0.5)
    with PrinterSimulator() as sim:
        svc = Service(agent, sim.url)
        svc.start()
        try:
            wait_for(lambda: svc.status()["pool"])  # numbers on hand: the line can issue
            yield svc, agent, sim
        finally:
            svc.stop()


@contextmanager
def chromium_page(viewport: dict[str, int]) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("headless Chromium is needed (bash .ci/run installs it)", pytrace=False)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"],
        )
        try:
            yield browser.new_page(viewport=viewport)
        finally:
            browser.close()


def keep_screenshot(page: Any, tmp_path: Path, name: str) -> None:
    shot = tmp_path / f"operator-{name}.png"
    page.screenshot(path=str(shot), full_page=True)
    keep = os.environ.get("LINELEDGER_SCREENSHOT_DIR")
    if keep:  # for a person to look at
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)


def issue_cli(agent: Any, count: int = 1, *extra: str) -> list[dict[str, Any]]:
    """Issue with `lineledger-edge issue`, the way a supervisor or a line script does."""
    home = str(agent.config.home_path)
    out = edge(Path(home), "issue", "--work-order", "WO-HAT-1", "--count", str(count), *extra)
    return json_lines(out.stdout)


def printer_shown(page: Any) -> dict[str, str]:
    return page.eval_on_selector(
        "#printer-state",
        "e => ({text: e.innerText, state: e.dataset.state || '', title: e.title || ''})",
    )


# Each token of a serial (the parts between hyphens) lies on one line: the browser may
# break a serial only after a hyphen.
TOKENS_ON_ONE_LINE = """
els => els.flatMap(el => {
  const out = [];
  const text = el.textContent;
  const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
  const nodes = [];
  while (walker.nextNode()) nodes.push(walker.currentNode);
  for (const node of nodes) {
    let start = 0;
    for (const part of node.textContent.split("-")) {
      if (part) {
        const r = document.createRange();
        r.setStart(node, start);
        r.setEnd(node, start + part.length);
        const lines = new Set([...r.getClientRects()].map(q => Math.round(q.top)));
        out.push({serial: text, token: part, lines: lines.size});
      }
      start += part.length + 1;
    }
  }
  return out;
})
"""


@pytest.mark.browser
def test_printer_states_in_words_with_the_code_kept_for_support(line, tmp_path):
    svc, agent, sim = line
    for viewport, size in ((DESKTOP, "desktop"), (TABLET, "tablet")):
        with chromium_page(viewport) as page:
            page.goto(svc.operator_url)
            # Nothing printed yet: the printer was never asked.
            shown = printer_shown(page)
            assert shown["text"] == "Checking…" and shown["state"] == "unknown"
            assert "unknown" not in page.inner_text("#printer")
            keep_screenshot(page, tmp_path, f"not-checked-{size}")
    issue_cli(agent, 1, "--print", "--printer", sim.url)
    wait_for(lambda: svc.status()["printer"]["state"] == "ready")
    with chromium_page(DESKTOP) as page:
        page.goto(svc.operator_url)
        shown = printer_shown(page)
        assert shown["text"] == "Ready" and shown["state"] == "ready"
        assert "ready to print" in page.inner_text("#printer-message")
        keep_screenshot(page, tmp_path, "ready-desktop")
        for fault, words in (
            ("paper_out", "Out of labels"),
            ("head_open", "Print head open"),
            ("paused", "Printer paused"),
            ("no_answer", "Printer not answering"),
        ):
            sim.set_fault(fault)
            Issuer(agent).issue("WO-HAT-1", printer_url=sim.url)
            # The page refreshes itself.
            page.wait_for_function(
                "s => document.getElementById('printer-state').dataset.state === s",
                arg=fault,
                timeout=WAIT_MS,
            )
            shown = printer_shown(page)
            assert shown["text"] == words, fault
            assert fault in shown["title"]  # support reads the machine code
            if "_" in fault:
                assert fault not in page.inner_text("#printer")
            if fault == "paper_out":
                assert "load a new roll" in page.inner_text("#printer-message")
                keep_screenshot(page, tmp_path, "paper-out-desktop")
                page.set_viewport_size(TABLET)
                keep_screenshot(page, tmp_path, "paper-out-tablet")
                page.set_viewport_size(DESKTOP)
        sim.set_fault(None)
        page.wait_for_function(
            "document.getElementById('printer-state').textContent === 'Ready'", timeout=WAIT_MS
        )
    # The server-rendered page says the same before any script runs.
    sim.set_fault("paper_out")
    Issuer(agent).issue("WO-HAT-1", printer_url=sim.url)
    wait_for(lambda: svc.status()["printer"]["state"] == "paper_out")
    with chromium_page(DESKTOP) as page:
        with urllib.request.urlopen(svc.operator_url, timeout=10) as resp:
            html = resp.read().decode()
        page.set_content(html.split("<script>")[0])  # the HTML as sent, no script run
        shown = printer_shown(page)
        assert shown["text"] == "Out of labels" and shown["state"] == "paper_out"


@pytest.mark.browser
def test_next_label_preview_is_readable_marked_sample_and_shows_the_real_next_number(
    line, tmp_path
):
    svc, agent, sim = line
    for viewport, size in ((DESKTOP, "desktop"), (TABLET, "tablet")):
        with chromium_page(viewport) as page:
            page.goto(svc.operator_url)
            page.wait_for_function(
                "() => { const i = document.getElementById('preview');"
                " return i.complete && i.naturalWidth > 0; }",
                timeout=WAIT_MS,
            )
            mark = page.locator("#sample-mark")
            assert mark.is_visible() and mark.inner_text().strip().startswith("SAMPLE")
            # The mark lies over the picture, not somewhere else on the page.
            img = page.locator("#preview").bounding_box()
            box = mark.bounding_box()
            assert img is not None and box is not None
            assert img["x"] <= box["x"] + box["width"] / 2 <= img["x"] + img["width"]
            assert img["y"] <= box["y"] + box["height"] / 2 <= img["y"] + img["height"]
            # Readable: not shrunk below the label's own pixels, and at least 10 cm wide
            # on a 96 dpi screen... or the whole card when the screen is narrower.
            natural = page.locator("#preview").evaluate("i => i.naturalWidth")
            assert img["width"] >= min(natural, 360), (img, natural)
            next_shown = page.inner_text("#next-serial").replace("\n", "")
            if size == "desktop":
                keep_screenshot(page, tmp_path, "next-label-desktop")
            else:
                keep_screenshot(page, tmp_path, "next-label-tablet")
    # The number shown is the one `issue` hands out next.
    issued = issue_cli(agent)[0]["serial"]
    assert next_shown == issued
    with chromium_page(DESKTOP) as page:
        page.goto(svc.operator_url)
        before = page.eval_on_selector("#next-serial", "e => e.textContent")
        assert before != issued
        after = issue_cli(agent)[0]["serial"]
        assert before == after
        # The page follows what the line issues, without a reload.
        page.wait_for_function(
            "s => document.getElementById('next-serial').textContent !== s",
            arg=before,
            timeout=WAIT_MS,
        )
        shown = page.inner_text("#next-serial").replace("\n", "")
        assert shown == issue_cli(agent)[0]["serial"]


@pytest.mark.browser
def test_serials_wrap_only_at_hyphens(line, tmp_path):
    svc, agent, sim = line
    ours = Issuer(agent).issue("WO-HAT-1").serial
    for viewport, size in (
        (DESKTOP, "desktop"),
        (TABLET, "tablet"),
        ({"width": 360, "height": 740}, "phone"),
    ):
        with chromium_page(viewport) as page:
            page.goto(svc.operator_url)
            for code, verdict in ((LONG_SERIAL, "not_ours"), (ours, "genuine")):
                page.focus("#scan")
                page.keyboard.type(code)
                page.keyboard.press("Enter")
                page.wait_for_selector(f'#answer[data-verdict="{verdict}"]', timeout=WAIT_MS)
            page.wait_for_function(
                "n => document.querySelectorAll('#scans .serial').length >= n",
                arg=1,
                timeout=WAIT_MS,
            )
            tokens = page.eval_on_selector_all(".serial", TOKENS_ON_ONE_LINE)
            shown = {t["serial"].replace("\n", "") for t in tokens}
            assert {LONG_SERIAL, ours} <= shown
            split = [t for t in tokens if t["lines"] != 1]
            assert split == [], split
            # Nothing sticks out of its card: the page needs no sideways scrolling.
            assert page.evaluate(
                "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
            )
            if size == "desktop":
                # Wide enough: the next serial is one line, as tall as one line of its font.
                one_line = page.eval_on_selector(
                    "#next-serial",
                    "e => { const r = e.getBoundingClientRect();"
                    " return r.height < 2 * parseFloat(getComputedStyle(e).fontSize); }",
                )
                assert one_line
            keep_screenshot(page, tmp_path, f"long-serial-{size}")


@pytest.mark.browser
def test_the_page_counts_only_its_own_printers_jobs(line, tmp_path):
    svc, agent, sim = line
    gone = "tcp://127.0.0.1:9"  # the printer this line used before; it is not there now
    issuer = Issuer(agent)
    for _ in range(3):
        issuer.issue("WO-HAT-1", printer_url=gone)
    issuer.issue("WO-HAT-1", printer_url=sim.url)
    wait_for(lambda: svc.status()["printer"]["jobs"]["sent"] == 1)
    with chromium_page(DESKTOP) as page:
        page.goto(svc.operator_url)
        page.wait_for_function(
            "document.getElementById('jobs-sent').textContent === '1'", timeout=WAIT_MS
        )
        assert page.inner_text("#jobs-queued") == "0"
        assert page.inner_text("#jobs-failed") == "0"
    counts = svc.status()["printer"]["jobs"]
    assert counts["queued"] + counts["failed"] == 0 and counts["sent"] == 1


def raw_http(port: int, request: bytes) -> tuple[int, str, bytes]:
    """Send bytes to the server and return (status, content type, body) of its answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        try:
            s.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), headers.get("Content-Type", ""), body


def assert_error_shape(status: int, ctype: str, body: bytes, want: int, code: str) -> None:
    assert status == want, (status, body[:300])
    assert ctype.startswith("application/json"), (ctype, body[:300])
    answer = json.loads(body)
    assert answer["ok"] is False and set(answer) == {"ok", "error"}
    assert answer["error"]["code"] == code and answer["error"]["message"]


def test_every_error_of_the_page_is_json_in_the_one_shape(line):
    svc, agent, sim = line
    port = int(svc.operator_url.rstrip("/").rsplit(":", 1)[1])
    host = f"Host: 127.0.0.1:{port}\r\n".encode()
    big = b'{"code": "' + b"x" * (64 * 1024) + b'"}'
    cases = [
        # A body over the limit, announced by its length: refused before it is read.
        (
            b"POST /scan HTTP/1.1\r\n" + host + b"Content-Type: application/json\r\n"
            b"Content-Length: 2000000000\r\nConnection: close\r\n\r\n",
            413,
            "ERR_TOO_LARGE",
        ),
        (
            b"POST /link HTTP/1.1\r\n" + host + b"Content-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(big) + big,
            413,
            "ERR_TOO_LARGE",
        ),
        # The same, chunked.
        (
            b"POST /scan HTTP/1.1\r\n" + host + b"Content-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            + b"%x\r\n" % len(big)
            + big
            + b"\r\n0\r\n\r\n",
            413,
            "ERR_TOO_LARGE",
        ),
        (b"GET /nope HTTP/1.1\r\n" + host + b"Connection: close\r\n\r\n", 404, "ERR_NOT_FOUND"),
        (
            b"DELETE /scan HTTP/1.1\r\n" + host + b"Connection: close\r\n\r\n",
            405,
            "ERR_METHOD_NOT_ALLOWED",
        ),
        (b"NONSENSE\r\n\r\n", 400, "ERR_BAD_REQUEST"),
        (
            b"GET / HTTP/1.1\r\n" + host + b"X-Big: " + b"a" * 300_000 + b"\r\n\r\n",
            431,
            "ERR_HEADERS_TOO_LARGE",
        ),
    ]
    for request, want, code in cases:
        assert_error_shape(*raw_http(port, request), want, code)


def test_an_internal_error_is_json_in_the_one_shape(tmp_path):
    def broken() -> dict[str, Any]:
        raise RuntimeError("status is broken")

    server = BackgroundServer(create_operator_app(broken), "127.0.0.1", 0).start()
    try:
        for path in (b"/", b"/status.json"):
            status, ctype, body = raw_http(
                server.port, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            assert_error_shape(status, ctype, body, 500, "ERR_INTERNAL")
            assert b"status is broken" not in body  # no internals to the browser
    finally:
        server.stop()


def get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def test_next_json_names_what_issue_hands_out_and_why_it_would_refuse(agents, tenant):
    from central import admin
    from tests.conftest import runtime

    admin.add_work_order(
        runtime(tenant.app).store, "MA01", "WO-SMALL", "TOTE-01", "OEM", 2, dt.datetime.now(dt.UTC)
    )
    agent = agents.enroll()
    server = BackgroundServer(create_operator_app(lambda: {}, agent), "127.0.0.1", 0).start()
    try:
        issuer = Issuer(agent)
        for _ in range(2):
            status, shown = get(server.url + "/next.json?work_order=WO-SMALL")
            assert status == 200 and shown["refusal"] is None
            # The picture carries that number too, framed in red bands outside the label.
            with urllib.request.urlopen(
                server.url + "/preview.png?work_order=WO-SMALL", timeout=10
            ) as resp:
                png = resp.read()
            code128 = [d.text for d in decode_png(png) if d.symbology == "]C0"]
            assert code128 == [shown["serial"]]
            with Image.open(io.BytesIO(png)) as picture:
                assert picture.convert("RGB").getpixel((2, 2)) == (176, 0, 32)
            issued = issuer.issue("WO-SMALL")
            assert (shown["serial"], shown["seq"]) == (issued.serial, issued.seq)
        status, shown = get(server.url + "/next.json?work_order=WO-SMALL")
        assert status == 200 and shown["refusal"]["code"] == "ERR_WORK_ORDER_COMPLETE"
        status, shown = get(server.url + "/next.json?work_order=NOPE")
        assert status == 404 and shown["ok"] is False and shown["error"]["code"]
    finally:
        server.stop()
