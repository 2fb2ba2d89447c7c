"""Errors raised by pure protocol code, each with a stable code."""

from __future__ import annotations

# Serial format errors (parsing and validation of a serial code).
ERR_SERIAL_EMPTY = "ERR_SERIAL_EMPTY"
ERR_SERIAL_LENGTH = "ERR_SERIAL_LENGTH"
ERR_SERIAL_CHARS = "ERR_SERIAL_CHARS"
ERR_SERIAL_SYNTAX = "ERR_SERIAL_SYNTAX"
ERR_SERIAL_DATE = "ERR_SERIAL_DATE"
ERR_SERIAL_SEQ = "ERR_SERIAL_SEQ"
ERR_SERIAL_CHECK = "ERR_SERIAL_CHECK"
ERR_SERIAL_MAC = "ERR_SERIAL_MAC"

# Scope and key errors.
ERR_SCOPE_INVALID = "ERR_SCOPE_INVALID"
ERR_KEY_INVALID = "ERR_KEY_INVALID"

# Message and event schema errors.
ERR_JSON = "ERR_JSON"
ERR_JSON_NONFINITE = "ERR_JSON_NONFINITE"
ERR_NUL_CHARACTER = "ERR_NUL_CHARACTER"
ERR_CONTROL_CHARACTER = "ERR_CONTROL_CHARACTER"
ERR_SCHEMA = "ERR_SCHEMA"
ERR_SCHEMA_VERSION = "ERR_SCHEMA_VERSION"
ERR_EVENT_ID = "ERR_EVENT_ID"
ERR_EVENT_TYPE = "ERR_EVENT_TYPE"
ERR_TIMESTAMP = "ERR_TIMESTAMP"
ERR_BATCH_TOO_LARGE = "ERR_BATCH_TOO_LARGE"
ERR_TOO_LARGE = "ERR_TOO_LARGE"

# Edge-central rules both sides act on.
ERR_AGENT_REVOKED = "ERR_AGENT_REVOKED"
ERR_LEASE_CAP = "ERR_LEASE_CAP"
ERR_LEASE_EXPIRED = "ERR_LEASE_EXPIRED"
ERR_CLOCK_SKEW = "ERR_CLOCK_SKEW"
ERR_WORK_ORDER_COMPLETE = "ERR_WORK_ORDER_COMPLETE"

# Lifecycle and context rules.
ERR_ILLEGAL_TRANSITION = "ERR_ILLEGAL_TRANSITION"
ERR_CONTEXT_MISMATCH = "ERR_CONTEXT_MISMATCH"


class CodedError(Exception):
    """The base of every LineLedger error: a stable `code` and a `message` to act on.

    Each package has its own subclass (ProtocolError, PrinterError, EdgeError, CentralError);
    they share this shape so every layer can show any of them the same way.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    def to_dict(self) -> dict[str, str]:
        """Return the error as the body of the one JSON error shape."""
        return {"code": self.code, "message": self.message}


class ProtocolError(CodedError, ValueError):
    """Input broke a protocol rule; `code` says which, `message` says what to do."""


def error_body(code: str, message: str) -> dict[str, object]:
    """Return the JSON error shape every LineLedger API answers with."""
    return {"ok": False, "error": {"code": code, "message": message}}
