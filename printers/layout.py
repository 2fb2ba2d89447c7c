"""Where each part of a unit label goes, in printer dots, the same for every renderer.

`layout_label(label, template)` returns a `LabelLayout`: text lines and barcode boxes in
drawing order, each with its position and size and, for a barcode, its encoded symbol. ZPL,
PDF and PNG are drawn from it, so they look alike. The label, top to bottom:

    Tote bag, natural leather          [Data Matrix] [QR code]
    SKU: TB-100-NAT
    (01)04006381333931(21)251109HAT00027Z6S0Y      <- element string, GS1 labels only
    ||||||||||||||||||||||||||||||||||||           <- Code 128 of the serial
    MA01-HAT-BAG-20251109-00027-A9K2-X

A template with "gs1_128" puts the element string's line under its GS1-128 symbol, above the
Code 128. The 2D symbols stand at the top right, the QR code at the right edge; free text
fills the room left of them and is shortened to fit. A linear symbol starts at the left
margin, or is centred when it is wider than the room between the margins; either way it
keeps `QUIET_MODULES` of clear space to the label's edges. Text that must be read whole (the
serial, the element string) is set narrower rather than cut. What does not fit raises
LabelError for a label, or TemplateError for a template (`check_template`, which lays out a
typical LineLedger label with and without GS1 data).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from printers.barcodes import (
    CODE128,
    DATAMATRIX,
    GS1_128,
    GS1_DATAMATRIX,
    GS1_KINDS,
    QR,
    Symbol,
    encode,
)
from printers.errors import LabelError, TemplateError
from printers.label import GAP_DOTS, MAX_URL, LabelTemplate, UnitLabel, qr_modules

# ISO/IEC 15417 asks 10 modules of quiet zone beside Code 128; half of that on the label is
# the least we print, because the light backing around a die-cut label adds to it.
QUIET_MODULES = 5
# The smallest character width in dots that still prints legibly (ZPL ^A0 minimum).
MIN_FONT_DOTS = 10
# Average advance of a ^A0 (CG Triumvirate Bold Condensed) character as a share of its
# width setting; generous, so text never runs into a symbol.
CHAR_WIDTH = 0.6
_ELLIPSIS = "..."
# C0, DEL, C1 and the Unicode line/paragraph separators have no glyph on a label, and a
# printer may act on some of them instead of printing them.
_CLEAN = str.maketrans(
    {code: " " for code in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029)},
)

REFERENCE_SERIAL = "MA01-HAT-BAG-20251109-00027-A9K2-X"
REFERENCE_GS1 = (("01", "04006381333931"), ("21", "251109HAT00027Z6S0Y"))
REFERENCE_DIGITAL_LINK = (
    "https://verify.lineledger.example/01/04006381333931/21/251109HAT00027Z6S0Y"
)


@dataclass(frozen=True, slots=True)
class TextLine:
    """One line of text: top-left corner, font height, character width and the room it has."""

    x: int
    y: int
    height: int
    char_width: int
    width: int
    text: str


@dataclass(frozen=True, slots=True)
class BarcodeBox:
    """One barcode: top-left corner, module size and height in dots, and its symbol."""

    x: int
    y: int
    kind: str
    data: str
    module: int
    height: int
    symbol: Symbol

    @property
    def width(self) -> int:
        """Return the symbol's width in dots, without quiet zones."""
        return self.symbol.columns * self.module


Element = TextLine | BarcodeBox


@dataclass(frozen=True, slots=True)
class LabelLayout:
    """Everything on one label, in drawing order, on a page of `width` x `height` dots."""

    width: int
    height: int
    dpi: int
    elements: tuple[Element, ...]

    @property
    def texts(self) -> tuple[TextLine, ...]:
        """Return the text lines."""
        return tuple(e for e in self.elements if isinstance(e, TextLine))

    @property
    def barcodes(self) -> tuple[BarcodeBox, ...]:
        """Return the barcode boxes."""
        return tuple(e for e in self.elements if isinstance(e, BarcodeBox))


class _NoRoom(Exception):
    """A part does not fit; the message says which and what to change."""


def printable_text(value: str, max_chars: int) -> str:
    """Return `value` as it will read on a label: controls blanked, trimmed, at most `max_chars`."""
    max_chars = max(max_chars, 0)
    # Only the start can reach the label; cutting first keeps a megabyte name cheap.
    text = value[: 4 * max_chars].translate(_CLEAN).strip()
    if len(text) > max_chars:
        keep = max_chars - len(_ELLIPSIS)
        text = text[:keep].rstrip() + _ELLIPSIS if keep > 0 else text[:max_chars]
    # A lone surrogate has no encoding: every renderer shows it as "?".
    return text.encode("utf-8", "replace").decode("utf-8")


def _whole_line(
    x: int, y: int, font: int, room: int, text: str, what: str, setting: str
) -> TextLine:
    """Return a line that shows all of `text`, set narrower if needed, or raise _NoRoom."""
    natural = len(text) * CHAR_WIDTH * font
    char_width = font if natural <= room else int(room / (len(text) * CHAR_WIDTH))
    if char_width < max(MIN_FONT_DOTS, font // 2):
        raise _NoRoom(
            f"the {what} ({len(text)} characters) does not fit on one line of {room} dots: "
            f"lower {setting} or margin_mm, or use a wider label"
        )
    return TextLine(x, y, font, char_width, room, text)


def _linear(kind: str, data: str, y: int, template: LabelTemplate, what: str) -> BarcodeBox:
    """Return a linear symbol at height `y`, at the left margin or centred, or raise _NoRoom."""
    symbol = encode(kind, data)
    module = template.barcode_module_dots
    width = symbol.columns * module
    label_width = template.width_dots
    side = max(template.margin_dots, QUIET_MODULES * module)
    x = side if side + width + side <= label_width else (label_width - width) // 2
    if x < QUIET_MODULES * module:
        raise _NoRoom(
            f"the {what} is {width} dots wide and needs {QUIET_MODULES * module} clear dots "
            f"on each side of a {label_width}-dot label: lower barcode_module_dots or use a "
            "wider label"
        )
    return BarcodeBox(x, y, kind, data, module, template.barcode_height_dots, symbol)


def _square(kind: str, data: str, x_right: int, y: int, module: int) -> BarcodeBox:
    """Return a 2D symbol whose right edge is at `x_right`."""
    symbol = encode(kind, data)
    side = symbol.columns * module
    return BarcodeBox(x_right - side, y, kind, data, module, symbol.row_count * module, symbol)


def _layout(label: UnitLabel, template: LabelTemplate) -> LabelLayout:
    """Lay out `label` on `template`, or raise _NoRoom naming what does not fit."""
    width, height, margin = template.width_dots, template.height_dots, template.margin_dots
    kinds = [kind for kind in template.barcodes if label.gs1 or kind not in GS1_KINDS]
    inner = width - 2 * margin
    half_gap = GAP_DOTS // 2

    # The bottom stack, built upwards from the serial line.
    y = template.serial_top_dots
    stack: list[Element] = [
        _whole_line(
            margin, y, template.serial_font_dots, inner, label.serial, "serial", "serial_font_dots"
        )
    ]
    if CODE128 in kinds:
        y -= half_gap + template.barcode_height_dots
        stack.append(_linear(CODE128, label.serial, y, template, "Code 128 of the serial"))
    if label.gs1:
        y -= half_gap + template.text_font_dots
        text = label.gs1_text
        font = template.text_font_dots
        stack.append(_whole_line(margin, y, font, inner, text, "GS1 text", "text_font_dots"))
        if GS1_128 in kinds:
            y -= half_gap + template.barcode_height_dots
            stack.append(_linear(GS1_128, label.element_string, y, template, "GS1-128 symbol"))
    band = y - GAP_DOTS - margin
    if band < template.text_font_dots:
        raise _NoRoom(
            "the bar codes and the lines under them leave no room above them: lower "
            "barcode_height_dots, serial_font_dots, text_font_dots or margin_mm, or use a "
            "taller label"
        )

    # 2D symbols at the top right, right to left.
    squares: list[Element] = []
    x_right = width - margin
    if QR in kinds:
        url = label.verify_url
        qr = _square(QR, url, x_right, margin, template.qr_magnification)
        # A printer encodes the QR code itself and may need more modules than zint did.
        side = max(qr.width, qr_modules(len(url.encode("utf-8"))) * template.qr_magnification)
        if side > band:
            raise _NoRoom(
                f"the QR code ({side} dots) is taller than the {band} dots above the bar "
                "codes: lower qr_magnification, barcode_height_dots or margin_mm, or use a "
                "larger label"
            )
        squares.append(BarcodeBox(x_right - side, margin, QR, url, qr.module, qr.height, qr.symbol))
        x_right -= side + GAP_DOTS
    for kind in (GS1_DATAMATRIX, DATAMATRIX):
        if kind in kinds:
            data = label.element_string if kind == GS1_DATAMATRIX else label.serial
            box = _square(kind, data, x_right, margin, template.datamatrix_module_dots)
            if box.height > band:
                raise _NoRoom(
                    f"the Data Matrix ({box.height} dots) is taller than the {band} dots "
                    "above the bar codes: lower datamatrix_module_dots or barcode_height_dots, "
                    "or use a larger label"
                )
            squares.append(box)
            x_right = box.x - GAP_DOTS
    text_width = (x_right if squares else width - margin) - margin
    if text_width < 2 * template.text_font_dots:
        raise _NoRoom(
            "the 2D symbols leave no room for text beside them: lower qr_magnification, "
            "datamatrix_module_dots, text_font_dots or margin_mm, or use a larger label"
        )

    # Free text beside the 2D symbols, shortened to the room it has.
    font = template.text_font_dots
    pitch = font + half_gap
    chars = int(text_width / (font * CHAR_WIDTH))
    texts: list[Element] = []
    for shown, prefix, value in (
        (template.show_product, "", label.product_name),
        (template.show_sku, "SKU: ", label.sku),
        (template.show_work_order, "WO: ", label.work_order),
        (template.show_prod_date, "Date: ", label.prod_date),
    ):
        if len(texts) >= band // pitch:
            break
        text = printable_text(value, chars - len(prefix)) if shown else ""
        if text:
            y_text = margin + len(texts) * pitch
            texts.append(TextLine(margin, y_text, font, font, text_width, prefix + text))
    return LabelLayout(width, height, template.dpi, (*squares, *texts, *reversed(stack)))


def layout_label(label: UnitLabel, template: LabelTemplate) -> LabelLayout:
    """Return the layout of `label` on `template`, or raise LabelError if it does not fit."""
    try:
        return _layout(label, template)
    except _NoRoom as exc:
        raise LabelError(
            f"the label of {label.serial} does not fit template {template.name}: {exc}"
        ) from None


@cache
def reference_labels() -> tuple[UnitLabel, UnitLabel]:
    """Return the typical labels every template must fit: without and with GS1 data."""
    longest_url = "https://v.example/" + "x" * (MAX_URL - len("https://v.example/"))
    return (
        UnitLabel(REFERENCE_SERIAL, longest_url),
        UnitLabel(REFERENCE_SERIAL, REFERENCE_DIGITAL_LINK, gs1=REFERENCE_GS1),
    )


def check_template(template: LabelTemplate) -> None:
    """Raise TemplateError if a typical label does not fit `template`."""
    for label in reference_labels():
        try:
            _layout(label, template)
        except _NoRoom as exc:
            raise TemplateError(str(exc)) from None
