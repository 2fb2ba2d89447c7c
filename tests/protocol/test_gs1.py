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
