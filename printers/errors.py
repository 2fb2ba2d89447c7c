"""Errors raised by label printing, each with a stable code and a message an operator can act on.

Codes are part of the interface: the edge agent shows the message on the operator page and
decides from the code whether a label may be sent again. The delivery meaning of the transport
codes is written down in `printers.base`.
"""

from __future__ import annotations

from protocol.errors import CodedError

# The printer URL in the configuration is malformed or names an unsupported back end.
ERR_PRINTER_URL = "ERR_PRINTER_URL"
# No connection could be made (refused, timed out, unresolvable): nothing was written.
ERR_PRINTER_UNREACHABLE = "ERR_PRINTER_UNREACHABLE"
# Connected, but the printer stayed silent to ~HS; Zebra printers do that with media out or
# the head open, so it is treated as a fault, not as a slow network.
ERR_PRINTER_NO_ANSWER = "ERR_PRINTER_NO_ANSWER"
# Faults the printer reported itself in its ~HS answer.
ERR_PRINTER_PAPER_OUT = "ERR_PRINTER_PAPER_OUT"
ERR_PRINTER_HEAD_OPEN = "ERR_PRINTER_HEAD_OPEN"
ERR_PRINTER_PAUSED = "ERR_PRINTER_PAUSED"
ERR_PRINTER_RIBBON_OUT = "ERR_PRINTER_RIBBON_OUT"
ERR_PRINTER_BUFFER_FULL = "ERR_PRINTER_BUFFER_FULL"
# The printer answered ~HS with something that is not a host status.
ERR_PRINTER_STATUS = "ERR_PRINTER_STATUS"
# The printer answered the label odometer query (`printers.odometer`) with something that is
# not a label count.
ERR_PRINTER_ODOMETER_ANSWER = "ERR_PRINTER_ODOMETER_ANSWER"
# A spool folder (file:///DIR, pdf:///DIR) does not exist and the URL did not ask to create
# it (`?create=1`): a mistyped path must not become a folder nobody watches.
ERR_PRINTER_NO_DIR = "ERR_PRINTER_NO_DIR"
# A write broke off, the connection was reset, or the spool file system failed.
ERR_PRINTER_IO = "ERR_PRINTER_IO"
# A label template has a wrong type or an out-of-range value.
ERR_LABEL_TEMPLATE = "ERR_LABEL_TEMPLATE"
# The data for one label cannot be printed faithfully (serial or verify URL unusable).
ERR_LABEL_DATA = "ERR_LABEL_DATA"
# A ZPL format cannot be read back: malformed, beyond the size limits, or outside the subset
# of ZPL II that `printers.zplrender` understands.
ERR_ZPL = "ERR_ZPL"


class PrinterError(CodedError):
    """A printer, transport or label problem; `code` says which, `message` says what to do."""


class TemplateError(PrinterError, ValueError):
    """A label template setting has the wrong type or is out of range."""

    def __init__(self, message: str) -> None:
        super().__init__(ERR_LABEL_TEMPLATE, message)


class LabelError(PrinterError, ValueError):
    """The data of one label cannot be printed as given."""

    def __init__(self, message: str) -> None:
        super().__init__(ERR_LABEL_DATA, message)


class ZplError(PrinterError, ValueError):
    """A ZPL format is malformed, too large, or uses a command the reader does not support."""

    def __init__(self, message: str) -> None:
        super().__init__(ERR_ZPL, message)
