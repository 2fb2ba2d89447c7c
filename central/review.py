"""Quarantine review: a supervisor releases a held serial or confirms it is not to be trusted.

A decision covers the serial, not one entry: every open entry of the serial in its tenant is
resolved with who, when and why, in one transaction with its effect and its audit row.

- **release**: the hold ends and the serial's held events are applied in the order they
  happened, with the checks that held them waived (a closed lease's mark, a clock out of
  tolerance, the hold itself). An event that still cannot apply is marked `superseded`. For
  a number whose facts were lost (ERR_FACTS_LOST: used per the agent's high-water mark, no
  event ever arrived) central records the `issued` fact itself, so the serial verifies.
- **confirm**: the serial is retired for good (verify answers `voided`); later events of it
  are kept for review and change nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from central import audit
from central import tables as T
from central.agents import check_reason
from central.db import Store
from central.errors import (
    ERR_FACTS_LOST,
    ERR_QUARANTINE_RESOLVED,
    ERR_QUARANTINE_UNKNOWN,
    Conflict,
    NotFound,
)
from central.ingest import Replay, replay_events
from central.keyring import Keyring
from central.leases import AgentRef, find_lease, raise_mark
from central.timeutil import as_utc, new_id
from protocol import lifecycle as L
from protocol.errors import ProtocolError
from protocol.events import ACCEPTED, Event
from protocol.serials import parse
from protocol.timefmt import format_ts

RELEASED = "released"
CONFIRMED = "confirmed"


@dataclass
class Decision:
    """What a review decision did."""

    serial: str
    kind: str
    entries: list[int] = field(default_factory=list)
    applied: int = 0
    superseded: int = 0
    state: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the decision as JSON."""
        return {
            "ok": True,
            "serial": self.serial,
            "decision": self.kind,
            "entries": self.entries,
            "events_applied": self.applied,
            "events_superseded": self.superseded,
            "state": self.state,
        }


def _open_entries(conn: Connection, store: Store, entry_id: int) -> tuple[Row[Any], list[Row[Any]]]:
    q = T.quarantine.c
    entry = conn.execute(store.lock_row(sa.select(T.quarantine).where(q.id == entry_id))).first()
    if entry is None:
        raise NotFound(ERR_QUARANTINE_UNKNOWN, f"no quarantine entry {entry_id}")
    if entry.resolved_at is not None:
        raise Conflict(
            ERR_QUARANTINE_RESOLVED,
            f"entry {entry_id} was {entry.resolution_kind or 'resolved'} at "
            f"{format_ts(as_utc(entry.resolved_at))} by {entry.resolved_by or 'someone'}",  # type: ignore[arg-type]
        )
    tenant = q.tenant_id.is_(None) if entry.tenant_id is None else q.tenant_id == entry.tenant_id
    rows = conn.execute(
        store.lock_row(
            sa.select(T.quarantine)
            .where(q.serial == entry.serial, q.resolved_at.is_(None), tenant)
            .order_by(q.id)
        )
    ).all()
    return entry, rows


def _resolve(
    conn: Connection, rows: list[Row[Any]], kind: str, reason: str, actor: str, now: dt.datetime
) -> None:
    conn.execute(
        T.quarantine.update()
        .where(T.quarantine.c.id.in_([r.id for r in rows]))
        .values(resolved_at=now, resolution=reason[:200], resolution_kind=kind, resolved_by=actor)
    )


def _agent_ref(conn: Connection, agent_id: str) -> AgentRef:
    row = conn.execute(
        sa.select(T.agents, T.tenants.c.org_code, T.tenants.c.timezone)
        .join(T.tenants, T.tenants.c.id == T.agents.c.tenant_id)
        .where(T.agents.c.id == agent_id)
    ).one()
    return AgentRef(row.id, row.tenant_id, row.org_code, row.line, row.timezone)


def _held_events(conn: Connection, rows: list[Row[Any]]) -> list[Row[Any]]:
    ids = [r.event_id for r in rows if r.event_id]
    if not ids:
        return []
    # In the order they were delivered, an `issued` first: an agent whose clock was off
    # stamped them with times that cannot be trusted to order them.
    e = T.events.c
    return list(
        conn.execute(
            sa.select(T.events)
            .where(e.event_id.in_(ids), e.outcome == "quarantined")
            .order_by(sa.case((e.type == L.ISSUED, 0), else_=1), e.received_at, e.event_id)
        )
    )


def _as_event(row: Row[Any]) -> Event:
    return Event(
        event_id=row.event_id,
        type=row.type,
        serial=row.serial,
        occurred_at=format_ts(as_utc(row.occurred_at)),  # type: ignore[arg-type]
        lease_id=row.lease_id,
        work_order=row.work_order,
        data=json.loads(row.data or "{}"),
    )


def release(
    store: Store,
    keyring: Keyring,
    entry_id: int,
    reason: str,
    actor: str,
    now: dt.datetime,
    tolerance: dt.timedelta = dt.timedelta(minutes=5),
) -> Decision:
    """Release a held serial: end the hold and apply its held events."""
    reason = check_reason(reason)
    with store.write() as conn:
        entry, rows = _open_entries(conn, store, entry_id)
        decision = Decision(entry.serial, RELEASED, [r.id for r in rows])
        _resolve(conn, rows, RELEASED, reason, actor, now)
        replays = [
            Replay(_agent_ref(conn, row.agent_id), _as_event(row))
            for row in _held_events(conn, rows)
        ]
        if any(r.reason == ERR_FACTS_LOST for r in rows):
            made = _lost_issue(conn, entry.serial, actor, now)
            if made is not None:
                replays.insert(0, made)
        results = replay_events(conn, keyring, replays, now, tolerance)
        decision.applied = sum(1 for r in results if r.status == ACCEPTED)
        decision.superseded = len(results) - decision.applied
        decision.state = conn.execute(
            sa.select(T.registry.c.state).where(T.registry.c.serial == entry.serial)
        ).scalar()
        audit.record(
            conn,
            actor,
            "quarantine.release",
            f"serial:{entry.serial}",
            now,
            reason,
            decision.to_dict(),
            entry.tenant_id,
        )
    return decision


def _lost_issue(conn: Connection, serial_text: str, actor: str, now: dt.datetime) -> Replay | None:
    """Return central's own `issued` fact for a used number whose facts never arrived."""
    try:
        serial = parse(serial_text)
    except ProtocolError:
        return None
    lease = find_lease(conn, serial.scope.key, serial.seq)
    if lease is None:
        return None
    exists = conn.execute(
        sa.select(T.registry.c.serial).where(T.registry.c.serial == serial.text)
    ).first()
    if exists is not None:
        return None
    event = Event(
        event_id=new_id(now),
        type=L.ISSUED,
        serial=serial.text,
        occurred_at=format_ts(now),
        lease_id=lease.id,
        data={"source": "review", "reviewer": actor[:128]},
    )
    return Replay(_agent_ref(conn, lease.agent_id), event, stored=False)


def confirm(store: Store, entry_id: int, reason: str, actor: str, now: dt.datetime) -> Decision:
    """Confirm a serial is not to be trusted: retire it (verify says `voided`) for good."""
    reason = check_reason(reason)
    with store.write() as conn:
        entry, rows = _open_entries(conn, store, entry_id)
        decision = Decision(entry.serial, CONFIRMED, [r.id for r in rows])
        _resolve(conn, rows, CONFIRMED, reason, actor, now)
        decision.state = _retire(conn, entry, reason, actor, now)
        audit.record(
            conn,
            actor,
            "quarantine.confirm",
            f"serial:{entry.serial}",
            now,
            reason,
            decision.to_dict(),
            entry.tenant_id,
        )
    return decision


def _retire(
    conn: Connection, entry: Row[Any], reason: str, actor: str, now: dt.datetime
) -> str | None:
    """Put the serial in the registry as `retired`, recording central's fact of it."""
    try:
        serial = parse(entry.serial)
    except ProtocolError:
        return None  # not a serial at all: nothing to retire
    lease = find_lease(conn, serial.scope.key, serial.seq)
    if lease is None or lease.tenant_id != entry.tenant_id:
        return None  # never ours: verify answers unknown anyway
    event_id = new_id(now)
    conn.execute(
        T.events.insert().values(
            event_id=event_id,
            tenant_id=lease.tenant_id,
            agent_id=lease.agent_id,
            type=L.RETIRED,
            serial=serial.text,
            lease_id=lease.id,
            occurred_at=now,
            received_at=now,
            data=json.dumps({"reason": reason, "reviewer": actor}, sort_keys=True),
            outcome=ACCEPTED,
            origin="central",
        )
    )
    reg = T.registry.c
    done = conn.execute(
        T.registry.update()
        .where(reg.serial == serial.text)
        .values(state=L.RETIRED, last_event_id=event_id, updated_at=now)
    )
    if done.rowcount == 0:
        conn.execute(
            T.registry.insert().values(
                serial=serial.text,
                tenant_id=lease.tenant_id,
                scope_key=serial.scope.key,
                seq=serial.seq,
                lease_id=lease.id,
                agent_id=lease.agent_id,
                state=L.RETIRED,
                issued_at=now,
                updated_at=now,
                last_event_id=event_id,
            )
        )
    if lease.status != "active" and serial.seq > (lease.high_water or 0):
        raise_mark(conn, lease.id, serial.seq)  # the number is accounted for, not a gap
    return L.RETIRED
