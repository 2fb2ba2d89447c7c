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
from printers.pdfspool import PdfPrinter
from printers.serialport import SerialPrinter, SerialSettings
from printers.tcp import TcpPrinter
from printers.urls import check_spool_directory, describe_url, open_printer, parse_printer_url


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
        assert isinstance(printer, FilePrinter) and printer.format == "zpl"
        assert printer.directory == Path(directory)
        assert printer.url == describe_url(url) == Path(directory).as_uri()


@pytest.mark.parametrize(
    ("url", "directory", "normal"),
    [
        ("pdf:///var/spool/labels", "/var/spool/labels", "pdf:///var/spool/labels"),
        ("PDF:///var/spool/labels/", "/var/spool/labels", "pdf:///var/spool/labels"),
        ("pdf://localhost/tmp/x", "/tmp/x", "pdf:///tmp/x"),
        ("pdf:///tmp/my%20labels", "/tmp/my labels", "pdf:///tmp/my%20labels"),
    ],
)
def test_pdf_urls_open_a_pdf_spool_directory(url: str, directory: str, normal: str) -> None:
    with open_printer(url) as printer:
        assert isinstance(printer, PdfPrinter) and printer.format == "pdf"
        assert printer.directory == Path(directory)
        assert printer.url == describe_url(url) == normal


SERIAL_URLS = [
    # (url, what pyserial is given, line settings, normal form)
    ("/dev/ttyUSB0", "/dev/ttyUSB0", SerialSettings(), "/dev/ttyUSB0?baud=9600"),
    (
        "/dev/serial/by-id/usb-Zebra_Technologies_ZTC_ZD421-203dpi_ZPL_D4J2-if00?baud=115200",
        "/dev/serial/by-id/usb-Zebra_Technologies_ZTC_ZD421-203dpi_ZPL_D4J2-if00",
        SerialSettings(baudrate=115200),
        "/dev/serial/by-id/usb-Zebra_Technologies_ZTC_ZD421-203dpi_ZPL_D4J2-if00?baud=115200",
    ),
    (
        "/dev/ttyS0?parity=e&bytesize=7&stopbits=2&rtscts=yes&xonxoff=off&baud=19200",
        "/dev/ttyS0",
        SerialSettings(19200, 7, "E", 2, True, False),
        "/dev/ttyS0?baud=19200&bytesize=7&parity=E&stopbits=2&rtscts=1",
    ),
    (
        "/dev/ttyACM0?stopbits=1.5",
        "/dev/ttyACM0",
        SerialSettings(stopbits=1.5),
        "/dev/ttyACM0?baud=9600&stopbits=1.5",
    ),
    ("COM3", "COM3", SerialSettings(), "COM3?baud=9600"),
    ("com12?baud=38400", "COM12", SerialSettings(baudrate=38400), "COM12?baud=38400"),
    ("\\\\.\\COM10", "COM10", SerialSettings(), "COM10?baud=9600"),
    (
        "socket://127.0.0.1:9100",
        "socket://127.0.0.1:9100",
        SerialSettings(),
        "socket://127.0.0.1:9100?baud=9600",
    ),
    (
        "SOCKET://Printer-1:4001?logging=debug",
        "socket://printer-1:4001?logging=debug",
        SerialSettings(),
        "socket://printer-1:4001?baud=9600&logging=debug",
    ),
    (
        "socket://[::1]:4001",
        "socket://[::1]:4001",
        SerialSettings(),
        "socket://[::1]:4001?baud=9600",
    ),
    (
        "rfc2217://ts-1:2217?ign_set_control&timeout=5&baud=4800",
        "rfc2217://ts-1:2217?ign_set_control&timeout=5",
        SerialSettings(baudrate=4800),
        "rfc2217://ts-1:2217?baud=4800&ign_set_control&timeout=5",
    ),
    ("loop://", "loop://", SerialSettings(), "loop://?baud=9600"),
    (
        "loop://?logging=info",
        "loop://?logging=info",
        SerialSettings(),
        "loop://?baud=9600&logging=info",
    ),
    (
        "spy:///dev/ttyUSB0?color",
        "spy:///dev/ttyUSB0?color",
        SerialSettings(),
        "spy:///dev/ttyUSB0?baud=9600&color",
    ),
    (
        "alt:///dev/ttyUSB0?class=PosixPollSerial",
        "alt:///dev/ttyUSB0?class=PosixPollSerial",
        SerialSettings(),
        "alt:///dev/ttyUSB0?baud=9600&class=PosixPollSerial",
    ),
    (
        "hwgrep://0a5f:.*&n=2&skip_busy?baud=19200",
        "hwgrep://0a5f:.*&n=2&skip_busy",
        SerialSettings(baudrate=19200),
        "hwgrep://0a5f:.*&n=2&skip_busy?baud=19200",
    ),
]


@pytest.mark.parametrize(("url", "device", "settings", "normal"), SERIAL_URLS)
def test_serial_urls_open_a_serial_printer(
    url: str, device: str, settings: SerialSettings, normal: str
) -> None:
    with open_printer(url, status_timeout=0.7) as printer:
        assert isinstance(printer, SerialPrinter) and printer.format == "zpl"
        assert (printer.port, printer.settings) == (device, settings)
        assert printer.url == describe_url(url) == normal
        assert printer.status_timeout == 0.7
    assert parse_printer_url(normal).device == device


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
        "/tmp/labels",
        "dev/ttyUSB0",
        "/dev/",
        "/dev/../etc/passwd",
        "/dev/./ttyS0",
        "/dev/tty USB0",
        "/dev/ttyUSB0?",
        "/dev/ttyUSB0?baud",
        "/dev/ttyUSB0?baud=",
        "/dev/ttyUSB0?baud=9600x",
        "/dev/ttyUSB0?baud=49",
        "/dev/ttyUSB0?baud=99999999",
        "/dev/ttyUSB0?baud=9600&baud=19200",
        "/dev/ttyUSB0?bytesize=9",
        "/dev/ttyUSB0?parity=X",
        "/dev/ttyUSB0?stopbits=3",
        "/dev/ttyUSB0?rtscts=maybe",
        "/dev/ttyUSB0?timeout=5",
        "/dev/ttyUSB0?logging=debug",
        "/dev/ttyUSB0#x",
        "/dev/ttyUSB0?baud=9600%26parity=E",
        "COM0",
        "COM257",
        "COM3:",
        "LPT1",
        "socket://",
        "socket://printer-1",
        "socket://printer-1:0",
        "socket://printer-1:9100/x",
        "socket://printer-1:9100?logging=verbose",
        "socket://printer-1:9100?file=/tmp/x",
        "socket://user@printer-1:9100",
        "rfc2217://printer-1",
        "rfc2217://printer-1:2217?timeout=x",
        "loop://printer-1",
        "loop://?color",
        "spy://socket://printer-1:9100",
        "spy:///dev/ttyUSB0?file=/etc/passwd",
        "spy:///dev/ttyUSB0?file=log.txt",
        "spy:///tmp/x",
        "alt:///dev/ttyUSB0?class=serial_for_url",
        "alt:///dev/ttyUSB0?class=",
        "alt://loop://",
        "hwgrep://",
        "hwgrep://(unclosed",
        "hwgrep://zebra&n=1",
        "hwgrep://zebra&n=x",
        "hwgrep://zebra&baud=9600",
        "hwgrep://zebra?n=2",
        "hwgrep://" + "a" * 101,
        "rfc2217://[::1",
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


@given(
    st.from_regex(
        r"(/dev/|COM|socket://|rfc2217://|loop://|spy://|alt://|hwgrep://|pdf://)"
        r"[\x21-\x7e]{0,40}",
        fullmatch=True,
    )
)
def test_serial_like_text_opens_a_printer_or_raises_a_url_error(url: str) -> None:
    opens_or_refuses(url)


def test_serial_options_are_ours_or_known_to_pyserial() -> None:
    parsed = parse_printer_url("socket://p:1?logging=debug&baud=300&xonxoff=1")
    assert parsed.settings == SerialSettings(baudrate=300, xonxoff=True)
    assert parsed.passthrough == ("logging=debug",)
    assert parsed.device == "socket://p:1?logging=debug"


@pytest.mark.parametrize("scheme", ["file", "pdf"])
def test_a_spool_url_asks_for_its_folder_with_create_1(scheme: str, tmp_path: Path) -> None:
    missing = tmp_path / "labels"
    url = f"{scheme}://{missing}?create=1"
    parsed = parse_printer_url(url)
    assert parsed.create and str(parsed) == url and describe_url(url) == url
    check_spool_directory(url)  # allowed: it will be made
    with open_printer(url) as printer:
        assert printer.url == url
        printer.query_status()
    assert missing.is_dir()


@pytest.mark.parametrize("scheme", ["file", "pdf"])
def test_a_spool_url_without_create_needs_an_existing_folder(scheme: str, tmp_path: Path) -> None:
    url = f"{scheme}://{tmp_path / 'nonexistent' / 'dir'}"
    with pytest.raises(PrinterError) as caught:
        check_spool_directory(url)
    assert caught.value.code == E.ERR_PRINTER_NO_DIR
    assert "?create=1" in caught.value.message
    assert not (tmp_path / "nonexistent").exists()
    (tmp_path / "nonexistent" / "dir").mkdir(parents=True)
    check_spool_directory(url)


@pytest.mark.parametrize("query", ["?create=0", "?create", "?create=1&x=2", "?mode=1"])
def test_a_spool_url_takes_no_other_query(query: str) -> None:
    with pytest.raises(PrinterError) as caught:
        parse_printer_url(f"file:///tmp/spool{query}")
    assert caught.value.code == E.ERR_PRINTER_URL
