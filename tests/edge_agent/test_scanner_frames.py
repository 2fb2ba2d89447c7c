"""ScanFramer: CR/LF framing of a scanner's byte stream, with hostile input."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.scanframes import (
    ERR_SCAN_GARBAGE,
    ERR_SCAN_INCOMPLETE,
    ERR_SCAN_TOO_LONG,
    Frame,
    FrameError,
    ScanError,
    ScanFramer,
)


def outcome(results: list[Frame | FrameError]) -> list[str]:
    """Return frames as their text and refusals as their code, in order."""
    return [r.text if isinstance(r, Frame) else r.code for r in results]


def feed_all(framer: ScanFramer, *chunks: bytes) -> list[str]:
    out: list[Frame | FrameError] = []
    for chunk in chunks:
        out += framer.feed(chunk)
    return outcome(out)


TABLE = [
    (b"AB\r\n", ["AB"]),
    (b"AB\r", ["AB"]),
    (b"AB\n", ["AB"]),
    (b"AB\rCD\rEF\r", ["AB", "CD", "EF"]),
    (b"AB\nCD\nEF\n", ["AB", "CD", "EF"]),
    (b"AB\r\nCD\nEF\r", ["AB", "CD", "EF"]),
    (b"AB\n\rCD\r\n", ["AB", "CD"]),  # LF CR is two terminators around an empty line
    (b"\r\n\r\n\n\r\rAB\r\n\r\n", ["AB"]),
    (b"\r\n", []),
    (b"", []),
    (b"A\x1dB\r\n", ["A\x1dB"]),  # GS is data
    (b" spaced out \r\n", [" spaced out "]),
]


@pytest.mark.parametrize(("stream", "expected"), TABLE)
def test_framing_table(stream: bytes, expected: list[str]) -> None:
    assert feed_all(ScanFramer(), stream) == expected


@pytest.mark.parametrize(("stream", "expected"), TABLE)
def test_framing_split_at_every_offset(stream: bytes, expected: list[str]) -> None:
    for cut in range(len(stream) + 1):
        framer = ScanFramer()
        assert feed_all(framer, stream[:cut], stream[cut:]) == expected, cut
        assert not framer.pending


@pytest.mark.parametrize(("stream", "expected"), TABLE)
def test_framing_byte_by_byte(stream: bytes, expected: list[str]) -> None:
    chunks = [stream[i : i + 1] for i in range(len(stream))]
    assert feed_all(ScanFramer(), *chunks) == expected


def test_crlf_split_across_feeds_is_one_terminator() -> None:
    framer = ScanFramer()
    assert feed_all(framer, b"]C0ONE\r") == ["]C0ONE"]
    assert not framer.pending
    assert feed_all(framer, b"\n]C0TWO\r", b"\n") == ["]C0TWO"]
    assert framer.flush() == []


def test_partial_frame_waits_for_its_terminator() -> None:
    framer = ScanFramer()
    assert feed_all(framer, b"]d2010400", b"6381333931") == []
    assert framer.pending
    assert feed_all(framer, b"\r\n") == ["]d20104006381333931"]


def test_no_terminator_is_incomplete_on_flush() -> None:
    framer = ScanFramer()
    assert feed_all(framer, b"]C1010400638133") == []
    [error] = framer.flush()
    assert error.code == ERR_SCAN_INCOMPLETE
    assert isinstance(error, ScanError)
    assert not framer.pending
    assert framer.flush() == []
    # The cut-off bytes never join the next scan.
    assert feed_all(framer, b"]C0NEXT\r\n") == ["]C0NEXT"]


def test_frame_of_exactly_max_frame_passes() -> None:
    assert feed_all(ScanFramer(8), b"12345678\r\n") == ["12345678"]
    assert feed_all(ScanFramer(8), b"123456789\r\n") == [ERR_SCAN_TOO_LONG]


def test_ten_kilobyte_line_is_reported_once_and_the_next_frame_survives() -> None:
    line = b"X" * 10_240 + b"\r\n"
    framer = ScanFramer()
    assert feed_all(framer, line + b"]C0GOOD\r\n") == [ERR_SCAN_TOO_LONG, "]C0GOOD"]
    # The same line in small pieces: still one report, at the moment it overflows.
    framer = ScanFramer()
    pieces = [line[i : i + 64] for i in range(0, len(line), 64)]
    results = []
    for n, piece in enumerate(pieces):
        got = feed_all(framer, piece)
        if got:
            results.append((n, got))
    assert results == [(4096 // 64, [ERR_SCAN_TOO_LONG])]
    assert feed_all(framer, b"]C0GOOD\n") == ["]C0GOOD"]


def test_too_long_then_flush_reports_nothing_more() -> None:
    framer = ScanFramer(4)
    assert feed_all(framer, b"123456") == [ERR_SCAN_TOO_LONG]
    assert feed_all(framer, b"789") == []
    assert framer.pending
    assert framer.flush() == []
    assert feed_all(framer, b"OK\r") == ["OK"]


def test_too_long_terminator_split_from_its_lf() -> None:
    framer = ScanFramer(4)
    assert feed_all(framer, b"123456\r") == [ERR_SCAN_TOO_LONG]
    assert feed_all(framer, b"\nOK\r\n") == ["OK"]


@pytest.mark.parametrize("byte", [b for b in range(256) if b not in (0x0A, 0x0D, 0x1D)])
def test_every_non_text_byte_makes_its_frame_garbage(byte: int) -> None:
    stream = b"]C0ONE\r\nX" + bytes([byte]) + b"Y\r\n]C0TWO\r\n"
    expected = ["]C0ONE", "X" + chr(byte) + "Y", "]C0TWO"]
    if not 0x20 <= byte <= 0x7E:
        expected[1] = ERR_SCAN_GARBAGE
    assert feed_all(ScanFramer(), stream) == expected


def test_binary_noise_between_good_frames() -> None:
    noise = bytes(range(256)) + bytes(range(255, -1, -1))
    got = feed_all(ScanFramer(), b"]C0ONE\r\n" + noise + b"\r\n]C0TWO\r\n")
    assert got[0] == "]C0ONE" and got[-1] == "]C0TWO"
    assert set(got[1:-1]) == {ERR_SCAN_GARBAGE}


@pytest.mark.parametrize(
    "junk",
    [b"\xc3\x28", b"\xff\xfe", b"caf\xc3\xa9", b"\xe2\x82\xac", b"tab\there", b"\x00"],
    ids=["bad-utf8", "bom", "utf8-e-acute", "utf8-euro", "tab", "nul"],
)
def test_non_ascii_text_is_garbage_even_when_valid_utf8(junk: bytes) -> None:
    assert feed_all(ScanFramer(), junk + b"\r\n") == [ERR_SCAN_GARBAGE]


def test_max_frame_must_be_positive() -> None:
    with pytest.raises(ValueError):
        ScanFramer(0)


_TEXT = re.compile(r"[ -~\x1d]+")


@given(st.lists(st.binary(max_size=300), max_size=20), st.integers(1, 200))
def test_any_bytes_give_only_clean_frames_or_frame_errors(
    chunks: list[bytes], max_frame: int
) -> None:
    framer = ScanFramer(max_frame)
    results = [r for chunk in chunks for r in framer.feed(chunk)] + list(framer.flush())
    for r in results:
        if isinstance(r, Frame):
            assert _TEXT.fullmatch(r.text) and len(r.text) <= max_frame
        else:
            assert r.code in (ERR_SCAN_GARBAGE, ERR_SCAN_TOO_LONG, ERR_SCAN_INCOMPLETE)
    assert not framer.pending


@given(st.lists(st.text("ABC]\x1d019", min_size=1, max_size=30), max_size=10), st.data())
def test_frames_survive_any_chunking(lines: list[str], data: st.DataObject) -> None:
    stream = b"".join(
        line.encode() + data.draw(st.sampled_from([b"\r", b"\n", b"\r\n"])) for line in lines
    )
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert feed_all(ScanFramer(), *pieces) == lines
