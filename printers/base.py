"""The interface every printer back end implements, and what its errors promise.

Delivery contract of `PrinterTransport.send(data, job_name)`:

- Returning normally means the back end has accepted the whole format: a file back end has
  it durably in the spool directory; the TCP back end has handed every byte to a connection
  that showed no error. TCP cannot prove the printer read the bytes; a caller that must know
  asks `query_status()` next, because a printer answers `~HS` only after reading everything
  sent before it on the same connection.
- `PrinterError` with code `ERR_PRINTER_UNREACHABLE` means nothing of this format was
  written: sending it again cannot print it twice.
- `PrinterError` with code `ERR_PRINTER_IO` means the write broke off part way. The back end
  closes the connection, and a printer discards a `^XA...^XZ` format cut short by a closed
  connection, so sending it again is also safe.
- `PrinterError` with code `ERR_LABEL_DATA` means the data is not in the transport's
  `format` (a PDF spool given ZPL): a bug in the caller; nothing was written.
- No other error leaves `send`.

`format` says what a transport takes: "zpl" (ZPL II printers over TCP or a serial line, and
ZPL spool directories) or "pdf" (PDF spool directories); render with
`printers.render.render_label(label, template, transport.format)`.

`query_status()` returns the printer's `PrinterStatus` or raises `PrinterError`: unreachable,
`ERR_PRINTER_NO_ANSWER` when the printer stays silent (a fault in itself), `ERR_PRINTER_STATUS`
when the answer is garbage, `ERR_PRINTER_IO` when the connection breaks.

`query_odometer()` returns the printer's `LabelOdometer` (`printers.odometer`): its lifetime
label count, or no count and why (`unsupported`: the printer answered "?"; `no_answer`: it
said nothing, as a ZPL printer without Set-Get-Do does; `spool`: a spool directory). Silence is
no error here, because `query_status()` has just shown whether the printer is there. It raises
`PrinterError`: unreachable, `ERR_PRINTER_ODOMETER_ANSWER` when the answer is garbage,
`ERR_PRINTER_IO` when the connection breaks.

A transport keeps one connection open between calls, because connecting per label costs more
than printing it, and reconnects lazily when the printer dropped it. A transport object may be
shared between threads: calls are serialised.
"""

from __future__ import annotations

import abc
from types import TracebackType
from typing import Self

from printers.odometer import LabelOdometer
from printers.status import PrinterStatus


class PrinterTransport(abc.ABC):
    """A way to get labels to one printer and to ask it how it is."""

    url: str
    # True when a write that broke off leaves no partial format behind (the printer drops a
    # format cut short by a closed connection), so ERR_PRINTER_IO may be retried.
    partial_write_discarded: bool = True
    # What `send` takes: "zpl" or "pdf" (one of printers.render.RENDER_FORMATS).
    format: str = "zpl"

    @abc.abstractmethod
    def send(self, data: bytes, job_name: str) -> None:
        """Deliver one complete format; `job_name` names the spool file where there is one."""

    @abc.abstractmethod
    def query_status(self) -> PrinterStatus:
        """Return the printer's current status, or raise PrinterError saying why not."""

    @abc.abstractmethod
    def query_odometer(self) -> LabelOdometer:
        """Return the printer's lifetime label count, or why it has none."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connection, if any; a later call opens a new one."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"
