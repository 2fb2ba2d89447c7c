"""Tests for the simulator's stream scanner, recording, faults and life cycle."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from printers.simulator import FormatScanner, FormatTooLarge, PrinterSimulator
from printers.tcp import TcpPrinter

STREAM = b"\r\n^XA^FDone^FS^XZ\r\n~HS junk ^XZ ~H ^XA^FD~HS inside^FS^XZ~HS"
EXPECTED = [b"^XA^FDone^FS^XZ", b"~HS", b"^XA^FD~HS inside^FS^XZ", b"~HS"]

pieces = st.lists(
    st.one_of(
        st.sampled_from([b"^XA^FDa^FS^XZ", b"^XA^XZ", b"~HS"]),
        st.binary(max_size=20).filter(lambda junk: b"^XA" not in junk and b"~HS" not in junk),
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
