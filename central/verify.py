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
from central.admin import FLAG_DEFAULTS, FLAG_VERIFY_MODE
from central.db import Store
from central.keyring import Keyring
from central.timeutil import as_utc
from protocol import lifecycle as L
from protocol.checkchar import mod37_36
from protocol.errors import ProtocolError
from protocol.gs1 import ERR_ELEMENT_STRING, ERR_SSCC, mod10_check_digit, normalise_gtin
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

SSCC_MESSAGES = {
    GENUINE: "This case or pallet code (SSCC) was issued by the manufacturer.",
    RECALLED: "The products in this case or pallet have been recalled; contact the manufacturer.",
    UNKNOWN: "We don't recognise this case or pallet code (SSCC).",
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
    kind: str = "serial"  # or "sscc": a case's or pallet's code

    @property
    def message(self) -> str:
        """Return the verdict in plain words for what was asked about."""
        if self.kind == "sscc" and self.verdict in SSCC_MESSAGES:
            return SSCC_MESSAGES[self.verdict]
        return MESSAGES[self.verdict]

    def to_dict(self) -> dict[str, Any]:
        """Return the public answer for the tenant's privacy mode."""
        out: dict[str, Any] = {
            "ok": True,
            "serial": self.serial,
            "verdict": self.verdict,
            "message": self.message,
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
    found = store.snapshot_read(_PRODUCT_OF_GTIN, {"gtin": gtin14})
    product = found[0] if found else None
    serial, ours = _serial_from_ai21(ai21, product)
    result = _judge(store, keyring, serial, internal, gtin14, not ours, warn_client_days)
    return replace(result, gs1=shown)


_SSCC = re.compile(r"(?:\(00\)|00)?([0-9]{18})")
_SSCC_OF = (
    sa.select(
        T.tenants.c.name.label("tenant_name"),
        sa.select(T.feature_flags.c.value)
        .where(
            T.feature_flags.c.tenant_id == T.tenants.c.id,
            T.feature_flags.c.key == FLAG_VERIFY_MODE,
        )
        .scalar_subquery()
        .label("verify_mode"),
        T.ssccs.c.level,
        T.ssccs.c.created_at,
        T.work_orders.c.number.label("work_order"),
        T.work_orders.c.recalled_at,
        T.products.c.name.label("product_name"),
        T.products.c.brand.label("product_brand"),
    )
    .select_from(T.ssccs)
    .join(T.tenants, T.tenants.c.id == T.ssccs.c.tenant_id)
    .join(T.work_orders, T.work_orders.c.id == T.ssccs.c.work_order_id)
    .join(T.products, T.products.c.id == T.work_orders.c.product_id)
    .where(T.ssccs.c.sscc == sa.bindparam("sscc"))
)
SSCC_LEVELS = {"l2": "case", "l3": "pallet", "l4": "pallet"}


def looks_like_sscc(code: str) -> bool:
    """Tell whether a typed code is an SSCC (18 digits, optionally as `(00)…` or `00…`)."""
    return isinstance(code, str) and _SSCC.fullmatch(code.strip()) is not None


def verify_sscc(store: Store, code: str, internal: bool = False) -> Verification:
    """Return the verdict on an SSCC (a case's or pallet's code) as in `/00/{sscc}`.

    An SSCC is `genuine` when central generated it for a work order (`recalled` when that
    work order was recalled) and `unknown` otherwise. SSCCs are sequential and printed in
    clear on every case, so unlike a serial's MAC nothing here is secret: the answer tells no
    more than the label does, and its details follow the tenant's privacy mode.
    """
    m = _SSCC.fullmatch(code.strip()) if isinstance(code, str) else None
    shown = f"(00){m.group(1)}" if m else (code.strip()[:64] if isinstance(code, str) else "")
    if m is None:
        return Verification(shown, MALFORMED, ERR_ELEMENT_STRING, gs1=shown, kind="sscc")
    digits = m.group(1)
    if mod10_check_digit(digits[:-1]) != digits[-1]:
        return Verification(shown, MALFORMED, ERR_SSCC, gs1=shown, kind="sscc")
    rows = store.snapshot_read(_SSCC_OF, {"sscc": digits})
    if not rows:
        return Verification(shown, UNKNOWN, gs1=shown, kind="sscc")
    row = rows[0]
    mode = "internal" if internal else (row.verify_mode or FLAG_DEFAULTS[FLAG_VERIFY_MODE])
    if mode == "internal" and not internal:
        mode = "standard"
    details: dict[str, Any] = {"manufacturer": row.tenant_name, "product": row.product_name}
    if row.level in SSCC_LEVELS:
        details["package"] = SSCC_LEVELS[row.level]
    if mode == "internal":
        details["work_order"] = row.work_order
        created = as_utc(row.created_at)
        if created is not None:
            details["generated_at"] = format_ts(created)
    verdict = RECALLED if row.recalled_at is not None else GENUINE
    return Verification(
        shown,
        verdict,
        mode=mode,
        details=details,
        gs1=shown,
        manufacturer=row.tenant_name,
        brand=row.product_brand,
        kind="sscc",
    )


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


def _verify_statement() -> sa.Select[Any]:
    """Build the one statement every verify runs: tenant, mode flag, lease, registry entry,
    product and open quarantine of a serial, in a single round trip.

    Built once: executing the same statement object again reuses its compiled form. Every
    code, ours or not, runs it with the same shape, so answer times do not tell them apart.
    A scope's leases never overlap, so the lease holding `seq` is the one that starts last
    at or before it (one index probe on (scope_key, first_seq)), if it reaches that far.
    """
    t, ls, r = T.tenants, T.leases, T.registry
    w, p, q, f = T.work_orders, T.products, T.quarantine, T.feature_flags
    one = sa.select(sa.literal(1).label("one")).subquery("one")
    lease_id = (
        sa.select(ls.c.id)
        .where(ls.c.scope_key == sa.bindparam("scope_key"), ls.c.first_seq <= sa.bindparam("seq"))
        .order_by(ls.c.first_seq.desc())
        .limit(1)
        .scalar_subquery()
    )
    mode = (
        sa.select(f.c.value)
        .where(f.c.tenant_id == t.c.id, f.c.key == FLAG_VERIFY_MODE)
        .scalar_subquery()
    )
    held = sa.exists().where(
        q.c.serial == sa.bindparam("serial"),
        q.c.resolved_at.is_(None),
        q.c.holds_serial.is_(True),
        q.c.tenant_id == t.c.id,
    )
    source = (
        one.outerjoin(t, t.c.org_code == sa.bindparam("org"))
        .outerjoin(ls, sa.and_(ls.c.id == lease_id, ls.c.last_seq >= sa.bindparam("seq")))
        .outerjoin(r, sa.and_(r.c.serial == sa.bindparam("serial"), r.c.tenant_id == t.c.id))
        .outerjoin(w, sa.and_(w.c.tenant_id == r.c.tenant_id, w.c.number == r.c.work_order))
        .outerjoin(p, p.c.id == w.c.product_id)
    )
    return sa.select(
        t.c.id.label("tenant_id"),
        t.c.name.label("tenant_name"),
        mode.label("verify_mode"),
        ls.c.id.label("lease_id"),
        ls.c.key_version.label("lease_key_version"),
        ls.c.status.label("lease_status"),
        ls.c.high_water.label("lease_high_water"),
        r.c.serial.label("reg_serial"),
        r.c.state,
        r.c.verify_count,
        r.c.first_verified_at,
        r.c.work_order,
        r.c.agent_id,
        r.c.print_count,
        r.c.reprint_count,
        p.c.id.label("product_id"),
        p.c.name.label("product_name"),
        p.c.gtin.label("product_gtin"),
        p.c.brand.label("product_brand"),
        held.label("under_review"),
    ).select_from(source)


_VERIFY = _verify_statement()
_PRODUCT_OF_GTIN = (
    sa.select(T.tenants.c.org_code, T.products.c.category)
    .join(T.tenants, T.tenants.c.id == T.products.c.tenant_id)
    .where(T.products.c.gtin == sa.bindparam("gtin"))
)


def _judge(
    store: Store,
    keyring: Keyring,
    serial: StandardSerial,
    internal: bool,
    gtin: str | None,
    not_ours: bool,
    warn_client_days: int,
) -> Verification:
    """Look a well-formed serial up; every path runs the same statement and one MAC check."""
    text = serial.text
    params = {"org": serial.scope.org, "scope_key": serial.scope.key, "seq": serial.seq}
    (row,) = store.snapshot_read(_VERIFY, {**params, "serial": text})
    mode = row.verify_mode or FLAG_DEFAULTS[FLAG_VERIFY_MODE]
    if internal:
        mode = "internal"  # an authenticated admin sees everything
    elif mode == "internal":
        mode = "standard"  # internal detail is for authenticated admins only
    if row.lease_id is not None:
        key = keyring.lease_key(row.lease_key_version, row.lease_id)
    else:
        key = derive_lease_key(_DUMMY_MASTER, _DUMMY_LEASE)
    mac_ok = serial.mac_valid(key)
    if not_ours or row.tenant_id is None or row.lease_id is None or not mac_ok:
        return Verification(text, UNKNOWN)
    reg = row if row.reg_serial is not None else None
    if gtin is not None and reg is not None and reg.product_id is not None:
        if reg.product_gtin != gtin:
            return Verification(text, UNKNOWN)
    brand = reg.product_brand if reg is not None else None  # pending: no product known yet
    manufacturer = row.tenant_name
    if row.under_review:
        return Verification(text, UNDER_REVIEW, mode=mode, manufacturer=manufacturer, brand=brand)
    if reg is None:
        if row.lease_status != "active" and serial.seq > (row.lease_high_water or 0):
            # in the unused tail of a returned, expired or revoked lease: never handed out
            return Verification(text, UNKNOWN)
        return Verification(
            text,
            PENDING,
            mode=mode,
            details=_details(manufacturer, serial, None),
            manufacturer=manufacturer,
        )
    verdict = _STATE_VERDICT.get(reg.state, GENUINE)
    warning = None
    if reg.verify_count >= warn_client_days:
        warning = {"code": WARN_CHECKED_OFTEN, "message": WARNING_MESSAGE}
    return Verification(
        text,
        verdict,
        mode=mode,
        details=_details(manufacturer, serial, reg, mode),
        manufacturer=manufacturer,
        brand=brand,
        warning=warning,
    )


def _details(manufacturer: str, serial: Any, reg: Any, mode: str = "standard") -> dict[str, Any]:
    out: dict[str, Any] = {
        "manufacturer": manufacturer,
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
