"""The admin API of the ERP sync: its status, a pull on request, and file uploads.

A pull runs in the jobs process, never in a web worker (it may wait minutes on a slow ERP):
`POST /erp/sync` queues one and answers 202 with the sync's id; `GET /erp/status` shows how
it went. An upload (`POST /erp/import`) is bounded by `max_body_bytes` and synced at once.
Each endpoint refuses a query parameter it does not know (400 ERR_INVALID), and `dry_run`
takes only 1/0, true/false, yes/no (any case): a misspelt dry run never becomes a real import.
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


_BOOLS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


def _only(*allowed: str) -> None:
    """Refuse a query parameter this endpoint does not know, or one given twice: a typo
    such as `dry-run=true` must never fall back to the default (a real import)."""
    for key in request.args:
        if key not in allowed:
            raise CentralError(
                ERR_INVALID,
                f"unknown query parameter {key[:40]!r}; this endpoint takes " + ", ".join(allowed),
            )
        if len(request.args.getlist(key)) > 1:
            raise CentralError(ERR_INVALID, f"query parameter {key!r} is given twice")


def _flag(name: str) -> bool:
    """Return a boolean query parameter: 1/0, true/false, yes/no (any case); else 400."""
    text = request.args.get(name, "false").strip().lower()
    if text not in _BOOLS:
        raise CentralError(ERR_INVALID, f"{name} must be true or false (1/0, yes/no)")
    return _BOOLS[text]


def _org() -> str:
    org = request.args.get("org", "").strip().upper()
    if not org:
        raise CentralError(ERR_INVALID, "say which tenant: ?org=ORG")
    return org[:6]


@bp.get("/erp/status")
def status() -> dict[str, Any]:
    """Return the last sync, its status and counts with reasons, and the next pull."""
    _only("org", "history")
    text = request.args.get("history", "0")
    history = whole_number(text)
    if history is None or history > 100:
        raise CentralError(ERR_INVALID, "history must be 0..100")
    with runtime().store.read() as conn:
        return erp.erp_status(conn, _org(), utcnow(), history)


@bp.post("/erp/sync")
def sync() -> tuple[dict[str, Any], int]:
    """Queue a pull of the tenant's ERP for the jobs process; answer 202 with its id."""
    _only("org")
    org = _org()
    sync_id, queued = erp_pull.queue_pull(runtime().store, org, api_admin.actor(), utcnow())
    return {"ok": True, "org": org, "sync_id": sync_id, "queued": queued, "status": "queued"}, 202


@bp.post("/erp/import")
def import_file() -> dict[str, Any]:
    """Sync an uploaded ERP export (JSON, or CSV with a header row) now; return the report."""
    _only("org", "dry_run", "name")
    org = _org()
    dry_run = _flag("dry_run")
    kind = _KINDS.get(request.mimetype)
    if kind is None:
        raise CentralError(
            ERR_UNSUPPORTED_MEDIA_TYPE, "send Content-Type: application/json or text/csv", 415
        )
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
