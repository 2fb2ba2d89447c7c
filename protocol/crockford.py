"""Crockford base32: the alphabet humans can read back without confusing 0/O or 1/I/L."""

from __future__ import annotations

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_ALIASES = str.maketrans({"O": "0", "I": "1", "L": "1"})


def encode_bits(value: int, chars: int) -> str:
    """Encode the low `chars * 5` bits of `value`, most significant first."""
    out = []
    for shift in range((chars - 1) * 5, -1, -5):
        out.append(ALPHABET[(value >> shift) & 0x1F])
    return "".join(out)


def normalise(text: str) -> str:
    """Upper-case and map the look-alikes O→0 and I/L→1, as Crockford prescribes."""
    return text.upper().translate(_ALIASES)


def is_crockford(text: str) -> bool:
    """Tell whether every character is in the canonical alphabet."""
    return all(c in ALPHABET for c in text)
