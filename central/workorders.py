"""Work orders after they are added: list and search them, show one with its history, change
or close one; every change is recorded with its before and after (audit log and history).

Lists page by keyset ("cursor"): a cursor names the sort value and id of the row a page
ended (or began) at, and the next page starts strictly after it in the order (sort field,
id). Rows inserted while someone pages never make a page skip or repeat an order that was
there when paging began, because every order sorts by immutable fields (numbers and
creation times never change) with the id breaking ties. A `page` number (an offset) is
accepted too, for the first jump; the `next` and `previous` links are always cursors.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from central import audit, genhistory
from central import tables as T
from central.admin import _NAME_OF_THING, _check, tenant_by_org
from central.db import Store
from central.errors import (
    ERR_INVALID,
    ERR_WORK_ORDER_CLOSED,
    ERR_WORK_ORDER_UNKNOWN,
    CentralError,
    Conflict,
    NotFound,
)
from central.leases import allowed_serials
from central.timeutil import as_utc, zone

OPEN, CLOSED = "open", "closed"
STATUSES = (OPEN, CLOSED)
SOURCES = ("erp", "manual")
GENERATION_STATUSES = ("pending", "in_progress", "completed", "failed")
# Sort fields: each is NOT NULL and never changes once the order exists, so (field, id) is
# a total order a cursor can resume, and each has an index (tenant_id, field, id).
SORT_FIELDS = ("created_at", "number", "quantity")
DEFAULT_SORT = "-created_at"
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
MAX_PAGE = 10_000
MAX_ARG = 200  # characters of any one query parameter
HISTORY_LIMIT = 100
EXPORT_CHUNK = 1000
# The fields a supervisor may change; on an `erp` order each change joins `manual_fields`.
EDITABLE = ("name", "quantity", "overage_pct", "tolerance_pct", "requested_sscc", "line")
CSV_FIELDS = (
    "number",
    "name",
    "sku",
    "production_type",
    "source",
    "status",
    "quantity",
    "allowed",
    "requested_sscc",
    "overage_pct",
    "tolerance_pct",
    "generated_serials",
    "generated_sscc",
    "serial_status",
    "sscc_status",
    "last_serial_generation_at",
    "last_sscc_generation_at",
    "error_message",
    "line",
    "created_at",
    "updated_at",
    "closed_at",
    "recalled_at",
    "erp_synced_at",
    "manual_fields",
)
_UNSET: Any = object()


def _bad(message: str) -> CentralError:
    return CentralError(ERR_INVALID, message)


@dataclass(frozen=True)
class WorkOrderQuery:
    """What a list asks for: filters, a sort and a page (validated by `parse_query`)."""

    status: str | None = None
    source: str | None = None
    serial_status: str | None = None
    sscc_status: str | None = None
    sku: str | None = None
    search: str | None = None
    date_from: dt.date | None = None  # creation date in the tenant's time zone, inclusive
    date_to: dt.date | None = None  # inclusive
    sort: str = DEFAULT_SORT
    page_size: int = DEFAULT_PAGE_SIZE
    page: int | None = None
    cursor: str | None = None


def _choice(args: Mapping[str, Any], name: str, choices: tuple[str, ...]) -> str | None:
    value = _arg(args, name)
    if value is None:
        return None
    if value not in choices:
        raise _bad(f"{name} is one of {', '.join(choices)}")
    return value


def _arg(args: Mapping[str, Any], name: str) -> str | None:
    value = args.get(name)
    if value is None or value == "":
        return None
    value = str(value)
    if len(value) > MAX_ARG:
        raise _bad(f"{name} is longer than {MAX_ARG} characters")
    if not value.isprintable():
        raise _bad(f"{name} must be printable text")
    return value


def _whole(args: Mapping[str, Any], name: str, low: int, high: int) -> int | None:
    value = _arg(args, name)
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()) or not low <= int(value) <= high:
        raise _bad(f"{name} must be a whole number {low}..{high}")
    return int(value)


def _date(args: Mapping[str, Any], name: str) -> dt.date | None:
    value = _arg(args, name)
    if value is None:
        return None
    try:
        if len(value) != 10:
            raise ValueError(value)
        return dt.date.fromisoformat(value)
    except ValueError:
        raise _bad(f"{name} must be a date YYYY-MM-DD") from None


def parse_query(args: Mapping[str, Any]) -> WorkOrderQuery:
    """Validate list parameters given as text (query string or CLI options)."""
    sort = _arg(args, "sort") or DEFAULT_SORT
    if sort.lstrip("-") not in SORT_FIELDS:
        raise _bad(f"sort is one of {', '.join(SORT_FIELDS)} (prefix - for descending)")
    query = WorkOrderQuery(
        status=_choice(args, "status", STATUSES),
        source=_choice(args, "source", SOURCES),
        serial_status=_choice(args, "serial_status", GENERATION_STATUSES),
        sscc_status=_choice(args, "sscc_status", GENERATION_STATUSES),
        sku=_arg(args, "sku"),
        search=_arg(args, "search"),
        date_from=_date(args, "from"),
        date_to=_date(args, "to"),
        sort=sort,
        page_size=_whole(args, "page_size", 1, MAX_PAGE_SIZE) or DEFAULT_PAGE_SIZE,
        page=_whole(args, "page", 1, MAX_PAGE),
        cursor=_arg(args, "cursor"),
    )
    if query.date_from and query.date_to and query.date_from > query.date_to:
        raise _bad("from is after to")
    if query.page is not None and query.cursor is not None:
        raise _bad("give page or cursor, not both")
    return query


@dataclass(frozen=True)
class _Cursor:
    sort: str
    backward: bool
    value: Any
    id: int


def _encode_cursor(sort: str, backward: bool, value: Any, row_id: int) -> str:
    if isinstance(value, dt.datetime):
        value = (as_utc(value) or value).isoformat()
    raw = json.dumps([sort, "p" if backward else "n", value, row_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(text: str, sort: str) -> _Cursor:
    """Read a cursor back; anything but one this module wrote is ERR_INVALID."""
    bad = _bad("cursor is not one this list gave out; start again without it")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        parts = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise bad from None
    if not (isinstance(parts, list) and len(parts) == 4):
        raise bad
    c_sort, c_dir, value, row_id = parts
    if c_sort != sort:
        raise _bad("cursor belongs to another sort order; start again without it")
    if c_dir not in ("n", "p") or type(row_id) is not int or not 0 < row_id < 2**63:
        raise bad
    field = sort.lstrip("-")
    if field == "created_at":
        if not isinstance(value, str) or len(value) > 40:
            raise bad
        try:
            value = as_utc(dt.datetime.fromisoformat(value))
        except ValueError:
            raise bad from None
    elif field == "quantity":
        if type(value) is not int or not 0 <= value < 2**31:
            raise bad
    elif not isinstance(value, str) or len(value) > 64:
        raise bad
    return _Cursor(sort, c_dir == "p", value, row_id)


def _columns() -> list[Any]:
    p = T.products.c
    return [T.work_orders, p.sku, p.name.label("product_name")]


def _filtered(tenant: Row[Any], query: WorkOrderQuery, dialect: str) -> sa.Select[Any]:
    """Return the SELECT of a tenant's work orders that match the query's filters.

    It reads `work_orders` alone (a SKU becomes its product ids), so the database can walk
    an index in the sort order and stop after one page; `_with_products` adds the product.
    """
    wo, p = T.work_orders.c, T.products.c
    stmt = sa.select(T.work_orders).where(wo.tenant_id == tenant.id)
    if query.sku is not None:
        stmt = stmt.where(
            wo.product_id.in_(sa.select(p.id).where(p.tenant_id == tenant.id, p.sku == query.sku))
        )
    for column, value in (
        (wo.status, query.status),
        (wo.source, query.source),
        (wo.serial_status, query.serial_status),
        (wo.sscc_status, query.sscc_status),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if query.search:
        # SQLite's LIKE ignores ASCII case already (lower() on every row would cost a third);
        # on PostgreSQL lower() ... LIKE is several times faster than ILIKE
        if dialect == "sqlite":
            number, name, text = wo.number, wo.name, query.search
        else:
            number, name = sa.func.lower(wo.number), sa.func.lower(wo.name)
            text = query.search.lower()
        stmt = stmt.where(
            sa.or_(number.contains(text, autoescape=True), name.contains(text, autoescape=True))
        )
    plant = zone(tenant.timezone)
    if query.date_from:
        start = dt.datetime.combine(query.date_from, dt.time(), plant).astimezone(dt.UTC)
        stmt = stmt.where(wo.created_at >= start)
    if query.date_to:
        end = dt.datetime.combine(query.date_to + dt.timedelta(days=1), dt.time(), plant)
        stmt = stmt.where(wo.created_at < end.astimezone(dt.UTC))
    return stmt


def _ordered(stmt: sa.Select[Any], sort: str, backward: bool) -> sa.Select[Any]:
    field = sort.lstrip("-")
    descending = sort.startswith("-") != backward
    column, row_id = T.work_orders.c[field], T.work_orders.c.id
    if descending:
        return stmt.order_by(column.desc(), row_id.desc())
    return stmt.order_by(column.asc(), row_id.asc())


def _after(stmt: sa.Select[Any], cursor: _Cursor) -> sa.Select[Any]:
    """Keep the rows strictly after the cursor in the direction it walks."""
    column = T.work_orders.c[cursor.sort.lstrip("-")]
    key = sa.tuple_(column, T.work_orders.c.id)
    bound = sa.tuple_(sa.literal(cursor.value, column.type), sa.literal(cursor.id))
    descending = cursor.sort.startswith("-") != cursor.backward
    return stmt.where(key < bound if descending else key > bound)


def _with_products(conn: Connection, rows: list[Row[Any]]) -> list[dict[str, Any]]:
    """Return the rows as dicts with their product's SKU and name (one query per call)."""
    p = T.products.c
    ids = sorted({r.product_id for r in rows})
    products = {
        r.id: r
        for i in range(0, len(ids), 500)
        for r in conn.execute(sa.select(p.id, p.sku, p.name).where(p.id.in_(ids[i : i + 500])))
    }
    return [to_dict(r, products[r.product_id].sku, products[r.product_id].name) for r in rows]


def to_dict(row: Row[Any], sku: str, product_name: str) -> dict[str, Any]:
    """Return one work order as the API and the CLI show it."""

    def when(value: dt.datetime | None) -> str | None:
        return None if value is None else (as_utc(value) or value).isoformat()

    return {
        "number": row.number,
        "name": row.name or row.number,
        "sku": sku,
        "product_name": product_name,
        "production_type": row.production_type,
        "source": row.source,
        "status": row.status,
        "quantity": row.quantity,
        "allowed": allowed_serials(row.quantity, row.overage_pct),
        "requested_sscc": row.requested_sscc,
        "overage_pct": row.overage_pct,
        "tolerance_pct": row.tolerance_pct,
        "generated_serials": row.generated_serials,
        "generated_sscc": row.generated_sscc,
        "serial_status": row.serial_status,
        "sscc_status": row.sscc_status,
        "last_serial_generation_at": when(row.last_serial_generation_at),
        "last_sscc_generation_at": when(row.last_sscc_generation_at),
        "error_message": row.error_message,
        "line": row.line,
        "created_at": when(row.created_at),
        "updated_at": when(row.updated_at),
        "closed_at": when(row.closed_at),
        "recalled_at": when(row.recalled_at),
        "erp_synced_at": when(row.erp_synced_at),
        "manual_fields": _json_list(row.manual_fields),
    }


def manual_fields(text: str | None) -> set[str]:
    """Return the fields a supervisor changed by hand on an ERP work order (JSON list)."""
    return set(_json_list(text))


def _json_list(text: str | None) -> list[str]:
    if not text or text == "[]":
        return []  # most orders: no JSON to parse
    try:
        value = json.loads(text or "[]")
    except ValueError:
        return []
    return [str(v) for v in value] if isinstance(value, list) else []


@dataclass(frozen=True)
class Page:
    """One page of a list: the total that match, cursors to the pages around it, its rows."""

    count: int
    next: str | None
    previous: str | None
    results: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "next": self.next,
            "previous": self.previous,
            "results": self.results,
        }


def list_work_orders(conn: Connection, org: str, query: WorkOrderQuery) -> Page:
    """Return one page of a tenant's work orders, filtered and sorted."""
    tenant = tenant_by_org(conn, org)
    base = _filtered(tenant, query, conn.dialect.name)
    count = conn.execute(base.with_only_columns(sa.func.count())).scalar_one()
    cursor = _decode_cursor(query.cursor, query.sort) if query.cursor else None
    backward = cursor is not None and cursor.backward
    stmt = _ordered(base if cursor is None else _after(base, cursor), query.sort, backward)
    size = query.page_size
    offset = (query.page - 1) * size if query.page else 0
    rows = conn.execute(stmt.limit(size + 1).offset(offset)).all()
    more = len(rows) > size
    rows = rows[:size]
    if backward:
        rows.reverse()
        has_previous, has_next = more, True
    else:
        has_previous, has_next = cursor is not None or offset > 0, more
    field = query.sort.lstrip("-")
    first, last = (rows[0], rows[-1]) if rows else (None, None)
    return Page(
        count=count,
        next=_encode_cursor(query.sort, False, getattr(last, field), last.id)
        if has_next and last is not None
        else None,
        previous=_encode_cursor(query.sort, True, getattr(first, field), first.id)
        if has_previous and first is not None
        else None,
        results=_with_products(conn, rows),
    )


def export_work_orders(store: Store, org: str, query: WorkOrderQuery) -> Iterator[dict[str, Any]]:
    """Yield every work order that matches, in order, reading in chunks (bounded memory).

    Each chunk is its own short read; the next resumes after the last row by keyset, so an
    export of any size holds one chunk in memory and never holds a long read open.
    """
    with store.read() as conn:
        tenant = tenant_by_org(conn, org)
    base = _filtered(tenant, query, store.dialect)
    cursor: _Cursor | None = None
    field = query.sort.lstrip("-")
    while True:
        stmt = _ordered(base if cursor is None else _after(base, cursor), query.sort, False)
        with store.read() as conn:
            rows = conn.execute(stmt.limit(EXPORT_CHUNK)).all()
            items = _with_products(conn, rows)
        yield from items
        if len(rows) < EXPORT_CHUNK:
            return
        cursor = _Cursor(query.sort, False, getattr(rows[-1], field), rows[-1].id)


def csv_row(item: Mapping[str, Any]) -> list[Any]:
    """Return a work order as one CSV row in `CSV_FIELDS` order."""
    out = []
    for name in CSV_FIELDS:
        value = item[name]
        if name == "manual_fields":
            value = " ".join(value)
        elif isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
            value = "'" + value  # a spreadsheet must not run a cell as a formula
        out.append("" if value is None else value)
    return out


def history(conn: Connection, work_order_id: int, limit: int = HISTORY_LIMIT) -> list[Any]:
    """Return a work order's newest history rows first (at most `limit`)."""
    h = T.generation_history.c
    rows = conn.execute(
        sa.select(T.generation_history)
        .where(h.work_order_id == work_order_id)
        .order_by(h.id.desc())
        .limit(limit)
    ).all()
    return [
        {
            "id": r.id,
            "action": r.action,
            "status": r.status,
            "requested_quantity": r.requested_quantity,
            "generated_quantity": r.generated_quantity,
            "details": json.loads(r.details or "{}"),
            "error_details": None if r.error_details is None else json.loads(r.error_details),
            "execution_ms": r.execution_ms,
            "task_id": r.task_id,
            "actor": r.actor,
            "created_at": (as_utc(r.created_at) or r.created_at).isoformat(),
        }
        for r in rows
    ]


def _one(conn: Connection, tenant_id: int, org: str, number: str) -> Row[Any]:
    wo = T.work_orders.c
    row = conn.execute(
        sa.select(*_columns())
        .join(T.products, T.products.c.id == wo.product_id)
        .where(wo.tenant_id == tenant_id, wo.number == number[:64])
    ).first()
    if row is None:
        raise NotFound(ERR_WORK_ORDER_UNKNOWN, f"{org} has no work order {number[:64]!r}")
    return row


def show_work_order(
    conn: Connection, org: str, number: str, history_limit: int = HISTORY_LIMIT
) -> dict[str, Any]:
    """Return one work order with its newest history rows."""
    from central.genconfig import needs, rules_for_tenant

    tenant = tenant_by_org(conn, org)
    row = _one(conn, tenant.id, org, number)
    return {
        **to_dict(row, row.sku, row.product_name),
        # serials per packaging level and SSCCs, from the tenant's aggregation rules
        "needs": needs(
            int(row.quantity), float(row.overage_pct), rules_for_tenant(conn, tenant.id)
        ),
        "history": history(conn, row.id, history_limit),
    }


def _check_name(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > 200 or not value.isprintable():
        raise _bad("name must be 1-200 printable characters")
    return value


def _check_line(value: str | None) -> str | None:
    return None if value is None else _check(_NAME_OF_THING, value, "line name")


def _lock_open(conn: Connection, store: Store, tenant_id: int, org: str, number: str) -> Row[Any]:
    """Return a tenant's work order, locked for the transaction; refuse a closed one."""
    wo = T.work_orders.c
    row = conn.execute(
        store.lock_row(
            sa.select(T.work_orders).where(wo.tenant_id == tenant_id, wo.number == number)
        )
    ).first()
    if row is None:
        raise NotFound(ERR_WORK_ORDER_UNKNOWN, f"{org} has no work order {number!r}")
    if row.status == CLOSED:
        raise Conflict(ERR_WORK_ORDER_CLOSED, f"work order {number} is closed")
    return row


def update_work_order(
    store: Store,
    org: str,
    number: str,
    actor: str,
    now: dt.datetime,
    reason: str | None = None,
    quantity: int | None = None,
    overage_pct: float | None = None,
    tolerance_pct: float | None = None,
    name: str | None = None,
    requested_sscc: int | None = None,
    line: Any = _UNSET,
) -> dict[str, Any]:
    """Change a work order's fields; return before and after.

    `line=None` lets any line produce it. On an order that came from the ERP, every field
    changed here joins `manual_fields`, so the next ERP sync does not overwrite it silently.
    """
    started = time.monotonic()
    changes: dict[str, Any] = {}
    if quantity is not None:
        if type(quantity) is not int or not 1 <= quantity <= 10_000_000:
            raise _bad("quantity must be 1..10,000,000")
        changes["quantity"] = quantity
    for field, value in (("overage_pct", overage_pct), ("tolerance_pct", tolerance_pct)):
        if value is not None:
            if type(value) not in (int, float) or not 0 <= value <= 100:
                raise _bad("percentages must be 0..100")
            changes[field] = float(value)
    if requested_sscc is not None:
        if type(requested_sscc) is not int or not 0 <= requested_sscc <= 10_000_000:
            raise _bad("requested SSCCs must be 0..10,000,000")
        changes["requested_sscc"] = requested_sscc
    if name is not None:
        changes["name"] = _check_name(name)
    if line is not _UNSET:
        changes["line"] = _check_line(line)
    if not changes:
        raise _bad("say what to change (name, quantity, overage, tolerance, requested SSCCs, line)")
    if reason is not None:
        reason = reason.strip() or None
        if reason is not None and (len(reason) > 500 or not reason.isprintable()):
            raise _bad("a reason is at most 500 printable characters")
    with store.write() as conn:
        tenant = tenant_by_org(conn, org)
        wo = T.work_orders.c
        row = _lock_open(conn, store, tenant.id, org, number)
        # Only what really changes is written and recorded: the same value again is no change.
        changes = {k: v for k, v in changes.items() if getattr(row, k) != v}
        if not changes:
            return {
                "work_order": number,
                "before": {},
                "after": {},
                "unchanged": True,
                "allowed": allowed_serials(row.quantity, row.overage_pct),
                "manual_fields": _json_list(row.manual_fields),
                "line": row.line,
            }
        before = {k: getattr(row, k) for k in changes}
        values: dict[str, Any] = {**changes, "updated_at": now}
        manual = _json_list(row.manual_fields)
        if row.source == "erp":
            manual = sorted(set(manual) | {k for k in changes if before[k] != changes[k]})
            values["manual_fields"] = json.dumps(manual)
        conn.execute(T.work_orders.update().where(wo.id == row.id).values(**values))
        after = {**{k: getattr(row, k) for k in ("quantity", "overage_pct")}, **changes}
        result = {
            "work_order": number,
            "before": before,
            "after": changes,
            "allowed": allowed_serials(after["quantity"], after["overage_pct"]),
            "manual_fields": manual,
            "line": changes.get("line", row.line),
        }
        audit.record(
            conn,
            actor,
            "work_order.update",
            f"work_order:{org}/{number}",
            now,
            reason,
            result,
            tenant.id,
        )
        genhistory.record(
            conn,
            tenant_id=tenant.id,
            action="work_order_update",
            status="completed",
            actor=actor,
            now=now,
            work_order_id=row.id,
            requested=after["quantity"],
            details={"before": before, "after": changes, "reason": reason},
            execution_ms=int((time.monotonic() - started) * 1000),
        )
    return result


def close_work_order(
    store: Store, org: str, number: str, actor: str, now: dt.datetime, reason: str
) -> dict[str, Any]:
    """Close a work order: lines no longer get it and no lease is sized for it again."""
    started = time.monotonic()
    reason = (reason or "").strip()
    if not reason or len(reason) > 500 or not reason.isprintable():
        raise _bad("say why the work order is closed (1-500 printable characters)")
    with store.write() as conn:
        tenant = tenant_by_org(conn, org)
        wo = T.work_orders.c
        row = _lock_open(conn, store, tenant.id, org, number)
        conn.execute(
            T.work_orders.update()
            .where(wo.id == row.id)
            .values(status=CLOSED, closed_at=now, updated_at=now)
        )
        result = {"work_order": number, "status": CLOSED, "closed_at": now.isoformat()}
        audit.record(
            conn,
            actor,
            "work_order.close",
            f"work_order:{org}/{number}",
            now,
            reason,
            result,
            tenant.id,
        )
        genhistory.record(
            conn,
            tenant_id=tenant.id,
            action="work_order_close",
            status="completed",
            actor=actor,
            now=now,
            work_order_id=row.id,
            requested=row.quantity,
            generated=row.generated_serials,
            details={"reason": reason, "before": {"status": row.status}},
            execution_ms=int((time.monotonic() - started) * 1000),
        )
    return result
