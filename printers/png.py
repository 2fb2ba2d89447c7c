"""Render a unit label as a 1-bit PNG image at the template's resolution, for previews.

One image pixel is one printer dot, so the preview shows what a thermal printer prints:
symbols are drawn module by module from zint's matrices (`printers.barcodes`) at the
positions of `printers.layout`, text in Pillow's built-in scalable font. `paint_layout` also
draws layouts read back from ZPL by `printers.zplrender`, which may place things partly off
the label: drawing is clipped to the image, and callers bound the text they pass.
"""

from __future__ import annotations

import io
import math
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from printers.label import LabelTemplate, UnitLabel
from printers.layout import BarcodeBox, LabelLayout, TextLine, layout_label

# Pixel values of a mode "1" image.
BLACK = 0
WHITE = 1


@lru_cache(maxsize=64)
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Return Pillow's built-in font at `size` pixels (an em), cached per size."""
    return ImageFont.load_default(size)


def _draw_barcode(draw: ImageDraw.ImageDraw, box: BarcodeBox) -> None:
    """Draw a symbol's dark modules as filled rectangles."""
    module = box.module
    if box.symbol.linear:
        bottom = box.y + box.height - 1
        for x, width in box.symbol.bars():
            left = box.x + x * module
            draw.rectangle((left, box.y, left + width * module - 1, bottom), fill=BLACK)
        return
    for row, x, width in box.symbol.runs():
        left, top = box.x + x * module, box.y + row * module
        draw.rectangle((left, top, left + width * module - 1, top + module - 1), fill=BLACK)


def _draw_text(image: Image.Image, draw: ImageDraw.ImageDraw, line: TextLine) -> None:
    """Draw a text line, narrowed to its character width and to the room it has."""
    if not line.text or line.height <= 0:
        return
    face = font(line.height)
    natural = face.getlength(line.text)
    target = min(natural * line.char_width / line.height, float(line.width))
    if natural <= 0 or target <= 0:
        return
    if target >= natural - 0.5:
        draw.text((line.x, line.y), line.text, font=face, fill=BLACK, anchor="la")
        return
    # Pillow cannot narrow a font, so the text is drawn at full width and squeezed.
    height = math.ceil(line.height * 1.25)
    mask = Image.new("L", (math.ceil(natural), height), 0)
    ImageDraw.Draw(mask).text((0, 0), line.text, font=face, fill=255, anchor="la")
    mask = mask.resize((max(1, round(target)), height), Image.Resampling.BOX)
    image.paste(BLACK, (line.x, line.y), mask.point(lambda value: 255 if value >= 128 else 0))


def paint_layout(layout: LabelLayout) -> Image.Image:
    """Return a 1-bit image of `layout`, one pixel per dot, white where nothing is printed."""
    image = Image.new("1", (layout.width, layout.height), WHITE)
    draw = ImageDraw.Draw(image)
    draw.fontmode = "1"
    for element in layout.elements:
        if isinstance(element, BarcodeBox):
            _draw_barcode(draw, element)
        else:
            _draw_text(image, draw, element)
    return image


def layout_png(layout: LabelLayout) -> bytes:
    """Return `layout` as PNG bytes with its resolution recorded."""
    buffer = io.BytesIO()
    paint_layout(layout).save(buffer, "PNG", dpi=(layout.dpi, layout.dpi))
    return buffer.getvalue()


def render_png(label: UnitLabel, template: LabelTemplate) -> bytes:
    """Return a PNG image of `label` laid out by `template`, one pixel per printer dot."""
    return layout_png(layout_label(label, template))
