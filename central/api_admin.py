"""The admin API under `/api/admin/v1/` (bearer admin tokens): label previews, serial lookup.

Admin pages build on it; `lineledger-central admin-token add` creates a token.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, request

from central import tables as T
from central.admin import admin_token_valid, label_templates, tenant_by_org
from central.auth import bearer_token
from central.errors import (
    ERR_INVALID,
    ERR_UNAUTHORIZED,
    ERR_WORK_ORDER_UNKNOWN,
    CentralError,
    NotFound,
    Unauthorized,
)
from central.runtime import runtime
from central.timeutil import utcnow, zone
from central.verify import verify_code
from printers import LabelTemplate, PrinterError, UnitLabel
from printers.render import render_label
from protocol.gs1 import digital_link, sgtin_fields
from protocol.keys import derive_lease_key
from protocol.serials import MAX_SEQ, Scope, render

bp = Blueprint("admin", __name__, url_prefix="/api/admin/v1")

_MIMETYPES = {"png": "image/png", "pdf": "application/pdf", "zpl": "text/plain; charset=utf-8"}
# Previews carry a serial made with a key nobody holds, so a preview can never verify.
_PREVIEW_KEY = derive_lease_key(b"\0" * 32, "label-preview")


@bp.before_request
def authenticate() -> None:
    """Require a live admin token."""
    token = bearer_token(request.headers.get("Authorization", ""))
    with runtime().store.read() as conn:
        if not token or not admin_token_valid(conn, token):
            raise Unauthorized(ERR_UNAUTHORIZED, "send Authorization: Bearer <admin token>")


@bp.get("/label-preview")
def label_preview() -> Response:
    """Render the next label of a work order as PNG, PDF or ZPL with a sample serial."""
    org = request.args.get("org", "").upper()[:6]
    number = request.args.get("work_order", "")[:64]
    fmt = request.args.get("format", "png")
    if fmt not in _MIMETYPES:
        raise CentralError(ERR_INVALID, "format is png, pdf or zpl")
    rt = runtime()
    wo, p = T.work_orders, T.products
    with rt.store.read() as conn:
        tenant = tenant_by_org(conn, org)
        row = conn.execute(
            sa.select(
                wo.c.production_type, p.c.name, p.c.sku, p.c.category, p.c.gtin, p.c.label_template
            )
            .join(p, p.c.id == wo.c.product_id)
            .where(wo.c.tenant_id == tenant.id, wo.c.number == number)
        ).first()
        if row is None:
            raise NotFound(ERR_WORK_ORDER_UNKNOWN, f"{org} has no work order {number!r}")
        body = label_templates(conn, tenant.id).get(row.label_template, {})
    today = utcnow().astimezone(zone(tenant.timezone)).date()
    serial = render(Scope(org, row.production_type, row.category, today), MAX_SEQ, _PREVIEW_KEY)
    base = rt.config.public_base_url.rstrip("/")
    gs1 = sgtin_fields(row.gtin, serial) if row.gtin else ()
    url = digital_link(base, row.gtin, gs1[1][1]) if row.gtin else f"{base}/v/{serial}"
    try:
        label = UnitLabel(
            serial=serial,
            verify_url=url,
            product_name=row.name,
            sku=row.sku,
            work_order=number,
            prod_date=today.isoformat(),
            gs1=gs1,
        )
        data = render_label(label, LabelTemplate.from_dict(body), fmt)
    except PrinterError as exc:
        raise CentralError(exc.code, exc.message) from None
    return Response(data, mimetype=_MIMETYPES[fmt])


@bp.get("/serials/<path:code>")
def serial(code: str) -> dict[str, Any]:
    """Return everything about a serial (the internal verify view)."""
    rt = runtime()
    return verify_code(rt.store, rt.keyring, code[:200], internal=True).to_dict()
