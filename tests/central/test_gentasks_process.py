"""End to end: `work-order generate` from the CLI, run by a real `lineledger-central jobs`.

Nothing depends on speed: each step waits for what it needs with a generous timeout.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa
from biip.sscc import Sscc

from central import tables as T
from central.db import Store
from tests.central.gen_support import set_sscc_source
from tests.central.test_jobs_process import start
from tests.procs import cli, env_with, wait_for

pytestmark = pytest.mark.slow


def _run(env: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        [cli("lineledger-central"), *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "central.toml"
    config.write_text("[central]\ngeneration_tasks_minutes = 0.005\njob_lock_seconds = 3\n")
    environ = env_with(
        LINELEDGER_CENTRAL_HOME=str(tmp_path / "home"),
        LINELEDGER_CENTRAL_DB=db_url,
        LINELEDGER_CENTRAL_CONFIG=str(config),
    )
    _run(environ, "init")
    _run(environ, "tenant", "add", "--org", "MA01", "--name", "Maison Atelier")
    _run(environ, "product", "add", "--org", "MA01", "--sku", "TOTE-01", "--category", "BAG",
         "--name", "Tote", "--gtin", "04006381333931")  # fmt: skip
    _run(environ, "work-order", "add", "--org", "MA01", "--number", "WO-1", "--sku", "TOTE-01",
         "--type", "OEM", "--quantity", "12000")  # fmt: skip
    _run(environ, "product", "serial-format", "--org", "MA01", "--sku", "TOTE-01", "--format",
         "sgtin-random", "--length", "16")  # fmt: skip
    return environ


def test_jobs_process_runs_generation_tasks(env: dict[str, str], db_url: str) -> None:
    store = Store(db_url)
    set_sscc_source(store)
    proc, out = start(env)
    try:
        wait_for(lambda: out.has("lineledger-central jobs running"), 60)
        first = _run(env, "work-order", "generate", "WO-1", "--serials", "12000")
        second = _run(env, "work-order", "generate", "WO-1", "--org", "MA01", "--sscc", "40")
        ids = [text.split("task ")[1].split()[0] for text in (first, second)]

        def finished() -> bool:
            shown = [json.loads(_run(env, "work-order", "task", i)) for i in ids]
            return all(s["status"] == "completed" for s in shown)

        wait_for(finished, 120, 0.5)
        codes = [
            line.split("\t")[0] for line in _run(env, "work-order", "ssccs", "WO-1").splitlines()
        ]
        assert len(codes) == len(set(codes)) == 40
        for code in codes:
            Sscc.parse(code)
        with store.read() as conn:
            wo = conn.execute(sa.select(T.work_orders)).one()
            pool = conn.execute(sa.select(sa.func.count()).select_from(T.serial_pool)).scalar()
            runs = conn.execute(
                sa.select(T.job_runs.c.status).where(T.job_runs.c.job == "generation_tasks")
            ).scalars()
            assert set(runs) == {"ok"}
        assert (wo.generated_serials, wo.generated_sscc, pool) == (12_000, 40, 12_000)
        assert (wo.serial_status, wo.sscc_status) == ("completed", "completed")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
        store.dispose()
