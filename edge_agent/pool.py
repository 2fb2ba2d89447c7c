"""The lease pool: numbers on hand per scope, topped up in the background.

A top-up request is written down (with its request id) before it is sent, so a request
whose answer was lost is repeated with the same id and central hands back the same lease
instead of a second one.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import zoneinfo
from dataclasses import dataclass, field

from edge_agent.agent import Agent, Identity
from edge_agent.errors import CentralRefused, CentralUnreachable, EdgeError
from protocol.messages import MAX_LEASE_SIZE, LeaseGrant, LeaseRequest, WorkOrderInfo
from protocol.serials import Scope


def production_date(identity: Identity, now: dt.datetime) -> dt.date:
    """Return today's production date in the plant's time zone."""
    return now.astimezone(zoneinfo.ZoneInfo(identity.timezone or "UTC")).date()


def scope_for(identity: Identity, wo: WorkOrderInfo, prod_date: dt.date) -> Scope:
    """Return the scope a work order's serials of one production date come from."""
    return Scope(identity.org, wo.ptype, wo.category, prod_date)


def remaining(conn: sqlite3.Connection, scope_key: str) -> int:
    """Return how many numbers of a scope are on hand."""
    row = conn.execute(
        "SELECT COALESCE(SUM(last_seq - next_seq + 1), 0) FROM leases "
        "WHERE scope_key = ? AND status = 'active' AND next_seq <= last_seq",
        (scope_key,),
    ).fetchone()
    return int(row[0])


def levels(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
    """Return numbers on hand and active leases per scope with active leases."""
    rows = conn.execute(
        "SELECT scope_key, SUM(MAX(last_seq - next_seq + 1, 0)) AS remaining, "
        "COUNT(*) AS leases FROM leases WHERE status = 'active' GROUP BY scope_key "
        "ORDER BY scope_key"
    )
    return {r["scope_key"]: {"remaining": r["remaining"], "leases": r["leases"]} for r in rows}


def wanted_scopes(agent: Agent, now: dt.datetime) -> list[Scope]:
    """Return the scopes the line will issue from: today's, and tomorrow's near midnight."""
    ident = agent.identity()
    tz = zoneinfo.ZoneInfo(ident.timezone or "UTC")
    local = now.astimezone(tz)
    dates = [local.date()]
    midnight = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(0), tzinfo=tz)
    if (midnight - local).total_seconds() <= agent.config.lookahead_hours * 3600:
        dates.append(local.date() + dt.timedelta(days=1))
    scopes: dict[str, Scope] = {}
    for number in agent.work_order_numbers():
        wo = agent.work_order(number)
        for day in dates:
            scope = scope_for(ident, wo, day)
            scopes[scope.key] = scope
    return list(scopes.values())


def _store_grant(agent: Agent, conn: sqlite3.Connection, lease: LeaseGrant) -> None:
    conn.execute(
        "INSERT INTO leases(lease_id, scope_key, prod_date, first_seq, last_seq, next_seq, "
        "key_hex, key_version, expires_at, granted_at, status) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'active') ON CONFLICT(lease_id) DO NOTHING",
        (
            lease.lease_id,
            lease.scope.key,
            lease.scope.prod_date.isoformat(),
            lease.first,
            lease.last,
            lease.first,
            lease.key.hex(),
            lease.key_version,
            lease.expires_at,
            agent.now().isoformat(),
        ),
    )


def top_up(agent: Agent, scope: Scope, need: int = 0) -> int:
    """Lease more numbers of a scope if it is below the low-water mark (or below `need`)."""
    cfg = agent.config
    conn = agent.store.conn()
    have = remaining(conn, scope.key)
    if have >= cfg.low_water and have >= need:
        return 0
    size = min(MAX_LEASE_SIZE, max(cfg.lease_block, cfg.pool_target - have, need - have))
    with agent.store.write() as w:
        row = w.execute(
            "SELECT request_id, size FROM lease_requests WHERE scope_key = ?", (scope.key,)
        ).fetchone()
        if row is None:
            request_id = agent.new_event_id()
            w.execute(
                "INSERT INTO lease_requests(request_id, scope_key, size, created_at) "
                "VALUES (?, ?, ?, ?)",
                (request_id, scope.key, size, agent.now().isoformat()),
            )
        else:
            request_id, size = row["request_id"], row["size"]
    try:
        resp = agent.client().lease(LeaseRequest(request_id, scope, size))
    except CentralRefused:
        with agent.store.write() as w:
            w.execute("DELETE FROM lease_requests WHERE request_id = ?", (request_id,))
        raise
    with agent.store.write() as w:
        for lease in resp.leases:
            _store_grant(agent, w, lease)
        w.execute("DELETE FROM lease_requests WHERE request_id = ?", (request_id,))
    return resp.granted


@dataclass
class PoolReport:
    """What one round of pool maintenance did."""

    granted: dict[str, int] = field(default_factory=dict)
    returned: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    unreachable: bool = False


def return_stale_leases(agent: Agent, now: dt.datetime) -> list[str]:
    """Close leases of past production dates locally, then tell central their high water.

    Closing first, in one transaction, means no number can be issued from a lease after
    its high-water mark was read; telling central can then be repeated until it answers.
    """
    today = production_date(agent.identity(), now).isoformat()
    with agent.store.write() as w:
        w.execute(
            "UPDATE leases SET status = 'returning', returned_hw = next_seq - 1 "
            "WHERE status = 'active' AND prod_date < ?",
            (today,),
        )
    rows = (
        agent.store.conn()
        .execute("SELECT lease_id, returned_hw FROM leases WHERE status = 'returning'")
        .fetchall()
    )
    returned = []
    for row in rows:
        try:
            agent.client().return_lease(row["lease_id"], row["returned_hw"])
        except CentralRefused as exc:
            if exc.code not in ("ERR_LEASE_UNKNOWN", "ERR_LEASE_RETURNED"):
                raise
        with agent.store.write() as w:
            w.execute(
                "UPDATE leases SET status = 'returned' WHERE lease_id = ?", (row["lease_id"],)
            )
        returned.append(row["lease_id"])
    return returned


def maintain(agent: Agent, now: dt.datetime) -> PoolReport:
    """Top up every wanted scope and return stale leases; stop early when central is down."""
    report = PoolReport()
    try:
        for scope in wanted_scopes(agent, now):
            try:
                granted = top_up(agent, scope)
            except CentralRefused as exc:
                report.errors[scope.key] = f"{exc.code}: {exc.message}"
                continue
            if granted:
                report.granted[scope.key] = granted
        report.returned = return_stale_leases(agent, now)
    except CentralUnreachable:
        report.unreachable = True
    except EdgeError as exc:
        report.errors["agent"] = f"{exc.code}: {exc.message}"
    return report
