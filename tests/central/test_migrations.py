"""Schema migrations: `init` creates a registry from nothing and upgrades one made by release
0.2.2 with data in it, on SQLite and PostgreSQL, and the result matches `central/tables.py`."""

from __future__ import annotations

import datetime as dt
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy.engine import make_url

from central import create_app
from central import tables as T
from central.cli import main as central_cli
from central.db import SCHEMA_VERSION, Store
from central.migrate import current_revision, head_revision, upgrade
from tests.conftest import runtime

FIXTURES = Path(__file__).parent / "fixtures"


def _schema_differences(store: Store) -> list[Any]:
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, T.metadata))


def _load_release(db_url: str, tmp_path: Path) -> Path:
    """Fill an empty database with the release 0.2.2 dump; return its keyring."""
    kind = "sqlite" if db_url.startswith("sqlite") else "postgresql"
    script = (FIXTURES / f"release-0.2.2-{kind}.sql").read_text()
    if kind == "sqlite":
        conn = sqlite3.connect(make_url(db_url).database)
        conn.executescript(script)
        conn.close()
    else:
        url = make_url(db_url)
        with psycopg.connect(
            host=url.host, port=url.port, user=url.username, dbname=url.database, autocommit=True
        ) as conn:
            conn.execute(script)  # type: ignore[call-overload]
    keyring = tmp_path / "central-home" / "master_keys.json"
    keyring.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURES / f"release-0.2.2-{kind}-keyring.json", keyring)
    return keyring


def test_init_creates_the_schema_of_tables_py(db_url):
    store = Store(db_url)
    try:
        assert current_revision(store) is None
        assert not store.schema_ready()
        store.init_schema()
        assert current_revision(store) == head_revision()
        assert store.schema_ready()
        assert _schema_differences(store) == []
        store.init_schema()  # running it again changes nothing
        assert _schema_differences(store) == []
    finally:
        store.dispose()


def test_init_upgrades_a_registry_made_by_release_0_2_2(db_url, tmp_path):
    _load_release(db_url, tmp_path)
    store = Store(db_url)
    try:
        with store.read() as conn:
            before = {
                t: conn.execute(
                    sa.select(sa.func.count()).select_from(T.metadata.tables[t])
                ).scalar()
                for t in (
                    "tenants",
                    "products",
                    "work_orders",
                    "agents",
                    "leases",
                    "gaps",
                    "events",
                    "registry",
                    "quarantine",
                    "feature_flags",
                    "admin_tokens",
                )
            }
        assert before["registry"] == 16 and before["quarantine"] == 2
        assert current_revision(store) is None
        assert not store.schema_ready()  # commands refuse to run until init upgraded it
    finally:
        store.dispose()

    home = tmp_path / "central-home"
    result = CliRunner().invoke(central_cli, ["--home", str(home), "--db", db_url, "init"])
    assert result.exit_code == 0, result.output
    assert "active key version 1" in result.output

    store = Store(db_url)
    try:
        assert current_revision(store) == head_revision()
        assert _schema_differences(store) == []
        with store.read() as conn:
            for table, count in before.items():
                now = conn.execute(
                    sa.select(sa.func.count()).select_from(T.metadata.tables[table])
                ).scalar()
                assert now == count, table
            # every event names its serial's lease now (only `issued` events did before)
            unnamed = conn.execute(
                sa.select(sa.func.count())
                .select_from(T.events.join(T.registry, T.registry.c.serial == T.events.c.serial))
                .where(T.events.c.lease_id.is_(None))
            ).scalar()
            assert unnamed == 0
            linked = conn.execute(
                sa.select(T.registry.c.job_ticket, T.registry.c.token).where(
                    T.registry.c.state == "linked"
                )
            ).one()
            assert tuple(linked) == ("JT-7", "TK-1")
            returned = conn.execute(
                sa.select(T.leases.c.closed_at).where(T.leases.c.status == "returned")
            ).one()
            assert returned.closed_at is not None
    finally:
        store.dispose()

    # The upgraded registry works: old serials verify, new leases and events are taken.
    config = {"home": str(home), "db_url": db_url, "verify_flush_seconds": 0.05}
    app = create_app(config)
    try:
        client = app.test_client()
        with runtime(app).store.read() as conn:
            printed = conn.execute(
                sa.select(T.registry.c.serial)
                .where(
                    T.registry.c.state == "printed",
                    T.registry.c.serial.not_in(sa.select(T.quarantine.c.serial)),
                )
                .order_by(T.registry.c.serial)
                .limit(1)
            ).scalar()
            voided = conn.execute(
                sa.select(T.registry.c.serial).where(T.registry.c.state == "voided")
            ).scalar()
        assert client.get(f"/api/public/serial/verify/{printed}").json["verdict"] == "genuine"
        assert client.get(f"/api/public/serial/verify/{voided}").json["verdict"] == "voided"
        result = CliRunner().invoke(central_cli, ["--home", str(home), "--db", db_url, "stats"])
        assert result.exit_code == 0, result.output
    finally:
        runtime(app).close()


def test_commands_refuse_a_registry_that_init_has_not_upgraded(db_url, tmp_path):
    _load_release(db_url, tmp_path)
    home = tmp_path / "central-home"
    result = CliRunner().invoke(central_cli, ["--home", str(home), "--db", db_url, "stats"])
    assert result.exit_code == 1
    assert "ERR_NOT_INITIALISED" in result.output and "lineledger-central init" in result.output


def test_init_upgrades_a_release_0_1_registry(db_url):
    """A registry made before label templates and tenant-scoped holds gets them on init."""
    store = Store(db_url)
    try:
        upgrade(store, "0001")
        with store.write() as conn:
            conn.exec_driver_sql("DROP TABLE alembic_version")
            conn.exec_driver_sql("DROP INDEX ix_products_gtin")
            conn.exec_driver_sql("ALTER TABLE products DROP COLUMN label_template")
            conn.exec_driver_sql("ALTER TABLE quarantine DROP COLUMN holds_serial")
            conn.exec_driver_sql("DROP TABLE label_templates")
            tenant = conn.execute(
                T.tenants.insert().values(
                    org_code="MA01", name="M", timezone="UTC", created_at=dt.datetime.now(dt.UTC)
                )
            ).inserted_primary_key[0]
            conn.exec_driver_sql(
                "INSERT INTO products (tenant_id, sku, category, name, created_at) "
                f"VALUES ({tenant}, 'S', 'BAG', 'Bag', CURRENT_TIMESTAMP)"
            )
        assert current_revision(store) is None
        store.init_schema()
        assert current_revision(store) == head_revision()
        assert _schema_differences(store) == []
        with store.read() as conn:
            assert conn.execute(sa.select(T.products.c.label_template)).scalar() == "default"
            assert conn.execute(sa.select(T.schema_info.c.value)).scalar() == SCHEMA_VERSION
    finally:
        store.dispose()
