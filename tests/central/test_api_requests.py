"""Hostile request bodies: every JSON endpoint takes application/json, finite numbers, no NUL."""

import datetime as dt

import pytest
import sqlalchemy as sa

from central import admin
from central import tables as T
from tests.central.helpers import new_id
from tests.conftest import runtime

# (path template, needs): every POST endpoint of the edge and admin APIs that reads a body.
EDGE = [
    "/api/edge/v1/enroll",
    "/api/edge/v1/leases",
    "/api/edge/v1/leases/{lease}/return",
    "/api/edge/v1/events",
    "/api/edge/v1/reconcile",
]
ADMIN = [
    "/api/admin/v1/agents/{agent}/revoke",
    "/api/admin/v1/agents/{agent}/reinstate",
    "/api/admin/v1/quarantine/1/release",
    "/api/admin/v1/quarantine/1/confirm",
    "/api/admin/v1/recalls",
]


@pytest.fixture
def callers(app, tenant):
    agent = tenant.enroll()
    token = admin.add_admin_token(runtime(app).store, "ops", dt.datetime.now(dt.UTC))
    return {"edge": agent, "admin": {"Authorization": f"Bearer {token}"}}


def _paths(callers):
    agent_id = callers["edge"]["X-Agent-Id"]
    for path in EDGE:
        yield path.format(lease=new_id()), callers["edge"]
    for path in ADMIN:
        yield path.format(agent=agent_id), callers["admin"]


def _error(resp, status, code):
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True))
    assert resp.json == {
        "ok": False,
        "error": {"code": code, "message": resp.json["error"]["message"]},
    }
    assert resp.json["error"]["message"]


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonx",
        "text/json",
    ],
)
def test_json_endpoints_refuse_other_media_types(client, callers, content_type):
    headers_extra = {} if content_type is None else {"Content-Type": content_type}
    for path, headers in _paths(callers):
        resp = client.post(path, headers={**headers, **headers_extra}, data=b'{"reason": "x"}')
        _error(resp, 415, "ERR_UNSUPPORTED_MEDIA_TYPE")


def test_a_text_plain_revoke_changes_nothing(app, client, callers):
    agent_id = callers["edge"]["X-Agent-Id"]
    resp = client.post(
        f"/api/admin/v1/agents/{agent_id}/revoke",
        headers={**callers["admin"], "Content-Type": "text/plain"},
        data=b'{"reason": "cross-site form post"}',
    )
    _error(resp, 415, "ERR_UNSUPPORTED_MEDIA_TYPE")
    with runtime(app).store.read() as conn:
        status = conn.execute(
            sa.select(T.agents.c.status).where(T.agents.c.id == agent_id)
        ).scalar_one()
    assert status == "active"
    assert client.get("/api/edge/v1/ping", headers=callers["edge"]).status_code == 200
    resp = client.post(  # JSON with its charset named is JSON
        f"/api/admin/v1/agents/{agent_id}/revoke",
        headers={**callers["admin"], "Content-Type": "application/json; charset=utf-8"},
        data=b'{"reason": "line PC stolen"}',
    )
    assert resp.status_code == 200, resp.json
    assert client.get("/api/edge/v1/ping", headers=callers["edge"]).status_code == 403


@pytest.mark.parametrize(
    "body",
    [
        b'{"v": 1, "events": [], "x": NaN}',
        b'{"v": 1, "events": [], "x": Infinity}',
        b'{"v": 1, "events": [], "x": -Infinity}',
        b'{"v": 1, "events": [], "x": [1e999]}',
        b'{"reason": NaN}',
    ],
)
def test_non_finite_numbers_are_refused(client, callers, body):
    for path, headers in _paths(callers):
        resp = client.post(path, headers={**headers, "Content-Type": "application/json"}, data=body)
        _error(resp, 400, "ERR_JSON_NONFINITE")


@pytest.mark.parametrize(
    "body",
    [
        b'{"reason": "a\\u0000b"}',
        b'{"a\\u0000": 1}',
        b'{"v": 1, "events": [{"data": {"note": ["\\u0000"]}}]}',
    ],
)
def test_nul_characters_are_refused(client, callers, body):
    for path, headers in _paths(callers):
        resp = client.post(path, headers={**headers, "Content-Type": "application/json"}, data=body)
        _error(resp, 400, "ERR_NUL_CHARACTER")


def test_a_nul_in_an_event_is_refused_before_anything_is_stored(app, client, callers):
    ev = {
        "v": 1,
        "event_id": new_id(),
        "type": "issued",
        "serial": "MA01-HAT-BAG-20251109-00001-0000-0",
        "occurred_at": "2026-01-01T00:00:00Z",
        "data": {"job_ticket": "JT\u00001"},
    }
    resp = client.post(
        "/api/edge/v1/events", headers=callers["edge"], json={"v": 1, "events": [ev]}
    )
    _error(resp, 400, "ERR_NUL_CHARACTER")
    with runtime(app).store.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(T.events)).scalar() == 0


def test_numbers_in_paths_and_queries_are_ascii_digits(client, callers):
    # "²".isdigit() is True but int("²") fails: these answered 500 (found by schemathesis)
    admin_h = callers["admin"]
    for path, status, code in [
        ("/api/admin/v1/quarantine/0%C2%B2", 404, "ERR_QUARANTINE_UNKNOWN"),
        ("/api/admin/v1/quarantine?before=%C2%B2", 400, "ERR_INVALID"),
        ("/api/admin/v1/quarantine?limit=%D9%A3", 400, "ERR_INVALID"),
        ("/api/admin/v1/jobs/runs?limit=%C2%B2", 400, "ERR_INVALID"),
    ]:
        _error(client.get(path, headers=admin_h), status, code)
    resp = client.post(
        "/api/admin/v1/quarantine/0%C2%B2/release", headers=admin_h, json={"reason": "x"}
    )
    _error(resp, 404, "ERR_QUARANTINE_UNKNOWN")


def test_nul_in_an_address_is_refused(client, callers):
    # on PostgreSQL these answered 500 (found by schemathesis): text cannot hold NUL
    admin_h = callers["admin"]
    for path in [
        "/api/admin/v1/reports/reconcile?lease=a%00b",
        "/api/admin/v1/reports/reconcile?org=MA01&work_order=WO%00",
        "/api/admin/v1/quarantine?serial=%00",
        "/api/admin/v1/serials/MA01%00",
        "/api/edge/v1/config?x=%00",
    ]:
        headers = callers["edge"] if path.startswith("/api/edge/") else admin_h
        _error(client.get(path, headers=headers), 400, "ERR_NUL_CHARACTER")
    # a customer's garbage code is a typo, as before
    resp = client.get("/api/public/serial/verify/MA01%00")
    assert resp.status_code == 200 and resp.json["verdict"] == "malformed"


def test_a_lone_surrogate_is_not_text(client, callers):
    for path, headers in _paths(callers):
        resp = client.post(
            path, headers=headers, data=b'{"reason": "\\ud800"}', content_type="application/json"
        )
        _error(resp, 400, "ERR_JSON")
