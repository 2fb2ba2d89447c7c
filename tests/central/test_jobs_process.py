"""`lineledger-central jobs` as a real process: it runs the jobs on their schedule, a second
process refuses, a standby takes over when the first is stopped, SIGTERM stops cleanly.

Nothing here depends on speed: the schedule is short, and each step waits for what it
needs (rows in job_runs, a line of output, an exit) with generous timeouts.
"""

import json
import signal
import subprocess
import threading

import pytest
import sqlalchemy as sa

from central import tables as T
from central.db import Store
from central.jobs import locks
from tests.procs import cli, env_with, wait_for

pytestmark = pytest.mark.slow


class Lines:
    """Collect a process's output lines from a thread, so waiting never blocks on a read."""

    def __init__(self, stream):
        self.lines = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream):
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    def has(self, text):
        return any(text in line for line in self.lines)


@pytest.fixture
def env(db_url, tmp_path):
    home = tmp_path / "home"
    config = tmp_path / "central.toml"
    config.write_text(
        "[central]\n"
        "lease_expiry_minutes = 0.005\n"
        "consistency_check_minutes = 0.01\n"
        "job_lock_seconds = 3\n"
    )
    environ = env_with(
        LINELEDGER_CENTRAL_HOME=str(home),
        LINELEDGER_CENTRAL_DB=db_url,
        LINELEDGER_CENTRAL_CONFIG=str(config),
    )
    for args in (["init"], ["tenant", "add", "--org", "MA01", "--name", "Maison Atelier"]):
        out = subprocess.run(
            [cli("lineledger-central"), *args], env=environ, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
    return environ


def start(env, *args):
    proc = subprocess.Popen(
        [cli("lineledger-central"), "jobs", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    Lines(proc.stderr)  # the log: drained so the process never blocks on a full pipe
    return proc, Lines(proc.stdout)


def scheduled_runs(store, status="ok"):
    with store.read() as conn:
        rows = conn.execute(
            sa.select(T.job_runs.c.job, T.job_runs.c.pid).where(
                T.job_runs.c.trigger == "schedule", T.job_runs.c.status == status
            )
        ).all()
    return rows


def test_one_process_runs_the_schedule_and_hands_over_on_sigterm(env, db_url):
    store = Store(db_url)
    first, first_out = start(env)
    standby = spare = None
    try:
        wait_for(lambda: first_out.has("lineledger-central jobs running"), 60)
        wait_for(
            lambda: {r.job for r in scheduled_runs(store)} >= {"lease_expiry", "consistency_check"},
            120,
        )
        assert {r.pid for r in scheduled_runs(store)} == {first.pid}

        second = subprocess.run(
            [cli("lineledger-central"), "jobs"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 1
        busy = "ERR_JOB_BUSY: the schedule (another lineledger-central jobs) is held by process"
        assert f"{busy} {first.pid}" in second.stderr
        assert "Traceback" not in second.stderr

        standby, spare = start(env, "--standby")
        wait_for(lambda: spare.has("standby: another jobs process holds the schedule"), 60)

        first.send_signal(signal.SIGTERM)
        assert first.wait(120) == 0
        wait_for(lambda: first_out.has("lineledger-central jobs stopped"), 30)

        wait_for(lambda: spare.has("lineledger-central jobs running"), 120)
        wait_for(lambda: standby.pid in {r.pid for r in scheduled_runs(store)}, 120)
        status = subprocess.run(
            [cli("lineledger-central"), "jobs", "status", "--format", "json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        body = json.loads(status.stdout)
        assert body["scheduler"]["alive"] and body["scheduler"]["pid"] == standby.pid
        assert {j["job"] for j in body["jobs"]} == {
            "lease_expiry",
            "consistency_check",
            "erp_pull",
            "generation_tasks",  # no run recorded: no task waited
        }
        assert all(
            j["last_success"]["trigger"] == "schedule"
            for j in body["jobs"]
            if j["job"] != "generation_tasks"
        )

        standby.send_signal(signal.SIGTERM)
        assert standby.wait(120) == 0
        with store.read() as conn:
            assert locks.lock_info(conn, locks.SCHEDULER) is None
            left = conn.execute(
                sa.select(sa.func.count()).where(T.job_runs.c.status == "running")
            ).scalar()
        assert left == 0  # every run the stop interrupted is closed, none left running
    finally:
        for proc in (first, standby):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(30)
            if proc is not None:
                proc.stdout.close()
                proc.stderr.close()
        store.dispose()
