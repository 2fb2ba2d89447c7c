"""Tests for render_label: the three formats, what each transport takes, reproducibility."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from printers import RENDER_FORMATS, render_label
from printers.errors import ERR_LABEL_DATA, LabelError
from printers.filespool import FilePrinter
from printers.label import LabelTemplate, UnitLabel
from printers.pdfspool import PdfPrinter
from printers.serialport import SerialPrinter
from printers.tcp import TcpPrinter
from tests.printers.decoding import SERIAL, gs1_label, rasterise_pdf


def test_the_formats_are_zpl_pdf_and_png() -> None:
    assert RENDER_FORMATS == ("zpl", "pdf", "png")
    label, template = gs1_label(), LabelTemplate()
    assert render_label(label, template, "zpl").startswith(b"^XA")
    assert render_label(label, template, "pdf").startswith(b"%PDF-")
    assert render_label(label, template, "png").startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.parametrize("fmt", ["ZPL", "svg", "", None, 3])
def test_an_unknown_format_is_refused(fmt: object) -> None:
    with pytest.raises(LabelError) as caught:
        render_label(gs1_label(), LabelTemplate(), fmt)  # type: ignore[arg-type]
    assert caught.value.code == ERR_LABEL_DATA


def test_every_transport_says_which_format_it_takes(tmp_path: Path) -> None:
    assert TcpPrinter("printer-1").format == "zpl"
    assert SerialPrinter("loop://").format == "zpl"
    assert FilePrinter(tmp_path).format == "zpl"
    assert PdfPrinter(tmp_path).format == "pdf"
    for transport in (TcpPrinter, SerialPrinter, FilePrinter, PdfPrinter):
        assert transport.format in RENDER_FORMATS


@pytest.mark.parametrize("dpi", [152, 203, 300, 600])
def test_png_has_one_pixel_per_dot_and_records_the_resolution(dpi: int) -> None:
    template = LabelTemplate(
        dpi=dpi, barcode_module_dots=1 if dpi < 203 else 2, qr_magnification=max(2, dpi // 100)
    )
    with Image.open(io.BytesIO(render_label(gs1_label(), template, "png"))) as image:
        assert image.size == (template.width_dots, template.height_dots)
        assert image.mode == "1"
        assert round(image.info["dpi"][0]) == dpi


def test_pdf_page_is_the_label_and_rendering_is_reproducible() -> None:
    template = LabelTemplate(width_mm=80, height_mm=50, barcodes=("qr", "gs1_datamatrix"))
    first = render_label(gs1_label(), template, "pdf")
    assert render_label(gs1_label(), template, "pdf") == first
    (page,) = rasterise_pdf(first, dpi=254)  # 10 pixels per millimetre
    # The page is the label in whole printer dots, as ^PW and ^LL give it to a printer.
    assert abs(page.size[0] - 800) <= 1 and abs(page.size[1] - 500) <= 1


def test_png_and_pdf_draw_the_same_label() -> None:
    template = LabelTemplate(dpi=300, qr_magnification=6, datamatrix_module_dots=6)
    label = gs1_label()
    with Image.open(io.BytesIO(render_label(label, template, "png"))) as png:
        preview = png.convert("L")
    (page,) = rasterise_pdf(render_label(label, template, "pdf"), dpi=300)
    # Barcodes are the same pixels; only the fonts differ, so compare the symbol areas.
    from printers.layout import layout_label

    for box in layout_label(label, template).barcodes:
        area = (box.x, box.y, box.x + box.width, box.y + box.height)
        a, b = preview.crop(area), page.crop(area)
        differing = sum(
            1 for p, q in zip(a.tobytes(), b.tobytes(), strict=True) if (p < 128) != (q < 128)
        )
        assert differing <= 0.02 * box.width * box.height, box.kind


@settings(max_examples=40, deadline=None)
@given(
    name=st.text(max_size=300),
    sku=st.text(max_size=60),
    fmt=st.sampled_from(["zpl", "pdf", "png"]),
)
def test_any_free_text_renders_in_every_format(name: str, sku: str, fmt: str) -> None:
    label = UnitLabel(SERIAL, "https://v.example/s/1", product_name=name, sku=sku)
    assert render_label(label, LabelTemplate(), fmt)
