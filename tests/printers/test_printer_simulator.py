"""Tests for the simulator's stream scanner, recording, faults and life cycle."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from printers.odometer import LABEL_COUNT_REQUEST
from printers.simulator import (
    MAX_SGD_BYTES,
    FormatScanner,
    FormatTooLarge,
    PrinterSimulator,
)
from printers.status import PrinterStatus, format_host_status
from printers.tcp import TcpPrinter

STREAM = b"\r\n^XA^FDone^FS^XZ\r\n~HS junk ^XZ ~H ^XA^FD~HS inside^FS^XZ~HS"
EXPECTED = [b"^XA^FDone^FS^XZ", b"~HS", b"^XA^FD~HS inside^FS^XZ", b"~HS"]

pieces = st.lists(
    st.one_of(
        st.sampled_from([b"^XA^FDa^FS^XZ", b"^XA^XZ", b"~HS"]),
        # Junk must not spell a command, nor start one with the next piece ("! U" + "1").
        st.binary(max_size=20).filter(
            lambda junk: b"^XA" not in junk and b"~HS" not in junk and b"!" not in junk
        ),
    ),
    max_size=20,
)


def feed_in_chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    scanner = FormatScanner()
    found: list[bytes] = []
    start = 0
    for cut in [*sorted(cuts), len(data)]:
        found += scanner.feed(data[start:cut])
        start = cut
    return found


def test_scanner_finds_formats_and_status_requests_in_order() -> None:
    assert FormatScanner().feed(STREAM) == EXPECTED


def test_scanner_gives_the_same_result_for_every_two_way_split() -> None:
    for cut in range(len(STREAM) + 1):
        assert feed_in_chunks(STREAM, [cut]) == EXPECTED


def test_scanner_gives_the_same_result_one_byte_at_a_time() -> None:
    assert feed_in_chunks(STREAM, list(range(len(STREAM)))) == EXPECTED


@given(pieces, st.lists(st.integers(0, 400), max_size=30))
def test_scanner_result_does_not_depend_on_chunking(parts: list[bytes], cuts: list[int]) -> None:
    data = b"".join(parts)
    cuts = [cut for cut in cuts if cut <= len(data)]
    whole = FormatScanner().feed(data)
    assert feed_in_chunks(data, cuts) == whole
    assert whole == [part for part in parts if part.startswith((b"^XA", b"~HS"))]


def test_scanner_reports_an_unfinished_format() -> None:
    scanner = FormatScanner()
    assert scanner.feed(b"~HS^XA^FDa") == [b"~HS"]
    assert scanner.in_format
    assert scanner.feed(b"^FS^XZ") == [b"^XA^FDa^FS^XZ"]
    assert not scanner.in_format


def test_scanner_refuses_a_format_beyond_its_cap() -> None:
    scanner = FormatScanner(max_format_bytes=100)
    scanner.feed(b"^XA" + b"A" * 90)
    with pytest.raises(FormatTooLarge):
        scanner.feed(b"A" * 20)


def test_between_formats_the_scanner_keeps_only_a_possible_command_start() -> None:
    scanner = FormatScanner(max_format_bytes=100)
    for _ in range(1000):
        assert scanner.feed(b"x" * 1000 + b"~H") == []
    assert scanner.feed(b"S") == [b"~HS"]


def test_printed_formats_are_recorded_in_order_after_earlier_runs(tmp_path: Path) -> None:
    (tmp_path / "000007.zpl").write_bytes(b"from an earlier run")
    formats = [b"^XA^FD%d^FS^XZ" % number for number in range(3)]
    with PrinterSimulator(record_dir=tmp_path) as simulator:
        simulator.set_fault("paused")
        with TcpPrinter(*simulator.address) as printer:
            for zpl in formats:
                printer.send(zpl, "x")
            assert printer.query_status().formats_in_buffer == 3
        assert sorted(path.name for path in tmp_path.iterdir()) == ["000007.zpl"]
        simulator.set_fault(None)
    assert [(tmp_path / f"{n:06d}.zpl").read_bytes() for n in (8, 9, 10)] == formats
    assert (tmp_path / "000007.zpl").read_bytes() == b"from an earlier run"


def test_an_unknown_fault_is_refused(simulator: PrinterSimulator) -> None:
    with pytest.raises(ValueError, match="no_answer"):
        simulator.set_fault("on_fire")


def test_url_and_address_name_the_bound_port(simulator: PrinterSimulator) -> None:
    host, port = simulator.address
    assert host == "127.0.0.1" and port > 0
    assert simulator.url == f"tcp://127.0.0.1:{port}"


def test_stop_closes_the_port_and_is_idempotent() -> None:
    simulator = PrinterSimulator().start()
    assert simulator.start() is simulator
    address = simulator.address
    simulator.stop()
    simulator.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(address, timeout=5).close()


def test_connection_controls_need_a_running_simulator() -> None:
    simulator = PrinterSimulator()
    with pytest.raises(RuntimeError):
        simulator.refuse_connections(True)
    with pytest.raises(RuntimeError):
        simulator.drop_connections()


def test_a_taken_port_fails_start_cleanly(simulator: PrinterSimulator) -> None:
    with pytest.raises(OSError):
        PrinterSimulator(port=simulator.address[1]).start()


def test_rendered_images_share_numbers_with_recorded_formats_across_runs(
    tmp_path: Path,
) -> None:
    (tmp_path / "png").mkdir()
    (tmp_path / "png" / "000004.png").write_bytes(b"from an earlier run")
    zpl = b"^XA^PW200^LL100^FO10,10^BQN,2,3^FDQA,hello^FS^XZ"
    with PrinterSimulator(record_dir=tmp_path / "zpl", render_dir=tmp_path / "png") as sim:
        with TcpPrinter(*sim.address) as printer:
            printer.send(zpl, "x")
            printer.query_status()
    assert sorted(p.name for p in (tmp_path / "zpl").iterdir()) == ["000005.zpl"]
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == ["000004.png", "000005.png"]
    assert (tmp_path / "png" / "000005.png").read_bytes().startswith(b"\x89PNG")


# -- Set-Get-Do lines and the label odometer ------------------------------------------------

SGD_STREAM = (
    b'^XA^FDa^FS^XZ! U1 getvar "odometer.total_label_count"\r\n~HS'
    b'! U1 setvar "media.type" "label" \n'
    b"! U1 ^XA^FDb^FS^XZ"  # a ZPL prefix before the line end: no command, the format prints
    b'! U1 getvar "x" ~HS\r\n'  # a ~ before the line end: no command, the ~HS counts
)
SGD_EXPECTED = [
    b"^XA^FDa^FS^XZ",
    b'! U1 getvar "odometer.total_label_count"',
    b"~HS",
    b'! U1 setvar "media.type" "label" ',
    b"^XA^FDb^FS^XZ",
    b"~HS",
]


def test_scanner_finds_set_get_do_lines_however_the_stream_is_cut() -> None:
    assert FormatScanner().feed(SGD_STREAM) == SGD_EXPECTED
    for cut in range(len(SGD_STREAM) + 1):
        assert feed_in_chunks(SGD_STREAM, [cut]) == SGD_EXPECTED
    assert feed_in_chunks(SGD_STREAM, list(range(len(SGD_STREAM)))) == SGD_EXPECTED


def test_scanner_gives_up_on_a_line_that_never_ends() -> None:
    scanner = FormatScanner()
    assert scanner.feed(b"! U1 " + b"x" * MAX_SGD_BYTES) == []
    assert scanner.feed(b"\r\n^XA^XZ") == [b"^XA^XZ"]


def ask(simulator: PrinterSimulator, request: bytes, etx: int = 0) -> bytes:
    """Send one raw request; return the answer once it holds two quotes and `etx` ETX bytes."""
    with socket.create_connection(simulator.address, timeout=20) as sock:
        sock.sendall(request)
        answer = b""
        while answer.count(b'"') < 2 or answer.count(b"\x03") < etx:
            chunk = sock.recv(100)
            assert chunk
            answer += chunk
        return answer


def test_getvar_is_answered_in_quotes_with_nothing_after_it() -> None:
    with PrinterSimulator(odometer_start=31084) as simulator:
        answer = ask(simulator, LABEL_COUNT_REQUEST + b"~HS", etx=3)
        # the ~HS frames follow the closing quote at once: no line end in between
        assert answer == b'"31084"' + format_host_status(PrinterStatus())
        unknown = ask(simulator, b'! U1 getvar "device.unknown_thing"\r\n')
        assert unknown == b'"?"'
        assert simulator.odometer == 31084


def test_the_odometer_counts_printed_labels_and_labels_printed_elsewhere() -> None:
    with PrinterSimulator() as simulator:
        with TcpPrinter(*simulator.address) as printer:
            printer.send(b"^XA^FDa^FS^XZ", "a")
            printer.send(b"^XA^FDb^FS^PQ3^XZ", "b")
            printer.send(b"^XA^PQ0^XZ", "c")  # an invalid quantity prints one
            assert printer.query_status().ready
        assert simulator.odometer == 5
        simulator.add_labels(2)  # a test page printed from the printer's front panel
        assert simulator.odometer == 7
        with pytest.raises(ValueError):
            simulator.add_labels(-1)


def test_the_odometer_survives_a_restart_with_a_state_file(tmp_path: Path) -> None:
    state = tmp_path / "printer.json"
    with PrinterSimulator(odometer_start=100, state_file=state) as simulator:
        with TcpPrinter(*simulator.address) as printer:
            printer.send(b"^XA^XZ", "a")
            printer.query_status()
    assert json.loads(state.read_text()) == {"total_label_count": 101}
    with PrinterSimulator(odometer_start=5, state_file=state) as simulator:
        assert simulator.odometer == 101  # the printer's memory wins over the start value
    assert PrinterSimulator(odometer_start=5).odometer == 5  # no state file: no memory
    assert sorted(p.name for p in tmp_path.iterdir()) == ["printer.json"]


@pytest.mark.parametrize(
    "content", ["", "{}", '{"total_label_count": -1}', '{"total_label_count": "7"}', "[1]"]
)
def test_a_broken_state_file_is_refused(tmp_path: Path, content: str) -> None:
    state = tmp_path / "printer.json"
    state.write_text(content)
    with pytest.raises(ValueError, match="printer.json"):
        PrinterSimulator(state_file=state)


def test_odometer_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        PrinterSimulator(odometer_start=-1)
    with pytest.raises(ValueError):
        PrinterSimulator(odometer_start=2**32)
    with pytest.raises(ValueError, match="unsupported"):
        PrinterSimulator().set_odometer_fault("broken")


def test_a_silent_printer_answers_no_getvar_either(simulator: PrinterSimulator) -> None:
    simulator.set_fault("no_answer")
    with TcpPrinter(*simulator.address, status_timeout=0.3) as printer:
        assert printer.query_odometer().why == "no_answer"
