"""`lineledger-central jobs`: the one process that runs the central jobs on their schedule.

The process first takes the `scheduler` lock (`central.jobs.locks`). If another live process
holds it, it refuses with ERR_JOB_BUSY, or with `--standby` waits until that lock lapses or is
released and then takes over: one deployment may run a second jobs process on another host
as a hot spare, and nobody can start two schedules by mistake. While it holds the lock it
renews it every quarter of `job_lock_seconds`; if another process took it over (this one
stalled longer than that), it stops at once.

Jobs run in APScheduler 3's background scheduler, each at most one at a time, each through
`central.jobs.runs.run_job` (its own lock, its `job_runs` row). A job's first run comes one
interval after its last success (at once if that is past), so restarts neither skip nor
repeat work. SIGTERM or SIGINT asks running jobs to stop between two units of work, waits
for them, releases the lock and exits 0.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence

import sqlalchemy as sa

from central.jobs import locks
from central.jobs.catalog import Job
from central.jobs.runs import SCHEDULE, JobContext, job_status, run_job
from central.timeutil import utcnow

log = logging.getLogger("lineledger.central.jobs")


def _first_run(ctx: JobContext, job: Job, now: dt.datetime) -> dt.datetime:
    with ctx.store.read() as conn:
        last = job_status(conn, job.name).last_success
    if last is None or last.finished_at is None:
        return now
    return max(now, last.finished_at + job.interval(ctx.config))


class JobsProcess:
    """Hold the schedule and run the jobs until asked to stop."""

    def __init__(
        self,
        ctx: JobContext,
        jobs: Sequence[Job],
        standby: bool = False,
        echo: Callable[[str], None] = log.info,
    ) -> None:
        self.ctx = ctx
        self.jobs = list(jobs)
        self.standby = standby
        self.echo = echo
        self.interval = max(ctx.lock_ttl.total_seconds() / 4, 0.05)

    def _acquire(self) -> bool:
        """Take the schedule, waiting as a standby if asked; False if stopped while waiting."""
        ctx = self.ctx
        waiting = False
        while True:
            try:
                if locks.acquire(ctx.store, locks.SCHEDULER, ctx.holder, ctx.lock_ttl, utcnow()):
                    return True
            except sa.exc.OperationalError as exc:
                if not self.standby:
                    raise
                log.warning("cannot reach the database: %s", exc)
            if not self.standby:
                with ctx.store.read() as conn:
                    raise locks.busy_error(
                        conn, locks.SCHEDULER, "the schedule (another lineledger-central jobs)"
                    )
            if not waiting:
                self.echo("standby: another jobs process holds the schedule; waiting to take over")
                waiting = True
            if ctx.stop.wait(self.interval):
                return False

    def _run(self, job: Job) -> None:
        try:
            if job.has_work is not None and not job.has_work(self.ctx, utcnow()):
                return
            run_job(self.ctx, job.name, job.run, SCHEDULE)
        except Exception:  # recording itself failed (database down): log, keep the schedule
            log.exception("job %s could not run", job.name)

    def run(self) -> int:
        """Run the schedule until stopped; return the process's exit status."""
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler
        from apscheduler.triggers.interval import IntervalTrigger

        ctx = self.ctx
        if not self._acquire():
            self.echo("lineledger-central jobs stopped (standby)")
            return 0
        heartbeat = locks.Heartbeat(ctx.store, locks.SCHEDULER, ctx.holder, ctx.lock_ttl)
        scheduler = BackgroundScheduler(
            timezone=dt.UTC,
            executors={"default": ThreadPoolExecutor(max(1, len(self.jobs)))},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        status = 0
        try:
            now = utcnow()
            for job in self.jobs:
                interval = job.interval(ctx.config)
                scheduler.add_job(
                    self._run,
                    IntervalTrigger(seconds=interval.total_seconds(), timezone=dt.UTC),
                    args=[job],
                    id=job.name,
                    name=job.name,
                    next_run_time=_first_run(ctx, job, now),
                )
            scheduler.start()
            plan = ", ".join(
                f"{job.name} every {job.interval(ctx.config).total_seconds() / 60:g} min"
                for job in self.jobs
            )
            self.echo(f"lineledger-central jobs running ({plan}) as {ctx.holder}")
            while not ctx.stop.wait(self.interval):
                if not heartbeat.beat():
                    self.echo(
                        "ERR_JOB_LOCK_LOST: another jobs process took over the schedule; "
                        "stopping this one"
                    )
                    status = 1
                    ctx.stop.set()
        finally:
            ctx.stop.set()
            if scheduler.running:
                scheduler.shutdown(wait=True)
            try:
                locks.release(ctx.store, locks.SCHEDULER, ctx.holder)
            except sa.exc.SQLAlchemyError as exc:  # it lapses by itself
                log.warning("cannot release the schedule: %s", exc)
        self.echo("lineledger-central jobs stopped")
        return status
