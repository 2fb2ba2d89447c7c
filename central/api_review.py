"""The admin API of quarantine review (read side) and recalls.

`GET quarantine` lists entries (filters `org`, `reason`, `status`, `serial`, `limit`,
`before`), `GET quarantine/<id>` shows one in context, `POST recalls` recalls a serial
(`{"serial", "reason"}`) or a work order (`{"org", "work_order", "reason"}`). Releasing and
confirming entries live in `central.api_admin`.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from central import api_admin
from central import quarantine as Q
from central import recall as R
from central.api_requests import whole_number
from central.errors import ERR_INVALID, ERR_QUARANTINE_UNKNOWN, CentralError, NotFound
from central.runtime import runtime
from central.timeutil import utcnow

bp = Blueprint("admin_review", __name__, url_prefix="/api/admin/v1")
bp.before_request(api_admin.authenticate)


def _int_arg(name: str, default: int | None) -> int | None:
    text = request.args.get(name)
    if text is None or text == "":
        return default
    value = whole_number(text)
    if value is None:
        raise CentralError(ERR_INVALID, f"{name} must be a whole number")
    return value


@bp.get("/quarantine")
def quarantine_list() -> dict[str, Any]:
    """Return quarantine entries, newest first; page with `before=<smallest id seen>`."""
    args = request.args
    with runtime().store.read() as conn:
        entries = Q.list_entries(
            conn,
            org=(args.get("org") or "")[:6] or None,
            reason=(args.get("reason") or "")[:40] or None,
            status=args.get("status", Q.OPEN),
            serial=(args.get("serial") or "")[:64] or None,
            limit=_int_arg("limit", Q.DEFAULT_LIMIT) or 0,
            before=_int_arg("before", None),
        )
    return {"ok": True, "entries": entries}


@bp.get("/quarantine/<entry>")
def quarantine_show(entry: str) -> dict[str, Any]:
    """Return one entry with its held event, its serial's registry row and other entries."""
    entry_id = whole_number(entry)
    if entry_id is None:
        raise NotFound(ERR_QUARANTINE_UNKNOWN, f"no quarantine entry {entry[:20]!r}")
    with runtime().store.read() as conn:
        return Q.show_entry(conn, entry_id)


@bp.post("/recalls")
def recalls() -> tuple[dict[str, Any], int]:
    """Recall a serial or a work order; verify answers `recalled` for its serials."""
    body = api_admin.json_body()
    reason = body.get("reason")
    serial, work_order, org = body.get("serial"), body.get("work_order"), body.get("org")
    for name, value in (("reason", reason), ("serial", serial), ("work_order", work_order)):
        if value is not None and not isinstance(value, str):
            raise CentralError(ERR_INVALID, f"{name} must be a string")
    if org is not None and not isinstance(org, str):
        raise CentralError(ERR_INVALID, "org must be a string")
    if (serial is None) == (work_order is None):
        raise CentralError(ERR_INVALID, "send a serial or a work_order (with its org)")
    store, actor, now = runtime().store, api_admin.actor(), utcnow()
    if serial is not None:
        done = R.recall_serial(store, serial[:64], reason or "", actor, now, org)
    else:
        assert work_order is not None
        if not org:
            raise CentralError(ERR_INVALID, "a work order is named with its org")
        done = R.recall_work_order(store, org[:6], work_order[:64], reason or "", actor, now)
    return done, 200 if done.get("already_recalled") and not done["recalled"] else 201
