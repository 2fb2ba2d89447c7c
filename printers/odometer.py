"""The printer's label odometer: how many labels it has printed in its life, and how to ask.

What Zebra printers offer (ZPL II Programming Guide, `~HQ` and the SGD chapter):

- `~HQOD` answers "PRINT METERS / TOTAL NONRESETTABLE / USER RESETTABLE CNTR1 / CNTR2" between
  STX and ETX: the *length* of media printed, in inches or centimetres as `^MA` sets it. Label
  lengths change and feeds move media too, so no exact label count can be derived from it.
- The Set-Get-Do variable `odometer.total_label_count` is the number of labels printed over
  the life of the printer, without form feeds and calibration labels, and it has no setvar:
  nobody can zero it. Asked with `! U1 getvar "odometer.total_label_count"` and CR LF, the
  printer answers the value in double quotes (`"31084"`) with no frame and no line end; a
  printer whose firmware lacks the variable answers `"?"`; a printer without SGD says
  nothing. (`odometer.media_marker_count` counts labels passing the sensor whether printed or
  not and can be set; `odometer.user_label_count1/2` can be reset: neither is a witness.)

`parse_label_count` reads such an answer. It trusts nothing: anything but one quoted count or
`"?"` (CR and LF may surround it) is a `PrinterError` with code `ERR_PRINTER_ODOMETER_ANSWER`,
as is a count beyond `max_count`; no input makes it raise anything else. `read_label_count`
collects the answer from a transport within a deadline and a size cap.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from printers import errors as E
from printers.errors import PrinterError

LABEL_COUNT_VARIABLE = "odometer.total_label_count"
LABEL_COUNT_REQUEST = b'! U1 getvar "' + LABEL_COUNT_VARIABLE.encode("ascii") + b'"\r\n'
# A real answer is at most 12 bytes ("4294967295" in quotes); a few line ends may surround it.
MAX_ODOMETER_BYTES = 64
# SGD odometers are 32-bit counters (odometer.media_marker_count takes "0" to "4294967295").
MAX_LABEL_COUNT = 4_294_967_295

# Why a printer gave no count.
UNSUPPORTED = "unsupported"  # it answered "?": its firmware has no such variable
NO_ANSWER = "no_answer"  # it said nothing: a ZPL printer without Set-Get-Do
SPOOL = "spool"  # a spool directory, not a printer

_ANSWER = re.compile(rb'[\r\n]*"([0-9]{1,10}|\?)"[\r\n]*')
QUOTE = 0x22


@dataclass(frozen=True, slots=True)
class LabelOdometer:
    """A printer's label count, or why it has none; `raw` keeps the answer for diagnostics."""

    labels: int | None
    why: str = ""
    raw: bytes = field(default=b"", compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.labels is not None and not 0 <= self.labels <= MAX_LABEL_COUNT:
            raise ValueError(f"labels must be 0..{MAX_LABEL_COUNT}")
        if (self.labels is None) == (self.why == ""):
            raise ValueError("give either a label count or why there is none")

    @property
    def supported(self) -> bool:
        """Return True when the printer reported a count."""
        return self.labels is not None


def _bad(why: str) -> PrinterError:
    return PrinterError(
        E.ERR_PRINTER_ODOMETER_ANSWER,
        f"The printer's answer to {LABEL_COUNT_VARIABLE} is not a label count ({why}): check "
        "that the printer URL points at a Zebra ZPL printer.",
    )


def parse_label_count(
    data: bytes | bytearray | memoryview,
    *,
    max_bytes: int = MAX_ODOMETER_BYTES,
    max_count: int = MAX_LABEL_COUNT,
) -> LabelOdometer:
    """Parse a getvar answer for the label odometer, or raise ERR_PRINTER_ODOMETER_ANSWER."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise _bad("not bytes")
    raw = bytes(data)
    if len(raw) > max_bytes:
        raise _bad(f"longer than {max_bytes} bytes")
    match = _ANSWER.fullmatch(raw)
    if match is None:
        raise _bad("not one number in double quotes")
    value = match[1]
    if value == b"?":
        return LabelOdometer(None, UNSUPPORTED, raw)
    count = int(value)
    if count > min(max_count, MAX_LABEL_COUNT):
        raise _bad("the count is out of range")
    return LabelOdometer(count, raw=raw)


def answer_complete(answer: bytes | bytearray) -> bool:
    """Return True once `answer` holds a whole quoted value, or cannot become one."""
    body = bytes(answer).lstrip(b"\r\n")
    if not body:
        return False
    if body[0] != QUOTE:
        return True  # not an answer we know: stop reading and let the parser say so
    return body.count(QUOTE) >= 2


def read_label_count(
    read: Callable[[float, int], bytes | None],
    timeout: float,
    url: str,
    max_bytes: int = MAX_ODOMETER_BYTES,
) -> bytes | None:
    """Collect the answer to LABEL_COUNT_REQUEST within `timeout`; None when none came at all.

    `read(remaining_seconds, max_bytes)` returns what arrived (b"" for nothing yet), or None
    when nothing came in time. Silence is not an error here: a ZPL printer without Set-Get-Do
    says nothing. An answer cut short or beyond `max_bytes` is ERR_PRINTER_ODOMETER_ANSWER.
    """
    deadline = time.monotonic() + timeout
    answer = bytearray()
    while not answer_complete(answer):
        remaining = deadline - time.monotonic()
        chunk = read(remaining, max_bytes + 1 - len(answer)) if remaining > 0 else None
        if chunk is None:
            if answer.strip(b"\r\n"):
                raise PrinterError(
                    E.ERR_PRINTER_ODOMETER_ANSWER,
                    f"The printer at {url} sent an incomplete label count; power-cycle it if "
                    "this repeats.",
                )
            return None
        answer += chunk
        if len(answer) > max_bytes:
            raise _bad(f"more than {max_bytes} bytes")
    return bytes(answer)
