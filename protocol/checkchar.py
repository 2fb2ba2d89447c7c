"""ISO/IEC 7064 MOD 37,36 check characters over the alphabet 0-9A-Z."""

from __future__ import annotations

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_VALUE = {c: i for i, c in enumerate(ALPHABET)}
_M = 36


def _product(data: str, product: int = _M) -> int:
    for char in data:
        value = _VALUE.get(char)
        if value is None:
            raise ValueError(f"character {char!r} is not in 0-9A-Z")
        total = (product + value) % _M or _M
        product = (total * 2) % (_M + 1)
    return product


def mod37_36(data: str) -> str:
    """Return the check character that makes `data` + check valid under MOD 37,36."""
    return ALPHABET[(_M + 1 - _product(data)) % _M]


def mod37_36_state(prefix: str) -> int:
    """Return the running state after `prefix`, for `mod37_36_after` (a fixed prefix once)."""
    return _product(prefix)


def mod37_36_after(state: int, rest: str) -> str:
    """Return `mod37_36(prefix + rest)` given `state = mod37_36_state(prefix)`."""
    return ALPHABET[(_M + 1 - _product(rest, state)) % _M]


def is_valid_mod37_36(data_with_check: str) -> bool:
    """Tell whether the last character of the string is the right check character."""
    if len(data_with_check) < 2:
        return False
    try:
        return mod37_36(data_with_check[:-1]) == data_with_check[-1]
    except ValueError:
        return False
