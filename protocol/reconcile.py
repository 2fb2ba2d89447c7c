"""Reconcile: the agent and central compare what they know about each lease.

Per lease the agent sends its high-water mark and, in a full reconcile, its counts of
delivered events per type, a digest of their event ids and a digest of its link records.
The id digest is bucketed: every event id falls in one of `BUCKETS` buckets by its hash, and a
bucket's digest is the count of its ids and the XOR of their 128-bit hashes. XOR is order-free
and can be folded incrementally, so the agent keeps the digest of events it has pruned, and a
missing or extra id changes its bucket's digest (barring a 2^-128 accident). Central answers,
per lease, its own high-water mark and status, whether counts and digests agree, and for the
buckets that differ the ids it holds there, so the agent re-sends exactly what central lacks.

A "marks" reconcile carries high-water marks only: the cheap, frequent report that bounds what
a line PC restored from an older copy of its database could hand out twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from protocol import schema
from protocol.errors import ERR_SCHEMA, ProtocolError
from protocol.lifecycle import EVENT_TYPES
from protocol.messages import LeaseGrant
from protocol.serials import MAX_SEQ
from protocol.timefmt import format_ts, parse_ts

BUCKETS = 64
MAX_LEASES = 1000  # leases in one reconcile
MAX_IDS = 50_000  # event ids central lists in one answer
MAX_COUNT = 10**9
FULL = "full"
MARKS = "marks"
LEASE_STATUSES = ("active", "returned", "expired", "revoked", "unknown")
_MASK = (1 << 128) - 1


def _hash(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def bucket_of(event_id: str) -> int:
    """Return the bucket an event id belongs to."""
    return _hash(event_id)[0] % BUCKETS


@dataclass
class Digest:
    """Count and XOR of 128-bit hashes per bucket; equal sets give equal digests."""

    counts: dict[int, int] = field(default_factory=dict)
    xors: dict[int, int] = field(default_factory=dict)

    def add(self, event_id: str) -> None:
        """Fold one id in."""
        h = _hash(event_id)
        b = h[0] % BUCKETS
        self.counts[b] = self.counts.get(b, 0) + 1
        self.xors[b] = self.xors.get(b, 0) ^ int.from_bytes(h[1:17], "big")

    def add_all(self, event_ids: Iterable[str]) -> Digest:
        """Fold many ids in; return self."""
        for event_id in event_ids:
            self.add(event_id)
        return self

    def merge(self, other: Digest) -> Digest:
        """Fold another digest in (the union of two disjoint sets); return self."""
        for b, n in other.counts.items():
            self.counts[b] = self.counts.get(b, 0) + n
            self.xors[b] = self.xors.get(b, 0) ^ other.xors.get(b, 0)
        return self

    @property
    def total(self) -> int:
        """Return how many ids were folded in."""
        return sum(self.counts.values())

    def differing(self, other: Digest) -> list[int]:
        """Return the buckets whose count or XOR differ, in order."""
        buckets = set(self.counts) | set(other.counts)
        return sorted(
            b
            for b in buckets
            if self.counts.get(b, 0) != other.counts.get(b, 0)
            or self.xors.get(b, 0) != other.xors.get(b, 0)
        )

    def to_wire(self) -> dict[str, str]:
        """Return `{"bucket": "count:xorhex"}` for the non-empty buckets."""
        return {
            str(b): f"{self.counts[b]}:{self.xors.get(b, 0):032x}"
            for b in sorted(self.counts)
            if self.counts[b]
        }

    @classmethod
    def from_wire(cls, value: object, where: str = "buckets") -> Digest:
        """Validate and decode the wire form."""
        o = schema.obj(value, where)
        if len(o) > BUCKETS:
            raise ProtocolError(ERR_SCHEMA, f"{where} has more than {BUCKETS} buckets")
        digest = cls()
        for key, item in o.items():
            bucket = _bucket_key(key, where)
            count, xor = _count_xor(item, f"{where}.{key}")
            if count:
                digest.counts[bucket] = count
                digest.xors[bucket] = xor
        return digest


def _bucket_key(key: object, where: str) -> int:
    if not isinstance(key, str) or not key.isdigit() or len(key) > 2 or int(key) >= BUCKETS:
        raise ProtocolError(ERR_SCHEMA, f"{where} keys are bucket numbers 0-{BUCKETS - 1}")
    return int(key)


def _count_xor(item: object, where: str) -> tuple[int, int]:
    if not isinstance(item, str) or len(item) > 64 or item.count(":") != 1:
        raise ProtocolError(ERR_SCHEMA, f"{where} must be 'count:xorhex'")
    count_text, xor_text = item.split(":")
    if not count_text.isdigit() or len(count_text) > 10 or int(count_text) > MAX_COUNT:
        raise ProtocolError(ERR_SCHEMA, f"{where} has a bad count")
    if len(xor_text) != 32 or any(c not in "0123456789abcdef" for c in xor_text):
        raise ProtocolError(ERR_SCHEMA, f"{where} has a bad digest (32 lowercase hex digits)")
    return int(count_text), int(xor_text, 16)


def link_record(serial: str, job_ticket: str | None, token: str | None, wo: str | None) -> str:
    """Return the text one link record is digested as."""
    return "\x1f".join((serial, job_ticket or "", token or "", wo or ""))


def link_digest(records: Iterable[str]) -> str:
    """Return `count:xorhex` over link records (order-free)."""
    count, xor = 0, 0
    for record in records:
        count += 1
        xor ^= int.from_bytes(_hash(record)[:16], "big")
    return f"{count}:{xor & _MASK:032x}"


def _counts(value: object, where: str) -> dict[str, int]:
    o = schema.obj(value, where)
    out: dict[str, int] = {}
    for key, n in o.items():
        if key not in EVENT_TYPES:
            raise ProtocolError(ERR_SCHEMA, f"{where} keys are event types")
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= MAX_COUNT:
            raise ProtocolError(ERR_SCHEMA, f"{where}.{key} must be a count")
        out[key] = n
    return out


@dataclass(frozen=True, slots=True)
class LeaseReport:
    """What the agent knows about one lease it holds or held."""

    lease_id: str
    high_water: int  # the highest number it used (first - 1: none yet)
    counts: Mapping[str, int] | None = None  # delivered events per type (full reconcile)
    buckets: Digest | None = None  # digest of delivered event ids (full reconcile)
    links: str | None = None  # link_digest of its link records (full reconcile)

    def to_dict(self) -> dict[str, Any]:
        """Return the wire form."""
        out: dict[str, Any] = {"lease_id": self.lease_id, "high_water": self.high_water}
        if self.counts is not None:
            out["counts"] = dict(self.counts)
        if self.buckets is not None:
            out["buckets"] = self.buckets.to_wire()
        if self.links is not None:
            out["links"] = self.links
        return out

    @classmethod
    def from_dict(cls, value: object) -> LeaseReport:
        """Validate and decode the wire form."""
        o = schema.obj(value, "lease report")
        links = o.get("links")
        if links is not None:
            _count_xor(links, "links")
        return cls(
            lease_id=schema.string(o, "lease_id", max_len=64),
            high_water=schema.integer(o, "high_water", lo=0, hi=MAX_SEQ),
            counts=None if o.get("counts") is None else _counts(o["counts"], "counts"),
            buckets=None if o.get("buckets") is None else Digest.from_wire(o["buckets"]),
            links=links,
        )


def _outbox(value: object) -> dict[str, float]:
    o = schema.obj(value, "outbox")
    out: dict[str, float] = {}
    for key in ("pending", "dead", "oldest_pending_age_s"):
        item = o.get(key)
        if item is None:
            continue
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            raise ProtocolError(ERR_SCHEMA, f"outbox.{key} must be a number")
        if not 0 <= item <= 10**12:
            raise ProtocolError(ERR_SCHEMA, f"outbox.{key} is out of range")
        out[key] = item
    return out


@dataclass(frozen=True, slots=True)
class ReconcileRequest:
    """`POST /api/edge/v1/reconcile`: the agent's view of its leases (and of itself)."""

    mode: str
    leases: tuple[LeaseReport, ...]
    outbox: Mapping[str, float] | None = None
    clock_offset_ms: int | None = None
    agent_version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the wire form."""
        out: dict[str, Any] = {
            "v": schema.SCHEMA_VERSION,
            "mode": self.mode,
            "leases": [lease.to_dict() for lease in self.leases],
        }
        if self.outbox is not None:
            out["outbox"] = dict(self.outbox)
        if self.clock_offset_ms is not None:
            out["clock_offset_ms"] = self.clock_offset_ms
        if self.agent_version is not None:
            out["agent_version"] = self.agent_version
        return out

    @classmethod
    def from_dict(cls, value: object) -> ReconcileRequest:
        """Validate and decode the wire form."""
        o = schema.obj(value)
        schema.version(o)
        mode = o.get("mode", FULL)
        if mode not in (FULL, MARKS):
            raise ProtocolError(ERR_SCHEMA, "mode is 'full' or 'marks'")
        raw = o.get("leases")
        if not isinstance(raw, list) or len(raw) > MAX_LEASES:
            raise ProtocolError(ERR_SCHEMA, f"leases must be a list of at most {MAX_LEASES}")
        leases = tuple(LeaseReport.from_dict(item) for item in raw)
        if len({lease.lease_id for lease in leases}) != len(leases):
            raise ProtocolError(ERR_SCHEMA, "a lease is reported twice")
        return cls(
            mode=mode,
            leases=leases,
            outbox=None if o.get("outbox") is None else _outbox(o["outbox"]),
            clock_offset_ms=schema.integer(
                o, "clock_offset_ms", lo=-(10**12), hi=10**12, optional=True
            ),
            agent_version=schema.string(o, "agent_version", max_len=32, optional=True),
        )


@dataclass(frozen=True, slots=True)
class LeaseVerdict:
    """Central's answer about one lease the agent reported."""

    lease_id: str
    status: str  # active | returned | expired | revoked | unknown
    central_high_water: int  # the highest number central knows was used (0: none)
    counts_match: bool | None = None
    buckets_match: bool | None = None
    links_match: bool | None = None
    # buckets that differ -> the ids central holds there (the agent re-sends the others)
    mismatched: Mapping[int, tuple[str, ...]] = field(default_factory=dict)
    truncated: bool = False  # more buckets differ than were listed; reconcile again
    resend: bool = False  # the consistency checker asks for every event of the lease again

    @property
    def confirmed(self) -> bool:
        """Tell whether central holds exactly the events the agent delivered."""
        return bool(self.counts_match and self.buckets_match)

    def to_dict(self) -> dict[str, Any]:
        """Return the wire form."""
        out: dict[str, Any] = {
            "lease_id": self.lease_id,
            "status": self.status,
            "central_high_water": self.central_high_water,
        }
        for name in ("counts_match", "buckets_match", "links_match"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.mismatched:
            out["mismatched"] = {str(b): list(ids) for b, ids in sorted(self.mismatched.items())}
        if self.truncated:
            out["truncated"] = True
        if self.resend:
            out["resend"] = True
        return out

    @classmethod
    def from_dict(cls, value: object) -> LeaseVerdict:
        """Validate and decode the wire form."""
        o = schema.obj(value, "lease verdict")
        status = o.get("status")
        if status not in LEASE_STATUSES:
            raise ProtocolError(ERR_SCHEMA, f"lease status is one of {LEASE_STATUSES}")
        mismatched: dict[int, tuple[str, ...]] = {}
        raw = o.get("mismatched") or {}
        total = 0
        for key, ids in schema.obj(raw, "mismatched").items():
            bucket = _bucket_key(key, "mismatched")
            if not isinstance(ids, list) or not all(
                isinstance(i, str) and 0 < len(i) <= 64 for i in ids
            ):
                raise ProtocolError(ERR_SCHEMA, "mismatched buckets list event ids")
            total += len(ids)
            if total > MAX_IDS:
                raise ProtocolError(ERR_SCHEMA, f"at most {MAX_IDS} event ids in one answer")
            mismatched[bucket] = tuple(ids)
        flags = {}
        for name in ("counts_match", "buckets_match", "links_match", "truncated", "resend"):
            item = o.get(name)
            if item is not None and not isinstance(item, bool):
                raise ProtocolError(ERR_SCHEMA, f"{name} must be true or false")
            flags[name] = item
        return cls(
            lease_id=schema.string(o, "lease_id", max_len=64),
            status=status,
            central_high_water=schema.integer(o, "central_high_water", lo=0, hi=MAX_SEQ),
            counts_match=flags["counts_match"],
            buckets_match=flags["buckets_match"],
            links_match=flags["links_match"],
            mismatched=mismatched,
            truncated=bool(flags["truncated"]),
            resend=bool(flags["resend"]),
        )


@dataclass(frozen=True, slots=True)
class HeldLease:
    """A lease central granted to the agent that the agent did not report (a rollback sign)."""

    grant: LeaseGrant
    central_high_water: int

    def to_dict(self) -> dict[str, Any]:
        """Return the wire form."""
        return {**self.grant.to_dict(), "central_high_water": self.central_high_water}

    @classmethod
    def from_dict(cls, value: object) -> HeldLease:
        """Validate and decode the wire form."""
        o = schema.obj(value, "held lease")
        return cls(
            grant=LeaseGrant.from_dict(o),
            central_high_water=schema.integer(o, "central_high_water", lo=0, hi=MAX_SEQ),
        )


@dataclass(frozen=True, slots=True)
class ReconcileResponse:
    """Central's answer to a reconcile."""

    time: str
    leases: tuple[LeaseVerdict, ...]
    unreported: tuple[HeldLease, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return the wire form."""
        return {
            "ok": True,
            "time": self.time,
            "leases": [lease.to_dict() for lease in self.leases],
            "unreported": [held.to_dict() for held in self.unreported],
        }

    @classmethod
    def from_dict(cls, value: object) -> ReconcileResponse:
        """Validate and decode the wire form."""
        o = schema.obj(value)
        leases = o.get("leases")
        unreported = o.get("unreported") or []
        if not isinstance(leases, list) or len(leases) > MAX_LEASES:
            raise ProtocolError(ERR_SCHEMA, "leases must be a list")
        if not isinstance(unreported, list) or len(unreported) > MAX_LEASES:
            raise ProtocolError(ERR_SCHEMA, "unreported must be a list")
        return cls(
            time=format_ts(parse_ts(o.get("time"))),
            leases=tuple(LeaseVerdict.from_dict(item) for item in leases),
            unreported=tuple(HeldLease.from_dict(item) for item in unreported),
        )
