"""Serial checks: the registry's serials against their leases, events and formats, per tenant.

Serials issued twice, outside their lease or inside a recorded gap, orphaned after the
grace of their production type, and one paged pass over the registry for invalid formats
and MACs and for link targets that differ from the serials' accepted events. Read-only: see
`central.jobs.checker` for what is done about each finding.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from central import tables as T
from central.errors import (
    ERR_DUPLICATE_SERIAL,
    ERR_LINK_MISMATCH,
    ERR_ORPHANED,
    ERR_OUTSIDE_LEASE,
)
from central.jobs.findings import (
    DUPLICATE_SERIAL,
    INVALID_FORMAT,
    MISSING_CORE_LINK,
    ORPHAN,
    OUTSIDE_LEASE,
    QUARANTINE,
    Finding,
    TenantRef,
    Thresholds,
    iso,
)
from central.keyring import Keyring
from central.timeutil import as_utc
from protocol import lifecycle as L
from protocol.errors import ERR_SERIAL_MAC, ERR_SERIAL_SYNTAX, ProtocolError
from protocol.serials import MAX_SEQ, Scope, parse, render

_PAGE = 5000
_LINK_FIELDS = (
    ("job_ticket", "job_ticket"),
    ("token", "token"),
    ("work_order", "linked_work_order"),
)
_APPLIED = ("accepted", "released")  # event outcomes that changed the registry


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
                    f"issued {iso(row.issued_at)} and {what} since",
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
