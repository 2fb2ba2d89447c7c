"""The admin API of a tenant's generation configuration (issue #9).

`GET config?org=` shows it (the defaults, with `is_default`, if never set; the ERP token only
as `erp_token_set`), `PUT config?org=` replaces it with a full document, `PATCH config?org=`
changes the top-level fields sent (both also take a `GET config` answer, `{"ok", "config"}`,
as is), `GET config/history?org=` lists the changes, newest first.
A document with problems is refused as a whole: 400 `ERR_VALIDATION` with `details`
{field: [messages]}.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from central import api_admin
from central import genconfig as G
from central.api_requests import json_body, whole_number
from central.errors import ERR_INVALID, ERR_TENANT_UNKNOWN, CentralError, NotFound
from central.runtime import runtime
from central.timeutil import utcnow

bp = Blueprint("admin_genconfig", __name__, url_prefix="/api/admin/v1")
bp.before_request(api_admin.authenticate)


def _org() -> str:
    org = request.args.get("org", "")
    if not org:
        raise CentralError(ERR_INVALID, "name the tenant: ?org=ORG")
    if len(org) > 6:
        raise NotFound(ERR_TENANT_UNKNOWN, f"no tenant with org code {org[:12]!r}")
    return org.upper()


@bp.route("/config", methods=["GET", "PUT", "PATCH"])
def config() -> dict[str, Any]:
    """Show (GET), replace (PUT, a full document) or change (PATCH, the top-level fields
    sent) a tenant's generation configuration; `?dry_run=1` checks and writes nothing."""
    if request.method == "GET":
        with runtime().store.read() as conn:
            return {"ok": True, "config": G.load(conn, _org())}
    org = _org()
    document = json_body(G.MAX_DOCUMENT_BYTES)
    dry_run = request.args.get("dry_run") in ("1", "true")
    result = G.save(
        runtime().store,
        org,
        document,
        api_admin.actor(),
        utcnow(),
        partial=request.method == "PATCH",
        dry_run=dry_run,
    )
    return {
        "ok": True,
        "dry_run": result["dry_run"],
        "changed": result["changed"],
        "config": result["after"],
    }


@bp.get("/config/history")
def config_history() -> dict[str, Any]:
    """Return a tenant's configuration changes, newest first (`limit` 1..500, default 50)."""
    text = request.args.get("limit", "50")
    limit = whole_number(text)
    if limit is None or not 1 <= limit <= 500:
        raise CentralError(ERR_INVALID, "limit must be a whole number 1..500")
    with runtime().store.read() as conn:
        return {"ok": True, "history": G.history(conn, _org(), limit)}
