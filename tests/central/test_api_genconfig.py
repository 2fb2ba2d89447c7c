"""The admin API of the generation configuration, including hostile requests."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from central import admin
from tests.central.test_genconfig import GOOD, good
from tests.conftest import runtime

URL = "/api/admin/v1/config?org=MA01"


@pytest.fixture
def headers(app, tenant):
    token = admin.add_admin_token(runtime(app).store, "ops", dt.datetime.now(dt.UTC))
    return {"Authorization": f"Bearer {token}"}


def validation(resp):
    assert resp.status_code == 400, resp.get_data(as_text=True)
    body = resp.json
    assert body["ok"] is False
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == "ERR_VALIDATION"
    assert "Traceback" not in resp.get_data(as_text=True)
    return body["error"]["details"]


def test_get_put_patch_history(client, headers):
    shown = client.get(URL, headers=headers).json["config"]
    assert shown["is_default"] is True and shown["org"] == "MA01"
    resp = client.put(URL, headers=headers, json=GOOD)
    assert resp.status_code == 200, resp.json
    assert resp.json["config"]["erp_token_set"] is True
    assert "s3cret" not in resp.get_data(as_text=True)
    resp = client.patch(URL, headers=headers, json={"discrepancy_tolerance": 1})
    assert resp.json["changed"] == ["discrepancy_tolerance"]
    shown = client.get(URL, headers=headers)
    assert shown.json["config"]["discrepancy_tolerance"] == 1.0
    assert "s3cret" not in shown.get_data(as_text=True)
    # what GET shows, PUT takes back unchanged (read-only fields are ignored)
    again = client.put(URL, headers=headers, json=shown.json["config"])
    assert again.status_code == 200 and again.json["changed"] == []
    history = client.get("/api/admin/v1/config/history?org=MA01", headers=headers).json
    assert [h["actor"] for h in history["history"]] == ["token:ops"] * 3
    assert history["history"][1]["changed"] == ["discrepancy_tolerance"]
    assert "s3cret" not in json.dumps(history)


def test_dry_run_writes_nothing(client, headers):
    resp = client.put(URL + "&dry_run=1", headers=headers, json=GOOD)
    assert resp.status_code == 200 and resp.json["dry_run"] is True
    assert client.get(URL, headers=headers).json["config"]["is_default"] is True
    history = client.get("/api/admin/v1/config/history?org=MA01", headers=headers).json
    assert history["history"] == []


def test_the_reference_validation_answer(client, headers):
    details = validation(client.put(URL, headers=headers, json=good(manufacturing_percentage=150)))
    assert details == {"manufacturing_percentage": ["Value must be between 0 and 100"]}


@pytest.mark.parametrize(
    "body",
    [
        good(manufacturing_percentage="5"),
        good(discrepancy_tolerance=None),
        good(aggregation_rules={"l1": {"enabled": True, "multiplier": 10**30}}),
        good(serial_sources=[{"name": "x" * 65, "kind": "standard"}]),
        good(unknown_field=1),
        good(sscc_sources=[{"name": "s", "company_prefix": "0614141", "extension_digit": -1}]),
        good(erp_url="http://u:p@erp.example"),
        {},
        [],
        "config",
        None,
    ],
)
def test_hostile_documents_are_refused_with_details(client, headers, body):
    data = json.dumps(body)
    assert validation(client.put(URL, headers=headers, data=data, content_type="application/json"))
    assert client.get(URL, headers=headers).json["config"]["is_default"] is True


@pytest.mark.parametrize(
    ("data", "content_type", "status", "code"),
    [
        (b"{", "application/json", 400, "ERR_JSON"),
        (b'{"manufacturing_percentage": NaN}', "application/json", 400, "ERR_JSON_NONFINITE"),
        (b'{"manufacturing_percentage": Infinity}', "application/json", 400, "ERR_JSON_NONFINITE"),
        (b'{"manufacturing_percentage": 1e999}', "application/json", 400, "ERR_JSON_NONFINITE"),
        (b'{"erp_token": "a\\u0000b"}', "application/json", 400, "ERR_NUL_CHARACTER"),
        (b"\xff\xfe", "application/json", 400, "ERR_JSON"),
        (b"manufacturing_percentage=5", "application/x-www-form-urlencoded", 415, None),
        (b"{}", "text/plain", 415, "ERR_UNSUPPORTED_MEDIA_TYPE"),
        (b'{"a": "' + b"x" * 70_000 + b'"}', "application/json", 413, "ERR_TOO_LARGE"),
        (b"[" * 100_000, "application/json", 413, "ERR_TOO_LARGE"),
        (b"[" * 5_000 + b"]" * 5_000, "application/json", 400, "ERR_JSON"),
    ],
)
@pytest.mark.parametrize("method", ["put", "patch"])
def test_hostile_bodies(client, headers, method, data, content_type, status, code):
    resp = getattr(client, method)(URL, headers=headers, data=data, content_type=content_type)
    assert resp.status_code == status, resp.get_data(as_text=True)[:300]
    assert resp.json["ok"] is False
    if code:
        assert resp.json["error"]["code"] == code
    assert client.get(URL, headers=headers).json["config"]["is_default"] is True


def test_hostile_addresses(client, headers):
    def code(resp):
        return resp.status_code, resp.json["error"]["code"]

    assert code(client.get("/api/admin/v1/config", headers=headers)) == (400, "ERR_INVALID")
    assert code(client.get("/api/admin/v1/config?org=NOPE", headers=headers)) == (
        404,
        "ERR_TENANT_UNKNOWN",
    )
    assert code(client.get("/api/admin/v1/config?org=" + "X" * 5000, headers=headers))[0] == 404
    assert code(client.get("/api/admin/v1/config?org=MA%00", headers=headers)) == (
        400,
        "ERR_NUL_CHARACTER",
    )
    assert code(client.get(URL)) == (401, "ERR_UNAUTHORIZED")
    assert code(client.put(URL, json=GOOD)) == (401, "ERR_UNAUTHORIZED")
    assert code(client.delete(URL, headers=headers)) == (405, "ERR_METHOD_NOT_ALLOWED")
    for limit in ("0", "501", "-1", "x", "1" * 40):
        resp = client.get(f"/api/admin/v1/config/history?org=MA01&limit={limit}", headers=headers)
        assert code(resp) == (400, "ERR_INVALID")


def test_what_get_answers_puts_and_patches_back(client, headers):
    assert client.put(URL, headers=headers, json=GOOD).status_code == 200
    shown = client.get(URL, headers=headers).json
    assert set(shown) == {"ok", "config"}
    for method in (client.put, client.patch):
        again = method(URL, headers=headers, json=shown)
        assert again.status_code == 200, again.json
        assert again.json["changed"] == []
    changed = {**shown, "config": {**shown["config"], "discrepancy_tolerance": 4}}
    resp = client.put(URL, headers=headers, json=changed)
    assert resp.json["changed"] == ["discrepancy_tolerance"]
    assert client.get(URL, headers=headers).json["config"]["discrepancy_tolerance"] == 4.0
    # only exactly {"ok", "config"} is a GET answer: a stray key beside them stays an error
    details = validation(client.put(URL, headers=headers, json={**shown, "x": 1}))
    assert "config" in details and "x" in details
