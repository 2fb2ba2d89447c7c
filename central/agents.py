"""Agents as admins manage them: revoke a stolen or retired line PC, reinstate it, new tokens.

Revoking refuses the agent's calls at once and closes its active leases at the highest
number central has seen from it (reported events or reported high-water marks); the unused
tails become gaps, their numbers verify `unknown`, and events that arrive later for them are
held for review. A reinstated agent can deliver its unsynced events again; those above the
marks still go to review, where a supervisor releases them if the PC was not stolen.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from central import audit
from central import tables as T
from central.auth import hash_secret, new_agent_token
from central.db import Store
from central.errors import ERR_AGENT_UNKNOWN, ERR_INVALID, CentralError, Conflict, NotFound
from central.leases import close_lease

MAX_REASON = 500


def check_reason(reason: str) -> str:
    """Return a cleaned reason, or raise: admin actions must say why."""
    reason = (reason or "").strip()
    if not reason or len(reason) > MAX_REASON or not reason.isprintable():
        raise CentralError(ERR_INVALID, f"give a reason of 1-{MAX_REASON} printable characters")
    return reason


def _agent(conn: Connection, store: Store, agent_id: str) -> Row[Any]:
    row = conn.execute(
        store.lock_row(sa.select(T.agents).where(T.agents.c.id == (agent_id or "")[:64]))
    ).first()
    if row is None:
        raise NotFound(
            ERR_AGENT_UNKNOWN, f"no agent {agent_id!r} (see lineledger-central agent list)"
        )
    return row


def revoke_agent(
    store: Store, agent_id: str, reason: str, actor: str, now: dt.datetime
) -> dict[str, Any]:
    """Refuse an agent's calls from now on and close its leases; return what was closed."""
    reason = check_reason(reason)
    with store.write() as conn:
        agent = _agent(conn, store, agent_id)
        if agent.status == "revoked":
            raise Conflict(
                ERR_INVALID, f"agent {agent.id} was revoked already ({agent.revoked_at})"
            )
        conn.execute(
            T.agents.update()
            .where(T.agents.c.id == agent.id)
            .values(status="revoked", revoked_at=now, revoked_reason=reason, revoked_by=actor)
        )
        leases = conn.execute(
            store.lock_row(
                sa.select(T.leases)
                .where(T.leases.c.agent_id == agent.id, T.leases.c.status == "active")
                .order_by(T.leases.c.id)
            )
        ).all()
        closed = {lease.id: close_lease(conn, lease, "revoked", now) for lease in leases}
        voided = sum(lease.last_seq - closed[lease.id] for lease in leases)
        details = {"leases_closed": closed, "numbers_voided": voided, "line": agent.line}
        audit.record(
            conn, actor, "agent.revoke", f"agent:{agent.id}", now, reason, details, agent.tenant_id
        )
    return {"agent_id": agent.id, "line": agent.line, **details}


def reinstate_agent(store: Store, agent_id: str, reason: str, actor: str, now: dt.datetime) -> None:
    """Let a revoked agent call again; its leases stay closed (it leases anew)."""
    reason = check_reason(reason)
    with store.write() as conn:
        agent = _agent(conn, store, agent_id)
        if agent.status != "revoked":
            raise Conflict(ERR_INVALID, f"agent {agent.id} is not revoked")
        conn.execute(T.agents.update().where(T.agents.c.id == agent.id).values(status="active"))
        audit.record(
            conn, actor, "agent.reinstate", f"agent:{agent.id}", now, reason, {}, agent.tenant_id
        )


def rotate_token(store: Store, agent_id: str, actor: str, now: dt.datetime) -> str:
    """Give an agent a new bearer token; the old one is refused at once. Return the token."""
    token = new_agent_token()
    with store.write() as conn:
        agent = _agent(conn, store, agent_id)
        conn.execute(
            T.agents.update()
            .where(T.agents.c.id == agent.id)
            .values(token_hash=hash_secret(token), token_rotated_at=now)
        )
        audit.record(
            conn, actor, "agent.rotate_token", f"agent:{agent.id}", now, None, {}, agent.tenant_id
        )
    return token
