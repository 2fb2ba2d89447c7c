"""Helpers for the tests of the central jobs: reconciles through the edge API, table dumps."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

import sqlalchemy as sa

from central import tables as T
from central.db import Store
from central.jobs.checker import CheckReport, run_check
from protocol.reconcile import Digest, LeaseReport, ReconcileRequest
from tests.conftest import runtime


def scope(tenant: Any, ptype: str = "HAT", day: dt.date | None = None) -> str:
    return f"MA01-{ptype}-BAG-{(day or tenant.today):%Y%m%d}"


def reconcile(
    client: Any,
    headers: dict[str, str],
    leases: list[LeaseReport],
    mode: str = "full",
    outbox: dict[str, float] | None = None,
) -> dict[str, Any]:
    """POST a reconcile through the real edge API; return the answer."""
    body = ReconcileRequest(mode, tuple(leases), outbox=outbox).to_dict()
    resp = client.post("/api/edge/v1/reconcile", headers=headers, json=body)
    assert resp.status_code == 200, resp.json
    answer: dict[str, Any] = resp.json
    return answer


def full_report(
    lease_id: str, high_water: int, event_ids: list[str], counts: dict[str, int], links: str
) -> LeaseReport:
    return LeaseReport(lease_id, high_water, counts, Digest().add_all(event_ids), links)


def check(
    app: Any, now: dt.datetime | None = None, dry_run: bool = False, **settings: Any
) -> CheckReport:
    """Run the checker in-process with some settings changed; return its report."""
    rt = runtime(app)
    config = dataclasses.replace(rt.config, **settings)
    return run_check(rt.store, rt.keyring, config, now or dt.datetime.now(dt.UTC), dry_run)


def of_kind(report: CheckReport, kind: str) -> list[Any]:
    return [f for f in report.findings if f.kind == kind]


def dump(store: Store) -> dict[str, list[tuple[str, ...]]]:
    """Return every row of every table (Alembic's too), as sorted text tuples."""
    out: dict[str, list[tuple[str, ...]]] = {}
    with store.read() as conn:
        names = sa.inspect(conn).get_table_names()
        for name in sorted(names):
            table = sa.Table(name, sa.MetaData(), autoload_with=conn)
            rows = conn.execute(sa.select(table)).all()
            out[name] = sorted(tuple(str(v) for v in row) for row in rows)
    return out


def quarantine_rows(app: Any, serial: str | None = None) -> list[Any]:
    with runtime(app).store.read() as conn:
        query = sa.select(T.quarantine).order_by(T.quarantine.c.id)
        if serial is not None:
            query = query.where(T.quarantine.c.serial == serial)
        return list(conn.execute(query))


def lease_row(app: Any, lease_id: str) -> Any:
    with runtime(app).store.read() as conn:
        return conn.execute(sa.select(T.leases).where(T.leases.c.id == lease_id)).one()


def details(row: Any) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(row.details)
    return value
