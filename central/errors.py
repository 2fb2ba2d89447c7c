"""Errors of the central registry; each has a stable code and an HTTP status."""

from __future__ import annotations

from typing import Any

from protocol.errors import CodedError


class CentralError(CodedError):
    """A request or command cannot be carried out; the message says what to do instead."""

    status = 400

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(code, message)
        if status is not None:
            self.status = status


class NotFound(CentralError):
    """The thing asked for does not exist."""

    status = 404


class Conflict(CentralError):
    """The request clashes with what is already recorded."""

    status = 409


class Unauthorized(CentralError):
    """The caller did not prove who it is."""

    status = 401


class Unavailable(CentralError):
    """A transient failure: retry later."""

    status = 503


class ValidationFailed(CentralError):
    """A document has problems in named fields; `details` maps each field to its messages."""

    status = 400

    def __init__(self, message: str, details: dict[str, list[str]]) -> None:
        super().__init__(ERR_VALIDATION, message)
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """Return the error body with its field details."""
        return {**super().to_dict(), "details": self.details}


ERR_VALIDATION = "ERR_VALIDATION"
ERR_UNAUTHORIZED = "ERR_UNAUTHORIZED"
ERR_AGENT_REVOKED = "ERR_AGENT_REVOKED"
ERR_ENROLL_CODE = "ERR_ENROLL_CODE"
ERR_TENANT_UNKNOWN = "ERR_TENANT_UNKNOWN"
ERR_TENANT_EXISTS = "ERR_TENANT_EXISTS"
ERR_PRODUCT_UNKNOWN = "ERR_PRODUCT_UNKNOWN"
ERR_PRODUCT_EXISTS = "ERR_PRODUCT_EXISTS"
ERR_WORK_ORDER_EXISTS = "ERR_WORK_ORDER_EXISTS"
ERR_WORK_ORDER_UNKNOWN = "ERR_WORK_ORDER_UNKNOWN"
ERR_WORK_ORDER_PRODUCT = "ERR_WORK_ORDER_PRODUCT"
ERR_EVENT_TIME_RANGE = "ERR_EVENT_TIME_RANGE"
ERR_TEMPLATE_UNKNOWN = "ERR_TEMPLATE_UNKNOWN"
ERR_INVALID = "ERR_INVALID"
ERR_SCOPE_FOREIGN = "ERR_SCOPE_FOREIGN"
ERR_SCOPE_TYPE = "ERR_SCOPE_TYPE"
ERR_SCOPE_CATEGORY = "ERR_SCOPE_CATEGORY"
ERR_SCOPE_DATE = "ERR_SCOPE_DATE"
ERR_SCOPE_EXHAUSTED = "ERR_SCOPE_EXHAUSTED"
ERR_LEASE_UNKNOWN = "ERR_LEASE_UNKNOWN"
ERR_LEASE_RETURNED = "ERR_LEASE_RETURNED"
ERR_OUTSIDE_LEASE = "ERR_OUTSIDE_LEASE"
ERR_DUPLICATE_SERIAL = "ERR_DUPLICATE_SERIAL"
ERR_KEYRING = "ERR_KEYRING"
ERR_KEY_UNAVAILABLE = "ERR_KEY_UNAVAILABLE"
ERR_DATABASE = "ERR_DATABASE"
ERR_RATE_LIMITED = "ERR_RATE_LIMITED"
ERR_TOO_LARGE = "ERR_TOO_LARGE"
ERR_UNSUPPORTED_MEDIA_TYPE = "ERR_UNSUPPORTED_MEDIA_TYPE"
ERR_NOT_FOUND = "ERR_NOT_FOUND"
ERR_METHOD = "ERR_METHOD_NOT_ALLOWED"
ERR_INTERNAL = "ERR_INTERNAL"
ERR_FORBIDDEN = "ERR_FORBIDDEN"
ERR_AGENT_UNKNOWN = "ERR_AGENT_UNKNOWN"
ERR_LEASE_CAP = "ERR_LEASE_CAP"
ERR_LEASE_EXPIRED = "ERR_LEASE_EXPIRED"
ERR_CLOCK_SKEW = "ERR_CLOCK_SKEW"
ERR_WORK_ORDER_COMPLETE = "ERR_WORK_ORDER_COMPLETE"
ERR_QUARANTINE_UNKNOWN = "ERR_QUARANTINE_UNKNOWN"
ERR_QUARANTINE_RESOLVED = "ERR_QUARANTINE_RESOLVED"
ERR_SERIAL_UNKNOWN = "ERR_SERIAL_UNKNOWN"
ERR_FACTS_LOST = "ERR_FACTS_LOST"
ERR_ORPHANED = "ERR_ORPHANED"
ERR_LINK_MISMATCH = "ERR_LINK_MISMATCH"
ERR_SERIAL_RETIRED = "ERR_SERIAL_RETIRED"
ERR_JOB_UNKNOWN = "ERR_JOB_UNKNOWN"
ERR_JOB_BUSY = "ERR_JOB_BUSY"
ERR_JOB_STOPPED = "ERR_JOB_STOPPED"
ERR_JOB_ABANDONED = "ERR_JOB_ABANDONED"
ERR_JOB_LOCK_LOST = "ERR_JOB_LOCK_LOST"
ERR_JOB_FAILED = "ERR_JOB_FAILED"
# Consistency checker findings that are not quarantine reasons of their own.
ERR_LEASE_ACCOUNTING = "ERR_LEASE_ACCOUNTING"
ERR_AGENT_SILENT = "ERR_AGENT_SILENT"
ERR_NOT_INITIALISED = "ERR_NOT_INITIALISED"
