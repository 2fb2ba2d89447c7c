"""Small, strict readers for JSON objects; every failure is ERR_SCHEMA naming the field."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from protocol.errors import (
    ERR_JSON,
    ERR_JSON_NONFINITE,
    ERR_NUL_CHARACTER,
    ERR_SCHEMA,
    ERR_SCHEMA_VERSION,
    ERR_TOO_LARGE,
    ProtocolError,
)

SCHEMA_VERSION = 1
MAX_STRING = 256
MAX_DATA_KEYS = 32
MAX_KEY = 64


# Characters a terminal, log viewer or admin page may act on instead of showing: the C0 and C1
# controls (ESC, CR, LF, TAB, NUL ...), DEL, and the Unicode bidi embeddings, overrides and
# isolates that make text read differently from how it is stored ("Trojan Source").
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


_SURROGATE = re.compile("[\ud800-\udfff]")


def _nonfinite(name: str) -> Any:
    raise ProtocolError(
        ERR_JSON_NONFINITE, f"{name} is not a JSON number; send finite numbers only"
    )


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e999: a literal too large for a double
        raise ProtocolError(ERR_JSON_NONFINITE, f"{text[:32]} is too large; send finite numbers")
    return value


def _refuse_nul(value: Any) -> None:
    """Raise if any string (key or value) of a decoded document holds NUL or a lone surrogate."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise ProtocolError(
                    ERR_NUL_CHARACTER, "the body holds a NUL character (\\u0000); remove it"
                )
            if _SURROGATE.search(item):  # "\\ud800" alone: no UTF-8 text can hold it
                raise ProtocolError(ERR_JSON, "the body holds a lone UTF-16 surrogate escape")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _may_hold_nul(raw: bytes | str) -> bool:
    """Tell whether a decoded document could hold NUL or a lone surrogate (else skip the walk).

    The decoder refuses raw control characters inside strings, so NUL can only come from a
    `\\u0000` escape, and a lone surrogate from a `\\uD800`-style escape or, in bytes, from
    its raw UTF-8-like form (lead byte 0xED, which the decoder's `surrogatepass` lets through;
    other encodings the decoder detects are always walked).
    A body with no `\\u` escape and no 0xED byte holds neither: an event batch of 1,000 events
    has about 12,000 strings to walk otherwise.
    """
    if isinstance(raw, bytes | bytearray):
        if json.detect_encoding(raw) not in ("utf-8", "utf-8-sig"):
            return True  # UTF-16 or UTF-32: the escapes above look different; walk
        return b"\\u" in raw or b"\xed" in raw
    return "\\u" in raw or _SURROGATE.search(raw) is not None


def loads(raw: bytes | str, max_bytes: int) -> Any:
    """Decode JSON text, refusing anything larger than `max_bytes` or not UTF-8 JSON.

    Python's decoder takes `NaN`, `Infinity` and `-Infinity`, which JSON does not have
    (ERR_JSON_NONFINITE), and strings holding `\\u0000`, which PostgreSQL cannot store and
    no label holds (ERR_NUL_CHARACTER).
    """
    if len(raw) > max_bytes:
        raise ProtocolError(ERR_TOO_LARGE, f"the body is larger than {max_bytes} bytes")
    try:
        value = json.loads(raw, parse_constant=_nonfinite, parse_float=_finite_float)
    except ProtocolError:
        raise
    except (ValueError, RecursionError):
        raise ProtocolError(ERR_JSON, "the body is not valid UTF-8 JSON") from None
    if _may_hold_nul(raw):
        _refuse_nul(value)
    return value


def unsafe_character(text: str) -> str | None:
    """Return the first control or bidi-override character of `text` as `U+XXXX`, or None."""
    found = _UNSAFE.search(text)
    return None if found is None else f"U+{ord(found.group()):04X}"


def obj(value: object, where: str = "body") -> Mapping[str, Any]:
    """Return `value` if it is a JSON object."""
    if not isinstance(value, Mapping):
        raise ProtocolError(ERR_SCHEMA, f"{where} must be a JSON object")
    return value


def version(o: Mapping[str, Any]) -> int:
    """Check the schema version field `v` (absent means 1)."""
    v = o.get("v", SCHEMA_VERSION)
    if v != SCHEMA_VERSION or isinstance(v, bool):
        raise ProtocolError(ERR_SCHEMA_VERSION, f"schema version {v!r} is not supported (use 1)")
    return SCHEMA_VERSION


def string(
    o: Mapping[str, Any], name: str, *, max_len: int = MAX_STRING, optional: bool = False
) -> Any:
    """Read a non-empty string field."""
    value = o.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise ProtocolError(ERR_SCHEMA, f"{name} must be a non-empty string")
    if len(value) > max_len:
        raise ProtocolError(ERR_SCHEMA, f"{name} is longer than {max_len} characters")
    if not value.isprintable():
        raise ProtocolError(ERR_SCHEMA, f"{name} holds control characters")
    return value


def integer(o: Mapping[str, Any], name: str, *, lo: int, hi: int, optional: bool = False) -> Any:
    """Read an integer field within [lo, hi]."""
    value = o.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ProtocolError(ERR_SCHEMA, f"{name} must be an integer from {lo} to {hi}")
    return value


def flat_data(value: object, name: str = "data") -> dict[str, str | int | float | bool | None]:
    """Read a small flat object of scalars (the free-form part of an event)."""
    if value is None:
        return {}
    o = obj(value, name)
    if len(o) > MAX_DATA_KEYS:
        raise ProtocolError(ERR_SCHEMA, f"{name} has more than {MAX_DATA_KEYS} keys")
    out: dict[str, str | int | float | bool | None] = {}
    for key, item in o.items():
        if not isinstance(key, str) or not key or len(key) > MAX_KEY or not key.isprintable():
            raise ProtocolError(ERR_SCHEMA, f"{name} keys are 1-{MAX_KEY} printable characters")
        if isinstance(item, str):
            if len(item) > MAX_STRING:
                raise ProtocolError(ERR_SCHEMA, f"{name}.{key} is longer than {MAX_STRING}")
            if "\x00" in item:
                raise ProtocolError(ERR_SCHEMA, f"{name}.{key} holds a NUL character")
        elif isinstance(item, float):
            if item != item or item in (float("inf"), float("-inf")):
                raise ProtocolError(ERR_SCHEMA, f"{name}.{key} is not a finite number")
        elif not (item is None or isinstance(item, (bool, int))):
            raise ProtocolError(ERR_SCHEMA, f"{name}.{key} must be a string, number, bool or null")
        out[key] = item
    return out
