"""GS1 keys: check digits, GTIN and SSCC, element strings, and standard serials in AI (21)."""

from __future__ import annotations

import re

from protocol.errors import ProtocolError
from protocol.serials import parse

ERR_GTIN = "ERR_GTIN"
ERR_SSCC = "ERR_SSCC"


def mod10_check_digit(data: str) -> str:
    """Return the GS1 check digit: weights 3,1,3,… from the rightmost data digit."""
    if not data.isascii() or not data.isdigit():
        raise ValueError("GS1 check digits are computed over digits only")
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(data)))
    return str((10 - total % 10) % 10)


def normalise_gtin(text: object) -> str:
    """Return a GTIN-8/12/13/14 as a validated GTIN-14, or raise ERR_GTIN."""
    if not isinstance(text, str):
        raise ProtocolError(ERR_GTIN, "a GTIN is a string of digits")
    digits = text.strip()
    if len(digits) not in (8, 12, 13, 14) or not digits.isascii() or not digits.isdigit():
        raise ProtocolError(ERR_GTIN, "a GTIN has 8, 12, 13 or 14 digits")
    gtin14 = digits.zfill(14)
    if mod10_check_digit(gtin14[:-1]) != gtin14[-1]:
        raise ProtocolError(ERR_GTIN, f"GTIN {digits} has a wrong check digit")
    return gtin14


def sscc(extension: int, company_prefix: str, serial_reference: int) -> str:
    """Build an 18-digit SSCC from extension digit, company prefix and serial reference."""
    if not 0 <= extension <= 9:
        raise ProtocolError(ERR_SSCC, "the extension digit is 0-9")
    if not (
        company_prefix.isascii() and company_prefix.isdigit() and 6 <= len(company_prefix) <= 12
    ):
        raise ProtocolError(ERR_SSCC, "a GS1 company prefix has 6-12 digits")
    width = 16 - len(company_prefix)
    if not 0 <= serial_reference < 10**width:
        raise ProtocolError(ERR_SSCC, f"the serial reference has at most {width} digits here")
    data = f"{extension}{company_prefix}{serial_reference:0{width}d}"
    return data + mod10_check_digit(data)


# --- Element strings -------------------------------------------------------------------
# Application Identifiers this system reads and writes, with their data length: a fixed
# number of characters, or (max, None) for a variable-length field ended by FNC1 (GS, 0x1D)
# unless it is the last one. From the GS1 General Specifications, section 3.
ERR_ELEMENT_STRING = "ERR_ELEMENT_STRING"
GS = "\x1d"
_FIXED = {
    "00": 18,
    "01": 14,
    "02": 14,
    "11": 6,
    "12": 6,
    "13": 6,
    "15": 6,
    "16": 6,
    "17": 6,
    "20": 2,
}
_VARIABLE = {
    "10": 20,
    "21": 20,
    "22": 20,
    "240": 30,
    "241": 30,
    "250": 30,
    "251": 30,
    "30": 8,
    "37": 8,
    "400": 30,
    "8003": 30,
    "8004": 30,
}
_CSET82 = frozenset(
    "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
)
MAX_ELEMENT_STRING = 200


def _check_value(ai: str, value: str) -> None:
    if ai in _FIXED:
        if len(value) != _FIXED[ai] or not value.isdigit():
            raise ProtocolError(ERR_ELEMENT_STRING, f"AI ({ai}) holds {_FIXED[ai]} digits")
        if ai in ("00", "01", "02") and mod10_check_digit(value[:-1]) != value[-1]:
            raise ProtocolError(ERR_ELEMENT_STRING, f"AI ({ai}) has a wrong check digit")
    else:
        if not 1 <= len(value) <= _VARIABLE[ai] or not _CSET82.issuperset(value):
            raise ProtocolError(
                ERR_ELEMENT_STRING,
                f"AI ({ai}) holds 1-{_VARIABLE[ai]} characters of GS1 character set 82",
            )
        if ai in ("30", "37") and not value.isdigit():
            raise ProtocolError(ERR_ELEMENT_STRING, f"AI ({ai}) holds digits")


def _ai_at(data: str, i: int) -> str:
    for size in (2, 3, 4):
        ai = data[i : i + size]
        if ai in _FIXED or ai in _VARIABLE:
            return ai
    raise ProtocolError(ERR_ELEMENT_STRING, f"unknown or unsupported AI at {data[i : i + 4]!r}")


def parse_element_string(data: object) -> tuple[tuple[str, str], ...]:
    """Parse a GS1 element string as scanned (FNC1 as GS between fields, no parentheses)."""
    if not isinstance(data, str) or not data:
        raise ProtocolError(ERR_ELEMENT_STRING, "an element string is non-empty text")
    if len(data) > MAX_ELEMENT_STRING:
        raise ProtocolError(ERR_ELEMENT_STRING, "the element string is too long")
    fields: list[tuple[str, str]] = []
    i = 0
    while i < len(data):
        ai = _ai_at(data, i)
        i += len(ai)
        if ai in _FIXED:
            value = data[i : i + _FIXED[ai]]
            i += _FIXED[ai]
            if i < len(data) and data[i] == GS:  # tolerated after a fixed-length field
                i += 1
        else:
            end = data.find(GS, i)
            end = len(data) if end < 0 else end
            value = data[i:end]
            i = end + 1 if end < len(data) else end
        _check_value(ai, value)
        if any(ai == seen for seen, _ in fields):
            raise ProtocolError(ERR_ELEMENT_STRING, f"AI ({ai}) appears twice")
        fields.append((ai, value))
    return tuple(fields)


def format_element_string(fields: tuple[tuple[str, str], ...], human: bool = False) -> str:
    """Write fields as scanned (GS after variable fields but the last) or as `(01)...(21)...`."""
    for ai, value in fields:
        if ai not in _FIXED and ai not in _VARIABLE:
            raise ProtocolError(ERR_ELEMENT_STRING, f"unsupported AI ({ai})")
        _check_value(ai, value)
    if human:
        return "".join(f"({ai}){value}" for ai, value in fields)
    out = []
    for n, (ai, value) in enumerate(fields):
        out.append(ai + value)
        if ai in _VARIABLE and n < len(fields) - 1:
            out.append(GS)
    return "".join(out)


# --- Standard serials inside GS1 keys ---------------------------------------------------
# AI (21) holds at most 20 characters, a standard serial has up to 37. For a product with a
# GTIN the org and category are the product's own, so AI (21) carries the rest:
# YYMMDD + type + sequence + MAC + the serial's own check character (19 characters).
_AI21 = re.compile(r"([0-9]{6})([A-Z]{3})([0-9]{5})([0-9A-Z]{4})([0-9A-Z])")


def ai21_from_standard(serial_text: str) -> str:
    """Return the AI (21) value that stands for a standard serial on a GTIN product."""
    s = parse(serial_text)
    return f"{s.scope.prod_date:%y%m%d}{s.scope.ptype}{s.seq:05d}{s.mac}{s.check}"


def standard_from_ai21(ai21: str, org: str, category: str) -> str:
    """Return the standard serial an AI (21) value stands for on a product of org/category."""
    m = _AI21.fullmatch(ai21) if isinstance(ai21, str) else None
    if m is None:
        raise ProtocolError(ERR_ELEMENT_STRING, "this AI (21) is not a LineLedger serial")
    yymmdd, ptype, seq, mac, check = m.groups()
    text = f"{org}-{ptype}-{category}-20{yymmdd}-{seq}-{mac}-{check}"
    return parse(text).text  # validates date, check character and fields


def sgtin_fields(gtin14: str, serial_text: str) -> tuple[tuple[str, str], ...]:
    """Return the element string (01) GTIN (21) serial of a standard serial."""
    return (("01", normalise_gtin(gtin14)), ("21", ai21_from_standard(serial_text)))


def digital_link(base_url: str, gtin14: str, ai21: str) -> str:
    """Return the GS1 Digital Link URI `{base}/01/{gtin}/21/{serial}`."""
    return f"{base_url.rstrip('/')}/01/{normalise_gtin(gtin14)}/21/{_percent_encode(ai21)}"


_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _percent_encode(text: str) -> str:
    """Percent-encode everything but RFC 3986 unreserved characters."""
    return "".join(
        c if c in _UNRESERVED else "".join(f"%{b:02X}" for b in c.encode()) for c in text
    )
