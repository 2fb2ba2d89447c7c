"""UTC helpers: the store keeps UTC; SQLite hands back naive datetimes that are UTC."""

from __future__ import annotations

import datetime as dt
import os
import zoneinfo

from protocol.ids import uuid7


def utcnow() -> dt.datetime:
    """Return the current time, aware, in UTC."""
    return dt.datetime.now(dt.UTC)


def as_utc(moment: dt.datetime | None) -> dt.datetime | None:
    """Return `moment` as an aware UTC datetime (naive values are taken as UTC)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def new_id(now: dt.datetime | None = None) -> str:
    """Return a fresh UUIDv7 for an agent, lease or request."""
    moment = now or utcnow()
    return uuid7(int(moment.timestamp() * 1000), os.urandom(10))


def zone(name: str) -> zoneinfo.ZoneInfo:
    """Return the IANA time zone of a plant."""
    return zoneinfo.ZoneInfo(name)
