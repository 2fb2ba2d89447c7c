"""The ERP sync as people use it: `erp import|pull|status` and the admin API."""

import datetime as dt
import json

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from central import admin, erp
from central import tables as T
from central.cli import main
from tests.central.test_errors import shape
from tests.conftest import runtime
from tests.fake_erp import FakeErp

NOW = dt.datetime.now(dt.UTC)
TOKEN = "erp-token-never-shown"


def rec(number, **kw):
    base = {"number": number, "sku": "TOTE-01", "production_type": "OEM", "quantity": 10}
    base.update(kw)
    return base


@pytest.fixture
def run(central_config, tenant):
    env = {
        "LINELEDGER_CENTRAL_DB": central_config["db_url"],
        "LINELEDGER_CENTRAL_HOME": central_config["home"],
    }

    def invoke(*args):
        return CliRunner().invoke(main, list(args), env=env)

    return invoke


@pytest.fixture
def headers(app):
    token = admin.add_admin_token(runtime(app).store, "ops", dt.datetime.now(dt.UTC))
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def fake():
    server = FakeErp().start()
    yield server
    server.close()


def test_cli_import_prints_counts_and_reasons(run, tmp_path):
    good = tmp_path / "orders.json"
    good.write_text(json.dumps([rec("C-1"), rec("C-2")]))
    result = run("erp", "import", str(good), "--org", "ma01")
    assert result.exit_code == 0, result.output
    assert "created 2" in result.output and "failed 0" in result.output
    again = run("erp", "import", str(good), "--org", "MA01", "--format", "json")
    body = json.loads(again.output)
    assert (body["created"], body["unchanged"], body["status"]) == (0, 2, "success")

    bad = tmp_path / "bad.csv"
    bad.write_text("number,sku,production_type,quantity\nC-3,TOTE-01,OEM,-4\nC-4,NOPE,OEM,1\n")
    result = run("erp", "import", str(bad), "--org", "MA01")
    assert result.exit_code == 1
    assert "record 0 (C-3): ERR_ERP_QUANTITY" in result.output
    assert "record 1 (C-4): ERR_ERP_PRODUCT_UNKNOWN" in result.output

    dry = tmp_path / "dry.json"
    dry.write_text(json.dumps([rec("C-9")]))
    result = run("erp", "import", str(dry), "--org", "MA01", "--dry-run")
    assert result.exit_code == 0 and result.output.startswith("dry run (nothing written)")


@pytest.mark.parametrize(
    ("name", "content", "code"),
    [
        ("orders.txt", "number\n", "ERR_ERP_FORMAT"),
        ("orders.json", "{", "ERR_ERP_FORMAT"),
        ("orders.csv", "sku\nX\n", "ERR_ERP_FORMAT"),
    ],
)
def test_cli_import_refuses_unreadable_files(run, tmp_path, name, content, code):
    path = tmp_path / name
    path.write_text(content)
    result = run("erp", "import", str(path), "--org", "MA01")
    assert result.exit_code == 1 and f"Error: {code}:" in result.output
    assert "Traceback" not in result.output


def test_cli_import_unknown_tenant(run, tmp_path):
    path = tmp_path / "o.json"
    path.write_text("[]")
    result = run("erp", "import", str(path), "--org", "ZZ99")
    assert result.exit_code == 1 and "ERR_TENANT_UNKNOWN" in result.output


def test_cli_pull_and_status(run, app, fake):
    store = runtime(app).store
    not_configured = run("erp", "pull", "--org", "MA01")
    assert not_configured.exit_code == 1 and "ERR_ERP_NOT_CONFIGURED" in not_configured.output
    erp.set_erp_settings(store, "MA01", fake.pages([rec("P-1")], 5), TOKEN, 3600, "t", NOW)
    result = run("erp", "pull", "--org", "MA01")
    assert result.exit_code == 0, result.output
    assert "1 pull(s): 1 records synced" in result.output
    status = run("erp", "status", "--org", "MA01", "--format", "json")
    body = json.loads(status.output)
    assert body["status"] == "success" and body["synced_records"] == 1
    assert body["failed_records"] == 0 and body["next_scheduled_sync"] is not None
    assert TOKEN not in status.output
    table = run("erp", "status")
    assert "MA01: ERP http://127.0.0.1:" in table.output and "synced records: 1" in table.output
    with store.read() as conn:
        runs = conn.execute(sa.select(T.job_runs.c.job, T.job_runs.c.trigger)).all()
    assert [tuple(r) for r in runs] == [("erp_pull", "cli")]


def test_cli_pull_failing_erp_exits_1(run, app, fake):
    from tests.fake_erp import Route

    fake.routes["/down"] = Route(status=404)
    erp.set_erp_settings(runtime(app).store, "MA01", f"{fake.url}/down", TOKEN, None, "t", NOW)
    result = run("erp", "pull")
    assert result.exit_code == 1 and "ERR_ERP_REFUSED" in result.output
    assert TOKEN not in result.output


def test_api_status_sync_and_import(client, headers, tenant, fake):
    store = runtime(tenant.app).store
    resp = client.get("/api/admin/v1/erp/status?org=MA01", headers=headers)
    assert resp.status_code == 200
    assert resp.json["status"] == "never" and resp.json["next_scheduled_sync"] is None
    shape(
        client.post("/api/admin/v1/erp/sync?org=MA01", headers=headers),
        409,
        "ERR_ERP_NOT_CONFIGURED",
    )

    erp.set_erp_settings(store, "MA01", fake.pages([rec("A-1")], 5), TOKEN, 600, "t", NOW)
    queued = client.post("/api/admin/v1/erp/sync?org=MA01", headers=headers)
    assert queued.status_code == 202 and queued.json["queued"] is True
    again = client.post("/api/admin/v1/erp/sync?org=MA01", headers=headers)
    assert again.json["sync_id"] == queued.json["sync_id"] and again.json["queued"] is False
    status = client.get("/api/admin/v1/erp/status?org=MA01", headers=headers).json
    assert status["status"] == "queued" and TOKEN not in json.dumps(status)

    body = json.dumps([rec("U-1"), rec("U-2", quantity=0)])
    resp = client.post(
        "/api/admin/v1/erp/import?org=MA01&name=nightly",
        data=body,
        headers={**headers, "Content-Type": "application/json"},
    )
    assert resp.status_code == 200
    assert (resp.json["created"], resp.json["failed"], resp.json["status"]) == (1, 1, "partial")
    csv_body = "number,sku,production_type,quantity\nU-3,TOTE-01,HAT,5\n"
    resp = client.post(
        "/api/admin/v1/erp/import?org=MA01&dry_run=true",
        data=csv_body,
        headers={**headers, "Content-Type": "text/csv; charset=utf-8"},
    )
    assert resp.json["created"] == 1 and resp.json["dry_run"] is True
    status = client.get("/api/admin/v1/erp/status?org=MA01&history=5", headers=headers).json
    assert status["sync"]["source"] == "nightly.json" and len(status["history"]) == 1


def test_api_refuses_hostile_requests(client, headers, tenant, app):
    url = "/api/admin/v1/erp/import?org=MA01"
    shape(
        client.post(url, data="[]", headers={"Content-Type": "application/json"}),
        401,
        "ERR_UNAUTHORIZED",
    )
    shape(
        client.post(url, data="x", headers={**headers, "Content-Type": "text/plain"}),
        415,
        "ERR_UNSUPPORTED_MEDIA_TYPE",
    )
    shape(
        client.post(url, data="{", headers={**headers, "Content-Type": "application/json"}),
        400,
        "ERR_ERP_FORMAT",
    )
    shape(
        client.post(url, data="[]", headers={**headers, "Content-Type": "text/csv"}),
        400,
        "ERR_ERP_FORMAT",
    )
    big = b"[" + b" " * (runtime(app).config.max_body_bytes + 10) + b"]"
    resp = client.post(url, data=big, headers={**headers, "Content-Type": "application/json"})
    shape(resp, 413, "ERR_TOO_LARGE")
    shape(client.get("/api/admin/v1/erp/status", headers=headers), 400, "ERR_INVALID")
    shape(
        client.get("/api/admin/v1/erp/status?org=ZZ9", headers=headers), 404, "ERR_TENANT_UNKNOWN"
    )
    shape(
        client.get("/api/admin/v1/erp/status?org=MA01&history=x", headers=headers),
        400,
        "ERR_INVALID",
    )
    with runtime(app).store.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(T.erp_syncs)).scalar() == 0
