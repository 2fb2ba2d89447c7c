"""Render a unit label as a one-page PDF the size of the label, for office printers and previews.

The page is drawn from `printers.layout`, so it matches the ZPL and PNG renderings: each
symbol is one filled vector path built from zint's module matrix (sharp at any printer
resolution), text is Helvetica Bold, one of the fonts every PDF reader has, narrowed to the
room the layout gives it. Output is reproducible: the same label gives the same bytes.
"""

from __future__ import annotations

import io

from reportlab.pdfbase.pdfmetrics import getAscent, stringWidth  # type: ignore[import-untyped]
from reportlab.pdfgen.canvas import Canvas  # type: ignore[import-untyped]

from printers.label import LabelTemplate, UnitLabel
from printers.layout import BarcodeBox, LabelLayout, TextLine, layout_label

FONT = "Helvetica-Bold"
POINTS_PER_INCH = 72
# Helvetica's glyphs cover Windows-1252; anything else would show as a blank box.
_FONT_ENCODING = "cp1252"


def _pdf_text(text: str) -> str:
    """Return `text` with characters the standard font lacks shown as "?"."""
    return text.encode(_FONT_ENCODING, "replace").decode(_FONT_ENCODING)


def _draw_barcode(canvas: Canvas, box: BarcodeBox, page_height: int, scale: float) -> None:
    """Fill one path with a rectangle per dark run of the symbol."""
    path = canvas.beginPath()
    module = box.module
    if box.symbol.linear:
        bottom = (page_height - box.y - box.height) * scale
        for x, width in box.symbol.bars():
            left = (box.x + x * module) * scale
            path.rect(left, bottom, width * module * scale, box.height * scale)
    else:
        for row, x, width in box.symbol.runs():
            left = (box.x + x * module) * scale
            bottom = (page_height - box.y - (row + 1) * module) * scale
            path.rect(left, bottom, width * module * scale, module * scale)
    canvas.drawPath(path, stroke=0, fill=1)


def _draw_text(canvas: Canvas, line: TextLine, page_height: int, scale: float) -> None:
    """Draw one text line from its top-left corner, narrowed to fit its room."""
    text = _pdf_text(line.text)
    if not text or line.height <= 0:
        return
    size = line.height * scale
    natural = float(stringWidth(text, FONT, size))
    if natural <= 0:
        return
    target = min(natural * line.char_width / line.height, line.width * scale)
    baseline = (page_height - line.y) * scale - float(getAscent(FONT, size))
    obj = canvas.beginText(line.x * scale, baseline)
    obj.setFont(FONT, size)
    obj.setHorizScale(min(100.0, 100.0 * target / natural))
    obj.textOut(text)
    canvas.drawText(obj)


def layout_pdf(layout: LabelLayout, title: str = "label") -> bytes:
    """Return `layout` as a one-page PDF whose page is the label."""
    scale = POINTS_PER_INCH / layout.dpi
    buffer = io.BytesIO()
    canvas = Canvas(
        buffer,
        pagesize=(layout.width * scale, layout.height * scale),
        invariant=1,
        pageCompression=1,
    )
    canvas.setTitle(title)
    canvas.setCreator("LineLedger")
    canvas.setFillColorRGB(0, 0, 0)
    for element in layout.elements:
        if isinstance(element, BarcodeBox):
            _draw_barcode(canvas, element, layout.height, scale)
        else:
            _draw_text(canvas, element, layout.height, scale)
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def render_pdf(label: UnitLabel, template: LabelTemplate) -> bytes:
    """Return a one-page PDF of `label` laid out by `template`."""
    return layout_pdf(layout_label(label, template), title=label.serial)
