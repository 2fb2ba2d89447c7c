"""The example configurations in deploy/ load with the real loaders."""

import re
import shlex
import shutil
from pathlib import Path

from click.testing import CliRunner

from central.cli import main as central_main
from central.config import load_config as load_central
from central.jobs.catalog import find_job
from edge_agent.config import load_config as load_edge
from tests.central.helpers import event, grant, push, serial_of

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def test_central_example_config_loads():
    cfg = load_central(environ={"LINELEDGER_CENTRAL_CONFIG": str(DEPLOY / "central.example.toml")})
    assert cfg.public_base_url.startswith("https://") and cfg.trusted_proxies == 1
    assert cfg.verify_rate_limit == "60/hour"
    assert (cfg.trusted_proxy_address, cfg.max_body_bytes) == ("127.0.0.1", 4 * 1024 * 1024)
    assert (cfg.connection_limit, cfg.channel_timeout, cfg.cleanup_interval) == (100, 30, 10)


def test_edge_example_config_loads(tmp_path):
    shutil.copy(DEPLOY / "edge.example.toml", tmp_path / "edge.toml")
    cfg = load_edge(tmp_path, environ={})
    assert cfg.printer_url == "tcp://10.0.0.7:9100"
    assert cfg.retry_schedule == (60.0, 300.0, 900.0, 3600.0, 21600.0)
    assert cfg.low_water < cfg.pool_target


def test_environment_overrides_the_edge_file(tmp_path):
    shutil.copy(DEPLOY / "edge.example.toml", tmp_path / "edge.toml")
    cfg = load_edge(tmp_path, environ={"LINELEDGER_EDGE_LOW_WATER": "123"})
    assert cfg.low_water == 123


def test_central_example_sets_the_job_schedule():
    cfg = load_central(environ={"LINELEDGER_CENTRAL_CONFIG": str(DEPLOY / "central.example.toml")})
    assert (cfg.lease_expiry_minutes, cfg.consistency_check_minutes) == (15, 60)
    assert (cfg.orphan_grace_hours_hat, cfg.orphan_grace_hours_oem) == (72, 24)
    assert (cfg.agent_silent_hours, cfg.facts_grace_minutes, cfg.job_lock_seconds) == (6, 60, 120)


def _central_args(command_line):
    """Return the lineledger-central arguments of a shell command line (output redirect cut)."""
    words = shlex.split(command_line.split(">>")[0])
    start = next(i for i, w in enumerate(words) if w.endswith("/lineledger-central"))
    return words[start + 1 :]


def test_the_jobs_unit_and_the_cron_example_run_real_commands():
    unit = (DEPLOY / "systemd" / "lineledger-central-jobs.service").read_text()
    settings = dict(
        line.split("=", 1) for line in unit.splitlines() if "=" in line and line[0] != "#"
    )
    assert settings["KillSignal"] == "SIGTERM"
    commands = [_central_args(settings["ExecStart"])]
    cron = (DEPLOY / "cron" / "lineledger-central").read_text()
    entries = [
        line for line in cron.splitlines() if line and line[0] not in "#" and "=" not in line[:40]
    ]
    assert len(entries) == 4
    for entry in entries:
        fields = entry.split(None, 6)
        assert fields[5] == "lineledger"  # /etc/cron.d lines name the user
        commands.append(_central_args(fields[6]))
    assert commands == [
        ["jobs", "--standby"],
        ["check"],
        ["jobs", "run", "lease_expiry"],
        ["jobs", "run", "generation_tasks"],
        ["jobs", "run", "erp_pull"],
    ]
    for args in commands:
        result = CliRunner().invoke(central_main, [*args, "--help"])
        assert result.exit_code == 0, (args, result.output)
    for name in ("lease_expiry", "generation_tasks", "erp_pull"):
        assert find_job(name).name == name


def test_the_central_alert_rules_name_metrics_central_exports(client, tenant):
    h = tenant.enroll()
    g = grant(client, h, f"MA01-HAT-BAG-{tenant.today:%Y%m%d}", 5)
    push(client, h, [event("issued", serial_of(g, 1), g.lease_id)])
    push(client, h, [event("issued", serial_of(g, 1), g.lease_id)])  # one quarantine entry
    config = client.application.extensions["lineledger"].config
    runner = CliRunner()
    env = {"LINELEDGER_CENTRAL_DB": config.database_url, "LINELEDGER_CENTRAL_HOME": config.home}
    assert runner.invoke(central_main, ["check"], env=env).exit_code == 0
    assert runner.invoke(central_main, ["jobs", "run", "lease_expiry"], env=env).exit_code == 0
    exported = {
        re.split(r"[{ ]", line)[0]
        for line in client.get("/metrics").get_data(as_text=True).splitlines()
        if line and not line.startswith("#")
    }
    rules = (DEPLOY / "prometheus" / "alerts.yml").read_text()
    group = rules[rules.index("- name: lineledger-central-jobs") :]
    exprs = [line.split("expr:", 1)[1] for line in group.splitlines() if "expr:" in line]
    exprs.append("increase(quarantine_entries_total[1h]) > 10")
    assert f"expr: {exprs[-1]}" in rules
    named = {
        name
        for expr in exprs
        for name in re.findall(r"[a-z_][a-z0-9_]*(?=\{|\[|\s*>|\s*==|\)\s*$)", expr)
        if name not in ("time", "absent", "increase")
    }
    assert named == {
        "lineledger_job_last_success_timestamp_seconds",
        "consistency_check_failures",
        "lineledger_job_last_run_status",
        "quarantine_entries_total",
    }
    assert named <= exported


def test_the_server_extra_installs_the_documented_deployment():
    import tomllib

    project = tomllib.loads((DEPLOY.parent / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    names = {re.split(r"[<>=\[ ]", req)[0] for req in extras["server"]}
    assert {"gunicorn", "redis"} <= names
    assert {"gunicorn", "redis"} <= {re.split(r"[<>=\[ ]", req)[0] for req in extras["test"]}
    assert 'pip install ".[server]"' in (DEPLOY / "README.md").read_text()
    assert "lineledger[server]" in (DEPLOY / "gunicorn.conf.py").read_text()
