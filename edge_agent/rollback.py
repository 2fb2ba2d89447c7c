"""The rollback guard: never hand out a number central knows was used.

A line PC restored from an older copy of its database (a backup, a VM snapshot) believes
numbers are free that it used after the copy was made. So the agent reports its high-water
marks to central often (a "marks" reconcile), and every answer says, per lease, the highest
number central knows was used. Where that is at or above the agent's next number, the agent
skips past it (the skipped numbers become a local gap, reason `rollback`) and raises the alert
"restored from an older copy". Leases central closed are closed here too, leases central
does not know are closed with an alert, and leases central granted that the agent does not
know (its copy is older than the grant) are adopted above central's mark.

The window a rollback can lose is what was used but not yet reported when the copy was made:
with the defaults (a report after 50 serials or 5 seconds, whichever comes first, and at the
end of every `issue` command) at most 50 serials of a lease, or 5 seconds of issuing, while
central is reachable.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import time
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from edge_agent import alerts, outbox
from edge_agent.agent import Agent
from edge_agent.client import CentralClient
from protocol.reconcile import (
    MARKS,
    HeldLease,
    LeaseReport,
    LeaseVerdict,
    ReconcileRequest,
    ReconcileResponse,
)
from protocol.timefmt import format_ts

log = logging.getLogger("lineledger.edge")
CLOSED_BY_CENTRAL = ("returned", "expired", "revoked")
OPEN_HERE = ("active", "returning")


@functools.cache
def agent_version() -> str:
    """Return this agent's version, as reconcile requests carry it (read once a process)."""
    try:
        return metadata.version("lineledger")[:32]
    except metadata.PackageNotFoundError:
        return "unknown"


def high_water(row: sqlite3.Row) -> int:
    """Return the highest number the agent used of a lease (first - 1: none)."""
    if row["status"] != "active" and row["returned_hw"] is not None:
        return int(row["returned_hw"])
    return max(int(row["first_seq"]) - 1, int(row["next_seq"]) - 1)


def outbox_summary(agent: Agent) -> dict[str, float]:
    """Return the outbox figures a reconcile request carries."""
    counts = outbox.waiting(agent)
    out: dict[str, float] = {"pending": counts["pending"], "dead": counts["dead"]}
    age = outbox.oldest_pending_age(agent, time.time())
    if age is not None:
        out["oldest_pending_age_s"] = round(age, 3)
    return out


def clock_offset_ms(agent: Agent) -> int | None:
    """Return the clock offset in milliseconds, as reconcile requests carry it."""
    offset = agent.clock.offset()
    return None if offset is None else int(round(offset * 1000))


@dataclass
class GuardReport:
    """What one exchange with central changed here."""

    leases: int = 0
    skipped: dict[str, list[int]] = field(default_factory=dict)  # lease -> [first, last]
    closed: dict[str, str] = field(default_factory=dict)  # lease -> central's status
    adopted: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    rollback: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON."""
        return {
            "leases": self.leases,
            "skipped": self.skipped,
            "closed": self.closed,
            "adopted": self.adopted,
            "unknown": self.unknown,
            "rollback": self.rollback,
        }


def _rollback_alert(conn: sqlite3.Connection, subject: str, stamp: str, details: Any) -> None:
    scope = details.get("scope", "") if isinstance(details, dict) else ""
    skipped = details.get("skipped") if isinstance(details, dict) else None
    if skipped:
        what = f"{scope}: numbers {skipped[0]}-{skipped[1]} central knows were used are skipped"
    elif isinstance(details, dict) and "adopted_from" in details:
        what = (
            f"{scope}: central granted this PC a lease it had forgotten; it issues from "
            f"number {details['adopted_from']} on"
        )
    else:
        what = scope
    message = f"{alerts.ROLLBACK_MESSAGE} ({what})" if what else alerts.ROLLBACK_MESSAGE
    alerts.raise_alert(conn, alerts.ROLLBACK, message, stamp, details, subject=subject)


def _apply_verdict(
    conn: sqlite3.Connection,
    verdict: LeaseVerdict,
    sent: dict[str, int],
    stamp: str,
    report: GuardReport,
) -> None:
    lease = conn.execute("SELECT * FROM leases WHERE lease_id = ?", (verdict.lease_id,)).fetchone()
    if lease is None:
        return
    report.leases += 1
    lease_id, last = lease["lease_id"], lease["last_seq"]
    central = min(verdict.central_high_water, last)
    if lease["status"] in OPEN_HERE and central >= lease["next_seq"]:
        first_skipped = lease["next_seq"]
        conn.execute(
            "UPDATE leases SET next_seq = ?, returned_hw = CASE WHEN returned_hw IS NULL THEN "
            "NULL ELSE MAX(returned_hw, ?) END WHERE lease_id = ? AND next_seq <= ?",
            (central + 1, central, lease_id, central),
        )
        conn.execute(
            "INSERT INTO gaps(lease_id, scope_key, first_seq, last_seq, reason, recorded_at) "
            "VALUES (?, ?, ?, ?, 'rollback', ?)",
            (lease_id, lease["scope_key"], first_skipped, central, stamp),
        )
        report.skipped[lease_id] = [first_skipped, central]
        report.rollback = True
        details = {
            "lease_id": lease_id,
            "scope": lease["scope_key"],
            "skipped": [first_skipped, central],
            "central_high_water": verdict.central_high_water,
        }
        _rollback_alert(conn, lease_id, stamp, details)
        log.warning("rollback guard: skipped %s %d..%d", lease["scope_key"], first_skipped, central)
    mine = sent.get(lease_id)
    conn.execute(
        "UPDATE leases SET central_status = ?, reported_hw = MAX(COALESCE(reported_hw, 0), ?), "
        "reported_at = ? WHERE lease_id = ?",
        (verdict.status, mine if mine is not None else 0, stamp, lease_id),
    )
    if verdict.status == "unknown" and lease["status"] not in OPEN_HERE:
        # Nothing central could ever confirm: stop reporting it (its alert was raised).
        conn.execute(
            "UPDATE leases SET settled_at = COALESCE(settled_at, ?) WHERE lease_id = ?",
            (stamp, lease_id),
        )
    if lease["status"] not in OPEN_HERE:
        return
    used = max(lease["first_seq"] - 1, lease["next_seq"] - 1, central)
    if verdict.status in CLOSED_BY_CENTRAL:
        local = "returned" if verdict.status == "returned" else "closed"
        conn.execute(
            "UPDATE leases SET status = ?, returned_hw = COALESCE(returned_hw, ?) "
            "WHERE lease_id = ?",
            (local, used, lease_id),
        )
        report.closed[lease_id] = verdict.status
        if used > verdict.central_high_water and verdict.status != "returned":
            alerts.raise_alert(
                conn,
                alerts.LEASE_CLOSED,
                f"central closed lease {lease_id} ({verdict.status}) at number "
                f"{verdict.central_high_water}, but this line used numbers up to {used}: "
                "central holds their events for review",
                stamp,
                {"lease_id": lease_id, "status": verdict.status, "used": used},
                subject=lease_id,
            )
    elif verdict.status == "unknown":
        conn.execute(
            "UPDATE leases SET status = 'closed', returned_hw = COALESCE(returned_hw, ?) "
            "WHERE lease_id = ?",
            (used, lease_id),
        )
        report.unknown.append(lease_id)
        alerts.raise_alert(
            conn,
            alerts.LEASE_UNKNOWN,
            f"central does not know lease {lease_id} ({lease['scope_key']}) of this agent; it "
            "is closed here. Was this PC's database copied from another line, or central's "
            "restored from a backup?",
            stamp,
            {"lease_id": lease_id, "scope": lease["scope_key"]},
            subject=lease_id,
        )


def _adopt(conn: sqlite3.Connection, held: HeldLease, stamp: str, report: GuardReport) -> None:
    grant = held.grant
    known = conn.execute("SELECT 1 FROM leases WHERE lease_id = ?", (grant.lease_id,)).fetchone()
    if known is not None:
        return  # reported in another chunk, or stored meanwhile
    pending = conn.execute(
        "SELECT 1 FROM lease_requests WHERE scope_key = ?", (grant.scope.key,)
    ).fetchone()
    central = min(max(held.central_high_water, grant.first - 1), grant.last)
    conn.execute(
        "INSERT INTO leases(lease_id, scope_key, prod_date, first_seq, last_seq, next_seq, "
        "key_hex, key_version, expires_at, granted_at, status, central_status, reported_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'active', 'active', ?)",
        (
            grant.lease_id,
            grant.scope.key,
            grant.scope.prod_date.isoformat(),
            grant.first,
            grant.last,
            central + 1,
            grant.key.hex(),
            grant.key_version,
            grant.expires_at,
            stamp,
            stamp,
        ),
    )
    report.adopted.append(grant.lease_id)
    if central >= grant.first:
        conn.execute(
            "INSERT INTO gaps(lease_id, scope_key, first_seq, last_seq, reason, recorded_at) "
            "VALUES (?, ?, ?, ?, 'rollback', ?)",
            (grant.lease_id, grant.scope.key, grant.first, central, stamp),
        )
    if central >= grant.first or pending is None:
        # A lease whose grant answer was lost (a request is still pending) is no rollback
        # sign as long as none of its numbers was used.
        report.rollback = True
        details = {
            "lease_id": grant.lease_id,
            "scope": grant.scope.key,
            "adopted_from": central + 1,
            "central_high_water": held.central_high_water,
        }
        _rollback_alert(conn, grant.lease_id, stamp, details)
        log.warning("rollback guard: adopted lease %s above %d", grant.lease_id, central)


def apply_answer(
    agent: Agent, resp: ReconcileResponse, sent: dict[str, int], mode: str
) -> GuardReport:
    """Apply central's marks and lease statuses in one transaction."""
    report = GuardReport()
    stamp = format_ts(agent.now())
    with agent.store.write() as conn:
        for verdict in resp.leases:
            _apply_verdict(conn, verdict, sent, stamp, report)
        for held in resp.unreported:
            _adopt(conn, held, stamp, report)
        agent.store.set_meta(conn, f"{mode}_exchange_at", stamp)
    return report


def marks_request(agent: Agent) -> tuple[ReconcileRequest, dict[str, int]]:
    """Return a marks reconcile of the leases in use, and the marks it carries."""
    rows = (
        agent.store.conn()
        .execute(
            "SELECT lease_id, first_seq, next_seq, returned_hw, status FROM leases "
            "WHERE status IN ('active', 'returning') ORDER BY lease_id"
        )
        .fetchall()
    )
    sent = {r["lease_id"]: high_water(r) for r in rows}
    req = ReconcileRequest(
        MARKS,
        tuple(LeaseReport(lease_id, hw) for lease_id, hw in sent.items()),
        outbox=outbox_summary(agent),
        clock_offset_ms=clock_offset_ms(agent),
        agent_version=agent_version(),
    )
    return req, sent


def exchange_marks(
    agent: Agent, timeout: float | None = None, client: CentralClient | None = None
) -> GuardReport:
    """Report the high-water marks to central and apply its answer (the rollback guard)."""
    req, sent = marks_request(agent)
    resp = (client or agent.client()).reconcile(req, timeout=timeout)
    return apply_answer(agent, resp, sent, MARKS)


def answer_is_routine(agent: Agent, resp: ReconcileResponse) -> bool:
    """Tell whether a marks answer asks nothing of this agent but to note the acknowledgment.

    That is: every lease is active here and at central, central knows of no number at or
    above the next one this agent will use, and central lists no lease the agent forgot.
    Numbers only grow while serials are issued, so the answer stays routine once it is.
    """
    if resp.unreported:
        return False
    conn = agent.store.conn()
    for verdict in resp.leases:
        row = conn.execute(
            "SELECT status, next_seq, last_seq FROM leases WHERE lease_id = ?", (verdict.lease_id,)
        ).fetchone()
        if row is None or row["status"] != "active" or verdict.status != "active":
            return False
        if min(verdict.central_high_water, row["last_seq"]) >= row["next_seq"]:
            return False
    return True


def ack_statements(sent: dict[str, int], stamp: str) -> list[tuple[str, tuple[Any, ...]]]:
    """Return the writes that note central acknowledged the marks it was sent."""
    out: list[tuple[str, tuple[Any, ...]]] = [
        (
            "UPDATE leases SET central_status = 'active', reported_hw = MAX(COALESCE("
            "reported_hw, 0), ?), reported_at = ? WHERE lease_id = ?",
            (mark, stamp, lease_id),
        )
        for lease_id, mark in sorted(sent.items())
    ]
    out.append(
        (
            "INSERT INTO meta(key, value) VALUES ('marks_exchange_at', ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (stamp,),
        )
    )
    return out


def unreported_marks(agent: Agent) -> bool:
    """Tell whether a lease in use has numbers central has not acknowledged."""
    row = (
        agent.store.conn()
        .execute(
            "SELECT 1 FROM leases WHERE status = 'active' "
            "AND next_seq - 1 > COALESCE(reported_hw, first_seq - 1) LIMIT 1"
        )
        .fetchone()
    )
    return row is not None


def rollback_gaps(agent: Agent) -> list[dict[str, Any]]:
    """Return the local gaps the rollback guard recorded, newest first."""
    rows = agent.store.conn().execute(
        "SELECT lease_id, scope_key, first_seq, last_seq, reason, recorded_at FROM gaps "
        "WHERE reason = 'rollback' ORDER BY id DESC LIMIT 100"
    )
    return [dict(r) for r in rows]
