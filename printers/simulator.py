"""A ZPL label printer on a real TCP socket, for tests, demos and line trials without hardware.

It speaks the part of ZPL that LineLedger relies on: complete `^XA...^XZ` formats print (or
wait in the receive buffer while a fault is set) and `~HS` is answered with a host status
that shows the fault, except in the "no_answer" fault, where it stays silent the way a real
Zebra does with its media out. One thread serves all connections with a selector. Input is
scanned incrementally, so a format split at any byte prints exactly once; a format cut short
by a disconnect is discarded, like a real printer does. Sizes are capped so a hostile client
cannot exhaust memory.

It keeps a label odometer like a Zebra's `odometer.total_label_count`: every label it prints
counts (a format's `^PQ` quantity, 1 without one; formats held in the buffer count when they
print), and a Set-Get-Do `! U1 getvar "odometer.total_label_count"` line is answered with the
count in double quotes and nothing after it, as a real printer does; other variables get
`"?"`. `odometer_start` sets the count it starts from; with `state_file` the count is kept in a
small JSON file, rewritten after every print, so it survives restarts like a printer's
non-volatile memory (an existing file wins over `odometer_start`). `set_odometer_fault` makes
it answer like printers that cannot tell: "unsupported" (answers `"?"`, older firmware),
"silent" (no Set-Get-Do at all), "garbage" (an answer that is no count); `add_labels(n)`
counts labels printed without a format from a client (a test page, another host).

With `record_dir` each printed format is also written there as `NNNNNN.zpl`; with
`render_dir` it is drawn by `printers.zplrender` as `NNNNNN.png` (the same number), which a
barcode decoder can read back; a format the reader refuses is counted in `render_failures`
and its error kept in `render_errors`, and printing goes on, as a printer would.

Run it on its own with `python -m printers.simulator --port 0 --record-dir DIR`
(`--odometer-start N`, `--state-file FILE`, `--odometer-fault KIND`): it prints one line
`listening tcp://HOST:PORT` and serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import queue
import re
import selectors
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType, TracebackType
from typing import Self

from printers.errors import ZplError
from printers.filespool import FilePrinter
from printers.odometer import LABEL_COUNT_VARIABLE, MAX_LABEL_COUNT
from printers.status import MAX_FORMATS, PrinterStatus, format_host_status
from printers.tcp import HOST_STATUS_REQUEST, tcp_url
from printers.zplrender import rasterise

FAULTS = ("paper_out", "head_open", "paused", "ribbon_out", "no_answer")
ODOMETER_FAULTS = ("unsupported", "silent", "garbage")
FORMAT_START = b"^XA"
FORMAT_END = b"^XZ"
SGD_START = b"! U1"
MAX_FORMAT_BYTES = 1 << 20
# A Set-Get-Do line longer than this, or one holding a ZPL prefix, is not taken for a command.
MAX_SGD_BYTES = 256
MAX_PENDING_REPLY = 64 * 1024
MAX_CONNECTIONS = 64
_RECORDED = re.compile(r"([0-9]{6})\.(?:zpl|png)")
_SGD_LINE = re.compile(rb"! U1(?: [ -}]*)?")  # printable, no ~ (nor ^, checked apart)
_GETVAR = re.compile(rb'! U1 +getvar +"([a-z0-9_.]{1,128})" *')
_QUANTITY = re.compile(rb"\^PQ([0-9]{1,8})")
GARBAGE_COUNT = b'"31,084 LABELS"'
# Work for the serving thread, and the event it sets when the work is done.
_Call = tuple[Callable[[], None], threading.Event]


class _PngSpool(FilePrinter):
    """A spool directory of PNG images of printed labels."""

    format = "png"
    suffix = ".png"


class FormatTooLarge(ValueError):
    """A client sent more than the format size cap without ending the format."""


class FormatScanner:
    """Split a ZPL stream into formats, `~HS` requests and Set-Get-Do lines, however chunked."""

    def __init__(self, max_format_bytes: int = MAX_FORMAT_BYTES) -> None:
        self._limit = max_format_bytes
        self._buffer = bytearray()
        self._in_format = False
        # Where the search for ^XZ resumes, so a long format is not rescanned per chunk.
        self._searched = 0

    @property
    def in_format(self) -> bool:
        """Return True while a format has started but not ended."""
        return self._in_format

    def feed(self, data: bytes) -> list[bytes]:
        """Return the formats, `~HS` requests (as b"~HS") and `! U1` lines `data` completes.

        A Set-Get-Do line ends at CR or LF (not included); one that grows past MAX_SGD_BYTES
        or holds `^`, `~` or a control byte before its end is no command and is skipped.
        """
        self._buffer += data
        found: list[bytes] = []
        while True:
            if self._in_format:
                end = self._buffer.find(FORMAT_END, self._searched)
                if end < 0:
                    if len(self._buffer) > self._limit:
                        raise FormatTooLarge(f"no {FORMAT_END!r} in {self._limit} bytes")
                    # The last two bytes may be the start of a ^XZ split across chunks.
                    self._searched = max(len(self._buffer) - 2, 0)
                    return found
                end += len(FORMAT_END)
                found.append(bytes(self._buffer[:end]))
                del self._buffer[:end]
                self._in_format = False
                continue
            starts = {
                kind: at
                for kind, at in (
                    ("format", self._buffer.find(FORMAT_START)),
                    ("status", self._buffer.find(HOST_STATUS_REQUEST)),
                    ("sgd", self._buffer.find(SGD_START)),
                )
                if at >= 0
            }
            if not starts:
                # Bytes between formats mean nothing, but the last three may start a command.
                del self._buffer[:-3]
                return found
            kind = min(starts, key=starts.__getitem__)
            at = starts[kind]
            if kind == "status":
                found.append(HOST_STATUS_REQUEST)
                del self._buffer[: at + len(HOST_STATUS_REQUEST)]
            elif kind == "format":
                del self._buffer[:at]
                self._in_format = True
                self._searched = len(FORMAT_START)
            else:
                del self._buffer[:at]
                line = self._sgd_line()
                if line is None:
                    return found  # wait for the rest of the line
                if line:
                    found.append(line)
                else:
                    del self._buffer[:1]  # not a command: look past its "!"

    def _sgd_line(self) -> bytes | None:
        """Take the `! U1` line at the buffer's start: the line, b"" if none, None if unfinished."""
        ends = [at for at in (self._buffer.find(b"\r"), self._buffer.find(b"\n")) if at >= 0]
        end = min(ends) if ends else len(self._buffer)
        line = bytes(self._buffer[:end])
        if end > MAX_SGD_BYTES or b"^" in line or not _SGD_LINE.fullmatch(line):
            return b""
        if not ends:
            return None
        del self._buffer[: end + 1]
        return line


class _Connection:
    """One client connection: its socket, its scanner and the reply bytes not yet sent."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.scanner = FormatScanner()
        self.reply = bytearray()
        self.open = True


class PrinterSimulator:
    """A printer that listens on TCP, prints into memory (and a directory) and can be faulted."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        record_dir: Path | None = None,
        render_dir: Path | None = None,
        dpi: int = 203,
        odometer_start: int = 0,
        state_file: Path | None = None,
    ) -> None:
        if not 0 <= odometer_start <= MAX_LABEL_COUNT:
            raise ValueError(f"odometer_start must be 0..{MAX_LABEL_COUNT}")
        self._state_file = state_file
        self._labels = _load_odometer(state_file, odometer_start)
        self._odometer_fault: str | None = None
        self._address = (host, port)
        self._recorder = FilePrinter(record_dir) if record_dir is not None else None
        self._renderer = _PngSpool(render_dir) if render_dir is not None else None
        self._dpi = dpi
        self._render_errors: list[str] = []
        self._lock = threading.Lock()
        self._printed: list[bytes] = []
        self._buffered: list[bytes] = []
        self._fault: str | None = None
        self._discarded = 0
        self._accepted = 0
        self._next_record = 1
        self._selector: selectors.BaseSelector | None = None
        self._listener: socket.socket | None = None
        self._connections: list[_Connection] = []
        self._calls: queue.SimpleQueue[_Call] = queue.SimpleQueue()
        self._wake_reader: socket.socket | None = None
        self._wake_writer: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind the port and serve in a daemon thread; return self."""
        if self._thread is not None:
            return self
        numbers = [0]
        for spool in (self._recorder, self._renderer):
            if spool is not None:
                spool.directory.mkdir(parents=True, exist_ok=True)
                numbers += [
                    int(match[1])
                    for path in spool.directory.iterdir()
                    if (match := _RECORDED.fullmatch(path.name))
                ]
        self._next_record = max(numbers) + 1
        self._selector = selectors.DefaultSelector()
        try:
            self._open_listener()
        except OSError:
            self._selector.close()
            self._selector = None
            raise
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._selector.register(self._wake_reader, selectors.EVENT_READ, self._run_calls)
        self._stopping = False
        self._thread = threading.Thread(target=self._serve, name="printer-simulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every socket; incomplete formats are discarded."""
        if self._thread is None:
            return
        try:
            self._in_loop(self._shut_down)
        except RuntimeError:
            self._shut_down()  # the serving thread is gone, so closing from here is safe
        self._thread.join()
        self._thread = None
        for sock in (self._wake_reader, self._wake_writer):
            if sock is not None:
                sock.close()
        if self._selector is not None:
            self._selector.close()
        self._wake_reader = self._wake_writer = self._selector = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what a test sees and does ----------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        """Return the (host, port) the simulator listens on."""
        return self._address

    @property
    def url(self) -> str:
        """Return the printer URL of the simulator, e.g. tcp://127.0.0.1:9100."""
        return tcp_url(*self._address)

    @property
    def printed(self) -> list[bytes]:
        """Return the formats printed so far, in print order."""
        with self._lock:
            return list(self._printed)

    @property
    def buffered(self) -> list[bytes]:
        """Return the formats held in the receive buffer while a fault is set."""
        with self._lock:
            return list(self._buffered)

    @property
    def discarded(self) -> int:
        """Return how many formats were dropped incomplete (disconnect or size cap)."""
        with self._lock:
            return self._discarded

    @property
    def render_failures(self) -> int:
        """Return how many printed formats `render_dir` could not draw."""
        with self._lock:
            return len(self._render_errors)

    @property
    def render_errors(self) -> list[str]:
        """Return why each format that could not be drawn was refused, in print order."""
        with self._lock:
            return list(self._render_errors)

    @property
    def accepted(self) -> int:
        """Return how many client connections were accepted since start."""
        with self._lock:
            return self._accepted

    @property
    def open_connections(self) -> int:
        """Return how many client connections are open now."""
        with self._lock:
            return len(self._connections)

    def set_fault(self, kind: str | None) -> None:
        """Set a fault (one of FAULTS) or clear it with None, printing what was buffered."""
        if kind is not None and kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}: use one of {', '.join(FAULTS)} or None")
        with self._lock:
            self._fault = kind
            if kind is None:
                for held in self._buffered:
                    self._print(held)
                self._buffered.clear()

    @property
    def odometer(self) -> int:
        """Return the labels printed over the printer's life (its odometer.total_label_count)."""
        with self._lock:
            return self._labels

    def set_odometer_fault(self, kind: str | None) -> None:
        """Answer the label count like a printer that cannot (one of ODOMETER_FAULTS), or not."""
        if kind is not None and kind not in ODOMETER_FAULTS:
            raise ValueError(
                f"unknown odometer fault {kind!r}: use one of {', '.join(ODOMETER_FAULTS)} or None"
            )
        with self._lock:
            self._odometer_fault = kind

    def add_labels(self, count: int) -> None:
        """Count `count` labels printed without a format from a client (a test page, another PC)."""
        if count < 0:
            raise ValueError("count must not be negative")
        with self._lock:
            self._count_labels(count)

    def refuse_connections(self, flag: bool) -> None:
        """Close (True) or reopen (False) the listening socket; open connections stay open."""
        if self._thread is None:
            raise RuntimeError("start the simulator first")
        self._in_loop(self._close_listener if flag else self._open_listener)

    def drop_connections(self) -> None:
        """Close every client connection, as a printer that is switched off and on."""
        if self._thread is None:
            raise RuntimeError("start the simulator first")
        self._in_loop(self._close_all_connections)

    # -- printing ---------------------------------------------------------------------------

    def _count_labels(self, count: int) -> None:
        """Advance the odometer and keep it in the state file; the caller holds the lock."""
        self._labels = min(self._labels + count, MAX_LABEL_COUNT)
        if self._state_file is not None:
            _save_odometer(self._state_file, self._labels)

    def _print(self, zpl: bytes) -> None:
        """Print one format; the caller holds the lock."""
        self._printed.append(zpl)
        quantity = _QUANTITY.search(zpl)
        self._count_labels(max(int(quantity[1]), 1) if quantity else 1)
        number = f"{self._next_record:06d}"
        if self._recorder is not None:
            self._recorder.send(zpl, number)
        if self._renderer is not None:
            try:
                for image in rasterise(zpl, self._dpi):
                    self._renderer.send(image, number)
            except ZplError as exc:
                self._render_errors.append(exc.message)
        if self._recorder is not None or self._renderer is not None:
            self._next_record += 1

    def _receive(self, zpl: bytes) -> None:
        with self._lock:
            if self._fault is None:
                self._print(zpl)
            else:
                self._buffered.append(zpl)

    def _status_reply(self) -> bytes:
        with self._lock:
            fault = self._fault
            held = len(self._buffered)
        if fault == "no_answer":
            return b""
        return format_host_status(
            PrinterStatus(
                paper_out=fault == "paper_out",
                paused=fault == "paused",
                head_open=fault == "head_open",
                ribbon_out=fault == "ribbon_out",
                formats_in_buffer=min(held, MAX_FORMATS),
            )
        )

    def _sgd_reply(self, line: bytes) -> bytes:
        """Answer a Set-Get-Do line the way a Link-OS printer does; setvar and do get nothing."""
        getvar = _GETVAR.fullmatch(line)
        with self._lock:
            fault, odometer_fault, labels = self._fault, self._odometer_fault, self._labels
        if getvar is None or fault == "no_answer" or odometer_fault == "silent":
            return b""
        if getvar[1].decode("ascii") != LABEL_COUNT_VARIABLE or odometer_fault == "unsupported":
            return b'"?"'
        if odometer_fault == "garbage":
            return GARBAGE_COUNT
        return f'"{labels}"'.encode("ascii")

    # -- the serving thread -----------------------------------------------------------------

    def _in_loop(self, call: Callable[[], None]) -> None:
        """Run `call` on the serving thread and wait for it, since it owns the sockets."""
        assert self._wake_writer is not None and self._thread is not None
        done = threading.Event()
        self._calls.put((call, done))
        self._wake_writer.send(b"\0")
        while not done.wait(0.1):
            # A bug that kills the serving thread must fail the caller, not hang it.
            if not self._thread.is_alive():
                raise RuntimeError("the printer simulator thread has stopped")

    def _run_calls(self, _events: int) -> None:
        assert self._wake_reader is not None
        try:
            while self._wake_reader.recv(4096):
                pass
        except BlockingIOError:
            pass
        while not self._calls.empty():
            call, done = self._calls.get()
            try:
                call()
            finally:
                done.set()

    def _serve(self) -> None:
        assert self._selector is not None
        while not self._stopping:
            for key, events in self._selector.select():
                key.data(events)
                if self._stopping:
                    break

    def _shut_down(self) -> None:
        self._stopping = True
        self._close_listener()
        self._close_all_connections()

    def _open_listener(self) -> None:
        if self._listener is not None:
            return
        assert self._selector is not None
        host, port = self._address
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # create_server sets SO_REUSEADDR, so the same port can be bound again after refusing.
        listener = socket.create_server((host, port), family=family)
        listener.setblocking(False)
        self._address = (host, listener.getsockname()[1])
        self._selector.register(listener, selectors.EVENT_READ, self._accept)
        self._listener = listener

    def _close_listener(self) -> None:
        if self._listener is not None:
            assert self._selector is not None
            self._selector.unregister(self._listener)
            self._listener.close()
            self._listener = None

    def _accept(self, _events: int) -> None:
        assert self._listener is not None and self._selector is not None
        try:
            sock, _peer = self._listener.accept()
        except OSError:
            return  # the client gave up already, or we are out of descriptors for now
        if len(self._connections) >= MAX_CONNECTIONS:
            sock.close()
            return
        sock.setblocking(False)
        connection = _Connection(sock)
        with self._lock:
            self._accepted += 1
            self._connections.append(connection)
        self._selector.register(
            sock, selectors.EVENT_READ, functools.partial(self._service, connection)
        )

    def _service(self, connection: _Connection, events: int) -> None:
        if not connection.open:
            return
        try:
            if events & selectors.EVENT_READ:
                data = connection.sock.recv(65536)
                if not data:
                    self._close(connection)
                    return
                for item in connection.scanner.feed(data):
                    if item == HOST_STATUS_REQUEST:
                        connection.reply += self._status_reply()
                    elif item.startswith(SGD_START):
                        connection.reply += self._sgd_reply(item)
                    else:
                        self._receive(item)
            self._flush(connection)
        except (OSError, FormatTooLarge):
            self._close(connection)

    def _flush(self, connection: _Connection) -> None:
        """Send what fits of the pending reply; watch for writability while some is left."""
        assert self._selector is not None
        if connection.reply:
            try:
                sent = connection.sock.send(connection.reply)
            except BlockingIOError:
                sent = 0
            del connection.reply[:sent]
        if len(connection.reply) > MAX_PENDING_REPLY:
            raise OSError("the client asks for status but does not read the answers")
        key = self._selector.get_key(connection.sock)
        wanted = selectors.EVENT_READ | (selectors.EVENT_WRITE if connection.reply else 0)
        if key.events != wanted:
            self._selector.modify(connection.sock, wanted, key.data)

    def _close(self, connection: _Connection) -> None:
        assert self._selector is not None
        connection.open = False
        self._selector.unregister(connection.sock)
        connection.sock.close()
        with self._lock:
            self._connections.remove(connection)
            if connection.scanner.in_format:
                self._discarded += 1

    def _close_all_connections(self) -> None:
        for connection in list(self._connections):
            self._close(connection)


def _load_odometer(state_file: Path | None, start: int) -> int:
    """Return the odometer kept in `state_file`, or `start` when there is none yet."""
    if state_file is None or not state_file.exists():
        return start
    try:
        kept = json.loads(state_file.read_text(encoding="utf-8"))["total_label_count"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{state_file} is not a simulator state file: {exc}") from None
    if not isinstance(kept, int) or not 0 <= kept <= MAX_LABEL_COUNT:
        raise ValueError(f"{state_file} holds no label count of 0..{MAX_LABEL_COUNT}")
    return kept


def _save_odometer(state_file: Path, labels: int) -> None:
    """Replace the state file in one step, so a kill never leaves half of it."""
    temp = state_file.with_name(f".{state_file.name}.tmp")
    temp.write_text(json.dumps({"total_label_count": labels}) + "\n", encoding="utf-8")
    os.replace(temp, state_file)


def _count(text: str) -> int:
    """Parse a label count for the command line."""
    value = int(text)
    if not 0 <= value <= MAX_LABEL_COUNT:
        raise argparse.ArgumentTypeError(f"use 0..{MAX_LABEL_COUNT}")
    return value


def _exit_on_signal(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    """Run a simulator until SIGTERM or SIGINT; print its URL as the first line of output."""
    parser = argparse.ArgumentParser(
        prog="python -m printers.simulator",
        description="Serve a simulated ZPL label printer on TCP.",
        epilog="example: python -m printers.simulator --port 9100 --record-dir /tmp/labels "
        "--state-file /tmp/printer.json",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=9100, help="port to listen on, 0 for any")
    parser.add_argument("--record-dir", type=Path, help="write each printed format here")
    parser.add_argument("--render-dir", type=Path, help="draw each printed format here as PNG")
    parser.add_argument("--fault", choices=FAULTS, help="start with this fault set")
    parser.add_argument(
        "--odometer-start",
        type=_count,
        default=0,
        help="labels the printer has printed before (its label odometer), default 0",
    )
    parser.add_argument(
        "--state-file",
        type=Path,
        help="keep the label odometer in this file across restarts (it wins over the start)",
    )
    parser.add_argument(
        "--odometer-fault",
        choices=ODOMETER_FAULTS,
        help="answer the label count like a printer that cannot",
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGINT, _exit_on_signal)
    try:
        simulator = PrinterSimulator(
            args.host,
            args.port,
            record_dir=args.record_dir,
            render_dir=args.render_dir,
            odometer_start=args.odometer_start,
            state_file=args.state_file,
        )
    except ValueError as exc:
        parser.error(str(exc))
    with simulator:
        simulator.set_fault(args.fault)
        simulator.set_odometer_fault(args.odometer_fault)
        sys.stdout.write(f"listening {simulator.url}\n")
        sys.stdout.flush()
        try:
            while True:  # short sleeps: a signal handed to another thread still gets handled
                time.sleep(0.5)
        except SystemExit:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
