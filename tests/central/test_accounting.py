"""Work-order accounting: lease caps and sizes that follow the open work, each line's allowance,
raising a quantity, and the reconciliation report (HOLD SHIPMENT)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import uuid

import sqlalchemy as sa
from click.testing import CliRunner

from central import admin, agents, workorders
from central import tables as T
from central.cli import main as central_cli
from central.config import load_config
from tests.central.helpers import event, grant, lease, push, serial_of
from tests.conftest import runtime

NOW = dt.datetime.now(dt.UTC)


def scope(tenant, ptype="HAT", category="BAG"):
    return f"MA01-{ptype}-{category}-{tenant.today:%Y%m%d}"


def small_orders(app, hat_quantity=1000, overage=10.0, line=None):
    """Replace the fixture's big work orders with one small HAT order of a WAL product."""
    store = runtime(app).store
    admin.add_product(store, "MA01", "WAL-1", "WAL", "Wallet", None, NOW)
    admin.add_work_order(
        store,
        "MA01",
        "WO-W",
        "WAL-1",
        "HAT",
        hat_quantity,
        NOW,
        line=line,
        overage_pct=overage,
        tolerance_pct=1.0,
    )


def test_lease_sizes_follow_what_the_open_work_can_consume(app, client, tenant):
    small_orders(app, 1000, 10.0)  # may consume 1100 serials
    a, b = tenant.enroll("L1"), tenant.enroll("L2")
    first = lease(client, a, scope(tenant, category="WAL"), 800).json
    assert first["granted"] == 800
    second = lease(client, b, scope(tenant, category="WAL"), 800).json
    assert second["granted"] == 300 and second["fulfilled"] is False
    resp = lease(client, b, scope(tenant, category="WAL"), 10)
    assert resp.status_code == 409 and resp.json["error"]["code"] == "ERR_WORK_ORDER_COMPLETE"
    # a supervisor raises the quantity: the lines get numbers for the new work
    workorders.update_work_order(runtime(app).store, "MA01", "WO-W", "cli:s", NOW, quantity=1500)
    assert lease(client, b, scope(tenant, category="WAL"), 800).json["granted"] == 550


def test_a_line_only_gets_numbers_for_work_it_may_do(app, client, tenant):
    small_orders(app, 500, 0.0, line="L9")
    other = tenant.enroll("L1")
    resp = lease(client, other, scope(tenant, category="WAL"), 10)
    assert resp.status_code == 409 and resp.json["error"]["code"] == "ERR_WORK_ORDER_COMPLETE"
    mine = tenant.enroll("L9")
    assert lease(client, mine, scope(tenant, category="WAL"), 10_000).json["granted"] == 500


def test_an_agent_holds_at_most_its_pool_target_plus_one_block(app, client, tenant):
    config = load_config({"lease_pool_target": 300, "lease_block": 100})
    runtime(app).config = config
    h = tenant.enroll()
    assert lease(client, h, scope(tenant), 250).json["granted"] == 250
    assert lease(client, h, scope(tenant), 250).json["granted"] == 150  # up to 400 unused
    resp = lease(client, h, scope(tenant), 1)
    assert resp.status_code == 409 and resp.json["error"]["code"] == "ERR_LEASE_CAP"
    assert "400" in resp.json["error"]["message"]
    # numbers it reports used free the room again
    leases = client.post(
        "/api/edge/v1/reconcile",
        headers=h,
        json={"v": 1, "mode": "marks", "leases": []},
    ).json["unreported"]
    reports = [{"lease_id": x["lease_id"], "high_water": x["last"]} for x in leases]
    client.post(
        "/api/edge/v1/reconcile", headers=h, json={"v": 1, "mode": "marks", "leases": reports}
    )
    assert lease(client, h, scope(tenant), 1000).json["granted"] == 400
    # another agent has its own cap
    assert lease(client, tenant.enroll("L2"), scope(tenant), 1000).json["granted"] == 400


def test_config_tells_each_line_its_allowance(app, client, tenant):
    small_orders(app, 100, 5.0)
    a, b = tenant.enroll("L1"), tenant.enroll("L2")
    g = grant(client, a, scope(tenant, category="WAL"), 50)
    push(client, a, [event("issued", serial_of(g, q), g.lease_id, "WO-W") for q in range(1, 8)])
    wo = {w["number"]: w for w in client.get("/api/edge/v1/config", headers=b).json["work_orders"]}
    assert (wo["WO-W"]["allowed"], wo["WO-W"]["consumed_elsewhere"]) == (105, 7)
    mine = {
        w["number"]: w for w in client.get("/api/edge/v1/config", headers=a).json["work_orders"]
    }
    assert mine["WO-W"]["consumed_elsewhere"] == 0  # its own serials it counts itself
    done = workorders.update_work_order(
        runtime(app).store, "MA01", "WO-W", "cli:sup", NOW, "customer ordered more", quantity=200
    )
    assert done["before"] == {"quantity": 100} and done["allowed"] == 210
    wo = {w["number"]: w for w in client.get("/api/edge/v1/config", headers=b).json["work_orders"]}
    assert wo["WO-W"]["allowed"] == 210
    with runtime(app).store.read() as conn:
        audit = conn.execute(
            sa.select(T.audit_log).where(T.audit_log.c.action == "work_order.update")
        ).one()
    assert (audit.action, audit.reason) == ("work_order.update", "customer ordered more")


def _report(client, h, app, tenant):
    rt = runtime(app)
    token = admin.add_admin_token(rt.store, f"r{uuid.uuid4().hex[:8]}", NOW)
    resp = client.get(
        "/api/admin/v1/reports/reconcile?org=MA01&work_order=WO-W",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert resp.status_code == 200, resp.json
    return json.loads(resp.data)


def test_the_report_balances_and_holds_shipment_beyond_tolerance(app, client, tenant):
    small_orders(app, 100, 10.0)  # tolerance 1 %
    h = tenant.enroll("L1")
    g = grant(client, h, scope(tenant, category="WAL"), 40)
    s = [serial_of(g, q) for q in range(1, 21)]
    batch = []
    for q, text in enumerate(s, start=1):
        batch.append(event("issued", text, g.lease_id, "WO-W"))
        if q <= 15:
            batch.append(event("printed", text))
    batch.append(event("voided", s[16], data={"reason": "torn"}))
    batch.append(event("reprinted", s[0], data={"reason": "smudge"}))
    batch.append(event("linked", s[1], data={"token": "T-1"}))
    push(client, h, batch)
    report = _report(client, h, app, tenant)
    assert {
        k: report[k]
        for k in (
            "requested",
            "allowed",
            "leased",
            "issued",
            "printed",
            "reprinted",
            "voided",
            "linked",
        )
    } == {
        "requested": 100,
        "allowed": 110,
        "leased": 40,
        "issued": 20,
        "printed": 15,
        "reprinted": 1,
        "voided": 1,
        "linked": 1,
    }
    (lease_part,) = report["leases"]
    assert lease_part["balanced"] and lease_part["unused"] == 20 and lease_part["unaccounted"] == 0
    assert report["hold_shipment"] is False and report["discrepancy"] == 0
    # the agent reports it used up to 25, but the facts of 21..25 never arrive; then it is
    # revoked: five numbers are unaccounted, beyond 1 % of 100
    client.post(
        "/api/edge/v1/reconcile",
        headers=h,
        json={"v": 1, "mode": "marks", "leases": [{"lease_id": g.lease_id, "high_water": 25}]},
    )
    agents.revoke_agent(runtime(app).store, h["X-Agent-Id"], "retired", "cli:a", NOW)
    report = _report(client, h, app, tenant)
    (lease_part,) = report["leases"]
    assert (lease_part["unaccounted"], lease_part["gap"], lease_part["unused"]) == (5, 15, 0)
    assert lease_part["balanced"]
    assert report["discrepancy"] == 5 and report["discrepancy_pct"] == 5.0
    assert report["hold_shipment"] is True


def test_report_cli_formats_and_errors(app, client, tenant, central_config):
    small_orders(app, 100, 0.0)
    h = tenant.enroll("L1")
    g = grant(client, h, scope(tenant, category="WAL"), 10)
    push(client, h, [event("issued", serial_of(g, 1), g.lease_id, "WO-W")])
    base = ["--home", central_config["home"], "--db", central_config["db_url"]]
    runner = CliRunner()
    table = runner.invoke(central_cli, [*base, "report", "reconcile", "--work-order", "WO-W"])
    assert table.exit_code == 0, table.output
    assert "Work order MA01/WO-W" in table.output and "HOLD SHIPMENT" not in table.output
    assert "shipment: OK" in table.output
    out = runner.invoke(
        central_cli, [*base, "report", "reconcile", "--work-order", "WO-W", "--format", "csv"]
    )
    rows = list(csv.reader(io.StringIO(out.output)))
    assert rows[0][0] == "work_order" and rows[1][0] == "WO-W" and rows[1][4] == "1"
    out = runner.invoke(
        central_cli, [*base, "report", "reconcile", "--lease", g.lease_id, "--format", "json"]
    )
    assert json.loads(out.output)["balanced"] is True
    for args, code in (
        (["--work-order", "NOPE"], "ERR_WORK_ORDER_UNKNOWN"),
        (["--lease", "nope"], "ERR_LEASE_UNKNOWN"),
        (["--org", "ZZ99", "--work-order", "WO-W"], "ERR_TENANT_UNKNOWN"),
    ):
        out = runner.invoke(central_cli, [*base, "report", "reconcile", *args])
        assert out.exit_code == 1 and code in out.output, out.output
    out = runner.invoke(central_cli, [*base, "report", "reconcile"])
    assert out.exit_code == 2
    out = runner.invoke(
        central_cli,
        [*base, "work-order", "update", "--org", "MA01", "--number", "WO-W", "--quantity", "150"],
    )
    assert out.exit_code == 0 and "165" not in out.output and "150" in out.output
    out = runner.invoke(
        central_cli, [*base, "work-order", "update", "--org", "MA01", "--number", "WO-W"]
    )
    assert out.exit_code == 1 and "ERR_INVALID" in out.output


def test_numbers_reported_used_count_against_the_need_before_their_facts_arrive(
    app, client, tenant
):
    small_orders(app, 100, 0.0)
    h = tenant.enroll("L1")
    first = grant(client, h, scope(tenant, category="WAL"), 100)
    # the line used 60 numbers offline and reported its mark; no event has arrived yet
    client.post(
        "/api/edge/v1/reconcile",
        headers=h,
        json={"v": 1, "mode": "marks", "leases": [{"lease_id": first.lease_id, "high_water": 60}]},
    )
    resp = lease(client, h, scope(tenant, category="WAL"), 50)
    assert resp.status_code == 409 and resp.json["error"]["code"] == "ERR_WORK_ORDER_COMPLETE"
    # their facts arrive: nothing changes (they are counted once, not twice)
    push(
        client,
        h,
        [event("issued", serial_of(first, q), first.lease_id, "WO-W") for q in range(1, 61)],
    )
    resp = lease(client, h, scope(tenant, category="WAL"), 50)
    assert resp.status_code == 409
