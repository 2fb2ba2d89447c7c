"""Small, strict readers for JSON objects; every failure is ERR_SCHEMA naming the field."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from protocol.errors import ERR_JSON, ERR_SCHEMA, ERR_SCHEMA_VERSION, ERR_TOO_LARGE, ProtocolError

SCHEMA_VERSION = 1
MAX_STRING = 256
MAX_DATA_KEYS = 32
MAX_KEY = 64


def loads(raw: bytes | str, max_bytes: int) -> Any:
    """Decode JSON text, refusing anything larger than `max_bytes` or not UTF-8 JSON."""
    if len(raw) > max_bytes:
        raise ProtocolError(ERR_TOO_LARGE, f"the body is larger than {max_bytes} bytes")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise ProtocolError(ERR_JSON, "the body is not valid UTF-8 JSON") from None


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
