"""The state of a printer, and the Zebra `~HS` host status answer it is read from.

A host status answer is three frames, each `STX fields ETX CR LF`:

1. `aaa,b,c,dddd,eee,f,g,h,iii,j,k,l` - b paper out, c paused, eee formats in the receive
   buffer, f receive buffer full (the rest: communication settings, label length, diagnostic
   mode, partial format, unused, corrupt RAM, under and over temperature);
2. `mmm,n,o,p,q,r,s,t,uuuuuuuu,v,www` - o head open, p ribbon out, uuuuuuuu labels remaining
   in the batch (the rest: function settings, unused, thermal transfer, print mode, print width
   mode, label waiting, format while printing, stored graphics);
3. `xxxx,y` - password and static RAM.

The parser trusts nothing: it comes from the network. Anything but exactly that shape is a
`PrinterError` with code `ERR_PRINTER_STATUS`, and no input can make it raise anything else.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from printers import errors as E
from printers.errors import PrinterError

STX = 0x02
ETX = 0x03
# A real answer is under 100 bytes; the cap bounds what a hostile printer can make us read.
MAX_STATUS_BYTES = 4096
MAX_FORMATS = 999
MAX_LABELS = 99_999_999

# CR and LF may surround frames (a reader may stop at the last ETX, before its CR LF).
_ANSWER = re.compile(rb"[\r\n]*" + rb"\x02([ -~]{1,128})\x03[\r\n]*" * 3)
_NUMBER = re.compile(rb"[0-9]{1,8}")
# Settings we do not interpret are still checked: short, letters and digits only.
_SETTING = re.compile(rb"[0-9A-Za-z]{1,8}")
_FIELD_COUNTS = (12, 11, 2)

# Faults worst first: the first one present is the state shown to the operator.
_FAULTS = (
    ("paper_out", E.ERR_PRINTER_PAPER_OUT, "The printer is out of labels: load a new roll."),
    ("head_open", E.ERR_PRINTER_HEAD_OPEN, "The print head is open: close it until it clicks."),
    ("ribbon_out", E.ERR_PRINTER_RIBBON_OUT, "The printer is out of ribbon: load a new ribbon."),
    ("paused", E.ERR_PRINTER_PAUSED, "The printer is paused: press PAUSE on it to resume."),
    (
        "buffer_full",
        E.ERR_PRINTER_BUFFER_FULL,
        "The printer's receive buffer is full: wait for it to print what it holds.",
    ),
)


@dataclass(frozen=True, slots=True)
class PrinterStatus:
    """What a printer reported about itself; `raw` keeps the answer for diagnostics."""

    paper_out: bool = False
    paused: bool = False
    head_open: bool = False
    ribbon_out: bool = False
    buffer_full: bool = False
    formats_in_buffer: int = 0
    labels_remaining: int = 0
    raw: bytes = field(default=b"", compare=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.formats_in_buffer <= MAX_FORMATS:
            raise ValueError(f"formats_in_buffer must be 0..{MAX_FORMATS}")
        if not 0 <= self.labels_remaining <= MAX_LABELS:
            raise ValueError(f"labels_remaining must be 0..{MAX_LABELS}")

    def _worst(self) -> tuple[str, str, str] | None:
        """Return (state, code, message) of the worst fault present, or None."""
        for fault in _FAULTS:
            if getattr(self, fault[0]):
                return fault
        return None

    @property
    def ready(self) -> bool:
        """Return True when no fault stops the printer from printing."""
        return self._worst() is None

    @property
    def state(self) -> str:
        """Return the worst fault as one word, or "ready"."""
        worst = self._worst()
        return "ready" if worst is None else worst[0]

    @property
    def fault_code(self) -> str | None:
        """Return the ERR_PRINTER_* code of the worst fault, or None when ready."""
        worst = self._worst()
        return None if worst is None else worst[1]

    @property
    def message(self) -> str:
        """Return a sentence for the operator about the worst fault."""
        worst = self._worst()
        return "The printer is ready." if worst is None else worst[2]

    def error(self) -> PrinterError | None:
        """Return the worst fault as a PrinterError to raise, or None when ready."""
        worst = self._worst()
        return None if worst is None else PrinterError(worst[1], worst[2])


def _bad(why: str) -> PrinterError:
    return PrinterError(
        E.ERR_PRINTER_STATUS,
        f"The printer's status answer is not a Zebra ~HS answer ({why}): check that the "
        "printer URL points at a ZPL printer.",
    )


def _flag(value: bytes, what: str) -> bool:
    if value == b"0":
        return False
    if value == b"1":
        return True
    raise _bad(f"{what} flag is not 0 or 1")


def _number(value: bytes, what: str) -> int:
    if not _NUMBER.fullmatch(value):
        raise _bad(f"{what} is not a number")
    return int(value)


def parse_host_status(data: bytes | bytearray | memoryview) -> PrinterStatus:
    """Parse a `~HS` answer into a PrinterStatus, or raise PrinterError ERR_PRINTER_STATUS."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise _bad("not bytes")
    raw = bytes(data)
    if len(raw) > MAX_STATUS_BYTES:
        raise _bad(f"longer than {MAX_STATUS_BYTES} bytes")
    match = _ANSWER.fullmatch(raw)
    if match is None:
        raise _bad("not three STX...ETX frames of printable text")
    frames = [frame.split(b",") for frame in match.groups()]
    for number, (fields_, count) in enumerate(zip(frames, _FIELD_COUNTS, strict=True), 1):
        if len(fields_) != count:
            raise _bad(f"frame {number} has {len(fields_)} fields, expected {count}")
        for value in fields_:
            if not _SETTING.fullmatch(value):
                raise _bad(f"frame {number} has an empty or malformed field")
    first, second, _third = frames
    formats = _number(first[4], "formats in buffer")
    labels = _number(second[8], "labels remaining")
    if formats > MAX_FORMATS or labels > MAX_LABELS:
        raise _bad("a counter is out of range")
    return PrinterStatus(
        paper_out=_flag(first[1], "paper out"),
        paused=_flag(first[2], "pause"),
        head_open=_flag(second[2], "head up"),
        ribbon_out=_flag(second[3], "ribbon out"),
        buffer_full=_flag(first[5], "buffer full"),
        formats_in_buffer=formats,
        labels_remaining=labels,
        raw=raw,
    )


def format_host_status(status: PrinterStatus) -> bytes:
    """Return the `~HS` answer a ZPL printer in `status` would send."""
    b = {name: int(getattr(status, name)) for name, _code, _message in _FAULTS}
    return (
        f"\x02030,{b['paper_out']},{b['paused']},1218,{status.formats_in_buffer:03d},"
        f"{b['buffer_full']},0,0,000,0,0,0\x03\r\n"
        f"\x02001,0,{b['head_open']},{b['ribbon_out']},1,2,6,0,"
        f"{status.labels_remaining:08d},1,000\x03\r\n"
        "\x021234,0\x03\r\n"
    ).encode("ascii")


def read_host_status(
    read: Callable[[float, int], bytes | None], timeout: float, url: str, hint: str
) -> bytes:
    """Collect a `~HS` answer: three ETX-terminated frames, within `timeout`, capped in size.

    `read(remaining_seconds, max_bytes)` returns what arrived, or None when nothing came in
    time. No answer at all is ERR_PRINTER_NO_ANSWER (a Zebra falls silent on some faults); an
    answer cut short is ERR_PRINTER_STATUS. `hint` ends the no-answer message.
    """
    deadline = time.monotonic() + timeout
    answer = bytearray()
    while answer.count(ETX) < 3:
        remaining = deadline - time.monotonic()
        chunk = read(remaining, MAX_STATUS_BYTES - len(answer)) if remaining > 0 else None
        if chunk is None:
            if answer:
                raise PrinterError(
                    E.ERR_PRINTER_STATUS,
                    f"The printer at {url} sent an incomplete status answer; power-cycle it "
                    "if this repeats.",
                )
            raise PrinterError(
                E.ERR_PRINTER_NO_ANSWER,
                f"The printer at {url} does not answer: check for an open head, missing "
                f"labels or ribbon, or an error light{hint}.",
            )
        answer += chunk
        if len(answer) >= MAX_STATUS_BYTES:
            raise PrinterError(
                E.ERR_PRINTER_STATUS,
                f"The printer at {url} sent more than {MAX_STATUS_BYTES} bytes for its status: "
                "check that the URL points at a ZPL printer.",
            )
    return bytes(answer)
