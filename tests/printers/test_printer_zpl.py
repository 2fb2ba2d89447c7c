"""Tests for rendering a unit label to ZPL and reading its field data back."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from printers.label import LabelTemplate, UnitLabel
from printers.zpl import (
    code128_field,
    datamatrix_field,
    extract_fields,
    printable_text,
    render_zpl,
)
from printers.zplrender import read_formats
from protocol.gs1 import format_element_string

SERIAL = "MA01-HAT-BAG-20251109-00027-A9K2-X"
SHORT_URL = "https://v.example/s/1"
# Short enough for one line next to the QR code of SHORT_URL on the default template.
FITS_ON_A_LINE = 30

# Everything except what the renderer blanks: controls, surrogates, line/paragraph separators.
printable = st.text(
    st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp")), max_size=FITS_ON_A_LINE
)


def commands(zpl: bytes) -> list[bytes]:
    """Return the two-letter ZPL command names of a format, in order."""
    return [chunk[:2] for chunk in zpl.split(b"^")[1:]]


def test_render_produces_one_utf8_format_with_serial_barcode_and_qr(
    label: UnitLabel, template: LabelTemplate
) -> None:
    zpl = render_zpl(label, template)
    assert zpl.startswith(b"^XA") and zpl.endswith(b"^XZ")
    assert b"^CI28" in zpl
    assert b"^PW812" in zpl and b"^LL406" in zpl
    assert re.search(rb"\^BCN,70,N,N,N,A\^FH\\\^FD" + label.serial.encode() + rb"\^FS", zpl)
    assert re.search(rb"\^A0N,32,32\^FH\\\^FD" + label.serial.encode() + rb"\^FS", zpl)
    assert b"^BQN,2,4^FH\\^FDQA," + label.verify_url.encode() + b"^FS" in zpl
    assert zpl.count(b"^FD") == zpl.count(b"^FH\\^FD") == zpl.count(b"^FS")


def test_extract_fields_reads_what_the_label_says(
    label: UnitLabel, template: LabelTemplate
) -> None:
    assert extract_fields(render_zpl(label, template)) == [
        f"QA,{label.verify_url}",
        "Tote bag, natural leather",
        "SKU: TB-100-NAT",
        "WO: WO-2025-0042",
        "Date: 2025-11-09",
        label.serial,
        label.serial,
    ]


def test_hidden_and_empty_fields_are_left_out(label: UnitLabel) -> None:
    template = LabelTemplate(show_sku=False, show_prod_date=False)
    bare = UnitLabel(label.serial, label.verify_url, product_name="  ", work_order="WO-1")
    assert extract_fields(render_zpl(bare, template)) == [
        f"QA,{label.verify_url}",
        "WO: WO-1",
        label.serial,
        label.serial,
    ]


def test_zpl_commands_in_text_are_printed_not_obeyed(template: LabelTemplate) -> None:
    hostile = "^XZ^XA^FO0,0^FDforged^FS~JR\\5E\x10\x1e\r\n"
    zpl = render_zpl(UnitLabel(SERIAL, SHORT_URL, product_name=hostile), template)
    assert zpl.count(b"^XA") == 1 and zpl.count(b"^XZ") == 1
    assert b"~" not in zpl
    assert extract_fields(zpl)[1] == "^XZ^XA^FO0,0^FDforged^FS~JR\\5E"


def test_url_characters_that_are_zpl_commands_are_escaped(template: LabelTemplate) -> None:
    url = "https://v.example/~line^3\\x"
    zpl = render_zpl(UnitLabel(SERIAL, url), template)
    assert b"QA,https://v.example/\\7Eline\\5E3\\5Cx^FS" in zpl
    assert extract_fields(zpl)[0] == f"QA,{url}"


def test_a_lone_surrogate_prints_as_a_question_mark(template: LabelTemplate) -> None:
    zpl = render_zpl(UnitLabel(SERIAL, SHORT_URL, product_name="bag \ud800"), template)
    assert extract_fields(zpl)[1] == "bag ?"


def test_a_huge_name_is_shortened_to_the_line(template: LabelTemplate) -> None:
    zpl = render_zpl(UnitLabel(SERIAL, SHORT_URL, product_name="W" * 1_000_000), template)
    name = extract_fields(zpl)[1]
    assert name.endswith("...") and FITS_ON_A_LINE < len(name) < 100
    assert len(zpl) < 2000


def test_printable_text_blanks_controls_trims_and_shortens() -> None:
    assert printable_text(" a\tb\x00c\u2028 ", 10) == "a b c"
    assert printable_text("abcdefghij", 6) == "abc..."
    assert printable_text("abcdef", 2) == "ab"
    assert printable_text("abc", -1) == ""


@given(name=printable)
def test_product_names_round_trip_through_zpl(name: str) -> None:
    zpl = render_zpl(UnitLabel(SERIAL, SHORT_URL, product_name=name), LabelTemplate())
    shown = extract_fields(zpl)
    if name.strip():
        assert shown[1] == name.strip()
    else:
        assert len(shown) == 3


@given(
    name=st.text(),
    sku=st.text(),
    work_order=st.text(),
    prod_date=st.text(),
)
def test_no_text_can_add_or_end_a_command(
    name: str, sku: str, work_order: str, prod_date: str
) -> None:
    label = UnitLabel(SERIAL, SHORT_URL, name, sku, work_order, prod_date)
    zpl = render_zpl(label, LabelTemplate())
    assert zpl.count(b"^XA") == 1 and zpl.count(b"^XZ") == 1
    assert b"~" not in zpl
    assert not re.search(rb"[\x00-\x09\x0b-\x1f\x7f]", zpl)
    fields = extract_fields(zpl)
    texts = len(fields) - 3
    text_field = [b"FO", b"A0", b"FH", b"FD", b"FS"]
    assert commands(zpl) == (
        [b"XA", b"CI", b"PW", b"LL", b"LH", b"FO", b"BQ", b"FH", b"FD", b"FS"]
        + text_field * texts
        + [b"FO", b"BY", b"BC", b"FH", b"FD", b"FS", b"FO", b"A0", b"FH", b"FD", b"FS", b"XZ"]
    )
    for field in fields:
        assert not any(unicodedata.category(char) in ("Cc", "Zl", "Zp") for char in field)


@given(st.binary(max_size=2000))
def test_extract_fields_never_fails_on_arbitrary_bytes(data: bytes) -> None:
    assert all(isinstance(field, str) for field in extract_fields(data))


def test_extract_fields_follows_the_hex_indicator_of_each_field() -> None:
    zpl = b"^XA^FH^FDa_5Eb^FS^FH\\^FDc\\7Ed_5E^FS^FDe\\5Cf^FS^FH#^FDg#zz#41^FS^XZ"
    assert extract_fields(zpl) == ["a^b", "c~d_5E", "e\\5Cf", "g#zzA"]


GS1 = (("01", "04006381333931"), ("21", "251109HAT00027Z6S0Y"))
CSET82 = "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"


@pytest.mark.parametrize(
    ("element_string", "field"),
    [
        ("0104006381333931", ">;>80104006381333931"),
        ("01040063813339312112", ">;>801040063813339312112"),
        ("0104006381333931212511>0", ">;>80104006381333931212511>6>00"),
        ("21ABC\x1d10X", ">:>821ABC>810X"),  # two digits cost the same in B as in C
        ("21A123456", ">:>821A>5123456"),
        ("21A12345", ">:>821A1>52345"),  # an odd run leaves its first digit in B
        ("10ABC", ">:>810ABC"),
        ("21", ">;>821"),
    ],
)
def test_gs1_128_field_data_uses_explicit_subsets_and_fnc1(element_string: str, field: str) -> None:
    assert code128_field(element_string) == field


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["10", "21", "240"]),
            st.text(st.sampled_from(CSET82), min_size=1, max_size=12),
        ),
        min_size=1,
        max_size=3,
        unique_by=lambda pair: pair[0],
    )
)
def test_gs1_128_field_data_reads_back_as_the_element_string(fields: list[tuple[str, str]]) -> None:
    element_string = format_element_string(tuple(fields))
    zpl = b"^XA^FO0,0^BCN,50,N,N,N,N^FD" + code128_field(element_string).encode() + b"^FS^XZ"
    (layout,) = read_formats(zpl)
    (box,) = layout.barcodes
    assert (box.kind, box.data) == ("gs1_128", element_string)


def test_datamatrix_field_data_escapes_its_escape_character_and_marks_fnc1() -> None:
    assert datamatrix_field("0104006381333931" + "21A_B\x1d10X", gs1=True) == (
        "_10104006381333931" + "21A__B_110X"
    )
    assert datamatrix_field("MA01_X", gs1=False) == "MA01__X"


def test_a_gs1_label_prints_a_gs1_datamatrix_and_its_text_with_parentheses(
    label: UnitLabel, template: LabelTemplate
) -> None:
    gs1_label = UnitLabel(label.serial, label.verify_url, gs1=GS1)
    zpl = render_zpl(gs1_label, template)
    assert b"^BXN,4,200,,,,_^FH\\^FD_1010400638133393121251109HAT00027Z6S0Y^FS" in zpl
    fields = extract_fields(zpl)
    assert "(01)04006381333931(21)251109HAT00027Z6S0Y" in fields
    barcode_fields = [f for f in fields if f.startswith(("QA,", "_1")) or f == label.serial]
    assert not any("(01)" in f for f in barcode_fields)


def test_a_gs1_128_label_uses_mode_n(label: UnitLabel) -> None:
    template = LabelTemplate(width_mm=152.4, height_mm=76.2, barcodes=("gs1_128", "qr"))
    zpl = render_zpl(UnitLabel(label.serial, label.verify_url, gs1=GS1), template)
    assert b"^BCN,70,N,N,N,N^FH\\^FD>;>8010400638133393121251109>6HAT0>50027>6Z6S0Y^FS" in zpl
    assert b"^BCN,70,N,N,N,A" not in zpl  # no Code 128 of the serial on this template
