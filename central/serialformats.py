"""Each product's serial format (issue #9): `standard`, `sgtin-seq` or `sgtin-random`.

`standard` is LineLedger's own serial with its MAC; `sgtin-seq` numbers AI (21) from range
leases per GTIN; `sgtin-random` draws serials of the product's alphabet and length from a
CSPRNG, made ahead by central (`central.gentasks`) and handed to lines as list leases.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from central import audit
from central import tables as T
from central.admin import tenant_by_org
from central.db import Store
from central.errors import ERR_PRODUCT_UNKNOWN, ERR_SERIAL_FORMAT, CentralError, NotFound
from central.gs1native import DEFAULT_ALPHABET, DEFAULT_LENGTH, random_spec
from protocol.errors import ProtocolError

STANDARD, SGTIN_SEQ, SGTIN_RANDOM = "standard", "sgtin-seq", "sgtin-random"
FORMATS = (STANDARD, SGTIN_SEQ, SGTIN_RANDOM)
DEFAULT_PLANNED = 1_000_000
MAX_PLANNED = 10**15


def set_serial_format(
    store: Store,
    org: str,
    sku: str,
    fmt: str,
    actor: str,
    now: dt.datetime,
    alphabet: str | None = None,
    length: int | None = None,
    planned: int = DEFAULT_PLANNED,
) -> dict[str, Any]:
    """Choose a product's serial format; return the product's format before and after.

    `sgtin-random` takes an alphabet and a length (defaults: 34 characters, 12 long) and is
    accepted only if `planned` serials per GTIN keep a guess below 1/10,000.
    """
    if fmt not in FORMATS:
        raise CentralError(ERR_SERIAL_FORMAT, f"the serial format is one of {', '.join(FORMATS)}")
    if not 1 <= planned <= MAX_PLANNED:
        raise CentralError(ERR_SERIAL_FORMAT, f"the planned volume is 1..{MAX_PLANNED}")
    after: dict[str, Any] = {"serial_format": fmt, "serial_alphabet": None, "serial_length": None}
    capacity: dict[str, Any] = {}
    if fmt == SGTIN_RANDOM:
        try:
            spec = random_spec(
                DEFAULT_ALPHABET if alphabet is None else alphabet,
                DEFAULT_LENGTH if length is None else length,
                planned,
            )
        except ProtocolError as exc:
            raise CentralError(exc.code, exc.message) from None
        after.update(serial_alphabet=spec.alphabet, serial_length=spec.length)
        capacity = {
            "max_pool_size": spec.max_pool_size,
            "planned": planned,
            "guess_probability_at_planned": str(spec.guess_probability(planned)),
        }
    elif alphabet is not None or length is not None:
        raise CentralError(ERR_SERIAL_FORMAT, "--alphabet and --length are for sgtin-random only")
    p = T.products.c
    with store.write() as conn:
        tenant = tenant_by_org(conn, org)
        row = conn.execute(
            sa.select(T.products).where(p.tenant_id == tenant.id, p.sku == sku)
        ).first()
        if row is None:
            raise NotFound(ERR_PRODUCT_UNKNOWN, f"no product {sku!r} for {org}")
        if fmt != STANDARD and not row.gtin:
            raise CentralError(ERR_SERIAL_FORMAT, f"{fmt} needs the product's GTIN; {sku} has none")
        before = {k: getattr(row, k) for k in after}
        conn.execute(T.products.update().where(p.id == row.id).values(**after))
        result = {"product": sku, "gtin": row.gtin, "before": before, "after": after, **capacity}
        audit.record(
            conn,
            actor,
            "product.serial_format",
            f"product:{org}/{sku}",
            now,
            None,
            result,
            tenant.id,
        )
    return result
