import datetime as dt
import threading

import pytest
import sqlalchemy as sa

from central import tables as T
from central.db import Store, normalise_url
from tests.conftest import runtime


def test_normalise_url_picks_psycopg3():
    assert normalise_url("postgresql://u@h/db").startswith("postgresql+psycopg://")
    assert normalise_url("postgres://u@h/db").startswith("postgresql+psycopg://")
    assert normalise_url("sqlite:///x.db") == "sqlite:///x.db"


def test_unsupported_database_is_refused():
    with pytest.raises(ValueError):
        Store("mysql://u@h/db")


def test_schema_and_seed(app):
    store = runtime(app).store
    assert store.schema_ready()
    with store.read() as conn:
        types = conn.execute(sa.select(T.production_types.c.code)).scalars().all()
        version = conn.execute(sa.select(T.key_versions.c.version)).scalars().all()
    assert sorted(types) == ["HAT", "OEM"]
    assert version == [1]
    store.init_schema()  # running init again changes nothing
    with store.read() as conn:
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(T.production_types)).scalar() == 2
        )


def _lease_row(lease_id, first, last, agent_id, tenant_id, scope="MA01-HAT-BAG-20251109"):
    now = dt.datetime.now(dt.UTC)
    return dict(
        id=lease_id,
        tenant_id=tenant_id,
        agent_id=agent_id,
        request_id=lease_id,
        scope_key=scope,
        first_seq=first,
        last_seq=last,
        key_version=1,
        granted_at=now,
        expires_at=now,
        status="active",
    )


def test_the_database_itself_refuses_overlapping_leases(app, tenant):
    """Even a bug that skipped the counter could not grant a number twice."""
    headers = tenant.enroll()
    store = runtime(app).store
    agent_id = headers["X-Agent-Id"]
    with store.write() as conn:
        tenant_id = conn.execute(sa.select(T.tenants.c.id)).scalar()
        conn.execute(T.leases.insert().values(**_lease_row("L1", 1, 100, agent_id, tenant_id)))
        conn.execute(T.leases.insert().values(**_lease_row("L2", 101, 200, agent_id, tenant_id)))
        # the same range in another scope is fine
        conn.execute(
            T.leases.insert().values(
                **_lease_row("L3", 1, 100, agent_id, tenant_id, scope="MA01-OEM-BAG-20251109")
            )
        )
    for first, last in [(100, 150), (50, 60), (1, 1000), (200, 200)]:
        with pytest.raises(sa.exc.IntegrityError), store.write() as conn:
            conn.execute(
                T.leases.insert().values(
                    **_lease_row(f"X{first}", first, last, agent_id, tenant_id)
                )
            )
    with pytest.raises(sa.exc.IntegrityError), store.write() as conn:
        conn.execute(T.leases.update().where(T.leases.c.id == "L2").values(first_seq=90))
    with pytest.raises(sa.exc.IntegrityError), store.write() as conn:
        conn.execute(T.leases.insert().values(**_lease_row("X0", 5, 4, agent_id, tenant_id)))


def test_write_rolls_back_on_error(app, tenant):
    store = runtime(app).store
    with pytest.raises(RuntimeError), store.write() as conn:
        conn.execute(T.tenants.update().values(name="changed"))
        raise RuntimeError("boom")
    with store.read() as conn:
        assert conn.execute(sa.select(T.tenants.c.name)).scalar() == "Maison Atelier"


def test_concurrent_writers_do_not_lose_updates(app, tenant):
    """Read-modify-write in write() transactions is serialised on both databases."""
    store = runtime(app).store
    errors = []

    def bump():
        try:
            for _ in range(20):
                with store.write() as conn:
                    row = conn.execute(
                        store.lock_row(
                            sa.select(T.work_orders.c.quantity).where(
                                T.work_orders.c.number == "WO-HAT-1"
                            )
                        )
                    ).one()
                    conn.execute(
                        T.work_orders.update()
                        .where(T.work_orders.c.number == "WO-HAT-1")
                        .values(quantity=row.quantity + 1)
                    )
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with store.read() as conn:
        assert (
            conn.execute(
                sa.select(T.work_orders.c.quantity).where(T.work_orders.c.number == "WO-HAT-1")
            ).scalar()
            == 200_000 + 80
        )
