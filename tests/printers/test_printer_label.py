"""Tests for UnitLabel and LabelTemplate validation, conversion and geometry."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from printers.errors import ERR_LABEL_DATA, ERR_LABEL_TEMPLATE, LabelError, TemplateError
from printers.label import MAX_SERIAL, MAX_URL, LabelTemplate, UnitLabel
from printers.zpl import render_zpl

SERIAL = "MA01-HAT-BAG-20251109-00027-A9K2-X"
VERIFY_URL = f"https://verify.lineledger.example/s/{SERIAL}"


def test_default_template_is_a_4x2_inch_label_at_203_dpi() -> None:
    template = LabelTemplate()
    assert (template.name, template.dpi) == ("default", 203)
    assert (template.width_dots, template.height_dots) == (812, 406)


def test_template_round_trips_through_a_dict() -> None:
    template = LabelTemplate(name="small", dpi=300, width_mm=80, show_sku=False)
    data = template.to_dict()
    assert data["width_mm"] == 80.0 and isinstance(data["width_mm"], float)
    assert LabelTemplate.from_dict(data) == template


def test_from_dict_ignores_keys_it_does_not_know() -> None:
    template = LabelTemplate.from_dict({"qr_magnification": 3, "added_in_v9": {"x": 1}})
    assert template == LabelTemplate(qr_magnification=3)


@pytest.mark.parametrize(
    "data",
    [
        {"dpi": "203"},
        {"dpi": 200},
        {"dpi": 203.0},
        {"width_mm": "101.6"},
        {"width_mm": float("nan")},
        {"height_mm": float("inf")},
        {"height_mm": 5},
        {"margin_mm": -1},
        {"qr_magnification": True},
        {"qr_magnification": 0},
        {"qr_magnification": 2.0},
        {"text_font_dots": 1.5},
        {"barcode_height_dots": 10_000},
        {"show_product": 1},
        {"show_sku": "yes"},
        {"name": ""},
        {"name": "../etc"},
        {"name": None},
    ],
)
def test_from_dict_rejects_wrong_types_and_ranges(data: dict[str, Any]) -> None:
    with pytest.raises(TemplateError) as caught:
        LabelTemplate.from_dict(data)
    assert caught.value.code == ERR_LABEL_TEMPLATE
    assert isinstance(caught.value, ValueError)


def test_from_dict_rejects_what_is_not_a_mapping() -> None:
    with pytest.raises(TemplateError):
        LabelTemplate.from_dict(["dpi", 203])  # type: ignore[arg-type]


def test_template_refuses_a_qr_code_that_does_not_fit() -> None:
    with pytest.raises(TemplateError, match="qr_magnification"):
        LabelTemplate(qr_magnification=10)


def test_template_refuses_a_barcode_that_fills_the_label() -> None:
    with pytest.raises(TemplateError, match="barcode_height_dots"):
        LabelTemplate(barcode_height_dots=380)


@given(
    dpi=st.sampled_from([152, 203, 300, 600]),
    width_mm=st.floats(20, 300),
    height_mm=st.floats(15, 300),
    margin_mm=st.floats(0, 20),
    serial_font=st.integers(10, 200),
    text_font=st.integers(10, 200),
    bar_height=st.integers(20, 600),
    module=st.integers(1, 10),
    magnification=st.integers(1, 10),
)
def test_every_accepted_template_keeps_its_fields_on_the_label(
    dpi: int,
    width_mm: float,
    height_mm: float,
    margin_mm: float,
    serial_font: int,
    text_font: int,
    bar_height: int,
    module: int,
    magnification: int,
) -> None:
    try:
        template = LabelTemplate(
            dpi=dpi,
            width_mm=width_mm,
            height_mm=height_mm,
            margin_mm=margin_mm,
            serial_font_dots=serial_font,
            text_font_dots=text_font,
            barcode_height_dots=bar_height,
            barcode_module_dots=module,
            qr_magnification=magnification,
        )
    except TemplateError:
        return
    longest = UnitLabel(SERIAL, "https://v.example/" + "x" * (MAX_URL - 18), "Name", "SKU")
    zpl = render_zpl(longest, template)
    for x, y in re.findall(rb"\^FO(\d+),(\d+)", zpl):
        assert 0 <= int(x) < template.width_dots
        assert 0 <= int(y) < template.height_dots
    # The typical GTIN label fits every accepted template too.
    gs1 = UnitLabel(SERIAL, VERIFY_URL, gs1=(("01", "04006381333931"), ("21", "251109HAT0")))
    assert render_zpl(gs1, template).count(b"^FO") >= 4


def test_unit_label_accepts_a_standard_serial_and_https_url() -> None:
    label = UnitLabel(SERIAL, VERIFY_URL)
    assert (label.product_name, label.sku, label.work_order, label.prod_date) == ("",) * 4


@pytest.mark.parametrize(
    "serial",
    ["", "MA01 HAT", "A^XZ", "A~JR", "A>B", "A\\B", "Å1", "A\n", "X" * (MAX_SERIAL + 1), 7],
)
def test_unit_label_refuses_a_serial_a_barcode_cannot_carry(serial: Any) -> None:
    with pytest.raises(LabelError) as caught:
        UnitLabel(serial, VERIFY_URL)
    assert caught.value.code == ERR_LABEL_DATA


@pytest.mark.parametrize(
    "url",
    [
        "",
        "verify.example/s/1",
        "ftp://verify.example/s/1",
        "https://verify.example/s/a b",
        "https://verify.example/s/\x00",
        "https://verify.example/s/é",
        "https://v.example/" + "x" * MAX_URL,
        None,
    ],
)
def test_unit_label_refuses_an_unprintable_verify_url(url: Any) -> None:
    with pytest.raises(LabelError) as caught:
        UnitLabel(SERIAL, url)
    assert caught.value.code == ERR_LABEL_DATA


def test_unit_label_refuses_free_text_that_is_not_text() -> None:
    with pytest.raises(LabelError, match="product_name"):
        UnitLabel(SERIAL, VERIFY_URL, product_name=b"bag")  # type: ignore[arg-type]


GS1 = (("01", "04006381333931"), ("21", "251109HAT00027Z6S0Y"))


def test_a_label_carries_its_gs1_element_string() -> None:
    label = UnitLabel(SERIAL, VERIFY_URL, gs1=GS1)
    assert label.element_string == "010400638133393121251109HAT00027Z6S0Y"
    assert label.gs1_text == "(01)04006381333931(21)251109HAT00027Z6S0Y"
    assert UnitLabel(SERIAL, VERIFY_URL).element_string == ""


def test_gs1_fields_from_json_lists_become_tuples() -> None:
    label = UnitLabel(SERIAL, VERIFY_URL, gs1=[["01", "04006381333931"], ["10", "A"]])  # type: ignore[arg-type]
    assert label.gs1 == (("01", "04006381333931"), ("10", "A"))
    assert hash(label) == hash(UnitLabel(SERIAL, VERIFY_URL, gs1=label.gs1))


@pytest.mark.parametrize(
    "gs1",
    [
        (("01", "04006381333932"),),  # wrong check digit
        (("01", "4006381333931"),),  # 13 digits
        (("21", ""),),
        (("21", "x" * 21),),
        (("21", "a b"),),
        (("21", "é"),),
        (("99", "x"),),  # not an AI this system prints
        (("01", "04006381333931"), ("01", "04006381333931")),
        (("01",),),
        ("0104006381333931",),
        "0104006381333931",
        ((1, "x"),),
        None,
    ],
)
def test_gs1_data_that_is_not_a_valid_element_string_is_refused(gs1: Any) -> None:
    with pytest.raises(LabelError) as caught:
        UnitLabel(SERIAL, VERIFY_URL, gs1=gs1)
    assert caught.value.code == ERR_LABEL_DATA


def test_template_barcodes_default_and_come_from_a_json_list() -> None:
    assert LabelTemplate().barcodes == ("code128", "qr", "gs1_datamatrix")
    template = LabelTemplate.from_dict({"barcodes": ["qr", "gs1_datamatrix"]})
    assert template.barcodes == ("qr", "gs1_datamatrix")
    assert template.to_dict()["barcodes"] == ["qr", "gs1_datamatrix"]
    assert LabelTemplate.from_dict(template.to_dict()) == template
    assert LabelTemplate(barcodes=()).barcodes == ()


@pytest.mark.parametrize(
    ("barcodes", "match"),
    [
        (["qr", "ean13"], "unknown barcode kind 'ean13'"),
        (["qr", "qr"], "twice"),
        ("qr", "list"),
        ([1], "list"),
        (None, "list"),
    ],
)
def test_template_barcodes_are_checked(barcodes: Any, match: str) -> None:
    with pytest.raises(TemplateError, match=match):
        LabelTemplate.from_dict({"barcodes": barcodes})


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"datamatrix_module_dots": 20}, "datamatrix_module_dots"),
        ({"datamatrix_module_dots": 0}, "datamatrix_module_dots"),
        ({"width_mm": 60}, "barcode_module_dots"),
        ({"barcodes": ["gs1_128"], "barcode_module_dots": 3}, "GS1-128"),
    ],
)
def test_templates_whose_typical_label_does_not_fit_are_refused(
    data: dict[str, Any], match: str
) -> None:
    with pytest.raises(TemplateError, match=match):
        LabelTemplate.from_dict(data)
