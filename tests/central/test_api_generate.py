"""The admin API of generation tasks, and the CLI commands, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from central import admin
from central import tables as T
from central.cli import main
from tests.central.gen_support import make_random, run_all, set_sscc_source
from tests.conftest import runtime


@pytest.fixture
def headers(app: Any, tenant: Any) -> dict[str, str]:
    store = runtime(app).store
    set_sscc_source(store)
    make_random(store)
    token = admin.add_admin_token(store, "gen", dt.datetime.now(dt.UTC))
    return {"Authorization": f"Bearer {token}"}


def _counts(app: Any) -> tuple[int, int]:
    with runtime(app).store.read() as conn:
        tasks = conn.execute(sa.select(sa.func.count()).select_from(T.generation_tasks))
        audits = conn.execute(sa.select(sa.func.count()).select_from(T.audit_log))
        return tasks.scalar_one(), audits.scalar_one()


def test_generate_follow_and_list(app: Any, client: Any, headers: dict[str, str]) -> None:
    url = "/api/admin/v1/work-orders/WO-HAT-1/generate-sscc"
    resp = client.post(url, json={"quantity": 6, "force_regenerate": False}, headers=headers)
    assert resp.status_code == 202, resp.json
    body = resp.json
    assert body["status"] == "initiated" and body["estimated_completion"]
    task_id = body["task_id"]
    again = client.post(url, json={"quantity": 6}, headers=headers)
    assert again.status_code == 200 and again.json["task_id"] == task_id
    assert again.json["created"] is False
    shown = client.get(f"/api/admin/v1/tasks/{task_id}", headers=headers).json
    assert (shown["status"], shown["done"], shown["requested"]) == ("queued", 0, 6)
    run_all(runtime(app).store)
    shown = client.get(f"/api/admin/v1/tasks/{task_id}", headers=headers).json
    assert (shown["status"], shown["done"], shown["progress"]) == ("completed", 6, 1.0)
    assert shown["estimated_completion"] is None
    listed = client.get("/api/admin/v1/work-orders/WO-HAT-1/ssccs?limit=4", headers=headers).json
    assert listed["count"] == 4 and listed["levels"] == [None] * 4  # no L2-L4 rules: spares
    rest = client.get(
        f"/api/admin/v1/work-orders/WO-HAT-1/ssccs?after={listed['ssccs'][-1]}", headers=headers
    ).json
    assert rest["count"] == 2
    done = client.post(url, json={"quantity": 6, "org": "MA01"}, headers=headers)
    assert done.status_code == 200 and done.json["task_id"] is None
    gone = client.post(f"/api/admin/v1/tasks/{task_id}/cancel", headers=headers)
    assert gone.status_code == 409 and gone.json["error"]["code"] == "ERR_TASK_FINISHED"


def test_serials_and_cancel(app: Any, client: Any, headers: dict[str, str]) -> None:
    url = "/api/admin/v1/work-orders/WO-OEM-1/generate-serials"
    resp = client.post(url, json={"quantity": 50}, headers=headers)
    assert resp.status_code == 202
    task_id = resp.json["task_id"]
    cancelled = client.post(f"/api/admin/v1/tasks/{task_id}/cancel", headers=headers)
    assert cancelled.status_code == 200 and cancelled.json["status"] == "cancelled"


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("WO-HAT-1/generate-sscc", {"quantity": 0}, 400, "ERR_INVALID"),
        ("WO-HAT-1/generate-sscc", {"quantity": 1_000_001}, 400, "ERR_INVALID"),
        ("WO-HAT-1/generate-sscc", {"quantity": "5"}, 400, "ERR_INVALID"),
        ("WO-HAT-1/generate-sscc", {"quantity": 5.0}, 400, "ERR_INVALID"),
        ("WO-HAT-1/generate-sscc", {"quantity": True}, 400, "ERR_INVALID"),
        ("WO-HAT-1/generate-sscc", {"quantity": 10**40}, 400, "ERR_INVALID"),
        ("WO-HAT-1/generate-sscc", {}, 400, "ERR_INVALID"),
        ("WO-HAT-1/generate-sscc", [], 400, "ERR_INVALID"),
        ("WO-HAT-1/generate-sscc", {"quantity": 5, "force_regenerate": "yes"}, 400, "ERR_INVALID"),
        ("WO-HAT-1/generate-sscc", {"quantity": 5, "evil": 1}, 400, "ERR_INVALID"),
        ("WO-HAT-1/generate-sscc", {"quantity": 5, "org": "x" * 99}, 400, "ERR_INVALID"),
        ("WO-HAT-1/generate-sscc", {"quantity": 5, "org": "ZZ99"}, 404, "ERR_TENANT_UNKNOWN"),
        ("WO-NOPE/generate-sscc", {"quantity": 5}, 404, "ERR_WORK_ORDER_UNKNOWN"),
        ("x" * 5000 + "/generate-sscc", {"quantity": 5}, 404, "ERR_WORK_ORDER_UNKNOWN"),
        ("WO-HAT-1/generate-serials", {"quantity": 10_000_001}, 400, "ERR_INVALID"),
    ],
)
def test_hostile_generate_requests(
    app: Any, client: Any, headers: dict[str, str], path: str, body: Any, status: int, code: str
) -> None:
    before = _counts(app)
    resp = client.post(f"/api/admin/v1/work-orders/{path}", json=body, headers=headers)
    assert resp.status_code == status, resp.json
    assert resp.json == {
        "ok": False,
        "error": {"code": code, "message": resp.json["error"]["message"]},
    }
    assert _counts(app) == before  # nothing half-written


def test_hostile_task_ids_and_auth(app: Any, client: Any, headers: dict[str, str]) -> None:
    for task_id in ["nope", "0" * 36, "a" * 37, "%27%20OR%201=1", "../../etc"]:
        resp = client.get(f"/api/admin/v1/tasks/{task_id}", headers=headers)
        assert resp.status_code == 404, task_id
        assert resp.json["error"]["code"] in ("ERR_TASK_UNKNOWN", "ERR_NOT_FOUND")
    resp = client.post("/api/admin/v1/work-orders/WO-HAT-1/generate-sscc", json={"quantity": 1})
    assert resp.status_code == 401
    resp = client.post(
        "/api/admin/v1/work-orders/WO-HAT-1/generate-sscc",
        data="quantity=1",
        headers={**headers, "Content-Type": "text/plain"},
    )
    assert resp.status_code == 415
    bad = client.get("/api/admin/v1/work-orders/WO-HAT-1/ssccs?limit=0", headers=headers)
    assert bad.status_code == 400
    bad = client.get("/api/admin/v1/work-orders/WO-HAT-1/ssccs?after=12", headers=headers)
    assert bad.status_code == 400


# --- CLI ---------------------------------------------------------------------------------


def _cli(central_config: dict[str, Any], *args: str) -> Any:
    return CliRunner().invoke(
        main, ["--home", central_config["home"], "--db", central_config["db_url"], *args]
    )


def test_cli_generate_task_and_ssccs(app: Any, tenant: Any, central_config: dict[str, Any]) -> None:
    store = runtime(app).store
    set_sscc_source(store)
    out = _cli(central_config, "work-order", "generate", "WO-HAT-1", "--sscc", "3")
    assert out.exit_code == 0, out.output
    task_id = out.output.split("task ")[1].split()[0]
    again = _cli(
        central_config, "work-order", "generate", "WO-HAT-1", "--org", "ma01", "--sscc", "3"
    )
    assert again.exit_code == 0 and task_id in again.output and "already" in again.output
    run_all(store)
    shown = _cli(central_config, "work-order", "task", task_id)
    assert shown.exit_code == 0 and json.loads(shown.output)["status"] == "completed"
    waited = _cli(central_config, "work-order", "task", task_id, "--wait")
    assert waited.exit_code == 0
    listed = _cli(central_config, "work-order", "ssccs", "WO-HAT-1")
    lines = listed.output.splitlines()
    assert len(lines) == 3 and all(line.endswith("\tspare") for line in lines), lines
    both = _cli(
        central_config, "work-order", "generate", "WO-HAT-1", "--sscc", "3", "--serials", "3"
    )
    assert both.exit_code == 1 and "ERR_INVALID" in both.output
    std = _cli(central_config, "work-order", "generate", "WO-HAT-1", "--serials", "3")
    assert std.exit_code == 1 and "ERR_NOT_PREGENERATED" in std.output
    cancel = _cli(central_config, "work-order", "task-cancel", task_id)
    assert cancel.exit_code == 1 and "ERR_TASK_FINISHED" in cancel.output


def test_cli_generate_wait_shows_progress_until_done(
    app: Any, tenant: Any, central_config: dict[str, Any], monkeypatch: Any
) -> None:
    """--wait follows the task; here the 'jobs process' runs it when the CLI first polls."""
    from central import cli_generate

    store = runtime(app).store
    set_sscc_source(store)
    monkeypatch.setattr(cli_generate.time, "sleep", lambda _s: run_all(store))
    out = _cli(central_config, "work-order", "generate", "WO-HAT-1", "--sscc", "7", "--wait")
    assert out.exit_code == 0, out.output
    assert "completed: 7 of 7 made" in out.output


def test_cli_serial_format(app: Any, tenant: Any, central_config: dict[str, Any]) -> None:
    ok = _cli(
        central_config,
        "product",
        "serial-format",
        "--org",
        "MA01",
        "--sku",
        "TOTE-01",
        "--format",
        "sgtin-random",
        "--alphabet",
        "0123456789",
        "--length",
        "12",
    )
    assert ok.exit_code == 0, ok.output
    assert "99,999,999 serials per GTIN" in ok.output
    for bad, code in [
        (["--alphabet", "AB#"], "ERR_SERIAL_ALPHABET"),
        (["--alphabet", "0123456789", "--length", "6"], "ERR_SERIAL_SPACE"),
    ]:
        out = _cli(
            central_config,
            "product",
            "serial-format",
            "--org",
            "MA01",
            "--sku",
            "TOTE-01",
            "--format",
            "sgtin-random",
            *bad,
        )
        assert out.exit_code == 1 and code in out.output, out.output
    with runtime(app).store.read() as conn:
        row = conn.execute(sa.select(T.products).where(T.products.c.sku == "TOTE-01")).one()
        audits = conn.execute(
            sa.select(sa.func.count())
            .select_from(T.audit_log)
            .where(T.audit_log.c.action == "product.serial_format")
        ).scalar_one()
    assert (row.serial_format, row.serial_alphabet, row.serial_length) == (
        "sgtin-random",
        "0123456789",
        12,
    )
    assert audits == 1
    admin.add_product(
        runtime(app).store, "MA01", "NOGTIN", "BAG", "No GTIN", None, dt.datetime.now(dt.UTC)
    )
    out = _cli(
        central_config,
        "product",
        "serial-format",
        "--org",
        "MA01",
        "--sku",
        "NOGTIN",
        "--format",
        "sgtin-seq",
    )
    assert out.exit_code == 1 and "ERR_SERIAL_FORMAT" in out.output


def test_cli_ctrl_c_leaves_the_task_running(
    app: Any, tenant: Any, central_config: dict[str, Any], monkeypatch: Any
) -> None:
    from central import cli_generate

    store = runtime(app).store
    set_sscc_source(store)

    def interrupt(_seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_generate.time, "sleep", interrupt)
    out = _cli(central_config, "work-order", "generate", "WO-HAT-1", "--sscc", "2", "--wait")
    assert out.exit_code == 130
    assert "carries on in the jobs process" in out.output
    with store.read() as conn:
        status = conn.execute(sa.select(T.generation_tasks.c.status)).scalar_one()
    assert status == "queued"
    unknown = _cli(central_config, "work-order", "task", "no-such-task")
    assert unknown.exit_code == 1 and "ERR_TASK_UNKNOWN" in unknown.output
    assert "Traceback" not in unknown.output


def test_another_target_while_active_is_409(app: Any, client: Any, headers: dict[str, str]) -> None:
    url = "/api/admin/v1/work-orders/WO-HAT-1/generate-sscc"
    first = client.post(url, json={"quantity": 3}, headers=headers)
    assert first.status_code == 202
    task_id = first.json["task_id"]
    same = client.post(url, json={"quantity": 3}, headers=headers)
    assert same.status_code == 200 and same.json["task_id"] == task_id
    before = _counts(app)
    other = client.post(url, json={"quantity": 8}, headers=headers)
    assert other.status_code == 409, other.json
    assert other.json["error"]["code"] == "ERR_TASK_ACTIVE"
    message = other.json["error"]["message"]
    assert task_id in message and "up to 3" in message and "cancel it" in message
    assert _counts(app) == before


def test_serials_above_the_allowance_are_400(
    app: Any, client: Any, headers: dict[str, str]
) -> None:
    with runtime(app).store.write() as conn:
        conn.execute(
            T.work_orders.update()
            .where(T.work_orders.c.number == "WO-OEM-1")
            .values(quantity=100, overage_pct=5)
        )
    url = "/api/admin/v1/work-orders/WO-OEM-1/generate-serials"
    before = _counts(app)
    resp = client.post(url, json={"quantity": 100_000}, headers=headers)
    assert resp.status_code == 400, resp.json
    assert resp.json["error"]["code"] == "ERR_OVER_ALLOWANCE"
    assert "at most 105" in resp.json["error"]["message"]
    assert _counts(app) == before
    assert client.post(url, json={"quantity": 105}, headers=headers).status_code == 202


def test_cli_refuses_another_target_and_over_allowance(
    app: Any, tenant: Any, central_config: dict[str, Any]
) -> None:
    store = runtime(app).store
    set_sscc_source(store)
    make_random(store)
    out = _cli(central_config, "work-order", "generate", "WO-HAT-1", "--sscc", "3")
    assert out.exit_code == 0, out.output
    task_id = out.output.split("task ")[1].split()[0]
    other = _cli(central_config, "work-order", "generate", "WO-HAT-1", "--sscc", "8")
    assert other.exit_code == 1 and "ERR_TASK_ACTIVE" in other.output
    assert task_id in other.output and "up to 3" in other.output
    with store.write() as conn:
        conn.execute(
            T.work_orders.update()
            .where(T.work_orders.c.number == "WO-HAT-1")
            .values(quantity=100, overage_pct=5)
        )
    over = _cli(central_config, "work-order", "generate", "WO-HAT-1", "--serials", "100000")
    assert over.exit_code == 1 and "ERR_OVER_ALLOWANCE" in over.output
    assert "at most 105 serials" in over.output


@pytest.mark.parametrize("after", ["garbage'--", "12", "1" * 19, "١٢٣٤٥٦٧٨٩٠١٢٣٤٥٦٧٨"])
def test_cli_ssccs_after_must_be_an_sscc(
    app: Any, tenant: Any, central_config: dict[str, Any], after: str
) -> None:
    out = _cli(central_config, "work-order", "ssccs", "WO-HAT-1", "--after", after)
    assert out.exit_code == 1 and "ERR_INVALID" in out.output and "18-digit" in out.output
    good = _cli(central_config, "work-order", "ssccs", "WO-HAT-1", "--after", "0" * 18)
    assert good.exit_code == 0 and good.output == ""
