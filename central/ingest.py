"""Event ingest: apply a batch of an agent's events to the registry, exactly once in effect.

The whole batch is one transaction. Everything the decisions need (seen event ids, leases of
the scopes involved, registry states, open quarantines) is read up front in a few queries,
the events are judged in order against an in-memory view that each accepted event updates,
and the outcome is written back with one executemany per table.

The same judge replays events a supervisor released from quarantine, with the check that
held them waived (a closed lease, a clock out of tolerance, the hold itself).

Before any other rule, an event a hostile or broken client made up is `rejected` (answered,
never stored):
- `occurred_at` before 2020-01-01T00:00Z (`EARLIEST_EVENT`) or more than one day after
  central's now (`MAX_EVENT_AHEAD`): `ERR_EVENT_TIME_RANGE`. Within a day ahead, the clock
  rules below still hold an `issued` event beyond the clock tolerance for review;
- a `work_order` the agent's tenant does not have: `ERR_WORK_ORDER_UNKNOWN`; one of another
  product (its product's category or its production type differ from the serial's scope):
  `ERR_WORK_ORDER_PRODUCT`;
- a `data` value holding a C0 or C1 control character (ESC, CR, LF, TAB, ...), DEL, or a
  Unicode bidi embedding, override or isolate (U+202A-U+202E, U+2066-U+2069):
  `ERR_CONTROL_CHARACTER` (see `protocol.schema.unsafe_character`).

A `scanned` event from another line of the same tenant, of a serial leased to another agent
and carrying its valid authenticity code, is a clone signal: the same label was seen on two
lines. It is stored and answered `accepted` with code `CLONE_SIGNAL` (counted in
`serial_clone_signals_total`), and changes neither the serial's state nor its verdict; any
other event type from a foreign line is quarantined and holds the serial, as before.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from central import tables as T
from central.db import Store
from central.errors import (
    ERR_AGENT_REVOKED,
    ERR_CLOCK_SKEW,
    ERR_DUPLICATE_SERIAL,
    ERR_EVENT_TIME_RANGE,
    ERR_LEASE_EXPIRED,
    ERR_LEASE_RETURNED,
    ERR_OUTSIDE_LEASE,
    ERR_SERIAL_RETIRED,
    ERR_WORK_ORDER_PRODUCT,
    ERR_WORK_ORDER_UNKNOWN,
)
from central.keyring import Keyring
from central.leases import AgentRef, raise_mark
from central.timeutil import as_utc
from protocol import lifecycle as L
from protocol.errors import ERR_CONTROL_CHARACTER, ERR_SERIAL_MAC, ProtocolError
from protocol.events import (
    ACCEPTED,
    DUPLICATE,
    QUARANTINED,
    REJECTED,
    RETRY,
    BatchItem,
    Event,
    EventResult,
)
from protocol.keys import mac_matches
from protocol.schema import unsafe_character
from protocol.serials import StandardSerial, parse
from protocol.timefmt import parse_ts

EARLIEST_EVENT = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)  # no LineLedger label is older
MAX_EVENT_AHEAD = dt.timedelta(days=1)  # beyond any clock the edge's guard lets issue
CLONE_SIGNAL = "CLONE_SIGNAL"  # result code: another line scanned this line's serial

ERR_AWAITING_ISSUE = "ERR_AWAITING_ISSUE"
RELEASED = "released"  # event outcome: applied after a supervisor's review
SUPERSEDED = "superseded"  # event outcome: reviewed, could not apply
ERR_SERIAL_QUARANTINED = "ERR_SERIAL_QUARANTINED"
_CHUNK = 500
# Why events above the mark of a closed lease are held, by how the lease was closed.
CLOSED_LEASE_CODES = {
    "returned": ERR_LEASE_RETURNED,
    "expired": ERR_LEASE_EXPIRED,
    "revoked": ERR_AGENT_REVOKED,
}
# Waivers a reviewer's release grants when the held events are replayed.
WAIVE_HOLD = "hold"
WAIVE_CLOSED = "closed_lease"
WAIVE_CLOCK = "clock"
_LINK_FIELDS = (
    ("job_ticket", "job_ticket"),
    ("token", "token"),
    ("work_order", "linked_work_order"),
)


def _chunks(conn: Connection, values: Sequence[str]) -> Iterable[Sequence[str]]:
    """Split a lookup list: SQLite binds one parameter per value, PostgreSQL one array."""
    if conn.dialect.name == "postgresql":
        if values:
            yield values
        return
    for i in range(0, len(values), _CHUNK):
        yield values[i : i + _CHUNK]


def _among(conn: Connection, column: sa.Column[Any], values: Sequence[str]) -> Any:
    """Return `column IN (values)`; on PostgreSQL `column = ANY(...)` of one text parameter.

    One parameter keeps the statement's text the same whatever the batch holds, so
    PostgreSQL parses and plans it once per connection (psycopg prepares repeated
    statements) instead of a new statement of up to 500 parameters per lookup. The values
    travel as one comma-separated text (event ids and canonical serials hold no comma; psycopg
    would format a list as an array literal value by value in Python); any value holding a
    comma (or empty) falls back to IN.
    """
    if conn.dialect.name == "postgresql" and not any("," in v or not v for v in values):
        joined = sa.bindparam(None, ",".join(values), type_=sa.Text)
        return column == sa.any_(sa.func.string_to_array(joined, ","))
    return column.in_(values)


def _json_value(value: object) -> str:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    raise TypeError(f"cannot send {type(value).__name__} as JSON")


def _insert_rows(conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Insert rows that all have the same keys, in one statement on PostgreSQL.

    SQLite runs an executemany in process. On PostgreSQL psycopg would send one INSERT per
    row (pipelined); here the rows travel as one JSON document that the server unpacks with
    `json_to_recordset` into the columns' own types: one statement, one parameter, the same
    text every time (so it is prepared once per connection), and the encoding is done by the
    json module's C encoder rather than per value in Python.
    """
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(table.insert(), rows)
        return
    names = list(rows[0])
    quote = conn.dialect.identifier_preparer.quote
    columns = ", ".join(quote(n) for n in names)
    spec = ", ".join(f"{quote(n)} {table.c[n].type.compile(dialect=conn.dialect)}" for n in names)
    conn.execute(
        sa.text(
            f"INSERT INTO {quote(table.name)} ({columns}) SELECT {columns} "
            f"FROM json_to_recordset(CAST(:rows AS json)) AS r({spec})"
        ),
        {"rows": json.dumps(rows, default=_json_value, ensure_ascii=False)},
    )


class _Serial:
    """A parsed serial with what the judge asks of it more than once, computed once.

    `text`, `body` and `scope_key` are properties of `StandardSerial` that format strings
    on every call; a batch asks for them several times per event. The MAC is checked once
    per lease (an `issued` and a `printed` event of one serial check the same MAC).
    """

    __slots__ = ("parsed", "scope", "seq", "text", "body", "scope_key", "_macs")

    def __init__(self, parsed: StandardSerial) -> None:
        self.parsed = parsed
        self.scope = parsed.scope
        self.seq = parsed.seq
        self.scope_key = parsed.scope.key
        self.body = f"{self.scope_key}-{parsed.seq:05d}"  # protocol.serials.body, checked
        self.text = f"{self.body}-{parsed.mac}-{parsed.check}"
        self._macs: dict[str, bool] = {}

    def mac_valid(self, lease_id: str, lease_key: bytes) -> bool:
        """Tell whether the MAC was made with this lease's key (remembered per lease)."""
        valid = self._macs.get(lease_id)
        if valid is None:
            valid = self._macs[lease_id] = mac_matches(lease_key, self.body, self.parsed.mac)
        return valid


def _parse_serials(events: Iterable[Event]) -> dict[str, _Serial | ProtocolError]:
    """Parse each distinct serial of the events once."""
    serials: dict[str, _Serial | ProtocolError] = {}
    for e in events:
        if e.serial not in serials:
            try:
                serials[e.serial] = _Serial(parse(e.serial))
            except ProtocolError as exc:
                serials[e.serial] = exc
    return serials


@dataclass
class _View:
    """What the batch needs to know, read once and updated as events are accepted."""

    seen: set[str]
    leases: dict[str, list[Row[Any]]]
    states: dict[str, str]
    quarantined: set[str]
    recalled_orders: set[str] = field(default_factory=set)
    # the tenant's work orders the batch names: number -> (production type, product category)
    orders: dict[str, tuple[str, str]] = field(default_factory=dict)
    keys: dict[str, bytes] = field(default_factory=dict)


@dataclass
class _Writes:
    events: list[dict[str, Any]] = field(default_factory=list)
    event_updates: list[dict[str, Any]] = field(default_factory=list)  # replayed events
    new_serials: dict[str, dict[str, Any]] = field(default_factory=dict)
    updates: dict[str, dict[str, Any]] = field(default_factory=dict)
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    raised_marks: dict[str, int] = field(default_factory=dict)  # closed lease -> released seq


@dataclass
class IngestReport:
    """The per-event results, in batch order, and counts for metrics."""

    results: list[EventResult]
    counts: Counter[tuple[str, str]]


def _read_view(
    conn: Connection,
    agent: AgentRef,
    events: list[Event],
    serials: dict[str, _Serial | ProtocolError],
) -> _View:
    parsed = [s for s in serials.values() if isinstance(s, _Serial)]
    ids = [e.event_id for e in events]
    seen: set[str] = set()
    for chunk in _chunks(conn, ids):
        seen.update(
            conn.execute(
                sa.select(T.events.c.event_id).where(_among(conn, T.events.c.event_id, chunk))
            ).scalars()
        )
    scope_keys = sorted({s.scope_key for s in parsed})
    leases: dict[str, list[Row[Any]]] = {}
    if scope_keys:
        for row in conn.execute(sa.select(T.leases).where(T.leases.c.scope_key.in_(scope_keys))):
            leases.setdefault(row.scope_key, []).append(row)
    texts = sorted({s.text for s in parsed})
    states: dict[str, str] = {}
    quarantined: set[str] = set()
    for chunk in _chunks(conn, texts):
        for row in conn.execute(
            sa.select(T.registry.c.serial, T.registry.c.state).where(
                _among(conn, T.registry.c.serial, chunk)
            )
        ):
            states[row.serial] = row.state
        quarantined.update(
            conn.execute(
                sa.select(T.quarantine.c.serial).where(
                    _among(conn, T.quarantine.c.serial, chunk),
                    T.quarantine.c.resolved_at.is_(None),
                    T.quarantine.c.holds_serial.is_(True),
                )
            ).scalars()
        )
    orders = sorted(
        {e.work_order for e in events if e.work_order}
        | {
            str(e.data["work_order"])
            for e in events
            if e.type == L.LINKED and e.data.get("work_order")
        }
    )
    recalled: set[str] = set()
    known: dict[str, tuple[str, str]] = {}
    wo = T.work_orders.c
    for chunk in _chunks(conn, orders):
        for row in conn.execute(
            sa.select(wo.number, wo.production_type, wo.recalled_at, T.products.c.category)
            .join(T.products, T.products.c.id == wo.product_id)
            .where(wo.tenant_id == agent.tenant_id, _among(conn, wo.number, chunk))
        ):
            known[row.number] = (row.production_type, row.category)
            if row.recalled_at is not None:
                recalled.add(row.number)
    return _View(seen, leases, states, quarantined, recalled, known)


def _lease_for(view: _View, serial: _Serial) -> Row[Any] | None:
    for row in view.leases.get(serial.scope_key, ()):
        if row.first_seq <= serial.seq <= row.last_seq:
            return row
    return None


class _Judge:
    """Decide one event at a time and collect the writes."""

    def __init__(
        self,
        agent: AgentRef,
        keyring: Keyring,
        view: _View,
        now: dt.datetime,
        tolerance: dt.timedelta = dt.timedelta(minutes=5),
        waive: frozenset[str] = frozenset(),
        replay: bool = False,
    ):
        self.agent = agent
        self.keyring = keyring
        self.view = view
        self.now = now
        self.tolerance = tolerance
        self.waive = waive
        self.replay = replay  # the events are stored already: update them, do not insert
        self.central_made = False  # the event was made by central (a reviewer's decision)
        self.writes = _Writes()
        self._times: dict[str, dt.datetime] = {}

    def _occurred(self, e: Event) -> dt.datetime:
        """Return the event's `occurred_at` as a datetime (parsed once per distinct text)."""
        moment = self._times.get(e.occurred_at)
        if moment is None:
            moment = self._times[e.occurred_at] = parse_ts(e.occurred_at)
        return moment

    def _event_row(
        self,
        e: Event,
        serial: str,
        outcome: str,
        code: str | None,
        lease_id: str | None = None,
        flags: str | None = None,
    ) -> None:
        self.view.seen.add(e.event_id)
        if self.replay:
            self.writes.event_updates.append(
                {"b_id": e.event_id, "b_outcome": outcome, "b_code": code, "b_lease": lease_id}
            )
            return
        self.writes.events.append(
            {
                "event_id": e.event_id,
                "tenant_id": self.agent.tenant_id,
                "agent_id": self.agent.id,
                "type": e.type,
                "serial": serial,
                "lease_id": lease_id,
                "work_order": e.work_order,
                "occurred_at": self._occurred(e),
                "received_at": self.now,
                "data": _data_json(e.data),
                "outcome": outcome,
                "code": code,
                "clock_flags": flags,
                "origin": "central" if self.central_made else "agent",
            }
        )

    def _quarantine(
        self,
        e: Event,
        serial: str,
        reason: str,
        message: str,
        details: dict[str, Any],
        hold: bool,
        lease_id: str | None = None,
    ) -> EventResult:
        """Store the event for review; `hold` also holds the serial itself.

        Only evidence from the serial's own tenant may hold a serial: otherwise any agent of
        any tenant could turn a genuine product's verdict into `under_review`. A replayed event
        that still cannot apply is marked `superseded` instead: its review is over.
        """
        if self.replay:
            self._event_row(e, serial, SUPERSEDED, reason, lease_id)
            return EventResult(e.event_id, QUARANTINED, reason, message)
        self._event_row(e, serial, QUARANTINED, reason, lease_id)
        self.writes.quarantine.append(
            {
                "tenant_id": self.agent.tenant_id,
                "serial": serial,
                "reason": reason,
                "holds_serial": hold,
                "details": json.dumps({"message": message, **details}, sort_keys=True),
                "event_id": e.event_id,
                "agent_id": self.agent.id,
                "created_at": self.now,
            }
        )
        if hold:
            self.view.quarantined.add(serial)
        return EventResult(e.event_id, QUARANTINED, reason, message)

    def _lease_key(self, lease: Row[Any]) -> bytes:
        key = self.view.keys.get(lease.id)
        if key is None:
            key = self.view.keys[lease.id] = self.keyring.lease_key(lease.key_version, lease.id)
        return key

    def _foreign_scan(self, e: Event, serial: _Serial, lease: Row[Any]) -> EventResult:
        """Record another line's scan of this serial as a clone signal; change no state.

        A scan proves only that a label was seen, so it may not hold a serial: otherwise any
        line of the tenant could turn a genuine product's verdict into `under_review`.
        """
        text = serial.text
        if not serial.mac_valid(lease.id, self._lease_key(lease)):
            message = "the authenticity code does not match the lease"
            details = {"lease_id": lease.id, "lease_holder": lease.agent_id}
            return self._quarantine(e, text, ERR_SERIAL_MAC, message, details, False, lease.id)
        outcome = RELEASED if self.replay else ACCEPTED
        self._event_row(e, text, outcome, CLONE_SIGNAL, lease.id)
        message = "another line's serial: recorded as a clone signal; its state is unchanged"
        return EventResult(e.event_id, ACCEPTED, CLONE_SIGNAL, message)

    def _clock_flags(self, e: Event, lease: Row[Any]) -> list[str]:
        occurred = self._occurred(e)
        flags = []
        if occurred > self.now + self.tolerance:
            flags.append("future")
        granted = as_utc(lease.granted_at)
        if granted is not None and occurred < granted - self.tolerance:
            flags.append("before_lease")
        return flags

    def _refusal(self, e: Event, serial: _Serial | ProtocolError) -> EventResult | None:
        """Return a `rejected` result for an event no line could have recorded, else None."""
        occurred = self._occurred(e)
        if occurred < EARLIEST_EVENT or occurred > self.now + MAX_EVENT_AHEAD:
            message = (
                f"occurred_at {e.occurred_at} lies outside what central takes: from "
                f"{EARLIEST_EVENT:%Y-%m-%d} to one day after central's time; check the line "
                "PC's clock"
            )
            return EventResult(e.event_id, REJECTED, ERR_EVENT_TIME_RANGE, message)
        for key, value in e.data.items():
            found = unsafe_character(value) if isinstance(value, str) else None
            if found is not None:
                message = f"data.{key} holds the control character {found}"
                return EventResult(e.event_id, REJECTED, ERR_CONTROL_CHARACTER, message)
        if e.work_order is not None:
            order = self.view.orders.get(e.work_order)
            if order is None:
                message = f"{self.agent.org} has no work order {e.work_order!r}"
                return EventResult(e.event_id, REJECTED, ERR_WORK_ORDER_UNKNOWN, message)
            if isinstance(serial, _Serial) and order != (
                serial.scope.ptype,
                serial.scope.category,
            ):
                message = (
                    f"work order {e.work_order} makes {order[0]} {order[1]} products, "
                    f"not {serial.scope.ptype} {serial.scope.category}"
                )
                return EventResult(e.event_id, REJECTED, ERR_WORK_ORDER_PRODUCT, message)
        return None

    def judge(self, e: Event, serial: _Serial | ProtocolError) -> EventResult:
        """Return the result of one event and note what it writes."""
        if e.event_id in self.view.seen:
            return EventResult(e.event_id, DUPLICATE)
        refused = self._refusal(e, serial)
        if refused is not None:
            return refused
        if isinstance(serial, ProtocolError):
            details = {"event_type": e.type}
            return self._quarantine(e, e.serial, serial.code, serial.message, details, False)
        text = serial.text
        lease = _lease_for(self.view, serial) if serial.scope.org == self.agent.org else None
        lease_id = lease.id if lease is not None else None
        if e.type == L.SCANNED and lease is not None and lease.agent_id != self.agent.id:
            return self._foreign_scan(e, serial, lease)
        if text in self.view.quarantined and WAIVE_HOLD not in self.waive:
            held = "this serial is held for review"
            return self._quarantine(e, text, ERR_SERIAL_QUARANTINED, held, {}, True, lease_id)
        if lease is None or lease.agent_id != self.agent.id:
            # Another line of the same tenant reporting a leased serial (other than scanning
            # it, above) holds the serial; a number never leased, or another tenant's serial,
            # does not.
            holder = {"lease_holder": None if lease is None else lease.agent_id}
            message = "no lease of this agent holds this serial"
            return self._quarantine(
                e, text, ERR_OUTSIDE_LEASE, message, holder, lease is not None, lease_id
            )
        if not serial.mac_valid(lease.id, self._lease_key(lease)):
            message = "the authenticity code does not match the lease"
            details = {"lease_id": lease.id}
            return self._quarantine(e, text, ERR_SERIAL_MAC, message, details, False, lease.id)
        closed = lease.status != "active" and serial.seq > (lease.high_water or 0)
        if closed and WAIVE_CLOSED not in self.waive:
            code = CLOSED_LEASE_CODES.get(lease.status, ERR_LEASE_RETURNED)
            message = (
                f"the number lies above the mark the lease was closed at ({lease.status}); "
                "a supervisor reviews it"
            )
            details = {"lease_id": lease.id, "high_water": lease.high_water}
            return self._quarantine(e, text, code, message, details, True, lease.id)
        flags = self._clock_flags(e, lease)
        if flags and e.type == L.ISSUED and WAIVE_CLOCK not in self.waive:
            message = (
                f"the line PC's clock was off when it issued this serial ({', '.join(flags)}); "
                "its production date may be wrong"
            )
            details = {"occurred_at": e.occurred_at, "lease_id": lease.id}
            return self._quarantine(e, text, ERR_CLOCK_SKEW, message, details, True, lease.id)
        current = self.view.states.get(text)
        if current == L.RETIRED:
            message = "this serial was retired after review; the event is kept for review"
            return self._quarantine(e, text, ERR_SERIAL_RETIRED, message, {}, False, lease.id)
        if e.type == L.ISSUED and current is not None:
            message = "this serial was issued before by another event"
            return self._quarantine(e, text, ERR_DUPLICATE_SERIAL, message, {}, True, lease.id)
        if current is None and L.needs_known_serial(e.type):
            message = "the issued event of this serial has not arrived yet"
            return EventResult(e.event_id, RETRY, ERR_AWAITING_ISSUE, message)
        try:
            if e.type == L.LINKED:
                L.check_link_context(serial.scope.ptype, e.data)
            if current == L.RECALLED and e.type in _RECORDED_WHILE_RECALLED:
                new_state = L.RECALLED  # the facts of a recalled product are still recorded
            else:
                new_state = L.next_state(current, e.type)
        except ProtocolError as exc:
            return EventResult(e.event_id, REJECTED, exc.code, exc.message)
        if current is None and e.work_order in self.view.recalled_orders:
            new_state = L.RECALLED
        elif e.type == L.LINKED and e.data.get("work_order") in self.view.recalled_orders:
            new_state = L.RECALLED  # linked to a recalled work order: recalled with it
        self._accept(e, serial, lease, current, new_state, ",".join(flags) or None)
        if closed:
            marks = self.writes.raised_marks
            marks[lease.id] = max(marks.get(lease.id, 0), serial.seq)
        return EventResult(e.event_id, ACCEPTED)

    def _accept(
        self,
        e: Event,
        serial: _Serial,
        lease: Row[Any],
        current: str | None,
        new_state: str,
        flags: str | None,
    ) -> None:
        text = serial.text
        outcome = RELEASED if self.replay else ACCEPTED
        self._event_row(e, text, outcome, None, lease.id, flags)
        self.view.states[text] = new_state
        prints = 1 if e.type == L.PRINTED else 0
        reprints = 1 if e.type == L.REPRINTED else 0
        links = _links(e)
        if current is None:
            self.writes.new_serials[text] = {
                "serial": text,
                "tenant_id": self.agent.tenant_id,
                "scope_key": serial.scope_key,
                "seq": serial.seq,
                "lease_id": lease.id,
                "agent_id": self.agent.id,
                "work_order": e.work_order,
                "state": new_state,
                "issued_at": self._occurred(e),
                "updated_at": self.now,
                "print_count": 0,
                "reprint_count": 0,
                "last_event_id": e.event_id,
                # a serial pre-generated for a job ticket is reserved for it from the start
                "job_ticket": _text_value(e.data.get("job_ticket")),
                "token": None,
                "linked_work_order": None,
                "linked_at": None,
            }
            return
        row = self.writes.new_serials.get(text)
        if row is not None:
            row.update(state=new_state, last_event_id=e.event_id)
            row["print_count"] += prints
            row["reprint_count"] += reprints
            if links:
                row.update({k: v for k, v in links.items() if v is not None})
                row["linked_at"] = self._occurred(e)
            return
        update = self.writes.updates.setdefault(
            text,
            {
                "b_serial": text,
                "b_prints": 0,
                "b_reprints": 0,
                "b_jt": None,
                "b_tk": None,
                "b_wo": None,
                "b_linked": None,
            },
        )
        update.update(b_state=new_state, b_event=e.event_id)
        update["b_prints"] += prints
        update["b_reprints"] += reprints
        if links:
            for column, key in (
                ("job_ticket", "b_jt"),
                ("token", "b_tk"),
                ("linked_work_order", "b_wo"),
            ):
                if links.get(column) is not None:
                    update[key] = links[column]
            update["b_linked"] = self._occurred(e)


_RECORDED_WHILE_RECALLED = frozenset({L.PRINTED, L.REPRINTED, L.LINKED, L.PACKED, L.SHIPPED})


def _data_json(data: Mapping[str, Any]) -> str:
    """Return an event's `data` as stored: compact JSON with sorted keys."""
    if not data:
        return "{}"  # what json.dumps writes for an empty object, without its cost
    return json.dumps(dict(data), separators=(",", ":"), sort_keys=True)


def _text_value(value: object) -> str | None:
    return value[:64] if isinstance(value, str) and value else None


def _links(e: Event) -> dict[str, str | None]:
    """Return the link targets a `linked` event names, by registry column."""
    if e.type != L.LINKED:
        return {}
    return {column: _text_value(e.data.get(key)) for key, column in _LINK_FIELDS}


_UPDATE_REGISTRY_PG = sa.text(
    """UPDATE registry SET
        state = b.b_state,
        last_event_id = b.b_event,
        print_count = registry.print_count + b.b_prints,
        reprint_count = registry.reprint_count + b.b_reprints,
        job_ticket = COALESCE(b.b_jt, registry.job_ticket),
        token = COALESCE(b.b_tk, registry.token),
        linked_work_order = COALESCE(b.b_wo, registry.linked_work_order),
        linked_at = COALESCE(b.b_linked, registry.linked_at),
        updated_at = :now
    FROM json_to_recordset(CAST(:rows AS json)) AS b(
        b_serial VARCHAR(40), b_state VARCHAR(16), b_event VARCHAR(36), b_prints INTEGER,
        b_reprints INTEGER, b_jt VARCHAR(64), b_tk VARCHAR(64), b_wo VARCHAR(64),
        b_linked TIMESTAMP WITH TIME ZONE)
    WHERE registry.serial = b.b_serial"""
).bindparams(sa.bindparam("now", type_=T.TS), sa.bindparam("rows", type_=sa.Text))


def _update_registry_pg(conn: Connection, updates: list[dict[str, Any]], now: dt.datetime) -> None:
    """Apply the batch's changes to known serials in one UPDATE ... FROM json_to_recordset.

    The rows are locked first in serial order (as the row-by-row UPDATE of SQLite's path
    does), so two batches that change the same serials cannot deadlock.
    """
    reg = T.registry.c
    serials = [u["b_serial"] for u in updates]
    conn.execute(
        sa.select(reg.serial)
        .where(_among(conn, reg.serial, serials))
        .order_by(reg.serial)
        .with_for_update()
    )
    rows = json.dumps(updates, default=_json_value, ensure_ascii=False)
    conn.execute(_UPDATE_REGISTRY_PG, {"rows": rows, "now": now})


def _write(conn: Connection, writes: _Writes, now: dt.datetime) -> None:
    _insert_rows(conn, T.events, writes.events)
    if writes.event_updates:
        conn.execute(
            T.events.update()
            .where(T.events.c.event_id == sa.bindparam("b_id"))
            .values(
                outcome=sa.bindparam("b_outcome"),
                code=sa.bindparam("b_code"),
                lease_id=sa.func.coalesce(
                    sa.bindparam("b_lease", type_=sa.String), T.events.c.lease_id
                ),
            ),
            writes.event_updates,
        )
    _insert_rows(conn, T.registry, [writes.new_serials[k] for k in sorted(writes.new_serials)])
    if writes.updates and conn.dialect.name == "postgresql":
        _update_registry_pg(conn, [writes.updates[k] for k in sorted(writes.updates)], now)
    elif writes.updates:
        reg = T.registry.c
        conn.execute(
            T.registry.update()
            .where(reg.serial == sa.bindparam("b_serial"))
            .values(
                state=sa.bindparam("b_state"),
                last_event_id=sa.bindparam("b_event"),
                print_count=reg.print_count + sa.bindparam("b_prints"),
                reprint_count=reg.reprint_count + sa.bindparam("b_reprints"),
                job_ticket=sa.func.coalesce(sa.bindparam("b_jt", type_=sa.String), reg.job_ticket),
                token=sa.func.coalesce(sa.bindparam("b_tk", type_=sa.String), reg.token),
                linked_work_order=sa.func.coalesce(
                    sa.bindparam("b_wo", type_=sa.String), reg.linked_work_order
                ),
                linked_at=sa.func.coalesce(sa.bindparam("b_linked", type_=T.TS), reg.linked_at),
                updated_at=now,
            ),
            [writes.updates[k] for k in sorted(writes.updates)],  # one lock order everywhere
        )
    _insert_rows(conn, T.quarantine, writes.quarantine)
    for lease_id, seq in sorted(writes.raised_marks.items()):
        raise_mark(conn, lease_id, seq)


def ingest_batch(
    store: Store,
    keyring: Keyring,
    agent: AgentRef,
    items: list[BatchItem],
    now: dt.datetime,
    tolerance: dt.timedelta = dt.timedelta(minutes=5),
) -> IngestReport:
    """Judge and record a decoded batch; return one result per item, in order."""
    events = [item.event for item in items if item.event is not None]
    serials = _parse_serials(events)
    results: list[EventResult] = []
    with store.write() as conn:
        # Serialise one agent's batches on PostgreSQL (SQLite's BEGIN IMMEDIATE already does).
        conn.execute(store.lock_row(sa.select(T.agents.c.id).where(T.agents.c.id == agent.id)))
        judge = _Judge(agent, keyring, _read_view(conn, agent, events, serials), now, tolerance)
        for item in items:
            if item.event is None:
                assert item.error is not None
                results.append(
                    EventResult(item.event_id, REJECTED, item.error.code, item.error.message)
                )
            else:
                results.append(judge.judge(item.event, serials[item.event.serial]))
        _write(conn, judge.writes, now)
    counts: Counter[tuple[str, str]] = Counter()
    for item, result in zip(items, results, strict=True):
        counts[(item.event.type if item.event else "unknown", result.status)] += 1
    return IngestReport(results, counts)


@dataclass(frozen=True)
class Replay:
    """An event to apply again after review: stored already, or made by central now."""

    agent: AgentRef
    event: Event
    stored: bool = True  # False: made by central now (kept out of the agent's digests)


def replay_events(
    conn: Connection,
    keyring: Keyring,
    replays: list[Replay],
    now: dt.datetime,
    tolerance: dt.timedelta = dt.timedelta(minutes=5),
) -> list[EventResult]:
    """Apply released events in order with every review waiver, inside the caller's transaction.

    An event that still cannot apply (another rule than the waived ones, or an earlier fact
    missing) is marked `superseded` with its code; nothing goes back to quarantine.
    """
    if not replays:
        return []
    events = [r.event for r in replays]
    parsed = _parse_serials(events)
    view = _read_view(conn, replays[0].agent, events, parsed)
    view.seen.difference_update(e.event_id for e in events)
    writes = _Writes()
    judges: dict[str, _Judge] = {}
    waive = frozenset({WAIVE_HOLD, WAIVE_CLOSED, WAIVE_CLOCK})
    results: dict[int, EventResult] = {}
    pending = list(range(len(replays)))
    # Passes until nothing more applies: the order the events are stored in cannot be
    # trusted (the agent's clock was off), so an event waiting for an earlier fact (a print
    # before its issue) gets another pass once that fact applied.
    while pending:
        waiting = []
        for i in pending:
            r = replays[i]
            judge = judges.get(r.agent.id)
            if judge is None:
                judge = judges[r.agent.id] = _Judge(r.agent, keyring, view, now, tolerance, waive)
                judge.writes = writes
            judge.replay = r.stored
            judge.central_made = not r.stored
            result = judge.judge(r.event, parsed[r.event.serial])
            results[i] = result
            if result.status in (RETRY, REJECTED):
                waiting.append(i)
        if len(waiting) == len(pending):
            break
        pending = waiting
    for i in pending:
        if replays[i].stored:
            writes.event_updates.append(
                {
                    "b_id": replays[i].event.event_id,
                    "b_outcome": SUPERSEDED,
                    "b_code": results[i].code,
                    "b_lease": None,
                }
            )
    _write(conn, writes, now)
    return [results[i] for i in range(len(replays))]
