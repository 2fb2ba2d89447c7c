"""The central jobs by name: what each runs and how often the scheduler runs it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from central import erp_pull, gentasks
from central.config import CentralConfig
from central.errors import ERR_JOB_UNKNOWN, NotFound
from central.jobs import expiry
from central.jobs.checker import run_check
from central.jobs.runs import JobContext, JobFunction, JobResult

LEASE_EXPIRY = "lease_expiry"
CONSISTENCY_CHECK = "consistency_check"
ERP_PULL = "erp_pull"
GENERATION_TASKS = "generation_tasks"


@dataclass(frozen=True)
class Job:
    """A job the scheduler runs every `interval_setting` minutes (a CentralConfig field)."""

    name: str
    run: JobFunction
    interval_setting: str
    description: str
    # The scheduler skips a run (and records none) when this says there is nothing to do.
    has_work: Callable[[JobContext, dt.datetime], bool] | None = None

    def interval(self, config: CentralConfig) -> dt.timedelta:
        """Return how often the scheduler runs the job."""
        return dt.timedelta(minutes=float(getattr(config, self.interval_setting)))


def run_lease_expiry(ctx: JobContext, now: dt.datetime) -> JobResult:
    """Close every expired lease; its unused tail becomes a recorded gap."""
    closed = expiry.expire_leases(ctx.store, now, between=ctx.check_stop)
    return JobResult(expiry.counts(closed))


def run_consistency_check(ctx: JobContext, now: dt.datetime) -> JobResult:
    """Check every tenant; a tenant the check could not finish makes the run fail."""
    report = run_check(ctx.store, ctx.keyring, ctx.config, now, between=ctx.check_stop)
    return JobResult(report.counts(), report.errors)


def run_erp_pull(ctx: JobContext, now: dt.datetime) -> JobResult:
    """Run queued ERP pulls and each tenant's scheduled pull that is due."""
    counts, errors = erp_pull.run_due(ctx.store, now, stop=ctx.stop)
    return JobResult(counts, errors)


def run_generation_tasks(ctx: JobContext, now: dt.datetime) -> JobResult:
    """Run queued work-order generation tasks (and resume abandoned ones) until none is left."""
    counts = gentasks.run_pending(ctx.store, ctx.lock_ttl, should_stop=ctx.stop.is_set)
    errors = []
    if counts[gentasks.FAILED]:
        errors.append(
            f"{counts[gentasks.FAILED]} generation task(s) failed: "
            "see lineledger-central work-order task TASK_ID"
        )
    return JobResult(counts, errors)


def generation_tasks_waiting(ctx: JobContext, now: dt.datetime) -> bool:
    """Tell whether a generation task waits for the jobs process."""
    return gentasks.has_work(ctx.store, now, ctx.lock_ttl)


JOBS = {
    job.name: job
    for job in (
        Job(
            LEASE_EXPIRY,
            run_lease_expiry,
            "lease_expiry_minutes",
            "close expired leases; their unused tails become recorded gaps",
        ),
        Job(
            CONSISTENCY_CHECK,
            run_consistency_check,
            "consistency_check_minutes",
            "find what does not add up, fix what is safe, quarantine the rest",
        ),
        Job(
            ERP_PULL,
            run_erp_pull,
            "erp_check_minutes",
            "pull work orders from each tenant's ERP when due (erp_interval_s) or asked",
        ),
        Job(
            GENERATION_TASKS,
            run_generation_tasks,
            "generation_tasks_minutes",
            "generate SSCCs and randomised serials that work orders asked for",
            generation_tasks_waiting,
        ),
    )
}


def find_job(name: str) -> Job:
    """Return the job of a name (`lease-expiry` works as well as `lease_expiry`)."""
    job = JOBS.get(name.strip().replace("-", "_"))
    if job is None:
        raise NotFound(ERR_JOB_UNKNOWN, f"no job {name!r}; jobs are {', '.join(sorted(JOBS))}")
    return job
