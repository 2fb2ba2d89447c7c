"""Quarantine review (read side) and recalls, from the CLI and the admin API."""

import datetime as dt
import json

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from central import admin
from central import tables as T
from central.cli import main
from central.recall import is_recalled_work_order, recalled_work_orders
from tests.central.helpers import event, grant, push, serial_of
from tests.central.jobs_support import scope
from tests.central.test_errors import shape
from tests.conftest import runtime


@pytest.fixture
def run(central_config):
    env = {
        "LINELEDGER_CENTRAL_DB": central_config["db_url"],
        "LINELEDGER_CENTRAL_HOME": central_config["home"],
    }

    def invoke(*args):
        return CliRunner().invoke(main, list(args), env=env)

    return invoke


@pytest.fixture
def admin_headers(app):
    token = admin.add_admin_token(runtime(app).store, "ops", dt.datetime.now(dt.UTC))
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def held(app, client, tenant):
    """A serial held twice (a duplicate, then a later event of it) and an unheld forged one."""
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 10)
    s = serial_of(g, 1)
    push(client, h, [event("issued", s, g.lease_id, "WO-HAT-1")])
    push(client, h, [event("issued", s, g.lease_id, "WO-HAT-1")])
    push(client, h, [event("printed", s)])
    with runtime(app).store.read() as conn:
        ids = conn.execute(sa.select(T.quarantine.c.id).order_by(T.quarantine.c.id)).scalars()
        return {"serial": s, "ids": list(ids), "grant": g, "headers": h}


def test_quarantine_list_and_show_from_the_cli(run, held):
    s = held["serial"]
    out = run("quarantine", "list")
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert lines[0].split("\t") == [
        "id",
        "created (UTC)",
        "org",
        "serial",
        "reason",
        "holds",
        "source",
        "status",
    ]
    rows = [line.split("\t") for line in lines[1:]]
    assert [r[0] for r in rows] == [str(i) for i in reversed(held["ids"])]  # newest first
    assert {r[4] for r in rows} == {"ERR_DUPLICATE_SERIAL", "ERR_SERIAL_QUARANTINED"}
    assert all(r[2] == "MA01" and r[3] == s and r[5] == "yes" and r[7] == "open" for r in rows)

    only = run("quarantine", "list", "--reason", "err_duplicate_serial", "--format", "json")
    [entry] = [json.loads(line) for line in only.output.splitlines()]
    assert entry["reason"] == "ERR_DUPLICATE_SERIAL" and entry["source"] == "ingest"
    assert run("quarantine", "list", "--status", "resolved").output.strip() == "no entries"
    assert run("quarantine", "list", "--serial", s.lower(), "--limit", "1").output.count("\n") == 2

    shown = run("quarantine", "show", str(held["ids"][0]))
    assert shown.exit_code == 0, shown.output
    body = json.loads(shown.output)
    assert body["entry"]["id"] == held["ids"][0]
    assert body["event"]["type"] == "issued" and body["event"]["outcome"] == "quarantined"
    assert body["registry"]["serial"] == s and body["registry"]["state"] == "issued"
    assert [e["id"] for e in body["other_entries"]] == held["ids"][1:]

    missing = run("quarantine", "show", "99999")
    assert missing.exit_code == 1 and "ERR_QUARANTINE_UNKNOWN" in missing.output
    bad = run("quarantine", "list", "--org", "NOPE")
    assert bad.exit_code == 1 and "ERR_TENANT_UNKNOWN" in bad.output


def test_quarantine_list_and_show_in_the_admin_api(client, admin_headers, held):
    resp = client.get("/api/admin/v1/quarantine?org=MA01&limit=1", headers=admin_headers)
    assert resp.status_code == 200
    [newest] = resp.json["entries"]
    assert newest["id"] == held["ids"][-1]
    older = client.get(
        f"/api/admin/v1/quarantine?before={newest['id']}&status=all", headers=admin_headers
    ).json["entries"]
    assert [e["id"] for e in older] == held["ids"][:-1]
    resp = client.get(f"/api/admin/v1/quarantine/{held['ids'][0]}", headers=admin_headers)
    assert resp.json["entry"]["serial"] == held["serial"] and resp.json["registry"]
    shape(client.get("/api/admin/v1/quarantine"), 401, "ERR_UNAUTHORIZED")
    shape(
        client.get("/api/admin/v1/quarantine?status=maybe", headers=admin_headers),
        400,
        "ERR_INVALID",
    )
    shape(client.get("/api/admin/v1/quarantine?limit=0", headers=admin_headers), 400, "ERR_INVALID")
    shape(client.get("/api/admin/v1/quarantine?limit=x", headers=admin_headers), 400, "ERR_INVALID")
    shape(
        client.get("/api/admin/v1/quarantine?org=NOPE", headers=admin_headers),
        404,
        "ERR_TENANT_UNKNOWN",
    )
    shape(
        client.get("/api/admin/v1/quarantine/77777", headers=admin_headers),
        404,
        "ERR_QUARANTINE_UNKNOWN",
    )
    shape(
        client.get("/api/admin/v1/quarantine/abc", headers=admin_headers),
        404,
        "ERR_QUARANTINE_UNKNOWN",
    )


def _verdict(client, serial):
    return client.get(f"/api/public/serial/verify/{serial}").json["verdict"]


def _audit(app, action):
    with runtime(app).store.read() as conn:
        return conn.execute(
            sa.select(T.audit_log).where(T.audit_log.c.action == action).order_by(T.audit_log.c.id)
        ).all()


def test_recall_a_serial_from_the_cli(app, client, tenant, run):
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 10)
    s, voided = serial_of(g, 1), serial_of(g, 2)
    push(client, h, [event("issued", s, g.lease_id, "WO-HAT-1"), event("printed", s)])
    push(client, h, [event("issued", voided, g.lease_id), event("voided", voided)])
    out = run("recall", "--serial", s.lower(), "--reason", "stitching defect")
    assert out.exit_code == 0, out.output
    assert f"{s} recalled (was printed)" in out.output
    assert _verdict(client, s) == "recalled"
    [row] = _audit(app, "recall.serial")
    assert (row.target, row.reason) == (f"serial:{s}", "stitching defect")
    assert row.actor.startswith("cli:")
    with runtime(app).store.read() as conn:
        fact = conn.execute(
            sa.select(T.events).where(T.events.c.serial == s, T.events.c.type == "recalled")
        ).one()
    assert (fact.origin, fact.outcome) == ("central", "accepted")
    # later facts of the product are still recorded; it stays recalled
    assert push(client, h, [event("reprinted", s)])[0]["status"] == "accepted"
    assert _verdict(client, s) == "recalled"

    assert "recalled already" in run("recall", "--serial", s, "--reason", "again").output
    bad = run("recall", "--serial", voided, "--reason", "x")
    assert bad.exit_code == 1 and "ERR_ILLEGAL_TRANSITION" in bad.output
    unknown = run("recall", "--serial", serial_of(g, 5), "--reason", "x")
    assert unknown.exit_code == 1 and "ERR_SERIAL_UNKNOWN" in unknown.output
    wrong = run("recall", "--serial", s, "--org", "ZZ01", "--reason", "x")
    assert wrong.exit_code == 1 and "ERR_INVALID" in wrong.output
    both = run("recall", "--serial", s, "--work-order", "WO-HAT-1", "--reason", "x")
    assert both.exit_code == 2
    blank = run("recall", "--serial", s, "--reason", "  ")
    assert blank.exit_code == 1 and "ERR_INVALID" in blank.output


def test_recall_a_work_order_recalls_later_arrivals_too(app, client, tenant, run):
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 10)
    oem = grant(client, h, scope(tenant, "OEM"), 10)  # another work order's serial
    s1, s2, s3 = (serial_of(g, i) for i in (1, 2, 3))
    other = serial_of(oem, 1)
    push(
        client,
        h,
        [
            event("issued", s1, g.lease_id, "WO-HAT-1"),
            event("issued", s2, g.lease_id, "WO-HAT-1"),
            event("issued", other, oem.lease_id, "WO-OEM-1"),
            event("voided", s2),
        ],
    )
    out = run("recall", "--work-order", "WO-HAT-1", "--reason", "leather batch 7 faulty")
    assert out.exit_code == 0, out.output
    assert "MA01/WO-HAT-1 recalled: 1 serials recalled now" in out.output
    assert _verdict(client, s1) == "recalled"
    assert _verdict(client, s2) == "voided" and _verdict(client, other) == "genuine"
    rt = runtime(app)
    with rt.store.read() as conn:
        order = conn.execute(
            sa.select(T.work_orders).where(T.work_orders.c.number == "WO-HAT-1")
        ).one()
        assert order.recall_reason == "leather batch 7 faulty" and order.recalled_at
        assert is_recalled_work_order(conn, order.tenant_id, "WO-HAT-1")
        assert not is_recalled_work_order(conn, order.tenant_id, "WO-OEM-1")
        assert not is_recalled_work_order(conn, order.tenant_id, None)
        assert recalled_work_orders(conn, order.tenant_id, ["WO-OEM-1", "WO-HAT-1"]) == {"WO-HAT-1"}
    # a serial of the work order that reaches central after the recall arrives recalled
    push(client, h, [event("issued", s3, g.lease_id, "WO-HAT-1")])
    assert _verdict(client, s3) == "recalled"
    [row] = _audit(app, "recall.work_order")
    assert (
        row.target == "work_order:MA01/WO-HAT-1"
        and json.loads(row.details)["serials_recalled"] == 1
    )
    again = run("recall", "--work-order", "WO-HAT-1", "--org", "MA01", "--reason", "again")
    assert "(it was recalled already): 0 serials" in again.output
    assert len(_audit(app, "recall.work_order")) == 1  # nothing changed, nothing recorded
    unknown = run("recall", "--work-order", "WO-NONE", "--reason", "x")
    assert unknown.exit_code == 1 and "ERR_WORK_ORDER_UNKNOWN" in unknown.output


def test_recalls_in_the_admin_api(app, client, tenant, admin_headers):
    h = tenant.enroll()
    g = grant(client, h, scope(tenant, "OEM"), 10)
    s = serial_of(g, 1)
    push(client, h, [event("issued", s, g.lease_id, "WO-OEM-1")])
    resp = client.post(
        "/api/admin/v1/recalls", headers=admin_headers, json={"serial": s, "reason": "defect"}
    )
    assert resp.status_code == 201 and resp.json["recalled"] == 1
    assert _verdict(client, s) == "recalled"
    resp = client.post(
        "/api/admin/v1/recalls",
        headers=admin_headers,
        json={"org": "MA01", "work_order": "WO-OEM-1", "reason": "defect"},
    )
    assert resp.status_code == 201 and resp.json["already_recalled"] is False
    actors = {row.actor for row in _audit(app, "recall.work_order") + _audit(app, "recall.serial")}
    assert actors == {"token:ops"}
    url = "/api/admin/v1/recalls"
    shape(client.post(url, json={"serial": s, "reason": "x"}), 401, "ERR_UNAUTHORIZED")
    shape(client.post(url, headers=admin_headers, json={"reason": "x"}), 400, "ERR_INVALID")
    shape(
        client.post(
            url, headers=admin_headers, json={"serial": s, "work_order": "W", "reason": "x"}
        ),
        400,
        "ERR_INVALID",
    )
    shape(client.post(url, headers=admin_headers, json={"serial": s}), 400, "ERR_INVALID")
    shape(
        client.post(url, headers=admin_headers, json={"serial": 5, "reason": "x"}),
        400,
        "ERR_INVALID",
    )
    shape(
        client.post(url, headers=admin_headers, json={"work_order": "WO-OEM-1", "reason": "x"}),
        400,
        "ERR_INVALID",
    )
    shape(
        client.post(url, headers=admin_headers, json={"serial": "MA01-XX", "reason": "x"}),
        400,
        "ERR_SERIAL_LENGTH",
    )
    shape(
        client.post(
            url, headers=admin_headers, json={"org": "MA01", "work_order": "NO", "reason": "x"}
        ),
        404,
        "ERR_WORK_ORDER_UNKNOWN",
    )
    shape(client.post(url, headers=admin_headers, json=[]), 400, "ERR_INVALID")
