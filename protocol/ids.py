"""UUIDv7 event ids (RFC 9562): time-ordered, unique without coordination.

The caller supplies the clock reading and the random bytes, so this stays pure.
"""

from __future__ import annotations

import re

from protocol.errors import ERR_EVENT_ID, ProtocolError

RANDOM_BYTES = 10
_UUID7 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
_RAND_BITS = 74
_RAND_MASK = (1 << _RAND_BITS) - 1


def _format(unix_ms: int, rand74: int) -> str:
    rand_a = rand74 >> 62
    rand_b = rand74 & ((1 << 62) - 1)
    value = (unix_ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def uuid7(unix_ms: int, rand: bytes) -> str:
    """Return a UUIDv7 string for a millisecond timestamp and 10 random bytes."""
    if not 0 <= unix_ms < (1 << 48):
        raise ValueError("unix_ms must fit in 48 bits")
    if len(rand) != RANDOM_BYTES:
        raise ValueError(f"uuid7 needs {RANDOM_BYTES} random bytes")
    return _format(unix_ms, int.from_bytes(rand, "big") & _RAND_MASK)


class Uuid7Sequence:
    """Hand out strictly increasing UUIDv7s, within a millisecond and if the clock steps back."""

    def __init__(self) -> None:
        self._last_ms = -1
        self._last_rand = 0

    def next(self, unix_ms: int, rand: bytes) -> str:
        """Return the next id; `rand` seeds the random bits when the millisecond changes."""
        if unix_ms > self._last_ms:
            self._last_ms = unix_ms
            # Keep the top random bit clear so the counter has room to grow within the ms.
            self._last_rand = int.from_bytes(rand, "big") & (_RAND_MASK >> 1)
        else:
            self._last_rand += 1
            if self._last_rand > _RAND_MASK:
                self._last_ms += 1
                self._last_rand = 0
        return _format(self._last_ms, self._last_rand)


def parse_uuid7(text: object) -> str:
    """Return the canonical (lower-case) form of a UUIDv7 or raise ERR_EVENT_ID."""
    if not isinstance(text, str) or len(text) != 36:
        raise ProtocolError(ERR_EVENT_ID, "an event id is a 36-character UUIDv7")
    canonical = text.lower()
    if not _UUID7.fullmatch(canonical):
        raise ProtocolError(ERR_EVENT_ID, "an event id is a UUIDv7 (version 7, RFC 9562 variant)")
    return canonical


def uuid7_unix_ms(text: str) -> int:
    """Return the millisecond timestamp carried in a UUIDv7."""
    return int(parse_uuid7(text).replace("-", "")[:12], 16)
