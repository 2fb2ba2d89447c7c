"""Reconcile: compare an agent's account of its leases with the registry's.

The agent reports per lease its high-water mark and, in a full reconcile, counts and a
bucketed digest of the events it delivered (see `protocol.reconcile`). Central records the
marks (they bound what a line PC restored from an older copy could hand out twice), answers
its own mark and status per lease, lists the event ids it holds in the buckets that differ so
the agent re-sends exactly what is missing, and hands back the active leases the agent did not
report (a restored agent lost them). The digest work runs in a read transaction, so a full
reconcile never holds the write lock while it hashes.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from central import tables as T
from central.db import Store
from central.keyring import Keyring
from central.leases import AgentRef, grant_of, high_waters, record_marks
from protocol.reconcile import (
    FULL,
    MAX_IDS,
    Digest,
    HeldLease,
    LeaseReport,
    LeaseVerdict,
    ReconcileRequest,
    ReconcileResponse,
    bucket_of,
    link_digest,
    link_record,
)
from protocol.timefmt import format_ts

MAX_BUCKETS_LISTED = 8  # buckets whose ids one answer lists per lease


def _lease_events(conn: Connection, lease_id: str, agent_id: str) -> list[Row[Any]]:
    return list(
        conn.execute(
            sa.select(T.events.c.event_id, T.events.c.type).where(
                T.events.c.lease_id == lease_id,
                T.events.c.agent_id == agent_id,
                T.events.c.origin == "agent",
            )
        )
    )


def _links(conn: Connection, lease_id: str) -> str:
    reg = T.registry.c
    rows = conn.execute(
        sa.select(reg.serial, reg.job_ticket, reg.token, reg.linked_work_order).where(
            reg.lease_id == lease_id,
            sa.or_(
                reg.job_ticket.is_not(None),
                reg.token.is_not(None),
                reg.linked_work_order.is_not(None),
            ),
        )
    )
    return link_digest(link_record(*row) for row in rows)


def _compare(
    conn: Connection, lease: Row[Any], report: LeaseReport, agent_id: str, budget: list[int]
) -> dict[str, Any]:
    """Return the comparison fields of a verdict for one fully reported lease."""
    rows = _lease_events(conn, lease.id, agent_id)
    counts = Counter(r.type for r in rows)
    ours = Digest().add_all(r.event_id for r in rows)
    theirs = report.buckets or Digest()
    differing = theirs.differing(ours)
    mismatched: dict[int, tuple[str, ...]] = {}
    if differing:
        by_bucket: dict[int, list[str]] = {b: [] for b in differing}
        for r in rows:
            bucket = bucket_of(r.event_id)
            if bucket in by_bucket:
                by_bucket[bucket].append(r.event_id)
        for bucket in differing[:MAX_BUCKETS_LISTED]:
            ids = sorted(by_bucket[bucket])
            if len(ids) > budget[0]:
                break
            budget[0] -= len(ids)
            mismatched[bucket] = tuple(ids)
    reported = {k: v for k, v in (report.counts or {}).items() if v}
    return {
        "counts_match": reported == dict(counts),
        "buckets_match": not differing,
        "links_match": None if report.links is None else report.links == _links(conn, lease.id),
        "mismatched": mismatched,
        "truncated": len(mismatched) < len(differing),
        "counts": dict(counts),
    }


def reconcile(
    store: Store, keyring: Keyring, agent: AgentRef, req: ReconcileRequest, now: dt.datetime
) -> ReconcileResponse:
    """Record an agent's marks and answer how its account compares with the registry."""
    marks = {r.lease_id: r.high_water for r in req.leases}
    with store.write() as conn:
        record_marks(conn, agent.id, marks, now)
    reported = {r.lease_id: r for r in req.leases}
    budget = [MAX_IDS]
    verdicts: list[LeaseVerdict] = []
    lease_updates: list[dict[str, Any]] = []
    with store.read() as conn:
        rows = conn.execute(
            sa.select(T.leases).where(
                T.leases.c.agent_id == agent.id,
                sa.or_(T.leases.c.status == "active", T.leases.c.id.in_(sorted(reported))),
            )
        ).all()
        by_id = {row.id: row for row in rows}
        central_marks = high_waters(conn, rows)
        for report in req.leases:
            lease = by_id.get(report.lease_id)
            if lease is None:
                verdicts.append(LeaseVerdict(report.lease_id, "unknown", 0))
                continue
            mark = max(0, central_marks[lease.id])
            fields: dict[str, Any] = {}
            full = req.mode == FULL and report.buckets is not None and report.counts is not None
            if full:
                fields = _compare(conn, lease, report, agent.id, budget)
                lease_updates.append(
                    {
                        "b_id": lease.id,
                        "b_counts": json.dumps(dict(report.counts or {}), sort_keys=True),
                        "b_ok": fields["counts_match"] and fields["buckets_match"],
                        "b_links": fields["links_match"],
                        "b_resend": lease.resend_requested_at,
                    }
                )
            verdicts.append(
                LeaseVerdict(
                    lease_id=lease.id,
                    status=lease.status,
                    central_high_water=mark,
                    counts_match=fields.get("counts_match"),
                    buckets_match=fields.get("buckets_match"),
                    links_match=fields.get("links_match"),
                    mismatched=fields.get("mismatched", {}),
                    truncated=bool(fields.get("truncated")),
                    resend=full and lease.resend_requested_at is not None,
                )
            )
        unreported = tuple(
            HeldLease(grant_of(row, keyring), max(0, central_marks[row.id]))
            for row in rows
            if row.status == "active" and row.id not in reported
        )
    with store.write() as conn:
        for update in lease_updates:
            conn.execute(
                T.leases.update()
                .where(T.leases.c.id == update["b_id"])
                .values(
                    reconciled_at=now,
                    reported_counts=update["b_counts"],
                    digest_ok=update["b_ok"],
                    links_ok=update["b_links"],
                )
            )
            if update["b_resend"] is not None:  # asked once; a later request sets it again
                conn.execute(
                    T.leases.update()
                    .where(
                        T.leases.c.id == update["b_id"],
                        T.leases.c.resend_requested_at == update["b_resend"],
                    )
                    .values(resend_requested_at=None)
                )
        report_body = {
            "mode": req.mode,
            "at": format_ts(now),
            "outbox": dict(req.outbox or {}),
            "clock_offset_ms": req.clock_offset_ms,
            "agent_version": req.agent_version,
            "leases": len(req.leases),
        }
        values: dict[str, Any] = {"last_report": json.dumps(report_body, sort_keys=True)}
        if req.clock_offset_ms is not None:
            values["clock_offset_ms"] = req.clock_offset_ms
        if req.agent_version:
            values["agent_version"] = req.agent_version
        if req.mode == FULL:
            values["last_reconcile_at"] = now
        conn.execute(T.agents.update().where(T.agents.c.id == agent.id).values(**values))
    return ReconcileResponse(format_ts(now), tuple(verdicts), unreported)
