"""Open a printer from the URL in the configuration: `tcp://HOST[:PORT]` or `file:///DIR`.

The URL comes from a config file or an admin page, so it is parsed strictly: anything that
is not exactly one of the supported forms is refused with `ERR_PRINTER_URL` and a message
that shows the forms, rather than guessed at.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.request import url2pathname

from printers import errors as E
from printers.base import PrinterTransport
from printers.errors import PrinterError
from printers.filespool import FilePrinter
from printers.tcp import DEFAULT_PORT, TcpPrinter, tcp_url

MAX_URL = 512
SUPPORTED_FORMS = (
    "tcp://HOST[:PORT] (port 9100 by default, an IPv6 address in brackets) "
    "or file:///ABSOLUTE/DIRECTORY"
)
TIMEOUT_NAMES = frozenset({"connect_timeout", "status_timeout", "write_timeout"})

_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_PORT = re.compile(r"[0-9]{1,5}")
_URL_CHARS = re.compile(r"[!-~]+")


@dataclass(frozen=True, slots=True)
class PrinterUrl:
    """A parsed printer URL: a TCP host and port, or an absolute spool directory."""

    scheme: str
    host: str = ""
    port: int = 0
    directory: Path | None = None

    def __str__(self) -> str:
        if self.directory is not None:
            return self.directory.as_uri()
        return tcp_url(self.host, self.port)


def _refuse(url: str, why: str) -> PrinterError:
    return PrinterError(
        E.ERR_PRINTER_URL,
        f"Printer URL {url[:80]!r} cannot be used ({why}): use {SUPPORTED_FORMS}.",
    )


def _parse_host(url: str, host: str) -> str:
    """Return `host` normalised, if it is an IP address or a DNS name."""
    if host.startswith("["):
        if not host.endswith("]"):
            raise _refuse(url, "unclosed [ around the IPv6 address")
        try:
            return ipaddress.IPv6Address(host[1:-1]).compressed
        except ValueError:
            raise _refuse(url, "not an IPv6 address in the brackets") from None
    name = host.lower()
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise _refuse(url, "not a valid host name or address")
    if all(label.isdigit() for label in labels):
        try:
            return str(ipaddress.IPv4Address(name))
        except ValueError:
            raise _refuse(url, "not a valid IPv4 address") from None
    return name


def _parse_tcp(url: str, rest: str) -> PrinterUrl:
    authority = rest[:-1] if rest.endswith("/") else rest
    if any(char in authority for char in "/?#@"):
        raise _refuse(url, "a tcp URL has only a host and a port")
    if authority.startswith("["):
        host, bracket, port_part = authority.partition("]")
        if not bracket:
            raise _refuse(url, "unclosed [ around the IPv6 address")
        host += bracket
        if port_part and not port_part.startswith(":"):
            raise _refuse(url, "unexpected text after the IPv6 address")
        port_text = port_part[1:] if port_part else None
    else:
        host, colon, port_text_or_empty = authority.partition(":")
        port_text = port_text_or_empty if colon else None
    if not host:
        raise _refuse(url, "no host")
    port = DEFAULT_PORT
    if port_text is not None:
        if not _PORT.fullmatch(port_text) or not 1 <= int(port_text) <= 65535:
            raise _refuse(url, "the port must be a number from 1 to 65535")
        port = int(port_text)
    return PrinterUrl("tcp", host=_parse_host(url, host), port=port)


def _parse_file(url: str, rest: str) -> PrinterUrl:
    if rest.startswith("localhost/"):
        rest = rest[len("localhost") :]
    if not rest.startswith("/"):
        raise _refuse(url, "a file URL names a local absolute directory: file:///DIR")
    if "?" in rest or "#" in rest:
        raise _refuse(url, "a file URL has no query or fragment")
    path = url2pathname(rest)
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in path):
        raise _refuse(url, "control characters in the path")
    directory = Path(path)
    if not directory.is_absolute():
        raise _refuse(url, "the directory must be an absolute path")
    return PrinterUrl("file", directory=directory)


def parse_printer_url(url: str) -> PrinterUrl:
    """Parse a printer URL, or raise PrinterError ERR_PRINTER_URL saying what is wrong."""
    if not isinstance(url, str):
        raise _refuse(repr(url), "not text")
    text = url.strip()
    if len(text) > MAX_URL:
        raise _refuse(text, f"longer than {MAX_URL} characters")
    if not _URL_CHARS.fullmatch(text):
        raise _refuse(text, "empty, or has spaces, control or non-ASCII characters")
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise _refuse(text, "no scheme")
    scheme = scheme.lower()
    if scheme == "tcp":
        return _parse_tcp(text, rest)
    if scheme == "file":
        return _parse_file(text, rest)
    raise _refuse(text, f"unsupported scheme {scheme[:20]!r}")


def describe_url(url: str) -> str:
    """Return `url` in its normal form (lower-case scheme and host, explicit port) for display."""
    return str(parse_printer_url(url))


def open_printer(url: str, **timeouts: float) -> PrinterTransport:
    """Return the transport for `url`; timeouts (seconds) apply to TCP printers."""
    unknown = set(timeouts) - TIMEOUT_NAMES
    if unknown:
        raise TypeError(f"unknown printer timeout(s): {', '.join(sorted(unknown))}")
    parsed = parse_printer_url(url)
    if parsed.directory is not None:
        return FilePrinter(parsed.directory)
    return TcpPrinter(parsed.host, parsed.port, **timeouts)
