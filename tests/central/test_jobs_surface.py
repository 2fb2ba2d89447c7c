"""The jobs as people and monitoring see them: `check`, `jobs status|run|runs`, the admin API
and `/metrics` (last success per job, last run status, consistency_check_failures)."""

import datetime as dt
import json
import threading

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from central import admin
from central import tables as T
from central.cli import main
from central.jobs import locks
from tests.central.helpers import event, grant, push, serial_of
from tests.central.jobs_support import scope
from tests.central.test_errors import shape
from tests.conftest import runtime


@pytest.fixture
def run(central_config):
    env = {
        "LINELEDGER_CENTRAL_DB": central_config["db_url"],
        "LINELEDGER_CENTRAL_HOME": central_config["home"],
    }

    def invoke(*args):
        return CliRunner().invoke(main, list(args), env=env)

    return invoke


@pytest.fixture
def admin_headers(app):
    token = admin.add_admin_token(runtime(app).store, "ops", dt.datetime.now(dt.UTC))
    return {"Authorization": f"Bearer {token}"}


def _duplicate(client, tenant):
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 10)
    s = serial_of(g, 1)
    push(client, h, [event("issued", s, g.lease_id)])
    push(client, h, [event("issued", s, g.lease_id)])
    return s


def _runs(app):
    with runtime(app).store.read() as conn:
        return conn.execute(sa.select(T.job_runs).order_by(T.job_runs.c.id)).all()


def test_check_prints_the_summary_and_records_its_run(app, client, tenant, run):
    _duplicate(client, tenant)
    out = run("check")
    assert out.exit_code == 0, out.output
    assert "Mode: LIVE" in out.output and "  Found 1 duplicate serial" in out.output
    assert "Already quarantined: 1" in out.output and "Needing attention: 1" in out.output
    [row] = _runs(app)
    assert (row.job, row.trigger, row.status) == ("consistency_check", "cli", "ok")
    counts = json.loads(row.counts)
    assert counts["failures"] == 1 and counts["findings"] == {"duplicate_serial": 1}

    out = run("check", "--format", "json", "--tenant", "ma01")
    body = json.loads(out.output)
    assert body["ok"] and body["mode"] == "live" and body["summary"]["duplicate_serials"] == 1
    assert [f["kind"] for f in body["findings"]] == ["duplicate_serial"]
    assert json.loads(_runs(app)[-1].counts)["tenant"] == "MA01"

    unknown = run("check", "--tenant", "NOPE")
    assert unknown.exit_code == 1 and "ERR_TENANT_UNKNOWN" in unknown.output
    assert len(_runs(app)) == 2  # a typo records no run


def test_check_while_another_process_checks_is_refused(app, run):
    now = dt.datetime.now(dt.UTC)
    assert locks.acquire(
        runtime(app).store, "job:consistency_check", "h:99:x", dt.timedelta(minutes=5), now
    )
    out = run("check")
    assert out.exit_code == 1
    assert out.output.startswith("Error: ERR_JOB_BUSY: job consistency_check is held by process 99")
    assert [r.status for r in _runs(app)] == ["skipped"]
    out = run("jobs", "run", "consistency_check")
    assert out.exit_code == 1 and "ERR_JOB_BUSY" in out.output
    # a dry run needs no lock and records nothing
    assert run("check", "--dry-run").exit_code == 0
    assert len(_runs(app)) == 2


def test_jobs_status_run_and_runs(app, run):
    out = run("jobs", "status")
    assert out.exit_code == 0, out.output
    assert "scheduler: not running" in out.output
    assert "lease_expiry: every 15 min" in out.output and "last run: never" in out.output
    assert run("jobs", "run", "lease-expiry").exit_code == 0
    assert run("jobs", "run", "consistency_check").exit_code == 0
    body = json.loads(run("jobs", "status", "--format", "json").output)
    assert body["scheduler"] == {"alive": False}
    jobs = {j["job"]: j for j in body["jobs"]}
    assert jobs["lease_expiry"]["last_success"]["trigger"] == "cli"
    assert jobs["consistency_check"]["last_error"] is None
    text = run("jobs", "status").output
    assert "last success: ok at" in text and "(cli, #" in text
    listed = [
        json.loads(line)
        for line in run("jobs", "runs", "--job", "lease-expiry").output.splitlines()
    ]
    assert [r["job"] for r in listed] == ["lease_expiry"]
    assert len(run("jobs", "runs", "--limit", "1").output.splitlines()) == 1
    bad = run("jobs", "run", "nope")
    assert bad.exit_code == 1 and "ERR_JOB_UNKNOWN" in bad.output


def test_jobs_in_the_admin_api(app, client, admin_headers, run):
    run("jobs", "run", "lease_expiry")
    resp = client.get("/api/admin/v1/jobs", headers=admin_headers)
    assert resp.status_code == 200
    jobs = {j["job"]: j for j in resp.json["jobs"]}
    assert set(jobs) == {"lease_expiry", "consistency_check", "erp_pull", "generation_tasks"}
    assert jobs["lease_expiry"]["interval_minutes"] == 15
    assert jobs["lease_expiry"]["last_run"]["status"] == "ok"
    assert jobs["consistency_check"]["last_run"] is None
    assert resp.json["scheduler"]["alive"] is False
    runs = client.get("/api/admin/v1/jobs/runs?job=lease_expiry&limit=5", headers=admin_headers)
    assert [r["job"] for r in runs.json["runs"]] == ["lease_expiry"]
    assert client.get("/api/admin/v1/jobs/runs", headers=admin_headers).json["runs"]
    shape(client.get("/api/admin/v1/jobs"), 401, "ERR_UNAUTHORIZED")
    url = "/api/admin/v1/jobs/runs"
    shape(client.get(f"{url}?limit=0", headers=admin_headers), 400, "ERR_INVALID")
    shape(client.get(f"{url}?limit=-3", headers=admin_headers), 400, "ERR_INVALID")
    shape(client.get(f"{url}?job=nope", headers=admin_headers), 404, "ERR_JOB_UNKNOWN")
    shape(client.post("/api/admin/v1/jobs", headers=admin_headers), 405, "ERR_METHOD_NOT_ALLOWED")


def _metrics(client):
    text = client.get("/metrics").get_data(as_text=True)
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def test_metrics_say_when_jobs_last_succeeded_and_what_the_check_found(app, client, tenant, run):
    before = _metrics(client)
    assert "consistency_check_failures" not in before  # no check has run yet
    assert before["lineledger_jobs_scheduler_alive"] == 0
    _duplicate(client, tenant)
    run("check")
    run("jobs", "run", "lease_expiry")
    m = _metrics(client)
    last = m['lineledger_job_last_success_timestamp_seconds{job="consistency_check"}']
    assert abs(last - dt.datetime.now(dt.UTC).timestamp()) < 3600
    assert 'lineledger_job_last_success_timestamp_seconds{job="lease_expiry"}' in m
    assert m['lineledger_job_last_run_status{job="consistency_check",status="ok"}'] == 1
    assert m['lineledger_job_last_run_status{job="consistency_check",status="failed"}'] == 0
    assert m['lineledger_job_running{job="lease_expiry"}'] == 0
    assert m["consistency_check_failures"] == 1
    assert m['consistency_check_findings{kind="duplicate_serial"}'] == 1
    assert m["quarantine_total_quarantined"] == 1 and m["quarantine_entries_total"] == 1
    assert m["quarantine_orphaned"] == 0 and m["quarantine_invalid_format"] == 0
    # a one-tenant check by hand neither counts as the check's success nor sets the gauge
    run("check", "--tenant", "MA01")
    again = _metrics(client)
    assert again['lineledger_job_last_success_timestamp_seconds{job="consistency_check"}'] == last


def test_web_workers_never_run_jobs(app, client, tenant, admin_headers):
    """The app only reads what the jobs recorded: no scheduler, no lock, no run of its own."""
    h = tenant.enroll()
    grant(client, h, scope(tenant), 10)
    for url in ("/metrics", "/healthz"):
        assert client.get(url).status_code == 200
    assert client.get("/api/admin/v1/jobs", headers=admin_headers).status_code == 200
    assert _runs(app) == []
    with runtime(app).store.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(T.job_locks)).scalar() == 0
    assert not [t for t in threading.enumerate() if "APScheduler" in t.name]
