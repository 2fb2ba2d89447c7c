"""Tests for SerialPrinter over pyserial's loop:// and socket://, and over a real pseudo-tty."""

from __future__ import annotations

import os
import select
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from printers import errors as E
from printers.errors import PrinterError
from printers.label import LabelTemplate
from printers.render import render_label
from printers.serialport import SerialPrinter, SerialSettings
from printers.simulator import FAULTS, FormatScanner, PrinterSimulator
from printers.status import PrinterStatus, format_host_status
from printers.urls import open_printer
from tests.printers.decoding import gs1_label
from tests.printers.test_printer_tcp import fake_printer
from tests.procs import wait_for

SHORT = 0.3  # seconds; only for waits that are expected to run out
GUARD = 20.0  # seconds; only against hangs


def labels(count: int) -> list[bytes]:
    """Return `count` distinct ZPL labels with GS1 data."""
    return [
        render_label(gs1_label(ai21=f"251109HAT{n:05d}Z6S0Y"), LabelTemplate(), "zpl")
        for n in range(1, count + 1)
    ]


def socket_url(simulator: PrinterSimulator) -> str:
    host, port = simulator.address
    return f"socket://{host}:{port}?baud=19200"


# -- loop:// ----------------------------------------------------------------------------


def test_what_is_written_to_loop_comes_back_byte_for_byte() -> None:
    [zpl] = labels(1)
    with open_printer("loop://?baud=115200") as printer:
        assert isinstance(printer, SerialPrinter) and printer.format == "zpl"
        assert printer.serial_port is None  # opening is lazy
        printer.send(zpl, "ignored")
        port = printer.serial_port
        assert port.baudrate == 115200
        assert port.read(len(zpl)) == zpl
        assert port.in_waiting == 0


def test_unasked_input_is_dropped_before_the_next_label() -> None:
    first, second = labels(2)
    with open_printer("loop://") as printer:
        printer.send(first, "x")  # echoed back: input nobody asked for
        printer.send(second, "x")
        port = printer.serial_port
        assert port.read(port.in_waiting) == second


def test_an_echo_is_not_a_status_answer() -> None:
    with SerialPrinter("loop://", status_timeout=SHORT) as printer:
        with pytest.raises(PrinterError) as caught:
            printer.query_status()
        assert caught.value.code == E.ERR_PRINTER_STATUS
        assert printer.serial_port is None  # dropped, so a late answer cannot be misread


# -- socket:// to the TCP printer simulator ---------------------------------------------


def test_labels_print_over_socket_and_status_comes_back_on_the_same_line(
    simulator: PrinterSimulator,
) -> None:
    zpls = labels(5)
    with open_printer(socket_url(simulator)) as printer:
        for zpl in zpls:
            printer.send(zpl, "ignored")
        assert printer.query_status() == PrinterStatus()
    assert simulator.printed == zpls
    assert simulator.accepted == 1


@pytest.mark.parametrize("kind", [fault for fault in FAULTS if fault != "no_answer"])
def test_faults_are_seen_through_hs_on_the_serial_path(
    simulator: PrinterSimulator, kind: str
) -> None:
    [zpl] = labels(1)
    simulator.set_fault(kind)
    with open_printer(socket_url(simulator)) as printer:
        printer.send(zpl, "x")
        status = printer.query_status()
        assert status.state == kind and status.formats_in_buffer == 1
        assert simulator.printed == []
        simulator.set_fault(None)
        assert printer.query_status().ready
    assert simulator.printed == [zpl]


def test_a_silent_printer_is_a_no_answer_fault_on_the_serial_path(
    simulator: PrinterSimulator,
) -> None:
    simulator.set_fault("no_answer")
    with open_printer(socket_url(simulator), status_timeout=SHORT) as printer:
        with pytest.raises(PrinterError) as caught:
            printer.query_status()
        assert caught.value.code == E.ERR_PRINTER_NO_ANSWER
        simulator.set_fault(None)
        assert printer.query_status().ready


def test_the_port_is_reopened_after_the_printer_restarts(tmp_path: Path) -> None:
    first, second, third = labels(3)
    simulator = PrinterSimulator().start()
    host, port = simulator.address
    with open_printer(f"socket://{host}:{port}") as printer:
        printer.send(first, "x")
        assert printer.query_status().ready
        simulator.stop()
        assert simulator.printed == [first]
        # Switched off: the line is gone, nothing can be written, so nothing is lost.
        with pytest.raises(PrinterError) as caught:
            printer.send(second, "x")
        assert caught.value.code == E.ERR_PRINTER_UNREACHABLE
        restarted = PrinterSimulator(host, port).start()
        try:
            printer.send(second, "x")
            printer.send(third, "x")
            assert printer.query_status().ready
            assert restarted.printed == [second, third]
        finally:
            restarted.stop()


def test_a_dropped_line_is_replaced_before_the_next_label(simulator: PrinterSimulator) -> None:
    first, second = labels(2)
    with open_printer(socket_url(simulator)) as printer:
        printer.send(first, "x")
        printer.query_status()
        simulator.drop_connections()
        wait_for(lambda: simulator.open_connections == 0)
        printer.send(second, "x")
        printer.query_status()
    assert simulator.printed == [first, second]
    assert simulator.accepted == 2


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (b"hello", E.ERR_PRINTER_STATUS),
        (b"\x02x\x03\x02y\x03\x02z\x03", E.ERR_PRINTER_STATUS),
        (b"A" * 5000, E.ERR_PRINTER_STATUS),
        (None, E.ERR_PRINTER_IO),
    ],
)
def test_misbehaving_serial_printers_raise_a_printer_error(answer: bytes | None, code: str) -> None:
    with fake_printer(answer) as (host, port):
        with SerialPrinter(f"socket://{host}:{port}", status_timeout=SHORT) as printer:
            with pytest.raises(PrinterError) as caught:
                printer.query_status()
    assert caught.value.code == code


def test_a_printer_that_stops_reading_makes_send_fail_instead_of_hang() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        host, port = listener.getsockname()[:2]
        with SerialPrinter(f"socket://{host}:{port}", write_timeout=SHORT) as printer:
            with pytest.raises(PrinterError) as caught:
                printer.send(b"^XA" + b"A" * (64 << 20) + b"^XZ", "x")
    assert caught.value.code == E.ERR_PRINTER_IO


def test_nothing_listening_is_unreachable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with SerialPrinter(f"socket://127.0.0.1:{port}") as printer:
        for attempt in (lambda: printer.send(b"^XA^XZ", "x"), printer.query_status):
            with pytest.raises(PrinterError) as caught:
                attempt()
            assert caught.value.code == E.ERR_PRINTER_UNREACHABLE


def test_a_missing_device_is_unreachable() -> None:
    with open_printer("/dev/serial/by-id/usb-Zebra_Technologies_not-plugged-in-if00") as printer:
        with pytest.raises(PrinterError) as caught:
            printer.send(b"^XA^XZ", "x")
    assert caught.value.code == E.ERR_PRINTER_UNREACHABLE
    assert "/dev/serial/by-id/usb-Zebra" in caught.value.message


@pytest.mark.parametrize("timeout", ["connect_timeout", "status_timeout", "write_timeout"])
def test_timeouts_must_be_positive(timeout: str) -> None:
    with pytest.raises(ValueError, match=timeout):
        SerialPrinter("loop://", **{timeout: 0.0})


# -- a real tty: a pseudo-terminal with a ZPL printer on its master side ----------------


class PtyPrinter:
    """A printer on the master side of a pseudo-tty: prints formats, answers ~HS."""

    def __init__(self) -> None:
        self.master, slave = os.openpty()
        self.path = os.ttyname(slave)
        os.close(slave)
        self.printed: list[bytes] = []
        self.status = PrinterStatus()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        scanner = FormatScanner()
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self.master, 4096)
            except OSError:
                continue  # no slave open at the moment
            for item in scanner.feed(data):
                if item == b"~HS":
                    os.write(self.master, format_host_status(self.status))
                else:
                    self.printed.append(item)

    def unplug(self) -> None:
        """Stop serving and close the master: the device node disappears."""
        self._stop.set()
        self._thread.join(GUARD)
        os.close(self.master)


@contextmanager
def pty_printer() -> Iterator[PtyPrinter]:
    printer = PtyPrinter()
    try:
        yield printer
    finally:
        if not printer._stop.is_set():
            printer.unplug()


def test_labels_print_over_a_real_tty_with_line_settings() -> None:
    zpls = labels(3)
    with pty_printer() as device:
        url = f"{device.path}?baud=19200&parity=E&bytesize=7&stopbits=2&xonxoff=1"
        with open_printer(url) as printer:
            for zpl in zpls:
                printer.send(zpl, "x")
            assert printer.query_status().ready
            port = printer.serial_port
            assert (port.baudrate, port.parity, port.bytesize, port.stopbits, port.xonxoff) == (
                19200,
                "E",
                7,
                2,
                True,
            )
            device.status = PrinterStatus(head_open=True)
            assert printer.query_status().state == "head_open"
        wait_for(lambda: len(device.printed) == 3)
        assert device.printed == zpls


def test_an_unplugged_tty_fails_cleanly_and_stays_unreachable() -> None:
    [zpl] = labels(1)
    with pty_printer() as device:
        printer = SerialPrinter(device.path, SerialSettings(), status_timeout=SHORT)
        try:
            printer.send(zpl, "x")
            device.unplug()
            with pytest.raises(PrinterError) as caught:
                printer.send(zpl, "x")
            assert caught.value.code in (E.ERR_PRINTER_IO, E.ERR_PRINTER_UNREACHABLE)
            with pytest.raises(PrinterError) as caught:
                printer.query_status()
            assert caught.value.code == E.ERR_PRINTER_UNREACHABLE
        finally:
            printer.close()
