"""The admin API of work orders (bearer admin tokens).

`GET work-orders` lists a tenant's work orders (`count`, `next`, `previous`, `results`, as the
reference's list; `next` / `previous` are cursor URLs), `GET work-orders.csv` streams all
that match as CSV, `GET work-orders/<number>` shows one with its history, `PATCH` changes it,
`POST work-orders/<number>/close` closes it. See `central.workorders` for the paging rule.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, request, stream_with_context

from central import api_admin
from central import workorders as W
from central.errors import ERR_INVALID, CentralError
from central.runtime import runtime
from central.timeutil import utcnow

bp = Blueprint("admin_workorders", __name__, url_prefix="/api/admin/v1")
bp.before_request(api_admin.authenticate)

_LIST_ARGS = (
    "org",
    "status",
    "source",
    "serial_status",
    "sscc_status",
    "sku",
    "search",
    "from",
    "to",
    "sort",
    "page_size",
    "page",
    "cursor",
)
_PATCH_FIELDS = {
    "name": "name",
    "quantity": "quantity",
    "overage_pct": "overage_pct",
    "tolerance_pct": "tolerance_pct",
    "requested_sscc": "requested_sscc",
    "line": "line",
}


def _org() -> str:
    org = request.args.get("org", "")
    if not org:
        raise CentralError(ERR_INVALID, "give org (the tenant's org code)")
    return org.upper()[:6]


def _query() -> W.WorkOrderQuery:
    unknown = sorted(set(request.args) - set(_LIST_ARGS))
    if unknown:
        raise CentralError(ERR_INVALID, f"unknown parameter {unknown[0][:40]!r}")
    return W.parse_query(request.args)


def _link(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    args = {k: v for k, v in request.args.items() if k not in ("cursor", "page")}
    return f"{request.base_url}?{urlencode({**args, 'cursor': cursor})}"


@bp.get("/work-orders")
def work_order_list() -> dict[str, Any]:
    """Return one page of a tenant's work orders, filtered and sorted."""
    query = _query()
    org = _org()
    with runtime().store.read() as conn:
        page = W.list_work_orders(conn, org, query)
    return {**page.to_dict(), "next": _link(page.next), "previous": _link(page.previous)}


@bp.get("/work-orders.csv")
def work_order_export() -> Response:
    """Stream every work order that matches as CSV (read in chunks: bounded memory)."""
    query = _query()
    org = _org()
    if query.page is not None or query.cursor is not None:
        raise CentralError(ERR_INVALID, "the export has every row: no page or cursor")
    store = runtime().store
    rows = W.export_work_orders(store, org, query)
    first = next(rows, None)  # errors (an unknown org) answer 4xx before streaming starts

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(W.CSV_FIELDS)
        if first is not None:
            writer.writerow(W.csv_row(first))
        for n, item in enumerate(rows, 1):
            writer.writerow(W.csv_row(item))
            if n % 500 == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    return Response(
        stream_with_context(lines()),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="work-orders-{org}.csv"'},
    )


@bp.route("/work-orders/<path:number>", methods=["GET", "PATCH"])
def work_order(number: str) -> dict[str, Any]:
    """Return one work order with its newest history rows (GET), or change it (PATCH)."""
    if request.method == "PATCH":
        return _update(number)
    with runtime().store.read() as conn:
        return W.show_work_order(conn, _org(), number)


def _update(number: str) -> dict[str, Any]:
    """Change a work order (JSON body: name, quantity, overage_pct, ..., reason)."""
    body = api_admin.json_body()
    unknown = sorted(set(body) - set(_PATCH_FIELDS) - {"reason"})
    if unknown:
        raise CentralError(ERR_INVALID, f"cannot change {unknown[0][:40]!r}")
    reason = body.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > 500):
        raise CentralError(ERR_INVALID, "reason is text of at most 500 characters")
    changes: dict[str, Any] = {}
    for key, arg in _PATCH_FIELDS.items():
        if key not in body:
            continue
        value = body[key]
        if key in ("name", "line"):
            if value is not None and not isinstance(value, str):
                raise CentralError(ERR_INVALID, f"{key} is text")
            if key == "name" and value is None:
                raise CentralError(ERR_INVALID, "name cannot be removed")
        changes[arg] = value
    return W.update_work_order(
        runtime().store, _org(), number[:64], api_admin.actor(), utcnow(), reason, **changes
    )


@bp.post("/work-orders/<path:number>/close")
def work_order_close(number: str) -> dict[str, Any]:
    """Close a work order (JSON body: {"reason"})."""
    reason = api_admin.json_body().get("reason")
    if not isinstance(reason, str):
        raise CentralError(ERR_INVALID, 'say why: {"reason": "..."}')
    return W.close_work_order(
        runtime().store, _org(), number[:64], api_admin.actor(), utcnow(), reason
    )
