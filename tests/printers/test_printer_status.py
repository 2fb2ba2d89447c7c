"""Tests for PrinterStatus and the ~HS host status parser, including hostile answers."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from printers import errors as E
from printers.errors import PrinterError
from printers.status import PrinterStatus, format_host_status, parse_host_status

# The layout of the ZPL manual's ~HS example: a ready printer with nothing buffered.
MANUAL_EXAMPLE = (
    b"\x02030,0,0,1245,000,0,0,0,000,0,0,0\x03\r\n"
    b"\x02000,0,0,0,1,2,4,0,00000000,1,000\x03\r\n"
    b"\x021234,0\x03\r\n"
)
VALID = format_host_status(PrinterStatus(paper_out=True, formats_in_buffer=12))

statuses = st.builds(
    PrinterStatus,
    paper_out=st.booleans(),
    paused=st.booleans(),
    head_open=st.booleans(),
    ribbon_out=st.booleans(),
    buffer_full=st.booleans(),
    formats_in_buffer=st.integers(0, 999),
    labels_remaining=st.integers(0, 99_999_999),
)


def assert_status_error(data: Any) -> None:
    with pytest.raises(PrinterError) as caught:
        parse_host_status(data)
    assert type(caught.value) is PrinterError
    assert caught.value.code == E.ERR_PRINTER_STATUS


def test_parses_the_manual_example_as_ready() -> None:
    status = parse_host_status(MANUAL_EXAMPLE)
    assert status == PrinterStatus()
    assert status.raw == MANUAL_EXAMPLE
    assert (status.ready, status.state, status.fault_code) == (True, "ready", None)
    assert status.message == "The printer is ready." and status.error() is None


def test_reads_flags_and_counters_from_their_positions() -> None:
    answer = (
        b"\x02030,1,1,1245,007,1,0,0,000,0,0,0\x03\r\n"
        b"\x02000,0,1,1,1,2,4,0,00000042,1,000\x03\r\n"
        b"\x021234,0\x03\r\n"
    )
    assert parse_host_status(answer) == PrinterStatus(
        paper_out=True,
        paused=True,
        head_open=True,
        ribbon_out=True,
        buffer_full=True,
        formats_in_buffer=7,
        labels_remaining=42,
    )


def test_tolerates_letters_in_settings_it_does_not_interpret() -> None:
    # Newer firmware reports some print modes (kiosk, stream) as letters.
    answer = MANUAL_EXAMPLE.replace(b",1,2,4,0,", b",1,K,4,0,")
    assert parse_host_status(answer).ready


@pytest.mark.parametrize(
    ("flags", "state", "code"),
    [
        ({"paper_out": True, "head_open": True, "paused": True}, "paper_out", "PAPER_OUT"),
        ({"head_open": True, "ribbon_out": True}, "head_open", "HEAD_OPEN"),
        ({"ribbon_out": True, "paused": True}, "ribbon_out", "RIBBON_OUT"),
        ({"paused": True, "buffer_full": True}, "paused", "PAUSED"),
        ({"buffer_full": True}, "buffer_full", "BUFFER_FULL"),
    ],
)
def test_state_is_the_worst_fault(flags: dict[str, Any], state: str, code: str) -> None:
    status = PrinterStatus(**flags)
    assert not status.ready
    assert status.state == state
    assert status.fault_code == f"ERR_PRINTER_{code}"
    error = status.error()
    assert error is not None and error.code == status.fault_code
    assert error.message == status.message and status.message.endswith(".")


@pytest.mark.parametrize("counters", [{"formats_in_buffer": -1}, {"labels_remaining": 10**8}])
def test_status_refuses_counters_a_printer_cannot_report(counters: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        PrinterStatus(**counters)


@given(statuses)
def test_format_then_parse_round_trips(status: PrinterStatus) -> None:
    answer = format_host_status(status)
    parsed = parse_host_status(answer)
    assert parsed == status
    assert parsed.raw == answer


@given(statuses)
def test_answer_without_the_last_line_end_still_parses(status: PrinterStatus) -> None:
    # A reader may stop at the third ETX, before the CR LF that follows it.
    assert parse_host_status(format_host_status(status).rstrip(b"\r\n")) == status


def test_every_truncation_of_an_answer_is_refused() -> None:
    complete = VALID.rstrip(b"\r\n")
    for end in range(len(VALID)):
        if VALID[:end].rstrip(b"\r\n") == complete:
            assert parse_host_status(VALID[:end]) == parse_host_status(VALID)
        else:
            assert_status_error(VALID[:end])


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\r\n",
        b"\x00" * 100,
        VALID.replace(b"\x02", b"", 1),
        VALID.replace(b"\x03", b"", 1),
        VALID[: VALID.index(b"\x021234")],
        VALID + b"\x021234,0\x03\r\n",
        VALID + b"garbage",
        b"garbage" + VALID,
        VALID.replace(b"\x02", b"\x02\x02", 1),
        VALID.replace(b",", b"", 1),
        VALID.replace(b"1234,0", b"1234,0,0"),
        VALID.replace(b"1234,0", b"1234,"),
        VALID.replace(b"030,1,", b"030,2,"),
        VALID.replace(b"030,1,", b"030,x,"),
        VALID.replace(b",012,", b",0x2,"),
        VALID.replace(b",012,", b",-12,"),
        VALID.replace(b",012,", b",1000,"),
        VALID.replace(b",012,", b",012\x00,"),
        VALID.replace(b",012,", b",\xff12,"),
        VALID.replace(b"1218", b"123456789"),
        VALID.replace(b"00000000", b"999999999"),
        VALID.replace(b"\r\n", b"\r\nX", 1),
        VALID * 2,
        VALID + b"\r\n" * 5000,
        b"\x02" + b"1" * 1_000_000 + b"\x03\r\n",
        b"\x03\r\n" * 3,
        b"\x02\x03\r\n" * 3,
    ],
)
def test_malformed_answers_are_refused(data: bytes) -> None:
    assert_status_error(data)


@pytest.mark.parametrize("data", ["\x02030\x03", None, 12, [VALID]])
def test_answers_that_are_not_bytes_are_refused(data: Any) -> None:
    assert_status_error(data)


def test_bytearray_and_memoryview_answers_parse() -> None:
    assert parse_host_status(bytearray(VALID)) == parse_host_status(memoryview(VALID))


@given(st.binary(max_size=300))
def test_arbitrary_bytes_only_ever_raise_a_status_error(data: bytes) -> None:
    try:
        parse_host_status(data)
    except PrinterError as error:
        assert error.code == E.ERR_PRINTER_STATUS


@given(position=st.integers(0, len(VALID) - 1), value=st.integers(0, 255))
def test_a_changed_byte_parses_or_raises_a_status_error(position: int, value: int) -> None:
    data = bytearray(VALID)
    data[position] = value
    try:
        status = parse_host_status(bytes(data))
    except PrinterError as error:
        assert error.code == E.ERR_PRINTER_STATUS
    else:
        assert status.raw == bytes(data)
