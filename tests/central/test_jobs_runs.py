"""Job locks and job runs: one holder at a time on both databases, every run recorded, a
failing job recorded and never fatal, a busy job skipped, runs of dead processes closed."""

import dataclasses
import datetime as dt
import threading

import pytest
import sqlalchemy as sa

from central import tables as T
from central.errors import ERR_INVALID, CentralError
from central.jobs import locks
from central.jobs.catalog import CONSISTENCY_CHECK, Job, run_consistency_check
from central.jobs.runs import (
    CLI,
    FAILED,
    OK,
    RUNNING,
    SCHEDULE,
    SKIPPED,
    JobContext,
    JobResult,
    job_status,
    list_runs,
    run_job,
)
from central.jobs.scheduler import JobsProcess
from tests.conftest import runtime
from tests.procs import wait_for

TTL = dt.timedelta(seconds=60)


@pytest.fixture
def store(app):
    return runtime(app).store


@pytest.fixture
def ctx(app):
    rt = runtime(app)
    return JobContext(rt.store, rt.keyring, rt.config)


def now():
    return dt.datetime.now(dt.UTC)


def runs(store, job=None):
    with store.read() as conn:
        return list_runs(conn, job, 100)


def test_a_lock_has_one_holder_until_it_lapses(store):
    t0 = now()
    assert locks.acquire(store, "job:x", "a", TTL, t0)
    assert not locks.acquire(store, "job:x", "b", TTL, t0)
    assert locks.acquire(store, "job:x", "a", TTL, t0)  # ours already: still ours
    assert locks.renew(store, "job:x", "a", TTL, t0)
    assert not locks.renew(store, "job:x", "b", TTL, t0)
    locks.release(store, "job:x", "b")  # not b's to release
    with store.read() as conn:
        assert locks.lock_info(conn, "job:x").holder == "a"
    # a holder that stopped renewing loses the lock once it lapses
    lapsed = t0 + TTL + dt.timedelta(seconds=1)
    assert locks.acquire(store, "job:x", "b", TTL, lapsed)
    assert not locks.renew(store, "job:x", "a", TTL, lapsed)
    locks.release(store, "job:x", "b")
    with store.read() as conn:
        assert locks.lock_info(conn, "job:x") is None


def test_rivals_taking_a_lock_at_once_get_one_winner(store):
    start = threading.Barrier(8)
    won = []

    def rival(i):
        start.wait()
        if locks.acquire(store, "job:race", f"rival-{i}", TTL, now()):
            won.append(i)

    threads = [threading.Thread(target=rival, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1


def test_a_run_is_recorded_with_its_counts(ctx, store):
    seen = {}

    def job(jctx, started):
        with jctx.store.read() as conn:
            seen["lock"] = locks.lock_info(conn, "job:demo")
        return JobResult({"things": 3})

    run = run_job(ctx, "demo", job, CLI)
    assert (run.status, run.trigger, run.counts, run.errors) == (OK, CLI, {"things": 3}, None)
    assert run.finished_at >= run.started_at and run.pid and run.host
    assert seen["lock"].holder == ctx.holder  # the job ran under its own lock ...
    with store.read() as conn:
        assert locks.lock_info(conn, "job:demo") is None  # ... released afterwards
    assert [r.id for r in runs(store, "demo")] == [run.id]


def test_a_failing_job_is_recorded_and_never_raises(ctx, store):
    def boom(jctx, started):
        raise RuntimeError("disk on fire")

    def coded(jctx, started):
        raise CentralError(ERR_INVALID, "bad input")

    first = run_job(ctx, "demo", boom, SCHEDULE)
    assert first.status == FAILED
    assert first.errors == "ERR_JOB_FAILED: RuntimeError: disk on fire"
    assert run_job(ctx, "demo", coded, SCHEDULE).errors == "ERR_INVALID: bad input"
    partly = run_job(ctx, "demo", lambda c, n: JobResult({"n": 1}, ["MA01: ERR_X: y"]), CLI)
    assert (partly.status, partly.counts, partly.errors) == (FAILED, {"n": 1}, "MA01: ERR_X: y")
    with store.read() as conn:
        assert locks.lock_info(conn, "job:demo") is None


def test_a_job_running_elsewhere_is_skipped(ctx, store):
    assert locks.acquire(store, "job:demo", "otherhost:4242:abcd", TTL, now())
    called = []
    run = run_job(ctx, "demo", lambda c, n: called.append(1) or JobResult(), CLI)
    assert called == [] and run.status == SKIPPED
    assert run.errors.startswith("ERR_JOB_BUSY: job demo is held by process 4242 on otherhost")


def test_runs_left_running_by_a_dead_process_are_closed(ctx, store):
    with store.write() as conn:
        conn.execute(
            T.job_runs.insert().values(
                job="demo", trigger=SCHEDULE, started_at=now(), status=RUNNING, pid=1
            )
        )
    run_job(ctx, "demo", lambda c, n: JobResult(), CLI)
    statuses = [(r.status, (r.errors or "")[:17]) for r in runs(store, "demo")]
    assert statuses == [(OK, ""), (FAILED, "ERR_JOB_ABANDONED")]


def test_a_stopping_process_stops_its_job_between_units(ctx):
    def long_job(jctx, started):
        for _ in range(3):
            jctx.check_stop()
            jctx.stop.set()  # the process is asked to stop while the job works
        return JobResult({"done": True})

    run = run_job(ctx, "demo", long_job, SCHEDULE)
    assert run.status == FAILED and run.errors.startswith("ERR_JOB_STOPPED")


def test_the_job_lock_is_renewed_while_a_job_runs(app, store):
    rt = runtime(app)
    fast = dataclasses.replace(rt.config, job_lock_seconds=0.4)
    jctx = JobContext(rt.store, rt.keyring, fast)

    def watch(c, started):
        with store.read() as conn:
            first = locks.lock_info(conn, "job:demo").expires_at

        def renewed():
            with store.read() as conn:
                return locks.lock_info(conn, "job:demo").expires_at > first

        wait_for(renewed, timeout=60)
        return JobResult()

    assert run_job(jctx, "demo", watch, CLI).status == OK


def test_status_shows_last_run_success_and_error(ctx, store):
    run_job(ctx, "demo", lambda c, n: JobResult({"tenants_processed": 2}), SCHEDULE)
    run_job(ctx, "demo", lambda c, n: JobResult({"tenant": "MA01"}), CLI)  # one tenant only
    failed = run_job(ctx, "demo", lambda c, n: JobResult({}, ["boom"]), SCHEDULE)
    with store.read() as conn:
        status = job_status(conn, "demo")
        never = job_status(conn, "other")
    assert status.last_run.id == failed.id and status.last_error.id == failed.id
    # a one-tenant check by hand does not stand in for the full one
    assert status.last_success.counts == {"tenants_processed": 2}
    assert not status.running(now())
    assert never.last_run is None and never.to_dict(now())["last_success"] is None


def test_the_scheduler_keeps_running_when_jobs_fail(app, store):
    rt = runtime(app)
    config = dataclasses.replace(rt.config, consistency_check_minutes=0.002, job_lock_seconds=2)
    jctx = JobContext(rt.store, rt.keyring, config)

    def boom(c, started):
        raise RuntimeError("every time")

    job = Job("boom", boom, "consistency_check_minutes", "fails")
    lines = []
    process = JobsProcess(jctx, [job], echo=lines.append)
    result = []
    thread = threading.Thread(target=lambda: result.append(process.run()))
    thread.start()
    try:
        wait_for(lambda: len([r for r in runs(store, "boom") if r.status == FAILED]) >= 3, 60)
        with store.read() as conn:
            assert locks.lock_info(conn, locks.SCHEDULER).holder == jctx.holder
    finally:
        jctx.stop.set()
        thread.join(60)
    assert result == [0]
    assert lines[0].startswith("lineledger-central jobs running (boom every")
    assert lines[-1] == "lineledger-central jobs stopped"
    with store.read() as conn:
        assert locks.lock_info(conn, locks.SCHEDULER) is None
        left = conn.execute(
            sa.select(sa.func.count()).where(T.job_runs.c.status == RUNNING)
        ).scalar()
    assert left == 0
    assert {r.trigger for r in runs(store, "boom")} == {SCHEDULE}


def test_a_stopped_check_is_recorded_as_stopped_not_as_a_tenant_error(ctx, tenant):
    calls = []
    check_stop = ctx.check_stop

    def stop_in_the_middle():
        calls.append(1)
        if len(calls) == 2:  # the first page of the first tenant's registry
            ctx.stop.set()
        check_stop()

    ctx.check_stop = stop_in_the_middle
    run = run_job(ctx, CONSISTENCY_CHECK, run_consistency_check, SCHEDULE)
    assert run.status == FAILED and run.errors.startswith("ERR_JOB_STOPPED")
    assert run.counts == {}
