"""Tests for the zint wrapper: each kind encodes what it is given, and refuses what it cannot."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from printers.barcodes import (
    GS1_KINDS,
    KINDS,
    Symbol,
    encode,
    encode_code128_sets,
    encode_datamatrix,
    encode_qr,
    zint_gs1_input,
)
from printers.errors import ERR_LABEL_DATA, LabelError
from printers.layout import BarcodeBox, LabelLayout
from printers.png import layout_png
from protocol.gs1 import mod10_check_digit
from tests.printers.decoding import Decoded, decode_png

CSET82 = "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
ELEMENT_STRING = "0104006381333931" + "21ABC-123" + "\x1d" + "10LOT7"


def decode_symbol(symbol: Symbol, module: int = 3) -> list[Decoded]:
    """Draw one symbol with a wide quiet zone and decode it."""
    quiet = 12 * module
    height = 60 if symbol.linear else symbol.row_count * module
    box = BarcodeBox(quiet, quiet, symbol.kind, symbol.data, module, height, symbol)
    layout = LabelLayout(box.width + 2 * quiet, height + 2 * quiet, 203, (box,))
    return decode_png(layout_png(layout))


@pytest.mark.parametrize(
    ("kind", "data", "symbology"),
    [
        ("code128", "MA01-HAT-BAG-20251109-00027-A9K2-X", "]C0"),
        ("gs1_128", ELEMENT_STRING, "]C1"),
        ("qr", "https://verify.lineledger.example/01/04006381333931/21/ABC", "]Q1"),
        ("gs1_datamatrix", ELEMENT_STRING, "]d2"),
        ("datamatrix", "MA01-HAT-BAG-20251109-00027-A9K2-X", "]d1"),
    ],
)
def test_each_kind_decodes_to_its_data(kind: str, data: str, symbology: str) -> None:
    symbol = encode(kind, data)
    assert symbol.kind == kind and symbol.data == data
    assert symbol.linear == (kind in ("code128", "gs1_128"))
    assert [(d.symbology, d.text) for d in decode_symbol(symbol)] == [(symbology, data)]


def test_gs1_input_to_zint_is_bracketed_and_fnc1_is_zints_business() -> None:
    assert zint_gs1_input(ELEMENT_STRING) == "[01]04006381333931[21]ABC-123[10]LOT7"


def test_runs_and_bars_agree_with_the_matrix() -> None:
    for kind, data in (("qr", "x"), ("code128", "AB12")):
        symbol = encode(kind, data)
        dark = {
            (x, y)
            for y in range(symbol.row_count)
            for x in range(symbol.columns)
            if symbol.dark(x, y)
        }
        from_runs = {(x + i, y) for y, x, length in symbol.runs() for i in range(length)}
        assert dark == from_runs
    bars = encode("code128", "AB12").bars()
    assert bars[0] == (0, 2)  # a Code 128 start character begins with a 2-module bar
    assert sum(width for _x, width in bars) < encode("code128", "AB12").columns


@pytest.mark.parametrize(
    ("kind", "data"),
    [
        ("code128", ""),
        ("code128", "é"),
        ("code128", "x" * 300),
        ("gs1_128", "0104006381333932"),  # wrong check digit
        ("gs1_datamatrix", "(01)04006381333931"),
        ("gs1_datamatrix", "99x"),
        ("qr", "x" * 5000),
        ("ean13", "400638133393"),
        ("datamatrix", "x" * 4000),
    ],
)
def test_what_a_symbol_cannot_hold_is_refused(kind: str, data: str) -> None:
    with pytest.raises(LabelError) as caught:
        encode(kind, data)
    assert caught.value.code == ERR_LABEL_DATA


def test_qr_levels_and_lower_level_helpers() -> None:
    assert encode_qr(b"x", "H").columns == 21
    with pytest.raises(LabelError):
        encode_qr(b"x", "Z")
    assert encode_datamatrix(b"\x00\xff").kind == "datamatrix"
    assert encode_code128_sets("\\^C\\^10104006381333931", "x").kind == "gs1_128"
    assert encode_code128_sets("\\^BAB", "AB").kind == "code128"


def test_gs1_kinds_are_a_subset_of_all_kinds() -> None:
    assert GS1_KINDS < set(KINDS)


gtins = st.from_regex(r"[0-9]{13}", fullmatch=True).map(lambda d: d + mod10_check_digit(d))


@settings(max_examples=40, deadline=None)
@given(
    gtin=gtins,
    serial=st.text(st.sampled_from(CSET82), min_size=1, max_size=20),
    kind=st.sampled_from(sorted(GS1_KINDS)),
)
def test_generated_element_strings_round_trip(gtin: str, serial: str, kind: str) -> None:
    data = f"01{gtin}21{serial}"
    [found] = decode_symbol(encode(kind, data))
    assert found.text == data
    assert found.gs1_fields() == (("01", gtin), ("21", serial))


@settings(max_examples=40, deadline=None)
@given(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=40))
def test_generated_ascii_round_trips_through_code128(text: str) -> None:
    [found] = decode_symbol(encode("code128", text))
    assert found.text == text
