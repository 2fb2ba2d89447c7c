"""Tests for TcpPrinter against the printer simulator and against misbehaving TCP peers."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from printers import errors as E
from printers.errors import PrinterError
from printers.label import LabelTemplate, UnitLabel
from printers.simulator import FAULTS, MAX_CONNECTIONS, MAX_FORMAT_BYTES, PrinterSimulator
from printers.status import PrinterStatus, parse_host_status
from printers.tcp import TcpPrinter
from printers.zpl import render_zpl
from tests.procs import wait_for

SHORT = 0.3  # seconds; only for waits that are expected to run out
GUARD = 20.0  # seconds; only against hangs


def label_formats(count: int) -> list[bytes]:
    """Return `count` distinct rendered labels."""
    return [
        render_zpl(
            UnitLabel(f"MA01-HAT-BAG-20251109-{n:05d}-A9K2-X", f"https://v.example/s/{n}"),
            LabelTemplate(),
        )
        for n in range(1, count + 1)
    ]


def read_answer(sock: socket.socket) -> bytes:
    """Read one ~HS answer from a raw socket."""
    sock.settimeout(GUARD)
    answer = b""
    while answer.count(b"\x03") < 3:
        chunk = sock.recv(4096)
        assert chunk, "connection closed before the answer was complete"
        answer += chunk
    return answer


def test_labels_print_in_order_over_one_connection(simulator: PrinterSimulator) -> None:
    zpls = label_formats(5)
    with TcpPrinter(*simulator.address) as printer:
        for zpl in zpls:
            printer.send(zpl, "ignored")
        assert printer.query_status().ready
    assert simulator.printed == zpls
    assert simulator.accepted == 1


@pytest.mark.parametrize("kind", ["paper_out", "head_open", "paused", "ribbon_out"])
def test_query_status_reports_each_fault(simulator: PrinterSimulator, kind: str) -> None:
    simulator.set_fault(kind)
    with TcpPrinter(*simulator.address) as printer:
        status = printer.query_status()
    assert status.state == kind
    assert status.fault_code == f"ERR_PRINTER_{kind.upper()}"


def test_a_silent_printer_is_a_no_answer_fault(simulator: PrinterSimulator) -> None:
    simulator.set_fault("no_answer")
    with TcpPrinter(*simulator.address, status_timeout=SHORT) as printer:
        with pytest.raises(PrinterError) as caught:
            printer.query_status()
        assert caught.value.code == E.ERR_PRINTER_NO_ANSWER
        simulator.set_fault(None)
        assert printer.query_status().ready


@pytest.mark.parametrize("kind", FAULTS)
def test_formats_sent_during_a_fault_print_once_in_order_after_it(
    simulator: PrinterSimulator, kind: str
) -> None:
    zpls = label_formats(5)
    simulator.set_fault(kind)
    with TcpPrinter(*simulator.address) as printer:
        for zpl in zpls:
            printer.send(zpl, "ignored")
        wait_for(lambda: len(simulator.buffered) == len(zpls))
        if kind != "no_answer":
            assert printer.query_status().formats_in_buffer == len(zpls)
        assert simulator.printed == []
        simulator.set_fault(None)
        assert simulator.printed == zpls
        assert simulator.buffered == []
        assert printer.query_status() == PrinterStatus()


def test_refused_connections_are_unreachable_and_nothing_prints(
    simulator: PrinterSimulator,
) -> None:
    [zpl] = label_formats(1)
    simulator.refuse_connections(True)
    with TcpPrinter(*simulator.address) as printer:
        for attempt in (lambda: printer.send(zpl, "x"), printer.query_status):
            with pytest.raises(PrinterError) as caught:
                attempt()
            assert caught.value.code == E.ERR_PRINTER_UNREACHABLE
        simulator.refuse_connections(False)
        printer.send(zpl, "x")
        printer.query_status()
    assert simulator.printed == [zpl]


def test_a_dropped_connection_is_replaced_before_the_next_label(
    simulator: PrinterSimulator,
) -> None:
    first, second = label_formats(2)
    with TcpPrinter(*simulator.address) as printer:
        printer.send(first, "x")
        printer.query_status()
        simulator.drop_connections()
        printer.send(second, "x")
        printer.query_status()
    assert simulator.printed == [first, second]
    assert simulator.accepted == 2


def test_a_format_written_one_byte_at_a_time_prints_once(simulator: PrinterSimulator) -> None:
    [zpl] = label_formats(1)
    with socket.create_connection(simulator.address, timeout=GUARD) as raw:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for byte in zpl + b"~HS":
            raw.sendall(bytes((byte,)))
        assert parse_host_status(read_answer(raw)).ready
    assert simulator.printed == [zpl]


def test_an_incomplete_format_is_discarded_on_disconnect(simulator: PrinterSimulator) -> None:
    [zpl] = label_formats(1)
    with socket.create_connection(simulator.address, timeout=GUARD) as raw:
        raw.sendall(zpl[:-1])
    wait_for(lambda: simulator.discarded == 1)
    assert simulator.printed == [] and simulator.buffered == []


def test_the_simulator_survives_garbage_oversize_floods_and_connection_storms(
    simulator: PrinterSimulator,
) -> None:
    with socket.create_connection(simulator.address, timeout=GUARD) as raw:
        raw.sendall(bytes(range(256)) * 400 + b"^XZ~H^X")
    oversize = b"^XA" + b"A" * (MAX_FORMAT_BYTES + 100)
    with socket.create_connection(simulator.address, timeout=GUARD) as raw:
        try:
            raw.sendall(oversize)
        except OSError:
            pass  # the simulator may hang up before it has read everything
        assert raw.recv(1) == b""  # it hangs up instead of buffering without end
    # A client that asks for status but never reads the answers is dropped once the answers
    # outgrow the kernel buffers (kept small here) and pile up in the simulator.
    with socket.socket() as raw:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.settimeout(GUARD)
        raw.connect(simulator.address)
        try:
            raw.sendall(b"~HS" * 200_000)
        except OSError:
            pass  # the simulator hung up while we were still sending
        wait_for(lambda: simulator.open_connections == 0)
    storm = [socket.create_connection(simulator.address, timeout=GUARD) for _ in range(80)]
    wait_for(lambda: simulator.open_connections == MAX_CONNECTIONS)
    for sock in storm:
        sock.close()
    wait_for(lambda: simulator.open_connections == 0)
    zpls = label_formats(2)
    with TcpPrinter(*simulator.address) as printer:
        for zpl in zpls:
            printer.send(zpl, "x")
        assert printer.query_status().ready
    assert simulator.printed == zpls
    assert simulator.discarded == 1


@contextmanager
def fake_printer(answer: bytes | None) -> Iterator[tuple[str, int]]:
    """Serve a TCP peer that answers each read with `answer`, or hangs up if it is None."""
    stop = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _peer = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(GUARD)
                try:
                    while not stop.is_set() and conn.recv(4096):
                        if answer is None:
                            break
                        conn.sendall(answer)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[:2]
    finally:
        stop.set()
        thread.join(GUARD)
        listener.close()


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (b"hello", E.ERR_PRINTER_STATUS),  # part of an answer, then silence
        (b"\x02x\x03\x02y\x03\x02z\x03", E.ERR_PRINTER_STATUS),
        (b"A" * 5000, E.ERR_PRINTER_STATUS),  # more than the read cap
        (None, E.ERR_PRINTER_IO),  # hangs up when asked
    ],
)
def test_misbehaving_printers_raise_a_printer_error(answer: bytes | None, code: str) -> None:
    with fake_printer(answer) as (host, port):
        with TcpPrinter(host, port, status_timeout=SHORT) as printer:
            with pytest.raises(PrinterError) as caught:
                printer.query_status()
    assert caught.value.code == code


def test_a_printer_that_never_accepts_is_silent() -> None:
    # The kernel completes the handshake from the backlog; nobody ever answers.
    with socket.create_server(("127.0.0.1", 0)) as listener:
        host, port = listener.getsockname()[:2]
        with TcpPrinter(host, port, status_timeout=SHORT) as printer:
            with pytest.raises(PrinterError) as caught:
                printer.query_status()
    assert caught.value.code == E.ERR_PRINTER_NO_ANSWER


def test_a_printer_that_stops_reading_makes_send_fail_instead_of_hang() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        host, port = listener.getsockname()[:2]
        with TcpPrinter(host, port, write_timeout=SHORT) as printer:
            with pytest.raises(PrinterError) as caught:
                printer.send(b"^XA" + b"A" * (64 << 20) + b"^XZ", "x")
    assert caught.value.code == E.ERR_PRINTER_IO


@pytest.mark.parametrize("timeout", ["connect_timeout", "status_timeout", "write_timeout"])
def test_timeouts_must_be_positive(timeout: str) -> None:
    with pytest.raises(ValueError, match=timeout):
        TcpPrinter("127.0.0.1", 9100, **{timeout: 0.0})


def test_url_brackets_an_ipv6_host() -> None:
    assert TcpPrinter("::1", 6101).url == "tcp://[::1]:6101"
    assert repr(TcpPrinter("printer-7")) == "TcpPrinter('tcp://printer-7:9100')"
