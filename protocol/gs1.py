"""GS1 keys: the mod-10 check digit, GTIN normalisation and SSCC."""

from __future__ import annotations

from protocol.errors import ProtocolError

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
