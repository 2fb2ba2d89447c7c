"""`check --dry-run` changes nothing at all: every table (job runs and locks included) is the
same before and after, on SQLite and PostgreSQL, while the same registry gives a live check
work to do."""

import datetime as dt

from click.testing import CliRunner

from central import tables as T
from central.cli import main
from protocol.reconcile import link_digest
from tests.central.helpers import event, grant, push, serial_of
from tests.central.jobs_support import check, dump, full_report, reconcile, scope
from tests.conftest import runtime


def _troubled_registry(app, client, tenant):
    """Make a registry where a live check would quarantine, ask for re-sends and close leases."""
    h = tenant.enroll()
    yesterday = tenant.today - dt.timedelta(days=1)
    old = grant(client, h, scope(tenant, day=yesterday), 10)  # the first lease to expire
    g = grant(client, h, scope(tenant), 10)
    sent = [event("issued", serial_of(g, s), g.lease_id, "WO-HAT-1") for s in (1, 2, 3)]
    push(client, h, sent + [event("issued", serial_of(old, 1), old.lease_id, "WO-HAT-1")])
    push(client, h, [event("issued", serial_of(g, 1), g.lease_id, "WO-HAT-1")])  # duplicate
    ids = [e.event_id for e in sent] + ["0190a6f0-0000-7000-8000-000000000001"]
    reconcile(client, h, [full_report(g.lease_id, 6, ids, {"issued": 4}, link_digest([]))])
    with runtime(app).store.write() as conn:  # and one corrupted link target
        conn.execute(
            T.registry.update().where(T.registry.c.serial == serial_of(g, 2)).values(token="TK-9")
        )


def test_dry_run_changes_no_table(app, client, tenant, central_config):
    _troubled_registry(app, client, tenant)
    store = runtime(app).store
    before = dump(store)
    assert before["job_runs"] == [] and before["quarantine"]

    env = {
        "LINELEDGER_CENTRAL_DB": central_config["db_url"],
        "LINELEDGER_CENTRAL_HOME": central_config["home"],
    }
    result = CliRunner().invoke(main, ["check", "--dry-run"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Mode: DRY RUN" in result.output and "Dry run: nothing was changed" in result.output
    assert "Missing core links: 1" in result.output
    result = CliRunner().invoke(
        main, ["check", "--dry-run", "--format", "json", "--tenant", "MA01"], env=env
    )
    assert result.exit_code == 0, result.output
    # a far-off `now` finds everything at once: orphans, silent agents, lost facts, expiry
    far = check(app, dt.datetime.now(dt.UTC) + dt.timedelta(days=5), dry_run=True)
    kinds = {f.kind for f in far.findings}
    assert {"orphan", "lease_accounting", "duplicate_serial", "expired_tail"} <= kinds
    assert far.summary()["fixed"] and far.summary()["quarantined"]

    assert dump(store) == before

    live = check(app, dt.datetime.now(dt.UTC) + dt.timedelta(days=5))
    assert live.summary() == far.summary()  # the dry run said exactly what a live run does
    assert dump(store) != before
