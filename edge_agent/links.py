"""Job tickets, tokens and links: the agent's half of the reference's dual link.

A job ticket reserves serials ahead of its pieces (`pregenerate`); each physical piece is a
token that takes the ticket's next unspawned serial when it appears (`spawn`); `link` ties
one serial to a work order, a job ticket or a token. The agent keeps each serial's link
targets in its `serials` table (what central's registry must agree with), and every change
is recorded as a `linked` event in the same transaction. Context rules per production type
come from `protocol.lifecycle.check_link_context`; a mismatch writes nothing.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edge_agent.agent import Agent
from edge_agent.errors import (
    ERR_CONTEXT_MISMATCH,
    ERR_JOB_TICKET_UNKNOWN,
    ERR_LINK_TARGET,
    ERR_NOT_OURS,
    ERR_SPAWN_SHORT,
    ERR_TOKEN_LINKED,
    EdgeError,
)
from edge_agent.issuing import Issued, Issuer
from protocol.errors import ProtocolError
from protocol.events import Event
from protocol.lifecycle import LINKED, check_link_context, next_state
from protocol.serials import Scope
from protocol.timefmt import format_ts

TARGETS = ("work_order", "job_ticket", "token")
MAX_TARGET = 64
MAX_TOKENS = 1000  # tokens in one spawn
_TARGET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/#+-]*")
_NAMES = {"work_order": "work order", "job_ticket": "job ticket", "token": "token"}


def check_target(kind: str, value: object) -> str:
    """Return a cleaned link target (job ticket, token, work order), or raise ERR_LINK_TARGET."""
    name = _NAMES.get(kind, kind)
    text = value.strip() if isinstance(value, str) else ""
    if not text or len(text) > MAX_TARGET or not _TARGET.fullmatch(text):
        raise EdgeError(
            ERR_LINK_TARGET,
            f"a {name} is 1-{MAX_TARGET} characters: letters, digits and . _ : / # + - "
            "(starting with a letter or digit)",
        )
    return text


def _context(ptype: str, data: Mapping[str, object]) -> None:
    try:
        check_link_context(ptype, data)
    except ProtocolError as exc:
        raise EdgeError(exc.code, exc.message) from None


def _linked_event(agent: Agent, conn: sqlite3.Connection, serial: str, data: dict[str, str]) -> str:
    stamp = format_ts(agent.now())
    event = Event(agent.new_event_id(), LINKED, serial, stamp, data=data)
    conn.execute(
        "INSERT INTO outbox(event_id, serial, type, body, created_at, status) "
        "VALUES (?, ?, ?, ?, ?, 'pending')",
        (event.event_id, serial, LINKED, event.to_json(), stamp),
    )
    return event.event_id


def pregenerate(
    agent: Agent,
    issuer: Issuer,
    work_order: str,
    job_ticket: str,
    count: int,
    printer_url: str | None = None,
) -> list[Issued]:
    """Issue `count` serials reserved for a job ticket, in one transaction."""
    ticket = check_target("job_ticket", job_ticket)
    wo = agent.work_order(work_order)
    _context(wo.ptype, {"job_ticket": ticket})

    def same_work_order(conn: sqlite3.Connection) -> None:
        row = conn.execute(
            "SELECT work_order FROM serials WHERE job_ticket = ? LIMIT 1", (ticket,)
        ).fetchone()
        if row is not None and row["work_order"] != wo.number:
            raise EdgeError(
                ERR_CONTEXT_MISMATCH,
                f"job ticket {ticket} belongs to work order {row['work_order']}, not {wo.number}",
            )

    return issuer.issue_many(
        wo.number, count, printer_url=printer_url, job_ticket=ticket, before=same_work_order
    )


@dataclass(frozen=True)
class Spawned:
    """The serial a token got (`new`: now; otherwise in an earlier spawn)."""

    token: str
    serial: str
    job_ticket: str
    new: bool
    event_id: str | None
    print_job: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON line the CLI prints."""
        out: dict[str, Any] = {
            "token": self.token,
            "serial": self.serial,
            "job_ticket": self.job_ticket,
            "new": self.new,
        }
        if self.event_id is not None:
            out["event_id"] = self.event_id
        if self.print_job is not None:
            out["print_job"] = self.print_job
        return out


def clean_tokens(tokens: Sequence[object]) -> list[str]:
    """Return the tokens of a spawn, checked, each once, in the order given."""
    if not tokens:
        raise EdgeError(ERR_LINK_TARGET, "name at least one token")
    if len(tokens) > MAX_TOKENS:
        raise EdgeError(ERR_LINK_TARGET, f"at most {MAX_TOKENS} tokens in one spawn")
    return list(dict.fromkeys(check_target("token", t) for t in tokens))


def spawn(
    agent: Agent, job_ticket: object, tokens: Sequence[object], printer_url: str | None = None
) -> list[Spawned]:
    """Give each new token the ticket's next unspawned serial, all in one transaction.

    A token spawned on this ticket before gets its serial back; a token linked elsewhere,
    or fewer unspawned serials than new tokens, is an error and nothing is written.
    """
    ticket = check_target("job_ticket", job_ticket)
    wanted = clean_tokens(tokens)
    with agent.store.write() as conn:
        first = conn.execute(
            "SELECT scope_key FROM serials WHERE job_ticket = ? LIMIT 1", (ticket,)
        ).fetchone()
        if first is None:
            raise EdgeError(
                ERR_JOB_TICKET_UNKNOWN,
                f"no serials are reserved for job ticket {ticket} on this line; run "
                "lineledger-edge pregenerate first",
            )
        _context(Scope.from_key(first["scope_key"]).ptype, {"job_ticket": ticket, "token": "t"})
        done: dict[str, Spawned] = {}
        new: list[str] = []
        for token in wanted:
            row = conn.execute(
                "SELECT serial, job_ticket FROM serials WHERE token = ?", (token,)
            ).fetchone()
            if row is None:
                new.append(token)
            elif row["job_ticket"] == ticket:
                done[token] = Spawned(token, row["serial"], ticket, False, None)
            else:
                raise EdgeError(
                    ERR_TOKEN_LINKED,
                    f"token {token} carries serial {row['serial']} "
                    f"(job ticket {row['job_ticket'] or 'none'}) already",
                )
        free = conn.execute(
            "SELECT serial, state FROM serials WHERE job_ticket = ? AND token IS NULL "
            "AND state IN ('issued', 'printed') ORDER BY rowid LIMIT ?",
            (ticket, len(new)),
        ).fetchall()
        if len(free) < len(new):
            raise EdgeError(
                ERR_SPAWN_SHORT,
                f"job ticket {ticket} has {len(free)} unspawned serials, {len(new)} new tokens "
                f"need {len(new)}: pregenerate {len(new) - len(free)} more; nothing was spawned",
            )
        stamp = format_ts(agent.now())
        for token, row in zip(new, free, strict=True):
            event_id = _linked_event(
                agent, conn, row["serial"], {"job_ticket": ticket, "token": token}
            )
            conn.execute(
                "UPDATE serials SET token = ?, state = ?, linked_at = ?, spawned_at = ? "
                "WHERE serial = ?",
                (token, next_state(row["state"], LINKED), stamp, stamp, row["serial"]),
            )
            job = None
            if printer_url and row["state"] == "issued":
                job = conn.execute(
                    "INSERT INTO print_jobs(serial, printer_url, kind, status, created_at) "
                    "VALUES (?, ?, 'print', 'queued', ?)",
                    (row["serial"], printer_url, stamp),
                ).lastrowid
            done[token] = Spawned(token, row["serial"], ticket, True, event_id, job)
    return [done[token] for token in wanted]


def link(agent: Agent, serial: object, kind: str, value: object) -> dict[str, Any]:
    """Link one serial to a work order, a job ticket or a token; return what was recorded."""
    if kind not in TARGETS:
        raise EdgeError(ERR_LINK_TARGET, f"a link target is one of {', '.join(TARGETS)}")
    target = check_target(kind, value)
    serial = serial.strip().upper() if isinstance(serial, str) else ""
    if not 0 < len(serial) <= 64:
        raise EdgeError(ERR_NOT_OURS, "name a serial this line issued")
    data = {kind: target}
    with agent.store.write() as conn:
        row = conn.execute(
            "SELECT scope_key, state, work_order, job_ticket, token FROM serials WHERE serial = ?",
            (serial,),
        ).fetchone()
        if row is None:
            raise EdgeError(ERR_NOT_OURS, f"serial {serial} was not issued by this agent")
        ptype = Scope.from_key(row["scope_key"]).ptype
        _context(ptype, data)
        if kind == "work_order" and target != row["work_order"]:
            raise EdgeError(
                ERR_CONTEXT_MISMATCH,
                f"serial {serial} was issued for work order {row['work_order']}, not {target}",
            )
        if kind == "job_ticket" and row["job_ticket"] not in (None, target):
            raise EdgeError(
                ERR_CONTEXT_MISMATCH,
                f"serial {serial} is reserved for job ticket {row['job_ticket']}, not {target}",
            )
        if kind == "token":
            other = conn.execute("SELECT serial FROM serials WHERE token = ?", (target,)).fetchone()
            if other is not None:
                raise EdgeError(
                    ERR_TOKEN_LINKED, f"token {target} carries serial {other['serial']} already"
                )
        try:
            state = next_state(row["state"], LINKED)
        except ProtocolError as exc:
            raise EdgeError(exc.code, f"cannot link {serial}: it is {row['state']}") from None
        event_id = _linked_event(agent, conn, serial, data)
        column = "linked_work_order" if kind == "work_order" else kind
        stamp = format_ts(agent.now())
        conn.execute(
            f"UPDATE serials SET {column} = ?, state = ?, linked_at = ? WHERE serial = ?",
            (target, state, stamp, serial),
        )
        if kind == "token" and row["job_ticket"] is not None:
            # A reserved serial given to a piece by hand is spawned all the same.
            conn.execute("UPDATE serials SET spawned_at = ? WHERE serial = ?", (stamp, serial))
    return {"ok": True, "serial": serial, "state": state, "event_id": event_id, kind: target}


def link_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Return how many serials were pre-generated for job tickets and how many were spawned."""
    # Pre-generated: reserved at issue (a ticket linked later by hand has linked_at without
    # spawned_at).
    row = conn.execute(
        "SELECT COUNT(*) FILTER (WHERE job_ticket IS NOT NULL AND (spawned_at IS NOT NULL "
        "OR linked_at IS NULL)) AS pre, COUNT(spawned_at) AS spawned FROM serials"
    ).fetchone()
    return {"pre_generated": row["pre"], "spawned": row["spawned"]}
