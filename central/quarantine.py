"""Quarantine, read side: list what central holds for review and show one entry in context.

An entry is `open` until a reviewer releases or confirms it (`central.review`); `show` gives
the entry with the event that was held, the serial's registry row and the serial's other
entries, which is what a reviewer needs to decide.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from central import tables as T
from central.admin import tenant_by_org
from central.errors import ERR_INVALID, ERR_QUARANTINE_UNKNOWN, CentralError, NotFound
from central.timeutil import as_utc
from protocol.errors import ProtocolError
from protocol.serials import parse

OPEN, RESOLVED, ALL = "open", "resolved", "all"
STATUSES = (OPEN, RESOLVED, ALL)
DEFAULT_LIMIT = 50
MAX_LIMIT = 1000


def _ts(moment: dt.datetime | None) -> str | None:
    value = as_utc(moment)
    return value.isoformat() if value is not None else None


def _json(text: str | None) -> Any:
    try:
        return json.loads(text or "{}")
    except ValueError:
        return {"unparsed": text}


def canonical_serial(code: str) -> str:
    """Return a serial as the registry spells it (as typed if it does not parse)."""
    try:
        return parse(code).text
    except ProtocolError:
        return code.strip().upper()[:64]


def entry_dict(row: Row[Any]) -> dict[str, Any]:
    """Return a quarantine row (joined with its tenant's org) as JSON-friendly values."""
    if row.resolved_at is None:
        status = OPEN
    else:
        status = row.resolution_kind or RESOLVED
    return {
        "id": row.id,
        "org": row.org_code,
        "serial": row.serial,
        "reason": row.reason,
        "status": status,
        "holds_serial": bool(row.holds_serial),
        "source": row.source,
        "created_at": _ts(row.created_at),
        "event_id": row.event_id,
        "agent_id": row.agent_id,
        "details": _json(row.details),
        "resolved_at": _ts(row.resolved_at),
        "resolution_kind": row.resolution_kind,
        "resolution": row.resolution,
        "resolved_by": row.resolved_by,
    }


def _select() -> sa.Select[Any]:
    return sa.select(T.quarantine, T.tenants.c.org_code).select_from(
        T.quarantine.outerjoin(T.tenants, T.tenants.c.id == T.quarantine.c.tenant_id)
    )


def list_entries(
    conn: Connection,
    org: str | None = None,
    reason: str | None = None,
    status: str = OPEN,
    serial: str | None = None,
    limit: int = DEFAULT_LIMIT,
    before: int | None = None,
) -> list[dict[str, Any]]:
    """Return quarantine entries, newest first; `before` pages on (entries with smaller ids)."""
    if status not in STATUSES:
        raise CentralError(ERR_INVALID, f"status is one of {', '.join(STATUSES)}")
    if not 1 <= limit <= MAX_LIMIT:
        raise CentralError(ERR_INVALID, f"limit must be 1..{MAX_LIMIT}")
    q = T.quarantine.c
    query = _select().order_by(q.id.desc()).limit(limit)
    if org:
        query = query.where(q.tenant_id == tenant_by_org(conn, org.upper()).id)
    if reason:
        query = query.where(q.reason == reason.strip().upper())
    if status == OPEN:
        query = query.where(q.resolved_at.is_(None))
    elif status == RESOLVED:
        query = query.where(q.resolved_at.is_not(None))
    if serial:
        query = query.where(q.serial == canonical_serial(serial))
    if before is not None:
        query = query.where(q.id < before)
    return [entry_dict(row) for row in conn.execute(query)]


def _event_dict(row: Row[Any]) -> dict[str, Any]:
    return {
        "event_id": row.event_id,
        "type": row.type,
        "serial": row.serial,
        "agent_id": row.agent_id,
        "lease_id": row.lease_id,
        "work_order": row.work_order,
        "occurred_at": _ts(row.occurred_at),
        "received_at": _ts(row.received_at),
        "outcome": row.outcome,
        "code": row.code,
        "clock_flags": row.clock_flags,
        "origin": row.origin,
        "data": _json(row.data),
    }


def _registry_dict(row: Row[Any]) -> dict[str, Any]:
    out = {}
    for column in T.registry.columns:
        value = getattr(row, column.name)
        out[column.name] = _ts(value) if isinstance(value, dt.datetime) else value
    return out


def show_entry(conn: Connection, entry_id: int) -> dict[str, Any]:
    """Return one entry, its held event, its serial's registry row and the serial's entries."""
    q = T.quarantine.c
    row = conn.execute(_select().where(q.id == entry_id)).first()
    if row is None:
        raise NotFound(ERR_QUARANTINE_UNKNOWN, f"no quarantine entry {entry_id}")
    event = None
    if row.event_id:
        found = conn.execute(sa.select(T.events).where(T.events.c.event_id == row.event_id)).first()
        event = _event_dict(found) if found is not None else None
    registry = conn.execute(sa.select(T.registry).where(T.registry.c.serial == row.serial)).first()
    others = conn.execute(
        _select().where(q.serial == row.serial, q.id != row.id).order_by(q.id)
    ).all()
    return {
        "ok": True,
        "entry": entry_dict(row),
        "event": event,
        "registry": _registry_dict(registry) if registry is not None else None,
        "other_entries": [entry_dict(other) for other in others],
    }
