"""Every error path of the central API answers in the one JSON error shape."""

import datetime as dt
import os
import uuid

import pytest
import redis

from central import create_app, init_registry
from central.config import load_config
from tests.central.helpers import lease, new_id
from tests.conftest import runtime

REDIS_URL = os.environ.get("LINELEDGER_TEST_REDIS", "redis://127.0.0.1:6379/0")


def shape(resp, status, code):
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.is_json
    assert resp.json == {
        "ok": False,
        "error": {"code": code, "message": resp.json["error"]["message"]},
    }
    assert resp.json["error"]["message"]
    assert "Traceback" not in resp.get_data(as_text=True)


def test_error_shape_everywhere(client, tenant):
    h = tenant.enroll()
    today = f"{tenant.today:%Y%m%d}"
    cases = [
        (client.get("/nowhere"), 404, "ERR_NOT_FOUND"),
        (client.delete("/api/edge/v1/events", headers=h), 405, "ERR_METHOD_NOT_ALLOWED"),
        (client.get("/api/edge/v1/config"), 401, "ERR_UNAUTHORIZED"),
        (
            client.get("/api/edge/v1/config", headers={"Authorization": "Basic abc"}),
            401,
            "ERR_UNAUTHORIZED",
        ),
        (
            client.get("/api/edge/v1/config", headers={"Authorization": "Bearer " + "x" * 500}),
            401,
            "ERR_UNAUTHORIZED",
        ),
        (client.post("/api/edge/v1/enroll", json={"code": "NOPE-NOPE"}), 401, "ERR_ENROLL_CODE"),
        (
            client.post("/api/edge/v1/enroll", data=b"\xff\xfe", content_type="application/json"),
            400,
            "ERR_JSON",
        ),
        (
            client.post("/api/edge/v1/enroll", data=b"{}", content_type="text/plain"),
            415,
            "ERR_UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            client.post("/api/edge/v1/enroll", data=b"[NaN]", content_type="application/json"),
            400,
            "ERR_JSON_NONFINITE",
        ),
        (client.post("/api/edge/v1/enroll", json=[]), 400, "ERR_SCHEMA"),
        (lease(client, h, f"MA01-HAT-BAG-{today}", 0), 400, "ERR_SCHEMA"),
        (
            client.post(
                "/api/edge/v1/leases",
                headers=h,
                json={"v": 1, "request_id": "x", "scope": "a", "size": 1},
            ),
            400,
            "ERR_EVENT_ID",
        ),
        (
            client.post("/api/edge/v1/leases/nope/return", headers=h, json={"high_water": 1}),
            404,
            "ERR_LEASE_UNKNOWN",
        ),
        (
            client.post(
                "/api/edge/v1/events",
                headers=h,
                data=b"x" * (5 << 20),
                content_type="application/json",
            ),
            413,
            "ERR_TOO_LARGE",
        ),
    ]
    for resp, status, code in cases:
        shape(resp, status, code)


def test_a_used_enrollment_code_cannot_be_used_again(app, client, tenant):
    from central import admin

    code = admin.create_enroll_code(runtime(app).store, "MA01", "L1", 1, dt.datetime.now(dt.UTC))
    assert client.post("/api/edge/v1/enroll", json={"code": code.code.lower()}).status_code == 201
    shape(client.post("/api/edge/v1/enroll", json={"code": code.code}), 401, "ERR_ENROLL_CODE")


def test_an_expired_enrollment_code_is_refused(app, client, tenant):
    from central import admin

    code = admin.create_enroll_code(
        runtime(app).store, "MA01", "L1", 1, dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    )
    shape(client.post("/api/edge/v1/enroll", json={"code": code.code}), 401, "ERR_ENROLL_CODE")


def test_database_failure_is_503_not_a_traceback(app, client, tenant):
    h = tenant.enroll()
    with runtime(app).store.write() as conn:
        conn.exec_driver_sql("DROP TABLE scope_counters")
    resp = lease(client, h, f"MA01-HAT-BAG-{tenant.today:%Y%m%d}", 10)
    assert resp.status_code in (500, 503)
    shape(resp, resp.status_code, "ERR_DATABASE" if resp.status_code == 503 else "ERR_INTERNAL")


def test_metrics_are_loopback_only_unless_a_token_is_set(app, client, central_config):
    assert client.get("/metrics").status_code == 200
    shape(client.get("/metrics", environ_base={"REMOTE_ADDR": "10.0.0.9"}), 403, "ERR_FORBIDDEN")
    cfg = {**central_config, "metrics_token": "s3cret"}
    other = create_app(cfg)
    try:
        c = other.test_client()
        shape(c.get("/metrics"), 403, "ERR_FORBIDDEN")
        assert c.get("/metrics", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    finally:
        runtime(other).close()


def test_health(client):
    body = client.get("/healthz").json
    assert body["ok"] is True and body["database"] in ("sqlite", "postgresql")


@pytest.mark.redis
def test_rate_limit_shared_through_redis_by_several_workers(central_config):
    """Two app instances (two web workers) share one budget through Redis."""
    try:
        with redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3) as probe:
            probe.ping()
    except redis.RedisError as exc:
        pytest.fail(
            f"Redis at {REDIS_URL} does not answer ({exc}); run bash .ci/run", pytrace=False
        )
    cfg = {**central_config, "verify_rate_limit": "4/hour", "ratelimit_storage_uri": REDIS_URL}
    init_registry(load_config(cfg), dt.datetime.now(dt.UTC))
    a, b = create_app(cfg), create_app(cfg)
    ip = {"REMOTE_ADDR": f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.7"}
    try:
        ca, cb = a.test_client(), b.test_client()
        statuses = [
            c.get("/api/public/serial/verify/" + new_id(), environ_base=ip).status_code
            for c in (ca, cb, ca, cb, ca)
        ]
        assert statuses == [200, 200, 200, 200, 429]
    finally:
        runtime(a).close()
        runtime(b).close()


def test_verify_fails_closed_when_the_rate_limit_storage_is_down(central_config):
    """Nothing listens where the shared budget lives: 503, never a traceback or a free pass."""
    cfg = {**central_config, "ratelimit_storage_uri": "redis://127.0.0.1:9/0"}
    init_registry(load_config(cfg), dt.datetime.now(dt.UTC))
    app = create_app(cfg)
    try:
        resp = app.test_client().get("/api/public/serial/verify/" + new_id())
        shape(resp, 503, "ERR_RATE_LIMIT_STORAGE")
        assert app.test_client().get("/healthz").status_code == 200  # the rest still answers
    finally:
        runtime(app).close()
