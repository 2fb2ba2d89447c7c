"""Alerts: what the operator and the supervisor must see, kept in the agent's store.

An alert is open until its condition goes away by itself (the clock is set right, central
accepts the agent again) or a supervisor clears it with a reason. Raising an alert that is
open already (same kind and subject) updates its message and details instead of adding a
second one, so a condition seen at every contact is one alert.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from edge_agent.errors import ERR_ALERT_UNKNOWN, EdgeError

# Kinds, and the words the operator page uses for them.
CLOCK_SKEW = "clock_skew"
CLOCK_OVERRIDE = "clock_override"
AGENT_REVOKED = "agent_revoked"
TOKEN_REJECTED = "token_rejected"
ROLLBACK = "rollback"
LEASE_CLOSED = "lease_closed"
LEASE_UNKNOWN = "lease_unknown"
KINDS = {
    CLOCK_SKEW: "Clock",
    CLOCK_OVERRIDE: "Clock override",
    AGENT_REVOKED: "Revoked",
    TOKEN_REJECTED: "Token",
    ROLLBACK: "Restored from an older copy",
    LEASE_CLOSED: "Lease closed by central",
    LEASE_UNKNOWN: "Lease unknown to central",
}
ROLLBACK_MESSAGE = (
    "restored from an older copy: this line PC's database is older than what central knows "
    "it used; the numbers central saw were skipped. Find out how the PC was restored (backup, "
    "VM snapshot) before clearing this alert"
)


def raise_alert(
    conn: sqlite3.Connection,
    kind: str,
    message: str,
    stamp: str,
    details: dict[str, Any] | None = None,
    subject: str = "",
) -> int:
    """Open an alert, or refresh the open one of the same kind and subject; return its id."""
    body = json.dumps(details or {}, sort_keys=True)
    row = conn.execute(
        "SELECT id FROM alerts WHERE kind = ? AND subject = ? AND cleared_at IS NULL",
        (kind, subject),
    ).fetchone()
    if row is not None:
        conn.execute(
            "UPDATE alerts SET message = ?, details = ? WHERE id = ?", (message, body, row["id"])
        )
        return int(row["id"])
    cur = conn.execute(
        "INSERT INTO alerts(kind, subject, message, details, raised_at) VALUES (?, ?, ?, ?, ?)",
        (kind, subject, message, body, stamp),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


def clear_kind(
    conn: sqlite3.Connection, kind: str, reason: str, stamp: str, subject: str | None = None
) -> int:
    """Clear the open alerts of a kind (and subject) whose condition went away."""
    query = "UPDATE alerts SET cleared_at = ?, cleared_reason = ? WHERE kind = ? AND "
    params: list[Any] = [stamp, reason, kind]
    if subject is not None:
        query += "subject = ? AND "
        params.append(subject)
    return conn.execute(query + "cleared_at IS NULL", params).rowcount


def clear_alert(conn: sqlite3.Connection, alert_id: int, reason: str, stamp: str) -> None:
    """Clear one open alert by id (a supervisor's decision), or raise ERR_ALERT_UNKNOWN."""
    cur = conn.execute(
        "UPDATE alerts SET cleared_at = ?, cleared_reason = ? WHERE id = ? AND cleared_at IS NULL",
        (stamp, reason, alert_id),
    )
    if cur.rowcount != 1:
        raise EdgeError(ERR_ALERT_UNKNOWN, f"no open alert {alert_id}; list them with `alerts`")


def _row(r: sqlite3.Row) -> dict[str, Any]:
    try:
        details = json.loads(r["details"] or "{}")
    except ValueError:
        details = {}
    return {
        "id": r["id"],
        "kind": r["kind"],
        "title": KINDS.get(r["kind"], r["kind"]),
        "subject": r["subject"] or None,
        "message": r["message"],
        "details": details,
        "raised_at": r["raised_at"],
        "cleared_at": r["cleared_at"],
        "cleared_reason": r["cleared_reason"],
    }


def list_alerts(conn: sqlite3.Connection, everything: bool = False, limit: int = 200) -> list[Any]:
    """Return open alerts (or all of them), newest first."""
    where = "" if everything else "WHERE cleared_at IS NULL "
    rows = conn.execute(f"SELECT * FROM alerts {where}ORDER BY id DESC LIMIT ?", (limit,))
    return [_row(r) for r in rows]


def open_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Return the number of open alerts per kind."""
    rows = conn.execute(
        "SELECT kind, COUNT(*) AS n FROM alerts WHERE cleared_at IS NULL GROUP BY kind"
    )
    return {r["kind"]: r["n"] for r in rows}
