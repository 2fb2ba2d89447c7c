import datetime as dt
import zoneinfo

import sqlalchemy as sa

from central import tables as T
from edge_agent import pool
from edge_agent.issuing import Issuer
from protocol.serials import Scope
from tests.conftest import runtime


def central_leases(tenant):
    with runtime(tenant.app).store.read() as conn:
        return conn.execute(sa.select(T.leases).order_by(T.leases.c.first_seq)).all()


def test_top_up_only_below_the_low_water_mark(agents, tenant):
    agent = agents.enroll()
    scope = pool.wanted_scopes(agent, agent.now())[0]
    assert pool.top_up(agent, scope) == 0  # 200 on hand, low water 100
    with agent.store.write() as conn:
        conn.execute(
            "UPDATE leases SET next_seq = next_seq + 120 WHERE scope_key = ?", (scope.key,)
        )
    assert pool.top_up(agent, scope) == 120  # back to the target of 200
    assert pool.remaining(agent.store.conn(), scope.key) == 200
    assert pool.top_up(agent, scope, need=500) == 300


def test_a_lease_answer_lost_on_the_way_is_not_granted_twice(agents, tenant):
    """The request id is written down before sending; a repeat gets the same lease."""
    agent = agents.enroll()
    scope = pool.wanted_scopes(agent, agent.now())[0]
    with agent.store.write() as conn:
        conn.execute("UPDATE leases SET next_seq = last_seq + 1 WHERE scope_key = ?", (scope.key,))
    assert pool.top_up(agent, scope) == 200
    granted_before = len(central_leases(tenant))
    # Replay: put the last request back as if its answer had been lost, forget its lease.
    [lease] = (
        agent.store.conn()
        .execute(
            "SELECT lease_id FROM leases WHERE scope_key = ? AND next_seq <= last_seq", (scope.key,)
        )
        .fetchall()
    )
    request_id = [r.request_id for r in central_leases(tenant) if r.id == lease["lease_id"]][0]
    with agent.store.write() as conn:
        conn.execute("DELETE FROM leases WHERE lease_id = ?", (lease["lease_id"],))
        conn.execute(
            "INSERT INTO lease_requests(request_id, scope_key, size, created_at) "
            "VALUES (?, ?, 200, 'x')",
            (request_id, scope.key),
        )
    assert pool.top_up(agent, scope) == 200
    assert len(central_leases(tenant)) == granted_before  # nothing new was granted
    assert agent.store.conn().execute("SELECT COUNT(*) FROM lease_requests").fetchone()[0] == 0


def test_tomorrow_is_leased_ahead_near_midnight(agents, tenant):
    agent = agents.enroll()
    tz = zoneinfo.ZoneInfo("Europe/Paris")
    today = dt.datetime.now(tz).date()
    late = dt.datetime.combine(today, dt.time(23, 0), tzinfo=tz)
    noon = dt.datetime.combine(today, dt.time(12, 0), tzinfo=tz)
    tomorrow = f"{today + dt.timedelta(days=1):%Y%m%d}"
    assert not any(tomorrow in s.key for s in pool.wanted_scopes(agent, noon))
    assert sum(tomorrow in s.key for s in pool.wanted_scopes(agent, late)) == 2
    report = pool.maintain(agent, late)
    assert sorted(report.granted) == sorted(
        s.key for s in pool.wanted_scopes(agent, late) if tomorrow in s.key
    )


def test_leases_of_past_days_are_returned_at_their_high_water_mark(agents, tenant):
    agent = agents.enroll()
    tz = zoneinfo.ZoneInfo("Europe/Paris")
    yesterday = dt.datetime.now(tz).date() - dt.timedelta(days=1)
    scope = Scope("MA01", "HAT", "BAG", yesterday)
    pool.top_up(agent, scope)
    issuer = Issuer(agent)
    yesterday_noon = dt.datetime.combine(yesterday, dt.time(12), tzinfo=tz)
    issued = [issuer.issue("WO-HAT-1", now=yesterday_noon) for _ in range(3)]
    assert all(scope.key == i.scope for i in issued)
    returned = pool.return_stale_leases(agent, agent.now())
    assert len(returned) == 1
    [lease] = [r for r in central_leases(tenant) if r.scope_key == scope.key]
    assert (lease.status, lease.high_water) == ("returned", 3)
    with runtime(tenant.app).store.read() as conn:
        gap = conn.execute(sa.select(T.gaps)).one()
    assert (gap.first_seq, gap.last_seq) == (4, lease.last_seq)
    assert pool.return_stale_leases(agent, agent.now()) == []  # nothing left to return


def test_maintenance_while_central_is_down_reports_it(agents, tmp_path):
    agent = agents.enroll()
    with agent.store.write() as conn:
        agent.store.set_meta(conn, "central_url", "http://127.0.0.1:9")
        conn.execute("UPDATE leases SET next_seq = last_seq + 1")
    fresh = agents.open(agent.config.home_path)
    report = pool.maintain(fresh, fresh.now())
    assert report.unreachable and not report.granted
    assert fresh.store.conn().execute("SELECT COUNT(*) FROM lease_requests").fetchone()[0] == 1
