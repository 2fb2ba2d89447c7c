"""ScannerReader over real ports: `loop://`, `socket://` to a TCP server, a missing device."""

from __future__ import annotations

import datetime as dt
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from edge_agent.scanframes import (
    ERR_SCAN_GARBAGE,
    ERR_SCAN_INCOMPLETE,
    ERR_SCAN_PORT,
    ERR_SCAN_TOO_LONG,
    ERR_SCAN_URL,
    Scan,
    ScanError,
)
from edge_agent.scanner import (
    CONNECTED,
    RECONNECTING,
    STOPPED,
    ScannerReader,
    parse_scanner_url,
)
from protocol.gs1 import GS, ai21_from_standard
from protocol.serials import Scope, render

HANG = 120.0  # seconds: only a guard against hanging, never a performance limit
SERIAL = render(Scope("MA01", "HAT", "BAG", dt.date(2025, 11, 9)), 27, bytes(range(32)))
AI21 = ai21_from_standard(SERIAL)
DATAMATRIX = "]d2" + "0104006381333931" + "21" + AI21 + GS + "10LOT1"
FAST_LOOP = "loop://?baud=115200"  # loop:// refuses writes that would take > 1 s at its baud


def label(result: Scan | ScanError) -> str:
    """Return a scan as the frame it came from, an error as its code."""
    if isinstance(result, ScanError):
        return result.code
    return (result.aim or "") + result.raw


class Collector:
    """An on_scan callback that queues what it gets."""

    def __init__(self) -> None:
        self.results: queue.Queue[Scan | ScanError] = queue.Queue()

    def __call__(self, result: Scan | ScanError) -> None:
        self.results.put(result)

    def next(self) -> Scan | ScanError:
        return self.results.get(timeout=HANG)

    def labels(self, count: int) -> list[str]:
        return [label(self.next()) for _ in range(count)]


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + HANG
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


@pytest.fixture
def readers() -> Iterator[list[ScannerReader]]:
    """Stop every reader a test made, even when it fails."""
    made: list[ScannerReader] = []
    yield made
    for reader in made:
        reader.stop()


# --- URLs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "/dev/serial/by-id/usb-Honeywell_1900-if00",
            ("/dev/serial/by-id/usb-Honeywell_1900-if00", None),
        ),
        ("/dev/ttyACM0?baud=115200", ("/dev/ttyACM0", 115200)),
        ("COM3?baud=9600", ("COM3", 9600)),
        ("loop://", ("loop://", None)),
        (" loop://?baud=19200 ", ("loop://", 19200)),
        ("loop://?logging=debug&baud=19200", ("loop://?logging=debug", 19200)),
        ("socket://127.0.0.1:7000", ("socket://127.0.0.1:7000", None)),
        ("SOCKET://scanner.local:4001?baud=9600", ("SOCKET://scanner.local:4001", 9600)),
    ],
)
def test_scanner_urls(url: str, expected: tuple[str, int | None]) -> None:
    assert parse_scanner_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "",
        "ttyUSB0",
        "/dev/tty USB0",
        "/dev/tty\x00USB0",
        "foo://x",
        "file:///dev/ttyUSB0",
        "/dev/ttyUSB0?baud=fast",
        "/dev/ttyUSB0?baud=0",
        "/dev/ttyUSB0?baud=99999999",
        "/dev/ttyUSB0?baud",
        "/dev/ttyUSB0?baud=9600&baud=19200",
        "/dev/ttyUSB0?parity=E",
        "/dev/" + "x" * 600,
        None,
    ],
)
def test_bad_scanner_urls(url: object) -> None:
    with pytest.raises(ScanError) as caught:
        parse_scanner_url(url)  # type: ignore[arg-type]
    assert caught.value.code == ERR_SCAN_URL


def test_reader_settings() -> None:
    got = Collector()
    assert ScannerReader("loop://?baud=115200", got, baudrate=9600).baudrate == 115200
    assert ScannerReader("loop://", got).baudrate == 9600
    assert ScannerReader("loop://", got).state == STOPPED
    with pytest.raises(ValueError):
        ScannerReader("loop://", got, reconnect=(5.0, 1.0))
    with pytest.raises(ValueError):
        ScannerReader("loop://", got, reconnect=(0, 1.0))
    with pytest.raises(ScanError) as caught:
        ScannerReader("nope://", got)
    assert caught.value.code == ERR_SCAN_URL


# --- loop:// ----------------------------------------------------------------------------


def test_loop_port_delivers_scans(readers: list[ScannerReader]) -> None:
    got = Collector()
    reader = ScannerReader(FAST_LOOP, got)
    readers.append(reader)
    reader.start()
    assert reader.wait_state(CONNECTED, HANG)
    reader.send(f"]C0{SERIAL}\r\n{DATAMATRIX}\r]Q1https://registry.example/v/{SERIAL}\n".encode())
    first, second, third = got.next(), got.next(), got.next()
    assert isinstance(first, Scan) and first.serial_text == SERIAL
    assert isinstance(second, Scan) and second.element("21") == AI21
    assert second.gs1 == (("01", "04006381333931"), ("21", AI21), ("10", "LOT1"))
    assert isinstance(third, Scan) and third.serial_text == SERIAL
    assert reader.counters["scans"] == 3 and reader.counters["errors"] == 0
    reader.stop()
    assert reader.state == STOPPED


def test_loop_port_hostile_frames(readers: list[ScannerReader]) -> None:
    got = Collector()
    reader = ScannerReader(FAST_LOOP, got)
    readers.append(reader)
    reader.start()
    assert reader.wait_state(CONNECTED, HANG)
    good = f"]C0{SERIAL}\r\n".encode()
    reader.send(good + b"X" * 10_240 + b"\r\n" + good)
    assert got.labels(3) == [f"]C0{SERIAL}", ERR_SCAN_TOO_LONG, f"]C0{SERIAL}"]
    reader.send(bytes(range(256)) + bytes(range(255, -1, -1)) + b"\r\n" + good)
    noise = []
    while (item := label(got.next())) != f"]C0{SERIAL}":
        noise.append(item)
    assert noise and set(noise) == {ERR_SCAN_GARBAGE}
    reader.send(b"]\r\n]d\r\n]Z9abc\r\n]d2\r\n")
    partial_aims = [got.next() for _ in range(4)]
    assert [label(r) for r in partial_aims] == ["]", "]d", "]Z9abc", "ERR_SCAN_GS1"]
    assert all(r.symbology == "unknown" for r in partial_aims[:3] if isinstance(r, Scan))
    reader.send(f"]d2{DATAMATRIX[3:].replace(GS, '^]')}\r\n".encode())
    scan = got.next()
    assert isinstance(scan, Scan) and scan.element("10") == "LOT1" and scan.gs_as_text == "^]"
    assert reader.state == CONNECTED


def test_loop_port_partial_frame_is_flushed_when_idle(readers: list[ScannerReader]) -> None:
    got = Collector()
    reader = ScannerReader(FAST_LOOP, got, idle_flush=0.05)
    readers.append(reader)
    reader.start()
    assert reader.wait_state(CONNECTED, HANG)
    reader.send(b"]C10104006381")
    assert label(got.next()) == ERR_SCAN_INCOMPLETE
    reader.send(b"]C0AFTER\r\n")
    assert label(got.next()) == "]C0AFTER"


def test_partial_frame_is_reported_when_the_reader_stops(readers: list[ScannerReader]) -> None:
    got = Collector()
    reader = ScannerReader(FAST_LOOP, got)
    readers.append(reader)
    reader.start()
    assert reader.wait_state(CONNECTED, HANG)
    reader.send(b"]C0DONE\r\n]C0HALF")
    assert label(got.next()) == "]C0DONE"
    reader.stop()
    assert label(got.next()) == ERR_SCAN_INCOMPLETE
    assert reader.state == STOPPED
    with pytest.raises(ScanError) as caught:
        reader.send(b"x")
    assert caught.value.code == ERR_SCAN_PORT


def test_a_failing_callback_does_not_kill_the_reader(
    readers: list[ScannerReader], caplog: pytest.LogCaptureFixture
) -> None:
    got = Collector()

    def on_scan(result: Scan | ScanError) -> None:
        if isinstance(result, Scan) and result.raw == "BOOM":
            raise RuntimeError("handler bug")
        got(result)

    reader = ScannerReader(FAST_LOOP, on_scan)
    readers.append(reader)
    with caplog.at_level(logging.ERROR, logger="lineledger.edge.scanner"):
        reader.start()
        assert reader.wait_state(CONNECTED, HANG)
        reader.send(b"]C0BOOM\r\n]C0FINE\r\n")
        assert label(got.next()) == "]C0FINE"
    assert reader.counters["callback_errors"] == 1
    assert reader.state == CONNECTED
    assert any("handler bug" in (r.exc_text or "") for r in caplog.records)


def test_context_manager_and_double_start() -> None:
    got = Collector()
    with ScannerReader(FAST_LOOP, got) as reader:
        assert reader.wait_state(CONNECTED, HANG)
        with pytest.raises(RuntimeError):
            reader.start()
        reader.send(b"]C0X\r\n")
        assert label(got.next()) == "]C0X"
    assert reader.state == STOPPED
    reader.stop()  # stopping twice is harmless


# --- A device that is not there -----------------------------------------------------------


class RecordingReader(ScannerReader):
    """A reader that records every pause between attempts to open."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.pauses: list[float] = []

    def _pause(self, seconds: float) -> None:
        self.pauses.append(seconds)
        super()._pause(seconds)


def test_absent_device_is_retried_with_capped_backoff(
    readers: list[ScannerReader], caplog: pytest.LogCaptureFixture
) -> None:
    reader = RecordingReader(
        "/dev/serial/by-id/lineledger-test-no-such-scanner", Collector(), reconnect=(0.01, 0.04)
    )
    readers.append(reader)
    with caplog.at_level(logging.WARNING, logger="lineledger.edge.scanner"):
        reader.start()
        wait_until(lambda: len(reader.pauses) >= 6)
        reader.stop()
    # Every failed attempt waits before the next one: no busy spinning while it is absent.
    assert reader.pauses[:6] == [0.01, 0.02, 0.04, 0.04, 0.04, 0.04]
    assert reader.state == STOPPED
    assert reader.counters["open_failures"] >= 6 and reader.counters["connects"] == 0
    assert reader.last_error is not None and reader.last_error.code == ERR_SCAN_PORT
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


# --- socket:// to a real TCP server: unplug and plug back in -------------------------------


def test_socket_scanner_unplugged_and_plugged_back(readers: list[ScannerReader]) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(HANG)
    port = server.getsockname()[1]
    got = Collector()
    reader = ScannerReader(f"socket://127.0.0.1:{port}", got, reconnect=(0.01, 0.05))
    readers.append(reader)
    reader.start()
    conn, _ = server.accept()
    try:
        assert reader.wait_state(CONNECTED, HANG)
        conn.sendall(f"]C0{SERIAL}\r\n{DATAMATRIX}\r\n]C1010400".encode())
        assert got.labels(2) == [f"]C0{SERIAL}", DATAMATRIX]
    finally:
        conn.close()  # unplug, mid-scan
        server.close()
    assert label(got.next()) == ERR_SCAN_INCOMPLETE
    assert reader.wait_state(RECONNECTING, HANG)
    wait_until(lambda: reader.counters["open_failures"] >= 2)
    assert reader.last_error is not None and reader.last_error.code == ERR_SCAN_PORT
    assert reader.counters["disconnects"] == 1

    server = socket.create_server(("127.0.0.1", port))  # plugged back in, same port
    server.settimeout(HANG)
    try:
        conn, _ = server.accept()
        with conn:
            assert reader.wait_state(CONNECTED, HANG)
            conn.sendall(f"]Q1https://registry.example/v/{SERIAL}\r\n".encode())
            scan = got.next()
            assert isinstance(scan, Scan) and scan.serial_text == SERIAL
            reader.stop()
    finally:
        server.close()
    assert reader.counters["connects"] == 2
    assert reader.state == STOPPED


def test_a_port_that_drops_at_once_does_not_reset_the_backoff(
    readers: list[ScannerReader],
) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.05)
    done = threading.Event()

    def accept_and_hang_up() -> None:
        while not done.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conn.close()

    acceptor = threading.Thread(target=accept_and_hang_up)
    acceptor.start()
    reader = RecordingReader(
        f"socket://127.0.0.1:{server.getsockname()[1]}", Collector(), reconnect=(0.01, HANG)
    )
    readers.append(reader)
    try:
        reader.start()
        wait_until(lambda: len(reader.pauses) >= 4)
        reader.stop()
    finally:
        done.set()
        acceptor.join()
        server.close()
    assert reader.pauses[:4] == [0.01, 0.02, 0.04, 0.08]
    assert reader.counters["connects"] >= 4 and reader.counters["disconnects"] >= 4


@pytest.mark.parametrize(
    "url", ["spy:///dev/ttyUSB0?file=/tmp/x", "alt:///dev/ttyUSB0?class=os.system"]
)
def test_scanner_urls_may_not_write_files_or_load_classes(url):
    from edge_agent.scanframes import ScanError
    from edge_agent.scanner import parse_scanner_url

    with pytest.raises(ScanError):
        parse_scanner_url(url)


def test_loop_port_pharma_frames_with_any_ai(readers: list[ScannerReader]) -> None:
    """A carton with (17), (10), (21) and a national AI arrives as a Scan, split or not."""
    got = Collector()
    reader = ScannerReader(FAST_LOOP, got)
    readers.append(reader)
    reader.start()
    assert reader.wait_state(CONNECTED, HANG)
    carton = "]d2" + "0109506000134352" + "17271231" + "10LOT42" + GS + "21PK1" + GS + "712AB1"
    data = f"{carton}\r\n{carton.replace(GS, '<GS>')}\r\n".encode()
    for i in range(0, len(data), 7):  # a slow scanner: frames cut anywhere
        reader.send(data[i : i + 7])
    reader.send(b"]d2" + b"0109506000134352" + b"712" + b"A" * 25 + b"\r\n")  # (712) too long
    reader.send(b"]d2" + b"0109506000134352" + b"\x1d\x1d" + b"10L\r\n")  # an empty field
    for _ in range(2):
        scan = got.next()
        assert isinstance(scan, Scan), scan
        assert [ai for ai, _ in scan.gs1] == ["01", "17", "10", "21", "712"]
        assert scan.element("712") == "AB1"
    assert got.labels(2) == ["ERR_SCAN_GS1", "ERR_SCAN_GS1"]
    assert reader.state == CONNECTED
