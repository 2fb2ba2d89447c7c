"""Generation configuration per tenant (issue #9, the reference's `serial_generation_config`).

One row of `generation_config` per tenant; a tenant without one uses `DEFAULTS` (no
overage, no tolerance, units only, every serial source on, no SSCC source, no ERP).

- **serial_sources**: LineLedger generates every serial itself, so a source is one of its own
  generators a tenant allows: `standard` (LineLedger's serial with its MAC, range leases),
  `sgtin-seq` (numeric AI (21) serials from range leases per GTIN) and `sgtin-random`
  (randomised AI (21) serials central pre-generates as list leases). A product whose format's
  source is disabled gets no new serials generated. There are no external serial sources.
- **sscc_sources**: GS1 company prefix (6-12 digits, an assigned GS1 prefix) + extension digit
  (0-9); SSCC generation draws from the enabled ones.
- **manufacturing_percentage**: default overage % of new work orders; **discrepancy_tolerance**
  the default tolerance %; both 0-100 with at most two decimals.
- **aggregation_rules**: `l1`..`l4`, each `{"enabled", "multiplier"}` = units per package at
  that level; `l1` is the unit (enabled, multiplier 1), and each enabled level's multiplier is a
  multiple, greater, of the enabled level below it.
- **erp_url**, **erp_token** (a secret: stored, never returned, exported or logged; shown as
  `erp_token_set`), **erp_interval_s** (>= 60, or null: no scheduled pull).

`validate` collects every field's problems before it answers (`ERR_VALIDATION` with
`details` {field: [messages]}); `save` writes the row, its audit record and its history row
in one transaction. `needs` turns a quantity, an overage and the rules into what each level
needs: units = the work order's allowance (`leases.allowed_serials`, rounded down like the
edge's own limit, so the plan never asks for a serial the edge would refuse), packages per
enabled level >= l2 = ceil(units / multiplier), SSCCs = the sum of those packages, and
`sscc_requests` = how many generation requests those SSCCs take (one asks for at most
`SSCC_PER_REQUEST`, 1,000,000; the cap stays: a task that size is minutes of work already).
"""

from __future__ import annotations

import copy
import datetime as dt
import ipaddress
import json
import math
import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import sqlalchemy as sa
from biip.gs1_prefixes import GS1Prefix
from biip.sscc import Sscc
from sqlalchemy.engine import Connection, Row

from central import audit, genhistory
from central import tables as T
from central.admin import tenant_by_org
from central.db import Store
from central.errors import ValidationFailed
from central.leases import allowed_serials
from central.timeutil import as_utc
from protocol.gs1 import sscc as build_sscc
from protocol.schema import unsafe_character

SERIAL_KINDS = ("standard", "sgtin-seq", "sgtin-random")
LEVELS = ("l1", "l2", "l3", "l4")
MAX_SOURCES = 16
MAX_NAME = 64
MAX_MULTIPLIER = 10_000_000
MAX_QUANTITY = 10_000_000
# SSCCs one generation request may ask for (`gentasks.MAX_QUANTITY`); `needs` says how many
# requests a work order's SSCCs take when they are more.
SSCC_PER_REQUEST = 1_000_000
MAX_URL = 500
MAX_TOKEN = 500
MIN_INTERVAL_S = 60
MAX_INTERVAL_S = 7 * 86_400
MAX_DOCUMENT_BYTES = 64 * 1024
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._/-]{0,63}")
_PREFIX = re.compile(r"[0-9]{6,12}")
# GS1 prefixes that never start a company prefix one may build SSCCs from.
_NOT_COMPANY = ("restricted circulation", "coupon", "refund", "issn", "isbn", "ismn")

EDITABLE = (
    "serial_sources",
    "sscc_sources",
    "manufacturing_percentage",
    "discrepancy_tolerance",
    "aggregation_rules",
    "erp_url",
    "erp_token",
    "erp_interval_s",
)
# Shown by `show`/GET and accepted back (ignored) so an export imports unchanged.
READ_ONLY = ("org", "erp_token_set", "is_default", "updated_at", "updated_by")

DEFAULTS: dict[str, Any] = {
    "serial_sources": [{"name": kind, "kind": kind, "enabled": True} for kind in SERIAL_KINDS],
    "sscc_sources": [],
    "manufacturing_percentage": 0.0,
    "discrepancy_tolerance": 0.0,
    "aggregation_rules": {
        "l1": {"enabled": True, "multiplier": 1},
        "l2": {"enabled": False, "multiplier": 10},
        "l3": {"enabled": False, "multiplier": 100},
        "l4": {"enabled": False, "multiplier": 1000},
    },
    "erp_url": None,
    "erp_interval_s": None,
}


class _Problems:
    """Every problem found, by field, in the order found."""

    def __init__(self) -> None:
        self.details: dict[str, list[str]] = {}

    def add(self, field: str, message: str) -> None:
        self.details.setdefault(field, []).append(message)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    if _is_int(value):
        return True  # any size: ranges are checked after (math.isfinite overflows on 10**400)
    return isinstance(value, float) and math.isfinite(value)


def _text(value: Any, field: str, p: _Problems, max_len: int) -> str | None:
    if not isinstance(value, str):
        p.add(field, "Must be a string")
        return None
    if not value or len(value) > max_len:
        p.add(field, f"Must be 1-{max_len} characters")
        return None
    bad = unsafe_character(value)
    if bad is not None or "\x00" in value:
        p.add(field, f"Must not contain the control character {bad or 'U+0000'}")
        return None
    return value


def _keys(value: dict[str, Any], allowed: tuple[str, ...], field: str, p: _Problems) -> None:
    for key in list(value)[:20]:
        if key not in allowed:
            shown = key[:40] if isinstance(key, str) else repr(key)[:40]
            p.add(f"{field}.{shown}" if field else shown, "Unknown field")


def _percentage(value: Any, field: str, p: _Problems) -> float | None:
    if not _is_number(value):
        p.add(field, "Must be a number")
        return None
    if not 0 <= value <= 100:
        p.add(field, "Value must be between 0 and 100")
        return None
    if round(float(value), 2) != value:
        p.add(field, "At most two decimal places")
        return None
    return float(value)


def _serial_sources(value: Any, p: _Problems) -> list[dict[str, Any]]:
    field = "serial_sources"
    if not isinstance(value, list):
        p.add(field, "Must be a list")
        return []
    if len(value) > MAX_SOURCES:
        p.add(field, f"At most {MAX_SOURCES} sources")
        return []
    out, names = [], set()
    for i, item in enumerate(value):
        where = f"{field}[{i}]"
        if not isinstance(item, dict):
            p.add(where, "Must be an object with name, kind and enabled")
            continue
        _keys(item, ("name", "kind", "enabled"), where, p)
        name = _name(item.get("name"), f"{where}.name", p, names)
        kind = item.get("kind")
        if kind not in SERIAL_KINDS:
            p.add(f"{where}.kind", f"Must be one of {', '.join(SERIAL_KINDS)}")
        enabled = item.get("enabled", True)
        if not isinstance(enabled, bool):
            p.add(f"{where}.enabled", "Must be true or false")
        if name is not None and kind in SERIAL_KINDS and isinstance(enabled, bool):
            out.append({"name": name, "kind": kind, "enabled": enabled})
    return out


def _name(value: Any, field: str, p: _Problems, seen: set[str]) -> str | None:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        p.add(
            field,
            "Must be 1-64 of letters, digits, space . _ / - (starting with a letter or digit)",
        )
        return None
    if value.lower() in seen:
        p.add(field, f"Name {value!r} is used twice")
        return None
    seen.add(value.lower())
    return value


def company_prefix_problem(prefix: Any) -> str | None:
    """Return why a text is not a GS1 company prefix one can build SSCCs from, or None."""
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
        return "A GS1 company prefix is 6-12 digits"
    gs1_prefix = GS1Prefix.extract(prefix)
    if gs1_prefix is None:
        return f"{prefix[:3]} is not a GS1 prefix assigned to a GS1 member organisation"
    usage = gs1_prefix.usage.lower()
    if any(word in usage for word in _NOT_COMPANY):
        return f"GS1 prefix {gs1_prefix.value} is for {gs1_prefix.usage}, not company numbers"
    return None


def _sscc_sources(value: Any, p: _Problems) -> list[dict[str, Any]]:
    field = "sscc_sources"
    if not isinstance(value, list):
        p.add(field, "Must be a list")
        return []
    if len(value) > MAX_SOURCES:
        p.add(field, f"At most {MAX_SOURCES} sources")
        return []
    out, names, ranges = [], set(), set()
    for i, item in enumerate(value):
        where = f"{field}[{i}]"
        if not isinstance(item, dict):
            p.add(where, "Must be an object with name, company_prefix, extension_digit, enabled")
            continue
        _keys(item, ("name", "company_prefix", "extension_digit", "enabled"), where, p)
        name = _name(item.get("name"), f"{where}.name", p, names)
        prefix, ext = item.get("company_prefix"), item.get("extension_digit")
        problem = company_prefix_problem(prefix)
        if problem:
            p.add(f"{where}.company_prefix", problem)
        if not _is_int(ext) or not 0 <= ext <= 9:
            p.add(f"{where}.extension_digit", "Must be a whole number 0-9")
            ext = None
        enabled = item.get("enabled", True)
        if not isinstance(enabled, bool):
            p.add(f"{where}.enabled", "Must be true or false")
        if problem or ext is None or name is None or not isinstance(enabled, bool):
            continue
        if (prefix, ext) in ranges:
            p.add(where, f"Company prefix {prefix} with extension digit {ext} is listed twice")
            continue
        ranges.add((prefix, ext))
        # The first SSCC of the range, read back by biip: the source can build valid SSCCs.
        Sscc.parse(build_sscc(ext, prefix, 0))
        out.append(
            {"name": name, "company_prefix": prefix, "extension_digit": ext, "enabled": enabled}
        )
    return out


def _aggregation(value: Any, p: _Problems) -> dict[str, dict[str, Any]]:
    field = "aggregation_rules"
    if not isinstance(value, dict):
        p.add(field, "Must be an object with l1..l4")
        return {}
    _keys(value, LEVELS, field, p)
    out: dict[str, dict[str, Any]] = {}
    for level in LEVELS:
        where = f"{field}.{level}"
        rule = value.get(level, DEFAULTS[field][level])  # absent: as by default
        if not isinstance(rule, dict):
            p.add(where, "Must be an object with enabled and multiplier")
            continue
        _keys(rule, ("enabled", "multiplier"), where, p)
        enabled, multiplier = rule.get("enabled", False), rule.get("multiplier")
        good = True
        if not isinstance(enabled, bool):
            p.add(f"{where}.enabled", "Must be true or false")
            good = False
        if not _is_int(multiplier) or not 1 <= multiplier <= MAX_MULTIPLIER:
            p.add(f"{where}.multiplier", f"Must be a whole number 1-{MAX_MULTIPLIER:,}")
            good = False
        if good:
            out[level] = {"enabled": enabled, "multiplier": multiplier}
    l1 = out.get("l1")
    if l1 is not None and (not l1["enabled"] or l1["multiplier"] != 1):
        p.add(f"{field}.l1", "Level l1 is the unit: enabled with multiplier 1")
    below: tuple[str, int] | None = None
    for level in LEVELS:
        rule = out.get(level)
        if rule is None or not rule["enabled"]:
            continue
        if below is not None:
            name, size = below
            m = rule["multiplier"]
            if m <= size or m % size:
                p.add(
                    f"{field}.{level}.multiplier",
                    f"Must be a multiple of {name}'s {size} greater than it (e.g. {size * 2})",
                )
        below = (level, rule["multiplier"])
    return out


def _erp_url(value: Any, p: _Problems) -> str | None:
    if value is None:
        return None
    text = _text(value, "erp_url", p, MAX_URL)
    if text is None:
        return None
    try:
        parts = urlsplit(text)
        host, _port = parts.hostname, parts.port  # port raises on a bad one
    except ValueError:
        p.add("erp_url", "Must be an http or https URL")
        return None
    if parts.scheme not in ("http", "https") or not host or " " in text:
        p.add("erp_url", "Must be an http or https URL")
        return None
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        p.add("erp_url", "Must not hold credentials: set erp_token instead")
        return None
    secret = [k for k, _ in parse_qsl(parts.query, keep_blank_values=True) if _SECRET.search(k)]
    if secret:
        p.add(
            "erp_url",
            f"Must not hold a secret in its query ({', '.join(sorted(set(secret)))[:80]}): "
            "set erp_token instead, it is sent as a bearer token and never shown",
        )
        return None
    problem = _host_problem(host, parts.scheme)
    if problem:
        p.add("erp_url", problem)
        return None
    return text


# Query parameters that look like secrets: they would be shown, exported and audited.
_SECRET = re.compile(r"token|key|secret|pass|auth|sig|cred", re.IGNORECASE)


def _host_problem(host: str, scheme: str) -> str | None:
    """Refuse link-local hosts (cloud metadata services), and plain http beyond this site:
    the bearer token would cross networks in clear."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None and (address.is_link_local or address.is_multicast):
        return "Must not be a link-local or multicast address"
    if scheme == "http":
        local = host == "localhost" or host.endswith((".local", ".lan", ".internal"))
        if address is not None:
            local = address.is_loopback or address.is_private
        if not local:
            return (
                "Must use https for an ERP outside this site (plain http would carry the "
                "token in clear); http is allowed to localhost and private addresses"
            )
    return None


def _erp_interval(value: Any, p: _Problems) -> int | None:
    if value is None:
        return None
    if not _is_int(value) or not MIN_INTERVAL_S <= value <= MAX_INTERVAL_S:
        p.add(
            "erp_interval_s",
            f"Must be null or a whole number of seconds {MIN_INTERVAL_S}-{MAX_INTERVAL_S}",
        )
        return None
    return int(value)


KEEP = object()  # erp_token absent from a document: keep the stored one


def validate(document: Any) -> dict[str, Any]:
    """Return a full configuration document checked and normalised, or raise ERR_VALIDATION
    with every problem found; `erp_token` is the new secret, None to clear, KEEP if absent."""
    p = _Problems()
    if not isinstance(document, dict):
        raise ValidationFailed(
            "send the configuration as a JSON object", {"": ["Must be an object"]}
        )
    _keys(document, EDITABLE + READ_ONLY, "", p)
    out: dict[str, Any] = {}
    for name in EDITABLE:
        if name not in document and name != "erp_token":
            p.add(name, "Required")
    if "serial_sources" in document:
        out["serial_sources"] = _serial_sources(document["serial_sources"], p)
    if "sscc_sources" in document:
        out["sscc_sources"] = _sscc_sources(document["sscc_sources"], p)
    for name in ("manufacturing_percentage", "discrepancy_tolerance"):
        if name in document:
            out[name] = _percentage(document[name], name, p)
    if "aggregation_rules" in document:
        out["aggregation_rules"] = _aggregation(document["aggregation_rules"], p)
    out["erp_url"] = _erp_url(document.get("erp_url"), p)
    out["erp_interval_s"] = _erp_interval(document.get("erp_interval_s"), p)
    token = document.get("erp_token", KEEP)
    if token is not KEEP and token is not None:
        token = _text(token, "erp_token", p, MAX_TOKEN)
    out["erp_token"] = token
    if out.get("erp_interval_s") is not None and not out.get("erp_url"):
        p.add("erp_interval_s", "A scheduled pull needs erp_url")
    if p.details:
        count = sum(len(v) for v in p.details.values())
        raise ValidationFailed(f"the configuration has {count} problem(s); see details", p.details)
    return out


def _row(conn: Connection, tenant_id: int) -> Row[Any] | None:
    gc = T.generation_config
    return conn.execute(sa.select(gc).where(gc.c.tenant_id == tenant_id)).first()


def _public(org: str, row: Row[Any] | None) -> dict[str, Any]:
    if row is None:
        return {
            "org": org,
            **copy.deepcopy(DEFAULTS),
            "erp_token_set": False,
            "is_default": True,
            "updated_at": None,
            "updated_by": None,
        }
    return {
        "org": org,
        "serial_sources": json.loads(row.serial_sources),
        "sscc_sources": json.loads(row.sscc_sources),
        "manufacturing_percentage": float(row.manufacturing_percentage),
        "discrepancy_tolerance": float(row.discrepancy_tolerance),
        "aggregation_rules": json.loads(row.aggregation_rules),
        "erp_url": row.erp_url,
        "erp_token_set": bool(row.erp_token),
        "erp_interval_s": row.erp_interval_s,
        "is_default": False,
        "updated_at": as_utc(row.updated_at).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "updated_by": row.updated_by,
    }


def load(conn: Connection, org: str) -> dict[str, Any]:
    """Return a tenant's configuration as shown (the defaults with `is_default` if unset)."""
    tenant = tenant_by_org(conn, org)
    return _public(tenant.org_code, _row(conn, tenant.id))


def rules_for_tenant(conn: Connection, tenant_id: int) -> dict[str, dict[str, Any]]:
    """Return a tenant's aggregation rules (the defaults if it has no configuration)."""
    row = _row(conn, tenant_id)
    rules: dict[str, dict[str, Any]] = (
        copy.deepcopy(DEFAULTS["aggregation_rules"])
        if row is None
        else json.loads(row.aggregation_rules)
    )
    return rules


def erp_token(conn: Connection, org: str) -> str | None:
    """Return the tenant's ERP token for the ERP client (never for display)."""
    row = _row(conn, tenant_by_org(conn, org).id)
    return None if row is None else row.erp_token


def _merged(current: dict[str, Any], patch: Any) -> dict[str, Any]:
    if not isinstance(patch, dict):
        raise ValidationFailed("send the changes as a JSON object", {"": ["Must be an object"]})
    base = {k: v for k, v in current.items() if k in EDITABLE}
    return {**base, **patch}


def save(
    store: Store,
    org: str,
    document: Any,
    actor: str,
    now: dt.datetime,
    *,
    partial: bool = False,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Validate and store a tenant's configuration with its audit and history rows (one
    transaction); `partial` merges top-level fields onto the current configuration;
    `dry_run` validates and answers what would change without writing anything."""
    if dry_run:
        with store.read() as conn:
            return _plan(store, conn, org, document, actor, now, partial)[0]
    with store.write() as conn:
        result, values, tenant_id = _plan(store, conn, org, document, actor, now, partial)
        store.upsert(conn, T.generation_config, ["tenant_id"], values)
        details = {k: result[k] for k in ("before", "after", "changed")}
        audit.record(
            conn,
            actor,
            "generation_config.update",
            f"generation_config:{result['after']['org']}",
            now,
            None,
            details,
            tenant_id,
        )
        genhistory.record(
            conn,
            tenant_id=tenant_id,
            action="config_update",
            status="completed",
            actor=actor,
            now=now,
            details=details,
        )
    return {**result, "dry_run": False}


def unwrap(document: Any) -> Any:
    """Return the configuration inside a `GET config` answer (`{"ok", "config"}`), so what
    one GETs can be PUT back as is; any other document is returned unchanged."""
    if isinstance(document, dict) and set(document) == {"ok", "config"}:
        return document["config"]
    return document


def _check_sscc_owners(conn: Connection, tenant_id: int, sources: list[dict[str, Any]]) -> None:
    """Refuse SSCC sources another tenant numbers already (ERR_VALIDATION, by field).

    A company prefix + extension digit's `number_counters` row (`sscc:<ext>:<prefix>`)
    belongs to the tenant that generated from it first; another tenant listing it would only
    find out when a generation task fails with ERR_SCOPE_FOREIGN. Two tenants may still both
    list a range neither has generated from (an export imports into another tenant unchanged):
    the first to generate owns it, and the other's next save or generation is refused.
    """
    if not sources:
        return
    p = _Problems()
    keys = {f"sscc:{s['extension_digit']}:{s['company_prefix']}": i for i, s in enumerate(sources)}
    nc = T.number_counters.c
    numbered = conn.execute(
        sa.select(nc.key).where(nc.key.in_(list(keys)), nc.tenant_id != tenant_id)
    ).scalars()
    for key in sorted(numbered):
        i = keys[key]
        p.add(
            f"sscc_sources[{i}].company_prefix",
            f"Company prefix {sources[i]['company_prefix']} with extension digit "
            f"{sources[i]['extension_digit']} is numbered by another tenant: use your own "
            "company prefix or another extension digit",
        )
    if p.details:
        count = sum(len(v) for v in p.details.values())
        raise ValidationFailed(f"the configuration has {count} problem(s); see details", p.details)


def _plan(
    store: Store,
    conn: Connection,
    org: str,
    document: Any,
    actor: str,
    now: dt.datetime,
    partial: bool,
) -> tuple[dict[str, Any], dict[str, Any], int]:
    tenant = tenant_by_org(conn, org)
    gc = T.generation_config
    row = conn.execute(store.lock_row(sa.select(gc).where(gc.c.tenant_id == tenant.id))).first()
    before = _public(tenant.org_code, row)
    document = unwrap(document)
    checked = validate(_merged(before, document) if partial else document)
    _check_sscc_owners(conn, int(tenant.id), checked["sscc_sources"])
    token = checked.pop("erp_token")
    old_token = None if row is None else row.erp_token
    if token is KEEP:
        token = old_token
    values = {
        "tenant_id": tenant.id,
        "serial_sources": json.dumps(checked["serial_sources"]),
        "sscc_sources": json.dumps(checked["sscc_sources"]),
        "manufacturing_percentage": checked["manufacturing_percentage"],
        "discrepancy_tolerance": checked["discrepancy_tolerance"],
        "aggregation_rules": json.dumps(checked["aggregation_rules"], sort_keys=True),
        "erp_url": checked["erp_url"],
        "erp_token": token,
        "erp_interval_s": checked["erp_interval_s"],
        "updated_at": now,
        "updated_by": actor[:128],
    }
    after = {
        "org": tenant.org_code,
        **checked,
        "erp_token_set": bool(token),
        "is_default": False,
        "updated_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "updated_by": actor[:128],
    }
    changed = sorted(k for k in EDITABLE if k != "erp_token" and before.get(k) != after.get(k))
    if old_token != token:
        changed.append("erp_token")  # that it changed, never what it is
    result = {"ok": True, "dry_run": True, "before": before, "after": after, "changed": changed}
    return result, values, int(tenant.id)


def history(conn: Connection, org: str, limit: int = 50) -> list[dict[str, Any]]:
    """Return the tenant's configuration changes, newest first."""
    tenant = tenant_by_org(conn, org)
    h = T.generation_history
    rows = conn.execute(
        sa.select(h.c.id, h.c.created_at, h.c.actor, h.c.status, h.c.details)
        .where(h.c.tenant_id == tenant.id, h.c.action == "config_update")
        .order_by(h.c.id.desc())
        .limit(max(1, min(limit, 500)))
    )
    return [
        {
            "id": r.id,
            "at": as_utc(r.created_at).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "actor": r.actor,
            "status": r.status,
            "changed": json.loads(r.details).get("changed", []),
            "before": json.loads(r.details).get("before"),
            "after": json.loads(r.details).get("after"),
        }
        for r in rows
    ]


# --- What a work order needs -------------------------------------------------------------


def needs(quantity: int, overage_pct: float, rules: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Return how many serials each enabled level needs and how many SSCCs in all."""
    if not _is_int(quantity) or not 1 <= quantity <= MAX_QUANTITY:
        raise ValueError(f"quantity must be 1..{MAX_QUANTITY:,}")
    if not _is_number(overage_pct) or not 0 <= overage_pct <= 100:
        raise ValueError("overage must be 0..100 %")
    units = allowed_serials(quantity, overage_pct)
    levels: dict[str, dict[str, int]] = {"l1": {"multiplier": 1, "count": units}}
    for level in LEVELS[1:]:
        rule = rules.get(level) or {}
        if rule.get("enabled"):
            multiplier = int(rule["multiplier"])
            levels[level] = {"multiplier": multiplier, "count": -(-units // multiplier)}
    sscc = sum(v["count"] for k, v in levels.items() if k != "l1")
    return {
        "quantity": quantity,
        "overage_pct": overage_pct,
        "units": units,
        "levels": levels,
        "sscc": sscc,
        "sscc_requests": -(-sscc // SSCC_PER_REQUEST),
    }


def needs_for_work_order(conn: Connection, work_order: Row[Any]) -> dict[str, Any]:
    """Return `needs` for a work order row (its quantity and overage, its tenant's rules)."""
    rules = rules_for_tenant(conn, work_order.tenant_id)
    return needs(int(work_order.quantity), float(work_order.overage_pct), rules)
