"""Registry administration: tenants, products, work orders, flags, agents and master keys."""

from __future__ import annotations

import datetime as dt
import json
import re
import zoneinfo
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from central import audit, genhistory
from central import tables as T
from central.auth import canonical_enroll_code, hash_secret, new_agent_token, new_enroll_code
from central.db import Store
from central.errors import (
    ERR_ENROLL_CODE,
    ERR_INVALID,
    ERR_KEYRING,
    ERR_PRODUCT_EXISTS,
    ERR_PRODUCT_UNKNOWN,
    ERR_TEMPLATE_UNKNOWN,
    ERR_TENANT_EXISTS,
    ERR_TENANT_UNKNOWN,
    ERR_WORK_ORDER_EXISTS,
    CentralError,
    Conflict,
    NotFound,
    Unauthorized,
)
from central.keyring import Keyring
from central.timeutil import as_utc, new_id
from printers import LabelTemplate, PrinterError
from protocol.errors import ProtocolError
from protocol.gs1 import normalise_gtin
from protocol.messages import PRODUCTION_TYPES, EnrollResponse
from protocol.schema import unsafe_character

_ORG = re.compile(r"[A-Z0-9]{2,6}")
_NAME_OF_THING = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,63}")
_CATEGORY = re.compile(r"[A-Z]{2,4}")

FLAG_VERIFY_MODE = "FF_VERIFY_PUBLIC_MODE"
VERIFY_MODES = ("minimal", "standard", "internal")
FLAG_DEFAULTS = {FLAG_VERIFY_MODE: "minimal", "FF_SERIAL_STD_HAT": "on", "FF_SERIAL_STD_OEM": "on"}


def _check(pattern: re.Pattern[str], value: str, what: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise CentralError(ERR_INVALID, f"bad {what}: {value!r}")
    return value


def _text(value: str, what: str, max_len: int = 200) -> str:
    value = (value or "").strip()
    if not value or len(value) > max_len or not value.isprintable():
        raise CentralError(ERR_INVALID, f"{what} must be 1-{max_len} printable characters")
    return value


BRAND_MAX = 100


def check_brand(value: str) -> str:
    """Return a product brand as shown to customers: 1-100 printable characters, no control
    or bidi-override characters (they could make a forged page read like a genuine one)."""
    if not isinstance(value, str):
        raise CentralError(ERR_INVALID, "the brand must be text")
    bad = unsafe_character(value)
    if bad is not None:
        raise CentralError(ERR_INVALID, f"the brand contains the control or bidi character {bad}")
    return _text(value, "the brand", BRAND_MAX)


def tenant_by_org(conn: Connection, org: str) -> Row[Any]:
    """Return the tenant with an org code, or raise ERR_TENANT_UNKNOWN."""
    row = conn.execute(sa.select(T.tenants).where(T.tenants.c.org_code == org)).first()
    if row is None:
        raise NotFound(ERR_TENANT_UNKNOWN, f"no tenant with org code {org!r}")
    return row


def add_tenant(store: Store, org: str, name: str, timezone: str, now: dt.datetime) -> int:
    """Create a tenant; the org code is the first field of its serials."""
    org = _check(_ORG, org.upper(), "org code (2-6 of A-Z 0-9)")
    name = _text(name, "the tenant name")
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise CentralError(ERR_INVALID, f"unknown time zone {timezone!r}") from None
    with store.write() as conn:
        if conn.execute(sa.select(T.tenants.c.id).where(T.tenants.c.org_code == org)).first():
            raise Conflict(ERR_TENANT_EXISTS, f"tenant {org} exists already")
        result = conn.execute(
            T.tenants.insert().values(org_code=org, name=name, timezone=timezone, created_at=now)
        )
        tenant_id = int(result.inserted_primary_key[0])
        conn.execute(
            T.feature_flags.insert(),
            [
                {"tenant_id": tenant_id, "key": k, "value": v, "updated_at": now}
                for k, v in FLAG_DEFAULTS.items()
            ],
        )
    return tenant_id


def set_flag(store: Store, org: str, key: str, value: str, now: dt.datetime) -> None:
    """Set a feature flag of a tenant."""
    key = _check(re.compile(r"FF_[A-Z0-9_]{1,60}"), key, "flag name (FF_...)")
    value = _text(value, "the flag value", 64)
    if key == FLAG_VERIFY_MODE and value not in VERIFY_MODES:
        raise CentralError(ERR_INVALID, f"{FLAG_VERIFY_MODE} is one of {', '.join(VERIFY_MODES)}")
    with store.write() as conn:
        tenant = tenant_by_org(conn, org)
        store.upsert(
            conn,
            T.feature_flags,
            ["tenant_id", "key"],
            {"tenant_id": tenant.id, "key": key, "value": value, "updated_at": now},
        )


def flags(conn: Connection, tenant_id: int) -> dict[str, str]:
    """Return a tenant's flags over the defaults."""
    rows = conn.execute(
        sa.select(T.feature_flags.c.key, T.feature_flags.c.value).where(
            T.feature_flags.c.tenant_id == tenant_id
        )
    )
    return {**FLAG_DEFAULTS, **{r.key: r.value for r in rows}}


def add_product(
    store: Store,
    org: str,
    sku: str,
    category: str,
    name: str,
    gtin: str | None,
    now: dt.datetime,
    template: str = "default",
    brand: str | None = None,
) -> int:
    """Create a product of a tenant; `brand` (optional) is shown by public verify."""
    sku = _check(_NAME_OF_THING, sku, "SKU (letters, digits, . _ / -)")
    category = _check(_CATEGORY, category.upper(), "category (2-4 letters)")
    name = _text(name, "the product name")
    if brand is not None:
        brand = check_brand(brand)
    if gtin:
        try:
            gtin = normalise_gtin(gtin)
        except ProtocolError as exc:
            raise CentralError(exc.code, exc.message) from None
    with store.write() as conn:
        tenant = tenant_by_org(conn, org)
        exists = conn.execute(
            sa.select(T.products.c.id).where(
                T.products.c.tenant_id == tenant.id, T.products.c.sku == sku
            )
        ).first()
        if exists:
            raise Conflict(ERR_PRODUCT_EXISTS, f"product {sku} exists already for {org}")
        if (
            gtin
            and conn.execute(sa.select(T.products.c.id).where(T.products.c.gtin == gtin)).first()
        ):
            # A GTIN names one product worldwide; the Digital Link resolver relies on it.
            raise Conflict(ERR_PRODUCT_EXISTS, f"GTIN {gtin} belongs to another product already")
        if template != "default" and template not in label_templates(conn, tenant.id):
            raise NotFound(ERR_TEMPLATE_UNKNOWN, f"{org} has no label template {template!r}")
        result = conn.execute(
            T.products.insert().values(
                label_template=template,
                tenant_id=tenant.id,
                sku=sku,
                category=category,
                name=name,
                gtin=gtin,
                brand=brand,
                created_at=now,
            )
        )
        return int(result.inserted_primary_key[0])


def add_work_order(
    store: Store,
    org: str,
    number: str,
    sku: str,
    ptype: str,
    quantity: int,
    now: dt.datetime,
    line: str | None = None,
    overage_pct: float | None = None,
    tolerance_pct: float | None = None,
    *,
    name: str | None = None,
    source: str = "manual",
    requested_sscc: int = 0,
    actor: str = "system",
) -> int:
    """Create a work order: planned production of one product and production type.

    Overage and tolerance not given are the tenant's defaults from its generation
    configuration (`manufacturing_percentage`, `discrepancy_tolerance`; 0 if never set).
    """
    number = _check(_NAME_OF_THING, number, "work order number (letters, digits, . _ / -)")
    ptype = ptype.upper()
    if ptype not in PRODUCTION_TYPES:
        raise CentralError(ERR_INVALID, f"production type is one of {', '.join(PRODUCTION_TYPES)}")
    if not 1 <= quantity <= 10_000_000:
        raise CentralError(ERR_INVALID, "quantity must be 1..10,000,000")
    if not all(p is None or 0 <= p <= 100 for p in (overage_pct, tolerance_pct)):
        raise CentralError(ERR_INVALID, "percentages must be 0..100")
    if line is not None:
        line = _check(_NAME_OF_THING, line, "line name")
    if name is not None:
        name = _text(name, "the work order name")
    if source not in ("erp", "manual"):
        raise CentralError(ERR_INVALID, "source is erp or manual")
    if not 0 <= requested_sscc <= 10_000_000:
        raise CentralError(ERR_INVALID, "requested SSCCs must be 0..10,000,000")
    with store.write() as conn:
        tenant = tenant_by_org(conn, org)
        product = conn.execute(
            sa.select(T.products.c.id).where(
                T.products.c.tenant_id == tenant.id, T.products.c.sku == sku
            )
        ).first()
        if product is None:
            raise NotFound(ERR_PRODUCT_UNKNOWN, f"no product {sku!r} for {org}; add it first")
        exists = conn.execute(
            sa.select(T.work_orders.c.id).where(
                T.work_orders.c.tenant_id == tenant.id, T.work_orders.c.number == number
            )
        ).first()
        if exists:
            raise Conflict(ERR_WORK_ORDER_EXISTS, f"work order {number} exists already for {org}")
        if overage_pct is None or tolerance_pct is None:
            defaults = conn.execute(
                sa.select(
                    T.generation_config.c.manufacturing_percentage,
                    T.generation_config.c.discrepancy_tolerance,
                ).where(T.generation_config.c.tenant_id == tenant.id)
            ).first()
            if overage_pct is None:
                overage_pct = float(defaults.manufacturing_percentage) if defaults else 0.0
            if tolerance_pct is None:
                tolerance_pct = float(defaults.discrepancy_tolerance) if defaults else 0.0
        result = conn.execute(
            T.work_orders.insert().values(
                tenant_id=tenant.id,
                number=number,
                product_id=product.id,
                production_type=ptype,
                quantity=quantity,
                overage_pct=overage_pct,
                tolerance_pct=tolerance_pct,
                line=line,
                status="open",
                created_at=now,
                name=name,
                source=source,
                requested_sscc=requested_sscc,
            )
        )
        wo_id = int(result.inserted_primary_key[0])
        details = {
            "sku": sku,
            "production_type": ptype,
            "quantity": quantity,
            "overage_pct": overage_pct,
            "tolerance_pct": tolerance_pct,
            "requested_sscc": requested_sscc,
            "line": line,
            "name": name,
            "source": source,
        }
        audit.record(
            conn,
            actor,
            "work_order.create",
            f"work_order:{org}/{number}",
            now,
            None,
            details,
            tenant.id,
        )
        genhistory.record(
            conn,
            tenant_id=tenant.id,
            action="work_order_create",
            status="completed",
            actor=actor,
            now=now,
            work_order_id=wo_id,
            requested=quantity,
            details=details,
        )
        return wo_id


@dataclass(frozen=True)
class EnrollCode:
    """A one-time enrollment code as shown to the admin (the store keeps only its hash)."""

    code: str
    org: str
    line: str
    expires_at: dt.datetime


def create_enroll_code(
    store: Store, org: str, line: str, ttl_hours: int, now: dt.datetime
) -> EnrollCode:
    """Create a one-time code that lets the agent of one line enroll."""
    line = _check(_NAME_OF_THING, line, "line name (letters, digits, . _ / -)")
    code = new_enroll_code()
    expires = now + dt.timedelta(hours=ttl_hours)
    with store.write() as conn:
        tenant = tenant_by_org(conn, org)
        conn.execute(
            T.enrollment_codes.insert().values(
                tenant_id=tenant.id,
                line=line,
                code_hash=hash_secret(canonical_enroll_code(code)),
                created_at=now,
                expires_at=expires,
            )
        )
    return EnrollCode(code, tenant.org_code, line, expires)


def enroll_agent(
    store: Store, code: str, hostname: str | None, version: str | None, now: dt.datetime
) -> EnrollResponse:
    """Trade a valid, unused, unexpired enrollment code for an agent id and token."""
    code_hash = hash_secret(canonical_enroll_code(code))
    token = new_agent_token()
    agent_id = new_id(now)
    with store.write() as conn:
        row = conn.execute(
            store.lock_row(
                sa.select(T.enrollment_codes).where(T.enrollment_codes.c.code_hash == code_hash)
            )
        ).first()
        expires = as_utc(row.expires_at) if row is not None else None
        if row is None or row.used_at is not None or expires is None or expires <= now:
            # One answer for unknown, used and expired codes: nothing to learn by probing.
            raise Unauthorized(
                ERR_ENROLL_CODE, "this enrollment code is not valid; ask an admin for a new one"
            )
        conn.execute(
            T.agents.insert().values(
                id=agent_id,
                tenant_id=row.tenant_id,
                line=row.line,
                token_hash=hash_secret(token),
                hostname=hostname,
                agent_version=version,
                status="active",
                enrolled_at=now,
                last_seen_at=now,
            )
        )
        conn.execute(
            T.enrollment_codes.update()
            .where(T.enrollment_codes.c.id == row.id)
            .values(used_at=now, agent_id=agent_id)
        )
        tenant = conn.execute(sa.select(T.tenants).where(T.tenants.c.id == row.tenant_id)).one()
    return EnrollResponse(agent_id, token, tenant.org_code, row.line, tenant.name)


def active_key_version(conn: Connection) -> int | None:
    """Return the key version new leases use."""
    return conn.execute(
        sa.select(T.key_versions.c.version).where(T.key_versions.c.active.is_(True))
    ).scalar()


def check_keyring(store: Store, keyring: Keyring) -> None:
    """Raise ERR_KEYRING unless every version the database knows is in the keyring, unchanged."""
    with store.read() as conn:
        rows = conn.execute(sa.select(T.key_versions)).all()
    for row in rows:
        if row.version not in keyring.versions:
            raise CentralError(
                ERR_KEYRING, f"key version {row.version} is missing from {keyring.path}"
            )
        if keyring.fingerprint(row.version) != row.fingerprint:
            raise CentralError(
                ERR_KEYRING, f"key version {row.version} in {keyring.path} is not the recorded key"
            )


def rotate_keys(store: Store, keyring: Keyring, now: dt.datetime) -> int:
    """Create a new master key version and make new leases use it; old serials still verify."""
    check_keyring(store, keyring)
    version = keyring.add_version()
    with store.write() as conn:
        conn.execute(T.key_versions.update().values(active=False))
        conn.execute(
            T.key_versions.insert().values(
                version=version,
                fingerprint=keyring.fingerprint(version),
                active=True,
                created_at=now,
            )
        )
    return version


def ensure_active_key(store: Store, keyring: Keyring, now: dt.datetime) -> int:
    """Return the active key version, creating version 1 on a new registry."""
    with store.read() as conn:
        version = active_key_version(conn)
    if version is not None:
        check_keyring(store, keyring)
        return version
    return rotate_keys(store, keyring, now)


def set_label_template(
    store: Store, org: str, name: str, body: dict[str, Any], now: dt.datetime
) -> None:
    """Create or replace a tenant's label template after checking it renders."""
    name = _check(_NAME_OF_THING, name, "template name (letters, digits, . _ / -)")
    try:
        template = LabelTemplate.from_dict({**body, "name": name.replace("/", "-")})
    except PrinterError as exc:
        raise CentralError(exc.code, exc.message) from None
    text = json.dumps(template.to_dict(), sort_keys=True)
    with store.write() as conn:
        tenant = tenant_by_org(conn, org)
        store.upsert(
            conn,
            T.label_templates,
            ["tenant_id", "name"],
            {"tenant_id": tenant.id, "name": name, "body": text, "updated_at": now},
        )


def label_templates(conn: Connection, tenant_id: int) -> dict[str, dict[str, Any]]:
    """Return a tenant's label templates by name; "default" is always there."""
    rows = conn.execute(
        sa.select(T.label_templates.c.name, T.label_templates.c.body).where(
            T.label_templates.c.tenant_id == tenant_id
        )
    )
    found: dict[str, dict[str, Any]] = {r.name: json.loads(r.body) for r in rows}
    found.setdefault("default", {})
    return found


def set_product_template(store: Store, org: str, sku: str, template: str) -> None:
    """Print a product's labels with one of the tenant's templates."""
    with store.write() as conn:
        tenant = tenant_by_org(conn, org)
        if template != "default" and template not in label_templates(conn, tenant.id):
            raise NotFound(ERR_TEMPLATE_UNKNOWN, f"{org} has no label template {template!r}")
        done = conn.execute(
            T.products.update()
            .where(T.products.c.tenant_id == tenant.id, T.products.c.sku == sku)
            .values(label_template=template)
        )
        if done.rowcount != 1:
            raise NotFound(ERR_PRODUCT_UNKNOWN, f"no product {sku!r} for {org}")


def set_product_brand(store: Store, org: str, sku: str, brand: str | None) -> None:
    """Set the brand public verify shows for a product (None: show none)."""
    if brand is not None:
        brand = check_brand(brand)
    with store.write() as conn:
        tenant = tenant_by_org(conn, org)
        done = conn.execute(
            T.products.update()
            .where(T.products.c.tenant_id == tenant.id, T.products.c.sku == sku)
            .values(brand=brand)
        )
        if done.rowcount != 1:
            raise NotFound(ERR_PRODUCT_UNKNOWN, f"no product {sku!r} for {org}")


def add_admin_token(store: Store, name: str, now: dt.datetime) -> str:
    """Create an admin API token; only its hash is stored, the token is shown once."""
    name = _check(_NAME_OF_THING, name, "token name")
    token = "lla_" + new_agent_token()[len("llt_") :]
    with store.write() as conn:
        exists = conn.execute(
            sa.select(T.admin_tokens.c.id).where(T.admin_tokens.c.name == name)
        ).first()
        if exists:
            raise Conflict(ERR_INVALID, f"an admin token named {name} exists already")
        conn.execute(
            T.admin_tokens.insert().values(name=name, token_hash=hash_secret(token), created_at=now)
        )
    return token


def admin_token_name(conn: Connection, token: str) -> str | None:
    """Return the name of a live admin token (None: not one)."""
    if not token.startswith("lla_") or len(token) > 128:
        return None
    name: str | None = conn.execute(
        sa.select(T.admin_tokens.c.name).where(
            T.admin_tokens.c.token_hash == hash_secret(token),
            T.admin_tokens.c.revoked_at.is_(None),
        )
    ).scalar()
    return name


def admin_token_valid(conn: Connection, token: str) -> bool:
    """Tell whether a bearer token is a live admin token."""
    return admin_token_name(conn, token) is not None


def revoke_admin_token(store: Store, name: str, now: dt.datetime) -> None:
    """Revoke an admin token at once; it can never be used again."""
    with store.write() as conn:
        done = conn.execute(
            T.admin_tokens.update()
            .where(T.admin_tokens.c.name == name, T.admin_tokens.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        if done.rowcount != 1:
            raise NotFound(ERR_INVALID, f"no live admin token named {name!r}")
