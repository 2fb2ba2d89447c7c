"""Events: the facts an edge agent records about a label, and the batches that carry them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii
from typing import Any

from protocol import schema
from protocol.errors import (
    ERR_BATCH_TOO_LARGE,
    ERR_EVENT_TYPE,
    ERR_SCHEMA,
    ProtocolError,
)
from protocol.ids import parse_uuid7
from protocol.lifecycle import EVENT_TYPES
from protocol.timefmt import format_ts, parse_ts

MAX_BATCH = 1000
MAX_SERIAL_FIELD = 64

ACCEPTED = "accepted"
DUPLICATE = "duplicate"
QUARANTINED = "quarantined"
REJECTED = "rejected"
RETRY = "retry"
RESULT_STATUSES = (ACCEPTED, DUPLICATE, QUARANTINED, REJECTED, RETRY)

# What json.dumps (ensure_ascii, the default) writes for a string, and for the version field.
_json_str = encode_basestring_ascii
_VERSION_FIELD = ',"v":' + json.dumps(schema.SCHEMA_VERSION)


@dataclass(frozen=True, slots=True)
class Event:
    """One fact about one serial, identified end to end by its UUIDv7 `event_id`."""

    event_id: str
    type: str
    serial: str
    occurred_at: str
    lease_id: str | None = None
    work_order: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the wire form (schema version 1)."""
        out: dict[str, Any] = {
            "v": schema.SCHEMA_VERSION,
            "event_id": self.event_id,
            "type": self.type,
            "serial": self.serial,
            "occurred_at": self.occurred_at,
        }
        if self.lease_id is not None:
            out["lease_id"] = self.lease_id
        if self.work_order is not None:
            out["work_order"] = self.work_order
        if self.data:
            out["data"] = dict(self.data)
        return out

    def to_json(self) -> str:
        """Return the wire form as compact JSON (keys sorted).

        An event without data (most of them: every `issued` event) is written field by field
        with json's own string encoder, which gives the very text `json.dumps` gives.
        """
        lease_id, work_order = self.lease_id, self.work_order
        if (
            self.data
            or type(self.event_id) is not str
            or type(self.type) is not str
            or type(self.serial) is not str
            or type(self.occurred_at) is not str
            or (lease_id is not None and type(lease_id) is not str)
            or (work_order is not None and type(work_order) is not str)
        ):
            return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True)
        text = '{"event_id":' + _json_str(self.event_id)
        if lease_id is not None:
            text += ',"lease_id":' + _json_str(lease_id)
        text += (
            ',"occurred_at":'
            + _json_str(self.occurred_at)
            + ',"serial":'
            + _json_str(self.serial)
            + ',"type":'
            + _json_str(self.type)
            + _VERSION_FIELD
        )
        if work_order is not None:
            text += ',"work_order":' + _json_str(work_order)
        return text + "}"

    @classmethod
    def from_dict(cls, value: object) -> Event:
        """Validate and decode the wire form."""
        o = schema.obj(value, "event")
        schema.version(o)
        event_id = parse_uuid7(o.get("event_id"))
        etype = o.get("type")
        if etype not in EVENT_TYPES:
            raise ProtocolError(ERR_EVENT_TYPE, f"unknown event type {str(etype)[:32]!r}")
        serial = schema.string(o, "serial", max_len=MAX_SERIAL_FIELD)
        occurred = format_ts(parse_ts(o.get("occurred_at")))
        return cls(
            event_id=event_id,
            type=etype,
            serial=serial,
            occurred_at=occurred,
            lease_id=schema.string(o, "lease_id", max_len=64, optional=True),
            work_order=schema.string(o, "work_order", max_len=64, optional=True),
            data=schema.flat_data(o.get("data")),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Event:
        """Decode one event from JSON text."""
        return cls.from_dict(schema.loads(text, 64 * 1024))


@dataclass(frozen=True, slots=True)
class EventResult:
    """Central's answer about one event of a batch."""

    event_id: str
    status: str
    code: str | None = None
    message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the wire form."""
        out: dict[str, Any] = {"event_id": self.event_id, "status": self.status}
        if self.code:
            out["code"] = self.code
        if self.message:
            out["message"] = self.message
        return out

    @classmethod
    def from_dict(cls, value: object) -> EventResult:
        """Validate and decode the wire form."""
        o = schema.obj(value, "result")
        status = o.get("status")
        if status not in RESULT_STATUSES:
            raise ProtocolError(ERR_SCHEMA, f"unknown result status {str(status)[:32]!r}")
        return cls(
            event_id=schema.string(o, "event_id", max_len=64),
            status=status,
            code=schema.string(o, "code", max_len=64, optional=True),
            message=schema.string(o, "message", max_len=512, optional=True),
        )


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One entry of a decoded batch: the event, or why it could not be decoded."""

    event_id: str
    event: Event | None
    error: ProtocolError | None


def encode_batch(events: list[Event]) -> dict[str, Any]:
    """Return the body of `POST /api/edge/v1/events`."""
    if len(events) > MAX_BATCH:
        raise ProtocolError(ERR_BATCH_TOO_LARGE, f"a batch holds at most {MAX_BATCH} events")
    return {"v": schema.SCHEMA_VERSION, "events": [e.to_dict() for e in events]}


def decode_batch(value: object) -> list[BatchItem]:
    """Decode a batch; a bad event becomes an item with an error, a bad batch raises."""
    o = schema.obj(value, "batch")
    schema.version(o)
    raw_events = o.get("events")
    if not isinstance(raw_events, list):
        raise ProtocolError(ERR_SCHEMA, "events must be a list")
    if len(raw_events) > MAX_BATCH:
        raise ProtocolError(ERR_BATCH_TOO_LARGE, f"a batch holds at most {MAX_BATCH} events")
    items = []
    for raw in raw_events:
        eid = raw.get("event_id") if isinstance(raw, Mapping) else None
        eid = eid[:64] if isinstance(eid, str) else ""
        try:
            event = Event.from_dict(raw)
        except ProtocolError as exc:
            items.append(BatchItem(eid, None, exc))
        else:
            items.append(BatchItem(event.event_id, event, None))
    return items


def decode_results(value: object) -> list[EventResult]:
    """Decode central's answer to a batch."""
    o = schema.obj(value, "response")
    results = o.get("results")
    if not isinstance(results, list) or len(results) > MAX_BATCH:
        raise ProtocolError(ERR_SCHEMA, "results must be a list of at most 1000 entries")
    return [EventResult.from_dict(r) for r in results]
