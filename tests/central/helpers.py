"""Small builders for edge API bodies used by the central tests."""

from __future__ import annotations

import datetime as dt
import os
import time
from typing import Any

from protocol.events import Event
from protocol.ids import uuid7
from protocol.keys import lease_key_from_hex
from protocol.messages import LeaseGrant
from protocol.serials import Scope, render
from protocol.timefmt import format_ts


def new_id() -> str:
    return uuid7(time.time_ns() // 1_000_000, os.urandom(10))


def lease(
    client: Any, headers: dict[str, str], scope: str, size: int, request_id: str | None = None
) -> Any:
    return client.post(
        "/api/edge/v1/leases",
        headers=headers,
        json={"v": 1, "request_id": request_id or new_id(), "scope": scope, "size": size},
    )


def grant(client: Any, headers: dict[str, str], scope: str, size: int) -> LeaseGrant:
    resp = lease(client, headers, scope, size)
    assert resp.status_code == 200, resp.json
    return LeaseGrant.from_dict(resp.json["leases"][0])


def serial_of(g: LeaseGrant, seq: int) -> str:
    return render(g.scope, seq, g.key)


def event(
    etype: str,
    serial: str,
    lease_id: str | None = None,
    work_order: str | None = None,
    data: dict[str, Any] | None = None,
) -> Event:
    return Event(
        new_id(),
        etype,
        serial,
        format_ts(dt.datetime.now(dt.UTC)),
        lease_id,
        work_order,
        data or {},
    )


def push(client: Any, headers: dict[str, str], events: list[Event]) -> list[dict[str, Any]]:
    resp = client.post(
        "/api/edge/v1/events",
        headers=headers,
        json={"v": 1, "events": [e.to_dict() for e in events]},
    )
    assert resp.status_code == 200, resp.json
    results: list[dict[str, Any]] = resp.json["results"]
    return results


def forged(scope: Scope, seq: int) -> str:
    return render(scope, seq, lease_key_from_hex("00" * 32))
