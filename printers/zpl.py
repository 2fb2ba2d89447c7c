"""Render a unit label as one ZPL II format, and read the field data back out of a format.

Positions come from `printers.layout`; the printer encodes the symbols itself, from field
data written so that it encodes exactly what zint drew for the layout:

- Code 128 of the serial: `^BC` in automatic mode (the serial holds no `>`);
- GS1-128: `^BC` with no mode, explicit subsets: `>;` or `>:` start C or B, `>8` FNC1 first
  and after each variable-length field, `>5`/`>6` to switch to C/B, `>0` for a `>`;
- QR: `^BQ` model 2 with `QA,` (level Q, automatic data mode) before the URL;
- Data Matrix: `^BX` quality 200 with `_` as escape character: `_1` is FNC1 (first, for GS1,
  and as separator), `__` a literal underscore.

Every field goes through `^FH\\` with the ZPL command and escape characters written as hex
(`\\5E` for ^, `\\7E` for ~, `\\5C` for \\), so no product name or URL can end a field early
or start a command of its own; the layout has already blanked control characters.
"""

from __future__ import annotations

import re
from functools import lru_cache

from printers.barcodes import CODE128, GS1_128, GS1_DATAMATRIX, QR
from printers.label import LabelTemplate, UnitLabel
from printers.layout import BarcodeBox, TextLine, layout_label, printable_text
from protocol.gs1 import GS

__all__ = ["code128_field", "datamatrix_field", "extract_fields", "printable_text", "render_zpl"]

_ESCAPE = str.maketrans({"\\": "\\5C", "^": "\\5E", "~": "\\7E"})
# The ^BX escape character we declare; any character would do, one in GS1's character set
# 82 only costs doubling where it occurs.
DATAMATRIX_ESCAPE = "_"
_DIGITS = frozenset("0123456789")


def _digit_run(data: str, start: int) -> int:
    """Return how many digits follow `start` before anything else."""
    end = start
    while end < len(data) and data[end] in _DIGITS:
        end += 1
    return end - start


def code128_field(element_string: str) -> str:
    """Return ^BC field data (mode N) for GS1-128: FNC1 first, GS as FNC1, subsets B and C.

    Runs of four or more digits go in subset C, two digits per symbol character; an odd run
    leaves its first digit in subset B. Everything else is subset B, where `>` is `>0`.
    """
    out: list[str] = []
    run = _digit_run(element_string, 0)
    subset = "C" if run >= 4 or (run >= 2 and run == len(element_string)) else "B"
    out.append(">;>8" if subset == "C" else ">:>8")
    i = 0
    while i < len(element_string):
        char = element_string[i]
        if char == GS:
            out.append(">8")
            i += 1
        elif subset == "C":
            if _digit_run(element_string, i) >= 2:
                out.append(element_string[i : i + 2])
                i += 2
            else:
                out.append(">6")
                subset = "B"
        else:
            run = _digit_run(element_string, i)
            if run >= 4 and run % 2 == 0:
                out.append(">5")
                subset = "C"
            else:
                out.append(">0" if char == ">" else char)
                i += 1
    return "".join(out)


def datamatrix_field(data: str, gs1: bool) -> str:
    """Return ^BX quality 200 field data: the escape character doubled, GS and FNC1 as `_1`."""
    fnc1 = DATAMATRIX_ESCAPE + "1"
    body = data.replace(DATAMATRIX_ESCAPE, DATAMATRIX_ESCAPE * 2).replace(GS, fnc1)
    return fnc1 + body if gs1 else body


@lru_cache(maxsize=64)
def _header(width: int, height: int) -> str:
    """Return the start of a format: UTF-8 field data, label size, home at the corner."""
    return f"^XA\n^CI28\n^PW{width}\n^LL{height}\n^LH0,0\n"


def _barcode(box: BarcodeBox) -> str:
    """Return the ZPL field of one barcode box."""
    origin = f"^FO{box.x},{box.y}"
    if box.kind == CODE128:
        command = f"^BY{box.module}^BCN,{box.height},N,N,N,A"
        data = box.data
    elif box.kind == GS1_128:
        command = f"^BY{box.module}^BCN,{box.height},N,N,N,N"
        data = code128_field(box.data)
    elif box.kind == QR:
        command = f"^BQN,2,{box.module}"
        data = "QA," + box.data
    else:  # GS1_DATAMATRIX or DATAMATRIX
        command = f"^BXN,{box.module},200,,,,{DATAMATRIX_ESCAPE}"
        data = datamatrix_field(box.data, gs1=box.kind == GS1_DATAMATRIX)
    return f"{origin}{command}^FH\\^FD{data.translate(_ESCAPE)}^FS\n"


def _text(line: TextLine) -> str:
    """Return the ZPL field of one text line."""
    return (
        f"^FO{line.x},{line.y}^A0N,{line.height},{line.char_width}"
        f"^FH\\^FD{line.text.translate(_ESCAPE)}^FS\n"
    )


def render_zpl(label: UnitLabel, template: LabelTemplate) -> bytes:
    """Return one `^XA...^XZ` ZPL II format printing `label` laid out by `template`."""
    layout = layout_label(label, template)
    parts = [_header(layout.width, layout.height)]
    for element in layout.elements:
        parts.append(_text(element) if isinstance(element, TextLine) else _barcode(element))
    parts.append("^XZ")
    return "".join(parts).encode("utf-8")


@lru_cache(maxsize=8)
def _hex_escape(indicator: int) -> re.Pattern[bytes]:
    """Return the pattern of a ^FH hex escape introduced by the byte `indicator`."""
    return re.compile(re.escape(bytes((indicator,))) + rb"([0-9A-Fa-f]{2})")


def extract_fields(zpl: bytes) -> list[str]:
    """Return the field data (^FD) of a ZPL format in order, with ^FH hex escapes undone.

    A QR code field keeps its mode prefix, e.g. `QA,https://...` for level Q, automatic mode;
    barcode fields keep their invocation and escape sequences. Bytes that are not UTF-8 come
    back as U+FFFD rather than raising. `printers.zplrender` reads a format fully.
    """
    found: list[str] = []
    indicator: int | None = None
    for chunk in zpl.split(b"^")[1:]:
        command = chunk[:2].upper()
        if command == b"FH":
            # ^FH takes an optional indicator character; underscore is the ZPL default.
            indicator = chunk[2] if len(chunk) > 2 and chunk[2] > 0x20 else ord("_")
        elif command == b"FD":
            data = chunk[2:]
            if indicator is not None:
                data = _hex_escape(indicator).sub(lambda m: bytes.fromhex(m[1].decode()), data)
            found.append(data.decode("utf-8", "replace"))
        elif command == b"FS":
            indicator = None
    return found
