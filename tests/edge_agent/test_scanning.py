"""Scans answered from the agent's own store: ours, not ours, voided; recorded as events."""

import json
import shutil
import urllib.request

import pytest

from edge_agent.issuing import Issuer, void_serial
from edge_agent.outbox import flush
from edge_agent.scanning import ScanDesk
from edge_agent.service import Service
from protocol.gs1 import GS, ai21_from_standard, digital_link, format_element_string, sgtin_fields
from tests.procs import wait_for

GTIN = "04006381333931"


@pytest.fixture
def line(agents):
    agent = agents.enroll()
    return agent, Issuer(agent), ScanDesk(agent)


def scanned_events(agent):
    return [
        json.loads(r["body"])
        for r in agent.store.conn().execute(
            "SELECT body FROM outbox WHERE type = 'scanned' ORDER BY seq"
        )
    ]


def test_every_way_a_serial_is_scanned_finds_it(line):
    agent, issuer, desk = line
    s = issuer.issue("WO-HAT-1").serial
    element = format_element_string(sgtin_fields(GTIN, s))
    link = digital_link("https://registry.example", GTIN, ai21_from_standard(s))
    for text in (
        s,
        "]C0" + s,
        "]d2" + element,
        "]C1" + element,
        "]Q1" + link,
        f"]Q1https://registry.example/v/{s}",
        s.lower(),
        "]d2" + GS + element,
    ):
        answer = desk.answer_text(text)
        assert (answer.verdict, answer.serial) == ("genuine", s), text
    assert len(scanned_events(agent)) == 8
    assert {e["data"]["source"] for e in scanned_events(agent)} == {"wedge"}


def test_not_ours_voided_and_unreadable(line):
    agent, issuer, desk = line
    s = issuer.issue("WO-HAT-1").serial
    void_serial(agent, s, "label torn")
    assert desk.answer_text(s).verdict == "voided"
    assert desk.answer_text("MA01-HAT-BAG-20251109-00027-A9K2-X").verdict == "not_ours"
    assert desk.answer_text("]E04006381333931").verdict == "not_ours"
    assert desk.answer_text("]d2" + "0104006381333931" + "21NOTOURS").verdict == "not_ours"
    assert desk.answer_text("]d2" + "99garbage").verdict == "not_ours"  # AI (99): internal
    assert desk.answer_text("\x00\xff junk").verdict == "unreadable"
    assert desk.answer_text("]d2" + "17271399").verdict == "unreadable"  # no 39 December
    assert len(scanned_events(agent)) == 1  # only the scan of our own serial is a fact
    assert [a["verdict"] for a in desk.recent()][:2] == ["unreadable", "unreadable"]


def test_scanned_events_reach_central(line, client):
    agent, issuer, desk = line
    s = issuer.issue("WO-HAT-1").serial
    desk.answer_text(s)
    summary = flush(agent)
    assert summary.results == {"accepted": 2}


@pytest.fixture
def service_with_scanner(agents):
    agent = agents.enroll(operator_port=0, sync_interval=0.2)
    svc = Service(agent, scanner_url="loop://?baud=9600")
    svc.start()
    try:
        yield svc, agent
    finally:
        svc.stop()


def post_scan(url, code, content_type="application/json"):
    body = (
        json.dumps({"code": code}).encode()
        if content_type == "application/json"
        else f"code={code}".encode()
    )
    req = urllib.request.Request(
        url + "scan", data=body, method="POST", headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_serial_scanner_and_wedge_on_the_operator_page(service_with_scanner):
    svc, agent = service_with_scanner
    s = Issuer(agent).issue("WO-HAT-1").serial
    wait_for(lambda: svc.scanner.state == "connected")
    svc.scanner.send(b"]C0" + s.encode() + b"\r\n")  # the scanner sends a frame
    wait_for(lambda: svc.status()["scans"] and svc.status()["scans"][0]["serial"] == s)
    assert svc.status()["scans"][0]["source"] == "scanner"
    status, body = post_scan(svc.operator_url, s)
    assert status == 200 and body["verdict"] == "genuine" and body["serial"] == s
    assert body["answered_ms"] >= 0
    # a form post (what a foreign web page could send without a preflight) is refused
    status, body = post_scan(svc.operator_url, s, "application/x-www-form-urlencoded")
    assert status == 400 and body["error"]["code"] == "ERR_SCAN_EMPTY"
    status, body = post_scan(svc.operator_url, "x" * 5000)
    assert status == 400


def test_the_operator_page_previews_the_next_label(service_with_scanner):
    from tests.printers.decoding import decode_png

    svc, agent = service_with_scanner
    with urllib.request.urlopen(
        svc.operator_url + "preview.png?work_order=WO-OEM-1", timeout=10
    ) as resp:
        assert resp.headers["Content-Type"] == "image/png"
        symbols = {d.symbology for d in decode_png(resp.read())}
    assert {"]C0", "]d2", "]Q1"} <= symbols
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(svc.operator_url + "preview.png?work_order=NOPE", timeout=10)


@pytest.mark.browser
def test_keyboard_wedge_scan_in_a_real_browser(service_with_scanner):
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("headless Chromium is needed (bash .ci/run installs it)", pytrace=False)
    svc, agent = service_with_scanner
    issuer = Issuer(agent)
    ours, voided = issuer.issue("WO-HAT-1").serial, issuer.issue("WO-HAT-1").serial
    void_serial(agent, voided, "label torn")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            page = browser.new_page()
            page.goto(svc.operator_url)
            for code, verdict in (
                (ours, "genuine"),
                (voided, "voided"),
                ("MA01-HAT-BAG-20251109-00027-A9K2-X", "not_ours"),
            ):
                page.focus("#scan")
                page.keyboard.type(code)  # a wedge scanner types like a keyboard ...
                page.keyboard.press("Enter")  # ... and ends with Enter
                page.wait_for_selector(f'#answer[data-verdict="{verdict}"]', timeout=10_000)
                assert page.input_value("#scan") == ""  # ready for the next scan
            assert page.locator("#preview").evaluate("img => img.naturalWidth") > 0
        finally:
            browser.close()


def test_our_serial_under_another_gtin_is_not_ours(line):
    agent, issuer, desk = line
    s = issuer.issue("WO-HAT-1").serial
    copied = format_element_string((("01", "09506000134352"), ("21", ai21_from_standard(s))))
    with agent.store.write() as conn:  # the line also makes a product with that GTIN
        conn.execute("UPDATE work_orders SET gtin = '09506000134352' WHERE number = 'WO-OEM-1'")
    assert desk.answer_text("]d2" + copied).verdict == "not_ours"
    assert (
        desk.answer_text("]d2" + format_element_string(sgtin_fields(GTIN, s))).verdict == "genuine"
    )


def test_a_pharma_carton_scans_whatever_ais_it_carries(line):
    """(01) (17) (10) (21) and national AIs (710)/(712) are read by biip: recognised."""
    agent, issuer, desk = line
    s = issuer.issue("WO-HAT-1").serial
    ai21 = ai21_from_standard(s)
    foreign = "]d2" + "0109506000134352" + "17271231" + "10LOT42" + GS + "21PK1234"
    for national in ("710" + "12345678", "712" + "AB12345", "711" + "123456789"):
        answer = desk.answer_text(foreign + GS + national)
        assert answer.verdict == "not_ours", answer
        assert answer.symbology == "gs1_datamatrix"
    # Our own serial on a carton that also carries expiry, lot and a German PZN.
    ours = "]d2" + "01" + GTIN + "17271231" + "10LOT42" + GS + "21" + ai21 + GS + "71012345678"
    assert desk.answer_text(ours).verdict == "genuine"
    link = f"]Q1https://id.example/01/{GTIN}/10/LOT42/21/{ai21}?17=271231"
    assert desk.answer_text(link).verdict == "genuine"
    assert len(scanned_events(agent)) == 2


@pytest.mark.parametrize(
    "frame",
    [
        "]d2" + "0109506000134355" + "17271231",  # GTIN check digit wrong
        "]d2" + "00106141412345678901",  # SSCC check digit wrong
        "]d2" + "0109506000134352" + "17271331",  # month 13
        "]d2" + "0109506000134352" + "21A" + GS + "21B",  # AI (21) twice
        "]d2" + "0109506000134352" + "21" + "A" * 21,  # AI (21) over 20 characters
        "]d2" + "710" + "x" * 25,  # AI (710) over 20 characters
        "]C1" + "(01)09506000134352(21)A",  # human-readable text is not an element string
        "]C1" + GS * 40,
        "]d2" + "01" * 2000,
    ],
)
def test_hostile_gs1_frames_are_unreadable_not_errors(line, frame):
    agent, _issuer, desk = line
    answer = desk.answer_text(frame)
    assert answer.verdict == "unreadable", answer
    assert scanned_events(agent) == []
