"""Central without connection pre-pings: what happens when PostgreSQL drops its connections (#8).

Every pooled connection is killed on the server (pg_terminate_backend, as a restart or a
failover does). Public verify retries its one read on a fresh connection and answers; an
edge call that meets a dead connection is answered 503 ERR_DATABASE once (agents retry) and
the next call works, because the pool retires every connection older than the failure.
"""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url

from tests.central.helpers import event, grant, push, serial_of
from tests.conftest import _pg_admin, runtime

pytestmark = pytest.mark.postgres


@pytest.fixture(params=["postgresql"])
def db_url(request: pytest.FixtureRequest, pg_databases) -> str:
    return pg_databases.create()


def _kill_connections(db_url: str) -> int:
    name = make_url(db_url).database
    with _pg_admin() as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchall()
    return len(rows)


def test_verify_answers_through_a_dropped_connection(client, tenant, db_url):
    h = tenant.enroll()
    g = grant(client, h, f"MA01-HAT-BAG-{tenant.today:%Y%m%d}", 5)
    push(client, h, [event("issued", serial_of(g, 1), g.lease_id, "WO-HAT-1")])
    api = f"/api/public/serial/verify/{serial_of(g, 1)}"
    assert client.get(api).json["verdict"] == "genuine"
    assert _kill_connections(db_url) >= 1  # the pooled connection verify used
    resp = client.get(api)
    assert resp.status_code == 200 and resp.json["verdict"] == "genuine"


def test_an_edge_call_on_a_dropped_connection_fails_once_then_works(client, tenant, db_url):
    h = tenant.enroll()
    assert client.get("/api/edge/v1/config", headers=h).status_code == 200
    store = runtime(tenant.app).store
    assert store.engine.pool.checkedin() >= 1
    assert _kill_connections(db_url) >= 1
    first = client.get("/api/edge/v1/config", headers=h)
    assert first.status_code == 503 and first.json["error"]["code"] == "ERR_DATABASE"
    again = client.get("/api/edge/v1/config", headers=h)
    assert again.status_code == 200
