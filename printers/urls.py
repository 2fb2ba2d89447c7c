"""Open a printer from the URL in the configuration.

Forms:

- `tcp://HOST[:PORT]`: a network ZPL printer on raw TCP (port 9100 by default);
- `file:///DIR` and `pdf:///DIR`: spool directories of ZPL or PDF files; the folder must
  exist (`ERR_PRINTER_NO_DIR`) unless the URL ends in `?create=1`;
- a serial ZPL printer: a device path (`/dev/ttyUSB0`, `/dev/serial/by-id/usb-Zebra...`,
  `COM3`) or a pyserial URL (`socket://HOST:PORT`, `rfc2217://HOST:PORT`, `loop://`,
  `spy:///dev/...`, `alt:///dev/...?class=...`, `hwgrep://REGEXP[&n=N][&skip_busy]`), with
  line settings as query options `baud` (9600), `bytesize` (8), `parity` (N), `stopbits`
  (1), `rtscts` and `xonxoff` (0). Those are ours and are stripped; the pyserial options a
  scheme knows are passed on, except `spy`'s `file`: a printer URL must not name a file to
  overwrite, and `alt`'s `class` is limited to pyserial's serial classes.

The URL comes from a config file or an admin page, so it is parsed strictly: anything that
is not exactly one of these forms is refused with `ERR_PRINTER_URL` and a message that shows
the forms, rather than guessed at. Parsing does no I/O; the normal form (`str(PrinterUrl)`)
parses to itself.
"""

from __future__ import annotations

import ipaddress
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.request import url2pathname

from printers import errors as E
from printers.base import PrinterTransport
from printers.errors import PrinterError
from printers.filespool import FilePrinter, no_directory
from printers.pdfspool import PdfPrinter
from printers.serialport import SerialPrinter, SerialSettings
from printers.tcp import DEFAULT_PORT, TcpPrinter, tcp_url

MAX_URL = 512
SUPPORTED_FORMS = (
    "tcp://HOST[:PORT], file:///DIR, pdf:///DIR (?create=1 makes the folder), or a serial "
    "port (/dev/..., COMn, or a pyserial URL socket:// rfc2217:// loop:// spy:// alt:// "
    "hwgrep://) with options like "
    "?baud=9600&parity=N"
)
TIMEOUT_NAMES = frozenset({"connect_timeout", "status_timeout", "write_timeout"})
SERIAL_SCHEMES = frozenset({"socket", "rfc2217", "loop", "spy", "alt", "hwgrep"})

_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_PORT = re.compile(r"[0-9]{1,5}")
_URL_CHARS = re.compile(r"[!-~]+")
_DEVICE = re.compile(r"/dev(?:/[A-Za-z0-9_:+@,=.-]{1,100}){1,8}")
_COM = re.compile(r"(?:\\\\\.\\)?COM([1-9][0-9]{0,2})", re.IGNORECASE)
_OPTION = re.compile(r"[a-z_]{1,20}(?:=[A-Za-z0-9._-]{0,40})?")
_NO_VALUE: tuple[str, ...] = ("",)
# pyserial's own options per scheme, with the values we let through.
_PASSTHROUGH: dict[str, dict[str, tuple[str, ...] | None]] = {
    "socket": {"logging": ("debug", "info", "warning", "error")},
    "loop": {"logging": ("debug", "info", "warning", "error")},
    "rfc2217": {
        "logging": ("debug", "info", "warning", "error"),
        "ign_set_control": _NO_VALUE,
        "poll_modem": _NO_VALUE,
        "timeout": None,  # seconds, checked below
    },
    "spy": {"color": _NO_VALUE, "raw": _NO_VALUE, "all": _NO_VALUE},
    "alt": {"class": ("Serial", "PosixPollSerial", "VTIMESerial")},
    "hwgrep": {"n": None, "skip_busy": _NO_VALUE},
}
_BAUD_RANGE = (50, 4_000_000)
_FLAGS = {"1": True, "true": True, "yes": True, "on": True}
_FLAGS.update({"0": False, "false": False, "no": False, "off": False})


@dataclass(frozen=True, slots=True)
class PrinterUrl:
    """A parsed printer URL: a TCP host and port, a spool directory, or a serial port."""

    scheme: str
    host: str = ""
    port: int = 0
    directory: Path | None = None
    device: str = ""
    settings: SerialSettings | None = None
    passthrough: tuple[str, ...] = ()
    create: bool = False  # a spool directory: make it when missing (`?create=1`)

    def __str__(self) -> str:
        if self.directory is not None:
            query = "?create=1" if self.create else ""
            return self.scheme + self.directory.as_uri()[len("file") :] + query
        if self.settings is None:
            return tcp_url(self.host, self.port)
        base, hwgrep_options = self.device, ""
        if self.scheme == "hwgrep":
            base, _amp, rest = self.device.partition("&")
            hwgrep_options = "&" + rest if rest else ""
        elif self.passthrough:
            base = self.device.partition("?")[0]
        return f"{base}{hwgrep_options}?{_settings_query(self.settings, self.passthrough)}"


def _settings_query(settings: SerialSettings, passthrough: tuple[str, ...]) -> str:
    """Return the query of a serial URL's normal form: baud always, the rest when not default."""
    default = SerialSettings()
    parts = [f"baud={settings.baudrate}"]
    if settings.bytesize != default.bytesize:
        parts.append(f"bytesize={settings.bytesize}")
    if settings.parity != default.parity:
        parts.append(f"parity={settings.parity}")
    if settings.stopbits != default.stopbits:
        parts.append(f"stopbits={settings.stopbits:g}")
    if settings.rtscts:
        parts.append("rtscts=1")
    if settings.xonxoff:
        parts.append("xonxoff=1")
    return "&".join([*parts, *passthrough])


def _refuse(url: str, why: str) -> PrinterError:
    """Return the error for an unusable URL, showing the forms that work."""
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


def _host_port(url: str, authority: str, default_port: int | None) -> tuple[str, int]:
    """Split `HOST[:PORT]` (IPv6 in brackets) into a normal host and a port."""
    if any(char in authority for char in "/?#@"):
        raise _refuse(url, "this URL has only a host and a port")
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
    if port_text is None:
        if default_port is None:
            raise _refuse(url, "no port")
        return _parse_host(url, host), default_port
    if not _PORT.fullmatch(port_text) or not 1 <= int(port_text) <= 65535:
        raise _refuse(url, "the port must be a number from 1 to 65535")
    return _parse_host(url, host), int(port_text)


def _parse_tcp(url: str, rest: str) -> PrinterUrl:
    """Parse the part of a tcp:// URL after the scheme."""
    authority = rest[:-1] if rest.endswith("/") else rest
    host, port = _host_port(url, authority, DEFAULT_PORT)
    return PrinterUrl("tcp", host=host, port=port)


def _parse_directory(url: str, scheme: str, rest: str) -> PrinterUrl:
    """Parse the part of a file:// or pdf:// URL after the scheme."""
    if rest.startswith("localhost/"):
        rest = rest[len("localhost") :]
    if not rest.startswith("/"):
        raise _refuse(url, f"a {scheme} URL names a local absolute directory: {scheme}:///DIR")
    rest, question, query = rest.partition("?")
    if question and query != "create=1":
        raise _refuse(url, f"a {scheme} URL takes no query but ?create=1")
    if "#" in rest:
        raise _refuse(url, f"a {scheme} URL has no fragment")
    path = url2pathname(rest)
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in path):
        raise _refuse(url, "control characters in the path")
    directory = Path(path)
    if not directory.is_absolute():
        raise _refuse(url, "the directory must be an absolute path")
    return PrinterUrl(scheme, directory=directory, create=bool(question))


def _serial_options(url: str, scheme: str, query: str) -> tuple[SerialSettings, tuple[str, ...]]:
    """Split a serial URL's query into our line settings and pyserial's own options."""
    values: dict[str, str] = {}
    passthrough: list[str] = []
    allowed = _PASSTHROUGH.get(scheme, {})
    for option in query.split("&") if query else ():
        name, _eq, value = option.partition("=")
        if name == "file":
            raise _refuse(url, "a printer URL must not name a file for pyserial to overwrite")
        if not _OPTION.fullmatch(option):
            raise _refuse(url, "malformed option in the query")
        if name in values or any(p.partition("=")[0] == name for p in passthrough):
            raise _refuse(url, f"option {name} given twice")
        if name in ("baud", "bytesize", "parity", "stopbits", "rtscts", "xonxoff"):
            values[name] = value
        elif name in allowed:
            choices = allowed[name]
            if choices is not None and value not in choices:
                raise _refuse(url, f"option {name} does not take {value[:20]!r}")
            if choices is None and not re.fullmatch(r"[0-9]{1,2}", value):
                raise _refuse(url, f"option {name} takes a small whole number")
            if scheme == "hwgrep" and name == "n" and int(value) < 2:
                raise _refuse(url, "hwgrep's n counts from 2 (pyserial skips n-1 ports)")
            passthrough.append(option)
        else:
            raise _refuse(url, f"unknown option {name[:20]!r} for this port")
    return _settings(url, values), tuple(passthrough)


def _settings(url: str, values: dict[str, str]) -> SerialSettings:
    """Return line settings from query values, or refuse the URL."""
    baud = values.get("baud", "9600")
    if not re.fullmatch(r"[0-9]{2,7}", baud) or not _BAUD_RANGE[0] <= int(baud) <= _BAUD_RANGE[1]:
        raise _refuse(url, f"baud must be a whole number from {_BAUD_RANGE[0]} to {_BAUD_RANGE[1]}")
    bytesize = values.get("bytesize", "8")
    if bytesize not in ("5", "6", "7", "8"):
        raise _refuse(url, "bytesize must be 5, 6, 7 or 8")
    parity = values.get("parity", "N").upper()
    if parity not in ("N", "E", "O", "M", "S"):
        raise _refuse(url, "parity must be N, E, O, M or S")
    stopbits = values.get("stopbits", "1")
    if stopbits not in ("1", "1.5", "2"):
        raise _refuse(url, "stopbits must be 1, 1.5 or 2")
    flags = []
    for name in ("rtscts", "xonxoff"):
        flag = _FLAGS.get(values.get(name, "0").lower())
        if flag is None:
            raise _refuse(url, f"{name} must be 0 or 1")
        flags.append(flag)
    return SerialSettings(int(baud), int(bytesize), parity, float(stopbits), *flags)


def _is_device(path: str) -> bool:
    """Return True for a plain path under /dev/ without . or .. segments."""
    return bool(_DEVICE.fullmatch(path)) and not any(
        part in (".", "..") for part in path.split("/")
    )


def _parse_serial(url: str, scheme: str, rest: str) -> PrinterUrl:
    """Parse a pyserial URL (`scheme://rest`) or, with scheme "", a device path."""
    if "#" in rest:
        raise _refuse(url, "a serial port URL has no fragment")
    target, question, query = rest.partition("?")
    if question and not query:
        raise _refuse(url, "an empty query after ?")
    # hwgrep takes pyserial's options after & in the target; its query holds only ours.
    settings, passthrough = _serial_options(url, "" if scheme == "hwgrep" else scheme, query)
    if scheme == "":
        com = _COM.fullmatch(target)
        if com is not None and int(com[1]) <= 256:
            device = f"COM{int(com[1])}"
        elif _is_device(target):
            device = target
        else:
            raise _refuse(url, "not a device path under /dev/ or a COM port, and no scheme")
    elif scheme in ("socket", "rfc2217"):
        host, port = _host_port(url, target, None)
        device = f"{scheme}://{tcp_url(host, port)[len('tcp://') :]}"
    elif scheme == "loop":
        if target not in ("", "/"):
            raise _refuse(url, "loop:// takes no host or path")
        device = "loop://"
    elif scheme in ("spy", "alt"):
        if not _is_device(target):
            raise _refuse(url, f"{scheme}:// wraps a device path: {scheme}:///dev/...")
        device = f"{scheme}://{target}"
    else:  # hwgrep: pyserial reads "REGEXP&option&option"
        regexp, _amp, options = target.partition("&")
        if not regexp or len(regexp) > 100:
            raise _refuse(url, "hwgrep:// needs a short regular expression")
        try:
            with warnings.catch_warnings():
                # A pattern Python warns about (e.g. a possible nested set) is refused too.
                warnings.simplefilter("error")
                re.compile(regexp)
        except (re.error, Warning):
            raise _refuse(url, "hwgrep:// has an invalid regular expression") from None
        own = [o for o in options.split("&") if o and o.partition("=")[0] not in ("n", "skip_busy")]
        if own:
            raise _refuse(url, "hwgrep:// takes n and skip_busy after &, line settings after ?")
        _serial_options(url, "hwgrep", options)
        return PrinterUrl("hwgrep", device=f"hwgrep://{target}", settings=settings)
    if passthrough:
        device = f"{device}?{'&'.join(passthrough)}"
    return PrinterUrl(scheme or "serial", device=device, settings=settings, passthrough=passthrough)


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
        return _parse_serial(text, "", text)
    scheme = scheme.lower()
    if scheme == "tcp":
        return _parse_tcp(text, rest)
    if scheme in ("file", "pdf"):
        return _parse_directory(text, scheme, rest)
    if scheme in SERIAL_SCHEMES:
        return _parse_serial(text, scheme, rest)
    raise _refuse(text, f"unsupported scheme {scheme[:20]!r}")


def check_spool_directory(url: str) -> None:
    """Refuse a spool URL whose folder is missing unless it says `?create=1` (ERR_PRINTER_NO_DIR).

    Other printers are not touched: whether they answer is the status check's business.
    """
    parsed = parse_printer_url(url)
    if parsed.directory is not None and not parsed.create and not parsed.directory.is_dir():
        raise no_directory(parsed.directory, str(parsed))


def describe_url(url: str) -> str:
    """Return `url` in its normal form (lower-case scheme and host, explicit port) for display."""
    return str(parse_printer_url(url))


def open_printer(url: str, **timeouts: float) -> PrinterTransport:
    """Return the transport for `url`; timeouts (seconds) apply to TCP and serial printers."""
    unknown = set(timeouts) - TIMEOUT_NAMES
    if unknown:
        raise TypeError(f"unknown printer timeout(s): {', '.join(sorted(unknown))}")
    parsed = parse_printer_url(url)
    if parsed.directory is not None:
        spool = PdfPrinter if parsed.scheme == "pdf" else FilePrinter
        return spool(parsed.directory, create=parsed.create)
    if parsed.settings is not None:
        return SerialPrinter(parsed.device, parsed.settings, url=str(parsed), **timeouts)
    return TcpPrinter(parsed.host, parsed.port, **timeouts)
