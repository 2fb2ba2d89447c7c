"""Proof that every rendered barcode decodes to what the label says, in ZPL, PDF and PNG.

ZPL is read back by `printers.zplrender` (directly, and through the simulator's render_dir
over a real socket), PDF is rasterised by pdfium at 300 dpi, PNG is decoded as rendered; the
decoder is zxing-cpp and GS1 data is parsed again by biip.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from printers.label import LabelTemplate, UnitLabel
from printers.render import render_label
from printers.simulator import PrinterSimulator
from printers.tcp import TcpPrinter
from printers.zplrender import rasterise
from protocol.gs1 import mod10_check_digit
from tests.printers.decoding import (
    ALL_KINDS,
    SERIAL,
    Decoded,
    check_symbols,
    decode_pdf,
    decode_png,
    gs1_label,
    tall_template,
)

# GS1 character set 82, the characters AI (21) may hold.
CSET82 = "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
gtins = st.from_regex(r"[0-9]{13}", fullmatch=True).map(lambda d: d + mod10_check_digit(d))
ai21s = st.text(st.sampled_from(CSET82), min_size=1, max_size=20)
serials = st.from_regex(
    r"[A-Z0-9]{2,6}-[A-Z]{3}-[A-Z]{2,4}-20[0-9]{6}-[0-9]{5}-[0-9A-Z]{4}-[0-9A-Z]", fullmatch=True
)


def decode(label: UnitLabel, template: LabelTemplate, fmt: str) -> list[Decoded]:
    """Render `label` as `fmt` and decode every symbol on it."""
    data = render_label(label, template, fmt)
    if fmt == "zpl":
        (png,) = rasterise(data, template.dpi)
        return decode_png(png)
    return decode_pdf(data) if fmt == "pdf" else decode_png(data)


@pytest.mark.parametrize("fmt", ["zpl", "pdf", "png"])
def test_every_kind_decodes_to_the_label_data(fmt: str) -> None:
    # GS1-128 holds at most 48 characters: (01), (21) and a short (10) fit.
    label = gs1_label(**{"10": "LOT7"})
    check_symbols(decode(label, tall_template(), fmt), label, ALL_KINDS)


@pytest.mark.parametrize("fmt", ["zpl", "pdf", "png"])
def test_the_default_label_decodes_with_and_without_gs1(fmt: str) -> None:
    template = LabelTemplate()
    label = gs1_label()
    check_symbols(decode(label, template, fmt), label, ["code128", "qr", "gs1_datamatrix"])
    plain = UnitLabel(SERIAL, f"https://verify.lineledger.example/v/{SERIAL}")
    check_symbols(decode(plain, template, fmt), plain, ["code128", "qr"])


@pytest.mark.parametrize("fmt", ["zpl", "pdf", "png"])
@pytest.mark.parametrize("dpi", [300, 600])
def test_labels_decode_at_higher_resolutions(fmt: str, dpi: int) -> None:
    template = LabelTemplate(
        dpi=dpi,
        serial_font_dots=48,
        text_font_dots=40,
        barcode_height_dots=120,
        barcode_module_dots=3,
        qr_magnification=6,
        datamatrix_module_dots=6,
    )
    label = gs1_label()
    check_symbols(decode(label, template, fmt), label, ["code128", "qr", "gs1_datamatrix"])


def test_gs1_datamatrix_puts_gs_between_variable_fields_only() -> None:
    label = gs1_label(**{"10": "A1", "17": "271231", "240": "X"})
    found = decode(label, LabelTemplate(), "zpl")
    (matrix,) = [symbol for symbol in found if symbol.symbology == "]d2"]
    # (21) and (10) are variable: each is ended by GS; (17) is fixed; (240) is last.
    assert matrix.text == f"01{label.gs1[0][1]}21{label.gs1[1][1]}\x1d10A1\x1d17271231240X"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gtin=gtins, ai21=ai21s, serial=serials, fmt=st.sampled_from(["zpl", "pdf", "png"]))
def test_generated_gtins_and_serials_decode(gtin: str, ai21: str, serial: str, fmt: str) -> None:
    label = gs1_label(gtin, ai21, serial)
    check_symbols(decode(label, tall_template(), fmt), label, ALL_KINDS)


def test_labels_printed_through_the_simulator_decode_from_its_render_dir(
    tmp_path: Path,
) -> None:
    labels = [gs1_label(ai21=f"251109HAT{n:05d}Z6S0Y") for n in range(1, 4)]
    template = tall_template()
    with PrinterSimulator(record_dir=tmp_path / "zpl", render_dir=tmp_path / "png") as sim:
        with TcpPrinter(*sim.address) as printer:
            for label in labels:
                printer.send(render_label(label, template, "zpl"), "ignored")
            assert printer.query_status().ready
        assert sim.render_failures == 0
    images = sorted((tmp_path / "png").iterdir())
    assert [path.name for path in images] == ["000001.png", "000002.png", "000003.png"]
    assert sorted(p.name for p in (tmp_path / "zpl").iterdir()) == [
        "000001.zpl",
        "000002.zpl",
        "000003.zpl",
    ]
    for path, label in zip(images, labels, strict=True):
        check_symbols(decode_png(path.read_bytes()), label, ALL_KINDS)


def test_the_simulator_counts_formats_it_cannot_draw_and_keeps_printing(
    tmp_path: Path,
) -> None:
    good = render_label(gs1_label(), LabelTemplate(), "zpl")
    with PrinterSimulator(render_dir=tmp_path) as sim:
        with TcpPrinter(*sim.address) as printer:
            printer.send(b"^XA^FO0,0^BQN,2,4^FDZZ,nonsense^FS^XZ", "bad")
            printer.send(good, "good")
            printer.query_status()
        assert len(sim.printed) == 2
        assert sim.render_failures == 1 and "QR" in sim.render_errors[0]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["000002.png"]
