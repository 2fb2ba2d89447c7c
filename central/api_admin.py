"""The admin API under `/api/admin/v1/` (bearer admin tokens): label previews, serial lookup.

Admin pages build on it; `lineledger-central admin-token add` creates a token.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, g, request

from central import agents, reports, review
from central import tables as T
from central.admin import admin_token_name, label_templates, tenant_by_org
from central.api_requests import json_object, whole_number
from central.auth import bearer_token
from central.errors import (
    ERR_INVALID,
    ERR_QUARANTINE_UNKNOWN,
    ERR_UNAUTHORIZED,
    ERR_WORK_ORDER_UNKNOWN,
    CentralError,
    NotFound,
    Unauthorized,
)
from central.ingest import CLONE_SIGNAL
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
    """Require a live admin token; its name is the actor of what the request changes."""
    token = bearer_token(request.headers.get("Authorization", ""))
    with runtime().store.read() as conn:
        name = admin_token_name(conn, token) if token else None
    if name is None:
        raise Unauthorized(ERR_UNAUTHORIZED, "send Authorization: Bearer <admin token>")
    g.actor = f"token:{name}"


def actor() -> str:
    """Return who makes the current admin request."""
    name: str = g.actor
    return name


def json_body() -> dict[str, Any]:
    """Return the request's JSON object (the admin API takes small bodies only)."""
    return json_object(64 * 1024)


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
    found = verify_code(rt.store, rt.keyring, code[:200], internal=True)
    with rt.store.read() as conn:
        clones = conn.execute(
            sa.select(sa.func.count())
            .select_from(T.events)
            .where(T.events.c.serial == found.serial, T.events.c.code == CLONE_SIGNAL)
        ).scalar_one()
    # scans of this serial by another line than its own (a copied label)
    return {**found.to_dict(), "clone_signals": clones}


@bp.post("/agents/<agent_id>/revoke")
def agent_revoke(agent_id: str) -> dict[str, Any]:
    """Revoke an agent: its calls are refused and its leases closed (body: {"reason"})."""
    rt = runtime()
    reason = str(json_body().get("reason") or "")
    return {"ok": True, **agents.revoke_agent(rt.store, agent_id[:64], reason, actor(), utcnow())}


@bp.post("/agents/<agent_id>/reinstate")
def agent_reinstate(agent_id: str) -> dict[str, Any]:
    """Let a revoked agent call again (body: {"reason"})."""
    rt = runtime()
    reason = str(json_body().get("reason") or "")
    agents.reinstate_agent(rt.store, agent_id[:64], reason, actor(), utcnow())
    return {"ok": True, "agent_id": agent_id[:64], "status": "active"}


def _entry_id(text: str) -> int:
    entry_id = whole_number(text)
    if entry_id is None:
        raise NotFound(ERR_QUARANTINE_UNKNOWN, f"no quarantine entry {text[:20]!r}")
    return entry_id


@bp.post("/quarantine/<entry>/release")
def quarantine_release(entry: str) -> dict[str, Any]:
    """Release a held serial and apply its held events (body: {"reason"})."""
    rt = runtime()
    reason = str(json_body().get("reason") or "")
    tolerance = dt.timedelta(seconds=rt.config.clock_tolerance_seconds)
    decision = review.release(
        rt.store, rt.keyring, _entry_id(entry), reason, actor(), utcnow(), tolerance
    )
    return decision.to_dict()


@bp.post("/quarantine/<entry>/confirm")
def quarantine_confirm(entry: str) -> dict[str, Any]:
    """Confirm a held serial is not to be trusted: retire it (body: {"reason"})."""
    rt = runtime()
    reason = str(json_body().get("reason") or "")
    return review.confirm(rt.store, _entry_id(entry), reason, actor(), utcnow()).to_dict()


@bp.get("/reports/reconcile")
def reconcile_report() -> Response:
    """Return the reconciliation report of a work order (`org`, `work_order`) or a `lease`."""
    fmt = request.args.get("format", "json")
    if fmt not in ("json", "csv"):
        raise CentralError(ERR_INVALID, "format is json or csv")
    lease_id = request.args.get("lease")
    with runtime().store.read() as conn:
        if lease_id:
            body = reports.report_for_lease(conn, lease_id)
        else:
            org = request.args.get("org", "").upper()[:6]
            number = request.args.get("work_order", "")[:64]
            body = reports.report_for_work_order(conn, org, number)
    if fmt == "csv":
        return Response(reports.render(body, "csv"), mimetype="text/csv; charset=utf-8")
    return Response(reports.render(body, "json"), mimetype="application/json")
