import datetime as dt
import json

import sqlalchemy as sa

from central import admin
from central import tables as T
from protocol.serials import Scope
from tests.central.helpers import event, forged, grant, new_id, push, serial_of
from tests.conftest import runtime


def scope(tenant, ptype="HAT"):
    return f"MA01-{ptype}-BAG-{tenant.today:%Y%m%d}"


def registry(app, serial):
    with runtime(app).store.read() as conn:
        return conn.execute(sa.select(T.registry).where(T.registry.c.serial == serial)).first()


def test_issue_print_reprint_void_lifecycle(app, client, tenant):
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 10)
    s1, s2 = serial_of(g, 1), serial_of(g, 2)
    results = push(
        client,
        h,
        [
            event("issued", s1, g.lease_id, "WO-HAT-1"),
            event("printed", s1),
            event("reprinted", s1, data={"reason": "smudged"}),
            event("issued", s2, g.lease_id, "WO-HAT-1"),
            event("voided", s2, data={"reason": "label torn"}),
        ],
    )
    assert [r["status"] for r in results] == ["accepted"] * 5
    r1, r2 = registry(app, s1), registry(app, s2)
    assert (r1.state, r1.print_count, r1.reprint_count, r1.work_order) == (
        "printed",
        1,
        1,
        "WO-HAT-1",
    )
    assert r2.state == "voided"


def test_resending_a_batch_changes_nothing(app, client, tenant):
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 10)
    batch = [event("issued", serial_of(g, 1), g.lease_id), event("printed", serial_of(g, 1))]
    assert [r["status"] for r in push(client, h, batch)] == ["accepted", "accepted"]
    assert [r["status"] for r in push(client, h, batch)] == ["duplicate", "duplicate"]
    with runtime(app).store.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(T.events)).scalar() == 2
    assert registry(app, serial_of(g, 1)).print_count == 1


def test_events_of_a_serial_not_issued_yet_are_asked_again(app, client, tenant):
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 10)
    early = event("printed", serial_of(g, 3))
    [result] = push(client, h, [early])
    assert result["status"] == "retry" and result["code"] == "ERR_AWAITING_ISSUE"
    push(client, h, [event("issued", serial_of(g, 3), g.lease_id)])
    assert push(client, h, [early])[0]["status"] == "accepted"


def test_forged_mac_is_quarantined_not_accepted(app, client, tenant):
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 10)
    fake = forged(g.scope, 4)
    [result] = push(client, h, [event("issued", fake, g.lease_id)])
    assert result["status"] == "quarantined" and result["code"] == "ERR_SERIAL_MAC"
    assert registry(app, fake) is None
    with runtime(app).store.read() as conn:
        q = conn.execute(sa.select(T.quarantine)).one()
    assert q.serial == fake and q.reason == "ERR_SERIAL_MAC"
    assert "lease_id" in json.loads(q.details)
    # a forged serial does not hold anything: its later events fail the MAC check again
    assert push(client, h, [event("printed", fake)])[0]["code"] == "ERR_SERIAL_MAC"


def test_later_events_of_a_held_serial_are_held_not_retried(app, client, tenant):
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 10)
    s = serial_of(g, 1)
    push(client, h, [event("issued", s, g.lease_id)])
    assert push(client, h, [event("issued", s, g.lease_id)])[0]["code"] == "ERR_DUPLICATE_SERIAL"
    [r] = push(client, h, [event("printed", s)])
    assert (r["status"], r["code"]) == ("quarantined", "ERR_SERIAL_QUARANTINED")


def test_another_tenant_cannot_hold_a_serial(app, client, tenant):
    """An agent of tenant EV01 reporting MA01's genuine serial changes nothing for MA01."""
    rt = runtime(app)
    now = dt.datetime.now(dt.UTC)
    admin.add_tenant(rt.store, "EV01", "Evil Corp", "UTC", now)
    code = admin.create_enroll_code(rt.store, "EV01", "X1", 1, now)
    evil = {
        "Authorization": "Bearer " + admin.enroll_agent(rt.store, code.code, None, None, now).token
    }
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 10)
    s = serial_of(g, 1)
    push(client, h, [event("issued", s, g.lease_id)])
    [r] = push(client, evil, [event("scanned", s)])
    assert (r["status"], r["code"]) == ("quarantined", "ERR_OUTSIDE_LEASE")
    assert client.get("/api/public/serial/verify/" + s).json["verdict"] == "genuine"
    assert push(client, h, [event("printed", s)])[0]["status"] == "accepted"
    with runtime(app).store.read() as conn:
        q = conn.execute(sa.select(T.quarantine)).one()
    assert not q.holds_serial


def test_serials_outside_the_agents_leases_are_quarantined(app, client, tenant):
    h1, h2 = tenant.enroll("L1"), tenant.enroll("L2")
    g1 = grant(client, h1, scope(tenant), 10)
    stolen = serial_of(g1, 1)  # valid serial, but of agent 1's lease
    [r] = push(client, h2, [event("issued", stolen, g1.lease_id)])
    assert r["status"] == "quarantined" and r["code"] == "ERR_OUTSIDE_LEASE"
    never = Scope.from_key(scope(tenant))
    from protocol.serials import render

    beyond = render(never, 500, g1.key)  # number never granted to anyone
    [r] = push(client, h1, [event("issued", beyond, g1.lease_id)])
    assert r["code"] == "ERR_OUTSIDE_LEASE"
    other_org = "ZZ01-HAT-BAG-20251109-00001-0000-0"
    [r] = push(client, h1, [event("issued", other_org)])
    assert r["status"] == "quarantined" and r["code"].startswith("ERR_SERIAL_")


def test_a_serial_issued_twice_is_quarantined(app, client, tenant):
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 10)
    s = serial_of(g, 1)
    push(client, h, [event("issued", s, g.lease_id)])
    [r] = push(client, h, [event("issued", s, g.lease_id)])
    assert r["status"] == "quarantined" and r["code"] == "ERR_DUPLICATE_SERIAL"


def test_illegal_transition_and_context_mismatch_are_rejected_and_not_stored(app, client, tenant):
    h = tenant.enroll()
    hat = grant(client, h, scope(tenant, "HAT"), 10)
    oem = grant(client, h, scope(tenant, "OEM"), 10)
    s_hat, s_oem = serial_of(hat, 1), serial_of(oem, 1)
    push(
        client,
        h,
        [
            event("issued", s_hat, hat.lease_id),
            event("voided", s_hat),
            event("issued", s_oem, oem.lease_id),
        ],
    )
    results = push(
        client,
        h,
        [
            event("packed", s_hat, data={"container": "BOX-1"}),  # packing a voided serial
            event("linked", s_oem, data={"token": "TOK-9"}),  # OEM serial with a token
            event("linked", s_oem, data={"work_order": "WO-OEM-1"}),  # fine
        ],
    )
    assert [(r["status"], r.get("code")) for r in results] == [
        ("rejected", "ERR_ILLEGAL_TRANSITION"),
        ("rejected", "ERR_CONTEXT_MISMATCH"),
        ("accepted", None),
    ]
    assert registry(app, s_hat).state == "voided"
    assert registry(app, s_oem).state == "linked"
    with runtime(app).store.read() as conn:
        types = conn.execute(sa.select(T.events.c.type).where(T.events.c.serial == s_oem)).all()
    assert sorted(t for (t,) in types) == ["issued", "linked"]


def test_returned_tail_numbers_are_quarantined(client, tenant):
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 10)
    client.post(f"/api/edge/v1/leases/{g.lease_id}/return", headers=h, json={"high_water": 3})
    ok, late = serial_of(g, 3), serial_of(g, 4)
    results = push(client, h, [event("issued", ok, g.lease_id), event("issued", late, g.lease_id)])
    assert [r["status"] for r in results] == ["accepted", "quarantined"]
    assert results[1]["code"] == "ERR_LEASE_RETURNED"


def test_malformed_events_are_rejected_one_by_one(client, tenant):
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 10)
    good = event("issued", serial_of(g, 1), g.lease_id).to_dict()
    body = {
        "v": 1,
        "events": [
            good,
            {"event_id": "x"},
            {**good, "event_id": new_id(), "type": "teleported"},
            42,
        ],
    }
    resp = client.post("/api/edge/v1/events", headers=h, json=body)
    assert resp.status_code == 200
    assert [r["status"] for r in resp.json["results"]] == [
        "accepted",
        "rejected",
        "rejected",
        "rejected",
    ]
    assert resp.json["results"][2]["code"] == "ERR_EVENT_TYPE"


def test_hostile_batches_get_the_one_error_shape(client, tenant):
    h = tenant.enroll()
    for body, status, code in [
        (b"{not json", 400, "ERR_JSON"),
        (b'{"v": 1, "events": "nope"}', 400, "ERR_SCHEMA"),
        (json.dumps({"v": 1, "events": [{}] * 1001}).encode(), 413, "ERR_BATCH_TOO_LARGE"),
        (b'{"v": 2, "events": []}', 400, "ERR_SCHEMA_VERSION"),
        (b"[" * 10_000, 400, "ERR_JSON"),
        (b"x" * (5 * 1024 * 1024), 413, "ERR_TOO_LARGE"),
    ]:
        resp = client.post(
            "/api/edge/v1/events", headers={**h, "Content-Type": "application/json"}, data=body
        )
        assert resp.status_code == status, (body[:30], resp.json)
        assert resp.json == {
            "ok": False,
            "error": {"code": code, "message": resp.json["error"]["message"]},
        }


def test_metrics_count_ingest_and_quarantine(app, client, tenant):
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 10)
    push(
        client,
        h,
        [
            event("issued", serial_of(g, 1), g.lease_id),
            event("issued", forged(g.scope, 2), g.lease_id),
        ],
    )
    text = client.get("/metrics").get_data(as_text=True)
    assert 'events_ingested_total{result="accepted",type="issued"} 1.0' in text
    assert 'events_ingested_total{result="quarantined",type="issued"} 1.0' in text
    assert "quarantine_total_quarantined 1.0" in text
    assert "serial_pre_generated_total 10.0" in text
