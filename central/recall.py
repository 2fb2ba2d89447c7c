"""Recalls: a serial, or every serial of a work order, is recalled and verifies `recalled`.

A recall puts each serial in use (issued, printed, linked, packed, shipped) in the registry
state `recalled` and records central's own `recalled` fact of it, in one transaction with an
audit row saying who recalled what, when and why. A recalled work order keeps its mark
(`work_orders.recalled_at`, `recall_reason`): ingest asks `recalled_work_orders` for the
orders of the serials it is about to register, so serials of it that arrive later are
recalled as they arrive, and the lines stop getting the order in their config.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from central import audit
from central import tables as T
from central.admin import tenant_by_org
from central.agents import check_reason
from central.db import Store
from central.errors import (
    ERR_INVALID,
    ERR_SERIAL_UNKNOWN,
    ERR_WORK_ORDER_UNKNOWN,
    CentralError,
    Conflict,
    NotFound,
)
from central.timeutil import as_utc, new_id
from protocol import lifecycle as L
from protocol.errors import ERR_ILLEGAL_TRANSITION, ProtocolError
from protocol.serials import parse

RECALLABLE = (L.ISSUED, L.PRINTED, L.LINKED, L.PACKED, L.SHIPPED)
_CHUNK = 500


def recalled_work_orders(conn: Connection, tenant_id: int, numbers: Iterable[str]) -> set[str]:
    """Return which of a tenant's work orders (by number) are recalled."""
    wanted = sorted({n for n in numbers if n})
    wo = T.work_orders.c
    found: set[str] = set()
    for i in range(0, len(wanted), _CHUNK):
        found.update(
            conn.execute(
                sa.select(wo.number).where(
                    wo.tenant_id == tenant_id,
                    wo.number.in_(wanted[i : i + _CHUNK]),
                    wo.recalled_at.is_not(None),
                )
            ).scalars()
        )
    return found


def is_recalled_work_order(conn: Connection, tenant_id: int, number: str | None) -> bool:
    """Tell whether a tenant's work order is recalled (serials of it arrive recalled)."""
    return bool(number) and bool(recalled_work_orders(conn, tenant_id, [number or ""]))


def _recall_rows(
    conn: Connection, rows: list[Any], reason: str, actor: str, now: dt.datetime
) -> None:
    """Put registry rows in `recalled`, recording central's `recalled` fact of each."""
    facts = []
    updates = []
    for row in rows:
        event_id = new_id(now)
        facts.append(
            {
                "event_id": event_id,
                "tenant_id": row.tenant_id,
                "agent_id": row.agent_id,
                "type": L.RECALLED,
                "serial": row.serial,
                "lease_id": row.lease_id,
                "work_order": row.work_order,
                "occurred_at": now,
                "received_at": now,
                "data": json.dumps(
                    {"reason": reason, "by": actor, "previous_state": row.state}, sort_keys=True
                ),
                "outcome": "accepted",
                "origin": "central",
            }
        )
        updates.append({"b_serial": row.serial, "b_event": event_id})
    if not facts:
        return
    conn.execute(T.events.insert(), facts)
    conn.execute(
        T.registry.update()
        .where(T.registry.c.serial == sa.bindparam("b_serial"))
        .values(state=L.RECALLED, last_event_id=sa.bindparam("b_event"), updated_at=now),
        sorted(updates, key=lambda u: u["b_serial"]),  # the lock order ingest uses
    )


def recall_serial(
    store: Store,
    code: str,
    reason: str,
    actor: str,
    now: dt.datetime,
    org: str | None = None,
) -> dict[str, Any]:
    """Recall one registered serial; verify answers `recalled` from now on."""
    reason = check_reason(reason)
    try:
        serial = parse(code)
    except ProtocolError as exc:
        raise CentralError(exc.code, exc.message) from None
    if org and org.upper() != serial.scope.org:
        raise CentralError(ERR_INVALID, f"serial {serial.text} belongs to {serial.scope.org}")
    with store.write() as conn:
        row = conn.execute(
            store.lock_row(sa.select(T.registry).where(T.registry.c.serial == serial.text))
        ).first()
        if row is None:
            raise NotFound(
                ERR_SERIAL_UNKNOWN,
                f"{serial.text} is not in the registry (yet); recall its work order so it "
                "arrives recalled, or try again once the line has synced",
            )
        result = {
            "ok": True,
            "serial": row.serial,
            "org": serial.scope.org,
            "work_order": row.work_order,
            "previous_state": row.state,
            "recalled": 0,
        }
        if row.state == L.RECALLED:
            return {**result, "already_recalled": True}
        if row.state not in RECALLABLE:
            raise Conflict(
                ERR_ILLEGAL_TRANSITION,
                f"{row.serial} is {row.state}: it is on no product in use, so there is nothing "
                "to recall",
            )
        _recall_rows(conn, [row], reason, actor, now)
        audit.record(
            conn,
            actor,
            "recall.serial",
            f"serial:{row.serial}",
            now,
            reason,
            {"previous_state": row.state, "work_order": row.work_order},
            row.tenant_id,
        )
    return {**result, "recalled": 1}


def recall_work_order(
    store: Store, org: str, number: str, reason: str, actor: str, now: dt.datetime
) -> dict[str, Any]:
    """Recall a work order: its serials in use now and every serial of it that arrives later.

    The serials of a work order are those issued for it and those linked to it.
    """
    reason = check_reason(reason)
    with store.write() as conn:
        tenant = tenant_by_org(conn, org.upper())
        wo = T.work_orders.c
        order = conn.execute(
            store.lock_row(
                sa.select(T.work_orders).where(wo.tenant_id == tenant.id, wo.number == number)
            )
        ).first()
        if order is None:
            raise NotFound(
                ERR_WORK_ORDER_UNKNOWN, f"{tenant.org_code} has no work order {number!r}"
            )
        already = order.recalled_at is not None
        if not already:
            conn.execute(
                T.work_orders.update()
                .where(wo.id == order.id)
                .values(recalled_at=now, recall_reason=reason, updated_at=now)
            )
        reg = T.registry.c
        rows = conn.execute(
            store.lock_row(
                sa.select(T.registry)
                .where(
                    reg.tenant_id == tenant.id,
                    sa.or_(reg.work_order == number, reg.linked_work_order == number),
                    reg.state.in_(RECALLABLE),
                )
                .order_by(reg.serial)
            )
        ).all()
        _recall_rows(conn, list(rows), reason, actor, now)
        result = {
            "ok": True,
            "org": tenant.org_code,
            "work_order": number,
            "recalled": len(rows),
            "recalled_at": (as_utc(order.recalled_at) or now).isoformat(),
            "already_recalled": already,
        }
        if not already or rows:
            audit.record(
                conn,
                actor,
                "recall.work_order",
                f"work_order:{tenant.org_code}/{number}",
                now,
                reason,
                {"serials_recalled": len(rows), "already_recalled": already},
                tenant.id,
            )
    return result
