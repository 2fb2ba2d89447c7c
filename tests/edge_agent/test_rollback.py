"""The rollback guard: a line PC restored from an older copy never reuses a number."""

import datetime as dt
import json
import os
import shutil
import sqlite3
import threading
import urllib.request

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from central import agents as central_agents
from central import tables as T
from edge_agent import alerts, outbox, reconcile, rollback
from edge_agent.cli import main
from edge_agent.issuing import Issuer
from edge_agent.marks import MarksReporter
from edge_agent.status import build_status
from edge_agent.web import create_operator_app
from tests.conftest import LiveServer, runtime
from tests.procs import json_lines, wait_for

NOW = dt.datetime.now(dt.UTC)


def edge(home, *args):
    result = CliRunner().invoke(main, ["--home", str(home), *args])
    assert result.exit_code == 0, result.output
    return result


def issue(home, work_order, count):
    out = edge(home, "issue", "--work-order", work_order, "--count", str(count)).stdout
    return json_lines(out)


def copy_of(agent, dest):
    """Take a copy of the agent's database the way a backup tool or VM snapshot would."""
    target = sqlite3.connect(dest)
    agent.store.conn().backup(target)
    target.close()
    return dest


def restore(agents, agent, copy):
    """Put the old copy back in the agent's home and open it as a new process would."""
    agent.close()
    for suffix in ("", "-wal", "-shm"):
        path = f"{agent.store.path}{suffix}"
        if os.path.exists(path):
            os.remove(path)
    shutil.copy(copy, agent.store.path)
    return agents.open(agent.config.home_path)


def registry(tenant):
    with runtime(tenant.app).store.read() as conn:
        return set(conn.execute(sa.select(T.registry.c.serial)).scalars())


def rollback_alerts(agent):
    return [a for a in alerts.list_alerts(agent.store.conn()) if a["kind"] == "rollback"]


def test_restored_after_its_later_work_reached_central(agents, tenant, tmp_path):
    agent = agents.enroll()
    home = agent.config.home_path
    issue(home, "WO-HAT-1", 5)
    edge(home, "sync")
    copy = copy_of(agent, tmp_path / "backup.db")
    later = issue(home, "WO-HAT-1", 30)
    edge(home, "sync")
    agent = restore(agents, agent, copy)
    result = CliRunner().invoke(main, ["--home", str(home), "issue", "--work-order", "WO-HAT-1"])
    assert result.exit_code == 0, result.output
    assert "RESTORED FROM AN OLDER COPY" in result.stderr
    new = json_lines(result.stdout)[0]
    assert new["seq"] == 36 and new["serial"] not in {s["serial"] for s in later}
    assert json.loads(edge(home, "sync").stdout)["results"] == {"accepted": 1}
    found = rollback_alerts(agent)
    assert len(found) == 1 and "restored from an older copy" in found[0]["message"]
    assert found[0]["details"]["skipped"] == [6, 35]
    gaps = rollback.rollback_gaps(agent)
    assert [(g["first_seq"], g["last_seq"], g["reason"]) for g in gaps] == [(6, 35, "rollback")]
    status = json.loads(edge(home, "status").stdout)
    assert [a["kind"] for a in status["alerts"]] == ["rollback"]
    server = LiveServer(create_operator_app(lambda: build_status(agent, probe=False), agent))
    try:
        with urllib.request.urlopen(server.url + "/", timeout=10) as resp:
            page = resp.read().decode()
        with urllib.request.urlopen(server.url + "/metrics", timeout=10) as resp:
            metrics = resp.read().decode()
    finally:
        server.close()
    assert "Restored from an older copy" in page and "restored from an older copy" in page
    assert 'alerts_open{kind="rollback"} 1.0' in metrics
    # A supervisor clears it once the restore is explained.
    result = edge(home, "alerts")
    alert_id = json_lines(result.stdout)[0]["id"]
    edge(home, "alerts", "clear", str(alert_id), "--reason", "VM snapshot restored by IT")
    assert json_lines(edge(home, "alerts").stdout) == []
    cleared = json_lines(edge(home, "alerts", "--all").stdout)
    assert cleared[0]["cleared_reason"] == "VM snapshot restored by IT"


def test_restored_after_it_only_reported_its_marks(agents, tenant, tmp_path):
    agent = agents.enroll()
    home = agent.config.home_path
    issue(home, "WO-OEM-1", 5)
    edge(home, "sync")
    copy = copy_of(agent, tmp_path / "backup.db")
    lost = issue(home, "WO-OEM-1", 20)  # printed on labels; the events never reach central
    agent = restore(agents, agent, copy)
    new = issue(home, "WO-OEM-1", 3)
    assert [n["seq"] for n in new] == [26, 27, 28]
    assert not {n["serial"] for n in new} & {s["serial"] for s in lost}
    assert rollback_alerts(agent)[0]["details"]["skipped"] == [6, 25]
    edge(home, "sync")
    assert len(registry(tenant)) == 8


def test_a_lease_granted_after_the_copy_is_adopted_above_centrals_mark(agents, tenant, tmp_path):
    agent = agents.enroll()  # 200 numbers per scope, top-up below 100
    home = agent.config.home_path
    copy = copy_of(agent, tmp_path / "backup.db")
    issue(home, "WO-HAT-1", 150)
    second = issue(home, "WO-HAT-1", 60)  # the pool tops up: a second lease, 10 used of it
    edge(home, "sync")
    leases = {s["lease_id"] for s in second}
    assert len(leases) == 2
    agent = restore(agents, agent, copy)
    report = rollback.exchange_marks(agent)
    assert report.rollback is True and len(report.adopted) == 1
    assert report.skipped == {second[0]["lease_id"]: [1, 200]}
    new = Issuer(agent).issue("WO-HAT-1")
    assert new.lease_id == report.adopted[0] and new.seq == 211
    kinds = sorted(a["subject"] for a in rollback_alerts(agent))
    assert kinds == sorted([second[0]["lease_id"], report.adopted[0]])
    assert outbox.flush(agent).results == {"accepted": 1}


def test_a_lease_whose_grant_answer_was_lost_is_adopted_quietly(agents):
    agent = agents.enroll()
    conn = agent.store.conn()
    lease = conn.execute("SELECT * FROM leases WHERE scope_key LIKE '%-HAT-%'").fetchone()
    with agent.store.write() as w:  # as if the grant's answer never arrived
        w.execute("DELETE FROM leases WHERE lease_id = ?", (lease["lease_id"],))
        w.execute(
            "INSERT INTO lease_requests(request_id, scope_key, size, created_at) VALUES "
            "('0190f000-0000-7000-8000-000000000000', ?, 200, 'x')",
            (lease["scope_key"],),
        )
    report = rollback.exchange_marks(agent)
    assert report.adopted == [lease["lease_id"]] and report.rollback is False
    assert rollback_alerts(agent) == []
    assert Issuer(agent).issue("WO-HAT-1").seq == 1


def test_leases_central_closed_or_does_not_know_are_closed_here(agents, tenant):
    agent = agents.enroll()
    issuer = Issuer(agent)
    issuer.issue_many("WO-HAT-1", 3)  # never reported: central's mark stays 0
    ident = agent.identity()
    store = runtime(tenant.app).store
    central_agents.revoke_agent(store, ident.agent_id, "audit", "cli:alice", NOW)
    central_agents.reinstate_agent(store, ident.agent_id, "done", "cli:alice", NOW)
    with agent.store.write() as conn:  # a lease central never granted (a copied database)
        conn.execute(
            "INSERT INTO leases(lease_id, scope_key, prod_date, first_seq, last_seq, next_seq, "
            "key_hex, key_version, status) SELECT 'not-from-this-central', scope_key, "
            "prod_date, 90000, 90099, 90000, key_hex, key_version, 'active' FROM leases LIMIT 1"
        )
    report = rollback.exchange_marks(agent)
    assert set(report.closed.values()) == {"revoked"} and len(report.closed) == 2
    assert report.unknown == ["not-from-this-central"]
    statuses = dict(agent.store.conn().execute("SELECT lease_id, status FROM leases").fetchall())
    assert set(statuses.values()) == {"closed"}
    kinds = sorted(a["kind"] for a in alerts.list_alerts(agent.store.conn()))
    assert kinds == ["lease_closed", "lease_unknown"]  # the HAT lease was used above 0
    reconcile.reconcile(agent)  # reported once more, then no more: central cannot confirm it
    assert "not-from-this-central" not in {v.lease_id for v in reconcile.snapshot(agent)}
    assert len(alerts.list_alerts(agent.store.conn())) == 2  # raised once, not again
    # Issuing goes on from fresh leases.
    fresh = Issuer(agent)
    from edge_agent import pool

    for scope in pool.wanted_scopes(agent, agent.now()):
        pool.top_up(agent, scope)
    assert fresh.issue("WO-HAT-1").lease_id not in statuses


def test_marks_are_reported_while_issuing_and_at_the_end(agents, tenant):
    agent = agents.enroll(marks_every=10, marks_seconds=3600)
    issuer = Issuer(agent)

    def central_mark():
        with runtime(tenant.app).store.read() as conn:
            return conn.execute(
                sa.select(sa.func.max(T.leases.c.reported_hw)).where(
                    T.leases.c.scope_key.like("%-HAT-%")
                )
            ).scalar()

    with MarksReporter(agent) as reporter:
        for _ in range(10):
            issuer.issue("WO-HAT-1")
            reporter.issued()
        wait_for(lambda: reporter.reports >= 1)  # ten serials: a report without waiting an hour
        assert central_mark() >= 10
        for _ in range(5):
            issuer.issue("WO-HAT-1")
            reporter.issued()
    assert central_mark() == 15  # the last report, when the command ends
    assert reporter.rollback is False


def test_acknowledged_marks_ride_in_the_issuing_transaction(agents):
    """With ride_on (as `issue` wires it), acks cost no transaction of their own."""
    agent = agents.enroll(marks_every=5, marks_seconds=3600)
    issuer = Issuer(agent)
    own_writes = []
    try_write = agent.store.try_write
    agent.store.try_write = lambda statements: own_writes.append(statements) or False

    def local_mark():
        row = (
            agent.store.conn()
            .execute(
                "SELECT MAX(COALESCE(reported_hw, 0)) FROM leases WHERE scope_key LIKE '%-HAT-%'"
            )
            .fetchone()
        )
        return row[0]

    try:
        with MarksReporter(agent) as reporter:
            reporter.ride_on(issuer)
            for _ in range(5):
                issuer.issue("WO-HAT-1")
                reporter.issued()
            wait_for(lambda: reporter.reports >= 1)
            first = issuer.issue("WO-HAT-1")  # notes the acknowledged mark as it commits
            assert local_mark() >= 5
            reporter.issued()
        assert issuer.rider is None  # the command is over: nothing rides any more
        assert own_writes == []
        assert local_mark() == first.seq  # the last report, noted when the command ends
    finally:
        agent.store.try_write = try_write


def test_reports_racing_with_issuing_never_skip_a_number(agents):
    agent = agents.enroll(marks_every=1, pool_target=2000, lease_block=2000, low_water=1000)
    issuer = Issuer(agent)
    stop = threading.Event()
    errors = []

    def report_all_the_time():
        try:
            while not stop.is_set():
                rollback.exchange_marks(agent)
        except Exception as exc:  # pragma: no cover - shown by the assert below
            errors.append(exc)

    thread = threading.Thread(target=report_all_the_time)
    thread.start()
    try:
        seqs = [issuer.issue("WO-HAT-1").seq for _ in range(300)]
    finally:
        stop.set()
        thread.join()
    assert errors == []
    assert seqs == list(range(1, 301))
    assert rollback.rollback_gaps(agent) == [] and rollback_alerts(agent) == []


def test_issuing_offline_goes_on_without_the_guard(agents):
    agent = agents.enroll()
    home = agent.config.home_path
    with agent.store.write() as conn:
        agent.store.set_meta(conn, "central_url", "http://127.0.0.1:9")
    assert len(issue(home, "WO-HAT-1", 5)) == 5
    assert rollback_alerts(agent) == []


def test_a_full_reconcile_applies_the_guard_too(agents, tmp_path):
    agent = agents.enroll()
    home = agent.config.home_path
    copy = copy_of(agent, tmp_path / "backup.db")
    issue(home, "WO-HAT-1", 7)
    agent = restore(agents, agent, copy)
    report = reconcile.reconcile(agent)
    assert report.guard.rollback is True and list(report.guard.skipped.values()) == [[1, 7]]


@pytest.mark.parametrize("bad_mark", [10_000, 100_000])
def test_a_mark_beyond_the_lease_exhausts_it_and_no_more(agents, bad_mark):
    from protocol.reconcile import LeaseVerdict, ReconcileResponse

    agent = agents.enroll()
    lease = agent.store.conn().execute("SELECT * FROM leases LIMIT 1").fetchone()
    resp = ReconcileResponse(
        "2025-11-09T10:00:00.000Z",
        (LeaseVerdict(lease["lease_id"], "active", min(bad_mark, 99_999)),),
    )
    report = rollback.apply_answer(agent, resp, {}, "marks")
    assert report.skipped == {lease["lease_id"]: [1, 200]}
    after = (
        agent.store.conn()
        .execute("SELECT next_seq FROM leases WHERE lease_id = ?", (lease["lease_id"],))
        .fetchone()
    )
    assert after["next_seq"] == 201


def test_a_report_never_queues_behind_an_issuing_loop_for_the_store(agents, tenant):
    """Central has the mark as soon as it answers; noting the acknowledgment waits for a free
    store, so a writer holding the lock cannot slow the reports down."""
    agent = agents.enroll(marks_every=5, marks_seconds=3600)
    issuer = Issuer(agent)
    for _ in range(5):
        issuer.issue("WO-HAT-1")
    blocker = sqlite3.connect(agent.store.path, isolation_level=None, timeout=30)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the store
    try:
        reporter = MarksReporter(agent).__enter__()
        reporter.issued(5)
        wait_for(lambda: reporter.reports >= 1)  # answered although the store stayed locked
        with runtime(tenant.app).store.read() as conn:
            marks = set(conn.execute(sa.select(T.leases.c.reported_hw)).scalars())
        assert 5 in marks
        local = agent.store.conn().execute("SELECT MAX(reported_hw) FROM leases").fetchone()[0]
        assert not local  # not written down yet: the store was busy
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    reporter.finish()  # the command's end writes it down
    local = agent.store.conn().execute("SELECT MAX(reported_hw) FROM leases").fetchone()[0]
    assert local == 5 and rollback.unreported_marks(agent) is False


def test_try_write_gives_way_to_another_writer(agents):
    agent = agents.enroll()
    statements = [("INSERT INTO meta(key, value) VALUES ('probe', 'x')", ())]
    blocker = sqlite3.connect(agent.store.path, isolation_level=None, timeout=30)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        assert agent.store.try_write(statements) is False
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert agent.store.get_meta("probe") is None
    assert agent.store.try_write(statements) is True
    assert agent.store.get_meta("probe") == "x"
    # the busy timeout is back for ordinary writes
    assert agent.store.conn().execute("PRAGMA busy_timeout").fetchone()[0] == 30000
