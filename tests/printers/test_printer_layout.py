"""Tests for the back-end-neutral layout: where things go, what is left out, what cannot fit."""

from __future__ import annotations

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from printers.errors import LabelError, TemplateError
from printers.label import MAX_URL, LabelTemplate, UnitLabel
from printers.layout import (
    QUIET_MODULES,
    BarcodeBox,
    Element,
    TextLine,
    layout_label,
    printable_text,
)
from tests.printers.decoding import SERIAL, gs1_label


def box_of(element: Element) -> tuple[int, int, int, int]:
    """Return (left, top, right, bottom) of an element, exclusive of right and bottom."""
    if isinstance(element, BarcodeBox):
        return element.x, element.y, element.x + element.width, element.y + element.height
    return element.x, element.y, element.x + element.width, element.y + element.height


def overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_the_default_gs1_label_in_drawing_order() -> None:
    layout = layout_label(gs1_label(), LabelTemplate())
    assert (layout.width, layout.height, layout.dpi) == (812, 406, 203)
    kinds = [e.kind if isinstance(e, BarcodeBox) else "text" for e in layout.elements]
    assert kinds == ["qr", "gs1_datamatrix", "text", "text", "text", "code128", "text"]
    qr, matrix = layout.barcodes[:2]
    assert qr.x + qr.width == 812 - 24 and qr.y == 24  # top right, inside the margin
    assert matrix.x + matrix.width <= qr.x - 12
    texts = [t.text for t in layout.texts]
    assert texts == [
        "Tote bag, natural leather",
        "SKU: TB-100-NAT",
        "(01)04006381333931(21)251109HAT00027Z6S0Y",
        SERIAL,
    ]
    assert layout.texts[-1].y + layout.texts[-1].height == 406 - 24


def test_encoded_data_never_has_parentheses_but_the_text_shows_ais_in_them() -> None:
    label = gs1_label()
    layout = layout_label(
        label, LabelTemplate(width_mm=152.4, barcodes=("gs1_128", "gs1_datamatrix"))
    )
    for box in layout.barcodes:
        assert box.data == "010400638133393121251109HAT00027Z6S0Y"
    assert "(01)04006381333931(21)251109HAT00027Z6S0Y" in [t.text for t in layout.texts]


def test_gs1_kinds_are_left_out_of_a_label_without_gs1() -> None:
    template = LabelTemplate(
        width_mm=152.4, height_mm=76.2, barcodes=("gs1_128", "code128", "qr", "gs1_datamatrix")
    )
    layout = layout_label(UnitLabel(SERIAL, "https://v.example/v/1"), template)
    assert [b.kind for b in layout.barcodes] == ["qr", "code128"]
    assert not any(t.text.startswith("(01)") for t in layout.texts)


def test_a_template_without_barcodes_prints_text_only() -> None:
    layout = layout_label(gs1_label(), LabelTemplate(barcodes=()))
    assert layout.barcodes == ()
    assert layout.texts[-1].text == SERIAL


def test_a_wide_code128_is_centred_with_its_quiet_zones() -> None:
    layout = layout_label(gs1_label(), LabelTemplate())
    (code128,) = [b for b in layout.barcodes if b.kind == "code128"]
    assert code128.width > 812 - 2 * 24  # wider than the room between the margins
    left, right = code128.x, 812 - code128.x - code128.width
    assert abs(left - right) <= 1 and min(left, right) >= QUIET_MODULES * code128.module


def test_a_serial_too_long_for_a_code128_on_the_label_is_a_label_error() -> None:
    label = UnitLabel("ABCDEF-HAT-ABCD-20251109-00027-A9K2-X", "https://v.example/1")
    with pytest.raises(LabelError, match="barcode_module_dots"):
        layout_label(label, LabelTemplate())
    assert layout_label(label, LabelTemplate(barcode_module_dots=1)).barcodes


def test_a_long_element_string_is_set_narrower_then_refused() -> None:
    template = LabelTemplate(height_mm=76.2)
    label = gs1_label(**{"10": "ABCDEFGHIJ", "240": "X" * 14})
    (line,) = [t for t in layout_label(label, template).texts if t.text.startswith("(01)")]
    assert line.char_width < line.height
    assert len(line.text) * 0.6 * line.char_width <= line.width
    longer = gs1_label(**{"10": "A" * 20, "240": "X" * 30, "250": "Y" * 30})
    with pytest.raises(LabelError, match="GS1 text"):
        layout_label(longer, template)


def test_a_long_url_beside_gs1_data_can_outgrow_the_default_label() -> None:
    url = "https://v.example/" + "x" * (MAX_URL - 18)
    label = UnitLabel(SERIAL, url, gs1=gs1_label().gs1)
    with pytest.raises(LabelError, match="QR code"):
        layout_label(label, LabelTemplate())
    assert layout_label(UnitLabel(SERIAL, url), LabelTemplate()).barcodes[0].kind == "qr"


def test_template_errors_name_what_to_change() -> None:
    with pytest.raises(TemplateError, match="qr_magnification"):
        LabelTemplate(qr_magnification=10)
    with pytest.raises(TemplateError, match="barcode_height_dots"):
        LabelTemplate(barcode_height_dots=380)
    with pytest.raises(TemplateError, match="datamatrix_module_dots"):
        LabelTemplate(datamatrix_module_dots=12)
    with pytest.raises(TemplateError, match="no room for text"):
        LabelTemplate(
            width_mm=60,
            barcodes=("qr", "gs1_datamatrix"),
            qr_magnification=5,
            datamatrix_module_dots=7,
        )


def test_printable_text_blanks_controls_trims_shortens_and_replaces_surrogates() -> None:
    assert printable_text(" a\tb\x00c\u2028 ", 10) == "a b c"
    assert printable_text("abcdefghij", 6) == "abc..."
    assert printable_text("bag \ud800", 10) == "bag ?"


template_options = st.fixed_dictionaries(
    {},
    optional=dict(
        dpi=st.sampled_from([203, 300]),
        width_mm=st.floats(60, 160),
        height_mm=st.floats(30, 120),
        margin_mm=st.floats(0, 6),
        serial_font_dots=st.integers(16, 48),
        text_font_dots=st.integers(14, 40),
        barcode_height_dots=st.integers(30, 120),
        barcode_module_dots=st.integers(1, 3),
        qr_magnification=st.integers(2, 6),
        datamatrix_module_dots=st.integers(2, 8),
        barcodes=st.lists(
            st.sampled_from(["code128", "gs1_128", "qr", "gs1_datamatrix", "datamatrix"]),
            unique=True,
        ).map(tuple),
    ),
)


@settings(max_examples=300, deadline=None)
@given(options=template_options, name=st.text(max_size=80), with_gs1=st.booleans())
def test_every_element_is_on_the_label_and_nothing_overlaps(
    options: dict[str, object], name: str, with_gs1: bool
) -> None:
    try:
        template = LabelTemplate.from_dict(options)
    except TemplateError:
        event("template refused")
        return
    label = gs1_label() if with_gs1 else UnitLabel(SERIAL, "https://v.example/v/" + SERIAL)
    label = UnitLabel(label.serial, label.verify_url, product_name=name, gs1=label.gs1)
    try:
        layout = layout_label(label, template)
    except LabelError:
        event("label refused")
        return
    event("laid out")
    boxes = [box_of(e) for e in layout.elements]
    for left, top, right, bottom in boxes:
        assert 0 <= left < right <= layout.width and 0 <= top < bottom <= layout.height
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not overlap(a, b), layout
    for element in layout.elements:
        if isinstance(element, TextLine):
            assert len(element.text) * 0.6 * element.char_width <= element.width + 1
