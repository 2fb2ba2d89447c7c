"""The label odometer: the getvar answer parser under hostile input, and each transport's query."""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from printers import errors as E
from printers.errors import PrinterError
from printers.odometer import (
    LABEL_COUNT_REQUEST,
    MAX_LABEL_COUNT,
    MAX_ODOMETER_BYTES,
    NO_ANSWER,
    SPOOL,
    UNSUPPORTED,
    LabelOdometer,
    answer_complete,
    parse_label_count,
    read_label_count,
)
from printers.serialport import SerialPrinter
from printers.simulator import PrinterSimulator
from printers.tcp import TcpPrinter
from printers.urls import open_printer
from tests.printers.test_printer_tcp import fake_printer, label_formats

SHORT = 0.3  # seconds; only for waits that are expected to run out
GUARD = 20.0  # seconds; only against hangs

# The SGD reference's example answer, and a real ~HQOD answer (print length, not labels).
MANUAL_EXAMPLE = b'"31084"'
HQOD_ANSWER = (
    b'\x02\r\n\r\n  PRINT METERS\r\n   TOTAL NONRESETTABLE:        8560 "\r\n'
    b'   USER RESETTABLE CNTR1:         9 "\r\n   USER RESETTABLE CNTR2:      8560 "\r\n\x03'
)


def refused(data: Any, **limits: int) -> PrinterError:
    with pytest.raises(PrinterError) as caught:
        parse_label_count(data, **limits)
    assert caught.value.code == E.ERR_PRINTER_ODOMETER_ANSWER
    return caught.value


# -- the parser ---------------------------------------------------------------------------


def test_parses_the_manual_example() -> None:
    reading = parse_label_count(MANUAL_EXAMPLE)
    assert reading == LabelOdometer(31084) and reading.supported
    assert reading.raw == MANUAL_EXAMPLE


@pytest.mark.parametrize(
    ("data", "labels"),
    [
        (b'"0"', 0),
        (b'"000123"', 123),
        (b'"4294967295"', MAX_LABEL_COUNT),
        (b'\r\n"42"', 42),  # the line end of an earlier answer, read late
        (b'"42"\r\n', 42),  # firmware that ends its answers with a line
    ],
)
def test_parses_counts_with_line_ends_around_them(data: bytes, labels: int) -> None:
    assert parse_label_count(data).labels == labels


def test_a_question_mark_means_the_printer_has_no_such_counter() -> None:
    reading = parse_label_count(b'"?"')
    assert reading.labels is None and reading.why == UNSUPPORTED and not reading.supported


def test_every_truncation_of_an_answer_is_refused() -> None:
    for end in range(len(MANUAL_EXAMPLE)):
        refused(MANUAL_EXAMPLE[:end])


@pytest.mark.parametrize(
    "data",
    [
        HQOD_ANSWER,  # ~HQOD reports length in inches or cm: no label count
        b'\x02"31084"\x03',  # a count framed like ~HS: SGD answers carry no frame
        b"\x0231084\x03\r\n",
        b"31084",  # no quotes
        b'"31084',  # no closing quote
        b'31084"',  # no opening quote
        b'""',
        b'"1""2"',  # two answers
        b'"12" "13"',
        b'" 12"',
        b'"12 "',
        b'"1,234"',  # thousands separators, as on the configuration label
        b'"31084 LABELS"',
        b'"-1"',
        b'"+1"',
        b'"1e9"',
        b'"0x10"',
        b'"\xef\xbc\x91\xef\xbc\x92"',  # full-width digits
        b'"12"\x00',
        b'\x00"12"',
        b'"?"?',
        b'"??"',
        b"?",
        b' "12"',
        b'"12"\t',
        b"\r\n",
        b"",
    ],
)
def test_malformed_answers_are_refused(data: bytes) -> None:
    refused(data)


@pytest.mark.parametrize("data", [b'"4294967296"', b'"99999999999"', b'"9' + b"9" * 40 + b'"'])
def test_absurd_counts_are_refused(data: bytes) -> None:
    refused(data)


def test_oversized_answers_are_refused_before_they_are_read() -> None:
    error = refused(b'"1"' + b"\r\n" * MAX_ODOMETER_BYTES)
    assert f"longer than {MAX_ODOMETER_BYTES} bytes" in error.message
    refused(b'"' + b"1" * 10_000_000 + b'"')


def test_limits_are_injected() -> None:
    refused(b'"123"', max_bytes=4)
    assert parse_label_count(b'"123"', max_bytes=5).labels == 123
    refused(b'"101"', max_count=100)
    assert parse_label_count(b'"100"', max_count=100).labels == 100
    # a limit cannot widen what a 32-bit counter can hold
    refused(b'"4294967296"', max_count=10**12)


@pytest.mark.parametrize("data", ["31084", '"31084"', None, 31084, [b'"1"'], object()])
def test_answers_that_are_not_bytes_are_refused(data: Any) -> None:
    refused(data)


def test_bytearray_and_memoryview_answers_parse() -> None:
    assert parse_label_count(bytearray(b'"7"')).labels == 7
    assert parse_label_count(memoryview(b'"7"')).labels == 7


@given(st.binary(max_size=80))
def test_arbitrary_bytes_only_ever_parse_or_raise_an_odometer_error(data: bytes) -> None:
    try:
        reading = parse_label_count(data)
    except PrinterError as exc:
        assert exc.code == E.ERR_PRINTER_ODOMETER_ANSWER
    else:
        assert reading.labels is None or 0 <= reading.labels <= MAX_LABEL_COUNT


@given(st.integers(0, MAX_LABEL_COUNT))
def test_every_count_a_printer_can_hold_round_trips(count: int) -> None:
    assert parse_label_count(f'"{count}"'.encode()).labels == count


def test_a_reading_holds_a_count_or_a_reason_never_both() -> None:
    for bad in (
        lambda: LabelOdometer(None),
        lambda: LabelOdometer(3, UNSUPPORTED),
        lambda: LabelOdometer(-1),
        lambda: LabelOdometer(MAX_LABEL_COUNT + 1),
    ):
        with pytest.raises(ValueError):
            bad()


# -- collecting an answer -----------------------------------------------------------------


def scripted(*chunks: bytes | None) -> Any:
    """Return a read function that hands out `chunks`, then reports silence (None)."""
    pending = list(chunks)
    calls: list[int] = []

    def read(remaining: float, most: int) -> bytes | None:
        calls.append(most)
        assert most > 0
        chunk = pending.pop(0) if pending else None
        if chunk is not None and len(chunk) > most:  # like recv: at most `most`, the rest waits
            chunk, rest = chunk[:most], chunk[most:]
            pending.insert(0, rest)
        return chunk

    read.calls = calls  # type: ignore[attr-defined]
    return read


def test_reading_stops_at_the_closing_quote_however_the_answer_is_cut() -> None:
    for cut in range(1, len(MANUAL_EXAMPLE)):
        read = scripted(MANUAL_EXAMPLE[:cut], MANUAL_EXAMPLE[cut:])
        assert read_label_count(read, GUARD, "tcp://p") == MANUAL_EXAMPLE
    one_by_one = scripted(*(bytes([b]) for b in b'\r\n"5"'))
    assert read_label_count(one_by_one, GUARD, "tcp://p") == b'\r\n"5"'


def test_silence_is_no_answer_not_an_error() -> None:
    assert read_label_count(scripted(), GUARD, "tcp://p") is None
    # the late line end of an earlier answer is no answer either
    assert read_label_count(scripted(b"\r\n"), GUARD, "tcp://p") is None
    # a serial line reports "nothing yet" as b"": the deadline still ends the wait
    assert read_label_count(lambda remaining, most: b"", 0.05, "/dev/ttyS0") is None


def test_an_answer_cut_short_is_an_error() -> None:
    with pytest.raises(PrinterError) as caught:
        read_label_count(scripted(b'"123'), GUARD, "tcp://p")
    assert caught.value.code == E.ERR_PRINTER_ODOMETER_ANSWER
    assert "incomplete" in caught.value.message


def test_a_flood_is_cut_off_at_the_cap() -> None:
    read = scripted(*([b'"' + b"1" * 20] + [b"1" * 20] * 1000))
    with pytest.raises(PrinterError) as caught:
        read_label_count(read, GUARD, "tcp://p")
    assert caught.value.code == E.ERR_PRINTER_ODOMETER_ANSWER
    assert len(read.calls) <= MAX_ODOMETER_BYTES // 20 + 2


def test_garbage_stops_the_read_at_once_and_the_parser_refuses_it() -> None:
    read = scripted(b"\x02PRINT METERS")
    answer = read_label_count(read, GUARD, "tcp://p")
    assert answer == b"\x02PRINT METERS" and len(read.calls) == 1
    refused(answer)


@pytest.mark.parametrize(
    ("answer", "complete"),
    [(b"", False), (b"\r\n", False), (b'"12', False), (b'"12"', True), (b"x", True)],
)
def test_when_an_answer_is_complete(answer: bytes, complete: bool) -> None:
    assert answer_complete(answer) is complete


# -- over TCP -------------------------------------------------------------------------------


def test_the_count_grows_with_each_label_printed(simulator: PrinterSimulator) -> None:
    with TcpPrinter(*simulator.address, status_timeout=GUARD) as printer:
        assert printer.query_odometer() == LabelOdometer(0)
        for zpl in label_formats(3):
            printer.send(zpl, "x")
        printer.send(b"^XA^FDfour^FS^PQ4^XZ", "x")  # one format, four labels
        assert printer.query_odometer().labels == 7
        assert printer.query_status().ready  # status and count share one connection
        assert printer.query_odometer().labels == 7
    assert simulator.accepted == 1


def test_formats_held_in_the_buffer_count_only_when_they_print() -> None:
    with PrinterSimulator(odometer_start=500) as simulator:
        simulator.set_fault("paused")
        with TcpPrinter(*simulator.address, status_timeout=GUARD) as printer:
            for zpl in label_formats(2):
                printer.send(zpl, "x")
            assert printer.query_status().formats_in_buffer == 2
            assert printer.query_odometer().labels == 500
            simulator.set_fault(None)
            assert printer.query_odometer().labels == 502


def test_a_printer_without_the_counter_says_so(simulator: PrinterSimulator) -> None:
    simulator.set_odometer_fault("unsupported")
    with TcpPrinter(*simulator.address, status_timeout=GUARD) as printer:
        reading = printer.query_odometer()
    assert reading == LabelOdometer(None, UNSUPPORTED) and reading.raw == b'"?"'


def test_a_printer_without_set_get_do_is_no_answer_and_the_line_is_dropped(
    simulator: PrinterSimulator,
) -> None:
    simulator.set_odometer_fault("silent")
    with TcpPrinter(*simulator.address, status_timeout=SHORT) as printer:
        assert printer.query_odometer() == LabelOdometer(None, NO_ANSWER)
        simulator.set_odometer_fault(None)
        assert printer.query_odometer().labels == 0
    assert simulator.accepted == 2  # silence closed the first connection


def test_a_late_answer_is_never_read_as_the_next_one() -> None:
    """A printer that answers after the deadline: the next question goes on a new line."""
    stop = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    connections: list[int] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _peer = listener.accept()
            except TimeoutError:
                continue
            connections.append(1)
            first_line = len(connections) == 1
            with conn:
                conn.settimeout(GUARD)
                asked = 0
                try:
                    while not stop.is_set() and conn.recv(4096):
                        asked += 1
                        if first_line and asked == 1:
                            continue  # silent now; its answer would come with the next read
                        conn.sendall(b'"111"' if first_line else b'"2"')
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        host, port = listener.getsockname()[:2]
        with TcpPrinter(host, port, status_timeout=SHORT) as printer:
            assert printer.query_odometer().why == NO_ANSWER
            assert printer.query_odometer().labels == 2
    finally:
        stop.set()
        thread.join(GUARD)
        listener.close()


def test_garbage_is_an_error_and_the_next_question_starts_clean(
    simulator: PrinterSimulator,
) -> None:
    simulator.set_odometer_fault("garbage")
    with TcpPrinter(*simulator.address, status_timeout=GUARD) as printer:
        with pytest.raises(PrinterError) as caught:
            printer.query_odometer()
        assert caught.value.code == E.ERR_PRINTER_ODOMETER_ANSWER
        simulator.set_odometer_fault(None)
        assert printer.query_odometer().labels == 0


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (b'"12', E.ERR_PRINTER_ODOMETER_ANSWER),  # part of an answer, then silence
        (HQOD_ANSWER, E.ERR_PRINTER_ODOMETER_ANSWER),
        (b"A" * 5000, E.ERR_PRINTER_ODOMETER_ANSWER),  # more than the read cap
        (b'"99999999999"', E.ERR_PRINTER_ODOMETER_ANSWER),
        (None, E.ERR_PRINTER_IO),  # hangs up when asked
    ],
)
def test_misbehaving_printers_raise_a_printer_error(answer: bytes | None, code: str) -> None:
    with fake_printer(answer) as (host, port):
        with TcpPrinter(host, port, status_timeout=SHORT) as printer:
            with pytest.raises(PrinterError) as caught:
                printer.query_odometer()
    assert caught.value.code == code


def test_nothing_listening_is_unreachable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with TcpPrinter("127.0.0.1", port) as printer:
        with pytest.raises(PrinterError) as caught:
            printer.query_odometer()
    assert caught.value.code == E.ERR_PRINTER_UNREACHABLE


def test_the_request_is_a_set_get_do_getvar_line() -> None:
    assert LABEL_COUNT_REQUEST == b'! U1 getvar "odometer.total_label_count"\r\n'


# -- over a serial line, and spools ---------------------------------------------------------


def test_the_count_comes_back_on_a_serial_line(simulator: PrinterSimulator) -> None:
    host, port = simulator.address
    with SerialPrinter(f"socket://{host}:{port}", status_timeout=GUARD) as printer:
        printer.send(label_formats(1)[0], "x")
        assert printer.query_odometer().labels == 1
        simulator.set_odometer_fault("unsupported")
        assert printer.query_odometer().why == UNSUPPORTED


def test_a_silent_serial_printer_is_no_answer_and_the_port_is_reopened(
    simulator: PrinterSimulator,
) -> None:
    simulator.set_odometer_fault("silent")
    host, port = simulator.address
    with SerialPrinter(f"socket://{host}:{port}", status_timeout=SHORT) as printer:
        assert printer.query_odometer().why == NO_ANSWER
        assert printer.serial_port is None
        simulator.set_odometer_fault(None)
        assert printer.query_odometer().labels == 0


def test_an_echo_is_not_a_label_count() -> None:
    with SerialPrinter("loop://", status_timeout=SHORT) as printer:
        with pytest.raises(PrinterError) as caught:
            printer.query_odometer()
        assert caught.value.code == E.ERR_PRINTER_ODOMETER_ANSWER
        assert printer.serial_port is None


@pytest.mark.parametrize(
    ("answer", "code"),
    [(b'"12', E.ERR_PRINTER_ODOMETER_ANSWER), (None, E.ERR_PRINTER_IO)],
)
def test_misbehaving_serial_printers_raise_a_printer_error(answer: bytes | None, code: str) -> None:
    with fake_printer(answer) as (host, port):
        with SerialPrinter(f"socket://{host}:{port}", status_timeout=SHORT) as printer:
            with pytest.raises(PrinterError) as caught:
                printer.query_odometer()
    assert caught.value.code == code


@pytest.mark.parametrize("scheme", ["file", "pdf"])
def test_spool_directories_keep_no_odometer(scheme: str, tmp_path: Path) -> None:
    with open_printer(f"{scheme}://{tmp_path / 'spool'}") as printer:
        assert printer.query_odometer() == LabelOdometer(None, SPOOL)
    assert not (tmp_path / "spool").exists()  # nothing was touched to say so
