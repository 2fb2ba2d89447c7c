"""Consistency findings: read-only queries that find what does not add up in one tenant.

Each finder returns `Finding`s and the action the checker takes on them: ask the agent to
re-send its events of a lease on its next reconcile (`resend`), close an expired lease
(`close`), hold the serial for review (`quarantine`), report it to a person (`report`), or
note it for the record when there is nothing in the registry to act on (`note`). Nothing
here writes; `central.jobs.checker` decides what was done already and applies the rest.

Every piece of evidence is read from the tenant's own rows (its registry rows, its agents'
events and leases), so a finding may hold the serial when the serial names the tenant's org.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from central import tables as T
from central.config import CentralConfig
from central.errors import (
    ERR_AGENT_SILENT,
    ERR_DUPLICATE_SERIAL,
    ERR_FACTS_LOST,
    ERR_LEASE_ACCOUNTING,
    ERR_LEASE_EXPIRED,
    ERR_LINK_MISMATCH,
    ERR_ORPHANED,
    ERR_OUTSIDE_LEASE,
)
from central.jobs.expiry import expired_leases
from central.keyring import Keyring
from central.timeutil import as_utc
from protocol import lifecycle as L
from protocol.errors import ERR_SERIAL_MAC, ERR_SERIAL_SYNTAX, ProtocolError
from protocol.serials import MAX_SEQ, Scope, parse, render

# Kinds of finding, in the order the summary lists them.
MISSING_TENANT_LINK = "missing_tenant_link"
MISSING_CORE_LINK = "missing_core_link"
INVALID_FORMAT = "invalid_format"
ORPHAN = "orphan"
LEASE_ACCOUNTING = "lease_accounting"
DUPLICATE_SERIAL = "duplicate_serial"
OUTSIDE_LEASE = "outside_lease"
AGENT_SILENT = "agent_silent"
FACTS_LOST = "facts_lost"
EXPIRED_TAIL = "expired_tail"
KINDS = (
    MISSING_TENANT_LINK,
    MISSING_CORE_LINK,
    INVALID_FORMAT,
    ORPHAN,
    LEASE_ACCOUNTING,
    DUPLICATE_SERIAL,
    OUTSIDE_LEASE,
    AGENT_SILENT,
    FACTS_LOST,
    EXPIRED_TAIL,
)

QUARANTINE, RESEND, CLOSE, REPORT = "quarantine", "resend", "close", "report"
NOTE = "note"  # reported for the record; nothing in the registry to act on

_PAGE = 5000
_CHUNK = 500
_IN_USE = (L.ISSUED, L.PRINTED, L.LINKED, L.PACKED, L.SHIPPED)
_LINK_FIELDS = (
    ("job_ticket", "job_ticket"),
    ("token", "token"),
    ("work_order", "linked_work_order"),
)
_APPLIED = ("accepted", "released")  # event outcomes that changed the registry


@dataclass
class Finding:
    """One thing that does not add up, and what the checker does about it."""

    kind: str
    action: str
    reason: str
    message: str
    serial: str | None = None
    lease_id: str | None = None
    agent_id: str | None = None
    event_id: str | None = None
    hold: bool = True
    evidence_at: dt.datetime | None = None  # the newest fact the finding rests on
    details: dict[str, Any] = field(default_factory=dict)
    outcome: str | None = None  # what the checker did (see central.jobs.checker)

    def to_dict(self) -> dict[str, Any]:
        """Return the finding as JSON-friendly values."""
        out: dict[str, Any] = {
            "kind": self.kind,
            "action": self.action,
            "outcome": self.outcome,
            "reason": self.reason,
            "message": self.message,
        }
        for name in ("serial", "lease_id", "agent_id", "event_id"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.action == QUARANTINE:
            out["holds_serial"] = self.hold
        if self.details:
            out["details"] = self.details
        return out


@dataclass(frozen=True)
class TenantRef:
    """The tenant being checked."""

    id: int
    org: str
    name: str

    def owns(self, serial: str) -> bool:
        """Tell whether a serial names this tenant's org (only then may it be held)."""
        return serial.upper().startswith(f"{self.org}-")


@dataclass(frozen=True)
class Thresholds:
    """How long things may stay unfinished before they are findings."""

    orphan_hat: dt.timedelta
    orphan_oem: dt.timedelta
    agent_silent: dt.timedelta
    facts_grace: dt.timedelta

    @classmethod
    def from_config(cls, config: CentralConfig) -> Thresholds:
        """Read the thresholds from the central configuration."""
        return cls(
            orphan_hat=dt.timedelta(hours=config.orphan_grace_hours_hat),
            orphan_oem=dt.timedelta(hours=config.orphan_grace_hours_oem),
            agent_silent=dt.timedelta(hours=config.agent_silent_hours),
            facts_grace=dt.timedelta(minutes=config.facts_grace_minutes),
        )

    def to_dict(self) -> dict[str, float]:
        """Return the thresholds in the configuration's units."""
        return {
            "orphan_grace_hours_hat": self.orphan_hat.total_seconds() / 3600,
            "orphan_grace_hours_oem": self.orphan_oem.total_seconds() / 3600,
            "agent_silent_hours": self.agent_silent.total_seconds() / 3600,
            "facts_grace_minutes": self.facts_grace.total_seconds() / 60,
        }


def _ts(moment: dt.datetime | None) -> str | None:
    value = as_utc(moment)
    return value.isoformat() if value is not None else None


def _chunks(values: list[str]) -> Iterator[list[str]]:
    for i in range(0, len(values), _CHUNK):
        yield values[i : i + _CHUNK]


# --- leases: the agent's account against the registry's --------------------------------------


def _counts_at_reconcile(conn: Connection, tenant: TenantRef) -> dict[str, dict[str, int]]:
    """Return, per lease, central's events of the lease's agent received up to its reconcile."""
    e, lease = T.events.c, T.leases.c
    rows = conn.execute(
        sa.select(e.lease_id, e.type, sa.func.count())
        .select_from(
            T.events.join(T.leases, sa.and_(lease.id == e.lease_id, lease.agent_id == e.agent_id))
        )
        .where(
            lease.tenant_id == tenant.id,
            lease.reconciled_at.is_not(None),
            e.origin == "agent",
            e.received_at <= lease.reconciled_at,
        )
        .group_by(e.lease_id, e.type)
    )
    out: dict[str, dict[str, int]] = {}
    for lease_id, etype, n in rows:
        out.setdefault(lease_id, {})[etype] = int(n)
    return out


def _reported(text: str | None) -> dict[str, int]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {str(k): int(v) for k, v in value.items() if isinstance(v, int) and v}


def lease_accounts(conn: Connection, tenant: TenantRef) -> list[Finding]:
    """Find leases whose agent's last full reconcile disagrees with central's events or links.

    Central's side is what it held when the agent reconciled: the events of the lease from
    that agent received up to `reconciled_at`. Where the agent counted more of a type,
    central lacks events: the agent is asked to re-send the whole lease (`resend`). Where
    central holds events the agent did not count (a line PC restored from an older copy of
    its database), nothing can or need be done: central has the facts, the rollback guard
    keeps the numbers safe and the agent raises its own alert, so it is noted. Ids that
    differ with equal counts also leave central holding ids the agent lacks (the reconcile
    itself already has the agent re-send the others): noted. A links digest that differs
    while central holds exactly the agent's events is reported: one of the two records is
    wrong, and no re-send can change either.
    """
    lease = T.leases.c
    rows = conn.execute(
        sa.select(T.leases)
        .where(lease.tenant_id == tenant.id, lease.reconciled_at.is_not(None))
        .order_by(lease.id)
    ).all()
    central_counts = _counts_at_reconcile(conn, tenant)
    findings = []
    for row in rows:
        ours = central_counts.get(row.id, {})
        theirs = _reported(row.reported_counts)
        types = sorted(set(ours) | set(theirs))
        ahead = {
            t: [ours.get(t, 0), theirs.get(t, 0)]
            for t in types
            if ours.get(t, 0) > theirs.get(t, 0)
        }
        behind = {
            t: [ours.get(t, 0), theirs.get(t, 0)]
            for t in types
            if ours.get(t, 0) < theirs.get(t, 0)
        }
        ids_differ = row.digest_ok is False
        base = {
            "reconciled_at": _ts(row.reconciled_at),
            "resend_requested_at": _ts(row.resend_requested_at),
        }
        if behind or ahead or ids_differ:
            parts = []
            if behind:
                parts.append("the agent delivered events central does not hold")
            if ahead:
                parts.append(
                    "central holds events the agent did not count (restored from an older copy?)"
                )
            if ids_differ and not (ahead or behind):
                parts.append("the same counts but different event ids")
            findings.append(
                Finding(
                    LEASE_ACCOUNTING,
                    RESEND if behind else NOTE,
                    ERR_LEASE_ACCOUNTING,
                    "; ".join(parts),
                    lease_id=row.id,
                    agent_id=row.agent_id,
                    details={
                        **base,
                        "digest_ok": row.digest_ok,
                        "central": ours,
                        "reported": theirs,
                        "central_ahead": ahead,
                        "central_behind": behind,
                    },
                )
            )
        if row.links_ok is False:
            if behind:
                action, why = RESEND, "; the events central lacks may carry them"
            elif ahead or ids_differ:
                action, why = NOTE, "; the agent lacks events central holds"
            else:
                action, why = REPORT, " although central holds exactly the agent's events"
            findings.append(
                Finding(
                    MISSING_TENANT_LINK,
                    action,
                    ERR_LINK_MISMATCH,
                    "the agent's link records of the lease differ from the registry's" + why,
                    lease_id=row.id,
                    agent_id=row.agent_id,
                    details=base,
                )
            )
    return findings


def expired_tails(conn: Connection, tenant: TenantRef, now: dt.datetime) -> list[Finding]:
    """Find active leases past their expiry: the lease-expiry job has not closed them yet."""
    return [
        Finding(
            EXPIRED_TAIL,
            CLOSE,
            ERR_LEASE_EXPIRED,
            "the lease expired but is still open; its unused tail becomes a gap",
            lease_id=row.id,
            agent_id=row.agent_id,
            details={"expires_at": _ts(row.expires_at), "scope": row.scope_key},
        )
        for row in expired_leases(conn, now, tenant.id)
    ]


# --- serials -------------------------------------------------------------------------------


def duplicates(conn: Connection, tenant: TenantRef) -> list[Finding]:
    """Find serials with more than one `issued` event not set aside by a review."""
    e, r = T.events.c, T.registry.c
    rows = conn.execute(
        sa.select(e.serial, sa.func.count(), sa.func.max(e.received_at), sa.func.max(e.event_id))
        .select_from(T.events.join(T.registry, r.serial == e.serial))
        .where(
            r.tenant_id == tenant.id,
            r.state != L.RETIRED,
            e.tenant_id == tenant.id,
            e.type == L.ISSUED,
            e.outcome != "superseded",
        )
        .group_by(e.serial)
        .having(sa.func.count() > 1)
        .order_by(e.serial)
    )
    return [
        Finding(
            DUPLICATE_SERIAL,
            QUARANTINE,
            ERR_DUPLICATE_SERIAL,
            f"issued {n} times: more than one physical label may carry it",
            serial=serial,
            event_id=newest_event,
            hold=tenant.owns(serial),
            evidence_at=as_utc(newest),
            details={"issued_events": int(n)},
        )
        for serial, n, newest, newest_event in rows
    ]


def outside_leases(conn: Connection, tenant: TenantRef) -> list[Finding]:
    """Find registry serials outside their lease's range, without a lease, or inside a gap."""
    r, lease, g = T.registry.c, T.leases.c, T.gaps.c
    found: dict[str, Finding] = {}
    for row in conn.execute(
        sa.select(
            r.serial,
            r.scope_key,
            r.seq,
            r.lease_id,
            r.agent_id,
            r.updated_at,
            lease.id.label("found_lease"),
            lease.scope_key.label("lease_scope"),
            lease.first_seq,
            lease.last_seq,
        )
        .select_from(T.registry.outerjoin(T.leases, lease.id == r.lease_id))
        .where(
            r.tenant_id == tenant.id,
            sa.or_(
                lease.id.is_(None),
                lease.scope_key != r.scope_key,
                r.seq < lease.first_seq,
                r.seq > lease.last_seq,
                lease.tenant_id != r.tenant_id,
            ),
        )
        .order_by(r.serial)
    ):
        where = (
            "no lease"
            if row.found_lease is None
            else f"lease {row.lease_id} ({row.lease_scope} {row.first_seq}..{row.last_seq})"
        )
        found[row.serial] = Finding(
            OUTSIDE_LEASE,
            QUARANTINE,
            ERR_OUTSIDE_LEASE,
            f"number {row.scope_key} {row.seq} lies outside its registry lease: {where}",
            serial=row.serial,
            lease_id=row.lease_id,
            agent_id=row.agent_id,
            hold=tenant.owns(row.serial),
            evidence_at=as_utc(row.updated_at),
        )
    for row in conn.execute(  # type: ignore[assignment]
        sa.select(
            r.serial,
            r.scope_key,
            r.seq,
            r.lease_id,
            r.agent_id,
            r.updated_at,
            g.first_seq,
            g.last_seq,
            g.reason,
        )
        .select_from(
            T.registry.join(
                T.gaps,
                sa.and_(g.scope_key == r.scope_key, r.seq >= g.first_seq, r.seq <= g.last_seq),
            )
        )
        .where(r.tenant_id == tenant.id)
        .order_by(r.serial)
    ):
        found.setdefault(
            row.serial,
            Finding(
                OUTSIDE_LEASE,
                QUARANTINE,
                ERR_OUTSIDE_LEASE,
                f"number {row.scope_key} {row.seq} lies in a recorded gap "
                f"({row.first_seq}..{row.last_seq}, {row.reason}): it was never to be used",
                serial=row.serial,
                lease_id=row.lease_id,
                agent_id=row.agent_id,
                hold=tenant.owns(row.serial),
                evidence_at=as_utc(row.updated_at),
            ),
        )
    return [found[s] for s in sorted(found)]


def orphans(
    conn: Connection, tenant: TenantRef, thresholds: Thresholds, now: dt.datetime
) -> list[Finding]:
    """Find serials issued but never put to use after the grace of their production type.

    HAT (handcraft): not linked to a job ticket or token `orphan_grace_hours_hat` after it was
    issued. OEM: never printed `orphan_grace_hours_oem` after it was issued.
    """
    r = T.registry.c
    hat = conn.execute(
        sa.select(r.serial, r.agent_id, r.lease_id, r.state, r.issued_at, r.updated_at)
        .where(
            r.tenant_id == tenant.id,
            r.scope_key.like(f"{tenant.org}-HAT-%"),
            r.state.in_((L.ISSUED, L.PRINTED)),
            r.job_ticket.is_(None),
            r.token.is_(None),
            r.issued_at < now - thresholds.orphan_hat,
        )
        .order_by(r.serial)
    ).all()
    oem = conn.execute(
        sa.select(r.serial, r.agent_id, r.lease_id, r.state, r.issued_at, r.updated_at)
        .where(
            r.tenant_id == tenant.id,
            r.scope_key.like(f"{tenant.org}-OEM-%"),
            r.state.in_((L.ISSUED, L.LINKED)),
            r.print_count == 0,
            r.issued_at < now - thresholds.orphan_oem,
        )
        .order_by(r.serial)
    ).all()
    findings = []
    for rows, what in (
        (hat, "not linked to a job ticket or token"),
        (oem, "never printed"),
    ):
        for row in rows:
            findings.append(
                Finding(
                    ORPHAN,
                    QUARANTINE,
                    ERR_ORPHANED,
                    f"issued {_ts(row.issued_at)} and {what} since",
                    serial=row.serial,
                    lease_id=row.lease_id,
                    agent_id=row.agent_id,
                    hold=True,
                    evidence_at=as_utc(row.updated_at),
                    details={"state": row.state},
                )
            )
    return findings


def _named_links(rows: Sequence[Any]) -> dict[str, dict[str, set[str]]]:
    """Return, per serial, the link targets its applied events name, by registry column."""
    named: dict[str, dict[str, set[str]]] = {}
    for row in rows:
        try:
            data = json.loads(row.data or "{}")
        except ValueError:
            continue
        if not isinstance(data, dict):
            continue
        fields = _LINK_FIELDS if row.type == L.LINKED else _LINK_FIELDS[:1]
        for key, column in fields:
            value = data.get(key)
            if isinstance(value, str) and value:
                named.setdefault(row.serial, {}).setdefault(column, set()).add(value[:64])
    return named


def _link_differences(row: Any, named: dict[str, set[str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for _, column in _LINK_FIELDS:
        have = getattr(row, column)
        want = named.get(column, set())
        if (have is None and want) or (have is not None and have not in want):
            out[column] = {"registry": have, "events": sorted(want)}
    return out


def registry_pass(
    conn: Connection,
    keyring: Keyring,
    tenant: TenantRef,
    between: Callable[[], None] | None = None,
) -> tuple[list[Finding], list[Finding]]:
    """Read the tenant's registry once, in pages; return invalid formats and core-link findings.

    A registry serial must still parse, name the scope and number of its row, and carry the
    MAC of its lease. Its link targets must be ones its applied events named (the `issued`
    event's job ticket of a pre-generated serial, the `linked` events' targets), and every
    target its events named must be in the registry.
    """
    r, lease, e = T.registry.c, T.leases.c, T.events.c
    renderer = _Renderer(keyring)
    invalid: list[Finding] = []
    links: list[Finding] = []
    last = ""
    while True:
        if between is not None:
            between()
        page = conn.execute(
            sa.select(
                r.serial,
                r.scope_key,
                r.seq,
                r.lease_id,
                r.agent_id,
                r.updated_at,
                r.job_ticket,
                r.token,
                r.linked_work_order,
                lease.key_version,
                lease.id.label("found_lease"),
            )
            .select_from(T.registry.outerjoin(T.leases, lease.id == r.lease_id))
            .where(r.tenant_id == tenant.id, r.serial > last)
            .order_by(r.serial)
            .limit(_PAGE)
        ).all()
        if not page:
            break
        last = page[-1].serial
        events = conn.execute(
            sa.select(e.serial, e.type, e.data)
            .where(
                e.tenant_id == tenant.id,
                e.serial >= page[0].serial,
                e.serial <= last,
                e.outcome.in_(_APPLIED),
                sa.or_(
                    e.type == L.LINKED,
                    sa.and_(e.type == L.ISSUED, e.data.like('%"job_ticket"%')),
                ),
            )
            .order_by(e.serial)
        ).all()
        named = _named_links(events)
        for row in page:
            problem = _format_problem(row, renderer)
            if problem is not None:
                code, message = problem
                invalid.append(
                    Finding(
                        INVALID_FORMAT,
                        QUARANTINE,
                        code,
                        message,
                        serial=row.serial,
                        lease_id=row.lease_id,
                        agent_id=row.agent_id,
                        hold=tenant.owns(row.serial),
                        evidence_at=as_utc(row.updated_at),
                    )
                )
            differences = _link_differences(row, named.get(row.serial, {}))
            if differences:
                links.append(
                    Finding(
                        MISSING_CORE_LINK,
                        QUARANTINE,
                        ERR_LINK_MISMATCH,
                        "the registry's link targets differ from the serial's accepted events: "
                        + ", ".join(sorted(differences)),
                        serial=row.serial,
                        lease_id=row.lease_id,
                        agent_id=row.agent_id,
                        hold=tenant.owns(row.serial),
                        evidence_at=as_utc(row.updated_at),
                        details=differences,
                    )
                )
        if len(page) < _PAGE:
            break
    return invalid, links


class _Renderer:
    """Render the serial a registry row should carry, with scopes and lease keys cached."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self.keys: dict[str, bytes] = {}
        self.scopes: dict[str, Scope | None] = {}

    def key(self, row: Any) -> bytes:
        key = self.keys.get(row.lease_id)
        if key is None:
            key = self.keys[row.lease_id] = self.keyring.lease_key(row.key_version, row.lease_id)
        return key

    def expected(self, row: Any) -> str | None:
        """Return the serial of the row's scope, number and lease (None: cannot be made)."""
        if row.found_lease is None or not isinstance(row.seq, int) or not 1 <= row.seq <= MAX_SEQ:
            return None
        if row.scope_key not in self.scopes:
            try:
                self.scopes[row.scope_key] = Scope.from_key(row.scope_key)
            except ProtocolError:
                self.scopes[row.scope_key] = None
        scope = self.scopes[row.scope_key]
        return None if scope is None else render(scope, row.seq, self.key(row))


def _format_problem(row: Any, renderer: _Renderer) -> tuple[str, str] | None:
    """Return (code, message) if a registry serial no longer parses or authenticates."""
    if renderer.expected(row) == row.serial:
        return None  # the usual case: exactly the serial its row and lease make
    try:
        serial = parse(row.serial)
    except ProtocolError as exc:
        return exc.code, f"the registry serial no longer parses: {exc.message}"
    if serial.text != row.serial or serial.scope.key != row.scope_key or serial.seq != row.seq:
        return ERR_SERIAL_SYNTAX, (
            f"the serial names {serial.scope.key} {serial.seq} but its registry row says "
            f"{row.scope_key} {row.seq}"
        )
    if row.found_lease is None:
        return None  # no lease to check the MAC with: an outside-lease finding
    if not serial.mac_valid(renderer.key(row)):
        return ERR_SERIAL_MAC, "the authenticity code does not match the serial's lease"
    return None


# --- agents and used numbers without facts -------------------------------------------------


def _missing_facts(
    conn: Connection, keyring: Keyring, lease: Row[Any], upto: int
) -> list[tuple[int, str]]:
    """Return (number, serial) of the numbers first..upto of a lease that have no fact at all."""
    if upto < lease.first_seq:
        return []
    r = T.registry.c
    present = set(
        conn.execute(
            sa.select(r.seq).where(
                r.scope_key == lease.scope_key, r.seq >= lease.first_seq, r.seq <= upto
            )
        ).scalars()
    )
    if len(present) == upto - lease.first_seq + 1:
        return []
    scope = Scope.from_key(lease.scope_key)
    key = keyring.lease_key(lease.key_version, lease.id)
    missing = {
        render(scope, seq, key): seq
        for seq in range(lease.first_seq, upto + 1)
        if seq not in present
    }
    seen: set[str] = set()
    for chunk in _chunks(sorted(missing)):
        seen.update(
            conn.execute(
                sa.select(T.events.c.serial).where(T.events.c.serial.in_(chunk)).distinct()
            ).scalars()
        )
    return sorted((seq, serial) for serial, seq in missing.items() if serial not in seen)


def facts_lost(
    conn: Connection,
    keyring: Keyring,
    tenant: TenantRef,
    thresholds: Thresholds,
    now: dt.datetime,
) -> list[Finding]:
    """Find numbers the agent used (per its high-water mark) whose facts will not come.

    A number up to the mark with no event at all is lost once the grace has passed since the
    mark was reported (or the lease closed) and either the lease is closed or the agent has
    reconciled in full after reporting the mark, so its outbox held nothing more of it.
    """
    lease, agent, r = T.leases.c, T.agents.c, T.registry.c
    used_to = sa.case((lease.status == "active", lease.reported_hw), else_=lease.high_water)
    rows = conn.execute(
        sa.select(T.leases, agent.last_reconcile_at)
        .join(T.agents, agent.id == lease.agent_id)
        .where(lease.tenant_id == tenant.id, used_to >= lease.first_seq)
        .order_by(lease.id)
    ).all()
    # Most leases have a fact of every used number: count them all at once, look closer at
    # the others only.
    registered = dict(
        conn.execute(
            sa.select(lease.id, sa.func.count())
            .select_from(T.leases.join(T.registry, r.lease_id == lease.id))
            .where(lease.tenant_id == tenant.id, r.seq >= lease.first_seq, r.seq <= used_to)
            .group_by(lease.id)
        ).all()
    )
    findings = []
    for row in rows:
        moments = [as_utc(m) for m in (row.reported_at, row.closed_at) if m is not None]
        if not moments:
            continue
        evidence = max(m for m in moments if m is not None)
        if now - evidence < thresholds.facts_grace:
            continue
        if row.status == "active":
            reconciled = as_utc(row.last_reconcile_at)
            if reconciled is None or reconciled <= as_utc(row.reported_at):  # type: ignore[operator]
                continue
            upto = row.reported_hw
        else:
            upto = row.high_water
        if registered.get(row.id, 0) >= upto - row.first_seq + 1:
            continue
        for seq, serial in _missing_facts(conn, keyring, row, upto):
            findings.append(
                Finding(
                    FACTS_LOST,
                    QUARANTINE,
                    ERR_FACTS_LOST,
                    f"number {seq} was used (the agent's mark is {upto}) but no event of it "
                    "ever arrived",
                    serial=serial,
                    lease_id=row.id,
                    agent_id=row.agent_id,
                    hold=True,
                    evidence_at=evidence,
                    details={"seq": seq, "mark": upto, "lease_status": row.status},
                )
            )
    return findings


def _outbox_pending(text: str | None) -> float:
    try:
        report = json.loads(text or "{}")
    except ValueError:
        return 0
    outbox = report.get("outbox") if isinstance(report, dict) else None
    pending = outbox.get("pending") if isinstance(outbox, dict) else None
    return pending if isinstance(pending, (int, float)) and not isinstance(pending, bool) else 0


def _highest_fact(conn: Connection, lease_id: str) -> int:
    """Return the highest number of a lease central holds any event of (0: none)."""
    r, e = T.registry.c, T.events.c
    top = conn.execute(sa.select(sa.func.max(r.seq)).where(r.lease_id == lease_id)).scalar() or 0
    for serial in conn.execute(
        sa.select(e.serial).where(e.lease_id == lease_id, e.outcome == "quarantined").distinct()
    ).scalars():
        try:
            top = max(top, parse(serial).seq)
        except ProtocolError:
            continue
    return int(top)


def silent_agents(
    conn: Connection, tenant: TenantRef, thresholds: Thresholds, now: dt.datetime
) -> list[Finding]:
    """Find active agents with unsynced work that have not called for `agent_silent_hours`.

    Unsynced work is what the agent last reported as pending in its outbox, or numbers its
    reported high-water marks say it used beyond the highest number central has a fact of.
    """
    agent, lease = T.agents.c, T.leases.c
    findings = []
    for row in conn.execute(
        sa.select(T.agents)
        .where(agent.tenant_id == tenant.id, agent.status == "active")
        .order_by(agent.id)
    ):
        contacts = [
            as_utc(m) for m in (row.last_seen_at, row.last_reconcile_at, row.enrolled_at) if m
        ]
        last = max(m for m in contacts if m is not None)
        if now - last < thresholds.agent_silent:
            continue
        pending = _outbox_pending(row.last_report)
        unsynced = {}
        for lrow in conn.execute(
            sa.select(lease.id, lease.reported_hw).where(
                lease.agent_id == row.id, lease.reported_hw.is_not(None)
            )
        ):
            top = _highest_fact(conn, lrow.id)
            if lrow.reported_hw > top:
                unsynced[lrow.id] = {"reported_hw": lrow.reported_hw, "highest_fact": top}
        if not pending and not unsynced:
            continue
        findings.append(
            Finding(
                AGENT_SILENT,
                REPORT,
                ERR_AGENT_SILENT,
                f"line {row.line} has not called since {last:%Y-%m-%d %H:%M} UTC with unsynced "
                "work: check the line PC and its network",
                agent_id=row.id,
                details={
                    "line": row.line,
                    "last_contact": last.isoformat(),
                    "outbox_pending": pending,
                    "unsynced_leases": unsynced,
                },
            )
        )
    return findings


def find_all(
    conn: Connection,
    keyring: Keyring,
    tenant: TenantRef,
    thresholds: Thresholds,
    now: dt.datetime,
    between: Callable[[], None] | None = None,
) -> list[Finding]:
    """Return every finding of one tenant, in the summary's order of kinds.

    `between` runs between pages of the registry (it may raise to stop a long check).
    """
    invalid, core_links = registry_pass(conn, keyring, tenant, between)
    found = [
        *lease_accounts(conn, tenant),
        *core_links,
        *invalid,
        *orphans(conn, tenant, thresholds, now),
        *duplicates(conn, tenant),
        *outside_leases(conn, tenant),
        *silent_agents(conn, tenant, thresholds, now),
        *facts_lost(conn, keyring, tenant, thresholds, now),
        *expired_tails(conn, tenant, now),
    ]
    order = {kind: i for i, kind in enumerate(KINDS)}
    return sorted(found, key=lambda f: order[f.kind])  # stable: each kind keeps its order
