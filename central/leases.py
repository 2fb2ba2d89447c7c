"""Leases: blocks of one scope's numbers granted to one agent, never overlapping, never reused.

A number is handed out at most once, ever: the per-scope counter only moves forward, in one
`UPDATE ... RETURNING` statement, and the lease table refuses overlapping ranges by itself
(an exclusion constraint on PostgreSQL, a trigger on SQLite) even if this code had a bug.
"""

from __future__ import annotations

import collections
import datetime as dt
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from central import tables as T
from central.admin import active_key_version
from central.config import CentralConfig
from central.db import Store
from central.errors import (
    ERR_INVALID,
    ERR_KEY_UNAVAILABLE,
    ERR_LEASE_CAP,
    ERR_LEASE_RETURNED,
    ERR_LEASE_UNKNOWN,
    ERR_SCOPE_CATEGORY,
    ERR_SCOPE_DATE,
    ERR_SCOPE_EXHAUSTED,
    ERR_SCOPE_FOREIGN,
    ERR_SCOPE_TYPE,
    ERR_WORK_ORDER_COMPLETE,
    CentralError,
    Conflict,
    NotFound,
    Unavailable,
)
from central.keyring import Keyring
from central.timeutil import as_utc, new_id, zone
from protocol.messages import LeaseGrant, LeaseRequest, LeaseResponse
from protocol.serials import MAX_SEQ, Scope
from protocol.timefmt import format_ts


@dataclass(frozen=True)
class AgentRef:
    """The authenticated agent a request comes from."""

    id: str
    tenant_id: int
    org: str
    line: str
    timezone: str


def lease_expiry(prod_date: dt.date, timezone: str, grace_days: int) -> dt.datetime:
    """Return when a lease of a production date expires: local midnight after the grace days."""
    local_end = dt.datetime.combine(
        prod_date + dt.timedelta(days=1 + grace_days), dt.time(0), tzinfo=zone(timezone)
    )
    return local_end.astimezone(dt.UTC)


def grant_of(row: Row[Any], keyring: Keyring) -> LeaseGrant:
    """Return a lease as granted to its agent, with its derived key."""
    return LeaseGrant(
        lease_id=row.id,
        scope=Scope.from_key(row.scope_key),
        first=row.first_seq,
        last=row.last_seq,
        key=keyring.lease_key(row.key_version, row.id),
        key_version=row.key_version,
        expires_at=format_ts(as_utc(row.expires_at)),  # type: ignore[arg-type]
    )


def _check_scope(
    conn: Connection, agent: AgentRef, req: LeaseRequest, config: CentralConfig, now: dt.datetime
) -> None:
    scope = req.scope
    if scope.org != agent.org:
        raise CentralError(ERR_SCOPE_FOREIGN, f"this agent leases for {agent.org} only", 403)
    known_type = conn.execute(
        sa.select(T.production_types.c.code).where(T.production_types.c.code == scope.ptype)
    ).first()
    if known_type is None:
        raise CentralError(ERR_SCOPE_TYPE, f"no production type {scope.ptype}")
    category = conn.execute(
        sa.select(T.products.c.id)
        .where(T.products.c.tenant_id == agent.tenant_id, T.products.c.category == scope.category)
        .limit(1)
    ).first()
    if category is None:
        raise CentralError(
            ERR_SCOPE_CATEGORY, f"{agent.org} has no product of category {scope.category}"
        )
    today = now.astimezone(zone(agent.timezone)).date()
    earliest = today - dt.timedelta(days=config.lease_days_behind)
    latest = today + dt.timedelta(days=config.lease_days_ahead)
    if not earliest <= scope.prod_date <= latest:
        raise CentralError(
            ERR_SCOPE_DATE,
            f"leases are granted for production dates {earliest:%Y%m%d}..{latest:%Y%m%d} "
            f"(plant time {agent.timezone}); check the line PC's clock",
        )


def grant_lease(
    store: Store,
    keyring: Keyring,
    config: CentralConfig,
    agent: AgentRef,
    req: LeaseRequest,
    now: dt.datetime,
) -> LeaseResponse:
    """Grant up to `req.size` fresh numbers of a scope; a repeated request gets the same lease.

    What does not depend on other grants (the scope's type, category and date) is checked
    before the write transaction. The grant itself joins the requests of this process that
    wait for the same turn: one write transaction (one commit, one fsync) grants them all,
    each in its own savepoint, so fifty agents asking at once wait for a few commits, not
    fifty (see `_GrantBatcher`).
    """
    with store.read() as conn:
        earlier = _earlier_grant(conn, agent, req)
        if earlier is None:
            _check_scope(conn, agent, req, config, now)
    if earlier is not None:
        return LeaseResponse(req.request_id, req.size, (grant_of(earlier, keyring),))
    grant = _GrantBatcher.of(store).grant(_Pending(store, keyring, config, agent, req, now))
    return LeaseResponse(req.request_id, req.size, (grant,))


class _Pending:
    """One lease request waiting for its turn, then its outcome."""

    __slots__ = (
        "store",
        "keyring",
        "config",
        "agent",
        "req",
        "now",
        "done",
        "lead",
        "grant",
        "error",
    )

    def __init__(
        self,
        store: Store,
        keyring: Keyring,
        config: CentralConfig,
        agent: AgentRef,
        req: LeaseRequest,
        now: dt.datetime,
    ) -> None:
        self.store = store
        self.keyring = keyring
        self.config = config
        self.agent = agent
        self.req = req
        self.now = now
        self.done = threading.Event()
        self.lead = False  # set when this request's thread must run the next batch
        self.grant: LeaseGrant | None = None
        self.error: BaseException | None = None


class _GrantBatcher:
    """Group commit for lease grants: the requests of one process share write transactions.

    The first request finds no batch running and runs one; requests that arrive meanwhile
    queue. When a batch commits, its requests get their outcomes and the oldest queued
    request's thread runs the next batch (at most `MAX_BATCH` requests). Inside a batch the
    grants run one after the other, in arrival order, each in a savepoint: one refused or
    failed grant rolls back only itself; a failed commit fails every grant of the batch, and
    the agents retry with the same request id (idempotent).

    On PostgreSQL a batch locks its agents' rows, then its scopes' counter rows, each in
    sorted order, before granting: batches of two worker processes then never wait for each
    other in a cycle (no deadlock), and grants of one scope still run one at a time.
    """

    MAX_BATCH = 64
    _lock = threading.Lock()

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._queue: collections.deque[_Pending] = collections.deque()
        self._busy = False
        self._pid = os.getpid()

    @classmethod
    def of(cls, store: Store) -> _GrantBatcher:
        """Return this process's batcher for a store."""
        with cls._lock:
            batcher: _GrantBatcher | None = getattr(store, "_grant_batcher", None)
            if batcher is None or batcher._pid != os.getpid():
                batcher = _GrantBatcher()
                store._grant_batcher = batcher  # type: ignore[attr-defined]
            return batcher

    def grant(self, pending: _Pending) -> LeaseGrant:
        """Queue a request, run batches while it is this thread's turn; return its grant."""
        with self._mutex:
            self._queue.append(pending)
            lead = not self._busy
            self._busy = True
        if not lead:
            pending.done.wait()
            lead = pending.lead
        if lead:
            self._run_next(pending.store)
        if pending.error is not None:
            raise pending.error
        assert pending.grant is not None
        return pending.grant

    def _run_next(self, store: Store) -> None:
        with self._mutex:
            batch = [self._queue.popleft() for _ in range(min(self.MAX_BATCH, len(self._queue)))]
        try:
            _grant_batch(store, batch)
        finally:
            with self._mutex:
                successor = self._queue[0] if self._queue else None
                if successor is None:
                    self._busy = False
                else:
                    successor.lead = True
            for pending in batch:
                pending.done.set()
            if successor is not None:
                successor.done.set()


def _grant_batch(store: Store, batch: list[_Pending]) -> None:
    """Grant a batch of requests in one write transaction; set each one's grant or error."""
    counters = T.scope_counters
    try:
        with store.write() as conn:
            if not store.is_sqlite:
                # One agent's requests run one at a time: the CLI and the service of a line may
                # repeat the same request id at once (READ COMMITTED would let both grant).
                # SQLite's write lock serialises every grant already.
                agent_ids = sorted({p.agent.id for p in batch})
                conn.execute(
                    store.lock_row(
                        sa.select(T.agents.c.id)
                        .where(T.agents.c.id.in_(agent_ids))
                        .order_by(T.agents.c.id)
                    )
                ).all()
            version = active_key_version(conn)
            if version is None:
                raise Unavailable(
                    ERR_KEY_UNAVAILABLE, "no master key yet: run lineledger-central init"
                )
            for keyring in {id(p.keyring): p.keyring for p in batch}.values():
                keyring.master(version)  # fail before consuming numbers if the key is missing
            scopes = sorted({(p.req.scope.key, p.agent.tenant_id, p.now) for p in batch})
            seen: set[str] = set()
            for key, tenant_id, now in scopes:
                if key in seen:
                    continue
                seen.add(key)
                conn.execute(
                    store.insert(counters)
                    .values(
                        scope_key=key,
                        tenant_id=tenant_id,
                        next_seq=1,
                        last_grant_first=0,
                        updated_at=now,
                    )
                    .on_conflict_do_nothing()
                )
                # Grants of one scope run one at a time from here (PostgreSQL: the counter's
                # row lock, SQLite: the write lock), so the caps count every earlier lease.
                if not store.is_sqlite:
                    conn.execute(
                        store.lock_row(
                            sa.select(counters.c.scope_key).where(counters.c.scope_key == key)
                        )
                    ).all()
            cache: dict[tuple[int, str, str], _Family] = {}
            for pending in batch:
                savepoint = conn.begin_nested()
                try:
                    pending.grant = _grant_one(conn, version, pending, cache)
                except Exception as exc:  # noqa: BLE001 - this request's outcome, not the batch's
                    savepoint.rollback()
                    pending.error = exc
                else:
                    savepoint.commit()
    except BaseException as exc:
        # Nothing of the batch was committed: every grant of it is void.
        for pending in batch:
            if pending.grant is not None or pending.error is None:
                pending.grant = None
                pending.error = exc
        if not isinstance(exc, Exception):
            raise


def _grant_one(
    conn: Connection,
    version: int,
    pending: _Pending,
    cache: dict[tuple[int, str, str], _Family],
) -> LeaseGrant:
    """Grant one request inside the batch's transaction (its counter row is locked)."""
    agent, req, now, counters = pending.agent, pending.req, pending.now, T.scope_counters
    earlier = _earlier_grant(conn, agent, req)
    if earlier is not None:
        return grant_of(earlier, pending.keyring)
    fam = _family(conn, agent, req.scope, cache)
    size = _grant_size(pending.config, agent, req, fam)
    # SET expressions read the row as it was, so last_grant_first gets the old next_seq.
    moved = conn.execute(
        counters.update()
        .where(counters.c.scope_key == req.scope.key)
        .values(
            last_grant_first=counters.c.next_seq,
            next_seq=sa.case(
                (counters.c.next_seq + size > MAX_SEQ + 1, MAX_SEQ + 1),
                else_=counters.c.next_seq + size,
            ),
            updated_at=now,
        )
        .returning(counters.c.last_grant_first, counters.c.next_seq)
    ).one()
    first, last = moved.last_grant_first, moved.next_seq - 1
    if last < first:
        raise Conflict(
            ERR_SCOPE_EXHAUSTED,
            f"all {MAX_SEQ} numbers of {req.scope.key} are granted; no more serials of "
            "this category can be made on this date",
        )
    lease_id = new_id(now)
    expires = lease_expiry(req.scope.prod_date, agent.timezone, pending.config.lease_grace_days)
    conn.execute(
        T.leases.insert().values(
            id=lease_id,
            tenant_id=agent.tenant_id,
            agent_id=agent.id,
            request_id=req.request_id,
            scope_key=req.scope.key,
            first_seq=first,
            last_seq=last,
            key_version=version,
            granted_at=now,
            expires_at=expires,
            status="active",
        )
    )
    fam.leases.append(_NewLease(lease_id, agent.id, req.scope.key, first, last))
    return LeaseGrant(
        lease_id=lease_id,
        scope=req.scope,
        first=first,
        last=last,
        key=pending.keyring.lease_key(version, lease_id),
        key_version=version,
        expires_at=format_ts(expires),
    )


def _earlier_grant(conn: Connection, agent: AgentRef, req: LeaseRequest) -> Row[Any] | None:
    """Return the lease an earlier request with the same id was granted, if any."""
    return conn.execute(
        sa.select(T.leases).where(
            T.leases.c.agent_id == agent.id, T.leases.c.request_id == req.request_id
        )
    ).first()


def allowed_serials(quantity: int, overage_pct: float) -> int:
    """Return how many serials a work order may consume: quantity x (1 + overage %)."""
    return int(quantity * (100 + overage_pct) // 100)


def _open_work_orders(conn: Connection, agent: AgentRef, scope: Scope) -> list[Row[Any]]:
    """Return the tenant's open work orders whose serials come from `scope`, with counts."""
    wo, p, reg = T.work_orders, T.products, T.registry
    issued = (
        sa.select(sa.func.count())
        .where(reg.c.tenant_id == wo.c.tenant_id, reg.c.work_order == wo.c.number)
        .scalar_subquery()
    )
    return list(
        conn.execute(
            sa.select(wo.c.number, wo.c.line, wo.c.quantity, wo.c.overage_pct, issued.label("n"))
            .join(p, p.c.id == wo.c.product_id)
            .where(
                wo.c.tenant_id == agent.tenant_id,
                wo.c.status == "open",
                wo.c.recalled_at.is_(None),
                wo.c.production_type == scope.ptype,
                p.c.category == scope.category,
            )
        )
    )


@dataclass
class _NewLease:
    """A lease granted earlier in the same batch, as `_active_leases_of_family` lists it."""

    id: str
    agent_id: str
    scope_key: str
    first_seq: int
    last_seq: int
    reported_hw: int | None = None


@dataclass
class _Family:
    """What the caps of a scope family (tenant, type, category) are computed from, read once
    per batch: the active leases (with the batch's own grants added as they are made), their
    registered serials, and the open work orders with their counts."""

    leases: list[Any]
    tops: dict[str, tuple[int, int]]
    orders: list[Row[Any]]


def _family(
    conn: Connection, agent: AgentRef, scope: Scope, cache: dict[tuple[int, str, str], _Family]
) -> _Family:
    key = (agent.tenant_id, scope.ptype, scope.category)
    family = cache.get(key)
    if family is None:
        leases = _active_leases_of_family(conn, agent, scope)
        family = cache[key] = _Family(
            leases,
            _registry_tops(conn, agent, scope),
            _open_work_orders(conn, agent, scope),
        )
    return family


def _grant_size(config: CentralConfig, agent: AgentRef, req: LeaseRequest, fam: _Family) -> int:
    """Return how many numbers to grant: the request, within the cap and the work's needs.

    An agent holds at most its pool target plus one block of unused numbers per scope
    (ERR_LEASE_CAP), and all lines together hold no more unused numbers of a scope than the
    open work orders of that scope can still consume, so ten lines cannot exhaust a day's
    scope for work that does not exist.
    """
    # The active leases of the scope's type and category on every date, read once: the
    # scope's own for the caps, all of them for the numbers used but not yet registered.
    family, tops = fam.leases, fam.tops
    # What high_waters() returns for active leases, without querying the registry again.
    marks = {
        r.id: max(r.first_seq - 1, r.reported_hw or 0, tops.get(r.id, (0, 0))[0]) for r in family
    }
    scope_key = req.scope.key
    leases = [r for r in family if r.scope_key == scope_key]
    unused_mine = sum(r.last_seq - marks[r.id] for r in leases if r.agent_id == agent.id)
    unused_all = sum(r.last_seq - marks[r.id] for r in leases)
    cap = config.lease_pool_target + config.lease_block
    if unused_mine >= cap:
        raise Conflict(
            ERR_LEASE_CAP,
            f"this agent holds {unused_mine} unused numbers of {req.scope.key} already; at most "
            f"{cap} (pool target plus one block) per scope",
        )
    orders = fam.orders
    remaining = {r.number: max(0, allowed_serials(r.quantity, r.overage_pct) - r.n) for r in orders}
    unsynced_mine, unsynced_all = _used_not_registered(agent, family, marks, tops)
    line_need = (
        sum(remaining[r.number] for r in orders if r.line in (None, agent.line)) - unsynced_mine
    )
    scope_need = sum(remaining.values()) - unsynced_all
    size = min(
        req.size,
        config.lease_max_size,
        cap - unused_mine,
        line_need - unused_mine,
        scope_need - unused_all,
    )
    if size <= 0:
        raise Conflict(
            ERR_WORK_ORDER_COMPLETE,
            f"the open work orders of line {agent.line} need no more numbers of "
            f"{req.scope.key} than the lines hold already ({unused_all} unused); raise a work "
            "order's quantity or open a new one",
        )
    return size


def _family_filter(agent: AgentRef, scope: Scope) -> sa.ColumnElement[bool]:
    """Match the tenant's active leases of the scope's type and category, on any date."""
    prefix = f"{scope.org}-{scope.ptype}-{scope.category}-"
    return sa.and_(
        T.leases.c.tenant_id == agent.tenant_id,
        T.leases.c.status == "active",
        T.leases.c.scope_key.like(prefix + "%"),
    )


def _active_leases_of_family(conn: Connection, agent: AgentRef, scope: Scope) -> list[Row[Any]]:
    """Return the tenant's active leases of the scope's type and category, on any date."""
    return list(
        conn.execute(
            sa.select(
                T.leases.c.id,
                T.leases.c.agent_id,
                T.leases.c.scope_key,
                T.leases.c.first_seq,
                T.leases.c.last_seq,
                T.leases.c.reported_hw,
            ).where(_family_filter(agent, scope))
        ).all()
    )


def _registry_tops(conn: Connection, agent: AgentRef, scope: Scope) -> dict[str, tuple[int, int]]:
    """Return the highest registered number and the count of registered serials per active
    lease of the scope's family (one statement: no list of lease ids to plan each time)."""
    reg = T.registry.c
    return {
        lease_id: (top, count)
        for lease_id, top, count in conn.execute(
            sa.select(reg.lease_id, sa.func.max(reg.seq), sa.func.count())
            .join(T.leases, T.leases.c.id == reg.lease_id)
            .where(_family_filter(agent, scope))
            .group_by(reg.lease_id)
        )
    }


def _used_not_registered(
    agent: AgentRef,
    leases: Sequence[Row[Any]],
    marks: dict[str, int],
    tops: dict[str, tuple[int, int]],
) -> tuple[int, int]:
    """Return numbers the lines reported used whose facts have not arrived (mine, all).

    They belong to the open work orders of the scope's type and category (on any date) just
    as registered serials do, so the need for more numbers is that much smaller. `leases`
    are the active leases of that type and category, `marks` their high-water marks, `tops`
    their registered (highest number, count).
    """
    mine = every = 0
    for r in leases:
        unsynced = max(0, marks[r.id] - r.first_seq + 1 - tops.get(r.id, (0, 0))[1])
        every += unsynced
        if r.agent_id == agent.id:
            mine += unsynced
    return mine, every


def high_waters(conn: Connection, leases: Sequence[Row[Any]]) -> dict[str, int]:
    """Return the highest number central knows was used, per lease (first - 1: none).

    That is the mark a closed lease was closed at, or for an active lease the highest of the
    numbers reported in the registry and the agent's own reported high-water mark.
    """
    marks: dict[str, int] = {}
    open_ids = []
    for row in leases:
        if row.status != "active" and row.high_water is not None:
            marks[row.id] = row.high_water
        else:
            marks[row.id] = max(row.first_seq - 1, row.reported_hw or 0)
            open_ids.append(row.id)
    reg = T.registry.c
    for i in range(0, len(open_ids), 500):
        chunk = open_ids[i : i + 500]
        for lease_id, top in conn.execute(
            sa.select(reg.lease_id, sa.func.max(reg.seq))
            .where(reg.lease_id.in_(chunk))
            .group_by(reg.lease_id)
        ):
            marks[lease_id] = max(marks[lease_id], top)
    return marks


def close_lease(conn: Connection, lease: Row[Any], status: str, now: dt.datetime) -> int:
    """Close an active lease at the highest number central knows was used; return the mark.

    The unused tail becomes a recorded gap with `status` as its reason (expired, revoked),
    never granted again; later events above the mark are held for review.
    """
    mark = high_waters(conn, [lease])[lease.id]
    conn.execute(
        T.leases.update()
        .where(T.leases.c.id == lease.id, T.leases.c.status == "active")
        .values(status=status, high_water=mark, closed_at=now)
    )
    if mark < lease.last_seq:
        conn.execute(
            T.gaps.insert().values(
                tenant_id=lease.tenant_id,
                scope_key=lease.scope_key,
                first_seq=mark + 1,
                last_seq=lease.last_seq,
                reason=status,
                lease_id=lease.id,
                recorded_at=now,
            )
        )
    return mark


def raise_mark(conn: Connection, lease_id: str, seq: int) -> None:
    """Count number `seq` of a closed lease as used after all (a reviewer released it).

    The lease's mark rises to it and its recorded gap starts above it, so every number is
    still accounted for exactly once.
    """
    lease, gap = T.leases.c, T.gaps.c
    conn.execute(
        T.leases.update().where(lease.id == lease_id, lease.high_water < seq).values(high_water=seq)
    )
    conn.execute(
        T.gaps.update()
        .where(gap.lease_id == lease_id, gap.first_seq <= seq)
        .values(first_seq=seq + 1)
    )
    conn.execute(T.gaps.delete().where(gap.lease_id == lease_id, gap.first_seq > gap.last_seq))


def record_marks(conn: Connection, agent_id: str, marks: dict[str, int], now: dt.datetime) -> None:
    """Remember the high-water marks an agent reported for its leases (they only grow)."""
    for lease_id, mark in sorted(marks.items()):
        conn.execute(
            T.leases.update()
            .where(
                T.leases.c.id == lease_id,
                T.leases.c.agent_id == agent_id,
                sa.or_(T.leases.c.reported_hw.is_(None), T.leases.c.reported_hw < mark),
                T.leases.c.last_seq >= mark,
            )
            .values(reported_hw=mark, reported_at=now)
        )


def return_lease(
    store: Store, agent: AgentRef, lease_id: str, high_water: int, now: dt.datetime
) -> dict[str, Any]:
    """Close a lease at its high-water mark; the unused tail becomes a recorded gap."""
    with store.write() as conn:
        lease = conn.execute(
            store.lock_row(sa.select(T.leases).where(T.leases.c.id == lease_id))
        ).first()
        if lease is None or lease.agent_id != agent.id:
            raise NotFound(ERR_LEASE_UNKNOWN, f"this agent holds no lease {lease_id}")
        if not lease.first_seq - 1 <= high_water <= lease.last_seq:
            raise CentralError(
                ERR_INVALID,
                f"high_water must be {lease.first_seq - 1}..{lease.last_seq} for this lease",
            )
        if lease.status == "returned":
            if lease.high_water != high_water:
                raise Conflict(
                    ERR_LEASE_RETURNED,
                    f"lease was returned at {lease.high_water} already",
                )
            return _return_body(lease.id, high_water, lease.last_seq)
        used = high_waters(conn, [lease])[lease.id]
        if used > high_water:
            raise Conflict(
                ERR_LEASE_RETURNED,
                f"number {used} of this lease was used (reported); high_water cannot be lower",
            )
        if lease.status != "active":
            raise Conflict(
                ERR_LEASE_RETURNED,
                f"this lease was closed by central ({lease.status}) at {lease.high_water}",
            )
        conn.execute(
            T.leases.update()
            .where(T.leases.c.id == lease.id)
            .values(status="returned", high_water=high_water, returned_at=now, closed_at=now)
        )
        if high_water < lease.last_seq:
            conn.execute(
                T.gaps.insert().values(
                    tenant_id=lease.tenant_id,
                    scope_key=lease.scope_key,
                    first_seq=max(high_water + 1, lease.first_seq),
                    last_seq=lease.last_seq,
                    reason="returned",
                    lease_id=lease.id,
                    recorded_at=now,
                )
            )
    return _return_body(lease_id, high_water, lease.last_seq)


def _return_body(lease_id: str, high_water: int, last: int) -> dict[str, Any]:
    return {
        "ok": True,
        "lease_id": lease_id,
        "high_water": high_water,
        "voided": max(0, last - high_water),
    }


def find_lease(conn: Connection, scope_key: str, seq: int) -> Row[Any] | None:
    """Return the lease that holds number `seq` of a scope, if any was ever granted."""
    return conn.execute(
        sa.select(T.leases)
        .where(
            T.leases.c.scope_key == scope_key,
            T.leases.c.first_seq <= seq,
            T.leases.c.last_seq >= seq,
        )
        .limit(1)
    ).first()
