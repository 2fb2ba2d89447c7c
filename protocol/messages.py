"""Request and response bodies of the edge API (`/api/edge/v1/`), with strict decoders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from protocol import schema
from protocol.errors import ERR_SCHEMA, ProtocolError
from protocol.ids import parse_uuid7
from protocol.keys import lease_key_from_hex
from protocol.serials import MAX_SEQ, Scope
from protocol.timefmt import format_ts, parse_ts

MAX_LEASE_SIZE = MAX_SEQ
PRODUCTION_TYPES = ("HAT", "OEM")


@dataclass(frozen=True, slots=True)
class EnrollRequest:
    """An agent presents a one-time enrollment code."""

    code: str
    hostname: str | None = None
    agent_version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the wire form."""
        out: dict[str, Any] = {"v": 1, "code": self.code}
        if self.hostname:
            out["hostname"] = self.hostname
        if self.agent_version:
            out["agent_version"] = self.agent_version
        return out

    @classmethod
    def from_dict(cls, value: object) -> EnrollRequest:
        """Validate and decode the wire form."""
        o = schema.obj(value)
        schema.version(o)
        return cls(
            code=schema.string(o, "code", max_len=64),
            hostname=schema.string(o, "hostname", max_len=128, optional=True),
            agent_version=schema.string(o, "agent_version", max_len=32, optional=True),
        )


@dataclass(frozen=True, slots=True)
class EnrollResponse:
    """Central's answer to an enrollment: who the agent is and its bearer token."""

    agent_id: str
    token: str
    org: str
    line: str
    tenant_name: str

    def to_dict(self) -> dict[str, Any]:
        """Return the wire form."""
        return {
            "ok": True,
            "agent_id": self.agent_id,
            "token": self.token,
            "org": self.org,
            "line": self.line,
            "tenant_name": self.tenant_name,
        }

    @classmethod
    def from_dict(cls, value: object) -> EnrollResponse:
        """Validate and decode the wire form."""
        o = schema.obj(value)
        return cls(
            agent_id=schema.string(o, "agent_id", max_len=64),
            token=schema.string(o, "token", max_len=128),
            org=schema.string(o, "org", max_len=6),
            line=schema.string(o, "line", max_len=64),
            tenant_name=schema.string(o, "tenant_name", max_len=256),
        )


@dataclass(frozen=True, slots=True)
class LeaseRequest:
    """Ask for `size` numbers of `scope`; `request_id` makes a retried request idempotent."""

    request_id: str
    scope: Scope
    size: int

    def to_dict(self) -> dict[str, Any]:
        """Return the wire form."""
        return {"v": 1, "request_id": self.request_id, "scope": self.scope.key, "size": self.size}

    @classmethod
    def from_dict(cls, value: object) -> LeaseRequest:
        """Validate and decode the wire form."""
        o = schema.obj(value)
        schema.version(o)
        return cls(
            request_id=parse_uuid7(o.get("request_id")),
            scope=Scope.from_key(o.get("scope")),
            size=schema.integer(o, "size", lo=1, hi=MAX_LEASE_SIZE),
        )


@dataclass(frozen=True, slots=True)
class LeaseGrant:
    """A block `[first, last]` of one scope, with the key that authenticates its serials."""

    lease_id: str
    scope: Scope
    first: int
    last: int
    key: bytes = field(repr=False)
    key_version: int
    expires_at: str

    @property
    def size(self) -> int:
        """Return how many numbers the lease holds."""
        return self.last - self.first + 1

    def to_dict(self) -> dict[str, Any]:
        """Return the wire form (the key in hex)."""
        return {
            "lease_id": self.lease_id,
            "scope": self.scope.key,
            "first": self.first,
            "last": self.last,
            "key": self.key.hex(),
            "key_version": self.key_version,
            "expires_at": self.expires_at,
        }

    @classmethod
    def from_dict(cls, value: object) -> LeaseGrant:
        """Validate and decode the wire form."""
        o = schema.obj(value, "lease")
        first = schema.integer(o, "first", lo=1, hi=MAX_SEQ)
        last = schema.integer(o, "last", lo=1, hi=MAX_SEQ)
        if last < first:
            raise ProtocolError(ERR_SCHEMA, "lease last must not be below first")
        return cls(
            lease_id=schema.string(o, "lease_id", max_len=64),
            scope=Scope.from_key(o.get("scope")),
            first=first,
            last=last,
            key=lease_key_from_hex(o.get("key")),
            key_version=schema.integer(o, "key_version", lo=1, hi=1_000_000),
            expires_at=format_ts(parse_ts(o.get("expires_at"))),
        )


@dataclass(frozen=True, slots=True)
class LeaseResponse:
    """Central's answer to a lease request; a partial grant says `fulfilled: false`."""

    request_id: str
    requested: int
    leases: tuple[LeaseGrant, ...]

    @property
    def granted(self) -> int:
        """Return how many numbers were granted in all."""
        return sum(lease.size for lease in self.leases)

    @property
    def fulfilled(self) -> bool:
        """Tell whether the whole request was granted."""
        return self.granted >= self.requested

    def to_dict(self) -> dict[str, Any]:
        """Return the wire form."""
        return {
            "ok": True,
            "request_id": self.request_id,
            "requested": self.requested,
            "granted": self.granted,
            "fulfilled": self.fulfilled,
            "leases": [lease.to_dict() for lease in self.leases],
        }

    @classmethod
    def from_dict(cls, value: object) -> LeaseResponse:
        """Validate and decode the wire form."""
        o = schema.obj(value)
        raw = o.get("leases")
        if not isinstance(raw, list) or len(raw) > 100:
            raise ProtocolError(ERR_SCHEMA, "leases must be a list")
        return cls(
            request_id=parse_uuid7(o.get("request_id")),
            requested=schema.integer(o, "requested", lo=1, hi=MAX_LEASE_SIZE),
            leases=tuple(LeaseGrant.from_dict(item) for item in raw),
        )


@dataclass(frozen=True, slots=True)
class LeaseReturn:
    """An agent gives back the unused tail of a lease: numbers above `high_water` stay unused."""

    high_water: int

    def to_dict(self) -> dict[str, Any]:
        """Return the wire form."""
        return {"v": 1, "high_water": self.high_water}

    @classmethod
    def from_dict(cls, value: object) -> LeaseReturn:
        """Validate and decode the wire form (0 means no number was used)."""
        o = schema.obj(value)
        schema.version(o)
        return cls(high_water=schema.integer(o, "high_water", lo=0, hi=MAX_SEQ))


@dataclass(frozen=True, slots=True)
class WorkOrderInfo:
    """What an agent needs to know about a work order to issue and print for it."""

    number: str
    sku: str
    product_name: str
    category: str
    ptype: str
    quantity: int
    status: str
    gtin: str | None = None
    label_template: str = "default"
    # quantity x (1 + overage %): the most serials the work order may consume on all lines
    # (None: no limit, as from a central of release 0.2)
    allowed: int | None = None
    consumed_elsewhere: int = 0  # serials of it central has from the tenant's other lines

    def to_dict(self) -> dict[str, Any]:
        """Return the wire form."""
        out = {
            "number": self.number,
            "sku": self.sku,
            "product_name": self.product_name,
            "category": self.category,
            "type": self.ptype,
            "quantity": self.quantity,
            "status": self.status,
            "gtin": self.gtin,
            "label_template": self.label_template,
        }
        if self.allowed is not None:
            out["allowed"] = self.allowed
            out["consumed_elsewhere"] = self.consumed_elsewhere
        return out

    @classmethod
    def from_dict(cls, value: object) -> WorkOrderInfo:
        """Validate and decode the wire form."""
        o = schema.obj(value, "work order")
        ptype = o.get("type")
        if ptype not in PRODUCTION_TYPES:
            raise ProtocolError(ERR_SCHEMA, f"work order type must be one of {PRODUCTION_TYPES}")
        return cls(
            number=schema.string(o, "number", max_len=64),
            sku=schema.string(o, "sku", max_len=64),
            product_name=schema.string(o, "product_name", max_len=256),
            category=schema.string(o, "category", max_len=4),
            ptype=ptype,
            quantity=schema.integer(o, "quantity", lo=0, hi=10_000_000),
            status=schema.string(o, "status", max_len=32),
            gtin=schema.string(o, "gtin", max_len=14, optional=True),
            label_template=schema.string(o, "label_template", max_len=64, optional=True)
            or "default",
            allowed=schema.integer(o, "allowed", lo=0, hi=100_000_000, optional=True),
            consumed_elsewhere=schema.integer(
                o, "consumed_elsewhere", lo=0, hi=100_000_000, optional=True
            )
            or 0,
        )


MAX_TEMPLATES = 100
MAX_TEMPLATE_KEYS = 64


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """`GET /api/edge/v1/config`: the line's work orders, flags and label settings."""

    agent_id: str
    org: str
    line: str
    tenant_name: str
    timezone: str
    verify_base_url: str
    work_orders: tuple[WorkOrderInfo, ...]
    flags: dict[str, str]
    label_templates: dict[str, dict[str, Any]]  # by name; always holds "default"

    def to_dict(self) -> dict[str, Any]:
        """Return the wire form."""
        return {
            "ok": True,
            "v": 1,
            "agent_id": self.agent_id,
            "org": self.org,
            "line": self.line,
            "tenant_name": self.tenant_name,
            "timezone": self.timezone,
            "verify_base_url": self.verify_base_url,
            "work_orders": [w.to_dict() for w in self.work_orders],
            "flags": dict(self.flags),
            "label_templates": {k: dict(v) for k, v in self.label_templates.items()},
        }

    @classmethod
    def from_dict(cls, value: object) -> AgentConfig:
        """Validate and decode the wire form."""
        o = schema.obj(value)
        schema.version(o)
        wos = o.get("work_orders")
        if not isinstance(wos, list) or len(wos) > 10_000:
            raise ProtocolError(ERR_SCHEMA, "work_orders must be a list")
        flags = schema.flat_data(o.get("flags"), "flags")
        raw_templates = schema.obj(o.get("label_templates") or {}, "label_templates")
        if len(raw_templates) > MAX_TEMPLATES:
            raise ProtocolError(ERR_SCHEMA, f"at most {MAX_TEMPLATES} label templates")
        templates: dict[str, dict[str, Any]] = {}
        for name, body in raw_templates.items():
            if not isinstance(name, str) or not 1 <= len(name) <= 64 or not name.isprintable():
                raise ProtocolError(ERR_SCHEMA, "label template names are 1-64 characters")
            body = schema.obj(body, f"label_templates.{name}")
            if len(body) > MAX_TEMPLATE_KEYS:
                raise ProtocolError(ERR_SCHEMA, f"label template {name} has too many settings")
            templates[name] = dict(body)
        templates.setdefault("default", {})
        return cls(
            agent_id=schema.string(o, "agent_id", max_len=64),
            org=schema.string(o, "org", max_len=6),
            line=schema.string(o, "line", max_len=64),
            tenant_name=schema.string(o, "tenant_name", max_len=256),
            timezone=schema.string(o, "timezone", max_len=64),
            verify_base_url=schema.string(o, "verify_base_url", max_len=512),
            work_orders=tuple(WorkOrderInfo.from_dict(w) for w in wos),
            flags={k: str(v) for k, v in flags.items()},
            label_templates=templates,
        )
