"""Barcode symbols as matrices of dark and light modules, encoded by zint.

`encode(kind, data)` returns the `Symbol` of one of `KINDS`:

- "code128": Code 128 of printable ASCII text (the serial);
- "gs1_128": GS1-128 of a GS1 element string;
- "qr": QR code, error correction level Q, of text (the verify URL);
- "gs1_datamatrix": GS1 Data Matrix (ECC 200) of a GS1 element string;
- "datamatrix": plain Data Matrix (ECC 200) of text.

GS1 data is given the way a scanner transmits it after the symbology identifier: AIs and
values without parentheses, GS (0x1D) where an FNC1 separator goes. zint receives it as
`[01]...[21]...` in GS1 mode and places FNC1 itself: first, and after each variable-length
field that is not the last. Every renderer draws from these matrices, so a PDF, a PNG preview
and the ZPL read-back show the same symbol. This is the only module that knows zint's API.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import zint

from printers.errors import LabelError
from protocol.errors import ProtocolError
from protocol.gs1 import parse_element_string

CODE128 = "code128"
GS1_128 = "gs1_128"
QR = "qr"
GS1_DATAMATRIX = "gs1_datamatrix"
DATAMATRIX = "datamatrix"
KINDS = (CODE128, GS1_128, QR, GS1_DATAMATRIX, DATAMATRIX)
GS1_KINDS = frozenset({GS1_128, GS1_DATAMATRIX})
LINEAR_KINDS = frozenset({CODE128, GS1_128})
# zint's option_1 for QR codes: the error correction level.
QR_LEVELS = {"L": 1, "M": 2, "Q": 3, "H": 4}
# The bytes zint's encoded_data holds per row (1152 modules, one bit each).
_ROW_BYTES = 144
_DARK_RUN = re.compile("1+")


@dataclass(frozen=True, slots=True)
class Symbol:
    """One encoded barcode: `rows[y]` has bit `x` set where module (x, y) is dark."""

    kind: str
    data: str
    columns: int
    rows: tuple[int, ...]

    @property
    def linear(self) -> bool:
        """Return True for a one-row bar code whose bars take the full symbol height."""
        return self.kind in LINEAR_KINDS

    @property
    def row_count(self) -> int:
        """Return the number of module rows (1 for a linear bar code)."""
        return len(self.rows)

    def dark(self, x: int, y: int) -> bool:
        """Return True if module (x, y) is dark."""
        return bool(self.rows[y] >> x & 1)

    def runs(self) -> list[tuple[int, int, int]]:
        """Return the dark runs as (row, first column, length), row by row, left to right."""
        found: list[tuple[int, int, int]] = []
        for y, row in enumerate(self.rows):
            # Bits as text, lowest first: one regex pass beats testing module by module.
            bits = format(row, "b")[::-1]
            found.extend((y, m.start(), m.end() - m.start()) for m in _DARK_RUN.finditer(bits))
        return found

    def bars(self) -> list[tuple[int, int]]:
        """Return the bars of a linear symbol as (first module, width in modules)."""
        return [(x, width) for y, x, width in self.runs() if y == 0]


def _symbol(
    kind: str,
    text: str,
    symbology: zint.Symbology,
    data: bytes,
    input_mode: zint.InputMode | None = None,
    option_1: int | None = None,
    option_3: int | None = None,
) -> Symbol:
    """Encode `data` with zint and return its module matrix, or raise LabelError."""
    symbol = zint.Symbol()
    symbol.symbology = symbology
    symbol.warn_level = zint.WarningLevel.FAIL_ALL
    if input_mode is not None:
        symbol.input_mode = input_mode
    if option_1 is not None:
        symbol.option_1 = option_1
    if option_3 is not None:
        symbol.option_3 = option_3
    try:
        symbol.encode(data)
    except RuntimeError as exc:
        raise LabelError(f"a {kind} symbol cannot hold {text[:60]!r}: {exc}") from None
    columns, count = symbol.width, symbol.rows
    raw = symbol.encoded_data.tobytes()
    width_bytes = (columns + 7) // 8
    mask = (1 << columns) - 1
    rows = tuple(
        int.from_bytes(raw[y * _ROW_BYTES : y * _ROW_BYTES + width_bytes], "little") & mask
        for y in range(count)
    )
    return Symbol(kind, text, columns, rows)


def zint_gs1_input(element_string: str) -> str:
    """Return an element string as zint's GS1 input, `[01]04006381333931[21]ABC`."""
    try:
        fields = parse_element_string(element_string)
    except ProtocolError as exc:
        raise LabelError(f"not a GS1 element string this system prints: {exc.message}") from None
    return "".join(f"[{ai}]{value}" for ai, value in fields)


@lru_cache(maxsize=512)
def encode(kind: str, data: str) -> Symbol:
    """Return the symbol of `kind` (one of KINDS) for `data`, or raise LabelError."""
    if not isinstance(data, str) or not data:
        raise LabelError(f"a {kind} symbol needs non-empty text")
    if kind == CODE128:
        if not data.isascii():
            raise LabelError("a Code 128 symbol on a label holds ASCII text only")
        return _symbol(kind, data, zint.Symbology.CODE128, data.encode("ascii"))
    if kind == QR:
        return encode_qr(data.encode("utf-8", "replace"), "Q", text=data)
    if kind == DATAMATRIX:
        return encode_datamatrix(data.encode("utf-8", "replace"), text=data)
    if kind in GS1_KINDS:
        source = zint_gs1_input(data).encode("ascii")
        if kind == GS1_128:
            return _symbol(kind, data, zint.Symbology.GS1_128, source, zint.InputMode.GS1)
        return _symbol(
            kind,
            data,
            zint.Symbology.DATAMATRIX,
            source,
            zint.InputMode.GS1,
            option_3=zint.DataMatrixOptions.SQUARE,
        )
    raise LabelError(f"unknown barcode kind {str(kind)[:30]!r}: use one of {', '.join(KINDS)}")


def encode_qr(data: bytes, level: str = "Q", text: str | None = None) -> Symbol:
    """Return a model 2 QR code of `data` at error correction `level` (L, M, Q or H)."""
    if level not in QR_LEVELS:
        raise LabelError(f"QR error correction level {level[:10]!r} is not one of L, M, Q, H")
    shown = data.decode("utf-8", "replace") if text is None else text
    return _symbol(QR, shown, zint.Symbology.QRCODE, data, option_1=QR_LEVELS[level])


def encode_datamatrix(data: bytes, text: str | None = None) -> Symbol:
    """Return a square ECC 200 Data Matrix of `data`, without FNC1."""
    shown = data.decode("utf-8", "replace") if text is None else text
    return _symbol(
        DATAMATRIX,
        shown,
        zint.Symbology.DATAMATRIX,
        data,
        option_3=zint.DataMatrixOptions.SQUARE,
    )


def encode_code128_sets(escaped: str, text: str) -> Symbol:
    """Return Code 128 of zint extra-escape input: `\\^A` `\\^B` `\\^C` set code sets, `\\^1` FNC1.

    A symbol that starts with FNC1 is GS1-128; its kind says so.
    """
    kind = GS1_128 if escaped.startswith(("\\^1", "\\^A\\^1", "\\^B\\^1", "\\^C\\^1")) else CODE128
    return _symbol(
        kind,
        text,
        zint.Symbology.CODE128,
        escaped.encode("latin-1", "replace"),
        zint.InputMode.EXTRA_ESCAPE | zint.InputMode.ESCAPE,
    )
