"""POST /api/edge/v1/reconcile: marks, digests, what central lacks, leases the agent forgot."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa

from central import tables as T
from central.timeutil import utcnow
from protocol.reconcile import (
    Digest,
    LeaseReport,
    ReconcileRequest,
    ReconcileResponse,
    link_digest,
    link_record,
)
from protocol.timefmt import parse_ts
from tests.central.helpers import event, grant, push, serial_of
from tests.conftest import runtime


def scope(tenant, ptype="HAT"):
    return f"MA01-{ptype}-BAG-{tenant.today:%Y%m%d}"


def reconcile(client, h, req: ReconcileRequest) -> ReconcileResponse:
    resp = client.post("/api/edge/v1/reconcile", headers=h, json=req.to_dict())
    assert resp.status_code == 200, resp.json
    return ReconcileResponse.from_dict(resp.json)


def full(lease_id, hw, events, links=None) -> LeaseReport:
    counts: dict[str, int] = {}
    for e in events:
        counts[e.type] = counts.get(e.type, 0) + 1
    return LeaseReport(lease_id, hw, counts, Digest().add_all(e.event_id for e in events), links)


def test_every_answer_carries_central_time(client, tenant):
    h = tenant.enroll()
    before = utcnow()
    resp = client.get("/api/edge/v1/ping", headers=h)
    stamp = parse_ts(resp.headers["X-LineLedger-Time"])
    assert before - dt.timedelta(seconds=1) <= stamp <= utcnow() + dt.timedelta(seconds=1)
    assert "X-LineLedger-Time" in client.get("/api/edge/v1/config").headers  # even a 401


def test_marks_are_recorded_and_only_grow(app, client, tenant):
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 100)
    answer = reconcile(client, h, ReconcileRequest("marks", (LeaseReport(g.lease_id, 40),)))
    assert [(v.status, v.central_high_water) for v in answer.leases] == [("active", 40)]
    assert answer.leases[0].counts_match is None  # marks only: no digest work
    answer = reconcile(client, h, ReconcileRequest("marks", (LeaseReport(g.lease_id, 10),)))
    assert answer.leases[0].central_high_water == 40  # a lower mark never lowers central's
    push(client, h, [event("issued", serial_of(g, 55), g.lease_id)])
    answer = reconcile(client, h, ReconcileRequest("marks", (LeaseReport(g.lease_id, 50),)))
    assert answer.leases[0].central_high_water == 55  # the registry knows better
    with runtime(app).store.read() as conn:
        row = conn.execute(sa.select(T.leases)).one()
        agent = conn.execute(sa.select(T.agents)).one()
    assert row.reported_hw == 50 and row.reported_at is not None
    assert json.loads(agent.last_report)["mode"] == "marks"


def test_full_reconcile_matches_and_is_recorded(app, client, tenant):
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 100)
    s1, s2 = serial_of(g, 1), serial_of(g, 2)
    events = [
        event("issued", s1, g.lease_id, "WO-HAT-1"),
        event("printed", s1),
        event("issued", s2, g.lease_id, "WO-HAT-1"),
        event("linked", s2, data={"job_ticket": "JT-1", "token": "TK-9"}),
    ]
    push(client, h, events)
    links = link_digest([link_record(s2, "JT-1", "TK-9", None)])
    req = ReconcileRequest(
        "full",
        (full(g.lease_id, 2, events, links),),
        outbox={"pending": 0, "dead": 0},
        clock_offset_ms=-1200,
        agent_version="0.3.0",
    )
    answer = reconcile(client, h, req)
    v = answer.leases[0]
    assert (v.counts_match, v.buckets_match, v.links_match, v.confirmed) == (True, True, True, True)
    assert v.mismatched == {} and not v.truncated and not v.resend
    with runtime(app).store.read() as conn:
        lease = conn.execute(sa.select(T.leases)).one()
        agent = conn.execute(sa.select(T.agents)).one()
    assert lease.digest_ok is True and json.loads(lease.reported_counts)["issued"] == 2
    assert agent.last_reconcile_at is not None and agent.clock_offset_ms == -1200
    assert agent.agent_version == "0.3.0"
    assert json.loads(agent.last_report)["outbox"] == {"pending": 0, "dead": 0}
    # a wrong link record on the agent's side shows
    other = link_digest([link_record(s2, "JT-1", "TK-8", None)])
    answer = reconcile(client, h, ReconcileRequest("full", (full(g.lease_id, 2, events, other),)))
    assert answer.leases[0].links_match is False and answer.leases[0].buckets_match is True


def test_central_lists_the_ids_it_holds_where_the_agent_has_more(app, client, tenant):
    """Central lost events it had acknowledged (restored from a backup): the agent finds out."""
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 100)
    events = [event("issued", serial_of(g, q), g.lease_id) for q in range(1, 41)]
    push(client, h, events)
    lost = events[7]
    with runtime(app).store.write() as conn:  # central's database lost one acknowledged event
        conn.execute(T.events.delete().where(T.events.c.event_id == lost.event_id))
    answer = reconcile(client, h, ReconcileRequest("full", (full(g.lease_id, 40, events),)))
    v = answer.leases[0]
    assert v.buckets_match is False and v.counts_match is False and not v.confirmed
    lost_bucket = Digest().add_all([lost.event_id]).counts.popitem()[0]
    assert list(v.mismatched) == [lost_bucket]
    held_there = set(v.mismatched[lost_bucket])
    assert lost.event_id not in held_there
    mine = {e.event_id for e in events if Digest().add_all([e.event_id]).counts.get(lost_bucket)}
    assert mine - held_there == {lost.event_id}  # exactly what to re-send


def test_many_differing_buckets_are_listed_in_part(app, client, tenant):
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 1000)
    events = [event("issued", serial_of(g, q), g.lease_id) for q in range(1, 401)]
    push(client, h, events[:100])  # central lacks 300 of the agent's events
    answer = reconcile(client, h, ReconcileRequest("full", (full(g.lease_id, 400, events),)))
    v = answer.leases[0]
    assert v.truncated and 0 < len(v.mismatched) < 64


def test_unreported_and_unknown_leases(client, tenant):
    """An agent restored from an older copy lost a lease; one it reports central never granted."""
    h = tenant.enroll()
    kept = grant(client, h, scope(tenant), 100)
    forgotten = grant(client, h, scope(tenant), 50)
    reconcile(client, h, ReconcileRequest("marks", (LeaseReport(forgotten.lease_id, 120),)))
    answer = reconcile(
        client,
        h,
        ReconcileRequest(
            "marks",
            (LeaseReport(kept.lease_id, 5), LeaseReport("01234567-89ab-7def-8123-456789abcdef", 3)),
        ),
    )
    assert [(v.lease_id, v.status) for v in answer.leases] == [
        (kept.lease_id, "active"),
        ("01234567-89ab-7def-8123-456789abcdef", "unknown"),
    ]
    assert len(answer.unreported) == 1
    held = answer.unreported[0]
    assert held.grant.lease_id == forgotten.lease_id and held.grant.key == forgotten.key
    assert held.central_high_water == 120


def test_other_agents_leases_are_unknown_and_their_marks_ignored(app, client, tenant):
    a, b = tenant.enroll("L1"), tenant.enroll("L2")
    g = grant(client, a, scope(tenant), 100)
    answer = reconcile(client, b, ReconcileRequest("marks", (LeaseReport(g.lease_id, 90),)))
    assert answer.leases[0].status == "unknown"
    with runtime(app).store.read() as conn:
        assert conn.execute(sa.select(T.leases.c.reported_hw)).scalar() is None


def test_resend_is_asked_once(app, client, tenant):
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 100)
    events = [event("issued", serial_of(g, 1), g.lease_id)]
    push(client, h, events)
    with runtime(app).store.write() as conn:
        conn.execute(T.leases.update().values(resend_requested_at=utcnow()))
    req = ReconcileRequest("full", (full(g.lease_id, 1, events),))
    assert reconcile(client, h, req).leases[0].resend is True
    assert reconcile(client, h, req).leases[0].resend is False


def test_closed_leases_report_their_status(app, client, tenant):
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 100)
    client.post(
        f"/api/edge/v1/leases/{g.lease_id}/return", headers=h, json={"v": 1, "high_water": 9}
    )
    answer = reconcile(client, h, ReconcileRequest("marks", (LeaseReport(g.lease_id, 3),)))
    assert (answer.leases[0].status, answer.leases[0].central_high_water) == ("returned", 9)
    assert answer.unreported == ()


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"v": 2, "leases": []},
        {"v": 1, "mode": "sometimes", "leases": []},
        {"v": 1, "leases": "all"},
        {"v": 1, "leases": [{"lease_id": "x", "high_water": -1}]},
        {"v": 1, "leases": [{"lease_id": "x", "high_water": 10**9}]},
        {"v": 1, "leases": [{"lease_id": "x", "high_water": True}]},
        {
            "v": 1,
            "leases": [{"lease_id": "x", "high_water": 1}, {"lease_id": "x", "high_water": 2}],
        },
        {
            "v": 1,
            "leases": [{"lease_id": "x", "high_water": 1, "buckets": {"64": "1:" + "0" * 32}}],
        },
        {"v": 1, "leases": [{"lease_id": "x", "high_water": 1, "buckets": {"1": "1:xyz"}}]},
        {
            "v": 1,
            "leases": [{"lease_id": "x", "high_water": 1, "buckets": {"01x": "1:" + "0" * 32}}],
        },
        {"v": 1, "leases": [{"lease_id": "x", "high_water": 1, "counts": {"eaten": 1}}]},
        {"v": 1, "leases": [{"lease_id": "x", "high_water": 1, "counts": {"issued": -1}}]},
        {"v": 1, "leases": [{"lease_id": "x", "high_water": 1, "links": "many"}]},
        {"v": 1, "leases": [{"lease_id": "x\u202e", "high_water": 1}]},
        {"v": 1, "leases": [], "outbox": {"pending": "lots"}},
        {"v": 1, "leases": [], "outbox": {"pending": float("inf")}},
        {"v": 1, "leases": [], "clock_offset_ms": 10**13},
        {"v": 1, "leases": [{"lease_id": f"l{i}", "high_water": 1} for i in range(1001)]},
    ],
)
def test_hostile_reconcile_bodies_get_a_clear_error(client, tenant, body):
    h = tenant.enroll()
    resp = client.post(
        "/api/edge/v1/reconcile",
        headers={**h, "Content-Type": "application/json"},
        data=json.dumps(body, allow_nan=True),
    )
    assert resp.status_code == 400, resp.json
    assert resp.json["ok"] is False and resp.json["error"]["code"].startswith("ERR_")


def test_each_lines_last_report_is_in_metrics(app, client, tenant):
    h = tenant.enroll("LINE-7")
    req = ReconcileRequest(
        "marks",
        (),
        outbox={"pending": 12, "dead": 1, "oldest_pending_age_s": 95.5},
        clock_offset_ms=-2500,
    )
    reconcile(client, h, req)
    text = client.get("/metrics").get_data(as_text=True)
    assert 'agent_outbox_pending{line="LINE-7",org="MA01"} 12.0' in text
    assert 'agent_outbox_dead{line="LINE-7",org="MA01"} 1.0' in text
    assert 'agent_outbox_pending_age_seconds{line="LINE-7",org="MA01"} 95.5' in text
    assert 'agent_clock_offset_seconds{line="LINE-7",org="MA01"} -2.5' in text
    assert 'agent_revoked{line="LINE-7",org="MA01"} 0.0' in text
    assert 'agent_last_seen_timestamp_seconds{line="LINE-7",org="MA01"}' in text
