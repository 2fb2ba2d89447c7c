"""The admin API of the ERP sync: its status, a pull on request, and file uploads.

A pull runs in the jobs process, never in a web worker (it may wait minutes on a slow ERP):
`POST /erp/sync` queues one and answers 202 with the sync's id; `GET /erp/status` shows how
it went. An upload (`POST /erp/import`) is bounded by `max_body_bytes` and synced at once.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from central import api_admin, erp, erp_pull
from central.api_requests import whole_number
from central.errors import ERR_INVALID, ERR_UNSUPPORTED_MEDIA_TYPE, CentralError
from central.runtime import runtime
from central.timeutil import utcnow

bp = Blueprint("admin_erp", __name__, url_prefix="/api/admin/v1")
bp.before_request(api_admin.authenticate)

_KINDS = {"application/json": "json", "text/csv": "csv"}


def _org() -> str:
    org = request.args.get("org", "").strip().upper()
    if not org:
        raise CentralError(ERR_INVALID, "say which tenant: ?org=ORG")
    return org[:6]


@bp.get("/erp/status")
def status() -> dict[str, Any]:
    """Return the last sync, its status and counts with reasons, and the next pull."""
    text = request.args.get("history", "0")
    history = whole_number(text)
    if history is None or history > 100:
        raise CentralError(ERR_INVALID, "history must be 0..100")
    with runtime().store.read() as conn:
        return erp.erp_status(conn, _org(), utcnow(), history)


@bp.post("/erp/sync")
def sync() -> tuple[dict[str, Any], int]:
    """Queue a pull of the tenant's ERP for the jobs process; answer 202 with its id."""
    org = _org()
    sync_id, queued = erp_pull.queue_pull(runtime().store, org, api_admin.actor(), utcnow())
    return {"ok": True, "org": org, "sync_id": sync_id, "queued": queued, "status": "queued"}, 202


@bp.post("/erp/import")
def import_file() -> dict[str, Any]:
    """Sync an uploaded ERP export (JSON, or CSV with a header row) now; return the report."""
    org = _org()
    kind = _KINDS.get(request.mimetype)
    if kind is None:
        raise CentralError(
            ERR_UNSUPPORTED_MEDIA_TYPE, "send Content-Type: application/json or text/csv", 415
        )
    dry_run = request.args.get("dry_run", "false").lower() in ("1", "true", "yes")
    name = request.args.get("name", "").strip()[:100] or "upload"
    data = request.get_data(cache=False)
    report = erp.import_records(
        runtime().store,
        org,
        f"{name}.{kind}",
        data,
        api_admin.actor(),
        utcnow(),
        trigger=erp.FILE,
        dry_run=dry_run,
    )
    return {"ok": True, **report.to_dict()}
