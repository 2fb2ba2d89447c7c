"""Lease and agent checks: the agents' accounts against the registry's, per tenant.

Lease accounting (a lease's last full reconcile against central's events and links),
expired leases still open, used numbers whose facts never came, and agents gone silent with
unsynced work. Read-only: see `central.jobs.checker` for what is done about each finding.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from central import tables as T
from central.errors import (
    ERR_AGENT_SILENT,
    ERR_FACTS_LOST,
    ERR_LEASE_ACCOUNTING,
    ERR_LEASE_EXPIRED,
    ERR_LINK_MISMATCH,
)
from central.jobs.expiry import expired_leases
from central.jobs.findings import (
    AGENT_SILENT,
    CLOSE,
    EXPIRED_TAIL,
    FACTS_LOST,
    LEASE_ACCOUNTING,
    MISSING_TENANT_LINK,
    NOTE,
    QUARANTINE,
    REPORT,
    RESEND,
    Finding,
    TenantRef,
    Thresholds,
    chunks,
    iso,
)
from central.keyring import Keyring
from central.timeutil import as_utc
from protocol.errors import ProtocolError
from protocol.serials import Scope, parse, render

_CHUNK = 500


def _counts_at_reconcile(conn: Connection, tenant: TenantRef) -> dict[str, dict[str, int]]:
    """Return, per lease, central's events of the lease's agent received up to its reconcile."""
    e, lease = T.events.c, T.leases.c
    rows = conn.execute(
        sa.select(e.lease_id, e.type, sa.func.count())
        .select_from(
            T.events.join(T.leases, sa.and_(lease.id == e.lease_id, lease.agent_id == e.agent_id))
        )
        .where(
            lease.tenant_id == tenant.id,
            lease.reconciled_at.is_not(None),
            e.origin == "agent",
            e.received_at <= lease.reconciled_at,
        )
        .group_by(e.lease_id, e.type)
    )
    out: dict[str, dict[str, int]] = {}
    for lease_id, etype, n in rows:
        out.setdefault(lease_id, {})[etype] = int(n)
    return out


def _reported(text: str | None) -> dict[str, int]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {str(k): int(v) for k, v in value.items() if isinstance(v, int) and v}


def lease_accounts(conn: Connection, tenant: TenantRef) -> list[Finding]:
    """Find leases whose agent's last full reconcile disagrees with central's events or links.

    Central's side is what it held when the agent reconciled: the events of the lease from
    that agent received up to `reconciled_at`. Where the agent counted more of a type,
    central lacks events: the agent is asked to re-send the whole lease (`resend`). Where
    central holds events the agent did not count (a line PC restored from an older copy of
    its database), nothing can or need be done: central has the facts, the rollback guard
    keeps the numbers safe and the agent raises its own alert, so it is noted. Ids that
    differ with equal counts also leave central holding ids the agent lacks (the reconcile
    itself already has the agent re-send the others): noted. A links digest that differs
    while central holds exactly the agent's events is reported: one of the two records is
    wrong, and no re-send can change either.
    """
    lease = T.leases.c
    rows = conn.execute(
        sa.select(T.leases)
        .where(lease.tenant_id == tenant.id, lease.reconciled_at.is_not(None))
        .order_by(lease.id)
    ).all()
    central_counts = _counts_at_reconcile(conn, tenant)
    findings = []
    for row in rows:
        ours = central_counts.get(row.id, {})
        theirs = _reported(row.reported_counts)
        types = sorted(set(ours) | set(theirs))
        ahead = {
            t: [ours.get(t, 0), theirs.get(t, 0)]
            for t in types
            if ours.get(t, 0) > theirs.get(t, 0)
        }
        behind = {
            t: [ours.get(t, 0), theirs.get(t, 0)]
            for t in types
            if ours.get(t, 0) < theirs.get(t, 0)
        }
        ids_differ = row.digest_ok is False
        base = {
            "reconciled_at": iso(row.reconciled_at),
            "resend_requested_at": iso(row.resend_requested_at),
        }
        if behind or ahead or ids_differ:
            parts = []
            if behind:
                parts.append("the agent delivered events central does not hold")
            if ahead:
                parts.append(
                    "central holds events the agent did not count (restored from an older copy?)"
                )
            if ids_differ and not (ahead or behind):
                parts.append("the same counts but different event ids")
            findings.append(
                Finding(
                    LEASE_ACCOUNTING,
                    RESEND if behind else NOTE,
                    ERR_LEASE_ACCOUNTING,
                    "; ".join(parts),
                    lease_id=row.id,
                    agent_id=row.agent_id,
                    details={
                        **base,
                        "digest_ok": row.digest_ok,
                        "central": ours,
                        "reported": theirs,
                        "central_ahead": ahead,
                        "central_behind": behind,
                    },
                )
            )
        if row.links_ok is False:
            if behind:
                action, why = RESEND, "; the events central lacks may carry them"
            elif ahead or ids_differ:
                action, why = NOTE, "; the agent lacks events central holds"
            else:
                action, why = REPORT, " although central holds exactly the agent's events"
            findings.append(
                Finding(
                    MISSING_TENANT_LINK,
                    action,
                    ERR_LINK_MISMATCH,
                    "the agent's link records of the lease differ from the registry's" + why,
                    lease_id=row.id,
                    agent_id=row.agent_id,
                    details=base,
                )
            )
    return findings


def expired_tails(conn: Connection, tenant: TenantRef, now: dt.datetime) -> list[Finding]:
    """Find active leases past their expiry: the lease-expiry job has not closed them yet."""
    return [
        Finding(
            EXPIRED_TAIL,
            CLOSE,
            ERR_LEASE_EXPIRED,
            "the lease expired but is still open; its unused tail becomes a gap",
            lease_id=row.id,
            agent_id=row.agent_id,
            details={"expires_at": iso(row.expires_at), "scope": row.scope_key},
        )
        for row in expired_leases(conn, now, tenant.id)
    ]


def _missing_facts(
    conn: Connection, keyring: Keyring, lease: Row[Any], upto: int
) -> list[tuple[int, str]]:
    """Return (number, serial) of the numbers first..upto of a lease that have no fact at all."""
    if upto < lease.first_seq:
        return []
    r = T.registry.c
    present = set(
        conn.execute(
            sa.select(r.seq).where(
                r.scope_key == lease.scope_key, r.seq >= lease.first_seq, r.seq <= upto
            )
        ).scalars()
    )
    if len(present) == upto - lease.first_seq + 1:
        return []
    scope = Scope.from_key(lease.scope_key)
    key = keyring.lease_key(lease.key_version, lease.id)
    missing = {
        render(scope, seq, key): seq
        for seq in range(lease.first_seq, upto + 1)
        if seq not in present
    }
    seen: set[str] = set()
    for chunk in chunks(sorted(missing)):
        seen.update(
            conn.execute(
                sa.select(T.events.c.serial).where(T.events.c.serial.in_(chunk)).distinct()
            ).scalars()
        )
    return sorted((seq, serial) for serial, seq in missing.items() if serial not in seen)


def facts_lost(
    conn: Connection,
    keyring: Keyring,
    tenant: TenantRef,
    thresholds: Thresholds,
    now: dt.datetime,
) -> list[Finding]:
    """Find numbers the agent used (per its high-water mark) whose facts will not come.

    A number up to the mark with no event at all is lost once the grace has passed since the
    mark was reported (or the lease closed) and either the lease is closed or the agent has
    reconciled in full after reporting the mark, so its outbox held nothing more of it.
    """
    lease, agent, r = T.leases.c, T.agents.c, T.registry.c
    used_to = sa.case((lease.status == "active", lease.reported_hw), else_=lease.high_water)
    rows = conn.execute(
        sa.select(T.leases, agent.last_reconcile_at)
        .join(T.agents, agent.id == lease.agent_id)
        .where(lease.tenant_id == tenant.id, used_to >= lease.first_seq)
        .order_by(lease.id)
    ).all()
    # Most leases have a fact of every used number: count them all at once, look closer at
    # the others only.
    registered: dict[str, int] = dict(
        conn.execute(
            sa.select(lease.id, sa.func.count())
            .select_from(T.leases.join(T.registry, r.lease_id == lease.id))
            .where(lease.tenant_id == tenant.id, r.seq >= lease.first_seq, r.seq <= used_to)
            .group_by(lease.id)
        ).all()
    )
    findings = []
    for row in rows:
        moments = [as_utc(m) for m in (row.reported_at, row.closed_at) if m is not None]
        if not moments:
            continue
        evidence = max(m for m in moments if m is not None)
        if now - evidence < thresholds.facts_grace:
            continue
        if row.status == "active":
            reconciled = as_utc(row.last_reconcile_at)
            if reconciled is None or reconciled <= as_utc(row.reported_at):  # type: ignore[operator]
                continue
            upto = row.reported_hw
        else:
            upto = row.high_water
        if registered.get(row.id, 0) >= upto - row.first_seq + 1:
            continue
        for seq, serial in _missing_facts(conn, keyring, row, upto):
            findings.append(
                Finding(
                    FACTS_LOST,
                    QUARANTINE,
                    ERR_FACTS_LOST,
                    f"number {seq} was used (the agent's mark is {upto}) but no event of it "
                    "ever arrived",
                    serial=serial,
                    lease_id=row.id,
                    agent_id=row.agent_id,
                    hold=True,
                    evidence_at=evidence,
                    details={"seq": seq, "mark": upto, "lease_status": row.status},
                )
            )
    return findings


def _outbox_pending(text: str | None) -> float:
    try:
        report = json.loads(text or "{}")
    except ValueError:
        return 0
    outbox = report.get("outbox") if isinstance(report, dict) else None
    pending = outbox.get("pending") if isinstance(outbox, dict) else None
    return pending if isinstance(pending, (int, float)) and not isinstance(pending, bool) else 0


def _highest_fact(conn: Connection, lease_id: str) -> int:
    """Return the highest number of a lease central holds any event of (0: none)."""
    r, e = T.registry.c, T.events.c
    top = conn.execute(sa.select(sa.func.max(r.seq)).where(r.lease_id == lease_id)).scalar() or 0
    for serial in conn.execute(
        sa.select(e.serial).where(e.lease_id == lease_id, e.outcome == "quarantined").distinct()
    ).scalars():
        try:
            top = max(top, parse(serial).seq)
        except ProtocolError:
            continue
    return int(top)


def silent_agents(
    conn: Connection, tenant: TenantRef, thresholds: Thresholds, now: dt.datetime
) -> list[Finding]:
    """Find active agents with unsynced work that have not called for `agent_silent_hours`.

    Unsynced work is what the agent last reported as pending in its outbox, or numbers its
    reported high-water marks say it used beyond the highest number central has a fact of.
    """
    agent, lease = T.agents.c, T.leases.c
    findings = []
    for row in conn.execute(
        sa.select(T.agents)
        .where(agent.tenant_id == tenant.id, agent.status == "active")
        .order_by(agent.id)
    ):
        contacts = [
            as_utc(m) for m in (row.last_seen_at, row.last_reconcile_at, row.enrolled_at) if m
        ]
        last = max(m for m in contacts if m is not None)
        if now - last < thresholds.agent_silent:
            continue
        pending = _outbox_pending(row.last_report)
        unsynced = {}
        for lrow in conn.execute(
            sa.select(lease.id, lease.reported_hw).where(
                lease.agent_id == row.id, lease.reported_hw.is_not(None)
            )
        ):
            top = _highest_fact(conn, lrow.id)
            if lrow.reported_hw > top:
                unsynced[lrow.id] = {"reported_hw": lrow.reported_hw, "highest_fact": top}
        if not pending and not unsynced:
            continue
        findings.append(
            Finding(
                AGENT_SILENT,
                REPORT,
                ERR_AGENT_SILENT,
                f"line {row.line} has not called since {last:%Y-%m-%d %H:%M} UTC with unsynced "
                "work: check the line PC and its network",
                agent_id=row.id,
                details={
                    "line": row.line,
                    "last_contact": last.isoformat(),
                    "outbox_pending": pending,
                    "unsynced_leases": unsynced,
                },
            )
        )
    return findings
