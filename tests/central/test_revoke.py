"""A stolen or retired line PC: revoke, reinstate, rotate its token, and what happens to its
numbers and to the events it sends later."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from click.testing import CliRunner

from central import agents
from central import tables as T
from central.cli import main as central_cli
from tests.central.helpers import event, grant, push, serial_of
from tests.conftest import runtime

NOW = dt.datetime.now(dt.UTC)


def scope(tenant, ptype="HAT"):
    return f"MA01-{ptype}-BAG-{tenant.today:%Y%m%d}"


def marks(client, h, reports):
    resp = client.post(
        "/api/edge/v1/reconcile",
        headers=h,
        json={"v": 1, "mode": "marks", "leases": reports},
    )
    assert resp.status_code == 200, resp.json
    return resp.json


def verdict(client, serial):
    return client.get(f"/api/public/serial/verify/{serial}").json["verdict"]


def test_revoke_refuses_calls_and_closes_leases_at_the_highest_number_seen(app, client, tenant):
    h = tenant.enroll("L1")
    agent_id = h["X-Agent-Id"]
    g = grant(client, h, scope(tenant), 100)
    g2 = grant(client, h, scope(tenant, "OEM"), 50)
    push(client, h, [event("issued", serial_of(g, q), g.lease_id) for q in (1, 2, 3)])
    marks(client, h, [{"lease_id": g.lease_id, "high_water": 7}])  # 4..7 used, not synced

    done = agents.revoke_agent(runtime(app).store, agent_id, "PC stolen", "cli:alice", NOW)
    assert done["leases_closed"] == {g.lease_id: 7, g2.lease_id: 0}
    assert done["numbers_voided"] == (100 - 7) + 50

    for method, path, body in (
        ("get", "/api/edge/v1/ping", None),
        ("get", "/api/edge/v1/config", None),
        ("post", "/api/edge/v1/events", {"v": 1, "events": []}),
        ("post", "/api/edge/v1/reconcile", {"v": 1, "leases": []}),
    ):
        resp = getattr(client, method)(path, headers=h, json=body)
        assert resp.status_code == 403
        assert resp.json["error"]["code"] == "ERR_AGENT_REVOKED"
        assert "PC stolen" in resp.json["error"]["message"]
        assert resp.headers["X-LineLedger-Time"]  # the agent still learns central's time

    with runtime(app).store.read() as conn:
        rows = {r.id: r for r in conn.execute(sa.select(T.leases))}
        gaps = {
            (r.lease_id, r.first_seq, r.last_seq, r.reason) for r in conn.execute(sa.select(T.gaps))
        }
        audit = conn.execute(
            sa.select(T.audit_log).where(T.audit_log.c.action != "work_order.create")
        ).one()
    assert rows[g.lease_id].status == "revoked" and rows[g.lease_id].high_water == 7
    assert rows[g2.lease_id].high_water == 0
    assert gaps == {(g.lease_id, 8, 100, "revoked"), (g2.lease_id, 1, 50, "revoked")}
    assert (audit.actor, audit.action, audit.reason) == ("cli:alice", "agent.revoke", "PC stolen")

    # numbers above the mark verify unknown; used ones still verify
    assert verdict(client, serial_of(g, 2)) == "genuine"
    assert verdict(client, serial_of(g, 6)) == "pending"  # used per the reported mark
    assert verdict(client, serial_of(g, 8)) == "unknown"
    assert verdict(client, serial_of(g2, 1)) == "unknown"


def test_a_reinstated_agent_delivers_but_numbers_above_the_mark_wait_for_review(
    app, client, tenant
):
    h = tenant.enroll("L1")
    g = grant(client, h, scope(tenant), 100)
    push(client, h, [event("issued", serial_of(g, 1), g.lease_id)])
    store = runtime(app).store
    agents.revoke_agent(store, h["X-Agent-Id"], "PC missing", "cli:alice", NOW)
    agents.reinstate_agent(store, h["X-Agent-Id"], "found in the store room", "cli:bob", NOW)
    # the events it kept while revoked: number 1 is below the mark, 2 and 3 above it
    results = push(
        client,
        h,
        [
            event("printed", serial_of(g, 1)),
            event("issued", serial_of(g, 2), g.lease_id),
            event("printed", serial_of(g, 2)),
            event("issued", serial_of(g, 3), g.lease_id),
        ],
    )
    assert [(r["status"], r.get("code")) for r in results] == [
        ("accepted", None),
        ("quarantined", "ERR_AGENT_REVOKED"),
        ("quarantined", "ERR_SERIAL_QUARANTINED"),
        ("quarantined", "ERR_AGENT_REVOKED"),
    ]
    assert verdict(client, serial_of(g, 2)) == "under_review"
    # its closed lease cannot be returned or used for more numbers
    resp = client.post(
        f"/api/edge/v1/leases/{g.lease_id}/return", headers=h, json={"v": 1, "high_water": 1}
    )
    assert resp.status_code == 409 and resp.json["error"]["code"] == "ERR_LEASE_RETURNED"
    assert grant(client, h, scope(tenant), 10).first == 101  # it leases anew


def test_rotate_token_refuses_the_old_token_at_once(app, client, tenant):
    h = tenant.enroll("L1")
    token = agents.rotate_token(runtime(app).store, h["X-Agent-Id"], "cli:alice", NOW)
    assert client.get("/api/edge/v1/ping", headers=h).status_code == 401
    fresh = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/edge/v1/ping", headers=fresh).json["agent_id"] == h["X-Agent-Id"]


def test_cli_revoke_reinstate_rotate(app, tenant, central_config):
    h = tenant.enroll("L7")
    agent_id = h["X-Agent-Id"]
    base = ["--home", central_config["home"], "--db", central_config["db_url"]]
    runner = CliRunner()
    out = runner.invoke(
        central_cli, [*base, "agent", "revoke", "--agent", agent_id, "--reason", "stolen"]
    )
    assert out.exit_code == 0, out.output
    assert "revoked" in out.output and "quarantine" in out.output
    again = runner.invoke(
        central_cli, [*base, "agent", "revoke", "--agent", agent_id, "--reason", "x"]
    )
    assert again.exit_code == 1 and "revoked already" in again.output
    listed = runner.invoke(central_cli, [*base, "agent", "list"])
    assert "revoked" in listed.output and "stolen" in listed.output
    missing = runner.invoke(
        central_cli, [*base, "agent", "revoke", "--agent", "nope", "--reason", "x"]
    )
    assert missing.exit_code == 1 and "ERR_AGENT_UNKNOWN" in missing.output
    blank = runner.invoke(
        central_cli, [*base, "agent", "reinstate", "--agent", agent_id, "--reason", " "]
    )
    assert blank.exit_code == 1 and "ERR_INVALID" in blank.output
    out = runner.invoke(
        central_cli, [*base, "agent", "reinstate", "--agent", agent_id, "--reason", "found"]
    )
    assert out.exit_code == 0, out.output
    out = runner.invoke(central_cli, [*base, "agent", "rotate-token", "--agent", agent_id])
    assert out.exit_code == 0 and out.output.split()[-1].startswith("llt_")
    with runtime(app).store.read() as conn:
        actions = (
            conn.execute(
                sa.select(T.audit_log.c.action)
                .where(T.audit_log.c.action != "work_order.create")
                .order_by(T.audit_log.c.id)
            )
            .scalars()
            .all()
        )
        actors = set(
            conn.execute(
                sa.select(T.audit_log.c.actor).where(T.audit_log.c.action != "work_order.create")
            ).scalars()
        )
    assert actions == ["agent.revoke", "agent.reinstate", "agent.rotate_token"]
    assert all(a.startswith("cli:") for a in actors)


def test_admin_api_revoke_needs_a_token_and_a_reason(app, client, tenant):
    h = tenant.enroll("L1")
    from central import admin

    token = admin.add_admin_token(runtime(app).store, "ops", NOW)
    auth = {"Authorization": f"Bearer {token}"}
    path = f"/api/admin/v1/agents/{h['X-Agent-Id']}/revoke"
    assert client.post(path, json={"reason": "x"}).status_code == 401
    resp = client.post(path, headers=auth, json={"reason": ""})
    assert resp.status_code == 400 and resp.json["error"]["code"] == "ERR_INVALID"
    resp = client.post(path, headers=auth, data="[1, 2]", content_type="application/json")
    assert resp.status_code == 400
    resp = client.post(path, headers=auth, json={"reason": "retired line"})
    assert resp.status_code == 200 and resp.json["ok"] is True
    with runtime(app).store.read() as conn:
        assert (
            conn.execute(
                sa.select(T.audit_log.c.actor).where(T.audit_log.c.action != "work_order.create")
            ).scalar()
            == "token:ops"
        )
    resp = client.post("/api/admin/v1/agents/unknown/revoke", headers=auth, json={"reason": "x"})
    assert resp.status_code == 404 and resp.json["error"]["code"] == "ERR_AGENT_UNKNOWN"
