"""Agent secrets: one-time enrollment codes and bearer tokens, stored only as hashes.

Both are long random values, so a plain SHA-256 is enough: there is nothing to brute-force
that a slow hash would protect (unlike a person's password).
"""

from __future__ import annotations

import hashlib
import secrets

from protocol.crockford import ALPHABET as CROCKFORD
from protocol.crockford import normalise

ENROLL_CODE_CHARS = 16  # 80 bits, shown as four groups of four
TOKEN_PREFIX = "llt_"


def hash_secret(secret: str) -> str:
    """Return the hex SHA-256 of a secret, the only form the store keeps."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_enroll_code() -> str:
    """Return a one-time enrollment code like `7KQ2-M9XD-4TPA-ZR3E` (Crockford base32)."""
    raw = "".join(secrets.choice(CROCKFORD) for _ in range(ENROLL_CODE_CHARS))
    return "-".join(raw[i : i + 4] for i in range(0, ENROLL_CODE_CHARS, 4))


def canonical_enroll_code(code: str) -> str:
    """Return the code as hashed: hyphens and spaces dropped, look-alikes mapped."""
    return normalise(code.replace("-", "").replace(" ", "").strip())


def new_agent_token() -> str:
    """Return a fresh agent bearer token."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def bearer_token(header: str) -> str:
    """Return the token of an `Authorization: Bearer <token>` header ("" if none)."""
    if header[:7].lower() != "bearer ":
        return ""
    token = header[7:].strip()
    return token if len(token) <= 128 else ""
