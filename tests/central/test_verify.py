import datetime as dt
import time

import pytest
import sqlalchemy as sa

from central import admin, create_app
from central import tables as T
from central.verify import VERDICTS
from tests.central.helpers import event, forged, grant, push, serial_of
from tests.conftest import runtime

API = "/api/public/serial/verify/"


def scope(tenant):
    return f"MA01-HAT-BAG-{tenant.today:%Y%m%d}"


@pytest.fixture
def issued(client, tenant):
    """Serial 1 issued and printed, 2 granted but not synced, 3 voided."""
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 10)
    push(
        client,
        h,
        [
            event("issued", serial_of(g, 1), g.lease_id, "WO-HAT-1"),
            event("printed", serial_of(g, 1)),
            event("issued", serial_of(g, 3), g.lease_id, "WO-HAT-1"),
            event("voided", serial_of(g, 3)),
        ],
    )
    return g


def verdict(client, code):
    resp = client.get(API + code)
    assert resp.status_code == 200, resp.json
    assert resp.json["ok"] is True and resp.json["verdict"] in VERDICTS
    return resp.json


def test_genuine(client, issued):
    body = verdict(client, serial_of(issued, 1))
    assert body["verdict"] == "genuine" and body["serial"] == serial_of(issued, 1)
    assert "details" not in body  # minimal privacy mode by default


def test_pending_means_valid_mac_not_yet_synced(client, issued):
    assert verdict(client, serial_of(issued, 2))["verdict"] == "pending"


def test_forged_mac_and_never_issued_look_the_same(client, issued):
    fake = verdict(client, forged(issued.scope, 5))
    from protocol.serials import render

    never = verdict(client, render(issued.scope, 9000, issued.key))  # no lease holds 9000
    assert fake["verdict"] == never["verdict"] == "unknown"
    assert set(fake) == set(never)


def test_typo_is_malformed(client, issued):
    code = serial_of(issued, 1)
    i = code.index("-", 14) + 3  # a digit of the sequence number
    typo = code[:i] + ("7" if code[i] != "7" else "8") + code[i + 1 :]
    body = verdict(client, typo)
    assert body["verdict"] == "malformed" and body["reason"] == "ERR_SERIAL_CHECK"
    for junk in ["x", "MA01", "%00%ff", "A" * 300, "../../etc/passwd", "MA01-HAT-BAG-2025"]:
        assert verdict(client, junk)["verdict"] == "malformed"


def test_lower_case_and_spaces_are_forgiven(client, issued):
    code = serial_of(issued, 1)
    assert verdict(client, f"  {code.lower()} ")["verdict"] == "genuine"


def test_voided_and_under_review(app, client, tenant, issued):
    assert verdict(client, serial_of(issued, 3))["verdict"] == "voided"
    h = tenant.enroll("L9")
    push(client, h, [event("issued", serial_of(issued, 1), issued.lease_id)])  # another agent
    assert verdict(client, serial_of(issued, 1))["verdict"] == "under_review"


def test_unknown_tenant(client):
    from protocol.serials import Scope, render

    code = render(Scope("ZZ99", "HAT", "BAG", dt.date(2025, 1, 1)), 1, b"k" * 32)
    assert verdict(client, code)["verdict"] == "unknown"


def test_standard_mode_shows_product_and_clone_signals_without_personal_data(
    app, client, tenant, issued
):
    admin.set_flag(
        runtime(app).store, "MA01", "FF_VERIFY_PUBLIC_MODE", "standard", dt.datetime.now(dt.UTC)
    )
    code = serial_of(issued, 1)
    verdict(client, code)
    runtime(app).tally.flush()
    body = verdict(client, code)
    d = body["details"]
    assert d["product"] == "Tote bag" and d["manufacturer"] == "Maison Atelier"
    assert d["production_month"] == f"{tenant.today:%Y-%m}"
    assert d["verifications"] == 1 and "first_verified_at" in d
    assert not {"line_agent", "work_order", "state"} & set(d)


def test_internal_mode_is_not_public(app, client, issued):
    admin.set_flag(
        runtime(app).store, "MA01", "FF_VERIFY_PUBLIC_MODE", "internal", dt.datetime.now(dt.UTC)
    )
    d = verdict(client, serial_of(issued, 1))["details"]
    assert "line_agent" not in d and "work_order" not in d


def test_the_brand_is_shown_in_every_mode_but_never_for_unknown(app, client, tenant, issued):
    """#7: the product's brand is a top-level field, in `minimal` mode too, and on the page."""
    store = runtime(app).store
    code = serial_of(issued, 1)
    assert "brand" not in verdict(client, code)  # no brand set: none shown
    admin.set_product_brand(store, "MA01", "TOTE-01", "Acme & Co <Travel>")
    body = verdict(client, code)
    assert body["verdict"] == "genuine" and "details" not in body  # minimal mode
    assert body["brand"] == "Acme & Co <Travel>"
    assert body["manufacturer"] == "Maison Atelier"
    assert verdict(client, serial_of(issued, 3))["brand"] == "Acme & Co <Travel>"  # voided
    pending = verdict(client, serial_of(issued, 2))
    assert pending["verdict"] == "pending" and "brand" not in pending  # no product known yet
    assert "brand" not in verdict(client, forged(issued.scope, 5))  # unknown
    assert "brand" not in verdict(client, "MA01-HAT")  # malformed
    page = client.get("/v/" + code).get_data(as_text=True)
    assert (
        "Made by <strong>Maison Atelier</strong> · "
        '<span id="brand">Acme &amp; Co &lt;Travel&gt;</span>'
    ) in page
    admin.set_flag(store, "MA01", "FF_VERIFY_PUBLIC_MODE", "standard", dt.datetime.now(dt.UTC))
    body = verdict(client, code)
    assert body["brand"] == "Acme & Co <Travel>" and body["details"]["product"] == "Tote bag"
    page = client.get("/v/" + code).get_data(as_text=True)
    assert '<span id="brand">Acme &amp; Co &lt;Travel&gt;</span> · Tote bag' in page
    assert 'id="brand"' not in client.get("/v/" + forged(issued.scope, 5)).get_data(as_text=True)
    push(client, tenant.enroll("L9"), [event("issued", code, issued.lease_id)])  # another agent
    body = verdict(client, code)
    assert body["verdict"] == "under_review" and body["brand"] == "Acme & Co <Travel>"


def test_verification_counts_are_flushed_in_the_background(app, client, issued):
    """Distinct clients count: each address once a day, an IPv6 /64 as one client."""
    code = serial_of(issued, 1)
    for addr in ["198.51.100.7"] * 3 + ["2001:db8:1:2::5", "2001:db8:1:2:ffff::9", "10.0.0.1"]:
        assert client.get(API + code, environ_base={"REMOTE_ADDR": addr}).status_code == 200
    deadline = time.time() + 10
    count = 0
    while time.time() < deadline and count < 3:
        with runtime(app).store.read() as conn:
            count = conn.execute(
                sa.select(T.registry.c.verify_count).where(T.registry.c.serial == code)
            ).scalar()
        time.sleep(0.05)
    assert count == 3


def test_cors_and_no_store(client, issued):
    resp = client.get(API + serial_of(issued, 1), headers={"Origin": "https://shop.example"})
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert resp.headers["Cache-Control"] == "no-store"
    pre = client.options(
        API + serial_of(issued, 1),
        headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "GET"},
    )
    assert pre.status_code == 204
    assert "GET" in pre.headers["Access-Control-Allow-Methods"]


def test_rate_limit_answers_429_in_the_error_shape(central_config, tmp_path):
    from central import init_registry
    from central.config import load_config

    cfg = {**central_config, "verify_rate_limit": "5/hour"}
    init_registry(load_config(cfg), dt.datetime.now(dt.UTC))
    app = create_app(cfg)
    try:
        c = app.test_client()
        codes = [c.get(API + "x").status_code for _ in range(5)]
        assert codes == [200] * 5
        resp = c.get(API + "x")
        assert resp.status_code == 429
        assert resp.json["ok"] is False and resp.json["error"]["code"] == "ERR_RATE_LIMITED"
        assert int(resp.headers["Retry-After"]) > 0
        # another client address has its own budget
        other = c.get(API + "x", environ_base={"REMOTE_ADDR": "10.9.8.7"})
        assert other.status_code == 200
        # the page shares the budget and answers in HTML
        page = c.get("/v/x")
        assert page.status_code == 429 and b'data-error="ERR_RATE_LIMITED"' in page.data
    finally:
        runtime(app).close()


def test_verify_page_for_phones(client, issued):
    resp = client.get("/v/" + serial_of(issued, 1))
    assert resp.status_code == 200
    assert b'data-verdict="genuine"' in resp.data
    form = client.get("/v/?code=" + serial_of(issued, 1))
    assert form.status_code == 302 and form.headers["Location"].endswith(serial_of(issued, 1))
    assert b"<form" in client.get("/v/").data
    page = client.get("/v/<script>alert(1)</script>").data.lower()
    assert b"&lt;script&gt;" in page and b"<script>alert" not in page


def test_enrollment_is_rate_limited_against_code_guessing(central_config):
    from central import init_registry
    from central.config import load_config

    cfg = {**central_config, "enroll_rate_limit": "3/minute"}
    init_registry(load_config(cfg), dt.datetime.now(dt.UTC))
    app = create_app(cfg)
    try:
        c = app.test_client()
        codes = [
            c.post("/api/edge/v1/enroll", json={"code": f"GUESS-{i}"}).status_code for i in range(4)
        ]
        assert codes == [401, 401, 401, 429]
    finally:
        runtime(app).close()


def test_key_rotation_while_serving_old_serials_still_verify(app, client, tenant, issued):
    """`keys rotate` runs in another process; the running server picks the new key up."""
    from central.keyring import Keyring

    rt = runtime(app)
    other_process_keyring = Keyring.load(rt.keyring.path)
    assert admin.rotate_keys(rt.store, other_process_keyring, dt.datetime.now(dt.UTC)) == 2
    h = tenant.enroll("L2")
    g2 = grant(client, h, scope(tenant), 5)
    assert g2.key_version == 2 and issued.key_version == 1
    new_serial = serial_of(g2, g2.first)
    assert push(client, h, [event("issued", new_serial, g2.lease_id)])[0]["status"] == "accepted"
    assert verdict(client, serial_of(issued, 1))["verdict"] == "genuine"  # key version 1
    assert verdict(client, new_serial)["verdict"] == "genuine"  # key version 2
    assert verdict(client, serial_of(g2, g2.first + 1))["verdict"] == "pending"
