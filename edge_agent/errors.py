"""Errors of the edge agent; each has a stable code and a message an operator can act on."""

from __future__ import annotations

from protocol import errors as _P
from protocol.errors import CodedError


class EdgeError(CodedError):
    """Something the agent cannot do; `code` is stable, `message` says what to do."""


class CentralUnreachable(EdgeError):
    """The central registry did not answer (network down, timeout, 5xx): try again later."""

    def __init__(self, message: str) -> None:
        super().__init__(ERR_CENTRAL_UNREACHABLE, message)


class CentralRefused(EdgeError):
    """The central registry answered with an error for this request: do not repeat it as is."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(code, message)
        self.status = status


ERR_NOT_ENROLLED = "ERR_NOT_ENROLLED"
ERR_ALREADY_ENROLLED = "ERR_ALREADY_ENROLLED"
ERR_CENTRAL_UNREACHABLE = "ERR_CENTRAL_UNREACHABLE"
ERR_UNKNOWN_WORK_ORDER = "ERR_UNKNOWN_WORK_ORDER"
ERR_POOL_EMPTY = "ERR_POOL_EMPTY"
ERR_CONFIG = "ERR_CONFIG"
# Central named by a plain http:// URL off this machine, without --insecure.
ERR_INSECURE_CENTRAL = "ERR_INSECURE_CENTRAL"
# The agent's database cannot be written: its disk is full, read-only or failing.
ERR_DISK_FULL = "ERR_DISK_FULL"
ERR_STORE_READ_ONLY = "ERR_STORE_READ_ONLY"
ERR_STORE_IO = "ERR_STORE_IO"
ERR_NO_PRINTER = "ERR_NO_PRINTER"
ERR_JOB_UNKNOWN = "ERR_JOB_UNKNOWN"
ERR_REASON = "ERR_REASON"
ERR_NOT_OURS = "ERR_NOT_OURS"
ERR_BUSY = "ERR_BUSY"
# The printer printed labels this agent has no record of (edge_agent.odometer): held.
ERR_PRINTER_ODOMETER = "ERR_PRINTER_ODOMETER"
# The printer is still printing what it holds; its label count is read once it is idle.
ERR_PRINTER_BUSY = "ERR_PRINTER_BUSY"
# The agent keeps no record of that printer.
ERR_PRINTER_UNKNOWN = "ERR_PRINTER_UNKNOWN"
ERR_ALERT_UNKNOWN = "ERR_ALERT_UNKNOWN"
ERR_TOKEN = "ERR_TOKEN"
ERR_UNAUTHORIZED = "ERR_UNAUTHORIZED"
ERR_LINK_TARGET = "ERR_LINK_TARGET"
ERR_JOB_TICKET_UNKNOWN = "ERR_JOB_TICKET_UNKNOWN"
ERR_TOKEN_LINKED = "ERR_TOKEN_LINKED"
ERR_SPAWN_SHORT = "ERR_SPAWN_SHORT"
# Codes both sides act on (defined in protocol.errors), re-exported for the agent's modules.
ERR_AGENT_REVOKED = _P.ERR_AGENT_REVOKED
ERR_CLOCK_SKEW = _P.ERR_CLOCK_SKEW
ERR_WORK_ORDER_COMPLETE = _P.ERR_WORK_ORDER_COMPLETE
ERR_CONTEXT_MISMATCH = _P.ERR_CONTEXT_MISMATCH
