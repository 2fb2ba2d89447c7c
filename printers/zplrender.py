"""Read ZPL II formats back and draw them, independently of how `printers.zpl` wrote them.

This is the check that a ZPL label says what it should: `read_formats(zpl)` interprets each
`^XA...^XZ` format the way the ZPL II Programming Guide describes a printer doing it, and
`rasterise(zpl)` draws the result as PNG images (one pixel per dot) for a barcode decoder.
Symbols are encoded again by zint from the field data as the printer would read it:

- `^BC` (Code 128): start codes `>9` `>:` `>;` (A, B, C; B when none), `>5` `>6` `>7` to
  switch to C, B, A, `>8` FNC1, `><` `>0` `>=` `>1` for symbol values 62, 30, 94, 95; in
  subsets A and C the data is digit pairs. Mode N keeps the subsets written; mode A lets the
  printer choose them and honours only `>8` and the start and switch codes.
- `^BQ` (QR): field data `<level><mode>,<data>` with level H, Q, M or L and mode A
  (automatic), or mode M with one N, A or B (`Bnnnn`, a byte count) segment.
- `^BX` quality 200 (Data Matrix): escape character `g` (default `~`): `g1` FNC1 (first: GS1
  Data Matrix; later: a GS1 separator), `gg` the character itself, `gdNNN` a byte, `g@`..`g_`
  control characters.
- Text (`^A`), `^FO`, `^LH`, `^PW`, `^LL`, `^BY`, `^FH` (hex escapes, done before the
  barcode's own escapes), `^CI` (28 reads field data as UTF-8, anything else as Latin-1).

Other commands are ignored, except those that change how the rest would be read (`^CC` `~CC`
`^CT` `~CT` `^CD` `~CD`), rotation, and options of the commands above that change what is
encoded: those are refused. Field data ends at the next `^`; a `~` in it is data, as `^BX`'s
default escape character has to be. Input is not trusted: anything malformed or beyond the
limits (bytes, formats, fields, dots) raises ZplError, and nothing else escapes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from printers.barcodes import (
    GS1_DATAMATRIX,
    encode,
    encode_code128_sets,
    encode_datamatrix,
    encode_qr,
)
from printers.errors import LabelError, ZplError
from printers.layout import BarcodeBox, Element, LabelLayout, TextLine
from printers.png import layout_png

MAX_ZPL_BYTES = 1 << 20
MAX_FORMATS = 16
MAX_FIELDS = 200
MAX_DOTS = 4096
MAX_FIELD_BYTES = 3072
MAX_FONT_DOTS = 1000
MAX_MODULE_DOTS = 40
_PREFIX = re.compile(rb"[\^~]")
_NUMBER = re.compile(r"[0-9]{1,6}")
_CR_LF = re.compile(rb"[\r\n]")
_REFUSED = frozenset({"CC", "CT", "CD"})
_FNC1 = "\x1d"
# Default QR magnification by resolution, from the ^BQ description.
_QR_DEFAULT_MAGNIFICATION = {152: 1, 203: 2, 300: 3, 600: 6}


def _int(value: str, what: str, low: int, high: int, default: int | None = None) -> int:
    """Return a whole-number parameter within [low, high], or its default when empty."""
    text = value.strip()
    if not text and default is not None:
        return default
    if not _NUMBER.fullmatch(text) or not low <= int(text) <= high:
        raise ZplError(f"{what} must be a whole number from {low} to {high}, got {text[:20]!r}")
    return int(text)


def _param(params: list[str], index: int) -> str:
    """Return parameter `index` stripped, or "" when it is not there."""
    return params[index].strip() if index < len(params) else ""


def _orientation(params: list[str], command: str) -> None:
    """Refuse any orientation but normal: a rotated field would be read back wrong."""
    if _param(params, 0).upper() not in ("", "N"):
        raise ZplError(f"{command} with rotation is not supported: use orientation N")


@dataclass
class _Field:
    """What the commands of the field being built have said so far."""

    x: int = 0
    y: int = 0
    font: tuple[int, int] | None = None
    barcode: tuple[str, list[str]] | None = None
    hex_indicator: int | None = None
    data: bytes | None = None


@dataclass
class _Format:
    """The state of one format being read, and the elements it has drawn."""

    dpi: int
    width: int
    length: int
    home: tuple[int, int] = (0, 0)
    utf8: bool = False
    module: int = 2
    bar_height: int = 10
    elements: list[Element] = field(default_factory=list)
    current: _Field = field(default_factory=_Field)


def _code128_value_char(value: int, subset: str) -> str:
    """Return the character a symbol value stands for in subset A or B."""
    if subset == "B" or value < 64:
        return chr(32 + value)
    return chr(value - 64)


def _zint_char(char: str) -> str:
    """Return one character as zint escape-mode input."""
    if char == "\\":
        return "\\\\"
    return char if " " <= char <= "~" else f"\\x{ord(char):02X}"


def _digit_pairs(data: str, i: int) -> tuple[str | None, int]:
    """Read one digit pair of subsets A or C the printer's way; return (pair or None, next)."""
    if not data[i].isdigit():
        return None, i + 1  # a non-digit first character is ignored
    if i + 1 >= len(data) or data[i + 1] == ">":
        return None, i + 1  # an unpaired digit before a code or at the end is ignored
    if not data[i + 1].isdigit():
        return None, i + 2  # a non-digit second character spoils the pair
    return data[i : i + 2], i + 2


def _code128(data: str, mode: str) -> tuple[str, str]:
    """Return (zint escape input, decoded text) for ^BC field data in mode N or A."""
    manual = mode == "N"
    subset = "B"
    i = 0
    if data[:2] in (">9", ">:", ">;"):
        subset = {">9": "A", ">:": "B", ">;": "C"}[data[:2]]
        i = 2
    zint: list[str] = [f"\\^{subset}"] if manual else []
    text: list[str] = []
    started = False

    def put(char: str) -> None:
        nonlocal started
        zint.append(_zint_char(char))
        text.append(char)
        started = True

    while i < len(data):
        char = data[i]
        if char == ">":
            if i + 1 >= len(data):
                raise ZplError("a Code 128 field ends with a lone >")
            code = data[i + 1]
            i += 2
            if code == "8":
                # FNC1 first marks GS1 data; later it separates fields, sent as GS.
                zint.append("\\^1")
                text.append(_FNC1 if started else "")
                started = True
            elif code in "567" and manual:
                new = {"5": "C", "6": "B", "7": "A"}[code]
                if new == subset:
                    # In its own subset the code is FNC4 (A, B) or has no meaning (C).
                    raise ZplError(f"Code 128 >{code} in subset {subset} is not supported")
                subset = new
                zint.append(f"\\^{subset}")
            elif code in "567":
                continue  # automatic mode picks subsets itself
            elif code in "<0=1" and manual:
                value = {"<": 62, "0": 30, "=": 94, "1": 95}[code]
                if subset == "C":
                    for digit in f"{value:02d}":
                        put(digit)
                else:
                    put(_code128_value_char(value, subset))
            else:
                raise ZplError(f"Code 128 invocation >{code} is not supported here")
        elif manual and subset in "AC":
            pair, i = _digit_pairs(data, i)
            if pair is not None:
                if subset == "C":
                    put(pair[0])
                    put(pair[1])
                elif int(pair) >= 96:
                    raise ZplError("Code 128 function values in subset A are not supported")
                else:
                    put(_code128_value_char(int(pair), "A"))
        else:
            if not " " <= char <= "~":
                raise ZplError("a Code 128 field holds a character outside printable ASCII")
            put(char)
            i += 1
    return "".join(zint), "".join(text)


def _qr(data: bytes) -> tuple[bytes, str]:
    """Return (data bytes, error correction level) of ^BQ field data."""
    head, comma, rest = data.partition(b",")
    if not comma or len(head) != 2:
        raise ZplError("QR field data must start with <level><mode>, e.g. QA,")
    level, mode = chr(head[0]).upper(), chr(head[1]).upper()
    if level not in "HQML":
        raise ZplError("QR error correction must be H, Q, M or L")
    if not rest:
        raise ZplError("QR field data is empty after its prefix")
    if mode == "A":
        return rest, level
    if mode != "M":
        raise ZplError("QR input mode must be A (automatic) or M (manual)")
    kind, body = chr(rest[0]).upper(), rest[1:]
    if kind in "NA":
        return body, level
    if kind == "B" and re.fullmatch(rb"[0-9]{4}", body[:4]) and int(body[:4]) == len(body) - 4:
        return body[4:], level
    raise ZplError("QR manual mode supports one N, A or Bnnnn segment")


def _datamatrix(data: bytes, escape: int) -> tuple[bytes, bool]:
    """Return (data with FNC1 separators as GS, GS1?) of ^BX quality 200 field data."""
    out = bytearray()
    gs1 = False
    i = 0
    while i < len(data):
        byte = data[i]
        if byte != escape:
            out.append(byte)
            i += 1
            continue
        if i + 1 >= len(data):
            raise ZplError("a Data Matrix field ends with its escape character")
        code = data[i + 1]
        i += 2
        if code == escape:
            out.append(escape)
        elif code == ord("1"):
            if i == 2:
                gs1 = True
            elif gs1:
                out.append(0x1D)
            else:
                raise ZplError("FNC1 after the start of a non-GS1 Data Matrix is not supported")
        elif code == ord("d") and re.fullmatch(rb"[0-9]{3}", data[i : i + 3]):
            value = int(data[i : i + 3])
            if value > 255:
                raise ZplError("a Data Matrix byte escape is above 255")
            out.append(value)
            i += 3
        elif 0x40 <= code <= 0x5F:
            out.append(code - 0x40)
        else:
            raise ZplError(f"Data Matrix escape sequence {chr(code)!r} is not supported")
    return bytes(out), gs1


class _Reader:
    """Read a ZPL byte stream format by format."""

    def __init__(self, dpi: int, width: int, length: int) -> None:
        self.dpi = dpi
        self.default_size = (width, length)
        self.formats: list[LabelLayout] = []
        self.format: _Format | None = None

    def read(self, zpl: bytes) -> list[LabelLayout]:
        """Return the layouts of every format in `zpl`."""
        match = _PREFIX.search(zpl)
        while match is not None:
            caret = match[0] == b"^"
            start = match.end()
            if caret and zpl[start : start + 2].upper() == b"FD":
                # Field data runs to the next caret: a tilde in it is data (^BX's escape).
                end = zpl.find(b"^", start)
                end = len(zpl) if end < 0 else end
                match = _PREFIX.search(zpl, end)
            else:
                match = _PREFIX.search(zpl, start)
                end = len(zpl) if match is None else match.start()
            body = zpl[start:end]
            name = body[:1].decode("latin-1").upper()
            if name != "A":
                name = body[:2].decode("latin-1").upper()
            self.command(caret, name, body[len(name) :])
        if self.format is not None:
            raise ZplError("the last format does not end with ^XZ")
        return self.formats

    def command(self, caret: bool, name: str, rest: bytes) -> None:
        """Act on one command: format boundaries and field data here, settings elsewhere."""
        if name in _REFUSED:
            raise ZplError(f"{name} changes the command characters and is not supported")
        if not caret:
            return  # ~ commands act on the printer, not on the label
        if name == "XA":
            if self.format is not None:
                raise ZplError("^XA inside a format: a format must end with ^XZ first")
            if len(self.formats) >= MAX_FORMATS:
                raise ZplError(f"more than {MAX_FORMATS} formats at once")
            self.format = _Format(self.dpi, *self.default_size)
            return
        fmt = self.format
        if fmt is None:
            return  # outside a format a printer ignores label commands
        if name == "XZ":
            self.end_field(fmt)
            self.formats.append(LabelLayout(fmt.width, fmt.length, self.dpi, tuple(fmt.elements)))
            self.format = None
        elif name == "FD":
            if len(rest) > MAX_FIELD_BYTES:
                raise ZplError(f"field data longer than {MAX_FIELD_BYTES} bytes")
            fmt.current.data = _CR_LF.sub(b"", rest)
        elif name == "FS":
            self.end_field(fmt)
        else:
            self.setting(fmt, name, rest)

    def setting(self, fmt: _Format, name: str, rest: bytes) -> None:
        """Apply a command that sets up the format or the field being built."""
        params = _CR_LF.sub(b"", rest).decode("latin-1").split(",")
        current = fmt.current
        if name == "A":
            font_params = params[0][1:] if params[0] else ""
            parts = [font_params, *params[1:]]
            _orientation(parts, "^A")
            height = _int(_param(parts, 1), "^A font height", 1, MAX_FONT_DOTS, 9)
            width = _int(_param(parts, 2), "^A font width", 1, MAX_FONT_DOTS, height)
            current.font = (height, width)
        elif name == "FO":
            current.x = _int(_param(params, 0), "^FO x", 0, 32000, 0)
            current.y = _int(_param(params, 1), "^FO y", 0, 32000, 0)
        elif name == "FH":
            indicator = rest[:1]
            current.hex_indicator = indicator[0] if indicator and indicator[0] > 0x20 else 0x5F
        elif name in ("BC", "BQ", "BX"):
            _orientation(params, f"^{name}")
            current.barcode = (name, params)
        elif name == "BY":
            fmt.module = _int(_param(params, 0), "^BY module width", 1, 10, fmt.module)
            fmt.bar_height = _int(_param(params, 2), "^BY height", 1, 32000, fmt.bar_height)
        elif name == "PW":
            fmt.width = _int(_param(params, 0), "^PW", 2, MAX_DOTS)
        elif name == "LL":
            fmt.length = _int(_param(params, 0), "^LL", 1, MAX_DOTS)
        elif name == "LH":
            fmt.home = (
                _int(_param(params, 0), "^LH x", 0, MAX_DOTS, 0),
                _int(_param(params, 1), "^LH y", 0, MAX_DOTS, 0),
            )
        elif name == "CI":
            fmt.utf8 = _int(_param(params, 0), "^CI", 0, 36) == 28
        elif name == "FW" and _param(params, 0).upper() not in ("", "N"):
            raise ZplError("^FW with rotation is not supported: use N")

    def end_field(self, fmt: _Format) -> None:
        """Turn the field being built into an element, if it has data."""
        current, fmt.current = fmt.current, _Field()
        if current.data is None:
            return
        if len(fmt.elements) >= MAX_FIELDS:
            raise ZplError(f"more than {MAX_FIELDS} fields in one format")
        data = current.data
        if current.hex_indicator is not None:
            pattern = re.escape(bytes((current.hex_indicator,))) + rb"([0-9A-Fa-f]{2})"
            data = re.sub(pattern, lambda m: bytes.fromhex(m[1].decode()), data)
        x, y = fmt.home[0] + current.x, fmt.home[1] + current.y
        try:
            element = self.element(fmt, current, data, x, y)
        except LabelError as exc:
            raise ZplError(f"a field cannot be drawn: {exc.message}") from None
        if element is not None:
            fmt.elements.append(element)

    def element(self, fmt: _Format, current: _Field, data: bytes, x: int, y: int) -> Element | None:
        if current.barcode is None:
            height, width = current.font or (9, 5)
            room = max(0, fmt.width - x)
            text = data.decode("utf-8" if fmt.utf8 else "latin-1", "replace")
            # Only what can reach the label is drawn, so a huge field costs nothing.
            text = text[: room // max(1, width // 4) + 1]
            return TextLine(x, y, height, width, room, text)
        name, params = current.barcode
        if not data:
            return None
        if name == "BC":
            height = _int(_param(params, 1), "^BC height", 1, 32000, fmt.bar_height)
            if _param(params, 4).upper() == "Y":
                raise ZplError("^BC with a UCC check digit is not supported")
            mode = _param(params, 5).upper() or "N"
            if mode not in ("N", "A"):
                raise ZplError(f"^BC mode {mode[:5]!r} is not supported: use N or A")
            zint_input, text = _code128(data.decode("latin-1"), mode)
            symbol = encode_code128_sets(zint_input, text)
            return BarcodeBox(x, y, symbol.kind, text, fmt.module, height, symbol)
        if name == "BQ":
            if _param(params, 1) not in ("", "2"):
                raise ZplError("^BQ supports QR model 2 only")
            default = _QR_DEFAULT_MAGNIFICATION.get(self.dpi, 2)
            module = _int(_param(params, 2), "^BQ magnification", 1, 10, default)
            payload, level = _qr(data)
            symbol = encode_qr(payload, level)
            height = symbol.row_count * module
            return BarcodeBox(x, y, symbol.kind, symbol.data, module, height, symbol)
        return self.datamatrix(fmt, params, data, x, y)

    def datamatrix(
        self, fmt: _Format, params: list[str], data: bytes, x: int, y: int
    ) -> BarcodeBox:
        """Return the Data Matrix a ^BX field draws."""
        if _param(params, 2) != "200":
            raise ZplError("^BX supports quality 200 (ECC 200) only")
        escape = params[6][:1] if len(params) > 6 and params[6][:1] else "~"
        payload, gs1 = _datamatrix(data, ord(escape))
        if gs1:
            try:
                element_string = payload.decode("ascii")
            except UnicodeDecodeError:
                raise ZplError("a GS1 Data Matrix holds ASCII only") from None
            symbol = encode(GS1_DATAMATRIX, element_string)
        else:
            symbol = encode_datamatrix(payload)
        rows = symbol.row_count
        module = _int(_param(params, 1), "^BX module", 0, MAX_MODULE_DOTS, 0)
        if module == 0:
            # Without a module size the printer sizes the symbol from the ^BY height.
            module = max(1, min(MAX_MODULE_DOTS, round(fmt.bar_height / rows)))
        return BarcodeBox(x, y, symbol.kind, symbol.data, module, rows * module, symbol)


def read_formats(zpl: bytes, dpi: int = 203) -> list[LabelLayout]:
    """Return the layout each `^XA...^XZ` format in `zpl` prints, or raise ZplError."""
    if not isinstance(zpl, bytes | bytearray | memoryview):
        raise ZplError("ZPL must be bytes")
    data = bytes(zpl)
    if len(data) > MAX_ZPL_BYTES:
        raise ZplError(f"more than {MAX_ZPL_BYTES} bytes of ZPL at once")
    reader = _Reader(dpi, round(4 * dpi), round(6 * dpi))
    return reader.read(data)


def rasterise(zpl: bytes, dpi: int = 203) -> list[bytes]:
    """Return one PNG image (one pixel per dot) per format in `zpl`, or raise ZplError."""
    return [layout_png(layout) for layout in read_formats(zpl, dpi)]
