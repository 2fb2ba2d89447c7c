"""Lease expiry: active leases past their expiry are closed, their unused tails made gaps.

Each lease closes in a transaction of its own at the highest number central knows was used
(`central.leases.close_lease`): reported events or the agent's reported high-water mark. The
agent's row is locked first, as ingest locks it, so an event batch of that agent is either
counted in the mark or judged against the closed lease, never lost between the two.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from central import tables as T
from central.db import Store
from central.leases import close_lease

EXPIRED = "expired"


@dataclass(frozen=True)
class ClosedTail:
    """One lease the expiry closed: where its used range ends and how many numbers it voided."""

    lease_id: str
    tenant_id: int
    agent_id: str
    scope_key: str
    mark: int
    voided: int


def expired_leases(
    conn: Connection, now: dt.datetime, tenant_id: int | None = None
) -> list[Row[Any]]:
    """Return the active leases whose expiry has passed, oldest first."""
    lease = T.leases.c
    query = (
        sa.select(T.leases)
        .where(lease.status == "active", lease.expires_at <= now)
        .order_by(lease.expires_at, lease.id)
    )
    if tenant_id is not None:
        query = query.where(lease.tenant_id == tenant_id)
    return list(conn.execute(query))


def expire_lease(store: Store, lease_id: str, now: dt.datetime) -> ClosedTail | None:
    """Close one expired lease; None if it is no longer active and expired (someone was first)."""
    lease = T.leases.c
    with store.write() as conn:
        agent_id = conn.execute(sa.select(lease.agent_id).where(lease.id == lease_id)).scalar()
        if agent_id is None:
            return None
        conn.execute(store.lock_row(sa.select(T.agents.c.id).where(T.agents.c.id == agent_id)))
        row = conn.execute(
            store.lock_row(
                sa.select(T.leases).where(
                    lease.id == lease_id, lease.status == "active", lease.expires_at <= now
                )
            )
        ).first()
        if row is None:
            return None
        mark = close_lease(conn, row, EXPIRED, now)
    return ClosedTail(
        row.id, row.tenant_id, row.agent_id, row.scope_key, mark, max(0, row.last_seq - mark)
    )


def expire_leases(
    store: Store,
    now: dt.datetime,
    tenant_id: int | None = None,
    between: Callable[[], None] | None = None,
) -> list[ClosedTail]:
    """Close every expired active lease; `between` runs before each (it may raise to stop)."""
    with store.read() as conn:
        ids = [row.id for row in expired_leases(conn, now, tenant_id)]
    closed = []
    for lease_id in ids:
        if between is not None:
            between()
        tail = expire_lease(store, lease_id, now)
        if tail is not None:
            closed.append(tail)
    return closed


def counts(closed: list[ClosedTail]) -> dict[str, int]:
    """Return the counts of an expiry run."""
    return {
        "leases_expired": len(closed),
        "numbers_voided": sum(t.voided for t in closed),
        "agents": len({t.agent_id for t in closed}),
    }
