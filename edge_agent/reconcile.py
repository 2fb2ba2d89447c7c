"""The full reconcile: central and the agent compare every lease's delivered events.

Per lease the agent sends its high-water mark, its counts of delivered events (outbox status
done or quarantined) per type, a bucketed digest of their event ids (see protocol.reconcile)
and a digest of its link records. Central answers per lease; the agent then

- applies the rollback guard (central's marks and lease statuses, see edge_agent.rollback);
- re-sends exactly the events central lacks: in each bucket that differs, the delivered
  events whose ids central did not list go back to `pending` (all of the lease's delivered
  events when central asks to `resend`);
- marks the events of a confirmed lease (counts and digest agree) `confirmed`: only those may
  be pruned, and pruning folds them into a kept per-lease digest so later digests still match.

A lease that is closed here and whose every event is confirmed is settled: it is not reported
again. The whole view is read in one snapshot, and only the events that were in the digest
are confirmed, so events delivered meanwhile wait for the next reconcile.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from edge_agent import rollback
from edge_agent.agent import Agent
from edge_agent.outbox import pruned_digest
from protocol.reconcile import (
    FULL,
    MAX_LEASES,
    LeaseReport,
    ReconcileRequest,
    bucket_of,
    link_digest,
    link_record,
)
from protocol.timefmt import format_ts

log = logging.getLogger("lineledger.edge")
DELIVERED = ("done", "quarantined")
_CHUNK = 500


@dataclass
class LeaseView:
    """What the agent sent about one lease, kept to act on central's verdict."""

    lease_id: str
    high_water: int
    seqs: list[int]  # outbox rows in the digest
    ids_by_bucket: dict[int, dict[str, int]]  # bucket -> {event id: outbox seq}
    report: LeaseReport


@dataclass
class ReconcileReport:
    """What one full reconcile found and did."""

    guard: rollback.GuardReport = field(default_factory=rollback.GuardReport)
    leases: int = 0
    confirmed: int = 0  # leases central confirmed
    confirmed_events: int = 0
    resent: int = 0  # events set back to pending
    extra: int = 0  # event ids central holds that this agent does not
    links_mismatch: list[str] = field(default_factory=list)
    settled: int = 0
    again: bool = False  # central listed only some differing buckets: reconcile again

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON."""
        return {
            "leases": self.leases,
            "confirmed": self.confirmed,
            "confirmed_events": self.confirmed_events,
            "resent": self.resent,
            "extra": self.extra,
            "links_mismatch": self.links_mismatch,
            "settled": self.settled,
            "again": self.again,
            "guard": self.guard.to_dict(),
        }


def _lease_view(conn: sqlite3.Connection, lease: sqlite3.Row) -> LeaseView:
    lease_id = lease["lease_id"]
    counts, digest = pruned_digest(conn, lease_id)
    seqs: list[int] = []
    by_bucket: dict[int, dict[str, int]] = {}
    for row in conn.execute(
        "SELECT o.seq, o.event_id, o.type FROM outbox o JOIN serials s ON s.serial = o.serial "
        "WHERE s.lease_id = ? AND o.status IN ('done', 'quarantined')",
        (lease_id,),
    ):
        digest.add(row["event_id"])
        counts[row["type"]] += 1
        seqs.append(row["seq"])
        by_bucket.setdefault(bucket_of(row["event_id"]), {})[row["event_id"]] = row["seq"]
    links = link_digest(
        link_record(r["serial"], r["job_ticket"], r["token"], r["linked_work_order"])
        for r in conn.execute(
            "SELECT serial, job_ticket, token, linked_work_order FROM serials WHERE lease_id = ? "
            "AND (job_ticket IS NOT NULL OR token IS NOT NULL OR linked_work_order IS NOT NULL)",
            (lease_id,),
        )
    )
    hw = rollback.high_water(lease)
    report = LeaseReport(lease_id, hw, dict(counts), digest, links)
    return LeaseView(lease_id, hw, seqs, by_bucket, report)


def snapshot(agent: Agent) -> list[LeaseView]:
    """Read every unsettled lease's view in one snapshot of the store."""
    with agent.store.read() as conn:
        leases = conn.execute(
            "SELECT * FROM leases WHERE settled_at IS NULL ORDER BY granted_at, lease_id"
        ).fetchall()
        return [_lease_view(conn, lease) for lease in leases]


def _chunks(values: list[Any], size: int) -> Iterable[list[Any]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


def _set_pending(conn: sqlite3.Connection, seqs: list[int]) -> int:
    changed = 0
    for chunk in _chunks(seqs, _CHUNK):
        changed += conn.execute(
            "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = 0, "
            "confirmed_at = NULL, last_code = 'ERR_RESEND', last_message = "
            "'central lacks this event (reconcile): sent again' "
            f"WHERE seq IN ({','.join('?' * len(chunk))}) AND status IN ('done', 'quarantined')",
            chunk,
        ).rowcount
    return changed


def _confirm(conn: sqlite3.Connection, seqs: list[int], stamp: str) -> int:
    changed = 0
    for chunk in _chunks(seqs, _CHUNK):
        changed += conn.execute(
            f"UPDATE outbox SET confirmed_at = ? WHERE seq IN ({','.join('?' * len(chunk))}) "
            "AND status IN ('done', 'quarantined') AND confirmed_at IS NULL",
            [stamp, *chunk],
        ).rowcount
    return changed


def _settle(conn: sqlite3.Connection, lease_id: str, stamp: str) -> bool:
    """Settle a lease closed here whose every event is delivered and confirmed."""
    open_events = conn.execute(
        "SELECT 1 FROM outbox o JOIN serials s ON s.serial = o.serial WHERE s.lease_id = ? "
        "AND (o.confirmed_at IS NULL OR o.status NOT IN ('done', 'quarantined')) LIMIT 1",
        (lease_id,),
    ).fetchone()
    if open_events is not None:
        return False
    return (
        conn.execute(
            "UPDATE leases SET settled_at = ? WHERE lease_id = ? AND status IN "
            "('returned', 'closed') AND settled_at IS NULL",
            (stamp, lease_id),
        ).rowcount
        == 1
    )


def reconcile(agent: Agent, timeout: float | None = None) -> ReconcileReport:
    """Run a full reconcile with central and act on its answer."""
    report = ReconcileReport()
    views = snapshot(agent)
    outbox = rollback.outbox_summary(agent)
    offset = rollback.clock_offset_ms(agent)
    # An empty report still goes out once: central answers with the leases it granted that
    # this agent does not know (a restored copy).
    for chunk in list(_chunks(views, MAX_LEASES)) or [[]]:
        req = ReconcileRequest(
            FULL,
            tuple(v.report for v in chunk),
            outbox=outbox,
            clock_offset_ms=offset,
            agent_version=rollback.agent_version(),
        )
        resp = agent.client().reconcile(req, timeout=timeout)
        sent = {v.lease_id: v.high_water for v in chunk}
        guard = rollback.apply_answer(agent, resp, sent, FULL)
        _merge_guard(report.guard, guard)
        by_id = {v.lease_id: v for v in chunk}
        stamp = format_ts(agent.now())
        with agent.store.write() as conn:
            for verdict in resp.leases:
                view = by_id.get(verdict.lease_id)
                if view is None:
                    continue
                report.leases += 1
                if verdict.links_match is False:
                    report.links_mismatch.append(view.lease_id)
                if verdict.truncated:
                    report.again = True
                if verdict.resend:
                    report.resent += _set_pending(conn, view.seqs)
                    continue
                if verdict.confirmed:
                    report.confirmed += 1
                    report.confirmed_events += _confirm(conn, view.seqs, stamp)
                    report.settled += _settle(conn, view.lease_id, stamp)
                    continue
                for bucket, held in verdict.mismatched.items():
                    mine = view.ids_by_bucket.get(bucket, {})
                    central_ids = set(held)
                    lacking = [seq for eid, seq in mine.items() if eid not in central_ids]
                    report.extra += len(central_ids - set(mine))
                    report.resent += _set_pending(conn, lacking)
            agent.store.set_meta(conn, "last_reconcile", json.dumps(report.to_dict()))
            agent.store.set_meta(conn, "last_reconcile_at", stamp)
    if report.resent or report.guard.rollback:
        log.warning("reconcile: %s", report.to_dict())
    elif report.extra:
        # Central holds events this agent sent but had not yet noted as delivered when it
        # read its view (a push racing the reconcile), or pruned: nothing to do.
        log.info("reconcile: %s", report.to_dict())
    return report


def _merge_guard(into: rollback.GuardReport, more: rollback.GuardReport) -> None:
    into.leases += more.leases
    into.skipped.update(more.skipped)
    into.closed.update(more.closed)
    into.adopted.extend(more.adopted)
    into.unknown.extend(more.unknown)
    into.rollback = into.rollback or more.rollback


def last_reconcile(agent: Agent) -> dict[str, Any] | None:
    """Return the outcome of the last full reconcile, with its time."""
    value = agent.store.get_meta_json("last_reconcile")
    if not isinstance(value, dict):
        return None
    value["at"] = agent.store.get_meta("last_reconcile_at")
    return value
