"""The standard serial format `{org}-{type}-{cat}-{YYYYMMDD}-{seq:05d}-{mac}-{chk}`.

`mac` is four Crockford base32 characters from the lease key (see `protocol.keys`); `chk` is
an ISO/IEC 7064 MOD 37,36 check character over everything before it with hyphens dropped,
so a mistyped character is caught before any lookup.

Parsing is tolerant where a person would be (surrounding spaces, lower case, the Crockford
look-alikes O/I/L inside the MAC) and strict everywhere else. Every rejection is a
`ProtocolError` with one of the `ERR_SERIAL_*` codes.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from protocol import errors as E
from protocol.checkchar import mod37_36, mod37_36_after, mod37_36_state
from protocol.crockford import is_crockford, normalise
from protocol.errors import ProtocolError
from protocol.keys import LeaseMac, compute_mac, mac_matches

MAX_SEQ = 99_999
MIN_LENGTH = 31  # 2+3+2 field letters, 8 date, 5 seq, 4 mac, 1 chk, 6 hyphens
MAX_LENGTH = 37
MAX_INPUT = 64  # anything longer is refused before it is looked at

_ORG = re.compile(r"[A-Z0-9]{2,6}")
_TYPE = re.compile(r"[A-Z]{3}")
_CAT = re.compile(r"[A-Z]{2,4}")
_DATE = re.compile(r"[0-9]{8}")
_SEQ = re.compile(r"[0-9]{5}")
_ALLOWED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")


@dataclass(frozen=True, slots=True)
class Scope:
    """One sequence space of the standard format: (org, type, category, production date)."""

    org: str
    ptype: str
    category: str
    prod_date: dt.date

    def __post_init__(self) -> None:
        for value, pattern, what in (
            (self.org, _ORG, "org code: 2-6 of A-Z 0-9"),
            (self.ptype, _TYPE, "production type: 3 letters"),
            (self.category, _CAT, "category: 2-4 letters"),
        ):
            if not isinstance(value, str) or not pattern.fullmatch(value):
                raise ProtocolError(E.ERR_SCOPE_INVALID, f"bad {what}, got {value!r}")
        if not isinstance(self.prod_date, dt.date) or isinstance(self.prod_date, dt.datetime):
            raise ProtocolError(E.ERR_SCOPE_INVALID, "production date must be a date")

    @property
    def key(self) -> str:
        """Return the canonical text form, e.g. `MA01-HAT-BAG-20251109`."""
        return f"{self.org}-{self.ptype}-{self.category}-{self.prod_date:%Y%m%d}"

    @classmethod
    def from_key(cls, key: object) -> Scope:
        """Parse the canonical text form of a scope."""
        if not isinstance(key, str) or len(key) > 32:
            raise ProtocolError(E.ERR_SCOPE_INVALID, "a scope looks like MA01-HAT-BAG-20251109")
        parts = key.split("-")
        if len(parts) != 4 or not _DATE.fullmatch(parts[3]):
            raise ProtocolError(E.ERR_SCOPE_INVALID, "a scope looks like MA01-HAT-BAG-20251109")
        try:
            day = dt.datetime.strptime(parts[3], "%Y%m%d").date()
        except ValueError:
            raise ProtocolError(E.ERR_SCOPE_INVALID, f"no such date {parts[3]}") from None
        return cls(parts[0], parts[1], parts[2], day)


@dataclass(frozen=True, slots=True)
class StandardSerial:
    """A parsed standard-format serial. `text` is its canonical form."""

    scope: Scope
    seq: int
    mac: str
    check: str

    @property
    def body(self) -> str:
        """Return the part the MAC is computed over."""
        return body(self.scope, self.seq)

    @property
    def text(self) -> str:
        """Return the canonical serial string."""
        return f"{self.body}-{self.mac}-{self.check}"

    def mac_valid(self, lease_key: bytes) -> bool:
        """Tell whether the MAC was made with this lease key."""
        return mac_matches(lease_key, self.body, self.mac)


def body(scope: Scope, seq: int) -> str:
    """Return `{org}-{type}-{cat}-{date}-{seq}` for a scope and sequence number."""
    if not isinstance(seq, int) or isinstance(seq, bool) or not 1 <= seq <= MAX_SEQ:
        raise ProtocolError(E.ERR_SERIAL_SEQ, f"sequence numbers run 1..{MAX_SEQ}, got {seq!r}")
    return f"{scope.key}-{seq:05d}"


def render(scope: Scope, seq: int, lease_key: bytes) -> str:
    """Render the serial of number `seq` in `scope`, authenticated with a lease key."""
    serial_body = body(scope, seq)
    mac = compute_mac(lease_key, serial_body)
    head = f"{serial_body}-{mac}"
    return f"{head}-{mod37_36(head.replace('-', ''))}"


class ScopeRenderer:
    """Render serials of one scope, with what every serial of it shares worked out once.

    `render(seq, LeaseMac(key))` equals `render(scope, seq, key)`: the scope's key and the
    check character's running state over it are computed here, the lease key's HMAC pads in
    `LeaseMac`, not for every serial.
    """

    __slots__ = ("scope", "key", "_state")

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.key = scope.key
        self._state = mod37_36_state(self.key.replace("-", ""))

    def render(self, seq: int, lease_mac: LeaseMac) -> str:
        """Render the serial of number `seq`, authenticated with a lease's key."""
        if type(seq) is not int or not 1 <= seq <= MAX_SEQ:
            body(self.scope, seq)  # raises ERR_SERIAL_SEQ as `render` does
        digits = f"{seq:05d}"
        mac = lease_mac.mac(f"{self.key}-{digits}")
        return f"{self.key}-{digits}-{mac}-{mod37_36_after(self._state, digits + mac)}"


def parse(text: object) -> StandardSerial:
    """Parse and validate a serial's syntax, date and check character (not its MAC)."""
    if not isinstance(text, str):
        raise ProtocolError(E.ERR_SERIAL_SYNTAX, "a serial is a text string")
    if len(text) > MAX_INPUT:
        raise ProtocolError(E.ERR_SERIAL_LENGTH, f"a serial has at most {MAX_LENGTH} characters")
    code = text.strip().upper()
    if not code:
        raise ProtocolError(E.ERR_SERIAL_EMPTY, "no serial given")
    if not _ALLOWED.issuperset(code):
        raise ProtocolError(
            E.ERR_SERIAL_CHARS, "a serial holds only letters A-Z, digits and hyphens"
        )
    if not MIN_LENGTH <= len(code) <= MAX_LENGTH:
        raise ProtocolError(
            E.ERR_SERIAL_LENGTH,
            f"a serial has {MIN_LENGTH}-{MAX_LENGTH} characters, this one has {len(code)}",
        )
    parts = code.split("-")
    if len(parts) != 7:
        raise ProtocolError(E.ERR_SERIAL_SYNTAX, "a serial has 7 parts separated by hyphens")
    org, ptype, cat, date_s, seq_s, mac, check = parts
    for value, pattern, what in (
        (org, _ORG, "organisation code (2-6 letters or digits)"),
        (ptype, _TYPE, "production type (3 letters)"),
        (cat, _CAT, "category (2-4 letters)"),
        (date_s, _DATE, "date (YYYYMMDD)"),
        (seq_s, _SEQ, "sequence number (5 digits)"),
    ):
        if not pattern.fullmatch(value):
            raise ProtocolError(E.ERR_SERIAL_SYNTAX, f"bad {what}: {value!r}")
    mac = normalise(mac)
    if len(mac) != 4 or not is_crockford(mac):
        raise ProtocolError(E.ERR_SERIAL_SYNTAX, "bad authenticity code (4 characters)")
    if len(check) != 1:
        raise ProtocolError(E.ERR_SERIAL_SYNTAX, "bad check character (1 character)")
    try:
        day = dt.date(int(date_s[:4]), int(date_s[4:6]), int(date_s[6:]))
    except ValueError:
        raise ProtocolError(E.ERR_SERIAL_DATE, f"no such date {date_s}") from None
    seq = int(seq_s)
    if seq < 1:
        raise ProtocolError(E.ERR_SERIAL_SEQ, "sequence number 00000 is never issued")
    head = f"{org}{ptype}{cat}{date_s}{seq_s}{mac}"
    if mod37_36(head) != check:
        raise ProtocolError(E.ERR_SERIAL_CHECK, "check character does not match: a typo?")
    return StandardSerial(Scope(org, ptype, cat, day), seq, mac, check)


def parse_authentic(text: object, lease_key: bytes) -> StandardSerial:
    """Parse a serial and check its MAC under `lease_key`."""
    serial = parse(text)
    if not serial.mac_valid(lease_key):
        raise ProtocolError(E.ERR_SERIAL_MAC, "authenticity code does not match")
    return serial
