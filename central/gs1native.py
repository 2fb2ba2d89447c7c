"""GS1-native numbers central generates (issue #9): SSCCs and randomised SGTIN serials.

Pure code: no I/O and no clock. Randomness comes from a `randbytes(n)` function, the CSPRNG
(`secrets.token_bytes`) unless a test injects a deterministic one.

Randomised serials (`sgtin-random`, EU FMD style): each serial is exactly `length` characters
drawn uniformly and independently from the product's alphabet (GS1 AI (21) character set 82).
Whoever guesses a serial for a GTIN hits an issued one with probability issued / |alphabet|^length;
we keep that below 1/10,000 by capping how many serials one GTIN may ever have
(`max_pool_size`): a product is accepted when its cap covers its planned volume, and a
generation that would pass the cap is refused.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction

from protocol.errors import ProtocolError
from protocol.gs1 import mod10_check_digit, sscc

ERR_SERIAL_ALPHABET = "ERR_SERIAL_ALPHABET"
ERR_SERIAL_SPACE = "ERR_SERIAL_SPACE"
ERR_SSCC_SOURCE = "ERR_SSCC_SOURCE"

# GS1 General Specifications, figure 7.11-1: the characters AI (21) may hold.
CSET82 = "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
MAX_SERIAL_LENGTH = 20  # AI (21) holds at most 20 characters
GUESS_BOUND = Fraction(1, 10_000)  # EU FMD: a guessed serial is valid with p < 1/10,000
DEFAULT_ALPHABET = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # digits + capitals without I and O
DEFAULT_LENGTH = 12
SSCC_LENGTH = 18

RandBytes = Callable[[int], bytes]


@dataclass(frozen=True)
class RandomSerialSpec:
    """How a product's randomised serials look: the alphabet drawn from and their length."""

    alphabet: str
    length: int

    @property
    def space(self) -> int:
        """Return how many distinct serials the spec can make."""
        return int(len(self.alphabet) ** self.length)

    @property
    def max_pool_size(self) -> int:
        """Return the most serials one GTIN may have while a guess hits with p < 1/10,000."""
        # largest n with n / space < 1/10,000, i.e. n * 10,000 < space
        return (self.space - 1) // GUESS_BOUND.denominator

    def guess_probability(self, issued: int) -> Fraction:
        """Return the chance that one guessed serial is among `issued` serials."""
        return Fraction(issued, self.space)

    def to_dict(self) -> dict[str, object]:
        """Return the spec with its capacity, as JSON-friendly values."""
        return {
            "alphabet": self.alphabet,
            "length": self.length,
            "max_pool_size": self.max_pool_size,
        }


def check_alphabet(alphabet: object) -> str:
    """Return a valid alphabet (2-82 distinct characters of GS1 set 82), or raise."""
    if not isinstance(alphabet, str):
        raise ProtocolError(ERR_SERIAL_ALPHABET, "the alphabet is a string of characters")
    if not 2 <= len(alphabet) <= len(CSET82):
        raise ProtocolError(
            ERR_SERIAL_ALPHABET, f"the alphabet has 2-{len(CSET82)} distinct characters"
        )
    bad = sorted(set(alphabet) - set(CSET82))
    if bad:
        shown = "".join(bad[:10]).encode("unicode_escape").decode("ascii")
        raise ProtocolError(
            ERR_SERIAL_ALPHABET,
            f"the alphabet may hold only GS1 AI (21) characters (set 82); not {shown!r}",
        )
    if len(set(alphabet)) != len(alphabet):
        raise ProtocolError(ERR_SERIAL_ALPHABET, "the alphabet repeats a character")
    return alphabet


def random_spec(alphabet: object, length: object, planned: int = 1) -> RandomSerialSpec:
    """Return a validated spec whose capacity covers `planned` serials per GTIN, or raise."""
    alphabet = check_alphabet(alphabet)
    if isinstance(length, bool) or not isinstance(length, int):
        raise ProtocolError(ERR_SERIAL_ALPHABET, "the length is a whole number")
    if not 1 <= length <= MAX_SERIAL_LENGTH:
        raise ProtocolError(ERR_SERIAL_ALPHABET, f"the length is 1-{MAX_SERIAL_LENGTH}")
    spec = RandomSerialSpec(alphabet, length)
    if spec.max_pool_size < planned:
        raise ProtocolError(
            ERR_SERIAL_SPACE,
            f"{len(alphabet)} characters x {length} allow only {spec.max_pool_size} serials "
            f"per GTIN with a guess probability below 1/10,000 ({planned} planned): use a "
            "longer serial or a larger alphabet",
        )
    return spec


def _table(alphabet: str) -> tuple[bytes, bytes]:
    """Return a bytes.translate table mapping a byte to a character, and the bytes to drop.

    Bytes at or above the largest multiple of the alphabet size are dropped (rejection
    sampling), so every character is equally likely.
    """
    size = len(alphabet)
    limit = 256 - 256 % size
    table = bytes(ord(alphabet[b % size]) if b < limit else 0 for b in range(256))
    return table, bytes(range(limit, 256))


def random_serials(
    spec: RandomSerialSpec, count: int, randbytes: RandBytes = secrets.token_bytes
) -> list[str]:
    """Return `count` serials of the spec, distinct among themselves, drawn from `randbytes`."""
    table, drop = _table(spec.alphabet)
    out: dict[str, None] = {}  # insertion-ordered set
    stream = b""
    while len(out) < count:
        need = (count - len(out)) * spec.length
        # draw a little more than needed: rejected bytes are at most half of them
        stream += randbytes(need + need // 2 + 16).translate(table, drop)
        usable = len(stream) - len(stream) % spec.length
        chunk, stream = stream[:usable], stream[usable:]
        for i in range(0, len(chunk), spec.length):
            out[chunk[i : i + spec.length].decode("ascii")] = None
            if len(out) == count:
                break
    return list(out)


def check_serial(spec: RandomSerialSpec, serial: str) -> bool:
    """Tell whether a serial could have been made by the spec."""
    return len(serial) == spec.length and set(serial) <= set(spec.alphabet)


# --- SSCC ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SsccSource:
    """Where a tenant's SSCCs come from: a GS1 company prefix and an extension digit."""

    name: str
    company_prefix: str
    extension_digit: int

    @property
    def capacity(self) -> int:
        """Return how many serial references the prefix leaves (16 − prefix digits)."""
        return int(10 ** (16 - len(self.company_prefix)))

    @property
    def counter_key(self) -> str:
        """Return the `number_counters` key of this source's serial references."""
        return f"sscc:{self.extension_digit}:{self.company_prefix}"

    def build(self, serial_reference: int) -> str:
        """Return the SSCC of a serial reference."""
        return sscc(self.extension_digit, self.company_prefix, serial_reference)

    def to_dict(self) -> dict[str, object]:
        """Return the source as JSON-friendly values."""
        return {
            "name": self.name,
            "company_prefix": self.company_prefix,
            "extension_digit": self.extension_digit,
        }


def sscc_source(entry: object) -> SsccSource:
    """Return a source from a `generation_config.sscc_sources` entry, or raise."""
    if not isinstance(entry, dict):
        raise ProtocolError(ERR_SSCC_SOURCE, "an SSCC source is an object")
    prefix, ext = entry.get("company_prefix"), entry.get("extension_digit")
    if not (isinstance(prefix, str) and prefix.isascii() and prefix.isdigit()):
        raise ProtocolError(ERR_SSCC_SOURCE, "an SSCC source's company_prefix is digits")
    if not 6 <= len(prefix) <= 12:
        raise ProtocolError(ERR_SSCC_SOURCE, "a GS1 company prefix has 6-12 digits")
    if isinstance(ext, bool) or not isinstance(ext, int) or not 0 <= ext <= 9:
        raise ProtocolError(ERR_SSCC_SOURCE, "an SSCC source's extension_digit is 0-9")
    return SsccSource(str(entry.get("name") or "")[:100], prefix, ext)


def first_enabled_source(entries: object) -> SsccSource | None:
    """Return the first enabled source of a `sscc_sources` list (None: there is none)."""
    if not isinstance(entries, list):
        return None
    for entry in entries:
        if isinstance(entry, dict) and entry.get("enabled") is True:
            return sscc_source(entry)
    return None


def check_sscc(code: str) -> bool:
    """Tell whether a code is 18 digits with a right mod-10 check digit."""
    return (
        len(code) == SSCC_LENGTH
        and code.isascii()
        and code.isdigit()
        and mod10_check_digit(code[:-1]) == code[-1]
    )


def ssccs(source: SsccSource, first: int, count: int) -> Iterator[str]:
    """Yield the SSCCs of serial references first .. first + count − 1."""
    for ref in range(first, first + count):
        yield source.build(ref)
