"""Hostile events: times no line can make, foreign work orders, control characters, clones."""

import datetime as dt

import pytest
import sqlalchemy as sa

from central import admin
from central import tables as T
from protocol.events import Event
from protocol.timefmt import format_ts
from tests.central.helpers import event, grant, push, serial_of
from tests.conftest import runtime


def scope(tenant, ptype="HAT"):
    return f"MA01-{ptype}-BAG-{tenant.today:%Y%m%d}"


def stored(app):
    with runtime(app).store.read() as conn:
        return {
            "events": conn.execute(sa.select(sa.func.count()).select_from(T.events)).scalar(),
            "registry": conn.execute(sa.select(sa.func.count()).select_from(T.registry)).scalar(),
            "quarantine": conn.execute(
                sa.select(sa.func.count()).select_from(T.quarantine)
            ).scalar(),
        }


def at(e, moment):
    return Event(e.event_id, e.type, e.serial, format_ts(moment), e.lease_id, e.work_order, e.data)


def admin_headers(app):
    token = admin.add_admin_token(runtime(app).store, "ops", dt.datetime.now(dt.UTC))
    return {"Authorization": f"Bearer {token}"}


def test_events_outside_the_time_range_are_rejected_and_not_stored(app, client, tenant):
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 10)
    now = dt.datetime.now(dt.UTC)
    moments = [
        dt.datetime(2019, 12, 31, 23, 59, 59, tzinfo=dt.UTC),
        dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
        now + dt.timedelta(days=1, minutes=5),
        dt.datetime(9999, 12, 31, tzinfo=dt.UTC),
    ]
    batch = [at(event("issued", serial_of(g, i + 1), g.lease_id), m) for i, m in enumerate(moments)]
    results = push(client, h, batch)
    assert [(r["status"], r["code"]) for r in results] == [("rejected", "ERR_EVENT_TIME_RANGE")] * 4
    assert all("occurred_at" in r["message"] for r in results)
    assert stored(app) == {"events": 0, "registry": 0, "quarantine": 0}
    # the edges of the range are taken (an hour ahead is held by the clock rule, as before)
    ok = [
        at(event("issued", serial_of(g, 5), g.lease_id), dt.datetime(2020, 1, 1, tzinfo=dt.UTC)),
        at(event("issued", serial_of(g, 6), g.lease_id), now + dt.timedelta(hours=1)),
    ]
    assert [r["status"] for r in push(client, h, ok)] == ["quarantined", "quarantined"]
    [r] = push(client, h, [event("issued", serial_of(g, 7), g.lease_id)])
    assert r["status"] == "accepted"


def test_work_orders_must_exist_and_make_the_serials_product(app, client, tenant):
    rt = runtime(app)
    now = dt.datetime.now(dt.UTC)
    admin.add_product(rt.store, "MA01", "WALLET-01", "WAL", "Wallet", None, now)
    admin.add_work_order(rt.store, "MA01", "WO-WAL-1", "WALLET-01", "HAT", 100, now)
    admin.add_tenant(rt.store, "ZZ01", "Other", "UTC", now)
    admin.add_product(rt.store, "ZZ01", "X-1", "BAG", "X", None, now)
    admin.add_work_order(rt.store, "ZZ01", "WO-ZZ-1", "X-1", "HAT", 100, now)
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 10)
    results = push(
        client,
        h,
        [
            event("issued", serial_of(g, 1), g.lease_id, "WO-NOPE"),
            event("issued", serial_of(g, 2), g.lease_id, "WO-ZZ-1"),  # another tenant's
            event("issued", serial_of(g, 3), g.lease_id, "WO-WAL-1"),  # another category
            event("issued", serial_of(g, 4), g.lease_id, "WO-OEM-1"),  # another type
            event("issued", serial_of(g, 5), g.lease_id, "WO-HAT-1"),
        ],
    )
    assert [(r["status"], r.get("code")) for r in results] == [
        ("rejected", "ERR_WORK_ORDER_UNKNOWN"),
        ("rejected", "ERR_WORK_ORDER_UNKNOWN"),
        ("rejected", "ERR_WORK_ORDER_PRODUCT"),
        ("rejected", "ERR_WORK_ORDER_PRODUCT"),
        ("accepted", None),
    ]
    assert stored(app) == {"events": 1, "registry": 1, "quarantine": 0}


@pytest.mark.parametrize(
    "text",
    [
        "\x1b[31mred\x1b[0m",
        "line1\nline2",
        "cr\rhere",
        "tab\there",
        "del\x7f",
        "csi\x9b31m",
        "abc\u202edcba",
        "isolate\u2066x\u2069",
        "embed\u202ax",
    ],
)
def test_control_characters_in_data_are_rejected_and_not_stored(app, client, tenant, text):
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 10)
    s = serial_of(g, 1)
    [issued] = push(client, h, [event("issued", s, g.lease_id, "WO-HAT-1")])
    assert issued["status"] == "accepted"
    [r] = push(client, h, [event("voided", s, data={"reason": text})])
    assert (r["status"], r["code"]) == ("rejected", "ERR_CONTROL_CHARACTER")
    assert "data.reason" in r["message"]
    [r] = push(client, h, [event("issued", serial_of(g, 2), g.lease_id, data={"job_ticket": text})])
    assert (r["status"], r["code"]) == ("rejected", "ERR_CONTROL_CHARACTER")
    assert stored(app) == {"events": 1, "registry": 1, "quarantine": 0}
    with runtime(app).store.read() as conn:
        state = conn.execute(sa.select(T.registry.c.state).where(T.registry.c.serial == s))
        assert state.scalar_one() == "issued"


def test_another_lines_scan_is_a_clone_signal_not_a_hold(app, client, tenant):
    h1, h2 = tenant.enroll("L1"), tenant.enroll("L2")
    g = grant(client, h1, scope(tenant), 10)
    s = serial_of(g, 1)
    assert push(client, h1, [event("issued", s, g.lease_id, "WO-HAT-1")])[0]["status"] == "accepted"
    results = push(client, h2, [event("scanned", s), event("scanned", s)])
    assert [(r["status"], r["code"]) for r in results] == [("accepted", "CLONE_SIGNAL")] * 2
    assert client.get("/api/public/serial/verify/" + s).json["verdict"] == "genuine"
    with runtime(app).store.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(T.quarantine)).scalar() == 0
        rows = conn.execute(
            sa.select(T.events.c.outcome, T.events.c.code).where(
                T.events.c.serial == s, T.events.c.type == "scanned"
            )
        ).all()
    assert sorted(tuple(r) for r in rows) == [("accepted", "CLONE_SIGNAL")] * 2
    view = client.get(f"/api/admin/v1/serials/{s}", headers=admin_headers(app))
    assert view.status_code == 200
    assert view.json["clone_signals"] == 2 and view.json["verdict"] == "genuine"
    assert view.json["details"]["state"] == "issued"
    metrics = client.get("/metrics").get_data(as_text=True)
    assert "serial_clone_signals_total 2.0" in metrics
    # the genuine line goes on as before
    assert push(client, h1, [event("printed", s)])[0]["status"] == "accepted"
    # other event types from the foreign line still hold the serial for review
    [r] = push(client, h2, [event("reprinted", s, data={"reason": "copied"})])
    assert (r["status"], r["code"]) == ("quarantined", "ERR_OUTSIDE_LEASE")
    assert client.get("/api/public/serial/verify/" + s).json["verdict"] == "under_review"


def test_a_foreign_scan_with_a_forged_code_holds_nothing(app, client, tenant):
    h1, h2 = tenant.enroll("L1"), tenant.enroll("L2")
    g = grant(client, h1, scope(tenant), 10)
    s = serial_of(g, 1)
    push(client, h1, [event("issued", s, g.lease_id, "WO-HAT-1")])
    from protocol.keys import lease_key_from_hex
    from protocol.serials import render

    fake = render(g.scope, 1, lease_key_from_hex("11" * 32))
    assert fake != s
    [r] = push(client, h2, [event("scanned", fake)])
    assert (r["status"], r["code"]) == ("quarantined", "ERR_SERIAL_MAC")
    with runtime(app).store.read() as conn:
        assert not conn.execute(sa.select(T.quarantine.c.holds_serial)).scalar_one()
    assert client.get("/api/public/serial/verify/" + s).json["verdict"] == "genuine"
    view = client.get(f"/api/admin/v1/serials/{s}", headers=admin_headers(app))
    assert view.json["clone_signals"] == 0
