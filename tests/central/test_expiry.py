"""The lease-expiry job: expired active leases close at the highest number central knows was
used, their unused tails become gaps, and nothing else changes."""

import datetime as dt

import sqlalchemy as sa
from click.testing import CliRunner

from central import admin, create_app, init_registry
from central import tables as T
from central.cli import main
from central.config import load_config
from central.jobs import expiry
from tests.central.helpers import event, grant, push, serial_of
from tests.central.jobs_support import full_report, lease_row, reconcile, scope
from tests.conftest import Tenant, runtime


def gaps(app, lease_id):
    with runtime(app).store.read() as conn:
        return conn.execute(sa.select(T.gaps).where(T.gaps.c.lease_id == lease_id)).all()


def test_expired_leases_close_at_the_known_mark(app, client, tenant):
    h = tenant.enroll()
    a = grant(client, h, scope(tenant), 10)
    b = grant(client, h, scope(tenant, "OEM"), 10)
    push(client, h, [event("issued", serial_of(a, s), a.lease_id) for s in (1, 2)])
    # the agent reported using up to 6 of b, though only 1 reached central
    push(client, h, [event("issued", serial_of(b, 1), b.lease_id, "WO-OEM-1")])
    reconcile(client, h, [full_report(b.lease_id, 6, [], {}, "0:" + "0" * 32)], mode="marks")
    store = runtime(app).store
    now = dt.datetime.now(dt.UTC)
    assert expiry.expire_leases(store, now) == []  # nothing has expired yet

    later = now + dt.timedelta(days=4)
    closed = expiry.expire_leases(store, later)
    assert expiry.counts(closed) == {"leases_expired": 2, "numbers_voided": 8 + 4, "agents": 1}
    for lease_id, mark in ((a.lease_id, 2), (b.lease_id, 6)):
        row = lease_row(app, lease_id)
        assert (row.status, row.high_water) == ("expired", mark)
        assert row.closed_at is not None
        [gap] = gaps(app, lease_id)
        assert (gap.first_seq, gap.last_seq, gap.reason) == (mark + 1, 10, "expired")
    # a number above the mark was never handed out: it verifies unknown
    resp = client.get(f"/api/public/serial/verify/{serial_of(a, 5)}")
    assert resp.json["verdict"] == "unknown"
    assert expiry.expire_leases(store, later) == []  # closed once, one gap each
    assert len(gaps(app, a.lease_id)) == 1


def test_a_lease_returned_meanwhile_is_left_alone(app, client, tenant):
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 10)
    resp = client.post(
        f"/api/edge/v1/leases/{g.lease_id}/return", headers=h, json={"v": 1, "high_water": 0}
    )
    assert resp.status_code == 200, resp.json
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=4)
    assert expiry.expire_lease(runtime(app).store, g.lease_id, later) is None
    assert lease_row(app, g.lease_id).status == "returned"
    assert [gap.reason for gap in gaps(app, g.lease_id)] == ["returned"]


def test_jobs_run_lease_expiry_from_cron(central_config):
    """A lease for yesterday with no grace days expired at midnight (plant time)."""
    config = {**central_config, "lease_grace_days": 0}
    init_registry(load_config(config), dt.datetime.now(dt.UTC))
    app = create_app(config)
    try:
        rt = runtime(app)
        now = dt.datetime.now(dt.UTC)
        admin.add_tenant(rt.store, "MA01", "Maison Atelier", "Europe/Paris", now)
        admin.add_product(rt.store, "MA01", "TOTE-01", "BAG", "Tote bag", None, now)
        admin.add_work_order(rt.store, "MA01", "WO-HAT-1", "TOTE-01", "HAT", 1000, now)
        tenant = Tenant("MA01", "Europe/Paris", app)
        client = app.test_client()
        h = tenant.enroll()
        yesterday = tenant.today - dt.timedelta(days=1)
        g = grant(client, h, scope(tenant, day=yesterday), 10)
        push(client, h, [event("issued", serial_of(g, 1), g.lease_id)])
    finally:
        rt.close()
    env = {
        "LINELEDGER_CENTRAL_DB": central_config["db_url"],
        "LINELEDGER_CENTRAL_HOME": central_config["home"],
    }
    result = CliRunner().invoke(main, ["jobs", "run", "lease-expiry"], env=env)
    assert result.exit_code == 0, result.output
    assert '"leases_expired": 1' in result.output and '"status": "ok"' in result.output
    assert '"trigger": "cli"' in result.output
