"""Work orders after they are added: a supervisor raises a quantity, changes overage or
tolerance, or reassigns the line; every change is recorded with its before and after."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import sqlalchemy as sa

from central import audit
from central import tables as T
from central.admin import tenant_by_org
from central.db import Store
from central.errors import ERR_INVALID, ERR_WORK_ORDER_UNKNOWN, CentralError, NotFound
from central.leases import allowed_serials


def manual_fields(text: str | None) -> set[str]:
    """Return the fields a supervisor changed by hand on an ERP work order (JSON list)."""
    try:
        found = json.loads(text or "[]")
    except ValueError:
        return set()
    return {f for f in found if isinstance(f, str)} if isinstance(found, list) else set()


def update_work_order(
    store: Store,
    org: str,
    number: str,
    actor: str,
    now: dt.datetime,
    reason: str | None = None,
    quantity: int | None = None,
    overage_pct: float | None = None,
    tolerance_pct: float | None = None,
) -> dict[str, Any]:
    """Change a work order's quantity, overage or tolerance; return before and after."""
    changes: dict[str, Any] = {}
    if quantity is not None:
        if not 1 <= quantity <= 10_000_000:
            raise CentralError(ERR_INVALID, "quantity must be 1..10,000,000")
        changes["quantity"] = quantity
    for name, value in (("overage_pct", overage_pct), ("tolerance_pct", tolerance_pct)):
        if value is not None:
            if not 0 <= value <= 100:
                raise CentralError(ERR_INVALID, "percentages must be 0..100")
            changes[name] = value
    if not changes:
        raise CentralError(ERR_INVALID, "say what to change (--quantity, --overage, --tolerance)")
    with store.write() as conn:
        tenant = tenant_by_org(conn, org)
        wo = T.work_orders.c
        row = conn.execute(
            store.lock_row(
                sa.select(T.work_orders).where(wo.tenant_id == tenant.id, wo.number == number)
            )
        ).first()
        if row is None:
            raise NotFound(ERR_WORK_ORDER_UNKNOWN, f"{org} has no work order {number!r}")
        before = {k: getattr(row, k) for k in changes}
        extra: dict[str, Any] = {}
        if row.source == "erp":  # the ERP sync keeps these from now on, and says so
            extra["manual_fields"] = json.dumps(
                sorted(manual_fields(row.manual_fields) | set(changes))
            )
        conn.execute(
            T.work_orders.update().where(wo.id == row.id).values(**changes, **extra, updated_at=now)
        )
        after = {**{k: getattr(row, k) for k in ("quantity", "overage_pct")}, **changes}
        result = {
            "work_order": number,
            "before": before,
            "after": changes,
            "allowed": allowed_serials(after["quantity"], after["overage_pct"]),
        }
        audit.record(
            conn,
            actor,
            "work_order.update",
            f"work_order:{org}/{number}",
            now,
            reason,
            result,
            tenant.id,
        )
    return result
