"""Tests for reading ZPL back: the guide's semantics, what our renderer emits, hostile input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from printers import errors as E
from printers.errors import ZplError
from printers.label import LabelTemplate
from printers.layout import BarcodeBox, LabelLayout, TextLine
from printers.zpl import render_zpl
from printers.zplrender import (
    MAX_FIELDS,
    MAX_FORMATS,
    MAX_ZPL_BYTES,
    rasterise,
    read_formats,
)
from tests.printers.decoding import decode_png, gs1_label


def one(zpl: bytes) -> LabelLayout:
    """Return the layout of the only format in `zpl`."""
    (layout,) = read_formats(zpl)
    return layout


def barcode(field: bytes, command: bytes = b"^BCN,50,N,N,N,N") -> BarcodeBox:
    """Return the one barcode a format with `command` and field data `field` draws."""
    (box,) = one(b"^XA^PW800^LL300^FO20,20" + command + b"^FD" + field + b"^FS^XZ").barcodes
    return box


def refused(zpl: bytes, match: str = "") -> ZplError:
    with pytest.raises(ZplError, match=match) as caught:
        read_formats(zpl)
    assert caught.value.code == E.ERR_ZPL
    return caught.value


# -- what printers.zpl writes reads back as the layout it came from ---------------------


def test_a_rendered_label_reads_back_as_its_layout() -> None:
    from printers.layout import layout_label

    label = gs1_label(**{"10": "A>B_C"})
    template = LabelTemplate(
        width_mm=152.4,
        height_mm=76.2,
        barcodes=("gs1_128", "code128", "qr", "gs1_datamatrix", "datamatrix"),
    )
    expected = layout_label(label, template)
    read = one(render_zpl(label, template))
    assert (read.width, read.height) == (expected.width, expected.height)
    assert [(b.x, b.y, b.kind, b.data, b.module) for b in read.barcodes] == [
        (b.x, b.y, b.kind, b.data, b.module) for b in expected.barcodes
    ]
    assert [(t.x, t.y, t.height, t.char_width, t.text) for t in read.texts] == [
        (t.x, t.y, t.height, t.char_width, t.text) for t in expected.texts
    ]
    # The symbols zint drew from the ZPL are the ones the layout drew from the label.
    for got, want in zip(read.barcodes, expected.barcodes, strict=True):
        if got.kind != "gs1_128":  # Code 128 subsets may differ; the data may not
            assert got.symbol == want.symbol


# -- ^BC --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "kind", "data"),
    [
        (b"CODE128", "code128", "CODE128"),  # no start code: subset B
        (b">:CODE128", "code128", "CODE128"),
        (b">;123456", "code128", "123456"),
        (b">;12D34", "code128", "1234"),  # a non-digit first in a pair is ignored
        (b">;123D45", "code128", "1245"),  # a non-digit second spoils the pair
        (b">;12345>6X", "code128", "1234X"),  # an unpaired digit before a code is ignored
        (b">:A>0B><C>=", "code128", "A>B^C~"),
        (b">:AB>5123456>6CD", "code128", "AB123456CD"),
        (b">93334", "code128", "AB"),  # subset A takes symbol values as digit pairs
        (b">96465", "code128", "\x00\x01"),
        (b">;>80104006381333931", "gs1_128", "0104006381333931"),
        (
            b">;>801040063813339312112>6AB>810X",
            "gs1_128",
            "010400638133393121 12AB\x1d10X".replace(" ", ""),
        ),
        (b">:>8ABC", "gs1_128", "ABC"),
    ],
)
def test_code128_invocations_follow_the_guide(field: bytes, kind: str, data: str) -> None:
    box = barcode(field)
    assert (box.kind, box.data) == (kind, data)


def test_automatic_mode_honours_fnc1_and_lets_the_printer_pick_subsets() -> None:
    # The guide's own example of chained AIs in mode A.
    box = barcode(b">;>80204017773003486100008535>8910001>837252", b"^BCN,,N,N,N,A")
    assert box.kind == "gs1_128"
    assert box.data == "0204017773003486100008535\x1d910001\x1d37252"
    assert box.height == 10  # ^BY's default height when ^BC gives none


@pytest.mark.parametrize(
    ("field", "command", "match"),
    [
        (b">:AB>", b"^BCN,50,N,N,N,N", "lone >"),
        (b">:A>2B", b"^BCN,50,N,N,N,N", "not supported"),
        (b">:A>4B", b"^BCN,50,N,N,N,N", "not supported"),
        (b">:A>6B", b"^BCN,50,N,N,N,N", "not supported"),
        (b">;12>5", b"^BCN,50,N,N,N,N", "not supported"),
        (b">:A>;12", b"^BCN,50,N,N,N,N", "not supported"),
        (b">:A>Z", b"^BCN,50,N,N,N,N", "not supported"),
        (b"A>0B", b"^BCN,50,N,N,N,A", "not supported"),
        (b">9999", b"^BCN,50,N,N,N,N", "subset A"),
        (b"AB", b"^BCN,50,N,N,N,U", "mode"),
        (b"AB", b"^BCN,50,N,N,N,D", "mode"),
        (b"AB", b"^BCN,50,N,N,Y,N", "check digit"),
        (b"AB", b"^BCR,50,N,N,N,N", "rotation"),
        (b"\x01", b"^BCN,50,N,N,N,N", "printable ASCII"),
        (b"A" * 300, b"^BCN,50,N,N,N,N", "cannot be drawn"),
    ],
)
def test_code128_fields_outside_the_subset_are_refused(
    field: bytes, command: bytes, match: str
) -> None:
    refused(b"^XA^FO0,0" + command + b"^FD" + field + b"^FS^XZ", match)


# -- ^BQ and ^BX ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "data"),
    [
        (b"QA,https://v.example/1", "https://v.example/1"),
        (b"MA,https://v.example/1", "https://v.example/1"),
        (b"HA,x", "x"),
        (b"LA,", None),
        (b"MM,N0123", "0123"),
        (b"MM,AABC", "ABC"),
        (b"MM,B0005a,b,c", "a,b,c"),
    ],
)
def test_qr_field_prefixes_follow_the_guide(field: bytes, data: str | None) -> None:
    if data is None:
        refused(b"^XA^FO0,0^BQN,2,3^FD" + field + b"^FS^XZ", "QR")
        return
    box = barcode(field, b"^BQN,2,3")
    assert (box.kind, box.data, box.module) == ("qr", data, 3)


@pytest.mark.parametrize(
    "field", [b"ZA,x", b"Q,x", b"QX,x", b"QAx", b"MM,K1234", b"MM,B0009abc", b"D03048F,LA,x"]
)
def test_qr_fields_outside_the_subset_are_refused(field: bytes) -> None:
    refused(b"^XA^FO0,0^BQN,2,3^FD" + field + b"^FS^XZ", "QR")


def test_qr_model_1_is_refused() -> None:
    refused(b"^XA^FO0,0^BQN,1,3^FDQA,x^FS^XZ", "model 2")


@pytest.mark.parametrize(
    ("field", "command", "kind", "data"),
    [
        (b"_10104006381333931", b"^BXN,4,200,,,,_", "gs1_datamatrix", "0104006381333931"),
        (b"_12112_110X", b"^BXN,4,200,,,,_", "gs1_datamatrix", "2112\x1d10X"),
        (b"a__b", b"^BXN,4,200,,,,_", "datamatrix", "a_b"),
        (b"~10104006381333931", b"^BXN,4,200", "gs1_datamatrix", "0104006381333931"),
        (b"A#d066C#@", b"^BXN,4,200,,,,#", "datamatrix", "ABC\x00"),
    ],
)
def test_datamatrix_escapes_follow_the_guide(
    field: bytes, command: bytes, kind: str, data: str
) -> None:
    box = barcode(field, command)
    assert (box.kind, box.data) == (kind, data)


def test_datamatrix_without_a_module_size_is_sized_from_by_height() -> None:
    (box,) = one(b"^XA^BY2,3,100^FO0,0^BXN,,200^FDABC^FS^XZ").barcodes
    assert box.module == round(100 / box.symbol.row_count)


@pytest.mark.parametrize(
    ("field", "command", "match"),
    [
        (b"ABC", b"^BXN,4,140", "quality 200"),
        (b"AB_", b"^BXN,4,200,,,,_", "escape character"),
        (b"AB_2214001001", b"^BXN,4,200,,,,_", "not supported"),
        (b"A_1B", b"^BXN,4,200,,,,_", "non-GS1"),
        (b"_d999", b"^BXN,4,200,,,,_", "above 255"),
        (b"_1ABC", b"^BXN,4,200,,,,_", "cannot be drawn"),
        (b"_1\xc3\xa9", b"^BXN,4,200,,,,_", "ASCII"),
        (b"ABC", b"^BXN,99,200", "module"),
    ],
)
def test_datamatrix_fields_outside_the_subset_are_refused(
    field: bytes, command: bytes, match: str
) -> None:
    refused(b"^XA^FO0,0" + command + b"^FD" + field + b"^FS^XZ", match)


# -- text, hex escapes, positions -------------------------------------------------------


def test_text_fields_use_their_font_origin_home_and_encoding() -> None:
    zpl = "^XA^CI28^PW400^LL200^LH10,5^FO20,30^A0N,40,30^FH\\^FDgrüße \\5E\\7e^FS^XZ"
    layout = one(zpl.encode("utf-8"))
    assert (layout.width, layout.height) == (400, 200)
    assert layout.texts == (TextLine(30, 35, 40, 30, 370, "grüße ^~"),)


def test_without_ci28_field_bytes_are_latin_1_and_the_hex_indicator_defaults_to_underscore() -> (
    None
):
    layout = one(b"^XA^FO0,0^A0N,20^FH^FD\xe9_41^FS^XZ")
    assert layout.texts[0].text == "éA" and layout.texts[0].char_width == 20


def test_unknown_and_tilde_commands_are_ignored() -> None:
    layout = one(b"~HS^XA^MMT^PQ1^FXcomment^FO5,5^FDx^FS~JA^XZ~HS")
    assert [t.text for t in layout.texts] == ["x"]


def test_bytes_outside_formats_and_empty_fields_are_ignored() -> None:
    layouts = read_formats(b"junk^FDoutside^FS\r\n^XA^FO0,0^BQN,2,2^FD^FS^XZ\n^XA^XZ")
    assert [len(layout.elements) for layout in layouts] == [0, 0]


def test_a_field_without_fs_is_closed_by_xz() -> None:
    assert [t.text for t in one(b"^XA^FO1,1^FDopen^XZ").texts] == ["open"]


def test_rasterise_draws_what_a_decoder_reads() -> None:
    zpl = (
        b"^XA^PW400^LL300^FO40,40^BY2^BCN,80,N,N,N,N^FD>:LINE>5123456^FS"
        b"^FO40,160^BQN,2,4^FDQA,hello^FS^XZ"
    )
    (png,) = rasterise(zpl)
    assert sorted((d.symbology, d.text) for d in decode_png(png)) == [
        ("]C0", "LINE123456"),
        ("]Q1", "hello"),
    ]


# -- hostile input ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zpl", "match"),
    [
        (b"^XA^FDx^FS", "does not end"),
        (b"^XA^XA^XZ", "inside a format"),
        (b"^XA^PW99999^XZ", "PW"),
        (b"^XA^LL0^XZ", "LL"),
        (b"^XA^LH-1,0^XZ", "LH"),
        (b"^XA^FO99999999999999999999,0^FDx^FS^XZ", "FO"),
        (b"^XA^FO1e9,0^FDx^FS^XZ", "FO"),
        (b"^XA^BY11^XZ", "BY"),
        (b"^XA^CI99^XZ", "CI"),
        (b"^XA^A0N,5000,10^FDx^FS^XZ", "font height"),
        (b"^XA^A0R,20,20^FDx^FS^XZ", "rotation"),
        (b"^XA^FWR^XZ", "FW"),
        (b"^XA^CC+^XZ", "command characters"),
        (b"~CT#^XA^XZ", "command characters"),
        (b"^XA^FD" + b"x" * 5000 + b"^FS^XZ", "longer than"),
        (b"^XA^XZ" * (MAX_FORMATS + 1), "formats"),
        (b"^XA" + b"^FO0,0^FDx^FS" * (MAX_FIELDS + 1) + b"^XZ", "fields"),
        (b"^XA^XZ" + b" " * MAX_ZPL_BYTES, "bytes"),
    ],
)
def test_hostile_formats_are_refused_cleanly(zpl: bytes, match: str) -> None:
    refused(zpl, match)


def test_only_bytes_are_read() -> None:
    refused("^XA^XZ", "bytes")  # type: ignore[arg-type]


def test_a_huge_text_field_costs_only_what_reaches_the_label() -> None:
    layout = one(b"^XA^PW200^LL100^FO150,0^A0N,40,40^FD" + b"W" * 3000 + b"^FS^XZ")
    assert len(layout.texts[0].text) <= 10


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000))
def test_arbitrary_bytes_read_or_raise_zpl_error(data: bytes) -> None:
    try:
        rasterise(data)
    except ZplError:
        pass


commands = st.sampled_from(
    [
        b"^XA",
        b"^XZ",
        b"^FS",
        b"^FO",
        b"^FD",
        b"^FH",
        b"^A0",
        b"^BC",
        b"^BQ",
        b"^BX",
        b"^BY",
        b"^PW",
        b"^LL",
        b"^LH",
        b"^CI",
        b"~HS",
        b">",
        b"_1",
        b"~",
        b",",
    ]
)
params = st.text(st.sampled_from("0123456789,NAYQM_>;:8-. \\5E"), max_size=12).map(str.encode)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(commands, params), max_size=40))
def test_command_soup_reads_or_raises_zpl_error(parts: list[tuple[bytes, bytes]]) -> None:
    zpl = b"^XA" + b"".join(command + value for command, value in parts) + b"^XZ"
    try:
        for layout in read_formats(zpl):
            assert 0 < layout.width <= 4096 and 0 < layout.height <= 4096
        rasterise(zpl)
    except ZplError:
        pass
