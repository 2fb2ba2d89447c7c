"""What one unit label says (`UnitLabel`) and how it is laid out (`LabelTemplate`).

Both are frozen and validated when built: a serial that a Code 128 symbol cannot carry, a
verify URL no QR code on a label holds, a GS1 element string that is not valid, or a template
whose parts do not fit on the label with a typical LineLedger label (`printers.layout`
checks that) are refused here, with a message that says what to change. A label with more
data than the typical one is checked again when it is laid out. Free text (product name,
SKU, work order, date) is never refused; the layout cleans and shortens it instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from printers.barcodes import KINDS
from printers.errors import LabelError, TemplateError
from protocol.errors import ProtocolError
from protocol.gs1 import MAX_ELEMENT_STRING, format_element_string

MM_PER_INCH = 25.4
MAX_SERIAL = 48
MAX_URL = 128
DPI_VALUES = (152, 203, 300, 600)

# Printable ASCII without ^ ~ \ (ZPL command and escape characters) and > (the Code 128
# invocation character), so the serial goes into the barcode exactly as written.
_SERIAL = re.compile(r"[!-=?-\[\]_-}]+")
_URL = re.compile(r"https?://[!-~]+", re.IGNORECASE)
_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")

# Bytes a QR code of error correction level Q holds in byte mode, versions 1 to 9; byte mode
# is the worst case of the printer's automatic mode, so the size here is an upper bound.
_QR_Q_BYTES = (11, 20, 32, 46, 60, 74, 86, 108, 130)
assert _QR_Q_BYTES[-1] >= MAX_URL

# Gap in dots kept between the parts of a label.
GAP_DOTS = 12
# One template serves products with and without a GTIN: GS1 kinds are left out of labels
# that have no element string.
DEFAULT_BARCODES = ("code128", "qr", "gs1_datamatrix")


def qr_modules(data_bytes: int) -> int:
    """Return the side in modules of the smallest level-Q QR code holding `data_bytes` bytes."""
    for version, capacity in enumerate(_QR_Q_BYTES, start=1):
        if data_bytes <= capacity:
            return 17 + 4 * version
    raise LabelError(f"a QR code on a label holds at most {_QR_Q_BYTES[-1]} bytes")


@dataclass(frozen=True, slots=True)
class UnitLabel:
    """The facts printed on one unit label."""

    serial: str
    verify_url: str
    product_name: str = ""
    sku: str = ""
    work_order: str = ""
    prod_date: str = ""
    gs1: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        serial = self.serial
        if not isinstance(serial, str) or len(serial) > MAX_SERIAL or not _SERIAL.fullmatch(serial):
            raise LabelError(
                f"serial {str(serial)[:60]!r} cannot be printed: use 1-{MAX_SERIAL} "
                "printable ASCII characters without spaces or ^ ~ \\ >"
            )
        url = self.verify_url
        if not isinstance(url, str) or len(url) > MAX_URL or not _URL.fullmatch(url):
            raise LabelError(
                f"verify URL {str(url)[:60]!r} cannot be printed: use an http(s) URL of at "
                f"most {MAX_URL} printable ASCII characters without spaces"
            )
        for name in ("product_name", "sku", "work_order", "prod_date"):
            if not isinstance(getattr(self, name), str):
                raise LabelError(f"label field {name} must be text")
        object.__setattr__(self, "gs1", _gs1_fields(self.gs1))

    @property
    def element_string(self) -> str:
        """Return the GS1 element string as encoded (GS between fields), or "" without GS1."""
        return format_element_string(self.gs1) if self.gs1 else ""

    @property
    def gs1_text(self) -> str:
        """Return the element string as people read it, `(01)...(21)...`, or ""."""
        return format_element_string(self.gs1, human=True) if self.gs1 else ""


def _gs1_fields(value: object) -> tuple[tuple[str, str], ...]:
    """Return GS1 (AI, value) pairs as a tuple of tuples, or raise LabelError."""
    if not isinstance(value, tuple | list):
        raise LabelError("gs1 must be a list of [AI, value] pairs")
    pairs: list[tuple[str, str]] = []
    for pair in value:
        if (
            not isinstance(pair, tuple | list)
            or len(pair) != 2
            or not all(isinstance(part, str) for part in pair)
        ):
            raise LabelError("gs1 must be a list of [AI, value] pairs of text")
        pairs.append((pair[0], pair[1]))
    fields = tuple(pairs)
    if not fields:
        return fields
    try:
        encoded = format_element_string(fields)
    except ProtocolError as exc:
        raise LabelError(f"the GS1 element string cannot be printed: {exc.message}") from None
    if len(encoded) > MAX_ELEMENT_STRING:
        raise LabelError(f"the GS1 element string is longer than {MAX_ELEMENT_STRING} characters")
    if len({ai for ai, _value in fields}) != len(fields):
        raise LabelError("the GS1 element string names an AI twice")
    return fields


@dataclass(frozen=True, slots=True)
class LabelTemplate:
    """Size, resolution and layout options of a unit label; fonts and bars are in dots."""

    name: str = "default"
    dpi: int = 203
    width_mm: float = 2 * 50.8
    height_mm: float = 50.8
    margin_mm: float = 3.0
    show_product: bool = True
    show_sku: bool = True
    show_work_order: bool = True
    show_prod_date: bool = True
    serial_font_dots: int = 32
    text_font_dots: int = 28
    barcode_height_dots: int = 70
    barcode_module_dots: int = 2
    qr_magnification: int = 4
    datamatrix_module_dots: int = 4
    barcodes: tuple[str, ...] = DEFAULT_BARCODES

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise TemplateError(
                f"template name {str(self.name)[:60]!r} is not valid: use 1-64 of A-Z a-z 0-9 . _ -"
            )
        if type(self.dpi) is not int or self.dpi not in DPI_VALUES:
            raise TemplateError(f"dpi must be one of {DPI_VALUES}, got {self.dpi!r}")
        for name, (low, high) in _FLOAT_RANGES.items():
            value = getattr(self, name)
            if type(value) not in (int, float) or not low <= value <= high:
                raise TemplateError(f"{name} must be a number from {low} to {high}, got {value!r}")
            object.__setattr__(self, name, float(value))
        for name, (ilow, ihigh) in _INT_RANGES.items():
            value = getattr(self, name)
            if type(value) is not int or not ilow <= value <= ihigh:
                raise TemplateError(
                    f"{name} must be a whole number from {ilow} to {ihigh}, got {value!r}"
                )
        for name in _BOOL_FIELDS:
            if type(getattr(self, name)) is not bool:
                raise TemplateError(f"{name} must be true or false, got {getattr(self, name)!r}")
        object.__setattr__(self, "barcodes", _barcode_kinds(self.barcodes))
        # The layout needs a whole template, so it is imported here, not at module level.
        from printers.layout import check_template

        check_template(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LabelTemplate:
        """Build a template from configuration, ignoring keys this version does not know."""
        if not isinstance(data, Mapping):
            raise TemplateError("a label template must be a JSON object")
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})

    def to_dict(self) -> dict[str, Any]:
        """Return the template as plain JSON-ready values."""
        data = asdict(self)
        data["barcodes"] = list(self.barcodes)
        return data

    def dots(self, mm: float) -> int:
        """Return `mm` millimetres in printer dots at this template's resolution."""
        return round(mm * self.dpi / MM_PER_INCH)

    @property
    def width_dots(self) -> int:
        """Return the label width in dots (ZPL ^PW)."""
        return self.dots(self.width_mm)

    @property
    def height_dots(self) -> int:
        """Return the label length in dots (ZPL ^LL)."""
        return self.dots(self.height_mm)

    @property
    def margin_dots(self) -> int:
        """Return the empty border kept on every side, in dots."""
        return self.dots(self.margin_mm)

    @property
    def serial_top_dots(self) -> int:
        """Return where the human-readable serial starts, at the bottom of the label."""
        return self.height_dots - self.margin_dots - self.serial_font_dots

    @property
    def barcode_top_dots(self) -> int:
        """Return where the Code 128 symbol starts, just above the serial."""
        return self.serial_top_dots - GAP_DOTS // 2 - self.barcode_height_dots


def _barcode_kinds(value: object) -> tuple[str, ...]:
    """Return the barcode kinds of a template as a tuple, or raise TemplateError."""
    if not isinstance(value, tuple | list) or not all(isinstance(kind, str) for kind in value):
        raise TemplateError(f"barcodes must be a list of barcode kinds ({', '.join(KINDS)})")
    unknown = [kind for kind in value if kind not in KINDS]
    if unknown:
        raise TemplateError(
            f"unknown barcode kind {unknown[0][:30]!r}: use some of {', '.join(KINDS)}"
        )
    if len(set(value)) != len(value):
        raise TemplateError("barcodes names a barcode kind twice")
    return tuple(value)


_FLOAT_RANGES = {"width_mm": (20.0, 300.0), "height_mm": (15.0, 300.0), "margin_mm": (0.0, 20.0)}
_INT_RANGES = {
    "serial_font_dots": (10, 200),
    "text_font_dots": (10, 200),
    "barcode_height_dots": (20, 600),
    "barcode_module_dots": (1, 10),
    "qr_magnification": (1, 10),
    "datamatrix_module_dots": (1, 20),
}
_BOOL_FIELDS = ("show_product", "show_sku", "show_work_order", "show_prod_date")
