"""What a barcode scanner sends: CR/LF-framed bytes, and the scan each frame stands for.

This module does no I/O and reads no clock. `ScanFramer` cuts the byte stream of a serial
scanner into frames; `decode_scan` reads one frame: an optional AIM symbology identifier
(ISO/IEC 15424: `]`, a symbology character, a modifier character), then a GS1 element string,
a GS1 Digital Link URL, a verify URL `.../v/<serial>` or a plain standard serial. GS1 data is
read by biip (`protocol.gs1scan`) with the whole AI table, so a carton carrying (17), (10) or a
national AI such as (710) scans, ours or not. Both take
hostile input: anything they cannot use is a `ScanError` with a stable `ERR_SCAN_*` code,
never another exception. The keyboard-wedge box of the operator page hands what was typed
to `decode_scan`, so it checks its input as strictly as the framer does.

Scanner text is printable ASCII plus GS (0x1D, FNC1 as a separator). Everything LineLedger
and GS1 put in a barcode is ASCII (Digital Link URLs are percent-encoded), scanners disagree
on code pages, and a wrong baud rate shows up as bytes with the high bit set — so any other
byte makes the frame garbage rather than a guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from edge_agent.errors import EdgeError
from protocol.errors import ProtocolError
from protocol.gs1 import GS
from protocol.gs1scan import read_digital_link, read_element_string
from protocol.serials import parse

ERR_SCAN_TOO_LONG = "ERR_SCAN_TOO_LONG"
ERR_SCAN_GARBAGE = "ERR_SCAN_GARBAGE"
ERR_SCAN_INCOMPLETE = "ERR_SCAN_INCOMPLETE"
ERR_SCAN_EMPTY = "ERR_SCAN_EMPTY"
ERR_SCAN_GS1 = "ERR_SCAN_GS1"
ERR_SCAN_URL = "ERR_SCAN_URL"
ERR_SCAN_PORT = "ERR_SCAN_PORT"

MAX_FRAME = 4096

# AIM identifiers this agent understands: symbology name, and whether the data is a GS1
# element string (FNC1 in first position). Modifiers with ECI (]d4-6, ]Q2/4/6) are left out
# on purpose: their data carries ECI escape sequences this module does not decode, so they
# come out as "unknown" with the text untouched instead of being misread.
_AIM: dict[str, tuple[str, bool]] = {
    "]C0": ("code128", False),
    "]C1": ("gs1_128", True),
    "]C2": ("code128", False),  # FNC1 in second position: an AIM application, not GS1
    "]C4": ("code128", False),
    "]d1": ("datamatrix", False),
    "]d2": ("gs1_datamatrix", True),
    "]d3": ("datamatrix", False),
    "]Q0": ("qr", False),
    "]Q1": ("qr", False),
    "]Q3": ("gs1_qr", True),
    "]Q5": ("qr", False),
    "]E0": ("ean13", False),
    "]E4": ("ean8", False),
    "]e0": ("gs1_databar", True),
}
UNKNOWN = "unknown"

# Misconfigured scanners (and keyboard wedges, which cannot type 0x1D) send GS as text.
# "^]" is caret notation for Ctrl-] = 0x1D; neither ^ nor ] is in GS1 character set 82, so it
# can never be data. "<GS>" is made of CSET 82 characters and could in theory be data, but a
# value holding that literal is far rarer than a scanner set up this way; it is accepted only
# where the scan is GS1, and `Scan.gs_as_text` tells the operator to fix the scanner.
GS_AS_TEXT = ("^]", "<GS>")

_PRINTABLE_OR_GS = bytes(range(0x20, 0x7F)) + GS.encode()
_TERMINATOR = re.compile(rb"[\r\n]")
_SCAN_TEXT = re.compile(r"[ -~\x1d]*")


class ScanError(EdgeError):
    """A scan or scanner problem; `code` is a stable ERR_SCAN_*, `message` says what to do."""


class FrameError(ScanError):
    """A frame the framer refused: too long, garbage, or cut off before its terminator."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One line the scanner sent, terminator removed: printable ASCII and GS only."""

    text: str


@dataclass(frozen=True, slots=True)
class Scan:
    """What one scanned barcode holds, as far as it can be told without a database."""

    aim: str | None
    symbology: str
    raw: str
    gs1: tuple[tuple[str, str], ...] = ()
    digital_link: tuple[tuple[str, str], ...] = ()
    serial_text: str | None = None
    gs_as_text: str | None = None

    def element(self, ai: str) -> str | None:
        """Return the value of one AI from the element string or the Digital Link."""
        for key, value in self.gs1 or self.digital_link:
            if key == ai:
                return value
        return None

    def to_dict(self) -> dict[str, Any]:
        """Return the scan as JSON for the operator page."""
        return {
            "aim": self.aim,
            "symbology": self.symbology,
            "raw": self.raw,
            "gs1": [list(pair) for pair in self.gs1],
            "digital_link": [list(pair) for pair in self.digital_link],
            "serial": self.serial_text,
            "gs_as_text": self.gs_as_text,
        }


class ScanFramer:
    """Cut a scanner's byte stream into frames ended by CR, LF or CRLF."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        if max_frame < 1:
            raise ValueError("max_frame must be at least 1")
        self.max_frame = max_frame
        self._buf = bytearray()
        self._dropping = False  # an over-long frame was reported; skip to its terminator

    @property
    def pending(self) -> bool:
        """Tell whether part of a frame is waiting for its terminator."""
        return bool(self._buf) or self._dropping

    def feed(self, data: bytes) -> list[Frame | FrameError]:
        """Take the next bytes and return the frames (or refusals) they complete."""
        out: list[Frame | FrameError] = []
        start = 0
        while start < len(data):
            match = _TERMINATOR.search(data, start)
            end = match.start() if match else len(data)
            if not self._dropping:
                if len(self._buf) + end - start > self.max_frame:
                    # Report at once, not at the terminator: it may never come.
                    out.append(_too_long(self.max_frame))
                    self._buf.clear()
                    self._dropping = True
                else:
                    self._buf += data[start:end]
            if match is None:
                break
            # CRLF needs no state of its own: the LF after a CR ends an empty line, and
            # empty lines are skipped, also when CR and LF arrive in different feeds.
            if self._dropping:
                self._dropping = False
            elif self._buf:
                out.append(_frame(bytes(self._buf)))
                self._buf.clear()
            start = end + 1
        return out

    def flush(self) -> list[FrameError]:
        """Drop a partial frame and return it as ERR_SCAN_INCOMPLETE (port gone or idle)."""
        size, dropping = len(self._buf), self._dropping
        self._buf.clear()
        self._dropping = False
        if dropping or not size:
            return []  # an over-long frame was reported already
        return [
            FrameError(
                ERR_SCAN_INCOMPLETE,
                f"a scan of {size} bytes ended without CR or LF: scan again; if it keeps "
                "happening, set the scanner to end every scan with CR or LF",
            )
        ]


def _too_long(limit: int) -> FrameError:
    return FrameError(
        ERR_SCAN_TOO_LONG,
        f"the scanner sent a line longer than {limit} bytes without CR or LF: it was "
        "dropped; check that the scanner ends every scan with CR or LF",
    )


def _frame(raw: bytes) -> Frame | FrameError:
    if raw.translate(None, _PRINTABLE_OR_GS):
        return FrameError(
            ERR_SCAN_GARBAGE,
            f"the scanner sent {len(raw)} bytes that are not text (starting "
            f"{raw[:12].hex(' ')}): check its baud rate and format (e.g. 9600 8N1) and "
            "that it sends ASCII",
        )
    return Frame(raw.decode("ascii"))


def decode_scan(frame: str) -> Scan:
    """Read one frame (or a typed scan): AIM identifier, GS1 data, URL or standard serial."""
    if not isinstance(frame, str):
        raise ScanError(ERR_SCAN_GARBAGE, "a scan is text")
    if len(frame) > MAX_FRAME:
        raise _too_long(MAX_FRAME)
    text = frame.strip(" ")  # typed into the wedge box; no barcode content starts with one
    if not text:
        raise ScanError(ERR_SCAN_EMPTY, "the scan is empty: scan the label again")
    if not _SCAN_TEXT.fullmatch(text):
        raise ScanError(
            ERR_SCAN_GARBAGE,
            "the scan holds characters that are not printable ASCII: scan the label again",
        )
    aim, symbology, raw, is_gs1 = _split_aim(text)
    # Without an AIM identifier only a leading FNC1 (sent as GS) says "GS1": a bare string
    # of digits could as well be an EAN-13 or a lot number, and guessing would misread it.
    if is_gs1 or (aim is None and raw.startswith((GS, *GS_AS_TEXT))):
        content, gs_as_text = _real_separators(raw)
        return Scan(aim, symbology, raw, gs1=_gs1_fields(content, symbology), gs_as_text=gs_as_text)
    link = _digital_link(raw)
    return Scan(aim, symbology, raw, digital_link=link, serial_text=_serial_text(raw, link))


def _split_aim(text: str) -> tuple[str | None, str, str, bool]:
    known = _AIM.get(text[:3])
    if known is None:
        # No identifier, a partial one ("]", "]d") or one we do not know ("]Z9"): the whole
        # text is kept as data, since we cannot tell whether the scanner sent an identifier.
        return None, UNKNOWN, text, False
    return text[:3], known[0], text[3:], known[1]


def _real_separators(raw: str) -> tuple[str, str | None]:
    used = next((lit for lit in GS_AS_TEXT if lit in raw), None)
    content = raw
    for literal in GS_AS_TEXT:
        content = content.replace(literal, GS)
    return content, used


def _gs1_fields(content: str, symbology: str) -> tuple[tuple[str, str], ...]:
    # Some scanners also transmit the FNC1 in first position that the AIM id already implies.
    data = content[1:] if content.startswith(GS) else content
    try:
        return read_element_string(data)
    except ProtocolError as exc:
        raise ScanError(
            ERR_SCAN_GS1,
            f"the barcode is marked GS1 ({symbology}) but its data cannot be read: {exc.message}",
        ) from None


def _url_segments(text: str) -> list[str] | None:
    if not text[:8].lower().startswith(("https://", "http://")):
        return None
    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return parts.path.split("/")[1:]


def _digital_link(text: str) -> tuple[tuple[str, str], ...]:
    """Return the key and qualifiers in a GS1 Digital Link URL's path, or () if not one."""
    if not _url_segments(text):
        return ()
    # biip reads any primary key and its qualifiers (in the standard's order), with or
    # without a path prefix of the link's own (…/dl/01/…). Query attributes (?17=…) are not
    # read: the path is what names the item.
    try:
        return read_digital_link(text)
    except ProtocolError:
        return ()


def _serial_text(raw: str, link: tuple[tuple[str, str], ...]) -> str | None:
    """Return the standard serial a plain scan or a `.../v/<serial>` URL stands for."""
    if link:
        return None  # AI (21) needs the product's org and category: a database question
    candidate: str | None = raw
    segments = _url_segments(raw)
    if segments is not None:
        if segments and not segments[-1]:
            segments.pop()  # our own verify URL: a trailing slash is harmless
        candidate = unquote(segments[-1]) if len(segments) >= 2 and segments[-2] == "v" else None
    if candidate is None:
        return None
    try:
        return parse(candidate).text
    except ProtocolError:
        return None
