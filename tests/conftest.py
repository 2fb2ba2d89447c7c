"""Fixtures shared by every test folder: databases, a central app, live servers, agents.

The central store is parametrised over SQLite (a real file) and PostgreSQL (a real server,
`LINELEDGER_TEST_PG`, default postgresql://postgres@127.0.0.1:5432/postgres). PostgreSQL is
not optional: if it does not answer, the tests that need it fail and say how to start it.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from central import admin, create_app, init_registry
from central.config import load_config
from central.runtime import Runtime
from edge_agent.web import BackgroundServer

PG_URL = os.environ.get("LINELEDGER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_admin() -> psycopg.Connection[Any]:
    url = make_url(PG_URL)
    try:
        return psycopg.connect(
            host=url.host or "127.0.0.1",
            port=url.port or 5432,
            user=url.username or "postgres",
            password=url.password,
            dbname=url.database or "postgres",
            autocommit=True,
            connect_timeout=5,
        )
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL at {PG_URL} does not answer ({exc}). Start it (e.g. "
            "`pg_ctlcluster --skip-systemctl-redirect 15 main start`) or run `bash .ci/run`, "
            "which starts or installs it.",
            pytrace=False,
        )


class PgDatabases:
    """Create throw-away PostgreSQL databases and drop them afterwards."""

    def __init__(self) -> None:
        self.created: list[str] = []

    def create(self) -> str:
        name = f"lltest_{os.getpid()}_{uuid.uuid4().hex[:10]}"
        with _pg_admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return (
            make_url(PG_URL)
            .set(drivername="postgresql+psycopg", database=name)
            .render_as_string(hide_password=False)
        )

    def drop_all(self) -> None:
        with _pg_admin() as conn:
            for name in self.created:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.created.clear()


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[PgDatabases]:
    dbs = PgDatabases()
    yield dbs
    dbs.drop_all()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Return the URL of an empty central database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'central.db'}"
    dbs: PgDatabases = request.getfixturevalue("pg_databases")
    return dbs.create()


@pytest.fixture
def central_config(db_url: str, tmp_path: Path) -> dict[str, Any]:
    home = tmp_path / "central-home"
    return {"home": str(home), "db_url": db_url, "verify_flush_seconds": 0.05}


@pytest.fixture
def app(central_config: dict[str, Any]) -> Iterator[Any]:
    init_registry(load_config(central_config), dt.datetime.now(dt.UTC))
    application = create_app(central_config)
    yield application
    runtime(application).close()


def runtime(application: Any) -> Runtime:
    rt: Runtime = application.extensions["lineledger"]
    return rt


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


@dataclass
class Tenant:
    """A seeded tenant: org MA01, products in category BAG, two work orders."""

    org: str
    timezone: str
    app: Any

    def enroll(self, line: str = "L1") -> dict[str, str]:
        rt = runtime(self.app)
        now = dt.datetime.now(dt.UTC)
        code = admin.create_enroll_code(rt.store, self.org, line, 1, now)
        resp = admin.enroll_agent(rt.store, code.code, "test-host", "test", now)
        return {"Authorization": f"Bearer {resp.token}", "X-Agent-Id": resp.agent_id}

    @property
    def today(self) -> dt.date:
        import zoneinfo

        return dt.datetime.now(zoneinfo.ZoneInfo(self.timezone)).date()


@pytest.fixture
def tenant(app: Any) -> Tenant:
    rt = runtime(app)
    now = dt.datetime.now(dt.UTC)
    admin.add_tenant(rt.store, "MA01", "Maison Atelier", "Europe/Paris", now)
    admin.add_product(rt.store, "MA01", "TOTE-01", "BAG", "Tote bag", "04006381333931", now)
    admin.add_work_order(rt.store, "MA01", "WO-HAT-1", "TOTE-01", "HAT", 200_000, now)
    admin.add_work_order(rt.store, "MA01", "WO-OEM-1", "TOTE-01", "OEM", 200_000, now)
    return Tenant("MA01", "Europe/Paris", app)


class LiveServer:
    """A real HTTP server (waitress) on 127.0.0.1 serving an app from a thread."""

    def __init__(self, application: Any) -> None:
        self.handle = BackgroundServer(application, "127.0.0.1", 0, threads=8).start()
        self.url = self.handle.url

    def close(self) -> None:
        self.handle.stop()


@pytest.fixture
def live_central(app: Any) -> Iterator[LiveServer]:
    server = LiveServer(app)
    yield server
    server.close()
