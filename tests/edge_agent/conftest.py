from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from central import admin
from edge_agent.agent import Agent
from edge_agent.cli import main as edge_main
from edge_agent.config import load_config
from tests.conftest import runtime
from tests.procs import write_edge_toml

SMALL_POOL = {"lease_block": 50, "pool_target": 200, "low_water": 100}


class Agents:
    """Enroll real agents (through the CLI) against the live central of the test."""

    def __init__(self, central: Any, tenant: Any, tmp_path: Path) -> None:
        self.central = central
        self.tenant = tenant
        self.tmp_path = tmp_path
        self.opened: list[Agent] = []

    def code(self, line: str) -> str:
        rt = runtime(self.tenant.app)
        return admin.create_enroll_code(rt.store, "MA01", line, 1, dt.datetime.now(dt.UTC)).code

    def enroll(self, line: str = "L1", **settings: Any) -> Agent:
        home = self.tmp_path / f"agent-{line}"
        write_edge_toml(home, **{**SMALL_POOL, **settings})
        result = CliRunner().invoke(
            edge_main,
            [
                "--home",
                str(home),
                "enroll",
                "--central",
                self.central.url,
                "--code",
                self.code(line),
            ],
        )
        assert result.exit_code == 0, result.output
        return self.open(home)

    def open(self, home: Path, **overrides: Any) -> Agent:
        agent = Agent(load_config(home, overrides))
        self.opened.append(agent)
        return agent

    def close(self) -> None:
        for agent in self.opened:
            agent.close()


@pytest.fixture(params=["sqlite"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Edge tests run against a central on SQLite; the central suite covers PostgreSQL."""
    return f"sqlite:///{tmp_path / 'central.db'}"


@pytest.fixture
def agents(live_central: Any, tenant: Any, tmp_path: Path) -> Iterator[Agents]:
    factory = Agents(live_central, tenant, tmp_path)
    yield factory
    factory.close()
