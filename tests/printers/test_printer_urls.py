"""Tests for printer URLs: the supported forms, their normal form, and everything else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from printers import errors as E
from printers.errors import PrinterError
from printers.filespool import FilePrinter
from printers.tcp import TcpPrinter
from printers.urls import describe_url, open_printer


@pytest.mark.parametrize(
    ("url", "host", "port", "normal"),
    [
        ("tcp://printer-1.line3.local", "printer-1.line3.local", 9100, None),
        ("TCP://Printer-1:6101", "printer-1", 6101, "tcp://printer-1:6101"),
        ("tcp://10.0.0.5:9100/", "10.0.0.5", 9100, "tcp://10.0.0.5:9100"),
        ("  tcp://10.0.0.5\n", "10.0.0.5", 9100, "tcp://10.0.0.5:9100"),
        ("tcp://[::1]", "::1", 9100, "tcp://[::1]:9100"),
        ("tcp://[0:0:0:0:0:0:0:1]:1", "::1", 1, "tcp://[::1]:1"),
        ("tcp://[FE80::A]:65535", "fe80::a", 65535, "tcp://[fe80::a]:65535"),
    ],
)
def test_tcp_urls_open_a_tcp_printer(url: str, host: str, port: int, normal: str | None) -> None:
    with open_printer(url) as printer:
        assert isinstance(printer, TcpPrinter)
        assert (printer.host, printer.port) == (host, port)
        assert printer.url == describe_url(url) == (normal or f"tcp://{host}:{port}")


@pytest.mark.parametrize(
    ("url", "directory"),
    [
        ("file:///var/spool/labels", "/var/spool/labels"),
        ("FILE:///var/spool/labels/", "/var/spool/labels"),
        ("file://localhost/tmp/x", "/tmp/x"),
        ("file:///tmp/my%20labels", "/tmp/my labels"),
    ],
)
def test_file_urls_open_a_spool_directory(url: str, directory: str) -> None:
    with open_printer(url) as printer:
        assert isinstance(printer, FilePrinter)
        assert printer.directory == Path(directory)
        assert printer.url == describe_url(url) == Path(directory).as_uri()


@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        "printer-1",
        "printer-1:9100",
        "http://printer-1",
        "lpd://printer-1/queue",
        "serial:///dev/ttyUSB0",
        "tcp:/printer-1",
        "tcp://",
        "tcp://:9100",
        "tcp://printer-1:",
        "tcp://printer-1:0",
        "tcp://printer-1:65536",
        "tcp://printer-1:-1",
        "tcp://printer-1:+9100",
        "tcp://printer-1:9100x",
        "tcp://printer-1:009100",
        "tcp://printer-1/queue",
        "tcp://printer-1?timeout=1",
        "tcp://printer-1#x",
        "tcp://user:pw@printer-1",
        "tcp://::1",
        "tcp://[::1",
        "tcp://[::1]x",
        "tcp://[zz::1]",
        "tcp://[10.0.0.5]",
        "tcp://printer_1",
        "tcp://-printer",
        "tcp://printer..local",
        "tcp://" + "a" * 64,
        "tcp://999.1.1.1",
        "tcp://1.2.3",
        "tcp://print er",
        "tcp://prin\nter",
        "tcp://printer\x00",
        "tcp://printér",
        "tcp://" + "a." * 300 + "com",
        "file://relative/dir",
        "file:relative",
        "file:",
        "file://",
        "file://server/share",
        "file:///tmp/a%00b",
        "file:///tmp/a%0Ab",
        "file:///tmp/x?y",
        "file:///tmp/x#y",
        "x" * 10_000,
        None,
        b"tcp://printer-1",
        42,
    ],
)
def test_anything_else_is_refused_with_the_supported_forms(url: Any) -> None:
    for call in (open_printer, describe_url):
        with pytest.raises(PrinterError) as caught:
            call(url)
        assert caught.value.code == E.ERR_PRINTER_URL
        assert "tcp://HOST[:PORT]" in caught.value.message
        assert "file:///" in caught.value.message
        assert len(caught.value.message) < 400


def test_timeouts_reach_the_tcp_printer() -> None:
    with open_printer("tcp://printer-1", connect_timeout=0.5, status_timeout=0.7) as printer:
        assert isinstance(printer, TcpPrinter)
        assert (printer.connect_timeout, printer.status_timeout) == (0.5, 0.7)


def test_timeouts_are_accepted_and_unused_for_files() -> None:
    with open_printer("file:///tmp/spool", status_timeout=0.7) as printer:
        assert isinstance(printer, FilePrinter)


def test_an_unknown_timeout_name_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match="read_timeout"):
        open_printer("tcp://printer-1", read_timeout=1.0)


def test_opening_a_printer_does_no_io(tmp_path: Path) -> None:
    missing = tmp_path / "not-yet"
    with open_printer(missing.as_uri()):
        pass
    assert not missing.exists()


def opens_or_refuses(url: str) -> None:
    """Assert that `url` opens a printer in its normal form or is refused as a URL."""
    try:
        printer = open_printer(url)
    except PrinterError as error:
        assert error.code == E.ERR_PRINTER_URL
    else:
        printer.close()
        assert describe_url(printer.url) == printer.url


@given(st.text(max_size=600))
def test_any_text_opens_a_printer_or_raises_a_url_error(url: str) -> None:
    opens_or_refuses(url)


@given(st.from_regex(r"(tcp|file)://[\x21-\x7e]{0,40}", fullmatch=True))
def test_url_like_text_opens_a_printer_or_raises_a_url_error(url: str) -> None:
    opens_or_refuses(url)
