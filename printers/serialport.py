"""Print ZPL over a serial line (RS-232 or USB CDC) with pyserial, and ask it `~HS` there.

The port is opened with `serial.serial_for_url`, so device paths (`/dev/ttyUSB0`,
`/dev/serial/by-id/usb-Zebra...`, `COM3`) and pyserial's URL handlers (`socket://HOST:PORT`,
`rfc2217://`, `loop://`, `spy://`, `alt://`, `hwgrep://`) all work; tests run over `loop://`
and over `socket://` to the TCP printer simulator. A serial Zebra answers `~HS` on the same
line with the same three frames as over TCP.

The port is opened on first use and kept, because opening costs more than a label. Before
each call the input the printer sent unasked is dropped, so a late answer is never read as
the next one. A device that vanished (USB unplugged, peer closed the socket) shows up there
or on write: the port is closed, and opened again on the next call, so a printer that comes
back is used without restarting anything. Failures keep the codes of `printers.base`: the
port cannot be opened - ERR_PRINTER_UNREACHABLE, nothing written; a write fails or times
out - ERR_PRINTER_IO; silence to `~HS` - ERR_PRINTER_NO_ANSWER; garbage - ERR_PRINTER_STATUS.
The label odometer is asked on the same line (`query_odometer`, see `printers.odometer`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import serial  # type: ignore[import-untyped]

from printers import errors as E
from printers.base import PrinterTransport
from printers.errors import PrinterError
from printers.odometer import (
    LABEL_COUNT_REQUEST,
    NO_ANSWER,
    LabelOdometer,
    parse_label_count,
    read_label_count,
)
from printers.status import MAX_STATUS_BYTES, PrinterStatus, parse_host_status, read_host_status
from printers.tcp import HOST_STATUS_REQUEST

# Unasked input beyond this many reads means the line is noise; printing goes ahead anyway.
_MAX_UNASKED_READS = 16
# Reads wait at most this long each; the status deadline is kept by looping, because
# changing a real port's timeout reconfigures the line (tcsetattr) every time.
_POLL_SECONDS = 0.05


def _port_errors() -> tuple[type[BaseException], ...]:
    """Return what a port operation may raise; termios.error is no OSError, and POSIX only."""
    try:
        from termios import error
    except ImportError:  # Windows
        return (serial.SerialException, OSError)
    return (serial.SerialException, OSError, error)


_PORT_ERRORS = _port_errors()


@dataclass(frozen=True, slots=True)
class SerialSettings:
    """Line settings of a serial printer (Zebra's factory default is 9600 8N1, no handshake)."""

    baudrate: int = 9600
    bytesize: int = 8
    parity: str = "N"
    stopbits: float = 1
    rtscts: bool = False
    xonxoff: bool = False


class SerialPrinter(PrinterTransport):
    """A ZPL printer on a serial line, or on anything pyserial opens by URL."""

    format = "zpl"
    # A serial line has no connection to drop: a format cut off by a failed write stays in
    # the printer's buffer and would swallow the start of the next one.
    partial_write_discarded = False

    def __init__(
        self,
        port: str,
        settings: SerialSettings = SerialSettings(),
        url: str | None = None,
        connect_timeout: float = 2.0,
        status_timeout: float = 2.0,
        write_timeout: float = 10.0,
    ) -> None:
        for name, value in (
            ("connect_timeout", connect_timeout),
            ("status_timeout", status_timeout),
            ("write_timeout", write_timeout),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds")
        self.port = port
        self.settings = settings
        self.url = url if url is not None else f"{port}?baud={settings.baudrate}"
        # Opening a device or pyserial's socket:// has its own bound; kept for a uniform API.
        self.connect_timeout = connect_timeout
        self.status_timeout = status_timeout
        # A printer out of media stops reading; without a bound, a write would wait forever.
        self.write_timeout = write_timeout
        self._port: Any = None
        self._lock = threading.Lock()

    @property
    def serial_port(self) -> Any:
        """Return the open pyserial port, or None; for diagnostics and loop:// tests."""
        return self._port

    def send(self, data: bytes, job_name: str) -> None:
        """Write one format to the printer; `job_name` is not used on a serial line."""
        with self._lock:
            port = self._connection()
            try:
                port.write(data)
                port.flush()
            except _PORT_ERRORS as exc:
                self._drop()
                raise PrinterError(
                    E.ERR_PRINTER_IO,
                    f"Sending a label to the printer at {self.url} broke off ({exc}); part of "
                    "it may wait in the printer: check the printer before printing it again.",
                ) from exc

    def query_status(self) -> PrinterStatus:
        """Ask the printer for its host status with `~HS` and parse the answer."""
        with self._lock:
            port = self._connection()
            try:
                port.write(HOST_STATUS_REQUEST)
                port.flush()
                return parse_host_status(self._read_answer(port))
            except PrinterError:
                # A late or half-read answer must not be taken for the next one.
                self._drop()
                raise
            except _PORT_ERRORS as exc:
                self._drop()
                raise PrinterError(
                    E.ERR_PRINTER_IO,
                    f"The line to the printer at {self.url} broke while asking its status "
                    f"({exc}); check the cable or USB connection and try again.",
                ) from exc

    def query_odometer(self) -> LabelOdometer:
        """Ask the printer for its lifetime label count (Set-Get-Do getvar) and parse it."""
        with self._lock:
            port = self._connection()
            try:
                port.write(LABEL_COUNT_REQUEST)
                port.flush()
                answer = read_label_count(_reader(port), self.status_timeout, self.url)
                if answer is None:
                    # No Set-Get-Do on this printer; reopening clears a late answer away.
                    self._drop()
                    return LabelOdometer(None, NO_ANSWER)
                return parse_label_count(answer)
            except PrinterError:
                self._drop()
                raise
            except _PORT_ERRORS as exc:
                self._drop()
                raise PrinterError(
                    E.ERR_PRINTER_IO,
                    f"The line to the printer at {self.url} broke while asking its label count "
                    f"({exc}); check the cable or USB connection and try again.",
                ) from exc

    def close(self) -> None:
        """Close the port, if it is open."""
        with self._lock:
            self._drop()

    def _read_answer(self, port: Any) -> bytes:
        """Read the printer's whole status answer from the line."""
        return read_host_status(
            _reader(port), self.status_timeout, self.url, ", and the cable and baud rate"
        )

    def _connection(self) -> Any:
        """Return the open port, opening it if there is none or the old one vanished."""
        if self._port is not None:
            try:
                _discard_unasked(self._port)
                return self._port
            except _PORT_ERRORS:
                self._drop()
        settings = self.settings
        try:
            # A device path is opened exclusively: two processes writing one printer line
            # would interleave formats and read each other's status answers.
            exclusive = {} if "://" in self.port else {"exclusive": True}
            port = serial.serial_for_url(
                self.port,
                **exclusive,
                baudrate=settings.baudrate,
                bytesize=settings.bytesize,
                parity=settings.parity,
                stopbits=settings.stopbits,
                rtscts=settings.rtscts,
                xonxoff=settings.xonxoff,
                timeout=_POLL_SECONDS,
                write_timeout=self.write_timeout,
            )
        except _PORT_ERRORS as exc:
            raise PrinterError(
                E.ERR_PRINTER_UNREACHABLE,
                f"Cannot open the printer at {self.url} ({exc}): check that it is switched "
                "on and plugged in, and that this user may open the port.",
            ) from exc
        except ValueError as exc:
            raise PrinterError(
                E.ERR_PRINTER_URL,
                f"The printer URL {self.url} has settings the port refuses ({exc}).",
            ) from exc
        self._port = port
        try:
            # Whatever waited on the line before we opened it answers nothing of ours.
            port.reset_input_buffer()
        except _PORT_ERRORS:
            self._drop()
            raise PrinterError(
                E.ERR_PRINTER_UNREACHABLE,
                f"The printer at {self.url} went away right after the port was opened.",
            ) from None
        return port

    def _drop(self) -> None:
        """Close the port so the next call opens it afresh."""
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except _PORT_ERRORS:
                pass  # the device is gone; there is nothing left to release


def _reader(port: Any) -> Callable[[float, int], bytes | None]:
    """Return a read function for the answer readers; b"" means nothing yet, keep waiting."""

    def read(remaining: float, most: int) -> bytes | None:
        chunk: bytes = port.read(1)  # waits up to the port's short poll timeout
        if not chunk:
            return b""  # nothing yet: the answer reader keeps the time
        waiting = min(int(port.in_waiting), most - 1)
        return chunk + port.read(waiting) if waiting > 0 else chunk

    return read


def _discard_unasked(port: Any) -> None:
    """Drop input the printer sent unasked; raise SerialException if the line is gone."""
    for _ in range(_MAX_UNASKED_READS):
        waiting = int(port.in_waiting)
        if not waiting:
            return
        # On socket:// a closed peer reads as ready and then raises "socket disconnected".
        port.read(min(waiting, MAX_STATUS_BYTES))
