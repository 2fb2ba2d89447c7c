"""Key derivation and authenticity codes (MACs) for serials.

A master key (versioned, central only) derives one key per lease; agents only ever hold
lease keys. A serial's MAC is the first 20 bits of HMAC-SHA256(lease key, body), written as
four Crockford base32 characters.
"""

from __future__ import annotations

import hashlib
import hmac

from protocol.crockford import encode_bits
from protocol.errors import ERR_KEY_INVALID, ProtocolError

MASTER_KEY_BYTES = 32
LEASE_KEY_BYTES = 32
MAC_CHARS = 4


def derive_lease_key(master_key: bytes, lease_id: str) -> bytes:
    """Derive the key of one lease from the master key of the lease's key version."""
    if len(master_key) < MASTER_KEY_BYTES:
        raise ProtocolError(ERR_KEY_INVALID, f"a master key needs {MASTER_KEY_BYTES} bytes")
    if not lease_id:
        raise ProtocolError(ERR_KEY_INVALID, "a lease id is needed to derive a lease key")
    return hmac.new(master_key, b"lease:" + lease_id.encode("utf-8"), hashlib.sha256).digest()


def compute_mac(lease_key: bytes, body: str) -> str:
    """Return the four-character MAC of a serial body under a lease key."""
    # hmac.digest: OpenSSL's one-shot HMAC, no Python HMAC object per serial.
    digest = hmac.digest(lease_key, body.encode("ascii"), "sha256")
    return encode_bits(int.from_bytes(digest[:3], "big") >> 4, MAC_CHARS)


_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))
_BLOCK = 64  # SHA-256's block size


class LeaseMac:
    """`compute_mac` under one lease key, with the key's HMAC pads hashed once (RFC 2104).

    An issuing loop makes every serial of a lease with the same key: the two SHA-256 states
    of the padded key are kept and copied, instead of keying a new HMAC for each serial.
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, lease_key: bytes) -> None:
        key = hashlib.sha256(lease_key).digest() if len(lease_key) > _BLOCK else lease_key
        key = key.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(key.translate(_IPAD))
        self._outer = hashlib.sha256(key.translate(_OPAD))

    def mac(self, body: str) -> str:
        """Return the four-character MAC of a serial body (as `compute_mac` does)."""
        inner = self._inner.copy()
        inner.update(body.encode("ascii"))
        outer = self._outer.copy()
        outer.update(inner.digest())
        return encode_bits(int.from_bytes(outer.digest()[:3], "big") >> 4, MAC_CHARS)


def mac_matches(lease_key: bytes, body: str, mac: str) -> bool:
    """Compare a MAC with the expected one in constant time."""
    return hmac.compare_digest(compute_mac(lease_key, body), mac)


def key_fingerprint(key: bytes) -> str:
    """Return a short, non-secret fingerprint that tells two keys apart."""
    return hmac.new(key, b"lineledger-fingerprint", hashlib.sha256).hexdigest()[:16]


def lease_key_from_hex(text: object) -> bytes:
    """Decode a lease key as carried in a lease grant."""
    if not isinstance(text, str):
        raise ProtocolError(ERR_KEY_INVALID, "a lease key must be hexadecimal text")
    try:
        key = bytes.fromhex(text)
    except (TypeError, ValueError):
        raise ProtocolError(ERR_KEY_INVALID, "a lease key must be hexadecimal") from None
    if len(key) != LEASE_KEY_BYTES:
        raise ProtocolError(ERR_KEY_INVALID, f"a lease key has {LEASE_KEY_BYTES} bytes")
    return key
