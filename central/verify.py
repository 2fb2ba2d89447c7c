"""Public verification: an honest, private answer to "is this product genuine?".

Forged codes and codes that were never issued get the same `unknown`, so nobody can tell
which numbers exist by probing. Verification counts (a clone signal) are tallied in memory
and flushed in the background, so a verify never waits for a write.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

import sqlalchemy as sa

from central import tables as T
from central.admin import FLAG_VERIFY_MODE, flags
from central.db import Store
from central.keyring import Keyring
from central.leases import find_lease
from central.timeutil import as_utc
from protocol import lifecycle as L
from protocol.errors import ProtocolError
from protocol.gs1 import normalise_gtin, standard_from_ai21
from protocol.serials import parse
from protocol.timefmt import format_ts

log = logging.getLogger("lineledger.central")

GENUINE = "genuine"
PENDING = "pending"
UNKNOWN = "unknown"
MALFORMED = "malformed"
VOIDED = "voided"
RECALLED = "recalled"
UNDER_REVIEW = "under_review"
VERDICTS = (GENUINE, PENDING, UNKNOWN, MALFORMED, VOIDED, RECALLED, UNDER_REVIEW)

_STATE_VERDICT = {
    L.VOIDED: VOIDED,
    L.DECOMMISSIONED: VOIDED,
    L.DESTROYED: VOIDED,
    L.RETIRED: VOIDED,
    L.RECALLED: RECALLED,
}

MESSAGES = {
    GENUINE: "This serial number was issued by the manufacturer.",
    PENDING: "This serial number is authentic and is being registered; check again later.",
    UNKNOWN: "This serial number is not known to the manufacturer.",
    MALFORMED: "This is not a valid serial number; check it for typing mistakes.",
    VOIDED: "This serial number was withdrawn and must not be on a product.",
    RECALLED: "This product has been recalled; contact the manufacturer.",
    UNDER_REVIEW: "This serial number is under review by the manufacturer.",
}


@dataclass(frozen=True)
class Verification:
    """The outcome of one verification, before privacy rules decide what to show."""

    serial: str
    verdict: str
    reason: str | None = None
    mode: str = "minimal"
    details: dict[str, Any] = field(default_factory=dict)
    gs1: str | None = None  # the element string asked about, in (AI) form

    def to_dict(self) -> dict[str, Any]:
        """Return the public answer for the tenant's privacy mode."""
        out: dict[str, Any] = {
            "ok": True,
            "serial": self.serial,
            "verdict": self.verdict,
            "message": MESSAGES[self.verdict],
        }
        if self.reason:
            out["reason"] = self.reason
        if self.gs1:
            out["gs1"] = self.gs1
        if self.mode in ("standard", "internal") and self.details:
            out["details"] = self.details
        return out


def verify_code(
    store: Store, keyring: Keyring, code: str, internal: bool = False, gtin: str | None = None
) -> Verification:
    """Return the verdict on a code typed or scanned by anyone.

    With `gtin` (a GS1 scan or Digital Link), a registered serial of another product answers
    `unknown`: a genuine serial under another product's GTIN is a copied code.
    """
    try:
        serial = parse(code)
    except ProtocolError as exc:
        shown = code.strip().upper()[:64] if isinstance(code, str) else ""
        return Verification(shown, MALFORMED, exc.code)
    text = serial.text
    with store.read() as conn:
        tenant = conn.execute(
            sa.select(T.tenants).where(T.tenants.c.org_code == serial.scope.org)
        ).first()
        if tenant is None:
            return Verification(text, UNKNOWN)
        mode = flags(conn, tenant.id)[FLAG_VERIFY_MODE]
        if internal:
            mode = "internal"  # an authenticated admin sees everything
        elif mode == "internal":
            mode = "standard"  # internal detail is for authenticated admins only
        lease = find_lease(conn, serial.scope.key, serial.seq)
        if lease is None or not serial.mac_valid(keyring.lease_key(lease.key_version, lease.id)):
            return Verification(text, UNKNOWN, mode=mode)
        reg = conn.execute(
            sa.select(
                T.registry,
                T.products.c.id.label("product_id"),
                T.products.c.name.label("product_name"),
                T.products.c.gtin.label("product_gtin"),
            )
            .select_from(
                T.registry.outerjoin(
                    T.work_orders,
                    sa.and_(
                        T.work_orders.c.tenant_id == T.registry.c.tenant_id,
                        T.work_orders.c.number == T.registry.c.work_order,
                    ),
                ).outerjoin(T.products, T.products.c.id == T.work_orders.c.product_id)
            )
            .where(T.registry.c.serial == text)
        ).first()
        if (
            gtin is not None
            and reg is not None
            and reg.product_id is not None
            and reg.product_gtin != gtin
        ):
            return Verification(text, UNKNOWN, mode=mode)
        under_review = conn.execute(
            sa.select(T.quarantine.c.id)
            .where(
                T.quarantine.c.serial == text,
                T.quarantine.c.resolved_at.is_(None),
                T.quarantine.c.holds_serial.is_(True),
                T.quarantine.c.tenant_id == tenant.id,
            )
            .limit(1)
        ).first()
        if under_review is not None:
            return Verification(text, UNDER_REVIEW, mode=mode)
    if reg is None:
        if lease.status != "active" and serial.seq > (lease.high_water or 0):
            # in the unused tail of a returned, expired or revoked lease: never handed out
            return Verification(text, UNKNOWN, mode=mode)
        return Verification(text, PENDING, mode=mode, details=_details(tenant, serial, None))
    verdict = _STATE_VERDICT.get(reg.state, GENUINE)
    return Verification(text, verdict, mode=mode, details=_details(tenant, serial, reg, mode))


def verify_gs1(
    store: Store, keyring: Keyring, gtin: str, ai21: str, internal: bool = False
) -> Verification:
    """Return the verdict on a GTIN + AI (21) pair, as in a GS1 Digital Link or DataMatrix."""
    shown = f"(01){gtin[:14]}(21){ai21[:20]}"
    try:
        gtin14 = normalise_gtin(gtin)
    except ProtocolError as exc:
        return Verification(shown, MALFORMED, exc.code, gs1=shown)
    shown = f"(01){gtin14}(21){ai21[:20]}"
    with store.read() as conn:
        product = conn.execute(
            sa.select(T.tenants.c.org_code, T.products.c.category)
            .join(T.tenants, T.tenants.c.id == T.products.c.tenant_id)
            .where(T.products.c.gtin == gtin14)
        ).first()
    if product is None:
        return Verification(shown, UNKNOWN, gs1=shown)
    try:
        serial = standard_from_ai21(ai21, product.org_code, product.category)
    except ProtocolError as exc:
        # A broken check character or date is a typo; any other shape is not one of ours.
        verdict = MALFORMED if exc.code.startswith("ERR_SERIAL_") else UNKNOWN
        return Verification(shown, verdict, exc.code if verdict == MALFORMED else None, gs1=shown)
    result = verify_code(store, keyring, serial, internal, gtin14)
    return replace(result, gs1=shown)


def _details(tenant: Any, serial: Any, reg: Any, mode: str = "standard") -> dict[str, Any]:
    out: dict[str, Any] = {
        "manufacturer": tenant.name,
        "production_month": f"{serial.scope.prod_date:%Y-%m}",
    }
    if reg is None:
        return out
    if reg.product_name:
        out["product"] = reg.product_name
    out["verifications"] = reg.verify_count
    first = as_utc(reg.first_verified_at)
    if first is not None:
        out["first_verified_at"] = format_ts(first)
    if mode == "internal":
        out.update(
            state=reg.state,
            work_order=reg.work_order,
            line_agent=reg.agent_id,
            prints=reg.print_count,
            reprints=reg.reprint_count,
        )
    return out


class VerifyTally:
    """Count verifications of registered serials in memory and add them to the store in bulk."""

    def __init__(self, store: Store, interval: float) -> None:
        self.store = store
        self.interval = interval
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._first: dict[str, dt.datetime] = {}
        self._timer: threading.Timer | None = None
        self._closed = False

    def add(self, serial: str, now: dt.datetime) -> None:
        """Note one verification of a serial."""
        with self._lock:
            self._counts[serial] += 1
            self._first.setdefault(serial, now)
            if self._timer is None and not self._closed:
                self._timer = threading.Timer(self.interval, self.flush)
                self._timer.daemon = True
                self._timer.start()

    def flush(self) -> int:
        """Write the tallied counts; return how many serials were updated.

        Rows are updated in serial order, the order ingest uses too, so the two never
        deadlock on PostgreSQL; counts that could not be written are kept for the next flush.
        """
        with self._flushing:  # one flush at a time; close() waits for a running one
            return self._flush()

    def _flush(self) -> int:
        with self._lock:
            counts, first = self._counts, self._first
            self._counts, self._first = Counter(), {}
            self._timer = None
        if not counts:
            return 0
        reg = T.registry.c
        rows = [{"b_serial": s, "b_n": counts[s], "b_first": first[s]} for s in sorted(counts)]
        try:
            with self.store.write() as conn:
                conn.execute(
                    T.registry.update()
                    .where(reg.serial == sa.bindparam("b_serial"))
                    .values(
                        verify_count=reg.verify_count + sa.bindparam("b_n"),
                        first_verified_at=sa.func.coalesce(
                            reg.first_verified_at, sa.bindparam("b_first", type_=T.TS)
                        ),
                    ),
                    rows,
                )
        except sa.exc.SQLAlchemyError:
            log.warning("verification counts kept for the next flush", exc_info=True)
            with self._lock:
                self._counts.update(counts)
                for serial, when in first.items():
                    self._first.setdefault(serial, when)
            return 0
        return len(counts)

    def close(self) -> None:
        """Stop the timer and write what is left."""
        with self._lock:
            self._closed = True
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        self.flush()
