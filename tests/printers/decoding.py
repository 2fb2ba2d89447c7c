"""Read rendered labels back with independent tools: zxing-cpp, biip and pypdfium2."""

from __future__ import annotations

import io
from dataclasses import dataclass

import biip
import pypdfium2
import zxingcpp
from PIL import Image

from printers.label import LabelTemplate, UnitLabel
from protocol.gs1 import digital_link

GTIN = "04006381333931"
AI21 = "251109HAT00027Z6S0Y"
SERIAL = "MA01-HAT-BAG-20251109-00027-A9K2-X"
ALL_KINDS = ["gs1_128", "code128", "qr", "gs1_datamatrix", "datamatrix"]


@dataclass(frozen=True)
class Decoded:
    """One symbol a decoder found: its format, AIM symbology identifier and raw text."""

    format: str
    symbology: str
    text: str

    def gs1_fields(self) -> tuple[tuple[str, str], ...]:
        """Return the GS1 element strings biip reads from the symbol, as (AI, value) pairs."""
        result = biip.parse(self.symbology + self.text)
        assert result.gs1_message is not None, result.gs1_message_error
        return tuple((e.ai.ai, e.value) for e in result.gs1_message.element_strings)


def decode_image(image: Image.Image) -> list[Decoded]:
    """Return every symbol zxing-cpp finds in `image`, with text as transmitted (GS kept)."""
    found = zxingcpp.read_barcodes(image, text_mode=zxingcpp.TextMode.Plain)
    return [Decoded(str(b.format), b.symbology_identifier, b.text) for b in found]


def decode_png(png: bytes) -> list[Decoded]:
    """Return every symbol in a PNG image."""
    with Image.open(io.BytesIO(png)) as image:
        return decode_image(image.convert("L"))


def rasterise_pdf(pdf: bytes, dpi: int = 300) -> list[Image.Image]:
    """Return each page of a PDF as an image at `dpi`."""
    document = pypdfium2.PdfDocument(pdf)
    try:
        images = []
        for index in range(len(document)):
            page = document[index]
            bitmap = page.render(scale=dpi / 72)
            images.append(bitmap.to_pil().convert("L"))
            bitmap.close()
            page.close()
        return images
    finally:
        document.close()


def decode_pdf(pdf: bytes, dpi: int = 300) -> list[Decoded]:
    """Return every symbol on every page of a PDF rasterised at `dpi`."""
    return [symbol for image in rasterise_pdf(pdf, dpi) for symbol in decode_image(image)]


def gs1_label(gtin: str = GTIN, ai21: str = AI21, serial: str = SERIAL, **extra: str) -> UnitLabel:
    """Return a label of a GTIN product whose QR code is its GS1 Digital Link."""
    fields = (("01", gtin), ("21", ai21), *((ai, value) for ai, value in extra.items()))
    return UnitLabel(
        serial=serial,
        verify_url=digital_link("https://verify.lineledger.example", gtin, ai21),
        product_name="Tote bag, natural leather",
        sku="TB-100-NAT",
        gs1=fields,
    )


def tall_template(**options: object) -> LabelTemplate:
    """Return a 6 x 3 inch template that prints every barcode kind (GS1-128 is wide)."""
    return LabelTemplate(
        width_mm=152.4,
        height_mm=76.2,
        barcodes=tuple(ALL_KINDS),
        **options,  # type: ignore[arg-type]
    )


def check_symbols(found: list[Decoded], label: UnitLabel, kinds: list[str]) -> None:
    """Assert that `found` holds exactly the symbols of `kinds` for `label`, decoded right."""
    by_id: dict[str, list[Decoded]] = {}
    for symbol in found:
        by_id.setdefault(symbol.symbology, []).append(symbol)
    expected: dict[str, list[str]] = {}
    for kind in kinds:
        symbology, text = {
            "code128": ("]C0", label.serial),
            "gs1_128": ("]C1", label.element_string),
            "qr": ("]Q1", label.verify_url),
            "gs1_datamatrix": ("]d2", label.element_string),
            "datamatrix": ("]d1", label.serial),
        }[kind]
        expected.setdefault(symbology, []).append(text)
    assert {key: sorted(s.text for s in value) for key, value in by_id.items()} == {
        key: sorted(value) for key, value in expected.items()
    }
    for symbol in found:
        if symbol.symbology in ("]C1", "]d2"):
            # biip, an independent GS1 parser, reads the same fields from the symbol.
            assert symbol.gs1_fields() == label.gs1
            # AIs are encoded bare: the parentheses are only in the text people read.
            assert symbol.text.startswith(label.gs1[0][0] + label.gs1[0][1])
