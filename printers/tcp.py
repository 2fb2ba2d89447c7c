"""Print over raw TCP (port 9100, "JetDirect"), the way network label printers take ZPL.

One connection is kept per `TcpPrinter` and checked before each use: bytes the printer sent
unasked are dropped, and a connection the printer closed is replaced, so a late or stray
answer can never be read as the reply to the next `~HS`. After any error the connection is
closed, so a half-written format is never completed by the bytes of the next one. The label
odometer is asked on the same connection (`query_odometer`, see `printers.odometer`); when the
printer ignores that question the connection is closed too, so its late answer is never read.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

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
from printers.status import (
    MAX_STATUS_BYTES,
    PrinterStatus,
    parse_host_status,
    read_host_status,
)

DEFAULT_PORT = 9100
HOST_STATUS_REQUEST = b"~HS"
# Unasked input beyond this means the peer is not a printer worth talking to.
_MAX_UNASKED_READS = 16


def tcp_url(host: str, port: int) -> str:
    """Return the `tcp://` URL of a printer, bracketing an IPv6 address."""
    return f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}"


class TcpPrinter(PrinterTransport):
    """A ZPL printer reached over a raw TCP connection."""

    format = "zpl"

    def __init__(
        self,
        host: str,
        port: int = DEFAULT_PORT,
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
        self.host = host
        self.port = port
        self.connect_timeout = connect_timeout
        self.status_timeout = status_timeout
        # A printer out of media stops reading; without a bound, sendall would wait forever.
        self.write_timeout = write_timeout
        self.url = tcp_url(host, port)
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    def send(self, data: bytes, job_name: str) -> None:
        """Write one format to the printer; `job_name` is not used over TCP."""
        with self._lock:
            sock = self._connection()
            try:
                sock.settimeout(self.write_timeout)
                sock.sendall(data)
            except OSError as exc:
                self._drop()
                raise PrinterError(
                    E.ERR_PRINTER_IO,
                    f"Sending a label to the printer at {self.url} broke off ({exc}); the "
                    "printer drops a partial label, so print it again.",
                ) from exc

    def query_status(self) -> PrinterStatus:
        """Ask the printer for its host status with `~HS` and parse the answer."""
        with self._lock:
            sock = self._connection()
            try:
                sock.settimeout(self.status_timeout)
                sock.sendall(HOST_STATUS_REQUEST)
                return parse_host_status(self._read_answer(sock))
            except PrinterError:
                # A late or half-read answer must not be taken for the next one.
                self._drop()
                raise
            except OSError as exc:
                self._drop()
                raise PrinterError(
                    E.ERR_PRINTER_IO,
                    f"The connection to the printer at {self.url} broke while asking its "
                    f"status ({exc}); check the network cable and try again.",
                ) from exc

    def close(self) -> None:
        """Close the connection, if one is open."""
        with self._lock:
            self._drop()

    def query_odometer(self) -> LabelOdometer:
        """Ask the printer for its lifetime label count (Set-Get-Do getvar) and parse it."""
        with self._lock:
            sock = self._connection()
            try:
                sock.settimeout(self.status_timeout)
                sock.sendall(LABEL_COUNT_REQUEST)
                answer = read_label_count(_reader(sock), self.status_timeout, self.url)
                if answer is None:
                    # A printer without Set-Get-Do; an answer arriving late must not be
                    # taken for the reply to the next question.
                    self._drop()
                    return LabelOdometer(None, NO_ANSWER)
                return parse_label_count(answer)
            except PrinterError:
                self._drop()
                raise
            except OSError as exc:
                self._drop()
                raise PrinterError(
                    E.ERR_PRINTER_IO,
                    f"The connection to the printer at {self.url} broke while asking its label "
                    f"count ({exc}); check the network cable and try again.",
                ) from exc

    def _read_answer(self, sock: socket.socket) -> bytes:
        """Read the printer's whole status answer from the connection."""
        return read_host_status(
            _reader(sock), self.status_timeout, self.url, "; power-cycle it if it stays silent"
        )

    def _connection(self) -> socket.socket:
        """Return the open connection, making a new one if there is none or it was closed."""
        if self._sock is not None and _discard_unasked(self._sock):
            return self._sock
        self._drop()
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        except OSError as exc:
            raise PrinterError(
                E.ERR_PRINTER_UNREACHABLE,
                f"Cannot connect to the printer at {self.url} ({exc}): check that it is "
                "switched on, cabled, and that the address is right.",
            ) from exc
        # Labels are small and sent one by one: do not let Nagle hold them back.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        self._sock = sock
        return sock

    def _drop(self) -> None:
        """Close the connection so the next call starts on a fresh one."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _reader(sock: socket.socket) -> Callable[[float, int], bytes | None]:
    """Return a read function for the answer readers: None on timeout, OSError on hang-up."""

    def read(remaining: float, most: int) -> bytes | None:
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(most)
        except TimeoutError:
            return None
        if not chunk:
            raise OSError("the printer closed the connection")
        return chunk

    return read


def _discard_unasked(sock: socket.socket) -> bool:
    """Drop input the printer sent unasked; return False if the connection is no longer usable."""
    sock.setblocking(False)
    try:
        for _ in range(_MAX_UNASKED_READS):
            if not sock.recv(MAX_STATUS_BYTES):
                return False
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False
