"""`lineledger-central jobs` and `check`: run the central jobs, see how they went.

These commands register themselves on `central.cli.main` (imported at the end of that
module), so the job commands live beside each other instead of in one long file.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from typing import Any

import click

from central import admin
from central.cli import _Ctx, _example, _friendly, main, pass_ctx
from central.errors import ERR_JOB_BUSY, ERR_JOB_FAILED, CentralError, Conflict
from central.jobs import catalog
from central.jobs.checker import CheckReport, run_check, tenants_to_check
from central.jobs.runs import (
    CLI,
    OK,
    SKIPPED,
    JobContext,
    JobResult,
    JobRun,
    job_status,
    list_runs,
    run_job,
    scheduler_status,
)
from central.jobs.scheduler import JobsProcess
from central.keyring import Keyring
from central.timeutil import utcnow


def _job_context(ctx: _Ctx) -> JobContext:
    keyring = Keyring.load(ctx.config.keyring_file)
    admin.check_keyring(ctx.store, keyring)
    return JobContext(ctx.store, keyring, ctx.config)


def _echo(text: str) -> None:
    click.echo(text)
    sys.stdout.flush()


@main.group(
    "jobs",
    invoke_without_command=True,
    epilog=_example("lineledger-central jobs          # run the schedule (systemd unit)"),
)
@click.option(
    "--standby",
    is_flag=True,
    help="If another jobs process holds the schedule, wait and take over when it stops.",
)
@click.pass_context
@_friendly
def jobs(click_ctx: click.Context, standby: bool) -> None:
    """Run the central jobs on their schedule in this process (only one such process runs).

    Lease expiry runs every `lease_expiry_minutes`, the consistency check every
    `consistency_check_minutes`; every `erp_check_minutes` the ERP pull runs queued pulls
    and each tenant's pull that is due (its generation config's erp_interval_s). SIGTERM
    stops it cleanly. A second `jobs` process refuses with ERR_JOB_BUSY unless started with
    --standby.
    """
    if click_ctx.invoked_subcommand is not None:
        return
    ctx: _Ctx = click_ctx.obj
    job_ctx = _job_context(ctx)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # our own lines say enough

    def stop(signum: int, _frame: Any) -> None:
        job_ctx.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    status = JobsProcess(job_ctx, list(catalog.JOBS.values()), standby, _echo).run()
    if status:
        click_ctx.exit(status)


def _run_line(run: JobRun) -> str:
    when = run.started_at.strftime("%Y-%m-%d %H:%M:%S")
    text = f"{run.status} at {when} UTC ({run.trigger}, #{run.id})"
    if run.errors:
        text += f": {run.errors.splitlines()[0]}"
    return text


@jobs.command("status", epilog=_example("lineledger-central jobs status --format json"))
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@pass_ctx
@_friendly
def jobs_status(ctx: _Ctx, fmt: str) -> None:
    """Show each job's last run, last success and last error, and whether a scheduler runs."""
    now = utcnow()
    with ctx.store.read() as conn:
        sched = scheduler_status(conn, now)
        statuses = [job_status(conn, name) for name in catalog.JOBS]
    if fmt == "json":
        body = {"ok": True, "scheduler": sched, "jobs": [s.to_dict(now) for s in statuses]}
        click.echo(json.dumps(body, sort_keys=True))
        return
    if sched["alive"]:
        click.echo(
            f"scheduler: alive, process {sched['pid']} on {sched['host']} "
            f"(since {sched['acquired_at']})"
        )
    else:
        click.echo("scheduler: not running (jobs run only if cron starts them)")
    for status in statuses:
        job = catalog.JOBS[status.job]
        minutes = job.interval(ctx.config).total_seconds() / 60
        click.echo(f"{status.job}: every {minutes:g} min; {job.description}")
        click.echo(f"  running now: {'yes' if status.running(now) else 'no'}")
        for label, run in (
            ("last run", status.last_run),
            ("last success", status.last_success),
            ("last error", status.last_error),
        ):
            click.echo(f"  {label}: {_run_line(run) if run else 'never'}")


@jobs.command("run", epilog=_example("lineledger-central jobs run lease_expiry"))
@click.argument("name")
@pass_ctx
@_friendly
def jobs_run(ctx: _Ctx, name: str) -> None:
    """Run one job now (as cron does) and print its recorded run as JSON."""
    job = catalog.find_job(name)
    run = run_job(_job_context(ctx), job.name, job.run, CLI)
    click.echo(json.dumps(run.to_dict(), sort_keys=True))
    if run.status == SKIPPED:
        raise Conflict(ERR_JOB_BUSY, (run.errors or "").partition(": ")[2] or "job is running")
    if run.status != OK:
        raise CentralError(ERR_JOB_FAILED, f"job {job.name} failed; see errors above")


@jobs.command("runs", epilog=_example("lineledger-central jobs runs --job consistency_check"))
@click.option("--job", default=None, help="Only this job's runs.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@pass_ctx
@_friendly
def jobs_runs(ctx: _Ctx, job: str | None, limit: int) -> None:
    """List recorded job runs, newest first, as JSON lines."""
    name = catalog.find_job(job).name if job else None
    with ctx.store.read() as conn:
        for run in list_runs(conn, name, limit):
            click.echo(json.dumps(run.to_dict(), sort_keys=True))


@main.command(
    "check",
    epilog=_example("lineledger-central check --dry-run --tenant MA01"),
)
@click.option("--dry-run", is_flag=True, help="Find and report only; change nothing at all.")
@click.option("--tenant", "org", default=None, help="Check one tenant (org code) only.")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.pass_context
@_friendly
def check(click_ctx: click.Context, dry_run: bool, org: str | None, fmt: str) -> None:
    """Check the registry's consistency: fix what is safe, quarantine the rest, summarise.

    A live check is recorded as a run of the consistency_check job and never overlaps a
    scheduled one; a dry run writes nothing, not even its run. Exits 1 if a tenant could not
    be checked.
    """
    ctx: _Ctx = click_ctx.obj
    keyring = Keyring.load(ctx.config.keyring_file)
    with ctx.store.read() as conn:
        tenants_to_check(conn, org)  # an unknown tenant fails here, before any run is recorded
    if dry_run:
        report = run_check(ctx.store, keyring, ctx.config, utcnow(), dry_run=True, org=org)
    else:
        job_ctx = JobContext(ctx.store, keyring, ctx.config)
        reports: list[CheckReport] = []

        def work(jctx: JobContext, now: Any) -> JobResult:
            done = run_check(jctx.store, jctx.keyring, jctx.config, now, org=org)
            reports.append(done)
            return JobResult(done.counts(), done.errors)

        run = run_job(job_ctx, catalog.CONSISTENCY_CHECK, work, CLI)
        if run.status == SKIPPED:
            raise Conflict(ERR_JOB_BUSY, (run.errors or "").partition(": ")[2])
        if not reports:
            raise CentralError(ERR_JOB_FAILED, run.errors or "the check failed")
        report = reports[0]
    if fmt == "json":
        click.echo(json.dumps(report.to_dict(), sort_keys=True))
    else:
        click.echo(report.to_text())
    if report.errors:
        click_ctx.exit(1)
