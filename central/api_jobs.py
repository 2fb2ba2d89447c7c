"""The admin API of the central jobs: their status and their recorded runs (read only).

Jobs never run inside a web worker: this API only reads what the jobs process (or cron)
recorded. It shares the admin API's prefix and its bearer-token check.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from central import api_admin
from central.api_requests import whole_number
from central.errors import ERR_INVALID, CentralError
from central.jobs import catalog
from central.jobs.runs import job_status, list_runs, scheduler_status
from central.runtime import runtime
from central.timeutil import utcnow

bp = Blueprint("admin_jobs", __name__, url_prefix="/api/admin/v1")
bp.before_request(api_admin.authenticate)

MAX_RUNS = 1000


@bp.get("/jobs")
def jobs() -> dict[str, Any]:
    """Return each job's last run, last success and last error, and the scheduler's state."""
    now = utcnow()
    rt = runtime()
    with rt.store.read() as conn:
        statuses = [job_status(conn, name) for name in catalog.JOBS]
        sched = scheduler_status(conn, now)
    out = []
    for status in statuses:
        job = catalog.JOBS[status.job]
        out.append(
            {
                **status.to_dict(now),
                "description": job.description,
                "interval_minutes": job.interval(rt.config).total_seconds() / 60,
            }
        )
    return {"ok": True, "scheduler": sched, "jobs": out}


@bp.get("/jobs/runs")
def runs() -> dict[str, Any]:
    """Return recorded runs, newest first (`job` filters, `limit` 1..1000, default 50)."""
    name = request.args.get("job") or None
    text = request.args.get("limit", "50")
    limit = whole_number(text)
    if limit is None or not 1 <= limit <= MAX_RUNS:
        raise CentralError(ERR_INVALID, f"limit must be 1..{MAX_RUNS}")
    job = catalog.find_job(name[:64]).name if name else None
    with runtime().store.read() as conn:
        found = list_runs(conn, job, limit)
    return {"ok": True, "runs": [run.to_dict() for run in found]}
