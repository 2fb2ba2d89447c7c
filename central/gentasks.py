"""Generation tasks (issue #9): SSCCs and randomised serials made ahead for a work order.

A supervisor asks (CLI or admin API) and gets a task id at once; the jobs process
(`lineledger-central jobs`, job `generation_tasks`) claims the task and generates in chunks of
`CHUNK`, each chunk one transaction that writes the numbers, the task's progress and the work
order's counts together. So a killed process loses nothing: another claims the task once its
heartbeat is stale and carries on from the committed count. Cancel is honoured between chunks.

What a request means: `quantity` N without `force` is the number the work order should have;
only the missing ones are made, and a request while a task of the same kind is queued or
running answers that task if it has the same target, and is refused (ERR_TASK_ACTIVE) if not.
With `force`, N more are made in addition. Serials are bounded by what the work order may
consume (`leases.allowed_serials`; with `force`, the total): ERR_OVER_ALLOWANCE. SSCCs are
not (spares are allowed), only by `MAX_QUANTITY` per request. Numbers are never
reused: SSCC serial references come from a 64-bit counter per (extension digit, company
prefix) advanced in the chunk's transaction; random serials are unique per GTIN by the pool's
primary key (insert, skip the rare collision, draw again).

Only `sgtin-random` serials are made ahead: `standard` and `sgtin-seq` serials come from range
leases on the lines (ERR_NOT_PREGENERATED).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from central import audit, genhistory
from central import tables as T
from central.db import Store
from central.errors import (
    ERR_INVALID,
    ERR_NOT_PREGENERATED,
    ERR_OVER_ALLOWANCE,
    ERR_SCOPE_FOREIGN,
    ERR_SERIAL_SPACE,
    ERR_SSCC_EXHAUSTED,
    ERR_SSCC_SOURCE,
    ERR_TASK_ACTIVE,
    ERR_TASK_FINISHED,
    ERR_TASK_UNKNOWN,
    ERR_TENANT_UNKNOWN,
    ERR_WORK_ORDER_CLOSED,
    ERR_WORK_ORDER_UNKNOWN,
    CentralError,
    Conflict,
    NotFound,
)
from central.genconfig import SSCC_PER_REQUEST
from central.gs1native import RandomSerialSpec, SsccSource, first_enabled_source, random_serials
from central.leases import allowed_serials
from central.timeutil import as_utc, new_id, utcnow
from protocol.errors import ProtocolError

SERIALS, SSCC = "serials", "sscc"
KINDS = (SERIALS, SSCC)
QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED = (
    "queued",
    "running",
    "completed",
    "failed",
    "cancelled",
)
ACTIVE = (QUEUED, RUNNING)
FINISHED = (COMPLETED, FAILED, CANCELLED)
CHUNK = 5_000
MAX_QUANTITY = {SERIALS: 10_000_000, SSCC: SSCC_PER_REQUEST}
NOMINAL_RATE = 10_000  # numbers per second, for an estimate before a task has started
JOB_ACTOR = "job:generation_tasks"
_HISTORY_ACTION = {SERIALS: "serial_generation", SSCC: "sscc_generation"}
_WO_COLUMNS = {
    SERIALS: ("generated_serials", "serial_status", "last_serial_generation_at"),
    SSCC: ("generated_sscc", "sscc_status", "last_sscc_generation_at"),
}


class TaskLost(Exception):
    """Another process took the task over (or it finished): stop working on it."""


@dataclass(frozen=True)
class Task:
    """One generation task as a client sees it."""

    id: str
    org: str
    work_order: str
    kind: str
    requested: int
    done: int
    status: str
    force: bool
    params: dict[str, Any]
    error: str | None
    actor: str
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    cancel_requested_at: dt.datetime | None
    heartbeat_at: dt.datetime | None

    @classmethod
    def from_row(cls, row: Row[Any]) -> Task:
        """Build a task from a `generation_tasks` row joined with its tenant and work order."""
        return cls(
            id=row.id,
            org=row.org_code,
            work_order=row.number,
            kind=row.kind,
            requested=row.requested,
            done=row.done,
            status=row.status,
            force=bool(row.force),
            params=json.loads(row.params or "{}"),
            error=row.error,
            actor=row.actor,
            created_at=as_utc(row.created_at),  # type: ignore[arg-type]
            started_at=as_utc(row.started_at),
            finished_at=as_utc(row.finished_at),
            cancel_requested_at=as_utc(row.cancel_requested_at),
            heartbeat_at=as_utc(row.heartbeat_at),
        )

    def eta(self, now: dt.datetime) -> dt.datetime | None:
        """Return when the task should finish, from its rate so far (None once finished)."""
        if self.status in FINISHED:
            return None
        left = max(self.requested - self.done, 0)
        if self.status == RUNNING and self.started_at is not None and self.done > 0:
            elapsed = max((now - self.started_at).total_seconds(), 0.001)
            return now + dt.timedelta(seconds=left * elapsed / self.done)
        return now + dt.timedelta(seconds=left / NOMINAL_RATE)

    def to_dict(self, now: dt.datetime) -> dict[str, Any]:
        """Return the task as JSON-friendly values, with its progress and ETA."""
        eta = self.eta(now)
        return {
            "task_id": self.id,
            "org": self.org,
            "work_order": self.work_order,
            "kind": self.kind,
            "status": self.status,
            "requested": self.requested,
            "done": self.done,
            "progress": round(self.done / self.requested, 4) if self.requested else 1.0,
            "force_regenerate": self.force,
            "target": self.params.get("target"),
            "error": self.error,
            "actor": self.actor,
            "created_at": self.created_at.isoformat(),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "cancel_requested_at": _iso(self.cancel_requested_at),
            "heartbeat_at": _iso(self.heartbeat_at),
            "estimated_completion": _iso(eta),
        }


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _task_query() -> sa.Select[Any]:
    t, wo, tn = T.generation_tasks, T.work_orders, T.tenants
    return (
        sa.select(t, wo.c.number, tn.c.org_code)
        .join(wo, wo.c.id == t.c.work_order_id)
        .join(tn, tn.c.id == t.c.tenant_id)
    )


def get_task(conn: Connection, task_id: str) -> Task:
    """Return a task by id, or raise ERR_TASK_UNKNOWN."""
    row = conn.execute(_task_query().where(T.generation_tasks.c.id == task_id[:36])).first()
    if row is None:
        raise NotFound(ERR_TASK_UNKNOWN, f"no generation task {task_id[:36]!r}")
    return Task.from_row(row)


def find_work_order(conn: Connection, org: str | None, number: str) -> Row[Any]:
    """Return a work order by number (and org, which may be left out if the number is unique)."""
    wo, tn = T.work_orders, T.tenants
    query = (
        sa.select(wo, tn.c.org_code)
        .join(tn, tn.c.id == wo.c.tenant_id)
        .where(wo.c.number == number[:64])
    )
    if org:
        if conn.execute(sa.select(tn.c.id).where(tn.c.org_code == org)).first() is None:
            raise NotFound(ERR_TENANT_UNKNOWN, f"no tenant with org code {org[:6]!r}")
        query = query.where(tn.c.org_code == org)
    rows = conn.execute(query.limit(2)).all()
    if not rows:
        where = f"{org} has" if org else "there is"
        raise NotFound(ERR_WORK_ORDER_UNKNOWN, f"{where} no work order {number[:64]!r}")
    if len(rows) > 1:
        raise CentralError(
            ERR_INVALID, f"several tenants have work order {number[:64]!r}: give --org / org"
        )
    return rows[0]


def _sscc_source(conn: Connection, tenant_id: int) -> SsccSource:
    raw = conn.execute(
        sa.select(T.generation_config.c.sscc_sources).where(
            T.generation_config.c.tenant_id == tenant_id
        )
    ).scalar()
    try:
        source = first_enabled_source(json.loads(raw or "[]"))
    except ValueError:
        source = None
    except ProtocolError as exc:
        raise CentralError(ERR_SSCC_SOURCE, exc.message) from None
    if source is None:
        raise CentralError(
            ERR_SSCC_SOURCE,
            "the tenant has no enabled SSCC source (company prefix and extension digit) in its "
            "generation configuration",
        )
    return source


def _random_spec(product: Row[Any]) -> RandomSerialSpec:
    if product.serial_format != "sgtin-random" or not product.gtin:
        raise CentralError(
            ERR_NOT_PREGENERATED,
            f"product {product.sku} uses serial format {product.serial_format}: its serials "
            "come from range leases on the lines and are not made ahead; only sgtin-random "
            "serials are (lineledger-central product serial-format)",
        )
    return RandomSerialSpec(product.serial_alphabet, product.serial_length)


def _active(conn: Connection, work_order_id: int, kind: str) -> list[Row[Any]]:
    t = T.generation_tasks.c
    return list(
        conn.execute(
            sa.select(T.generation_tasks)
            .where(t.work_order_id == work_order_id, t.kind == kind, t.status.in_(ACTIVE))
            .order_by(t.created_at)
        ).all()
    )


def _pending_sum(conn: Connection, condition: Any) -> int:
    t = T.generation_tasks.c
    value = conn.execute(
        sa.select(sa.func.coalesce(sa.func.sum(t.requested - t.done), 0)).where(
            t.status.in_(ACTIVE), condition
        )
    ).scalar_one()
    return int(value)


def request_generation(
    store: Store,
    org: str | None,
    number: str,
    kind: str,
    quantity: int,
    force: bool,
    actor: str,
    now: dt.datetime,
) -> tuple[Task | None, dict[str, Any]]:
    """Queue a generation task for a work order; return the task (None: nothing to do) and
    an answer that says whether it was created, already running, or not needed."""
    if kind not in KINDS:
        raise CentralError(ERR_INVALID, f"kind is one of {', '.join(KINDS)}")
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise CentralError(ERR_INVALID, "quantity is a whole number")
    if not 1 <= quantity <= MAX_QUANTITY[kind]:
        raise CentralError(ERR_INVALID, f"quantity must be 1..{MAX_QUANTITY[kind]:,}")
    generated_col = _WO_COLUMNS[kind][0]
    with store.write() as conn:
        found = find_work_order(conn, org, number)
        # serialise requests for one work order (PostgreSQL; SQLite has one writer anyway),
        # and read its counts under that lock
        wo = conn.execute(
            store.lock_row(sa.select(T.work_orders).where(T.work_orders.c.id == found.id))
        ).one()
        org_code = found.org_code
        if wo.status != "open":
            raise Conflict(ERR_WORK_ORDER_CLOSED, f"work order {number} is {wo.status}, not open")
        generated = int(getattr(wo, generated_col))
        params: dict[str, Any] = {}
        if kind == SERIALS:
            product = conn.execute(
                sa.select(T.products).where(T.products.c.id == wo.product_id)
            ).one()
            spec = _random_spec(product)
            params.update(gtin=product.gtin, alphabet=spec.alphabet, length=spec.length)
        else:
            source = _sscc_source(conn, wo.tenant_id)
            params["source"] = source.to_dict()
        active = _active(conn, wo.id, kind)
        if not force and active:
            task = get_task(conn, active[-1].id)
            active_target = task.params.get("target")
            if active_target != quantity:
                raise Conflict(
                    ERR_TASK_ACTIVE,
                    f"task {task.id} is {task.status}, making the {kind} of work order "
                    f"{number} up to {active_target}, not the {quantity} asked: ask again "
                    f"when it has finished, or cancel it (lineledger-central work-order "
                    f"task-cancel {task.id})",
                )
            return task, {
                "created": False,
                "message": f"a task of this kind is already {task.status} (target {quantity})",
            }
        missing = quantity if force else quantity - generated
        t = T.generation_tasks.c
        pending = _pending_sum(conn, sa.and_(t.work_order_id == wo.id, t.kind == kind))
        target = generated + pending + missing if force else quantity
        if kind == SERIALS:
            _check_allowance(wo, number, target, generated + pending, force)
        if missing <= 0:
            return None, {
                "created": False,
                "message": f"work order {number} already has {generated} ({quantity} asked)",
            }
        params["target"] = target
        if kind == SERIALS:
            _check_pool_space(conn, spec, params["gtin"], missing)
        else:
            _check_sscc_space(conn, source, missing)
        task_id = new_id(now)
        conn.execute(
            T.generation_tasks.insert().values(
                id=task_id,
                tenant_id=wo.tenant_id,
                work_order_id=wo.id,
                kind=kind,
                requested=missing,
                done=0,
                force=force,
                status=QUEUED,
                params=json.dumps(params, sort_keys=True),
                actor=actor[:128],
                created_at=now,
            )
        )
        status_col = _WO_COLUMNS[kind][1]
        changes: dict[str, Any] = {status_col: "in_progress", "updated_at": now}
        if kind == SSCC:
            changes["requested_sscc"] = target
        conn.execute(T.work_orders.update().where(T.work_orders.c.id == wo.id).values(**changes))
        details = {
            "task_id": task_id,
            "kind": kind,
            "quantity": quantity,
            "force": force,
            "to_generate": missing,
            "target": target,
        }
        audit.record(
            conn,
            actor,
            f"work_order.generate_{kind}",
            f"work_order:{org_code}/{wo.number}",
            now,
            None,
            details,
            wo.tenant_id,
        )
        task = get_task(conn, task_id)
    return task, {"created": True, "message": f"{kind} generation queued: {missing} to make"}


def _check_allowance(wo: Row[Any], number: str, target: int, has: int, force: bool) -> None:
    """Refuse a serials target above what the work order may consume (ERR_OVER_ALLOWANCE).

    The bound is `leases.allowed_serials` (quantity x (1 + overage %)), the same one the
    edge's leases honour; with `force` it bounds what the order has, has queued and asks more.
    """
    allowed = allowed_serials(int(wo.quantity), float(wo.overage_pct))
    if target <= allowed:
        return
    if force:
        asked = f"{has:,} made or queued + {target - has:,} more = {target:,}"
    else:
        asked = f"{target:,}"
    raise CentralError(
        ERR_OVER_ALLOWANCE,
        f"work order {number} may consume at most {allowed:,} serials (quantity "
        f"{int(wo.quantity):,} + {float(wo.overage_pct):g} % overage), not {asked}: raise "
        f"its quantity or overage first (lineledger-central work-order update --number "
        f"{number} --quantity N / --overage PCT)",
    )


def _check_pool_space(conn: Connection, spec: RandomSerialSpec, gtin: str, more: int) -> None:
    """Refuse when the GTIN would hold so many serials that a guess hits with p >= 1/10,000."""
    pool = T.serial_pool.c
    have = conn.execute(
        sa.select(sa.func.count()).select_from(T.serial_pool).where(pool.gtin == gtin)
    ).scalar_one()
    t = T.generation_tasks.c
    pending = _pending_sum(conn, sa.and_(t.kind == SERIALS, t.params.like(f'%"gtin": "{gtin}"%')))
    if have + pending + more > spec.max_pool_size:
        raise Conflict(
            ERR_SERIAL_SPACE,
            f"GTIN {gtin} may hold at most {spec.max_pool_size:,} randomised serials of "
            f"{spec.length} characters from {len(spec.alphabet)} (guess probability below "
            f"1/10,000); it has {have:,}, {pending:,} queued, {more:,} asked",
        )


def _counter_next(conn: Connection, key: str) -> int:
    value = conn.execute(
        sa.select(T.number_counters.c.next_value).where(T.number_counters.c.key == key)
    ).scalar()
    return int(value or 0)


def _check_sscc_space(conn: Connection, source: SsccSource, more: int) -> None:
    t = T.generation_tasks.c
    pending = _pending_sum(
        conn,
        sa.and_(t.kind == SSCC, t.params.like(f'%"company_prefix": "{source.company_prefix}"%')),
    )
    left = source.capacity - _counter_next(conn, source.counter_key) - pending
    if more > left:
        raise Conflict(ERR_SSCC_EXHAUSTED, _exhausted(source, max(left, 0)))


def _exhausted(source: SsccSource, left: int) -> str:
    return (
        f"company prefix {source.company_prefix} with extension digit "
        f"{source.extension_digit} has {left:,} SSCC serial references left: add another "
        "SSCC source (or extension digit) to the generation configuration"
    )


def cancel_task(store: Store, task_id: str, actor: str, now: dt.datetime) -> Task:
    """Cancel a task: a queued one at once, a running one between two chunks."""
    t = T.generation_tasks.c
    with store.write() as conn:
        task = get_task(conn, task_id)
        # lock the row: a runner claiming it meanwhile waits, then finds it no longer queued
        row = conn.execute(
            store.lock_row(sa.select(T.generation_tasks).where(t.id == task.id))
        ).one()
        task = get_task(conn, task.id)
        if task.status in FINISHED:
            raise Conflict(ERR_TASK_FINISHED, f"task {task.id} is {task.status} already")
        if task.status == QUEUED:
            _finish(conn, row, CANCELLED, now, actor)
        else:
            conn.execute(
                T.generation_tasks.update()
                .where(t.id == task.id, t.cancel_requested_at.is_(None))
                .values(cancel_requested_at=now)
            )
        audit.record(
            conn,
            actor,
            "generation_task.cancel",
            f"work_order:{task.org}/{task.work_order}",
            now,
            None,
            {"task_id": task.id, "kind": task.kind, "done": task.done, "status": task.status},
            row.tenant_id,
        )
        return get_task(conn, task.id)


def list_ssccs(
    conn: Connection, org: str | None, number: str, limit: int = 1000, after: str = ""
) -> list[str]:
    """Return a work order's SSCCs in order, `limit` at most, after a given one."""
    return [code for code, _ in list_ssccs_with_levels(conn, org, number, limit, after)]


def list_ssccs_with_levels(
    conn: Connection, org: str | None, number: str, limit: int = 1000, after: str = ""
) -> list[tuple[str, str | None]]:
    """Return a work order's SSCCs with their packaging level (l2, l3, l4; None: a spare)."""
    wo = find_work_order(conn, org, number)
    s = T.ssccs.c
    return [
        (code, level)
        for code, level in conn.execute(
            sa.select(s.sscc, s.level)
            .where(s.work_order_id == wo.id, s.sscc > after[:18])
            .order_by(s.sscc)
            .limit(limit)
        )
    ]


# --- running tasks (the jobs process) --------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """A task this process runs; `heartbeat` is its ownership token (the last value written)."""

    task_id: str
    heartbeat: dt.datetime
    resumed: bool


def _task_row(conn: Connection, task_id: str) -> Row[Any]:
    return conn.execute(
        sa.select(T.generation_tasks).where(T.generation_tasks.c.id == task_id)
    ).one()


def _claimable(stale_before: dt.datetime) -> Any:
    t = T.generation_tasks.c
    return sa.or_(
        t.status == QUEUED,
        sa.and_(
            t.status == RUNNING, sa.or_(t.heartbeat_at.is_(None), t.heartbeat_at < stale_before)
        ),
    )


def has_work(store: Store, now: dt.datetime, stale_after: dt.timedelta) -> bool:
    """Tell whether a task waits to be claimed (queued, or running with a stale heartbeat)."""
    t = T.generation_tasks.c
    with store.read() as conn:
        row = conn.execute(sa.select(t.id).where(_claimable(now - stale_after)).limit(1)).first()
    return row is not None


def claim_next(store: Store, now: dt.datetime, stale_after: dt.timedelta) -> Claim | None:
    """Claim the oldest claimable task with a conditional UPDATE; None if there is none."""
    t = T.generation_tasks.c
    with store.write() as conn:
        rows = conn.execute(
            sa.select(T.generation_tasks)
            .where(_claimable(now - stale_after))
            .order_by(t.created_at)
            .limit(10)
        ).all()
        for row in rows:
            beat = (
                t.heartbeat_at.is_(None)
                if row.heartbeat_at is None
                else t.heartbeat_at == row.heartbeat_at
            )
            done = conn.execute(
                T.generation_tasks.update()
                .where(t.id == row.id, t.status == row.status, beat)
                .values(status=RUNNING, heartbeat_at=now, started_at=row.started_at or now)
            )
            if done.rowcount != 1:
                continue  # another process claimed it first
            resumed = row.status == RUNNING
            genhistory.record(
                conn,
                tenant_id=row.tenant_id,
                action=_HISTORY_ACTION[row.kind],
                status="started",
                actor=JOB_ACTOR,
                now=now,
                work_order_id=row.work_order_id,
                requested=row.requested,
                generated=row.done,
                details={"resumed": resumed, "requested_by": row.actor},
                task_id=row.id,
            )
            return Claim(row.id, now, resumed)
    return None


def _finish(
    conn: Connection,
    row: Row[Any],
    status: str,
    now: dt.datetime,
    actor: str,
    error: str | None = None,
) -> None:
    """End a task and make its work order's status follow, with history and audit."""
    t = T.generation_tasks.c
    conn.execute(
        T.generation_tasks.update()
        .where(t.id == row.id)
        .values(status=status, finished_at=now, heartbeat_at=now, error=error)
    )
    generated_col, status_col, last_col = _WO_COLUMNS[row.kind]
    wo = conn.execute(sa.select(T.work_orders).where(T.work_orders.c.id == row.work_order_id)).one()
    target = int(json.loads(row.params or "{}").get("target") or 0)
    if _active(conn, row.work_order_id, row.kind):
        wo_status = "in_progress"  # another task of this kind still runs
    elif status == FAILED:
        wo_status = "failed"
    elif status == COMPLETED or getattr(wo, generated_col) >= target:
        wo_status = "completed"
    else:
        wo_status = "pending"  # cancelled before it was all made: ask again to finish
    changes: dict[str, Any] = {status_col: wo_status, "updated_at": now}
    if row.done:
        changes[last_col] = now
    if status == FAILED:
        changes["error_message"] = error
    elif status == COMPLETED:
        changes["error_message"] = None
    conn.execute(T.work_orders.update().where(T.work_orders.c.id == wo.id).values(**changes))
    started = as_utc(row.started_at)
    elapsed = None if started is None else int((now - started).total_seconds() * 1000)
    genhistory.record(
        conn,
        tenant_id=row.tenant_id,
        action=_HISTORY_ACTION[row.kind],
        status=status,
        actor=actor,
        now=now,
        work_order_id=row.work_order_id,
        requested=row.requested,
        generated=row.done,
        details={"requested_by": row.actor, "force": bool(row.force), "target": target},
        error=None if error is None else {"error": error},
        execution_ms=elapsed,
        task_id=row.id,
    )
    audit.record(
        conn,
        actor,
        f"generation_task.{status}",
        f"generation_task:{row.id}",
        now,
        None,
        {"kind": row.kind, "requested": row.requested, "done": row.done, "error": error},
        row.tenant_id,
    )


def _make_ssccs(store: Store, conn: Connection, row: Row[Any], count: int, now: dt.datetime) -> int:
    params = json.loads(row.params)
    src = params["source"]
    source = SsccSource(src.get("name", ""), src["company_prefix"], int(src["extension_digit"]))
    key = source.counter_key
    nc = T.number_counters.c
    conn.execute(
        store.insert(T.number_counters)
        .values(key=key, tenant_id=row.tenant_id, next_value=0, updated_at=now)
        .on_conflict_do_nothing(index_elements=["key"])
    )
    counter = conn.execute(store.lock_row(sa.select(T.number_counters).where(nc.key == key))).one()
    if counter.tenant_id != row.tenant_id:
        raise CentralError(
            ERR_SCOPE_FOREIGN,
            f"company prefix {source.company_prefix} is numbered by another tenant",
        )
    first = int(counter.next_value)
    if first + count > source.capacity:
        raise CentralError(ERR_SSCC_EXHAUSTED, _exhausted(source, source.capacity - first))
    moved = conn.execute(
        T.number_counters.update()
        .where(nc.key == key, nc.next_value == first)
        .values(next_value=first + count, updated_at=now)
    )
    if moved.rowcount != 1:
        raise TaskLost("the SSCC counter moved under us")
    codes = [source.build(ref) for ref in range(first, first + count)]
    levels = _levels_of_next(conn, row.work_order_id, count)
    if not store.is_sqlite:
        values = {
            "tenant_id": row.tenant_id,
            "work_order_id": row.work_order_id,
            "task_id": row.id,
            "now": now,
            "codes": codes,
            "levels": levels,
        }
        conn.execute(_PG_SSCC_INSERT, values)
        return count
    conn.execute(
        T.ssccs.insert(),
        [
            {
                "sscc": code,
                "tenant_id": row.tenant_id,
                "work_order_id": row.work_order_id,
                "level": level,
                "task_id": row.id,
                "created_at": now,
            }
            for code, level in zip(codes, levels, strict=True)
        ],
    )
    return count


def _levels_of_next(conn: Connection, work_order_id: int, count: int) -> list[str | None]:
    """Return the packaging level of each of the work order's next `count` SSCCs.

    A work order's SSCCs go to its cases (l2) first, then to its pallets (l3, l4), as many
    of each as the tenant's aggregation rules say the order needs (`genconfig.needs`); the
    i-th SSCC of the order has the i-th place. SSCCs beyond the needs (`--force-regenerate`,
    a request above the needs) have no level (NULL): spares a packer may use anywhere.
    """
    from central.genconfig import needs_for_work_order

    order = conn.execute(sa.select(T.work_orders).where(T.work_orders.c.id == work_order_id)).one()
    plan = needs_for_work_order(conn, order)["levels"]
    places: list[tuple[int, str]] = []  # (ordinal after the last SSCC of the level, level)
    end = 0
    for level in ("l2", "l3", "l4"):
        if level in plan:
            end += int(plan[level]["count"])
            places.append((end, level))
    start = int(order.generated_sscc)
    out: list[str | None] = []
    for i in range(start, start + count):
        out.append(next((level for end, level in places if i < end), None))
    return out


# PostgreSQL: one statement per batch with the serials as one array parameter. (A
# multi-row VALUES list of 1,000 rows x 7 parameters spends most of its time in the driver.)
_PG_POOL_INSERT = sa.text(
    "INSERT INTO serial_pool (gtin, serial, tenant_id, work_order_id, task_id, state, created_at)"
    " SELECT :gtin, s.serial, :tenant_id, :work_order_id, :task_id, 'free', :now"
    " FROM unnest(CAST(:serials AS varchar[])) AS s(serial)"
    " ON CONFLICT (gtin, serial) DO NOTHING RETURNING serial"
)

_PG_SSCC_INSERT = sa.text(
    "INSERT INTO ssccs (sscc, tenant_id, work_order_id, level, task_id, created_at)"
    " SELECT s.code, :tenant_id, :work_order_id, s.level, :task_id, :now"
    " FROM unnest(CAST(:codes AS varchar[]), CAST(:levels AS varchar[])) AS s(code, level)"
)


def _insert_pool(
    store: Store, conn: Connection, row: Row[Any], gtin: str, batch: list[str], now: dt.datetime
) -> int:
    """Insert serials into the pool, skipping any the GTIN has already; return how many went in."""
    if not store.is_sqlite:
        values = {
            "gtin": gtin,
            "tenant_id": row.tenant_id,
            "work_order_id": row.work_order_id,
            "task_id": row.id,
            "now": now,
            "serials": batch,
        }
        return len(conn.execute(_PG_POOL_INSERT, values).all())
    pool = T.serial_pool
    inserted = conn.execute(
        store.insert(pool)
        .on_conflict_do_nothing(index_elements=["gtin", "serial"])
        .returning(pool.c.serial),
        [
            {
                "gtin": gtin,
                "serial": serial,
                "tenant_id": row.tenant_id,
                "work_order_id": row.work_order_id,
                "task_id": row.id,
                "state": "free",
                "created_at": now,
            }
            for serial in batch
        ],
    ).all()
    return len(inserted)


def _make_serials(
    store: Store, conn: Connection, row: Row[Any], count: int, now: dt.datetime
) -> int:
    params = json.loads(row.params)
    spec = RandomSerialSpec(params["alphabet"], int(params["length"]))
    made = 0
    while made < count:
        batch = random_serials(spec, count - made)
        # a collision with an older serial of the GTIN is skipped, and drawn again
        made += _insert_pool(store, conn, row, params["gtin"], batch, now)
    return made


def step(store: Store, claim: Claim, now: dt.datetime, chunk: int = CHUNK) -> Claim | None:
    """Make one chunk of a claimed task (or end it); return the claim, None once it ended.

    Raises TaskLost if another process took the task over.
    """
    t = T.generation_tasks.c
    try:
        with store.write() as conn:
            row = conn.execute(
                store.lock_row(sa.select(T.generation_tasks).where(t.id == claim.task_id))
            ).one()
            if row.status != RUNNING or as_utc(row.heartbeat_at) != claim.heartbeat:
                raise TaskLost(claim.task_id)
            if row.cancel_requested_at is not None:
                _finish(conn, row, CANCELLED, now, JOB_ACTOR)
                return None
            count = min(chunk, row.requested - row.done)
            made = 0
            if count > 0:
                maker = _make_serials if row.kind == SERIALS else _make_ssccs
                made = maker(store, conn, row, count, now)
                generated_col = _WO_COLUMNS[row.kind][0]
                wo = T.work_orders.c
                conn.execute(
                    T.work_orders.update()
                    .where(wo.id == row.work_order_id)
                    .values({generated_col: getattr(wo, generated_col) + made, "updated_at": now})
                )
            conn.execute(
                T.generation_tasks.update()
                .where(t.id == row.id)
                .values(done=row.done + made, heartbeat_at=now)
            )
            if row.done + made >= row.requested:
                row = _task_row(conn, row.id)
                _finish(conn, row, COMPLETED, now, JOB_ACTOR)
                return None
            return Claim(claim.task_id, now, claim.resumed)
    except CentralError as exc:
        with store.write() as conn:
            row = conn.execute(
                store.lock_row(sa.select(T.generation_tasks).where(t.id == claim.task_id))
            ).one()
            if row.status != RUNNING or as_utc(row.heartbeat_at) != claim.heartbeat:
                raise TaskLost(claim.task_id) from None
            _finish(conn, row, FAILED, now, JOB_ACTOR, f"{exc.code}: {exc.message}")
        return None


def release(store: Store, claim: Claim) -> None:
    """Put a claimed task back in the queue (the process is stopping): another takes it."""
    t = T.generation_tasks.c
    with store.write() as conn:
        conn.execute(
            T.generation_tasks.update()
            .where(t.id == claim.task_id, t.status == RUNNING, t.heartbeat_at == claim.heartbeat)
            .values(status=QUEUED, heartbeat_at=None)
        )


def run_task(
    store: Store,
    claim: Claim,
    clock: Any = None,
    should_stop: Any = None,
) -> str:
    """Run a claimed task to its end; return its final status (`queued` if stopped)."""
    now_of = clock or utcnow
    current: Claim | None = claim
    while current is not None:
        if should_stop is not None and should_stop():
            release(store, current)
            return QUEUED
        current = step(store, current, now_of())
    with store.read() as conn:
        return str(_task_row(conn, claim.task_id).status)


def run_pending(
    store: Store,
    stale_after: dt.timedelta,
    clock: Any = None,
    should_stop: Any = None,
) -> dict[str, int]:
    """Claim and run tasks until none is left; return how many ended how."""
    now_of = clock or utcnow
    counts = {COMPLETED: 0, FAILED: 0, CANCELLED: 0, QUEUED: 0, "lost": 0}
    while should_stop is None or not should_stop():
        claim = claim_next(store, now_of(), stale_after)
        if claim is None:
            break
        try:
            status = run_task(store, claim, now_of, should_stop)
        except TaskLost:
            counts["lost"] += 1
            continue
        counts[status] = counts.get(status, 0) + 1
    return counts
