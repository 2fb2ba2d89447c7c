"""Helpers for the generation-task tests: an SSCC source, a randomised product, a runner."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import sqlalchemy as sa

from central import gentasks
from central import tables as T
from central.db import Store
from central.serialformats import set_serial_format

GTIN = "04006381333931"
PREFIX = "4006381"
STALE = dt.timedelta(seconds=120)


def set_sscc_source(
    store: Store, org: str = "MA01", prefix: str = PREFIX, ext: int = 3, enabled: bool = True
) -> None:
    """Write the tenant's generation_config row with one SSCC source (the shared JSON shape)."""
    sources = [
        {"name": "off", "company_prefix": "999999", "extension_digit": 9, "enabled": False},
        {"name": "main", "company_prefix": prefix, "extension_digit": ext, "enabled": enabled},
    ]
    now = dt.datetime.now(dt.UTC)
    with store.write() as conn:
        tenant_id = conn.execute(
            sa.select(T.tenants.c.id).where(T.tenants.c.org_code == org)
        ).scalar_one()
        store.upsert(
            conn,
            T.generation_config,
            ["tenant_id"],
            {
                "tenant_id": tenant_id,
                "sscc_sources": json.dumps(sources),
                "updated_at": now,
                "updated_by": "test",
            },
        )


def make_random(
    store: Store, alphabet: str = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ", length: int = 12
) -> None:
    set_serial_format(
        store,
        "MA01",
        "TOTE-01",
        "sgtin-random",
        "test",
        dt.datetime.now(dt.UTC),
        alphabet=alphabet,
        length=length,
        planned=1,
    )


def ask(
    store: Store, kind: str, quantity: int, force: bool = False, number: str = "WO-HAT-1"
) -> tuple[gentasks.Task | None, dict[str, Any]]:
    return gentasks.request_generation(
        store, "MA01", number, kind, quantity, force, "test", dt.datetime.now(dt.UTC)
    )


def run_all(store: Store) -> dict[str, int]:
    return gentasks.run_pending(store, STALE)


def work_order(store: Store, number: str = "WO-HAT-1") -> Any:
    with store.read() as conn:
        return conn.execute(sa.select(T.work_orders).where(T.work_orders.c.number == number)).one()


def ssccs_of(store: Store, number: str = "WO-HAT-1") -> list[str]:
    with store.read() as conn:
        return gentasks.list_ssccs(conn, "MA01", number, limit=10**6)


def serials_of(store: Store, number: str = "WO-HAT-1") -> list[str]:
    wo = work_order(store, number)
    with store.read() as conn:
        return list(
            conn.execute(
                sa.select(T.serial_pool.c.serial).where(T.serial_pool.c.work_order_id == wo.id)
            ).scalars()
        )


def history(store: Store, task_id: str) -> list[str]:
    with store.read() as conn:
        return list(
            conn.execute(
                sa.select(T.generation_history.c.status)
                .where(T.generation_history.c.task_id == task_id)
                .order_by(T.generation_history.c.id)
            ).scalars()
        )
