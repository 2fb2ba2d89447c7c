"""Quarantine review (release, confirm), clock checks at ingest, link targets, recalled work
orders: what a supervisor decides and what central holds on its own."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from central import admin, agents, review
from central import tables as T
from central.cli import main as central_cli
from central.timeutil import utcnow
from protocol.events import Event
from protocol.reconcile import Digest, LeaseReport, ReconcileRequest
from protocol.timefmt import format_ts
from tests.central.helpers import event, grant, new_id, push, serial_of
from tests.conftest import runtime

NOW = dt.datetime.now(dt.UTC)


def scope(tenant, ptype="HAT"):
    return f"MA01-{ptype}-BAG-{tenant.today:%Y%m%d}"


def verdict(client, serial):
    return client.get(f"/api/public/serial/verify/{serial}").json["verdict"]


def open_entries(app, serial=None):
    q = T.quarantine.c
    with runtime(app).store.read() as conn:
        query = sa.select(T.quarantine).where(q.resolved_at.is_(None)).order_by(q.id)
        if serial:
            query = query.where(q.serial == serial)
        return conn.execute(query).all()


def registry(app, serial):
    with runtime(app).store.read() as conn:
        return conn.execute(sa.select(T.registry).where(T.registry.c.serial == serial)).first()


def at(delta: dt.timedelta, etype, serial, lease_id=None, data=None):
    return Event(
        new_id(), etype, serial, format_ts(utcnow() + delta), lease_id, "WO-HAT-1", data or {}
    )


def test_an_issue_with_the_clock_hours_ahead_is_held_and_flags_other_events(app, client, tenant):
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 100)
    s1, s2 = serial_of(g, 1), serial_of(g, 2)
    results = push(
        client,
        h,
        [
            at(dt.timedelta(hours=3), "issued", s1, g.lease_id),
            event("issued", s2, g.lease_id),
            at(dt.timedelta(hours=3), "printed", s2),
            at(-dt.timedelta(days=2), "issued", serial_of(g, 3), g.lease_id),  # before the lease
        ],
    )
    assert [(r["status"], r.get("code")) for r in results] == [
        ("quarantined", "ERR_CLOCK_SKEW"),
        ("accepted", None),
        ("accepted", None),
        ("quarantined", "ERR_CLOCK_SKEW"),
    ]
    assert verdict(client, s1) == "under_review"
    with runtime(app).store.read() as conn:
        flags = dict(
            conn.execute(
                sa.select(T.events.c.type, T.events.c.clock_flags).where(T.events.c.serial == s2)
            ).all()
        )
    assert flags == {"issued": None, "printed": "future"}
    # within tolerance nothing happens
    ok = push(client, h, [at(dt.timedelta(minutes=2), "issued", serial_of(g, 4), g.lease_id)])
    assert ok[0]["status"] == "accepted"


def test_release_applies_held_events_in_order_and_is_recorded(app, client, tenant):
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 100)
    s = serial_of(g, 1)
    push(client, h, [at(dt.timedelta(hours=2), "issued", s, g.lease_id)])
    follow = push(
        client, h, [event("printed", s), event("reprinted", s, data={"reason": "smudge"})]
    )
    assert {r["code"] for r in follow} == {"ERR_SERIAL_QUARANTINED"}
    entries = open_entries(app, s)
    assert len(entries) == 3
    rt = runtime(app)
    decision = review.release(
        rt.store, rt.keyring, entries[1].id, "clock fixed, date checked", "cli:sue", NOW
    )
    assert decision.entries == [e.id for e in entries]
    assert (decision.applied, decision.superseded, decision.state) == (3, 0, "printed")
    row = registry(app, s)
    assert (row.state, row.print_count, row.reprint_count) == ("printed", 1, 1)
    assert verdict(client, s) == "genuine"
    assert open_entries(app) == []
    with rt.store.read() as conn:
        resolved = conn.execute(sa.select(T.quarantine)).all()
        outcomes = set(conn.execute(sa.select(T.events.c.outcome)).scalars())
        audit = conn.execute(
            sa.select(T.audit_log).where(T.audit_log.c.action != "work_order.create")
        ).one()
    assert {(r.resolution_kind, r.resolved_by, r.resolution) for r in resolved} == {
        ("released", "cli:sue", "clock fixed, date checked")
    }
    assert outcomes == {"released"}
    assert audit.action == "quarantine.release" and audit.target == f"serial:{s}"
    # a decided entry cannot be decided again
    with pytest.raises(Exception) as err:
        review.confirm(rt.store, entries[0].id, "x", "cli:sue", NOW)
    assert getattr(err.value, "code", "") == "ERR_QUARANTINE_RESOLVED"
    # the agent's later events now apply normally
    assert push(client, h, [event("linked", s, data={"token": "T1"})])[0]["status"] == "accepted"


def test_release_of_a_revoked_agents_numbers_raises_the_mark(app, client, tenant):
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 100)
    push(client, h, [event("issued", serial_of(g, q), g.lease_id) for q in (1, 2)])
    rt = runtime(app)
    agents.revoke_agent(rt.store, h["X-Agent-Id"], "PC missing", "cli:a", NOW)
    agents.reinstate_agent(rt.store, h["X-Agent-Id"], "PC found", "cli:a", NOW)
    held = push(client, h, [event("issued", serial_of(g, 5), g.lease_id)])
    assert held[0]["code"] == "ERR_AGENT_REVOKED"
    entry = open_entries(app, serial_of(g, 5))[0]
    review.release(rt.store, rt.keyring, entry.id, "not stolen", "cli:a", NOW)
    assert verdict(client, serial_of(g, 5)) == "genuine"
    with rt.store.read() as conn:
        lease = conn.execute(sa.select(T.leases)).one()
        gap = conn.execute(sa.select(T.gaps)).one()
    assert lease.high_water == 5 and (gap.first_seq, gap.last_seq) == (6, 100)
    assert verdict(client, serial_of(g, 4)) == "pending"  # used per the mark, no fact yet
    assert verdict(client, serial_of(g, 6)) == "unknown"


def test_release_of_a_duplicate_keeps_the_first_issue(app, client, tenant):
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 100)
    s = serial_of(g, 1)
    push(client, h, [event("issued", s, g.lease_id), event("printed", s)])
    again = push(client, h, [event("issued", s, g.lease_id)])
    assert again[0]["code"] == "ERR_DUPLICATE_SERIAL"
    entry = open_entries(app, s)[0]
    rt = runtime(app)
    decision = review.release(
        rt.store, rt.keyring, entry.id, "second label destroyed", "cli:a", NOW
    )
    assert (decision.applied, decision.superseded) == (0, 1)
    assert registry(app, s).state == "printed" and verdict(client, s) == "genuine"
    with rt.store.read() as conn:
        outcomes = sorted(conn.execute(sa.select(T.events.c.outcome)).scalars())
    assert outcomes == ["accepted", "accepted", "superseded"]


def test_confirm_retires_the_serial_for_good(app, client, tenant):
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 100)
    s, t = serial_of(g, 1), serial_of(g, 2)
    push(client, h, [event("issued", s, g.lease_id), event("printed", s)])
    push(client, h, [event("issued", s, g.lease_id)])  # a second label of the same number
    rt = runtime(app)
    review.confirm(rt.store, open_entries(app, s)[0].id, "both labels found on fakes", "cli:a", NOW)
    assert registry(app, s).state == "retired"
    assert verdict(client, s) == "voided"
    later = push(client, h, [event("shipped", s)])
    assert later[0]["status"] == "quarantined" and later[0]["code"] == "ERR_SERIAL_RETIRED"
    assert verdict(client, s) == "voided"  # not held: retired stays retired
    # a held number that never reached the registry is retired too
    push(client, h, [at(dt.timedelta(hours=5), "issued", t, g.lease_id)])
    review.confirm(rt.store, open_entries(app, t)[0].id, "wrong date on label", "cli:a", NOW)
    assert registry(app, t).state == "retired" and verdict(client, t) == "voided"


def test_released_lost_facts_are_recorded_by_central_and_kept_out_of_digests(app, client, tenant):
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 100)
    s = serial_of(g, 3)
    rt = runtime(app)
    with rt.store.write() as conn:  # what the consistency checker writes for a lost fact
        conn.execute(
            T.quarantine.insert().values(
                tenant_id=1,
                serial=s,
                reason="ERR_FACTS_LOST",
                holds_serial=True,
                details="{}",
                created_at=NOW,
                source="checker",
            )
        )
    assert verdict(client, s) == "under_review"
    entry = open_entries(app, s)[0]
    decision = review.release(
        rt.store, rt.keyring, entry.id, "label checked on the product", "cli:a", NOW
    )
    assert decision.applied == 1 and decision.state == "issued"
    assert verdict(client, s) == "genuine"
    with rt.store.read() as conn:
        made = conn.execute(sa.select(T.events)).one()
    assert made.origin == "central" and json.loads(made.data)["reviewer"] == "cli:a"
    resp = client.post(
        "/api/edge/v1/reconcile",
        headers=h,
        json=ReconcileRequest("full", (LeaseReport(g.lease_id, 3, {}, Digest()),)).to_dict(),
    )
    assert resp.json["leases"][0]["buckets_match"] is True  # central's own fact is not the agent's


def test_links_are_stored_in_the_registry(app, client, tenant):
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 100)
    s1, s2 = serial_of(g, 1), serial_of(g, 2)
    push(
        client,
        h,
        [
            event("issued", s1, g.lease_id, data={"job_ticket": "JT-1"}),
            event("linked", s1, data={"job_ticket": "JT-1", "token": "TK-1"}),
            event("issued", s2, g.lease_id),
        ],
    )
    push(client, h, [event("linked", s2, data={"token": "TK-2"}), event("printed", s2)])
    r1, r2 = registry(app, s1), registry(app, s2)
    assert (r1.job_ticket, r1.token, r1.state) == ("JT-1", "TK-1", "linked")
    assert (r2.job_ticket, r2.token, r2.state, r2.print_count) == (None, "TK-2", "linked", 1)
    assert r1.linked_at is not None
    bad = push(client, h, [event("linked", serial_of(g, 1), data={"work_order": "WO-HAT-1"})])
    assert bad[0]["code"] in ("ERR_CONTEXT_MISMATCH", "ERR_ILLEGAL_TRANSITION")


def test_serials_of_a_recalled_work_order_arrive_recalled(app, client, tenant):
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 100)
    with runtime(app).store.write() as conn:
        conn.execute(
            T.work_orders.update()
            .where(T.work_orders.c.number == "WO-HAT-1")
            .values(recalled_at=NOW, recall_reason="adhesive batch")
        )
    s = serial_of(g, 1)
    results = push(client, h, [event("issued", s, g.lease_id, "WO-HAT-1"), event("printed", s)])
    assert [r["status"] for r in results] == ["accepted", "accepted"]
    row = registry(app, s)
    assert (row.state, row.print_count) == ("recalled", 1)
    assert verdict(client, s) == "recalled"
    cfg = client.get("/api/edge/v1/config", headers=h).json
    assert "WO-HAT-1" not in [w["number"] for w in cfg["work_orders"]]


def test_cli_and_api_review(app, client, tenant, central_config):
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 100)
    a, b = serial_of(g, 1), serial_of(g, 2)
    push(client, h, [at(dt.timedelta(hours=4), "issued", x, g.lease_id) for x in (a, b)])
    ea, eb = open_entries(app, a)[0].id, open_entries(app, b)[0].id
    base = ["--home", central_config["home"], "--db", central_config["db_url"]]
    runner = CliRunner()
    out = runner.invoke(central_cli, [*base, "quarantine", "release", str(ea), "--reason", "ok"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["decision"] == "released"
    out = runner.invoke(central_cli, [*base, "quarantine", "release", str(ea), "--reason", "ok"])
    assert out.exit_code == 1 and "ERR_QUARANTINE_RESOLVED" in out.output
    out = runner.invoke(central_cli, [*base, "quarantine", "confirm", "999999", "--reason", "x"])
    assert out.exit_code == 1 and "ERR_QUARANTINE_UNKNOWN" in out.output
    token = admin.add_admin_token(runtime(app).store, "sup", NOW)
    auth = {"Authorization": f"Bearer {token}"}
    resp = client.post(f"/api/admin/v1/quarantine/{eb}/confirm", headers=auth, json={})
    assert resp.status_code == 400 and resp.json["error"]["code"] == "ERR_INVALID"
    resp = client.post(
        f"/api/admin/v1/quarantine/{eb}/confirm", headers=auth, json={"reason": "fake"}
    )
    assert resp.status_code == 200 and resp.json["state"] == "retired"
    resp = client.post("/api/admin/v1/quarantine/abc/release", headers=auth, json={"reason": "x"})
    assert resp.status_code == 404 and resp.json["error"]["code"] == "ERR_QUARANTINE_UNKNOWN"
    assert verdict(client, a) == "genuine" and verdict(client, b) == "voided"


def test_a_serial_linked_to_a_recalled_work_order_is_recalled(app, client, tenant):
    h = tenant.enroll()
    g = grant(client, h, scope(tenant, "OEM"), 10)
    s = serial_of(g, 1)
    push(client, h, [event("issued", s, g.lease_id, "WO-OEM-1")])
    with runtime(app).store.write() as conn:
        conn.execute(
            T.work_orders.update()
            .where(T.work_orders.c.number == "WO-OEM-1")
            .values(recalled_at=NOW, recall_reason="x")
        )
    push(client, h, [event("linked", s, data={"work_order": "WO-OEM-1"})])
    assert registry(app, s).state == "recalled"
    assert verdict(client, s) == "recalled"
