"""Public verification: an honest, private answer to "is this product genuine?".

Forged codes and codes that were never issued get the same `unknown`, so nobody can tell
which numbers exist by probing. Verification counts (a clone signal) are tallied in memory
and flushed in the background, so a verify never waits for a write.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
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
from protocol.checkchar import mod37_36
from protocol.errors import ProtocolError
from protocol.gs1 import ERR_ELEMENT_STRING, normalise_gtin
from protocol.keys import MASTER_KEY_BYTES, derive_lease_key
from protocol.serials import Scope, StandardSerial, body, parse
from protocol.timefmt import format_ts

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
    UNKNOWN: "We don't recognise this code: it was not issued by a manufacturer we serve.",
    MALFORMED: (
        "This doesn't look like a complete code: check you scanned the whole label, "
        "or look for a typing mistake."
    ),
    VOIDED: "This serial number was withdrawn and must not be on a product.",
    RECALLED: "This product has been recalled; contact the manufacturer.",
    UNDER_REVIEW: "This serial number is under review by the manufacturer.",
}


# A code checked from this many distinct client-days (one client = one address, or one IPv6
# /64, on one day) is suspicious: one genuine product is rarely checked from so many places.
WARN_CLIENT_DAYS = 20
WARN_CHECKED_OFTEN = "checked_often"
WARNING_MESSAGE = (
    "This code has been checked from many different places. If you bought this product as "
    "new, its label may have been copied: contact the manufacturer."
)


@dataclass(frozen=True)
class Verification:
    """The outcome of one verification, before privacy rules decide what to show."""

    serial: str
    verdict: str
    reason: str | None = None
    mode: str = "minimal"
    details: dict[str, Any] = field(default_factory=dict)
    gs1: str | None = None  # the element string asked about, in (AI) form
    manufacturer: str | None = None  # the tenant's display name: never for `unknown`
    brand: str | None = None  # the product's brand, in every mode: never for `unknown`
    warning: dict[str, str] | None = None  # e.g. checked from suspiciously many places

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
        if self.manufacturer:
            out["manufacturer"] = self.manufacturer
        if self.brand:
            out["brand"] = self.brand
        if self.warning:
            out["warning"] = self.warning
        if self.mode in ("standard", "internal") and self.details:
            out["details"] = self.details
        return out


# A "not ours" answer does the same work as a known one: the same queries and one key
# derivation plus MAC check, against this per-process random key when there is no lease.
_DUMMY_MASTER = secrets.token_bytes(MASTER_KEY_BYTES)
_DUMMY_LEASE = "00000000-0000-7000-8000-000000000000"
_NO_TENANT = -1  # no tenant has this id: the per-tenant queries run and find nothing
# Stands in for the scope of a GS1 code that cannot be one of ours, so its lookups keep the shape.
_DUMMY_SERIAL = StandardSerial(Scope("ZZ", "ZZZ", "ZZ", dt.date(2000, 1, 1)), 1, "0000", "0")
# GS1 AI (21): 1-20 characters of the GS1 AI encodable character set 82.
_AI21_SYNTAX = re.compile(r"[!\"%&'()*+,\-./0-9:;<=>?A-Z_a-z]{1,20}")
_AI21_OURS = re.compile(r"([0-9]{6})([A-Z]{3})([0-9]{5})([0-9A-Z]{4})([0-9A-Z])")


def verify_code(
    store: Store,
    keyring: Keyring,
    code: str,
    internal: bool = False,
    gtin: str | None = None,
    warn_client_days: int = WARN_CLIENT_DAYS,
) -> Verification:
    """Return the verdict on a code typed or scanned by anyone.

    `malformed` is decided from the text alone, before any lookup; every code that is not
    ours (unknown org, no lease, wrong MAC, never issued) answers `unknown` after the same
    lookups. With `gtin` (a GS1 scan or Digital Link), a registered serial of another
    product answers `unknown`: a genuine serial under another product's GTIN is a copied code.
    """
    try:
        serial = parse(code)
    except ProtocolError as exc:
        shown = code.strip().upper()[:64] if isinstance(code, str) else ""
        return Verification(shown, MALFORMED, exc.code)
    return _judge(store, keyring, serial, internal, gtin, False, warn_client_days)


def verify_gs1(
    store: Store,
    keyring: Keyring,
    gtin: str,
    ai21: str,
    internal: bool = False,
    warn_client_days: int = WARN_CLIENT_DAYS,
) -> Verification:
    """Return the verdict on a GTIN + AI (21) pair, as in a GS1 Digital Link or DataMatrix.

    Only the GTIN's check digit and the AI (21) character set and length can be judged
    before a lookup, so only they answer `malformed`; an AI (21) whose check character does
    not fit the product's org and category is `unknown`, like one under an unregistered GTIN.
    """
    shown = f"(01){gtin[:14]}(21){ai21[:20]}"
    try:
        gtin14 = normalise_gtin(gtin)
    except ProtocolError as exc:
        return Verification(shown, MALFORMED, exc.code, gs1=shown)
    if not isinstance(ai21, str) or not _AI21_SYNTAX.fullmatch(ai21):
        return Verification(shown, MALFORMED, ERR_ELEMENT_STRING, gs1=shown)
    shown = f"(01){gtin14}(21){ai21}"
    with store.read() as conn:
        product = conn.execute(
            sa.select(T.tenants.c.org_code, T.products.c.category)
            .join(T.tenants, T.tenants.c.id == T.products.c.tenant_id)
            .where(T.products.c.gtin == gtin14)
        ).first()
    serial, ours = _serial_from_ai21(ai21, product)
    result = _judge(store, keyring, serial, internal, gtin14, not ours, warn_client_days)
    return replace(result, gs1=shown)


def _serial_from_ai21(ai21: str, product: Any) -> tuple[StandardSerial, bool]:
    """Return the standard serial an AI (21) stands for, and whether it can be one of ours."""
    m = _AI21_OURS.fullmatch(ai21)
    if product is None or m is None:
        return _DUMMY_SERIAL, False
    yymmdd, ptype, seq_s, mac, check = m.groups()
    try:
        scope = Scope(product.org_code, ptype, product.category, _date(yymmdd))
        seq = int(seq_s)
        body(scope, seq)  # 1..99999
    except (ProtocolError, ValueError):
        return _DUMMY_SERIAL, False
    head = f"{scope.org}{ptype}{scope.category}{scope.prod_date:%Y%m%d}{seq_s}{mac}"
    return StandardSerial(scope, seq, mac, check), mod37_36(head) == check


def _date(yymmdd: str) -> dt.date:
    return dt.date(2000 + int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:]))


def _judge(
    store: Store,
    keyring: Keyring,
    serial: StandardSerial,
    internal: bool,
    gtin: str | None,
    not_ours: bool,
    warn_client_days: int,
) -> Verification:
    """Look a well-formed serial up; every path runs the same queries and one MAC check."""
    text = serial.text
    with store.read() as conn:
        tenant = conn.execute(
            sa.select(T.tenants).where(T.tenants.c.org_code == serial.scope.org)
        ).first()
        tenant_id = tenant.id if tenant is not None else _NO_TENANT
        mode = flags(conn, tenant_id)[FLAG_VERIFY_MODE]
        if internal:
            mode = "internal"  # an authenticated admin sees everything
        elif mode == "internal":
            mode = "standard"  # internal detail is for authenticated admins only
        lease = find_lease(conn, serial.scope.key, serial.seq)
        if lease is not None:
            key = keyring.lease_key(lease.key_version, lease.id)
        else:
            key = derive_lease_key(_DUMMY_MASTER, _DUMMY_LEASE)
        mac_ok = serial.mac_valid(key)
        reg = conn.execute(
            sa.select(
                T.registry,
                T.products.c.id.label("product_id"),
                T.products.c.name.label("product_name"),
                T.products.c.gtin.label("product_gtin"),
                T.products.c.brand.label("product_brand"),
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
            .where(T.registry.c.serial == text, T.registry.c.tenant_id == tenant_id)
        ).first()
        under_review = conn.execute(
            sa.select(T.quarantine.c.id)
            .where(
                T.quarantine.c.serial == text,
                T.quarantine.c.resolved_at.is_(None),
                T.quarantine.c.holds_serial.is_(True),
                T.quarantine.c.tenant_id == tenant_id,
            )
            .limit(1)
        ).first()
    if not_ours or tenant is None or lease is None or not mac_ok:
        return Verification(text, UNKNOWN)
    if gtin is not None and reg is not None and reg.product_id is not None:
        if reg.product_gtin != gtin:
            return Verification(text, UNKNOWN)
    brand = reg.product_brand if reg is not None else None  # pending: no product known yet
    if under_review is not None:
        return Verification(text, UNDER_REVIEW, mode=mode, manufacturer=tenant.name, brand=brand)
    if reg is None:
        if lease.status != "active" and serial.seq > (lease.high_water or 0):
            # in the unused tail of a returned, expired or revoked lease: never handed out
            return Verification(text, UNKNOWN)
        return Verification(
            text,
            PENDING,
            mode=mode,
            details=_details(tenant, serial, None),
            manufacturer=tenant.name,
        )
    verdict = _STATE_VERDICT.get(reg.state, GENUINE)
    warning = None
    if reg.verify_count >= warn_client_days:
        warning = {"code": WARN_CHECKED_OFTEN, "message": WARNING_MESSAGE}
    return Verification(
        text,
        verdict,
        mode=mode,
        details=_details(tenant, serial, reg, mode),
        manufacturer=tenant.name,
        brand=brand,
        warning=warning,
    )


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
