"""The audit record: who changed what, when and why, one row per admin action.

Every change an admin, supervisor or job makes to the registry outside the edge protocol
(revoking an agent, releasing a quarantined serial, recalling a work order, ...) writes a row
in the same transaction as the change itself, so the record and the change cannot part.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
from typing import Any

from sqlalchemy.engine import Connection

from central import tables as T


def cli_actor() -> str:
    """Return the actor of a CLI command: the operating-system user running it."""
    try:
        return f"cli:{getpass.getuser()}"[:128]
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "cli:unknown"


def record(
    conn: Connection,
    actor: str,
    action: str,
    target: str,
    now: dt.datetime,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
    tenant_id: int | None = None,
) -> None:
    """Write one audit row inside the caller's transaction."""
    conn.execute(
        T.audit_log.insert().values(
            at=now,
            actor=actor[:128],
            tenant_id=tenant_id,
            action=action[:64],
            target=target[:200],
            reason=None if reason is None else reason[:500],
            details=json.dumps(details or {}, sort_keys=True, default=str),
        )
    )
