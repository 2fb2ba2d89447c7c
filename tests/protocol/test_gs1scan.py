"""protocol.gs1scan: any GS1 AI read through biip, with our own rules on top."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.errors import ProtocolError
from protocol.gs1 import GS, format_element_string
from protocol.gs1scan import (
    ERR_GS1_DATA,
    MAX_GS1_DATA,
    read_digital_link,
    read_element_string,
)

GTIN = "09506000134352"


def test_pharma_carton_with_national_ais() -> None:
    data = "01" + GTIN + "17271231" + "10LOT42" + GS + "21PK1234" + GS + "71012345678"
    assert read_element_string(data) == (
        ("01", GTIN),
        ("17", "271231"),
        ("10", "LOT42"),
        ("21", "PK1234"),
        ("710", "12345678"),
    )
    assert read_element_string("01" + GTIN + "712AB12345")[1] == ("712", "AB12345")


def test_our_own_element_strings_read_back() -> None:
    fields = (("01", GTIN), ("21", "A1B2"), ("10", "LOT"))
    assert read_element_string(format_element_string(fields)) == fields


def test_digital_link_path_only() -> None:
    url = f"https://id.example/dl/01/{GTIN}/10/L%2F1/21/X?17=271231#frag"
    assert read_digital_link(url) == (("01", GTIN), ("10", "L/1"), ("21", "X"))
    assert read_digital_link("https://id.example/01/9506000134352") == (("01", GTIN),)
    assert read_digital_link("https://id.example/414/9520123456788") == (("414", "9520123456788"),)


@pytest.mark.parametrize(
    "data",
    [
        "",
        "   ",
        None,
        42,
        "01",
        "0109506000134355",  # GTIN check digit
        "00106141412345678901",  # SSCC check digit
        "4149520123456780",  # GLN check digit
        "17271399",
        "21A" + GS + GS + "10B",
        "21A" + GS + "21B",
        "21é",
        "(01)" + GTIN,
        "9" * (MAX_GS1_DATA + 1),
    ],
)
def test_hostile_element_strings(data: object) -> None:
    with pytest.raises(ProtocolError) as caught:
        read_element_string(data)
    assert caught.value.code == ERR_GS1_DATA
    assert len(caught.value.message) <= 250


@pytest.mark.parametrize(
    "url",
    [
        None,
        "ftp://id.example/01/" + GTIN,
        "https://id.example/v/MA01",
        "https://id.example/01/09506000134355",
        f"https://id.example/01/{GTIN}/21/X/10/L",  # qualifiers out of order
        f"https://id.example/01/{GTIN}/21/X%1D",
        "https://" + "a" * MAX_GS1_DATA,
    ],
)
def test_hostile_digital_links(url: object) -> None:
    with pytest.raises(ProtocolError) as caught:
        read_digital_link(url)
    assert caught.value.code == ERR_GS1_DATA


def fields_or_protocol_error(text: str) -> None:
    for reader in (read_element_string, read_digital_link):
        try:
            fields = reader(text)
        except ProtocolError as exc:
            assert exc.code == ERR_GS1_DATA
        else:
            assert fields and all(isinstance(ai, str) and ai.isdigit() for ai, _ in fields)


@given(st.text("0123456789" + GS + "ABx/:.htps", max_size=80))
def test_gs1_like_text_is_fields_or_a_protocol_error(text: str) -> None:
    fields_or_protocol_error(text)


@given(st.text(max_size=120))
def test_any_text_is_fields_or_a_protocol_error(text: str) -> None:
    fields_or_protocol_error(text)
