"""The example configurations in deploy/ load with the real loaders."""

import shutil
from pathlib import Path

from central.config import load_config as load_central
from edge_agent.config import load_config as load_edge

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def test_central_example_config_loads():
    cfg = load_central(environ={"LINELEDGER_CENTRAL_CONFIG": str(DEPLOY / "central.example.toml")})
    assert cfg.public_base_url.startswith("https://") and cfg.trusted_proxies == 1
    assert cfg.verify_rate_limit == "60/hour"


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
