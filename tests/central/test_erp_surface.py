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
    assert "record 1 (line 2, C-3): ERR_ERP_QUANTITY" in result.output
    assert "record 2 (line 3, C-4): ERR_ERP_PRODUCT_UNKNOWN" in result.output

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


def test_cli_import_help_lists_the_record_columns(run):
    result = run("erp", "import", "--help")
    assert result.exit_code == 0
    for column in (
        "number",
        "sku, gtin",
        "production_type",
        "quantity",
        "name",
        "requested_sscc",
        "overage_pct",
        "tolerance_pct",
        "line",
        "status",
    ):
        assert f"  {column} " in result.output, column
    assert "WO-1001,TOTE-01,OEM,500" in result.output


HOSTILE = "E\u001b[2J\u001b]0;pwned\u0007\u0085X\u202e"


def test_cli_escapes_terminal_controls_in_erp_data(run, app, tmp_path, fake):
    path = tmp_path / "evil.json"
    path.write_text(json.dumps([rec(HOSTILE), rec("OK-1", sku="NO\u001bPE")]))
    for args in (["--dry-run"], []):
        result = run("erp", "import", str(path), "--org", "MA01", *args)
        assert result.exit_code == 1
        assert "E\\x1b[2J\\x1b]0;pwned\\x07\\x85X\\u202e" in result.output
        assert not any(c in result.output for c in "\u001b\u0007\u202e\u0085")
    status = run("erp", "status", "--org", "MA01")
    assert "pwned" in status.output
    assert not any(c in status.output for c in "\u001b\u0007\u202e\u0085")

    erp.set_erp_settings(
        runtime(app).store, "MA01", fake.pages([rec(HOSTILE)], 5), TOKEN, None, "t", NOW
    )
    pulled = run("erp", "pull", "--org", "MA01")
    assert "pwned" in pulled.output
    assert not any(c in pulled.output for c in "\u001b\u0007\u202e\u0085")


def test_cli_pull_partial_exits_1_and_json_lists_the_record_errors(run, app, fake):
    feed = fake.pages([rec("P-1"), rec("P-2", quantity=0)], 5)
    erp.set_erp_settings(runtime(app).store, "MA01", feed, TOKEN, None, "t", NOW)
    result = run("erp", "pull", "--org", "MA01", "--format", "json")
    assert result.exit_code == 1, result.output
    body = json.loads(result.output)
    assert body["ok"] is False and body["counts"]["failed_records"] == 1
    assert len(body["errors"]) == 1 and "record 2 (P-2): ERR_ERP_QUANTITY" in body["errors"][0]
    assert body["syncs"][0]["status"] == "partial"
    assert body["syncs"][0]["errors"][0]["record"] == 2
    table = run("erp", "pull", "--org", "MA01")
    assert table.exit_code == 1 and "ERR_ERP_QUANTITY" in table.output


@pytest.mark.parametrize(
    "query",
    [
        "dry-run=true",
        "dry_run=maybe",
        "dry_run=",
        "dryrun=1",
        "dry_run=true&dry_run=false",
        "name=x&force=1",
    ],
)
def test_api_import_refuses_unknown_parameters_and_unclear_dry_run(client, headers, app, query):
    body = json.dumps([rec("Q-1")])
    resp = client.post(
        f"/api/admin/v1/erp/import?org=MA01&{query}",
        data=body,
        headers={**headers, "Content-Type": "application/json"},
    )
    shape(resp, 400, "ERR_INVALID")
    with runtime(app).store.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(T.erp_syncs)).scalar() == 0
        found = conn.execute(
            sa.select(T.work_orders.c.id).where(T.work_orders.c.number == "Q-1")
        ).first()
        assert found is None


@pytest.mark.parametrize(("text", "dry"), [("YES", True), ("1", True), ("No", False), ("0", False)])
def test_api_import_reads_clear_booleans_in_any_case(client, headers, tenant, text, dry):
    resp = client.post(
        f"/api/admin/v1/erp/import?org=MA01&dry_run={text}",
        data=json.dumps([rec("Q-2")]),
        headers={**headers, "Content-Type": "application/json"},
    )
    assert resp.status_code == 200 and resp.json["dry_run"] is dry


def test_api_status_and_sync_refuse_unknown_parameters(client, headers):
    for method, url in (
        (client.get, "/api/admin/v1/erp/status?org=MA01&histroy=5"),
        (client.post, "/api/admin/v1/erp/sync?org=MA01&dry_run=1"),
        (client.get, "/api/admin/v1/erp/status?org=MA01&org=MA02"),
    ):
        shape(method(url, headers=headers), 400, "ERR_INVALID")


def test_cli_import_stopped_by_sigterm_records_the_sync_interrupted(
    run, app, tmp_path, monkeypatch
):
    import os
    import signal
    import time

    def terminated(self, records, from_csv=False, dry_run=False):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises SystemExit before this ends

    monkeypatch.setattr(erp.Sync, "feed", terminated)
    path = tmp_path / "o.json"
    path.write_text(json.dumps([rec("S-1")]))
    result = run("erp", "import", str(path), "--org", "MA01")
    assert result.exit_code == 128 + signal.SIGTERM
    with runtime(app).store.read() as conn:
        row = conn.execute(sa.select(T.erp_syncs)).one()
    assert row.status == "failed" and row.reason.startswith("interrupted")
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
