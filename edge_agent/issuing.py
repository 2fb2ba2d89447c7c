"""Issuing: claim the next number of a lease and record its `issued` event, atomically.

Both happen in one `BEGIN IMMEDIATE` transaction together with the print job (when the
label is to be printed), so a crash at any instant leaves either all of them or none.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from edge_agent.agent import OVERRIDE_KEY, REVOKED_ADVICE, REVOKED_KEY, Agent
from edge_agent.clock import REFUSE, describe, state_of
from edge_agent.errors import (
    ERR_AGENT_REVOKED,
    ERR_BUSY,
    ERR_CLOCK_SKEW,
    ERR_NOT_OURS,
    ERR_POOL_EMPTY,
    ERR_REASON,
    ERR_WORK_ORDER_COMPLETE,
    EdgeError,
)
from edge_agent.pool import production_date, scope_for
from protocol.errors import ProtocolError
from protocol.events import Event
from protocol.keys import LeaseMac
from protocol.lifecycle import ISSUED, VOIDED, next_state
from protocol.messages import WorkOrderInfo
from protocol.serials import Scope, ScopeRenderer, render
from protocol.timefmt import format_ts


@dataclass(frozen=True)
class Issued:
    """A serial that is now recorded in the outbox."""

    serial: str
    event_id: str
    seq: int
    scope: str
    lease_id: str
    work_order: str
    issued_at: str
    print_job: int | None
    job_ticket: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON line the CLI prints."""
        out = {
            "serial": self.serial,
            "event_id": self.event_id,
            "work_order": self.work_order,
            "scope": self.scope,
            "seq": self.seq,
            "lease_id": self.lease_id,
            "issued_at": self.issued_at,
        }
        if self.print_job is not None:
            out["print_job"] = self.print_job
        if self.job_ticket is not None:
            out["job_ticket"] = self.job_ticket
        return out


def check_standing(agent: Agent, conn: sqlite3.Connection) -> None:
    """Raise unless this agent may issue now: not revoked, clock within limits or overridden.

    Runs inside the issuing transaction, so a revocation or an override another process
    records meanwhile is seen by the very next serial.
    """
    rows = dict(
        conn.execute(
            "SELECT key, value FROM meta WHERE key IN (?, ?)", (REVOKED_KEY, OVERRIDE_KEY)
        ).fetchall()
    )
    if REVOKED_KEY in rows:
        try:
            said = json.loads(rows[REVOKED_KEY]).get("message", "")
        except (ValueError, AttributeError):
            said = ""
        raise EdgeError(
            ERR_AGENT_REVOKED,
            f"central revoked this line PC; central said: {said or 'no reason given'}. "
            f"{REVOKED_ADVICE}",
        )
    cfg = agent.config
    offset = agent.clock.offset()
    if state_of(offset, cfg.clock_warn_seconds, cfg.clock_limit_seconds) == REFUSE:
        if OVERRIDE_KEY not in rows:
            assert offset is not None
            raise EdgeError(
                ERR_CLOCK_SKEW,
                f"this PC's clock is {describe(offset)}, beyond the limit of "
                f"{cfg.clock_limit_seconds:g} s: set the clock right (NTP), or a supervisor can "
                "run lineledger-edge clock override --reason TEXT",
            )


def consume_allowance(conn: sqlite3.Connection, wo: WorkOrderInfo, count: int) -> None:
    """Count `count` more serials of a work order, or raise ERR_WORK_ORDER_COMPLETE.

    The count is a column updated in the transaction that consumes the numbers, so it is
    exact however many `issue` processes run at once.
    """
    cur = conn.execute(
        "UPDATE work_orders SET issued_local = issued_local + ? WHERE number = ? AND "
        "(allowed IS NULL OR issued_local + consumed_elsewhere + ? <= allowed)",
        (count, wo.number, count),
    )
    if cur.rowcount == 1:
        return
    row = conn.execute(
        "SELECT allowed, consumed_elsewhere, issued_local FROM work_orders WHERE number = ?",
        (wo.number,),
    ).fetchone()
    allowed, elsewhere, here = row["allowed"], row["consumed_elsewhere"], row["issued_local"]
    left = max(0, allowed - elsewhere - here)
    asked = f"{count} more serials" if count > 1 else "another serial"
    raise EdgeError(
        ERR_WORK_ORDER_COMPLETE,
        f"work order {wo.number} is complete: it may use {allowed} serials (quantity plus "
        f"overage) and has {here} from this line and {elsewhere} from other lines, so "
        f"{left} left, not {asked}; a supervisor can raise its quantity centrally",
    )


# The lease the next number of a scope comes from: issuing and the operator's preview agree.
_NEXT_NUMBER = (
    "SELECT lease_id, next_seq, key_hex FROM leases WHERE scope_key = ? "
    "AND status = 'active' AND next_seq <= last_seq ORDER BY first_seq LIMIT 1"
)


def _pool_empty(scope: Scope) -> EdgeError:
    return EdgeError(
        ERR_POOL_EMPTY,
        f"no numbers of {scope.key} on hand; connect the line to central so the "
        "pool can be topped up",
    )


@dataclass(frozen=True)
class NextSerial:
    """The serial a work order's next `issue` hands out, or why it would refuse."""

    work_order: str
    scope: str
    serial: str | None
    seq: int | None
    refusal: dict[str, str] | None

    def to_dict(self) -> dict[str, Any]:
        """Return it as JSON."""
        return {
            "work_order": self.work_order,
            "scope": self.scope,
            "serial": self.serial,
            "seq": self.seq,
            "refusal": self.refusal,
        }


def next_serial(agent: Agent, work_order: str, now: dt.datetime | None = None) -> NextSerial:
    """Return the serial the next `issue` of a work order will hand out, using nothing.

    The number is read, not claimed: another process may take it first, so a caller that
    shows it reads it again after every issue.
    """
    now = now or agent.now()
    ident = agent.identity()
    wo = agent.work_order(work_order)
    scope = scope_for(ident, wo, production_date(ident, now))
    conn = agent.store.conn()
    refusal: EdgeError | None = None
    try:
        check_standing(agent, conn)
        row = conn.execute(
            "SELECT allowed, consumed_elsewhere, issued_local FROM work_orders WHERE number = ?",
            (wo.number,),
        ).fetchone()
        if row is not None and row["allowed"] is not None:
            if row["issued_local"] + row["consumed_elsewhere"] >= row["allowed"]:
                raise EdgeError(
                    ERR_WORK_ORDER_COMPLETE,
                    f"work order {wo.number} is complete; a supervisor can raise its quantity "
                    "centrally",
                )
    except EdgeError as exc:
        refusal = exc
    lease = conn.execute(_NEXT_NUMBER, (scope.key,)).fetchone()
    if lease is None:
        refusal = refusal or _pool_empty(scope)
        return NextSerial(wo.number, scope.key, None, None, refusal.to_dict())
    serial = render(scope, lease["next_seq"], bytes.fromhex(lease["key_hex"]))
    return NextSerial(
        wo.number,
        scope.key,
        serial,
        lease["next_seq"],
        refusal.to_dict() if refusal is not None else None,
    )


# Issuing's own statements: the work order's count and the standing check in one statement,
# the next number claimed in another (each answers with what the rest of the transaction
# needs). A refusal falls back to the checks one by one, so it says what it always said.
_CLAIM_ALLOWANCE = (
    "UPDATE work_orders SET issued_local = issued_local + :n WHERE number = :wo "
    "AND status = 'open' AND (allowed IS NULL OR issued_local + consumed_elsewhere + :n "
    "<= allowed) AND NOT EXISTS (SELECT 1 FROM meta WHERE key = :revoked) "
    "RETURNING ptype, category"
)
_CLAIM_NUMBER = (
    "UPDATE leases SET next_seq = next_seq + 1 WHERE lease_id = (SELECT lease_id FROM leases "
    "WHERE scope_key = ? AND status = 'active' AND next_seq <= last_seq ORDER BY first_seq "
    "LIMIT 1) RETURNING lease_id, next_seq - 1, key_hex"
)
_INSERT_SERIAL = (
    "INSERT INTO serials(serial, scope_key, seq, lease_id, work_order, issued_at, "
    "event_id, state, job_ticket) VALUES (?, ?, ?, ?, ?, ?, ?, 'issued', ?)"
)
_INSERT_EVENT = (
    "INSERT INTO outbox(event_id, serial, type, body, created_at, status) "
    "VALUES (?, ?, ?, ?, ?, 'pending')"
)
_INSERT_JOB = (
    "INSERT INTO print_jobs(serial, printer_url, kind, status, created_at) "
    "VALUES (?, ?, 'print', 'queued', ?)"
)
_CACHE_MAX = 256  # lease keys and scopes kept; a long-lived issuer forgets the oldest


class Rider(Protocol):
    """Writes that ride along in the next issuing transaction instead of one of their own."""

    def ride(self, conn: sqlite3.Connection) -> Callable[[], None] | None:
        """Write inside the issuing transaction; return what to call once it committed."""


class Issuer:
    """Issue serials of one agent, keeping lease keys and scopes parsed between calls."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self._keys: dict[str, LeaseMac] = {}
        self._renderers: dict[tuple[str, str, dt.date], ScopeRenderer] = {}
        self._identity = agent.identity()
        # e.g. the high-water marks central acknowledged (edge_agent.marks): noted in the
        # next issuing transaction, so they cost no commit (and no wait for the lock) of
        # their own.
        self.rider: Rider | None = None

    def _key(self, lease_id: str, key_hex: str) -> LeaseMac:
        key = self._keys.get(lease_id)
        if key is None:
            if len(self._keys) >= _CACHE_MAX:
                self._keys.clear()
            key = self._keys[lease_id] = LeaseMac(bytes.fromhex(key_hex))
        return key

    def _renderer(self, ptype: str, category: str, prod_date: dt.date) -> ScopeRenderer:
        renderer = self._renderers.get((ptype, category, prod_date))
        if renderer is None:
            if len(self._renderers) >= _CACHE_MAX:
                self._renderers.clear()
            scope = Scope(self._identity.org, ptype, category, prod_date)
            renderer = self._renderers[(ptype, category, prod_date)] = ScopeRenderer(scope)
        return renderer

    def _clock_refuses(self) -> bool:
        cfg = self.agent.config
        offset = self.agent.clock.offset()
        return state_of(offset, cfg.clock_warn_seconds, cfg.clock_limit_seconds) == REFUSE

    def issue(
        self, work_order: str, now: dt.datetime | None = None, printer_url: str | None = None
    ) -> Issued:
        """Issue the next serial of a work order and queue its label if a printer is named."""
        return self.issue_many(work_order, 1, now, printer_url)[0]

    def issue_many(
        self,
        work_order: str,
        count: int,
        now: dt.datetime | None = None,
        printer_url: str | None = None,
        job_ticket: str | None = None,
        before: Callable[[sqlite3.Connection], None] | None = None,
    ) -> list[Issued]:
        """Issue `count` serials in one transaction: all of them or none.

        A job ticket reserves them for its pieces (`issued` events carry it in their data);
        `before` checks more rules inside the transaction. Every serial is committed
        (`synchronous=FULL`) before this returns.
        """
        now = now or self.agent.now()
        prod_date = production_date(self._identity, now)
        stamp = format_ts(now)
        data = {"job_ticket": job_ticket} if job_ticket else {}
        landed = None
        with self.agent.store.write() as conn:
            claimed = None
            if before is None:
                params = {"n": count, "wo": work_order, "revoked": REVOKED_KEY}
                claimed = conn.execute(_CLAIM_ALLOWANCE, params).fetchall()
            if claimed:
                if self._clock_refuses():
                    check_standing(self.agent, conn)  # raises unless a supervisor overrode
                ptype, category = claimed[0]
            else:
                # Refused (or rules of the caller's to check first): the checks one by one.
                wo = self.agent.work_order(work_order)
                check_standing(self.agent, conn)
                if before is not None:
                    before(conn)
                consume_allowance(conn, wo, count)
                ptype, category = wo.ptype, wo.category
            renderer = self._renderer(ptype, category, prod_date)
            issued = [
                self._issue_one(conn, renderer, work_order, stamp, printer_url, data)
                for _ in range(count)
            ]
            if self.rider is not None:
                landed = self.rider.ride(conn)
        if landed is not None:
            landed()
        return issued

    def _issue_one(
        self,
        conn: sqlite3.Connection,
        renderer: ScopeRenderer,
        work_order: str,
        stamp: str,
        printer_url: str | None,
        data: dict[str, Any],
    ) -> Issued:
        rows = conn.execute(_CLAIM_NUMBER, (renderer.key,)).fetchall()
        if not rows:
            raise _pool_empty(renderer.scope)
        lease_id, seq, key_hex = rows[0]
        serial = renderer.render(seq, self._key(lease_id, key_hex))
        event_id = self.agent.new_event_id()
        event = Event(event_id, ISSUED, serial, stamp, lease_id, work_order, data)
        job_ticket = data.get("job_ticket")
        conn.execute(
            _INSERT_SERIAL,
            (serial, renderer.key, seq, lease_id, work_order, stamp, event_id, job_ticket),
        )
        conn.execute(_INSERT_EVENT, (event_id, serial, ISSUED, event.to_json(), stamp))
        job = None
        if printer_url:
            job = conn.execute(_INSERT_JOB, (serial, printer_url, stamp)).lastrowid
        return Issued(
            serial, event_id, seq, renderer.key, lease_id, work_order, stamp, job, job_ticket
        )


MAX_REASON = 256


def check_reason(reason: str) -> str:
    """Return a cleaned reason, or raise: reprints and voids must say why."""
    reason = (reason or "").strip()
    if not reason or len(reason) > MAX_REASON or not reason.isprintable():
        raise EdgeError(ERR_REASON, f"give a reason of 1-{MAX_REASON} printable characters")
    return reason


def void_serial(agent: Agent, serial: str, reason: str) -> str:
    """Void a serial whose label was damaged or never applied; return the event id.

    The number stays used for good (numbers are never issued twice); waiting print jobs of
    the serial are cancelled in the same transaction.
    """
    reason = check_reason(reason)
    stamp = format_ts(agent.now())
    event_id = agent.new_event_id()
    event = Event(event_id, VOIDED, serial, stamp, data={"reason": reason})
    with agent.store.write() as conn:
        row = conn.execute("SELECT state FROM serials WHERE serial = ?", (serial,)).fetchone()
        if row is None:
            raise EdgeError(ERR_NOT_OURS, f"serial {serial} was not issued by this agent")
        try:
            next_state(row["state"], VOIDED)
        except ProtocolError as exc:
            raise EdgeError(exc.code, f"cannot void {serial}: it is {row['state']}") from None
        sending = conn.execute(
            "SELECT COUNT(*) FROM print_jobs WHERE serial = ? AND status = 'sending'", (serial,)
        ).fetchone()[0]
        if sending:
            raise EdgeError(ERR_BUSY, f"a label of {serial} is being sent right now; try again")
        conn.execute("UPDATE serials SET state = 'voided' WHERE serial = ?", (serial,))
        conn.execute(
            "UPDATE print_jobs SET status = 'cancelled', owner = NULL, last_error = ? "
            "WHERE serial = ? AND status IN ('queued', 'failed', 'claimed', 'held')",
            (f"serial voided: {reason}"[:256], serial),
        )
        conn.execute(
            "INSERT INTO outbox(event_id, serial, type, body, created_at, status) "
            "VALUES (?, ?, ?, ?, ?, 'pending')",
            (event_id, serial, VOIDED, event.to_json(), stamp),
        )
    return event_id
