"""The generation history (issue #9, the reference's `serial_generation_history`).

Every generation run and every configuration or work-order change writes one row here, in
the caller's transaction, beside its audit record: the history is what a supervisor reads on
a work order, the audit log is what an auditor reads across the registry.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy.engine import Connection

from central import tables as T

ACTIONS = (
    "serial_generation",
    "sscc_generation",
    "config_update",
    "work_order_create",
    "work_order_update",
    "work_order_close",
    "erp_sync",
)
STATUSES = ("started", "completed", "failed", "cancelled")


def record(
    conn: Connection,
    *,
    tenant_id: int,
    action: str,
    status: str,
    actor: str,
    now: dt.datetime,
    work_order_id: int | None = None,
    requested: int | None = None,
    generated: int | None = None,
    details: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
    execution_ms: int | None = None,
    task_id: str | None = None,
) -> None:
    """Write one history row inside the caller's transaction."""
    if action not in ACTIONS:
        raise ValueError(f"unknown history action {action!r}")
    if status not in STATUSES:
        raise ValueError(f"unknown history status {status!r}")
    conn.execute(
        T.generation_history.insert().values(
            tenant_id=tenant_id,
            work_order_id=work_order_id,
            action=action,
            status=status,
            requested_quantity=requested,
            generated_quantity=generated,
            details=json.dumps(details or {}, sort_keys=True, default=str),
            error_details=None if error is None else json.dumps(error, default=str),
            execution_ms=execution_ms,
            task_id=task_id,
            actor=actor[:128],
            created_at=now,
        )
    )
