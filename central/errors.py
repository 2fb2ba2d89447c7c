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
ERR_WORK_ORDER_CLOSED = "ERR_WORK_ORDER_CLOSED"
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
# ERP sync (issue #9; central/erp.py). Per record: the record is refused, the feed goes on.
ERR_ERP_FIELD = "ERR_ERP_FIELD"  # a field is missing or malformed
ERR_ERP_GTIN = "ERR_ERP_GTIN"
ERR_ERP_PRODUCT_UNKNOWN = "ERR_ERP_PRODUCT_UNKNOWN"
ERR_ERP_PRODUCT_MISMATCH = "ERR_ERP_PRODUCT_MISMATCH"
ERR_ERP_QUANTITY = "ERR_ERP_QUANTITY"
ERR_ERP_DUPLICATE = "ERR_ERP_DUPLICATE"
# Conflicts: the record is valid but the registry keeps what it has, and says so.
ERR_ERP_MANUAL_ORDER = "ERR_ERP_MANUAL_ORDER"
ERR_ERP_MANUAL_VALUE = "ERR_ERP_MANUAL_VALUE"
ERR_ERP_CLOSED = "ERR_ERP_CLOSED"
ERR_ERP_PRODUCT_CHANGED = "ERR_ERP_PRODUCT_CHANGED"
# The feed as a whole (file or pull) could not be read.
ERR_ERP_FORMAT = "ERR_ERP_FORMAT"
ERR_ERP_TOO_LARGE = "ERR_ERP_TOO_LARGE"
ERR_ERP_NOT_CONFIGURED = "ERR_ERP_NOT_CONFIGURED"

# ... and for a pull (central/erp_pull.py)
ERR_ERP_UNAVAILABLE = "ERR_ERP_UNAVAILABLE"  # timeouts, connection errors, 5xx (after retries)
ERR_ERP_REFUSED = "ERR_ERP_REFUSED"  # a 4xx answer (bad token, wrong URL)
ERR_ERP_FOREIGN_URL = "ERR_ERP_FOREIGN_URL"  # `next` or a redirect to another host
ERR_ERP_DEADLINE = "ERR_ERP_DEADLINE"
ERR_ERP_STOPPED = "ERR_ERP_STOPPED"
# issue #9: generation tasks (central.gentasks) and GS1-native serial formats.
ERR_WORK_ORDER_CLOSED = "ERR_WORK_ORDER_CLOSED"
ERR_NOT_PREGENERATED = "ERR_NOT_PREGENERATED"
ERR_SERIAL_FORMAT = "ERR_SERIAL_FORMAT"
ERR_SERIAL_ALPHABET = "ERR_SERIAL_ALPHABET"
ERR_SERIAL_SPACE = "ERR_SERIAL_SPACE"
ERR_SSCC_SOURCE = "ERR_SSCC_SOURCE"
ERR_SSCC_EXHAUSTED = "ERR_SSCC_EXHAUSTED"
ERR_TASK_UNKNOWN = "ERR_TASK_UNKNOWN"
ERR_TASK_FINISHED = "ERR_TASK_FINISHED"
ERR_OVER_ALLOWANCE = "ERR_OVER_ALLOWANCE"  # more serials than the work order may consume
ERR_TASK_ACTIVE = "ERR_TASK_ACTIVE"  # another target while a task of that kind is active
