import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum import ean

from protocol.errors import ProtocolError
from protocol.gs1 import ERR_GTIN, ERR_SSCC, mod10_check_digit, normalise_gtin, sscc


@given(st.text(alphabet="0123456789", min_size=7, max_size=17))
def test_check_digit_agrees_with_python_stdnum(data):
    assert mod10_check_digit(data) == ean.calc_check_digit(data)


def test_known_gtins():
    assert normalise_gtin("4006381333931") == "04006381333931"
    assert normalise_gtin("96385074") == "00000096385074"
    assert normalise_gtin(" 00012345600012 ") == "00012345600012"


@pytest.mark.parametrize(
    "text",
    [
        "4006381333932",
        "123",
        "40063813339311111",
        "400638133393A",
        "４００６３８１３３３９３１",
        None,
        4006381333931,
    ],
)
def test_bad_gtins(text):
    with pytest.raises(ProtocolError) as exc:
        normalise_gtin(text)
    assert exc.value.code == ERR_GTIN


def test_sscc_example_from_gs1():
    # GS1 General Specifications example: (00) 1 0614141 123456789 0? -> check computed
    code = sscc(1, "0614141", 123456789)
    assert len(code) == 18 and code.startswith("10614141123456789")
    assert mod10_check_digit(code[:-1]) == code[-1]
    for bad in [(10, "0614141", 1), (1, "12345", 1), (1, "0614141", 10**9)]:
        with pytest.raises(ProtocolError) as exc:
            sscc(*bad)
        assert exc.value.code == ERR_SSCC


# --- element strings and standard serials in AI (21) ---------------------------------
import datetime as dt  # noqa: E402

import biip  # noqa: E402

from protocol.gs1 import (  # noqa: E402
    ERR_ELEMENT_STRING,
    GS,
    ai21_from_standard,
    digital_link,
    format_element_string,
    parse_element_string,
    sgtin_fields,
    standard_from_ai21,
)
from protocol.serials import Scope, render  # noqa: E402

gtins = st.text(alphabet="0123456789", min_size=13, max_size=13).map(
    lambda d: d + mod10_check_digit(d)
)
cset82 = st.text(
    alphabet="!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz",
    min_size=1,
    max_size=20,
)


@given(gtins, cset82, st.one_of(st.none(), cset82))
def test_element_strings_round_trip_and_agree_with_biip(gtin, serial, lot):
    fields = (("01", gtin), ("21", serial)) + ((("10", lot),) if lot else ())
    scanned = format_element_string(fields)
    assert parse_element_string(scanned) == fields
    # The machine form adds no parentheses of its own: every "(" in it is a value's.
    assert scanned.count("(") == serial.count("(") + (lot or "").count("(")
    parsed = biip.parse("]d2" + scanned)
    assert parsed.gs1_message is not None
    assert [(e.ai.ai, e.value) for e in parsed.gs1_message.element_strings] == list(fields)
    assert format_element_string(fields, human=True) == "".join(f"({a}){v}" for a, v in fields)


@given(
    st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2099, 12, 31)),
    st.sampled_from(["HAT", "OEM"]),
    st.integers(1, 99_999),
    st.binary(min_size=32, max_size=32),
)
def test_standard_serials_fit_ai21_and_come_back(day, ptype, seq, key):
    serial = render(Scope("MA01", ptype, "BAG", day), seq, key)
    ai21 = ai21_from_standard(serial)
    assert len(ai21) == 19 and ai21.isalnum() and ai21.isupper()
    assert standard_from_ai21(ai21, "MA01", "BAG") == serial
    fields = sgtin_fields("4006381333931", serial)
    assert fields == (("01", "04006381333931"), ("21", ai21))


@pytest.mark.parametrize(
    "data",
    [
        "",
        "01",
        "0104006381333932",
        "01040063813339",
        "99ABC",
        "21",
        "21" + "A" * 21,
        "0104006381333931" + "21ABC" + GS + "21DEF",
        "21ABC\x00",
        "21AB C",
        "10" + GS,
        "0104006381333931" * 20,
        "17ABCDEF",
        "3012A",
    ],
)
def test_hostile_element_strings(data):
    with pytest.raises(ProtocolError) as exc:
        parse_element_string(data)
    assert exc.value.code == ERR_ELEMENT_STRING


@given(st.text(max_size=120))
def test_arbitrary_text_as_element_string(text):
    try:
        parse_element_string(text)
    except ProtocolError as exc:
        assert exc.code == ERR_ELEMENT_STRING


@pytest.mark.parametrize(
    "ai21", ["251109HAT00027Z6S0", "251399HAT00027Z6S0Y", "x", None, "251109HAT00027Z6S0Z"]
)
def test_ai21_that_is_not_ours(ai21):
    with pytest.raises(ProtocolError):
        standard_from_ai21(ai21, "MA01", "BAG")


def test_digital_link():
    assert (
        digital_link("https://r.example/", "4006381333931", "A/B C")
        == "https://r.example/01/04006381333931/21/A%2FB%20C"
    )
