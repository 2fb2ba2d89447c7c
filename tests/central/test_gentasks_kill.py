"""A jobs process killed with SIGKILL in the middle of a generation task loses nothing.

The child process claims the task, commits one chunk, then opens the next chunk's
transaction, writes part of it and reports "ready"; the test kills it there (no race: it
waits for the child to say so). Another runner later finds the heartbeat stale, resumes the
task and finishes it: exactly the requested number of serials, each once.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
import textwrap
from typing import Any

import sqlalchemy as sa
from click.testing import CliRunner

from central import gentasks
from central import tables as T
from central.cli import main
from tests.central.gen_support import STALE, ask, history, make_random, serials_of, work_order
from tests.conftest import runtime
from tests.procs import env_with

CHILD = textwrap.dedent(
    """
    import datetime as dt, sys, time
    import sqlalchemy as sa
    from central import gentasks, tables as T
    from central.db import Store

    store = Store(sys.argv[1])
    now = dt.datetime.now(dt.UTC)
    claim = gentasks.claim_next(store, now, dt.timedelta(seconds=120))
    claim = gentasks.step(store, claim, now, chunk=400)  # one chunk committed
    with store.write() as conn:  # the next chunk, half written, never committed
        task = conn.execute(sa.select(T.generation_tasks)).one()
        conn.execute(
            T.serial_pool.insert(),
            [
                {"gtin": "04006381333931", "serial": f"UNCOMMITTED{i:04d}", "tenant_id": 1,
                 "work_order_id": task.work_order_id, "task_id": task.id, "state": "free",
                 "created_at": now}
                for i in range(150)
            ],
        )
        print("ready", claim.heartbeat.isoformat(), flush=True)
        time.sleep(600)
    """
)


def test_sigkill_mid_task_then_resume(
    app: Any, tenant: Any, central_config: dict[str, Any]
) -> None:
    store = runtime(app).store
    make_random(store)
    task, _ = ask(store, "serials", 1_000)
    assert task is not None
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, central_config["db_url"]],
        stdout=subprocess.PIPE,
        text=True,
        env=env_with(),
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.startswith("ready"), line
        beat = dt.datetime.fromisoformat(line.split()[1])
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    with store.read() as conn:
        left = gentasks.get_task(conn, task.id)
    assert (left.status, left.done) == ("running", 400)
    assert len(serials_of(store)) == 400  # the half-written chunk was rolled back
    assert work_order(store).generated_serials == 400
    # a live heartbeat is left alone; a stale one is taken over
    assert gentasks.claim_next(store, beat + dt.timedelta(seconds=1), STALE) is None
    later = beat + STALE + dt.timedelta(seconds=1)
    counts = gentasks.run_pending(store, STALE, clock=lambda: later)
    assert counts["completed"] == 1
    serials = serials_of(store)
    assert len(serials) == len(set(serials)) == 1_000
    assert not [s for s in serials if s.startswith("UNCOMMITTED")]
    assert work_order(store).generated_serials == 1_000
    assert history(store, task.id) == ["started", "started", "completed"]
    with store.read() as conn:
        resumed = conn.execute(
            sa.select(T.generation_history.c.details)
            .where(T.generation_history.c.task_id == task.id)
            .order_by(T.generation_history.c.id)
        ).scalars()
        assert [json.loads(d).get("resumed") for d in resumed][:2] == [False, True]


def test_cron_runs_tasks_through_the_jobs_cli(
    app: Any, tenant: Any, central_config: dict[str, Any]
) -> None:
    """`lineledger-central jobs run generation-tasks` runs queued tasks and records the run."""
    store = runtime(app).store
    make_random(store)
    task, _ = ask(store, "serials", 30)
    assert task is not None
    out = CliRunner().invoke(
        main,
        [
            "--home",
            central_config["home"],
            "--db",
            central_config["db_url"],
            "jobs",
            "run",
            "generation-tasks",
        ],
    )
    assert out.exit_code == 0, out.output
    with store.read() as conn:
        assert gentasks.get_task(conn, task.id).status == "completed"
        run = conn.execute(
            sa.select(T.job_runs).where(T.job_runs.c.job == "generation_tasks")
        ).one()
    assert run.status == "ok" and json.loads(run.counts)["completed"] == 1
