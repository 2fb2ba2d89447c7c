"""The full reconcile against the real central: confirm, re-send what central lacks, prune."""

import datetime as dt
import json
import time

import pytest
from click.testing import CliRunner
from flask import Flask

from central import tables as T
from edge_agent import outbox, pool, reconcile
from edge_agent.cli import main
from edge_agent.errors import CentralUnreachable
from edge_agent.issuing import Issuer
from tests.conftest import LiveServer, runtime

LATER = 31 * 86400


def edge(home, *args):
    return CliRunner().invoke(main, ["--home", str(home), *args])


def confirmed(agent):
    return (
        agent.store.conn()
        .execute("SELECT COUNT(*) FROM outbox WHERE confirmed_at IS NOT NULL")
        .fetchone()[0]
    )


def forget_in_central(tenant, serials):
    """Central loses what it had of some serials (say, its database was restored)."""
    store = runtime(tenant.app).store
    with store.write() as conn:
        conn.execute(T.events.delete().where(T.events.c.serial.in_(serials)))
        conn.execute(T.registry.delete().where(T.registry.c.serial.in_(serials)))


def test_a_full_reconcile_confirms_and_pruning_keeps_the_digest(agents):
    agent = agents.enroll()
    issuer = Issuer(agent)
    issuer.issue_many("WO-HAT-1", 5)
    issuer.issue_many("WO-OEM-1", 3)
    assert outbox.flush(agent).results == {"accepted": 8}
    issuer.issue("WO-HAT-1")  # not delivered yet: not in the digest, not confirmed
    report = reconcile.reconcile(agent)
    assert (report.leases, report.confirmed, report.confirmed_events) == (2, 2, 8)
    assert (report.resent, report.extra, report.links_mismatch) == (0, 0, [])
    assert confirmed(agent) == 8
    assert outbox.prune(agent, time.time() + LATER, retention_days=30) == 8
    digests = agent.store.conn().execute("SELECT SUM(events) FROM lease_digests").fetchone()[0]
    assert digests == 8
    outbox.flush(agent)
    report = reconcile.reconcile(agent)  # 8 pruned (kept digests) + 1 held: still agree
    assert (report.confirmed, report.confirmed_events, report.resent) == (2, 1, 0)
    last = reconcile.last_reconcile(agent)
    assert last["confirmed"] == 2 and last["at"]


def test_events_central_lacks_are_sent_again_exactly(agents, tenant):
    agent = agents.enroll()
    issued = Issuer(agent).issue_many("WO-HAT-1", 40)
    outbox.flush(agent)
    lost = [i.serial for i in issued[5:8]]
    forget_in_central(tenant, lost)
    report = reconcile.reconcile(agent)
    assert report.confirmed == 1 and report.resent == 3  # the OEM lease (no events) agrees
    pending = (
        agent.store.conn()
        .execute("SELECT serial, last_code FROM outbox WHERE status = 'pending' ORDER BY seq")
        .fetchall()
    )
    assert [r["serial"] for r in pending] == lost
    assert {r["last_code"] for r in pending} == {"ERR_RESEND"}
    assert outbox.flush(agent).results == {"accepted": 3}
    report = reconcile.reconcile(agent)
    assert report.confirmed == 2 and report.confirmed_events == 40


def test_central_asks_for_the_whole_lease_again(agents, tenant):
    agent = agents.enroll()
    issued = Issuer(agent).issue_many("WO-OEM-1", 6)
    outbox.flush(agent)
    with runtime(tenant.app).store.write() as conn:
        conn.execute(
            T.leases.update()
            .where(T.leases.c.scope_key.like("%-OEM-%"))
            .values(resend_requested_at=dt.datetime.now(dt.UTC))
        )
    report = reconcile.reconcile(agent)
    assert report.resent == 6 and report.confirmed == 1  # the HAT lease has no events
    assert outbox.flush(agent).results == {"duplicate": 6}
    report = reconcile.reconcile(agent)  # asked once: now confirmed
    assert report.confirmed == 2 and report.confirmed_events == 6
    assert len(issued) == 6


def test_a_closed_and_confirmed_lease_is_settled_and_not_reported_again(agents, tenant):
    agent = agents.enroll()
    Issuer(agent).issue_many("WO-HAT-1", 4)
    outbox.flush(agent)
    yesterday = (tenant.today - dt.timedelta(days=1)).isoformat()
    with agent.store.write() as conn:
        conn.execute("UPDATE leases SET prod_date = ? WHERE scope_key LIKE '%-HAT-%'", (yesterday,))
    assert len(pool.return_stale_leases(agent, agent.now())) == 1
    report = reconcile.reconcile(agent)
    assert report.settled == 1 and report.confirmed == 2
    settled = (
        agent.store.conn()
        .execute("SELECT status FROM leases WHERE settled_at IS NOT NULL")
        .fetchall()
    )
    assert [r["status"] for r in settled] == ["returned"]
    assert len(reconcile.snapshot(agent)) == 1  # only the open lease is reported from now on


def test_the_reconcile_command_and_central_down(agents):
    agent = agents.enroll()
    home = agent.config.home_path
    assert edge(home, "issue", "--work-order", "WO-HAT-1", "--count", "2").exit_code == 0
    assert edge(home, "sync").exit_code == 0
    result = edge(home, "reconcile")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["ok"] is True and out["mode"] == "full" and out["confirmed"] == 2
    marks = json.loads(edge(home, "reconcile", "--marks").stdout)
    assert marks["mode"] == "marks" and marks["leases"] == 2 and marks["rollback"] is False
    with agent.store.write() as conn:
        agent.store.set_meta(conn, "central_url", "http://127.0.0.1:9")
    result = edge(home, "reconcile")
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"]["code"] == "ERR_CENTRAL_UNREACHABLE"
    assert "Traceback" not in result.output


HOSTILE = [
    "not json",
    json.dumps([1, 2]),
    json.dumps({"ok": True, "time": "now", "leases": []}),
    json.dumps({"ok": True, "time": "2025-11-09T10:00:00.000Z", "leases": "x"}),
    json.dumps(
        {
            "ok": True,
            "time": "2025-11-09T10:00:00.000Z",
            "leases": [{"lease_id": "L", "status": "stolen", "central_high_water": 1}],
        }
    ),
    json.dumps(
        {
            "ok": True,
            "time": "2025-11-09T10:00:00.000Z",
            "leases": [
                {
                    "lease_id": "L",
                    "status": "active",
                    "central_high_water": 1,
                    "mismatched": {"99": ["a"]},
                }
            ],
        }
    ),
    json.dumps(
        {
            "ok": True,
            "time": "2025-11-09T10:00:00.000Z",
            "leases": [{"lease_id": "L", "status": "active", "central_high_water": -5}],
        }
    ),
    json.dumps(
        {
            "ok": True,
            "time": "2025-11-09T10:00:00.000Z",
            "leases": [],
            "unreported": [{"lease_id": "L", "first": 5, "last": 1}],
        }
    ),
    "[" * 100_000,
]


@pytest.fixture
def hostile_central():
    answers: list[str] = []
    app = Flask("hostile")

    @app.post("/api/edge/v1/reconcile")
    def answer():
        return answers[0], 200, {"Content-Type": "application/json", "X-LineLedger-Time": "junk"}

    server = LiveServer(app)
    yield server, answers
    server.close()


def test_a_malformed_answer_changes_nothing(agents, hostile_central):
    server, answers = hostile_central
    agent = agents.enroll()
    Issuer(agent).issue_many("WO-HAT-1", 3)
    with agent.store.write() as conn:
        agent.store.set_meta(conn, "central_url", server.url)
    home = agent.config.home_path
    before = agent.store.conn().execute("SELECT * FROM leases ORDER BY lease_id").fetchall()
    reading = agent.store.get_meta("clock")
    for body in HOSTILE:
        answers[:] = [body]
        fresh = agents.open(home)
        with pytest.raises(CentralUnreachable) as exc:
            reconcile.reconcile(fresh)
        assert "malformed" in exc.value.message or "no JSON" in exc.value.message
        result = edge(home, "reconcile", "--marks")
        assert result.exit_code == 2 and "Traceback" not in result.output
    after = agent.store.conn().execute("SELECT * FROM leases ORDER BY lease_id").fetchall()
    assert [tuple(r) for r in after] == [tuple(r) for r in before]
    assert agent.store.get_meta("clock") == reading  # a junk time header is no reading


def test_the_service_reconciles_at_start(agents):
    from edge_agent.service import Service
    from tests.procs import wait_for

    agent = agents.enroll(operator_port=0, sync_interval=0.2)
    Issuer(agent).issue_many("WO-HAT-1", 3)
    svc = Service(agent)
    svc.start()
    try:
        wait_for(lambda: reconcile.last_reconcile(agent) is not None)
        # The start reconcile may run before or after the first push; the push ends a
        # catch-up (the outbox had a backlog), which reconciles again and confirms.
        wait_for(lambda: confirmed(agent) == 3)
        assert svc.status()["reconcile"]["last_full"]["confirmed"] >= 1
    finally:
        svc.stop()
