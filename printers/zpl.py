"""Render a unit label as one ZPL II format, and read the field data back out of a format.

Every field goes through `^FH\\` with the ZPL command and escape characters written as hex
(`\\5E` for ^, `\\7E` for ~, `\\5C` for \\), and control characters become spaces, so no
product name or URL can end a field early or start a command of its own. The layout for a
template is computed once and cached; rendering a label is string formatting and one encode.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from printers.label import GAP_DOTS, LabelTemplate, UnitLabel, qr_modules

# Average advance of a ^A0 (CG Triumvirate Bold Condensed) character as a share of its
# height; generous, so shortened text never runs into the QR code.
_CHAR_WIDTH = 0.6
_ELLIPSIS = "..."
_ESCAPE = str.maketrans({"\\": "\\5C", "^": "\\5E", "~": "\\7E"})
# C0, DEL, C1 and the Unicode line/paragraph separators have no glyph on a label, and a
# printer may act on some of them instead of printing them.
_CLEAN = str.maketrans(
    {code: " " for code in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029)},
)


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where each part of a label goes for one template and one QR code size."""

    header: str
    qr_origin: str
    text_origins: tuple[str, ...]
    text_chars: int
    barcode: str
    serial: str


@lru_cache(maxsize=256)
def _layout(template: LabelTemplate, qr_side_modules: int) -> _Layout:
    """Compute positions and command prefixes for `template` with a QR code of the given size."""
    margin = template.margin_dots
    width = template.width_dots
    qr_side = qr_side_modules * template.qr_magnification
    qr_x = width - margin - qr_side
    text_font = template.text_font_dots
    pitch = text_font + GAP_DOTS // 2
    lines = max(0, (template.barcode_top_dots - GAP_DOTS - margin) // pitch)
    text_width = qr_x - GAP_DOTS - margin
    serial_font = template.serial_font_dots
    return _Layout(
        header=f"^XA\n^CI28\n^PW{width}\n^LL{template.height_dots}\n^LH0,0\n",
        qr_origin=f"^FO{qr_x},{margin}^BQN,2,{template.qr_magnification}^FH\\^FDQA,",
        text_origins=tuple(
            f"^FO{margin},{margin + i * pitch}^A0N,{text_font},{text_font}^FH\\^FD"
            for i in range(lines)
        ),
        text_chars=int(text_width / (text_font * _CHAR_WIDTH)),
        barcode=(
            f"^FO{margin},{template.barcode_top_dots}^BY{template.barcode_module_dots}"
            f"^BCN,{template.barcode_height_dots},N,N,N,A^FH\\^FD"
        ),
        serial=f"^FO{margin},{template.serial_top_dots}^A0N,{serial_font},{serial_font}^FH\\^FD",
    )


def printable_text(value: str, max_chars: int) -> str:
    """Return `value` as it will read on a label: controls blanked, trimmed, at most `max_chars`."""
    max_chars = max(max_chars, 0)
    # Only the start can reach the label; cutting first keeps a megabyte name cheap.
    text = value[: 4 * max_chars].translate(_CLEAN).strip()
    if len(text) > max_chars:
        keep = max_chars - len(_ELLIPSIS)
        text = text[:keep].rstrip() + _ELLIPSIS if keep > 0 else text[:max_chars]
    return text


def render_zpl(label: UnitLabel, template: LabelTemplate) -> bytes:
    """Return one `^XA...^XZ` ZPL II format printing `label` laid out by `template`."""
    layout = _layout(template, qr_modules(len(label.verify_url)))
    texts: list[str] = []
    for shown, prefix, value in (
        (template.show_product, "", label.product_name),
        (template.show_sku, "SKU: ", label.sku),
        (template.show_work_order, "WO: ", label.work_order),
        (template.show_prod_date, "Date: ", label.prod_date),
    ):
        text = printable_text(value, layout.text_chars - len(prefix)) if shown else ""
        if text:
            texts.append(prefix + text)
    parts = [layout.header, layout.qr_origin, label.verify_url.translate(_ESCAPE), "^FS\n"]
    for origin, text in zip(layout.text_origins, texts, strict=False):
        parts += (origin, text.translate(_ESCAPE), "^FS\n")
    # The serial is validated to need no escaping: it is printed and encoded as it stands.
    parts += (layout.barcode, label.serial, "^FS\n", layout.serial, label.serial, "^FS\n^XZ")
    # Lone surrogates cannot be encoded; "replace" prints them as "?" instead of failing.
    return "".join(parts).encode("utf-8", "replace")


@lru_cache(maxsize=8)
def _hex_escape(indicator: int) -> re.Pattern[bytes]:
    """Return the pattern of a ^FH hex escape introduced by the byte `indicator`."""
    return re.compile(re.escape(bytes((indicator,))) + rb"([0-9A-Fa-f]{2})")


def extract_fields(zpl: bytes) -> list[str]:
    """Return the field data (^FD) of a ZPL format in order, with ^FH hex escapes undone.

    A QR code field keeps its mode prefix, e.g. `QA,https://...` for level Q, automatic mode.
    Bytes that are not UTF-8 come back as U+FFFD rather than raising.
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
