"""decode_scan: AIM identifiers, GS1 element strings, Digital Link, standard serials.

Every GS1 result is checked against biip, an independent GS1 parser, on the same input.
"""

from __future__ import annotations

import datetime as dt
import json

import biip
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.scanframes import (
    ERR_SCAN_EMPTY,
    ERR_SCAN_GARBAGE,
    ERR_SCAN_GS1,
    ERR_SCAN_TOO_LONG,
    MAX_FRAME,
    Scan,
    ScanError,
    decode_scan,
)
from protocol.gs1 import GS, ai21_from_standard, format_element_string, mod10_check_digit
from protocol.serials import Scope, render

GTIN = "04006381333931"
KEY = bytes(range(32))


def serial(seq: int = 27, day: dt.date = dt.date(2025, 11, 9)) -> str:
    return render(Scope("MA01", "HAT", "BAG", day), seq, KEY)


SERIAL = serial()
AI21 = ai21_from_standard(SERIAL)


def biip_fields(text: str) -> tuple[tuple[str, str], ...]:
    """Return what biip reads from a scan: the element string or the Digital Link."""
    result = biip.parse(text)
    message = result.gs1_message or result.gs1_digital_link_uri
    assert message is not None, (result.gs1_message_error, result.gs1_digital_link_uri_error)
    return tuple((e.ai.ai, e.value) for e in message.element_strings)


def decode_like_biip(frame: str) -> Scan:
    """Decode a frame and check its GS1 fields against biip on the same input."""
    scan = decode_scan(frame)
    fields = scan.gs1 or scan.digital_link
    assert fields, scan
    # biip knows GS only as the real byte: hand it what the scanner should have sent. It
    # reads a Digital Link only without the AIM identifier in front; we read the link's path
    # (the item's identity) and leave its query attributes such as ?17= out.
    if scan.digital_link:
        same = scan.raw.partition("?")[0]
    else:
        same = frame.replace("^]", GS).replace("<GS>", GS)
    assert biip_fields(same) == fields
    return scan


@pytest.mark.parametrize(
    ("prefix", "symbology"),
    [
        ("]C1", "gs1_128"),
        ("]d2", "gs1_datamatrix"),
        ("]Q3", "gs1_qr"),
        ("]e0", "gs1_databar"),
    ],
)
def test_gs1_symbologies(prefix: str, symbology: str) -> None:
    data = format_element_string((("01", GTIN), ("21", AI21), ("10", "LOT1")))
    scan = decode_like_biip(prefix + data)
    assert scan.aim == prefix
    assert scan.symbology == symbology
    assert scan.raw == data
    assert scan.gs1 == (("01", GTIN), ("21", AI21), ("10", "LOT1"))
    assert scan.element("21") == AI21 and scan.element("17") is None
    assert scan.serial_text is None  # AI (21) needs the product: a database question
    assert scan.gs_as_text is None


def test_real_gs1_datamatrix_payload() -> None:
    frame = "]d2" + "01" + GTIN + "21" + AI21 + GS + "10LOT1"
    scan = decode_like_biip(frame)
    assert scan.gs1 == (("01", GTIN), ("21", AI21), ("10", "LOT1"))


def test_gs1_128_without_lot() -> None:
    scan = decode_like_biip("]C1" + "01" + GTIN + "21" + AI21)
    assert scan.gs1 == (("01", GTIN), ("21", AI21))


@pytest.mark.parametrize(
    "frame",
    [
        "]d2" + GS + "01" + GTIN + "21" + "AB1" + GS + "10LOT1",  # FNC1 in first position sent
        "]d2" + "01" + GTIN + "21" + "AB1" + GS + "10LOT1" + GS,  # trailing separator
        "]C1" + "01" + GTIN + GS + "21" + "AB1" + GS + "10LOT1",  # GS after a fixed field
        GS + "01" + GTIN + "21" + "AB1" + GS + "10LOT1",  # no AIM id, FNC1 as GS
    ],
)
def test_gs_separators_where_scanners_put_them(frame: str) -> None:
    scan = decode_like_biip(frame)
    assert scan.gs1 == (("01", GTIN), ("21", "AB1"), ("10", "LOT1"))


@pytest.mark.parametrize("literal", ["^]", "<GS>"])
def test_gs_sent_as_text_is_accepted_and_flagged(literal: str) -> None:
    scan = decode_like_biip("]d2" + "01" + GTIN + "21" + AI21 + literal + "10LOT1")
    assert scan.gs1 == (("01", GTIN), ("21", AI21), ("10", "LOT1"))
    assert scan.gs_as_text == literal
    no_aim = decode_like_biip(literal + "01" + GTIN + "21" + AI21 + literal + "10LOT1")
    assert no_aim.aim is None and no_aim.symbology == "unknown"
    assert no_aim.gs1 == scan.gs1 and no_aim.gs_as_text == literal


def test_gs_as_text_is_not_a_separator_outside_gs1() -> None:
    scan = decode_scan("]C0AB<GS>CD^]EF")
    assert scan.gs1 == () and scan.raw == "AB<GS>CD^]EF" and scan.gs_as_text is None


def test_digits_without_aim_or_fnc1_are_not_guessed_to_be_gs1() -> None:
    scan = decode_scan("01" + GTIN + "21" + AI21)
    assert scan.gs1 == () and scan.symbology == "unknown"


@pytest.mark.parametrize(
    "frame",
    [
        "]d2",  # nothing after the identifier
        "]d2" + "01" + "04006381333932" + "21AB",  # GTIN check digit wrong
        "]C1" + "17271399",  # AI (17): no 39th of December
        "]C1" + "7003230101",  # AI (7003) holds 10 digits
        "]d2" + "10A" + GS + GS + "21B",  # an empty field between two separators
        "]d2" + "0104006381333931" + "21" + "A" * 21,  # serial too long
        "]Q3" + "01" + GTIN + "21AB" + GS + "21CD",  # AI (21) twice
        "]C1" + "hello",
    ],
)
def test_broken_gs1_is_an_error(frame: str) -> None:
    with pytest.raises(ScanError) as caught:
        decode_scan(frame)
    assert caught.value.code == ERR_SCAN_GS1


@pytest.mark.parametrize(
    ("frame", "aim", "symbology", "raw"),
    [
        ("]C0" + SERIAL, "]C0", "code128", SERIAL),
        ("]Q1" + SERIAL, "]Q1", "qr", SERIAL),
        ("]d1" + SERIAL, "]d1", "datamatrix", SERIAL),
        (SERIAL, None, "unknown", SERIAL),
        ("]E04006381333931", "]E0", "ean13", "4006381333931"),
        ("]E440063815", "]E4", "ean8", "40063815"),
    ],
)
def test_plain_symbologies(frame: str, aim: str | None, symbology: str, raw: str) -> None:
    scan = decode_scan(frame)
    assert (scan.aim, scan.symbology, scan.raw, scan.gs1) == (aim, symbology, raw, ())
    assert scan.serial_text == (SERIAL if raw == SERIAL else None)


@pytest.mark.parametrize(
    "frame", ["]", "]d", "]C", "]Z9", "]Z9" + SERIAL, "]C9xyz", "]]]", "]d4" + SERIAL, "]x"]
)
def test_partial_or_unknown_aim_ids_keep_the_text(frame: str) -> None:
    scan = decode_scan(frame)
    assert scan.aim is None and scan.symbology == "unknown" and scan.raw == frame
    assert scan.gs1 == () and scan.serial_text is None


def test_standard_serial_is_canonicalised() -> None:
    assert decode_scan("]C0" + SERIAL.lower()).serial_text == SERIAL


def test_serial_with_wrong_check_character_is_not_a_serial() -> None:
    bad = SERIAL[:-1] + ("A" if SERIAL[-1] != "A" else "B")
    assert decode_scan("]C0" + bad).serial_text is None


@pytest.mark.parametrize(
    "url",
    [
        f"https://registry.example/v/{SERIAL}",
        f"https://registry.example/v/{SERIAL}/",
        f"https://registry.example/v/{SERIAL}?src=qr#top",
        f"HTTPS://REGISTRY.EXAMPLE/v/{SERIAL}",
        f"http://registry.example:8080/lineledger/v/{SERIAL.replace('-', '%2D')}",
    ],
)
def test_verify_url_stands_for_its_serial(url: str) -> None:
    scan = decode_scan("]Q1" + url)
    assert scan.symbology == "qr" and scan.raw == url
    assert scan.serial_text == SERIAL and scan.digital_link == ()


@pytest.mark.parametrize(
    "url",
    [
        f"https://registry.example/x/{SERIAL}",
        f"ftp://registry.example/v/{SERIAL}",
        "https://registry.example/v/NOT-A-SERIAL",
        "https:///v/" + SERIAL,
        "https://[::1/v/" + SERIAL,
    ],
)
def test_other_urls_are_not_serials(url: str) -> None:
    scan = decode_scan("]Q1" + url)
    assert scan.serial_text is None and scan.digital_link == ()


@pytest.mark.parametrize(
    ("url", "fields"),
    [
        (f"https://id.example/01/{GTIN}/21/{AI21}", (("01", GTIN), ("21", AI21))),
        ("https://id.example/01/4006381333931/21/AB%2FC%25", (("01", GTIN), ("21", "AB/C%"))),
        (
            f"https://id.example/dl/01/{GTIN}/10/LOT%2F1/21/S1?17=261231",
            (("01", GTIN), ("10", "LOT/1"), ("21", "S1")),
        ),
        (f"https://id.example/01/{GTIN}", (("01", GTIN),)),
        ("https://id.example/00/106141411234567897", (("00", "106141411234567897"),)),
    ],
)
def test_digital_link(url: str, fields: tuple[tuple[str, str], ...]) -> None:
    scan = decode_like_biip("]Q1" + url)
    assert scan.digital_link == fields and scan.gs1 == () and scan.serial_text is None
    assert scan.element(fields[0][0]) == fields[0][1]


@pytest.mark.parametrize(
    "url",
    [
        "https://id.example/01/04006381333932/21/AB",  # check digit
        f"https://id.example/01/{GTIN}/21/AB/10/L1",  # qualifiers out of order
        f"https://id.example/01/{GTIN}/21/AB/21/CD",  # twice
        f"https://id.example/01/{GTIN}/17/261231",  # not a path qualifier
        f"https://id.example/01/{GTIN}/21/" + "A" * 21,
        f"https://id.example/01/{GTIN}/21/%FF",  # not UTF-8 once decoded
        f"https://id.example/01/{GTIN}/10/LOT%201",  # a space is not GS1 character set 82
        "https://id.example/00/106141411234567897/21/AB",
        f"https://id.example/01/{GTIN}/21",
        f"https://id.example/01/{GTIN}/21/AB/",  # the standard has no trailing slash
    ],
)
def test_not_a_digital_link(url: str) -> None:
    assert decode_scan("]Q1" + url).digital_link == ()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("", ERR_SCAN_EMPTY),
        ("   ", ERR_SCAN_EMPTY),
        ("X" * (MAX_FRAME + 1), ERR_SCAN_TOO_LONG),
        ("AB\x00CD", ERR_SCAN_GARBAGE),
        ("AB\nCD", ERR_SCAN_GARBAGE),
        ("café", ERR_SCAN_GARBAGE),
        (b"]C0AB", ERR_SCAN_GARBAGE),
        (None, ERR_SCAN_GARBAGE),
    ],
)
def test_hostile_input_is_a_scan_error(frame: object, code: str) -> None:
    with pytest.raises(ScanError) as caught:
        decode_scan(frame)  # type: ignore[arg-type]
    assert caught.value.code == code
    assert caught.value.to_dict()["code"] == code


def test_typed_scan_with_spaces_around() -> None:
    assert decode_scan("  ]C0" + SERIAL + " ").serial_text == SERIAL


def test_scan_to_dict_is_json() -> None:
    scan = decode_scan("]d2" + "01" + GTIN + "21AB^]10L")
    body = json.loads(json.dumps(scan.to_dict()))
    assert body["gs1"] == [["01", GTIN], ["21", "AB"], ["10", "L"]]
    assert body["symbology"] == "gs1_datamatrix" and body["gs_as_text"] == "^]"


_CSET82 = "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"


@given(
    st.text("0123456789", min_size=13, max_size=13),
    st.integers(1, 99_999),
    st.dates(dt.date(2000, 1, 1), dt.date(2099, 12, 31)),
    st.one_of(st.none(), st.text(_CSET82, min_size=1, max_size=20)),
    st.sampled_from(["]d2", "]C1", "]Q3", GS, "^]"]),
)
def test_generated_payloads_agree_with_biip(
    gtin13: str, seq: int, day: dt.date, lot: str | None, prefix: str
) -> None:
    gtin = gtin13 + mod10_check_digit(gtin13)
    ai21 = ai21_from_standard(serial(seq, day))
    fields = (("01", gtin), ("21", ai21), *([("10", lot)] if lot else []))
    scan = decode_like_biip(prefix + format_element_string(fields))
    assert scan.gs1 == fields
    link = decode_like_biip(f"]Q1https://id.example/01/{gtin}/21/{ai21}")
    assert link.digital_link == fields[:2]


def scan_or_scan_error(text: str) -> None:
    try:
        scan = decode_scan(text)
    except ScanError as exc:
        assert exc.code.startswith("ERR_SCAN_")
    else:
        assert isinstance(scan, Scan)


@given(st.text(max_size=80))
def test_any_text_is_a_scan_or_a_scan_error(text: str) -> None:
    scan_or_scan_error(text)


@given(st.text("]CdQEe0123<GS>^\x1d/:.htps", max_size=40))
def test_scanner_like_text_is_a_scan_or_a_scan_error(text: str) -> None:
    scan_or_scan_error(text)
