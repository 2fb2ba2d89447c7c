"""Public verify leaks nothing (#7): every "not ours" code answers `unknown` after the same
work, `malformed` is judged from the text alone, one client cannot inflate the customer-facing
count, preflights are free, and the 429 answers fit their audience."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa

from central import admin, create_app, init_registry
from central import tables as T
from central.config import load_config
from central.verify import verify_code, verify_gs1
from protocol.checkchar import mod37_36
from protocol.gs1 import ai21_from_standard
from protocol.serials import Scope, render
from tests.central.helpers import event, forged, grant, push, serial_of
from tests.conftest import runtime

API = "/api/public/serial/verify/"
GTIN = "04006381333931"  # the tenant fixture's product
OTHER_GTIN = "09506000134352"  # a valid GTIN nobody registered


@pytest.fixture
def issued(client, tenant):
    """Serial 1 issued (genuine), a lease of 10 granted for today."""
    h = tenant.enroll()
    g = grant(client, h, f"MA01-HAT-BAG-{tenant.today:%Y%m%d}", 10)
    push(client, h, [event("issued", serial_of(g, 1), g.lease_id, "WO-HAT-1")])
    return g


@contextmanager
def statements(app: Any) -> Iterator[list[str]]:
    """Record the shape of every SQL statement the store runs (parameters left out)."""
    seen: list[str] = []
    engine = runtime(app).store.engine

    def note(conn, cursor, statement, parameters, context, executemany):  # noqa: ARG001
        seen.append(re.sub(r"\s+", " ", statement))

    sa.event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", note)


def foreign_ai21(day: dt.date) -> str:
    """An AI (21) of our shape whose check character fits another org and category."""
    scope = Scope("ZZ99", "HAT", "CUP", day)
    return ai21_from_standard(render(scope, 3, b"k" * 32))


def test_every_not_ours_path_answers_unknown_after_the_same_queries(app, tenant, issued):
    rt = runtime(app)
    day = tenant.today
    never_leased = render(issued.scope, 9000, issued.key)  # no lease holds 9000
    unknown_org = render(Scope("ZZ99", "HAT", "BAG", day), 1, b"k" * 32)
    cases = {
        "unknown org": lambda: verify_code(rt.store, rt.keyring, unknown_org),
        "bad MAC": lambda: verify_code(rt.store, rt.keyring, forged(issued.scope, 5)),
        "unknown lease": lambda: verify_code(rt.store, rt.keyring, never_leased),
        "genuine": lambda: verify_code(rt.store, rt.keyring, serial_of(issued, 1)),
    }
    shapes = {}
    for name, run in cases.items():
        with statements(app) as seen:
            result = run()
        assert result.verdict == ("genuine" if name == "genuine" else "unknown"), name
        shapes[name] = seen
    assert shapes["unknown org"] == shapes["bad MAC"] == shapes["unknown lease"]
    assert shapes["genuine"] == shapes["bad MAC"]


def test_gs1_codes_not_ours_answer_unknown_whether_or_not_the_gtin_is_registered(
    app, client, tenant, issued
):
    rt = runtime(app)
    ai21 = foreign_ai21(tenant.today)
    # well formed, its check character right for ZZ99/CUP: only the org and category differ
    head = f"ZZ99HATCUP20{ai21[:6]}{ai21[9:14]}{ai21[14:18]}"
    assert mod37_36(head) == ai21[18]
    answers, shapes = {}, {}
    for name, gtin in (("registered", GTIN), ("unregistered", OTHER_GTIN)):
        with statements(app) as seen:
            answers[name] = verify_gs1(rt.store, rt.keyring, gtin, ai21).to_dict()
        shapes[name] = seen
        body = client.get(f"/01/{gtin}/21/{ai21}?format=json").json
        assert body["verdict"] == "unknown", (name, body)
    assert answers["registered"]["verdict"] == answers["unregistered"]["verdict"] == "unknown"
    assert set(answers["registered"]) == set(answers["unregistered"])
    assert shapes["registered"] == shapes["unregistered"]
    # A genuine GS1 scan still works, and runs the same queries as the foreign ones.
    mine = ai21_from_standard(serial_of(issued, 1))
    with statements(app) as seen:
        assert verify_gs1(rt.store, rt.keyring, GTIN, mine).verdict == "genuine"
    assert seen == shapes["registered"]


def test_malformed_is_judged_from_the_text_before_any_lookup(app, tenant, issued):
    rt = runtime(app)
    code = serial_of(issued, 1)
    typo = code[:-1] + ("A" if code[-1] != "A" else "B")
    gtin_typo = GTIN[:-1] + str((int(GTIN[-1]) + 1) % 10)
    cases = [
        lambda: verify_code(rt.store, rt.keyring, typo),  # check character
        lambda: verify_code(rt.store, rt.keyring, code[:-4]),  # cut short
        lambda: verify_code(rt.store, rt.keyring, code.replace("-", "_")),  # charset
        lambda: verify_gs1(rt.store, rt.keyring, gtin_typo, ai21_from_standard(code)),
        lambda: verify_gs1(rt.store, rt.keyring, GTIN, "A" * 21),  # too long for AI (21)
        lambda: verify_gs1(rt.store, rt.keyring, GTIN, "ab{c}"),  # not GS1 characters
    ]
    for run in cases:
        with statements(app) as seen:
            result = run()
        assert result.verdict == "malformed" and seen == [], (result, seen)


def test_unknown_answers_name_no_manufacturer_known_ones_do_in_minimal_mode(client, tenant, issued):
    genuine = client.get(API + serial_of(issued, 1)).json
    assert genuine["manufacturer"] == "Maison Atelier" and "details" not in genuine
    pending = client.get(API + serial_of(issued, 2)).json
    assert pending["verdict"] == "pending" and pending["manufacturer"] == "Maison Atelier"
    for code in (forged(issued.scope, 5), render(issued.scope, 9000, issued.key)):
        body = client.get(API + code).json
        assert body["verdict"] == "unknown" and "manufacturer" not in body


def _count(app: Any, serial: str) -> int:
    runtime(app).tally.flush()
    with runtime(app).store.read() as conn:
        n = conn.execute(
            sa.select(T.registry.c.verify_count).where(T.registry.c.serial == serial)
        ).scalar_one()
    return int(n)


def test_one_client_cannot_inflate_the_count_and_no_address_is_stored(app, client, issued):
    admin.set_flag(
        runtime(app).store, "MA01", "FF_VERIFY_PUBLIC_MODE", "standard", dt.datetime.now(dt.UTC)
    )
    code = serial_of(issued, 1)
    for _ in range(25):
        client.get(API + code, environ_base={"REMOTE_ADDR": "203.0.113.9"})
    for addr in ("2001:db8:aa:1::1", "2001:db8:aa:1:8000::2", "::ffff:203.0.113.9"):
        client.get(API + code, environ_base={"REMOTE_ADDR": addr})
    assert _count(app, code) == 2  # one IPv4 client (also IPv4-mapped), one IPv6 /64
    assert client.get(API + code).json["details"]["verifications"] == 2
    with runtime(app).store.read() as conn:
        stored = [
            str(v)
            for table in (T.verify_clients, T.verify_salts)
            for row in conn.execute(sa.select(table))
            for v in row
        ]
    assert stored and not any("203.0.113" in v or "2001:db8" in v for v in stored)


def test_a_days_salt_is_deleted_after_the_day_after(app, issued):
    rt = runtime(app)
    code = serial_of(issued, 1)
    start = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
    for days in (0, 1, 2):
        rt.tally.add(code, start + dt.timedelta(days=days), "198.51.100.1")
        rt.tally.flush()
    with rt.store.read() as conn:
        days_kept = sorted(r.day for r in conn.execute(sa.select(T.verify_salts)))
    assert days_kept == [dt.date(2026, 3, 2), dt.date(2026, 3, 3)]
    assert _count(app, code) == 3  # the same client on three days: three client-days


def test_a_code_checked_from_many_places_carries_a_warning(central_config):
    cfg = {**central_config, "verify_warn_client_days": 3}
    init_registry(load_config(cfg), dt.datetime.now(dt.UTC))
    app = create_app(cfg)
    try:
        rt = runtime(app)
        now = dt.datetime.now(dt.UTC)
        admin.add_tenant(rt.store, "MA01", "Maison Atelier", "Europe/Paris", now)
        admin.add_product(rt.store, "MA01", "TOTE-01", "BAG", "Tote bag", GTIN, now)
        admin.add_work_order(rt.store, "MA01", "WO-HAT-1", "TOTE-01", "HAT", 1000, now)
        code_ = admin.create_enroll_code(rt.store, "MA01", "L1", 1, now)
        enrolled = admin.enroll_agent(rt.store, code_.code, "host", "test", now)
        h = {"Authorization": f"Bearer {enrolled.token}"}
        c = app.test_client()
        import zoneinfo

        today = dt.datetime.now(zoneinfo.ZoneInfo("Europe/Paris")).date()
        g = grant(c, h, f"MA01-HAT-BAG-{today:%Y%m%d}", 5)
        push(c, h, [event("issued", serial_of(g, 1), g.lease_id, "WO-HAT-1")])
        code = serial_of(g, 1)
        for i in range(2):
            c.get(API + code, environ_base={"REMOTE_ADDR": f"192.0.2.{i + 1}"})
        rt.tally.flush()
        assert "warning" not in c.get(API + code).json  # 3 client-days only after this one
        rt.tally.flush()
        body = c.get(API + code).json
        assert body["warning"]["code"] == "checked_often" and body["warning"]["message"]
        page = c.get("/v/" + code).get_data(as_text=True)
        assert 'id="warning"' in page and "checked from many different places" in page
    finally:
        runtime(app).close()


def _limited_app(central_config: dict[str, Any], limit: str) -> Any:
    cfg = {**central_config, "verify_rate_limit": limit}
    init_registry(load_config(cfg), dt.datetime.now(dt.UTC))
    return create_app(cfg)


def test_cors_preflights_are_not_charged_to_the_verify_limit(central_config):
    app = _limited_app(central_config, "2/hour")
    try:
        c = app.test_client()
        pre = {"Origin": "https://shop.example", "Access-Control-Request-Method": "GET"}
        assert [c.options(API + "x", headers=pre).status_code for _ in range(5)] == [204] * 5
        assert [c.get(API + "x").status_code for _ in range(3)] == [200, 200, 429]
    finally:
        runtime(app).close()


def test_429_is_a_styled_page_for_people_and_the_error_shape_for_programs(central_config):
    app = _limited_app(central_config, "1/hour")
    try:
        c = app.test_client()
        assert c.get("/v/x").status_code == 200
        page = c.get("/v/x")
        assert page.status_code == 429 and page.mimetype == "text/html"
        assert int(page.headers["Retry-After"]) > 0
        html = page.get_data(as_text=True)
        # the verify page's look: its stylesheet, its result box, a form to try again
        assert 'href="/static/verify.css"' in html and 'class="result problem"' in html
        assert "Too many checks from your network" in html
        assert re.search(r"Please wait about \d+ minutes and try again", html), html
        assert '<form method="get" action="/v/"' in html
        # a Digital Link opened in a browser is a page too; asked for JSON it is the shape
        dl = c.get(f"/01/{GTIN}/21/ABC", headers={"Accept": "text/html"})
        assert dl.status_code == 429 and dl.mimetype == "text/html"
        api = c.get(API + "x", headers={"Origin": "https://shop.example"})
        assert api.status_code == 429 and int(api.headers["Retry-After"]) > 0
        assert api.headers["Access-Control-Allow-Origin"] == "*"
        assert api.json == {
            "ok": False,
            "error": {
                "code": "ERR_RATE_LIMITED",
                "message": "too many requests from your address; try again later",
            },
        }
        dl_json = c.get(f"/01/{GTIN}/21/ABC?format=json")
        assert dl_json.status_code == 429 and dl_json.json["error"]["code"] == "ERR_RATE_LIMITED"
    finally:
        runtime(app).close()
