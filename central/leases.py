"""Leases: blocks of one scope's numbers granted to one agent, never overlapping, never reused.

A number is handed out at most once, ever: the per-scope counter only moves forward, in one
`UPDATE ... RETURNING` statement, and the lease table refuses overlapping ranges by itself
(an exclusion constraint on PostgreSQL, a trigger on SQLite) even if this code had a bug.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from central import tables as T
from central.admin import active_key_version
from central.config import CentralConfig
from central.db import Store
from central.errors import (
    ERR_INVALID,
    ERR_KEY_UNAVAILABLE,
    ERR_LEASE_RETURNED,
    ERR_LEASE_UNKNOWN,
    ERR_SCOPE_CATEGORY,
    ERR_SCOPE_DATE,
    ERR_SCOPE_EXHAUSTED,
    ERR_SCOPE_FOREIGN,
    ERR_SCOPE_TYPE,
    CentralError,
    Conflict,
    NotFound,
    Unavailable,
)
from central.keyring import Keyring
from central.timeutil import as_utc, new_id, zone
from protocol.messages import LeaseGrant, LeaseRequest, LeaseResponse
from protocol.serials import MAX_SEQ, Scope
from protocol.timefmt import format_ts


@dataclass(frozen=True)
class AgentRef:
    """The authenticated agent a request comes from."""

    id: str
    tenant_id: int
    org: str
    line: str
    timezone: str


def lease_expiry(prod_date: dt.date, timezone: str, grace_days: int) -> dt.datetime:
    """Return when a lease of a production date expires: local midnight after the grace days."""
    local_end = dt.datetime.combine(
        prod_date + dt.timedelta(days=1 + grace_days), dt.time(0), tzinfo=zone(timezone)
    )
    return local_end.astimezone(dt.UTC)


def _grant_of(row: Row[Any], keyring: Keyring) -> LeaseGrant:
    return LeaseGrant(
        lease_id=row.id,
        scope=Scope.from_key(row.scope_key),
        first=row.first_seq,
        last=row.last_seq,
        key=keyring.lease_key(row.key_version, row.id),
        key_version=row.key_version,
        expires_at=format_ts(as_utc(row.expires_at)),  # type: ignore[arg-type]
    )


def _check_scope(
    conn: Connection, agent: AgentRef, req: LeaseRequest, config: CentralConfig, now: dt.datetime
) -> None:
    scope = req.scope
    if scope.org != agent.org:
        raise CentralError(ERR_SCOPE_FOREIGN, f"this agent leases for {agent.org} only", 403)
    known_type = conn.execute(
        sa.select(T.production_types.c.code).where(T.production_types.c.code == scope.ptype)
    ).first()
    if known_type is None:
        raise CentralError(ERR_SCOPE_TYPE, f"no production type {scope.ptype}")
    category = conn.execute(
        sa.select(T.products.c.id)
        .where(T.products.c.tenant_id == agent.tenant_id, T.products.c.category == scope.category)
        .limit(1)
    ).first()
    if category is None:
        raise CentralError(
            ERR_SCOPE_CATEGORY, f"{agent.org} has no product of category {scope.category}"
        )
    today = now.astimezone(zone(agent.timezone)).date()
    earliest = today - dt.timedelta(days=config.lease_days_behind)
    latest = today + dt.timedelta(days=config.lease_days_ahead)
    if not earliest <= scope.prod_date <= latest:
        raise CentralError(
            ERR_SCOPE_DATE,
            f"leases are granted for production dates {earliest:%Y%m%d}..{latest:%Y%m%d} "
            f"(plant time {agent.timezone}); check the line PC's clock",
        )


def grant_lease(
    store: Store,
    keyring: Keyring,
    config: CentralConfig,
    agent: AgentRef,
    req: LeaseRequest,
    now: dt.datetime,
) -> LeaseResponse:
    """Grant up to `req.size` fresh numbers of a scope; a repeated request gets the same lease."""
    counters = T.scope_counters
    with store.write() as conn:
        # One agent's lease requests run one at a time: the CLI and the service of a line may
        # repeat the same request id at the same moment (READ COMMITTED would let both grant).
        conn.execute(store.lock_row(sa.select(T.agents.c.id).where(T.agents.c.id == agent.id)))
        earlier = conn.execute(
            sa.select(T.leases).where(
                T.leases.c.agent_id == agent.id, T.leases.c.request_id == req.request_id
            )
        ).first()
        if earlier is not None:
            return LeaseResponse(req.request_id, req.size, (_grant_of(earlier, keyring),))
        _check_scope(conn, agent, req, config, now)
        version = active_key_version(conn)
        if version is None:
            raise Unavailable(ERR_KEY_UNAVAILABLE, "no master key yet: run lineledger-central init")
        keyring.master(version)  # fail before consuming numbers if the key is missing
        size = min(req.size, config.lease_max_size)
        conn.execute(
            store.insert(counters)
            .values(
                scope_key=req.scope.key,
                tenant_id=agent.tenant_id,
                next_seq=1,
                last_grant_first=0,
                updated_at=now,
            )
            .on_conflict_do_nothing()
        )
        # SET expressions read the row as it was, so last_grant_first gets the old next_seq.
        moved = conn.execute(
            counters.update()
            .where(counters.c.scope_key == req.scope.key)
            .values(
                last_grant_first=counters.c.next_seq,
                next_seq=sa.case(
                    (counters.c.next_seq + size > MAX_SEQ + 1, MAX_SEQ + 1),
                    else_=counters.c.next_seq + size,
                ),
                updated_at=now,
            )
            .returning(counters.c.last_grant_first, counters.c.next_seq)
        ).one()
        first, last = moved.last_grant_first, moved.next_seq - 1
        if last < first:
            raise Conflict(
                ERR_SCOPE_EXHAUSTED,
                f"all {MAX_SEQ} numbers of {req.scope.key} are granted; no more serials of "
                "this category can be made on this date",
            )
        lease_id = new_id(now)
        conn.execute(
            T.leases.insert().values(
                id=lease_id,
                tenant_id=agent.tenant_id,
                agent_id=agent.id,
                request_id=req.request_id,
                scope_key=req.scope.key,
                first_seq=first,
                last_seq=last,
                key_version=version,
                granted_at=now,
                expires_at=lease_expiry(
                    req.scope.prod_date, agent.timezone, config.lease_grace_days
                ),
                status="active",
            )
        )
        row = conn.execute(sa.select(T.leases).where(T.leases.c.id == lease_id)).one()
    return LeaseResponse(req.request_id, req.size, (_grant_of(row, keyring),))


def return_lease(
    store: Store, agent: AgentRef, lease_id: str, high_water: int, now: dt.datetime
) -> dict[str, Any]:
    """Close a lease at its high-water mark; the unused tail becomes a recorded gap."""
    with store.write() as conn:
        lease = conn.execute(
            store.lock_row(sa.select(T.leases).where(T.leases.c.id == lease_id))
        ).first()
        if lease is None or lease.agent_id != agent.id:
            raise NotFound(ERR_LEASE_UNKNOWN, f"this agent holds no lease {lease_id}")
        if not lease.first_seq - 1 <= high_water <= lease.last_seq:
            raise CentralError(
                ERR_INVALID,
                f"high_water must be {lease.first_seq - 1}..{lease.last_seq} for this lease",
            )
        if lease.status == "returned":
            if lease.high_water != high_water:
                raise Conflict(
                    ERR_LEASE_RETURNED,
                    f"lease was returned at {lease.high_water} already",
                )
            return _return_body(lease.id, high_water, lease.last_seq)
        reg = T.registry.c
        used = conn.execute(  # (scope_key, seq) is indexed; lease_id is not
            sa.select(sa.func.max(reg.seq)).where(
                reg.scope_key == lease.scope_key, reg.seq.between(lease.first_seq, lease.last_seq)
            )
        ).scalar()
        if used is not None and used > high_water:
            raise Conflict(
                ERR_LEASE_RETURNED,
                f"serial number {used} of this lease was reported; high_water cannot be lower",
            )
        conn.execute(
            T.leases.update()
            .where(T.leases.c.id == lease.id)
            .values(status="returned", high_water=high_water, returned_at=now)
        )
        if high_water < lease.last_seq:
            conn.execute(
                T.gaps.insert().values(
                    tenant_id=lease.tenant_id,
                    scope_key=lease.scope_key,
                    first_seq=max(high_water + 1, lease.first_seq),
                    last_seq=lease.last_seq,
                    reason="returned",
                    lease_id=lease.id,
                    recorded_at=now,
                )
            )
    return _return_body(lease_id, high_water, lease.last_seq)


def _return_body(lease_id: str, high_water: int, last: int) -> dict[str, Any]:
    return {
        "ok": True,
        "lease_id": lease_id,
        "high_water": high_water,
        "voided": max(0, last - high_water),
    }


def find_lease(conn: Connection, scope_key: str, seq: int) -> Row[Any] | None:
    """Return the lease that holds number `seq` of a scope, if any was ever granted."""
    return conn.execute(
        sa.select(T.leases)
        .where(
            T.leases.c.scope_key == scope_key,
            T.leases.c.first_seq <= seq,
            T.leases.c.last_seq >= seq,
        )
        .limit(1)
    ).first()
