"""Job runs: every run of a central job is recorded in `job_runs` and reported from there.

`run_job` is the one way a job runs, whoever starts it (the scheduler, or cron through the
CLI). It takes the job's own lock, so a cron-started run never overlaps the scheduler's;
records the run as `running`; calls the job; and records how it ended: `ok` with the job's
counts, `failed` with its error, or `skipped` when another process was running the job. A
failing job never takes the process down: its error is recorded and logged, and `run_job`
returns normally.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from central import tables as T
from central.config import CentralConfig
from central.db import Store
from central.errors import (
    ERR_JOB_ABANDONED,
    ERR_JOB_FAILED,
    ERR_JOB_LOCK_LOST,
    ERR_JOB_STOPPED,
    CentralError,
)
from central.jobs import locks
from central.keyring import Keyring
from central.timeutil import as_utc, utcnow
from protocol.errors import CodedError

log = logging.getLogger("lineledger.central.jobs")

SCHEDULE, CLI, API = "schedule", "cli", "api"
TRIGGERS = (SCHEDULE, CLI, API)
RUNNING, OK, FAILED, SKIPPED = "running", "ok", "failed", "skipped"
STATUSES = (RUNNING, OK, FAILED, SKIPPED)
MAX_ERROR_TEXT = 4000


class JobStopped(CentralError):
    """The process is shutting down; the job stopped between two units of work."""

    def __init__(self) -> None:
        super().__init__(ERR_JOB_STOPPED, "stopped by a shutdown before it finished")


@dataclass
class JobContext:
    """What a job works with: the store, keys, settings, and a flag asking it to stop."""

    store: Store
    keyring: Keyring
    config: CentralConfig
    holder: str = field(default_factory=locks.new_holder)
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def lock_ttl(self) -> dt.timedelta:
        """Return how long a lock of this process lapses after its last renewal."""
        return dt.timedelta(seconds=self.config.job_lock_seconds)

    def check_stop(self) -> None:
        """Raise JobStopped if the process was asked to stop (call between units of work)."""
        if self.stop.is_set():
            raise JobStopped()


@dataclass
class JobResult:
    """What a job reports: its counts, and errors it met without failing as a whole."""

    counts: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


JobFunction = Callable[[JobContext, dt.datetime], JobResult]


@dataclass(frozen=True)
class JobRun:
    """One recorded run of a job."""

    id: int
    job: str
    trigger: str
    status: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    counts: dict[str, Any]
    errors: str | None
    host: str | None
    pid: int | None

    @classmethod
    def from_row(cls, row: Row[Any]) -> JobRun:
        """Build a run from its `job_runs` row."""
        try:
            counts = json.loads(row.counts or "{}")
        except ValueError:
            counts = {}
        return cls(
            id=row.id,
            job=row.job,
            trigger=row.trigger,
            status=row.status,
            started_at=as_utc(row.started_at),  # type: ignore[arg-type]
            finished_at=as_utc(row.finished_at),
            counts=counts if isinstance(counts, dict) else {},
            errors=row.errors,
            host=row.host,
            pid=row.pid,
        )

    @property
    def partial(self) -> bool:
        """Tell whether the run covered one tenant only (`check --tenant`)."""
        return bool(self.counts.get("tenant"))

    def to_dict(self) -> dict[str, Any]:
        """Return the run as JSON-friendly values."""
        return {
            "id": self.id,
            "job": self.job,
            "trigger": self.trigger,
            "status": self.status,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "counts": self.counts,
            "errors": self.errors,
            "host": self.host,
            "pid": self.pid,
        }


def describe(exc: BaseException) -> str:
    """Return one line that says what went wrong, with a stable code."""
    if isinstance(exc, CodedError):
        return f"{exc.code}: {exc.message}"
    if isinstance(exc, sa.exc.SQLAlchemyError):
        detail = getattr(exc, "orig", None) or exc
        return f"ERR_DATABASE: {str(detail).strip().splitlines()[0][:500]}"
    return f"{ERR_JOB_FAILED}: {type(exc).__name__}: {str(exc)[:500]}"


def _dumps(counts: dict[str, Any]) -> str:
    return json.dumps(counts, sort_keys=True, separators=(",", ":"), default=str)


def _insert_run(
    store: Store, job: str, trigger: str, status: str, now: dt.datetime, **values: Any
) -> int:
    with store.write() as conn:
        result = conn.execute(
            T.job_runs.insert().values(
                job=job,
                trigger=trigger,
                status=status,
                started_at=now,
                host=socket.gethostname()[:128],
                pid=os.getpid(),
                **values,
            )
        )
        return int(result.inserted_primary_key[0])  # type: ignore[index]


def _read_run(store: Store, run_id: int) -> JobRun:
    with store.read() as conn:
        row = conn.execute(sa.select(T.job_runs).where(T.job_runs.c.id == run_id)).one()
    return JobRun.from_row(row)


def _close_abandoned(store: Store, job: str, now: dt.datetime) -> None:
    """Mark the job's runs left `running` by a process that died as failed (we hold its lock)."""
    with store.write() as conn:
        conn.execute(
            T.job_runs.update()
            .where(T.job_runs.c.job == job, T.job_runs.c.status == RUNNING)
            .values(
                status=FAILED,
                finished_at=now,
                errors=f"{ERR_JOB_ABANDONED}: the process running it stopped before it finished",
            )
        )


def run_job(
    ctx: JobContext,
    job: str,
    fn: JobFunction,
    trigger: str,
    now: dt.datetime | None = None,
) -> JobRun:
    """Run a job under its own lock and record the run; return the recorded run."""
    if trigger not in TRIGGERS:
        raise ValueError(f"trigger is one of {TRIGGERS}")
    started = now or utcnow()
    name = locks.job_lock(job)
    if not locks.acquire(ctx.store, name, ctx.holder, ctx.lock_ttl, started):
        with ctx.store.read() as conn:
            busy = locks.busy_error(conn, name, f"job {job}")
        run_id = _insert_run(
            ctx.store, job, trigger, SKIPPED, started, finished_at=started, errors=describe(busy)
        )
        log.info("job %s skipped: %s", job, busy.message)
        return _read_run(ctx.store, run_id)
    heartbeat = locks.Heartbeat(ctx.store, name, ctx.holder, ctx.lock_ttl).start()
    try:
        _close_abandoned(ctx.store, job, started)
        run_id = _insert_run(ctx.store, job, trigger, RUNNING, started)
        log.info("job %s started (%s)", job, trigger)
        errors: list[str] = []
        counts: dict[str, Any] = {}
        try:
            result = fn(ctx, started)
            counts, errors = result.counts, list(result.errors)
        except Exception as exc:  # a failing job is recorded, never fatal
            if not isinstance(exc, JobStopped):
                log.exception("job %s failed", job)
            errors.append(describe(exc))
        if heartbeat.lost.is_set():
            errors.append(
                f"{ERR_JOB_LOCK_LOST}: another process took the job's lock while it ran "
                "(the database was unreachable for longer than job_lock_seconds?)"
            )
        with ctx.store.write() as conn:
            conn.execute(
                T.job_runs.update()
                .where(T.job_runs.c.id == run_id)
                .values(
                    status=FAILED if errors else OK,
                    finished_at=utcnow(),
                    counts=_dumps(counts),
                    errors="\n".join(errors)[:MAX_ERROR_TEXT] if errors else None,
                )
            )
        log.info("job %s finished: %s", job, "failed" if errors else "ok")
        return _read_run(ctx.store, run_id)
    finally:
        heartbeat.stop()
        try:
            locks.release(ctx.store, name, ctx.holder)
        except sa.exc.SQLAlchemyError as exc:  # it lapses by itself
            log.warning("cannot release lock %s: %s", name, exc)


def list_runs(conn: Connection, job: str | None = None, limit: int = 50) -> list[JobRun]:
    """Return the newest runs, of one job or all, newest first."""
    query = sa.select(T.job_runs).order_by(T.job_runs.c.id.desc()).limit(limit)
    if job:
        query = query.where(T.job_runs.c.job == job)
    return [JobRun.from_row(row) for row in conn.execute(query)]


def _newest(
    conn: Connection, job: str, statuses: tuple[str, ...], whole: bool = False
) -> JobRun | None:
    """Return the newest run of a job in one of `statuses` (`whole`: not a one-tenant run)."""
    runs = T.job_runs.c
    offset = 0
    while True:
        rows = conn.execute(
            sa.select(T.job_runs)
            .where(runs.job == job, runs.status.in_(statuses))
            .order_by(runs.id.desc())
            .limit(20)
            .offset(offset)
        ).all()
        for row in rows:
            run = JobRun.from_row(row)
            if not (whole and run.partial):
                return run
        if len(rows) < 20:
            return None
        offset += 20


@dataclass(frozen=True)
class JobStatus:
    """What `jobs status` shows about one job."""

    job: str
    last_run: JobRun | None
    last_success: JobRun | None
    last_error: JobRun | None
    lock: locks.LockInfo | None

    def running(self, now: dt.datetime) -> bool:
        """Tell whether a live process holds the job's lock (it is running now)."""
        return self.lock is not None and self.lock.live(now)

    def to_dict(self, now: dt.datetime) -> dict[str, Any]:
        """Return the status as JSON-friendly values."""
        return {
            "job": self.job,
            "running": self.running(now),
            "last_run": self.last_run.to_dict() if self.last_run else None,
            "last_success": self.last_success.to_dict() if self.last_success else None,
            "last_error": self.last_error.to_dict() if self.last_error else None,
        }


def job_status(conn: Connection, job: str) -> JobStatus:
    """Return the last run, last success and last error of a job, and who runs it now.

    The last success is the newest `ok` run that covered every tenant: a one-tenant check
    run by hand does not stand in for the scheduled one.
    """
    runs = T.job_runs.c
    last = conn.execute(
        sa.select(T.job_runs).where(runs.job == job).order_by(runs.id.desc()).limit(1)
    ).first()
    return JobStatus(
        job=job,
        last_run=JobRun.from_row(last) if last is not None else None,
        last_success=_newest(conn, job, (OK,), whole=True),
        last_error=_newest(conn, job, (FAILED,)),
        lock=locks.lock_info(conn, locks.job_lock(job)),
    )


def last_complete(conn: Connection, job: str) -> JobRun | None:
    """Return the newest finished run of a job over every tenant (ok or failed)."""
    return _newest(conn, job, (OK, FAILED), whole=True)


def scheduler_status(conn: Connection, now: dt.datetime) -> dict[str, Any]:
    """Return whether a `jobs` process holds the schedule, and which one."""
    info = locks.lock_info(conn, locks.SCHEDULER)
    alive = info is not None and info.live(now)
    out: dict[str, Any] = {"alive": alive}
    if info is not None:
        out.update(info.to_dict())
    return out
