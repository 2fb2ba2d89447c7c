"""The admin API of work-order generation (issue #9): start, follow and cancel tasks.

`POST work-orders/<number>/generate-sscc` and `.../generate-serials` (body `{"quantity",
"force_regenerate", "org"}`) answer 202 with the task (`task_id`, `status: initiated`,
`estimated_completion`), or 200 when nothing new is started (a task of that kind with the
same target is already queued or running, or the work order has the quantity already). A
different target while one is active is 409 ERR_TASK_ACTIVE; serials beyond what the order
may consume are 400 ERR_OVER_ALLOWANCE. `GET tasks/<id>` shows
progress and ETA; `POST tasks/<id>/cancel` cancels. `GET work-orders/<number>/ssccs` pages
through a work order's SSCCs.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from central import api_admin, gentasks
from central.api_requests import whole_number
from central.errors import ERR_INVALID, ERR_TASK_UNKNOWN, CentralError, NotFound
from central.runtime import runtime
from central.timeutil import utcnow

bp = Blueprint("admin_generate", __name__, url_prefix="/api/admin/v1")
bp.before_request(api_admin.authenticate)

_TASK_ID_CHARS = frozenset("0123456789abcdef-")


def _org(body: dict[str, Any]) -> str | None:
    org = body.get("org", request.args.get("org"))
    if org is None or org == "":
        return None
    if not isinstance(org, str) or not 2 <= len(org) <= 6 or not org.isascii():
        raise CentralError(ERR_INVALID, "org is an org code (2-6 of A-Z 0-9)")
    return org.upper()


def _generate(number: str, kind: str) -> tuple[dict[str, Any], int]:
    body = api_admin.json_body()
    unknown = set(body) - {"quantity", "force_regenerate", "override_config", "org"}
    if unknown:
        raise CentralError(ERR_INVALID, f"unknown field(s): {', '.join(sorted(unknown))[:200]}")
    quantity = body.get("quantity")
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise CentralError(ERR_INVALID, "quantity is a whole number")
    force = body.get("force_regenerate", False)
    if not isinstance(force, bool):
        raise CentralError(ERR_INVALID, "force_regenerate is true or false")
    now = utcnow()
    task, answer = gentasks.request_generation(
        runtime().store, _org(body), number[:64], kind, quantity, force, api_admin.actor(), now
    )
    out: dict[str, Any] = {"ok": True, "message": answer["message"], "created": answer["created"]}
    if task is None:
        return {**out, "task_id": None, "status": "completed", "estimated_completion": None}, 200
    view = task.to_dict(now)
    out.update(
        task_id=task.id,
        status="initiated" if answer["created"] else task.status,
        estimated_completion=view["estimated_completion"],
        task=view,
    )
    return out, 202 if answer["created"] else 200


@bp.post("/work-orders/<path:number>/generate-sscc")
def generate_sscc(number: str) -> tuple[dict[str, Any], int]:
    """Start making the SSCCs a work order should have (202 with a task id)."""
    return _generate(number, gentasks.SSCC)


@bp.post("/work-orders/<path:number>/generate-serials")
def generate_serials(number: str) -> tuple[dict[str, Any], int]:
    """Start making the randomised serials a work order should have (202 with a task id)."""
    return _generate(number, gentasks.SERIALS)


def _task_id(text: str) -> str:
    if not 1 <= len(text) <= 36 or not _TASK_ID_CHARS.issuperset(text):
        raise NotFound(ERR_TASK_UNKNOWN, f"no generation task {text[:36]!r}")
    return text


@bp.get("/tasks/<task_id>")
def task_show(task_id: str) -> dict[str, Any]:
    """Return a generation task: status, done/requested, progress and ETA."""
    with runtime().store.read() as conn:
        task = gentasks.get_task(conn, _task_id(task_id))
    return {"ok": True, **task.to_dict(utcnow())}


@bp.post("/tasks/<task_id>/cancel")
def task_cancel(task_id: str) -> dict[str, Any]:
    """Cancel a task: a queued one at once, a running one after its current chunk."""
    task = gentasks.cancel_task(runtime().store, _task_id(task_id), api_admin.actor(), utcnow())
    return {"ok": True, **task.to_dict(utcnow())}


@bp.get("/work-orders/<path:number>/ssccs")
def ssccs(number: str) -> dict[str, Any]:
    """Return a work order's SSCCs in order (`limit` ≤ 10,000, page with `after`)."""
    text = request.args.get("limit", "1000")
    limit = whole_number(text)
    if limit is None or not 1 <= limit <= 10_000:
        raise CentralError(ERR_INVALID, "limit is 1..10000")
    after = request.args.get("after", "")
    if after and (len(after) != 18 or not after.isascii() or not after.isdigit()):
        raise CentralError(ERR_INVALID, "after is an 18-digit SSCC")
    with runtime().store.read() as conn:
        found = gentasks.list_ssccs_with_levels(conn, _org({}), number[:64], limit, after)
    return {
        "ok": True,
        "work_order": number[:64],
        "ssccs": [code for code, _ in found],
        "levels": [level for _, level in found],
        "count": len(found),
    }
