"""Read a serial or USB-CDC barcode scanner in a thread of its own, through unplugging.

The scanner is named by URL: a device path (`/dev/serial/by-id/...`), or any pyserial URL
(`loop://`, `socket://HOST:PORT`, `rfc2217://...`); `?baud=N` sets the speed. The port is
opened with `serial.serial_for_url`, read with a short timeout, and its bytes go through a
`ScanFramer`; every frame is decoded and handed to `on_scan` as a `Scan` or a `ScanError`.
When the port goes away (unplugged, the socket closed, a read error) the partial frame is
reported as incomplete, the port closed, and opening retried with a capped exponential
backoff until `stop()`; an empty read only happens after the read timeout, so nothing spins.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from urllib.parse import parse_qsl, urlencode

import serial

from edge_agent.scanframes import (
    ERR_SCAN_PORT,
    ERR_SCAN_URL,
    MAX_FRAME,
    Frame,
    FrameError,
    Scan,
    ScanError,
    ScanFramer,
    decode_scan,
)

log = logging.getLogger("lineledger.edge.scanner")

CONNECTED = "connected"
RECONNECTING = "reconnecting"
STOPPED = "stopped"

READ_TIMEOUT = 0.1  # how long one read waits; bounds how late stop() is noticed
WRITE_TIMEOUT = 1.0
IDLE_FLUSH = 2.0  # a partial frame this long without a byte will never be finished
READ_CHUNK = 4096
MAX_URL = 512
MAX_BAUD = 4_000_000
# pyserial's URL handlers that make sense for a scanner; anything else is a typo.
URL_SCHEMES = frozenset({"loop", "socket", "rfc2217", "spy", "alt", "hwgrep"})
_ALT_CLASSES = frozenset({"Serial", "PosixPollSerial", "VTIMESerial"})

_URL_CHARS = re.compile(r"[!-~]+")
_WINDOWS_PORT = re.compile(r"COM[0-9]{1,3}", re.IGNORECASE)
_COUNTERS = (
    "bytes",
    "scans",
    "errors",
    "connects",
    "open_failures",
    "disconnects",
    "callback_errors",
)

OnScan = Callable[[Scan | ScanError], None]


def _refuse(url: str, why: str) -> ScanError:
    return ScanError(
        ERR_SCAN_URL,
        f"scanner URL {url[:80]!r} cannot be used ({why}): use a device path such as "
        "/dev/serial/by-id/...[?baud=9600], loop:// or socket://HOST:PORT",
    )


def parse_scanner_url(url: str) -> tuple[str, int | None]:
    """Split a scanner URL into what pyserial opens and the `?baud=` speed, if given."""
    if not isinstance(url, str):
        raise _refuse(repr(url), "not text")
    text = url.strip()
    if len(text) > MAX_URL or not _URL_CHARS.fullmatch(text):
        raise _refuse(text, f"empty, over {MAX_URL} characters, or has spaces or control codes")
    base, _, query = text.partition("?")
    scheme, sep, _ = base.partition("://")
    if sep and scheme.lower() not in URL_SCHEMES:
        raise _refuse(text, f"unknown scheme {scheme[:20]!r}")
    if not sep and not (base.startswith("/") or _WINDOWS_PORT.fullmatch(base)):
        raise _refuse(text, "a device is named by its absolute path")
    try:
        params = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise _refuse(text, "a malformed query") from None
    baud = [value for key, value in params if key == "baud"]
    rest = [(key, value) for key, value in params if key != "baud"]
    if len(baud) > 1 or (baud and not (baud[0].isdigit() and 50 <= int(baud[0]) <= MAX_BAUD)):
        raise _refuse(text, f"baud is one number from 50 to {MAX_BAUD}")
    if rest and not sep:
        # A device path would take the query as part of the file name.
        raise _refuse(text, "a device path takes only ?baud=")
    keys = {key for key, _value in rest}
    if scheme.lower() == "spy" and "file" in keys:
        # spy:// writes its log to that file: a scanner URL must not name a file to overwrite.
        raise _refuse(text, "spy:// may not name a file")
    if scheme.lower() == "alt" and any(
        key == "class" and value not in _ALT_CLASSES for key, value in rest
    ):
        raise _refuse(text, f"alt:// takes class= one of {', '.join(sorted(_ALT_CLASSES))}")
    port = f"{base}?{urlencode(rest)}" if rest else base
    return port, int(baud[0]) if baud else None


class ScannerReader:
    """Read scans from one scanner in a background thread, reopening it after unplugging."""

    def __init__(
        self,
        url: str,
        on_scan: OnScan,
        baudrate: int = 9600,
        reconnect: tuple[float, float] = (0.2, 5.0),
        *,
        read_timeout: float = READ_TIMEOUT,
        idle_flush: float = IDLE_FLUSH,
        max_frame: int = MAX_FRAME,
    ) -> None:
        first, cap = reconnect
        if not 0 < first <= cap:
            raise ValueError("reconnect is (first delay, longest delay) with 0 < first <= longest")
        if read_timeout <= 0 or idle_flush <= 0:
            raise ValueError("read_timeout and idle_flush are positive")
        self.url = url
        self._port_url, url_baud = parse_scanner_url(url)
        self.baudrate = url_baud or baudrate  # the URL names this device's speed
        self._on_scan = on_scan
        self._first, self._cap = first, cap
        self._read_timeout = read_timeout
        self._idle_flush = idle_flush
        self._framer = ScanFramer(max_frame)
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._state = STOPPED
        self._port_lock = threading.Lock()  # send() writes from other threads
        self._port: serial.SerialBase | None = None
        self._thread: threading.Thread | None = None
        self._counts = dict.fromkeys(_COUNTERS, 0)
        self._absent_logged = False
        self.last_error: ScanError | None = None

    @property
    def state(self) -> str:
        """Return "connected", "reconnecting" or "stopped"."""
        return self._state

    @property
    def counters(self) -> dict[str, int]:
        """Return a snapshot of the reader's counters."""
        return dict(self._counts)

    def start(self) -> ScannerReader:
        """Start the reader thread."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("the scanner reader is already running")
        self._stop.clear()
        self._set_state(RECONNECTING)  # not open yet: the thread's first attempt comes next
        self._thread = threading.Thread(target=self._run, name=f"scanner {self.url}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop reading, close the port and wait for the thread to end."""
        self._stop.set()
        thread, self._thread = self._thread, None
        # From on_scan the thread is stopping itself: it ends after this scan, no join.
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        self._set_state(STOPPED)

    def __enter__(self) -> ScannerReader:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def wait_state(self, state: str, timeout: float | None = None) -> bool:
        """Wait until the reader is in `state`; tell whether it got there in time."""
        with self._changed:
            return self._changed.wait_for(lambda: self._state == state, timeout)

    def send(self, data: bytes) -> None:
        """Write bytes to the scanner, e.g. a configuration or beep command."""
        with self._port_lock:
            if self._port is None:
                raise ScanError(ERR_SCAN_PORT, f"scanner {self.url} is not connected")
            try:
                self._port.write(data)
            except (serial.SerialException, OSError) as exc:
                raise ScanError(
                    ERR_SCAN_PORT, f"cannot write to scanner {self.url}: {exc}"
                ) from exc

    def _set_state(self, state: str) -> None:
        with self._changed:
            self._state = state
            self._changed.notify_all()

    def _pause(self, seconds: float) -> None:
        """Wait before the next attempt to open, waking at once on stop()."""
        self._stop.wait(seconds)

    def _run(self) -> None:
        delay = self._first
        try:
            while not self._stop.is_set():
                port = self._open()
                if port is not None:
                    try:
                        if self._pump(port):
                            delay = self._first
                    finally:
                        self._close(port)
                if self._stop.is_set():
                    break
                self._set_state(RECONNECTING)
                self._pause(delay)
                delay = min(delay * 2, self._cap)
        except Exception as exc:
            # A bug must not leave a dead thread behind a "connected" state.
            log.exception("scanner %s: the reader stopped on an unexpected error", self.url)
            self.last_error = ScanError(ERR_SCAN_PORT, f"the scanner reader stopped: {exc!r}")
        finally:
            self._set_state(STOPPED)

    def _open(self) -> serial.SerialBase | None:
        extra = {} if "://" in self._port_url else {"exclusive": True}  # one reader per device
        try:
            port = serial.serial_for_url(
                self._port_url,
                baudrate=self.baudrate,
                timeout=self._read_timeout,
                write_timeout=WRITE_TIMEOUT,
                **extra,
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            self._counts["open_failures"] += 1
            self.last_error = ScanError(
                ERR_SCAN_PORT,
                f"cannot open scanner {self.url}: {exc}; check that it is plugged in",
            )
            # One warning per absence, not one per retry for hours.
            level = logging.DEBUG if self._absent_logged else logging.WARNING
            log.log(level, "%s (retrying)", self.last_error.message)
            self._absent_logged = True
            return None
        with self._port_lock:
            self._port = port
        self._counts["connects"] += 1
        self._absent_logged = False
        self._set_state(CONNECTED)
        log.info("scanner %s connected", self.url)
        return port

    def _pump(self, port: serial.SerialBase) -> bool:
        """Read until the port fails or stop(); tell whether the connection was a good one."""
        opened = last_byte = time.monotonic()
        got_data = False
        while not self._stop.is_set():
            try:
                data = port.read(max(1, min(port.in_waiting, READ_CHUNK)))
            except (serial.SerialException, OSError) as exc:
                self._counts["disconnects"] += 1
                self.last_error = ScanError(ERR_SCAN_PORT, f"scanner {self.url} went away: {exc}")
                log.warning("%s; reconnecting", self.last_error.message)
                break
            now = time.monotonic()
            if data:
                got_data, last_byte = True, now
                self._counts["bytes"] += len(data)
                self._deliver(self._framer.feed(data))
            elif self._framer.pending and now - last_byte >= self._idle_flush:
                self._deliver(self._framer.flush())
        # A port that fails right after opening must not reset the backoff, or a device that
        # accepts and drops connections would be reopened every `first` seconds forever.
        return got_data or time.monotonic() - opened >= self._cap

    def _close(self, port: serial.SerialBase) -> None:
        with self._port_lock:
            self._port = None
        try:
            port.close()
        except (serial.SerialException, OSError) as exc:
            log.debug("scanner %s: closing failed: %s", self.url, exc)
        self._deliver(self._framer.flush())

    def _deliver(self, results: Iterable[Frame | FrameError]) -> None:
        for item in results:
            result: Scan | ScanError
            if isinstance(item, Frame):
                try:
                    result = decode_scan(item.text)
                except ScanError as exc:
                    result = exc
            else:
                result = item
            self._counts["errors" if isinstance(result, ScanError) else "scans"] += 1
            try:
                self._on_scan(result)
            except Exception:
                self._counts["callback_errors"] += 1
                log.exception("scanner %s: the scan handler failed on %r", self.url, result)
