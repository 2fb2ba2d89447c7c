"""Timestamps on the wire: RFC 3339 in UTC with milliseconds, e.g. 2025-11-09T10:00:00.123Z."""

from __future__ import annotations

import datetime as dt

from protocol.errors import ERR_TIMESTAMP, ProtocolError

MIN_YEAR = 1970
MAX_YEAR = 9999


def format_ts(moment: dt.datetime) -> str:
    """Format an aware datetime as UTC with millisecond precision."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    utc = moment.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_ts(text: object) -> dt.datetime:
    """Parse an RFC 3339 timestamp with an offset; naive or malformed input is refused."""
    if not isinstance(text, str) or not 10 <= len(text) <= 40:
        raise ProtocolError(ERR_TIMESTAMP, "a timestamp is RFC 3339 text with a UTC offset")
    try:
        moment = dt.datetime.fromisoformat(text)
        if moment.tzinfo is None:
            raise ProtocolError(ERR_TIMESTAMP, "a timestamp needs a UTC offset (e.g. Z)")
        utc = moment.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        raise ProtocolError(ERR_TIMESTAMP, f"not an RFC 3339 timestamp: {text[:40]!r}") from None
    if not MIN_YEAR <= utc.year <= MAX_YEAR:
        raise ProtocolError(ERR_TIMESTAMP, f"timestamps lie in the years {MIN_YEAR}-{MAX_YEAR}")
    return utc
