"""Work orders (#9): list, filter, sort, page, export, show with history, update, close."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import json
import uuid

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from central import admin, workorders
from central import tables as T
from central.cli import main as central_cli
from tests.central.helpers import lease
from tests.conftest import runtime

NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
API = "/api/admin/v1/work-orders"


@pytest.fixture
def auth(app):
    token = admin.add_admin_token(runtime(app).store, f"t{uuid.uuid4().hex[:8]}", NOW)
    return {"Authorization": f"Bearer {token}"}


def add(app, number, *, at=NOW, sku="TOTE-01", quantity=100, **kw):
    return admin.add_work_order(
        runtime(app).store, "MA01", number, sku, "HAT", quantity, at, actor="test", **kw
    )


@pytest.fixture
def orders(app, tenant):
    """Twelve more work orders of MA01 (Europe/Paris), with names, sources and dates."""
    store = runtime(app).store
    admin.add_product(store, "MA01", "WAL-1", "WAL", "Wallet", None, NOW)
    for i in range(12):
        add(
            app,
            f"WO-{i:03d}",
            at=NOW + dt.timedelta(hours=i),
            sku="WAL-1" if i % 3 == 0 else "TOTE-01",
            quantity=100 + i % 4,  # ties on purpose: the id breaks them
            name=f"Spring batch {i}" if i % 2 else None,
            source="erp" if i % 4 == 0 else "manual",
        )
    return app


def numbers(resp):
    assert resp.status_code == 200, resp.json
    return [r["number"] for r in resp.json["results"]]


def test_filters_select_what_they_say(client, orders, auth):
    def get(query):
        return numbers(client.get(f"{API}?org=MA01&page_size=500&{query}", headers=auth))

    mine = {f"WO-{i:03d}" for i in range(12)}
    assert set(get("source=erp")) == {"WO-000", "WO-004", "WO-008"}
    assert set(get("sku=WAL-1")) == {"WO-000", "WO-003", "WO-006", "WO-009"}
    assert set(get("search=spring")) == {f"WO-{i:03d}" for i in range(1, 12, 2)}
    assert set(get("search=wo-01")) == {"WO-010", "WO-011"}
    assert get("search=%25") == [] and get("search=_") == []  # LIKE wildcards are literal
    assert get("search=%27%20OR%201%3D1--") == []
    assert set(get("status=open")) == mine | {"WO-HAT-1", "WO-OEM-1"}
    # 23:00 UTC on 10 March is 11 March in Paris: dates are the plant's
    assert set(get("from=2026-03-11&to=2026-03-11")) == {"WO-011"}
    assert set(get("to=2026-03-10")) == mine - {"WO-011"}
    assert get("serial_status=completed") == []
    resp = client.get(f"{API}?org=MA01&source=erp&sku=WAL-1", headers=auth)
    assert resp.json["count"] == 1 and numbers(resp) == ["WO-000"]


def test_sort_orders_and_breaks_ties_on_the_id(client, orders, auth):
    def get(sort):
        return numbers(
            client.get(f"{API}?org=MA01&page_size=500&sort={sort}&sku=TOTE-01", headers=auth)
        )

    by_number = get("number")
    assert by_number == sorted(by_number) and get("-number") == by_number[::-1]
    with runtime(orders).store.read() as conn:
        rows = conn.execute(
            sa.select(T.work_orders.c.number, T.work_orders.c.quantity, T.work_orders.c.id)
        ).all()
    ids = {r.number: (r.quantity, r.id) for r in rows}
    by_quantity = get("quantity")
    assert by_quantity == sorted(by_quantity, key=lambda n: ids[n])
    assert get("-quantity") == sorted(by_quantity, key=lambda n: ids[n], reverse=True)
    newest = get("-created_at")
    assert newest[:3] == ["WO-OEM-1", "WO-HAT-1", "WO-011"]
    assert get("created_at") == newest[::-1]


@pytest.mark.parametrize("sort", ["-created_at", "number", "-quantity", "quantity"])
def test_paging_never_skips_or_repeats_while_orders_are_added(client, orders, auth, sort):
    with runtime(orders).store.read() as conn:
        before = set(conn.execute(sa.select(T.work_orders.c.number)).scalars())
    seen: list[str] = []
    url = f"{API}?org=MA01&page_size=3&sort={sort}"
    pages = 0
    while url:
        resp = client.get(url, headers=auth)
        seen += numbers(resp)
        # between pages, orders arrive that sort before, between and after the position
        for tag, at in (("A", NOW - dt.timedelta(days=1)), ("Z", NOW + dt.timedelta(days=9))):
            add(orders, f"{tag}-{sort.strip('-')}-{pages}", at=at, quantity=100 + pages % 4)
        url = resp.json["next"]
        pages += 1
        assert pages < 50
    assert len(seen) == len(set(seen))  # nothing repeated
    assert before <= set(seen)  # nothing that was there is skipped
    # and walking back from the end repeats nothing either
    back: list[str] = []
    url = f"{API}?org=MA01&page_size=4&sort={sort}&page=2"
    while url:
        resp = client.get(url, headers=auth)
        back = numbers(resp) + back
        url = resp.json["previous"]
    assert len(back) == len(set(back)) and len(back) == 8


def test_the_csv_export_has_every_row_and_no_formulas(client, orders, auth):
    add(orders, "WO-EVIL", name='=HYPERLINK("http://x")')
    resp = client.get(f"{API}.csv?org=MA01&sort=number", headers=auth)
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True))))
    assert [r["number"] for r in rows] == sorted(r["number"] for r in rows)
    assert len(rows) == 15 and tuple(rows[0]) == workorders.CSV_FIELDS
    evil = next(r for r in rows if r["number"] == "WO-EVIL")
    assert evil["name"].startswith("'=")
    erp = client.get(f"{API}.csv?org=MA01&source=erp", headers=auth).get_data(as_text=True)
    assert len(list(csv.DictReader(io.StringIO(erp)))) == 3


def test_the_export_reads_in_chunks(app, orders, monkeypatch):
    monkeypatch.setattr(workorders, "EXPORT_CHUNK", 5)
    query = workorders.parse_query({"sort": "-quantity"})
    got = [r["number"] for r in workorders.export_work_orders(runtime(app).store, "MA01", query)]
    with runtime(app).store.read() as conn:
        page = workorders.list_work_orders(
            conn, "MA01", workorders.parse_query({"sort": "-quantity", "page_size": "500"})
        )
    assert got == [r["number"] for r in page.results] and len(got) == 14


def test_closing_stops_lines_getting_it_and_leases_for_it(app, client, tenant, auth):
    h = tenant.enroll("L1")
    scope = f"MA01-HAT-BAG-{tenant.today:%Y%m%d}"
    config = client.get("/api/edge/v1/config", headers=h).json
    assert "WO-HAT-1" in {w["number"] for w in config["work_orders"]}
    resp = client.post(f"{API}/WO-HAT-1/close?org=MA01", json={"reason": "shipped"}, headers=auth)
    assert resp.status_code == 200 and resp.json["status"] == "closed"
    config = client.get("/api/edge/v1/config", headers=h).json
    assert {w["number"] for w in config["work_orders"]} == {"WO-OEM-1"}
    refused = lease(client, h, scope, 10)
    assert refused.status_code == 409
    assert refused.json["error"]["code"] == "ERR_WORK_ORDER_COMPLETE"
    again = client.post(f"{API}/WO-HAT-1/close?org=MA01", json={"reason": "x"}, headers=auth)
    assert again.status_code == 409 and again.json["error"]["code"] == "ERR_WORK_ORDER_CLOSED"
    change = client.patch(f"{API}/WO-HAT-1?org=MA01", json={"quantity": 5}, headers=auth)
    assert change.status_code == 409 and change.json["error"]["code"] == "ERR_WORK_ORDER_CLOSED"
    with runtime(app).store.read() as conn:
        audit = conn.execute(
            sa.select(T.audit_log).where(T.audit_log.c.action == "work_order.close")
        ).one()
    assert audit.reason == "shipped" and audit.actor.startswith("token:")


def test_changing_an_erp_order_by_hand_marks_the_fields(client, orders, auth):
    resp = client.patch(
        f"{API}/WO-004?org=MA01",
        json={"quantity": 250, "name": "Renamed", "overage_pct": 0, "reason": "phone call"},
        headers=auth,
    )
    assert resp.status_code == 200, resp.json
    # overage was 0 already: only what really changed is marked
    assert resp.json["manual_fields"] == ["name", "quantity"]
    again = client.patch(f"{API}/WO-004?org=MA01", json={"requested_sscc": 4}, headers=auth)
    assert again.json["manual_fields"] == ["name", "quantity", "requested_sscc"]
    manual = client.patch(f"{API}/WO-001?org=MA01", json={"quantity": 7}, headers=auth)
    assert manual.json["manual_fields"] == []  # a manual order has nothing to protect
    shown = client.get(f"{API}/WO-004?org=MA01", headers=auth).json
    assert shown["manual_fields"] == ["name", "quantity", "requested_sscc"]
    assert (shown["name"], shown["quantity"], shown["requested_sscc"]) == ("Renamed", 250, 4)


def test_show_has_the_history_newest_first(client, orders, auth):
    client.patch(f"{API}/WO-002?org=MA01", json={"line": "L2"}, headers=auth)
    client.patch(f"{API}/WO-002?org=MA01", json={"line": None}, headers=auth)
    client.post(f"{API}/WO-002/close?org=MA01", json={"reason": "done"}, headers=auth)
    shown = client.get(f"{API}/WO-002?org=MA01", headers=auth).json
    actions = [h["action"] for h in shown["history"]]
    assert actions == [
        "work_order_close",
        "work_order_update",
        "work_order_update",
        "work_order_create",
    ]
    assert shown["history"][1]["details"]["after"] == {"line": None}
    assert shown["history"][2]["details"]["after"] == {"line": "L2"}
    assert shown["history"][3]["actor"] == "test" and shown["line"] is None
    assert shown["status"] == "closed" and shown["closed_at"]


@pytest.mark.parametrize(
    "query",
    [
        "sort=password",
        "sort=-",
        "sort=created_at;drop",
        "cursor=garbage!",
        "cursor=" + base64.urlsafe_b64encode(b'["-created_at","n",1,1]').decode(),
        "cursor=" + base64.urlsafe_b64encode(b'["number","n","A",1]').decode(),  # other sort
        "cursor=" + base64.urlsafe_b64encode(b'["-created_at","n","x",1]').decode(),
        "cursor=" + base64.urlsafe_b64encode(b'["-created_at","x","2026-01-01",1]').decode(),
        "cursor=" + base64.urlsafe_b64encode(b'["-created_at","n","2026-01-01",-1]').decode(),
        "cursor=" + base64.urlsafe_b64encode(b'{"a":1}').decode(),
        "page_size=0",
        "page_size=501",
        "page_size=-1",
        "page_size=1e3",
        "page=0",
        "page=1&cursor=abc",
        "from=2026-02-30",
        "from=yesterday",
        "from=2026-03-02&to=2026-03-01",
        "to=2026-03-01T00:00:00",
        "status=pending",
        "source=excel",
        "search=" + "x" * 201,
        "search=a%00b",
        "unknown=1",
    ],
)
def test_hostile_list_parameters_are_refused_plainly(client, orders, auth, query):
    for path in (API, f"{API}.csv"):
        resp = client.get(f"{path}?org=MA01&{query}", headers=auth)
        assert resp.status_code == 400, (path, query, resp.data[:200])
        assert resp.json["error"]["code"] in ("ERR_INVALID", "ERR_NUL_CHARACTER"), resp.json


def test_unknown_things_are_404_and_tokens_are_required(client, orders, auth):
    for url in (f"{API}?org=ZZ99", f"{API}.csv?org=ZZ99", f"{API}/WO-000?org=ZZ99"):
        resp = client.get(url, headers=auth)
        assert resp.status_code == 404 and resp.json["error"]["code"] == "ERR_TENANT_UNKNOWN"
    resp = client.get(f"{API}/NOPE?org=MA01", headers=auth)
    assert resp.status_code == 404 and resp.json["error"]["code"] == "ERR_WORK_ORDER_UNKNOWN"
    assert client.get(f"{API}", headers=auth).status_code == 400  # org is required
    assert client.get(f"{API}?org=MA01").status_code == 401
    assert client.get(f"{API}.csv?org=MA01").status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"quantity": 0},
        {"quantity": "10"},
        {"quantity": True},
        {"quantity": 10.5},
        {"overage_pct": 101},
        {"overage_pct": "5"},
        {"requested_sscc": -1},
        {"name": ""},
        {"name": None},
        {"name": "x" * 201},
        {"name": "a\nb"},
        {"line": "bad line!"},
        {"line": 5},
        {"status": "closed"},
        {"reason": "x" * 501, "quantity": 5},
        {"quantity": 5, "reason": 7},
    ],
)
def test_hostile_changes_are_refused_and_change_nothing(app, client, orders, auth, body):
    before = client.get(f"{API}/WO-001?org=MA01", headers=auth).json
    resp = client.patch(f"{API}/WO-001?org=MA01", json=body, headers=auth)
    assert resp.status_code == 400 and resp.json["error"]["code"] == "ERR_INVALID", resp.json
    assert client.get(f"{API}/WO-001?org=MA01", headers=auth).json == before


@pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": 5}, {"reason": "x" * 501}])
def test_a_close_needs_a_reason(client, orders, auth, body):
    resp = client.post(f"{API}/WO-001/close?org=MA01", json=body, headers=auth)
    assert resp.status_code == 400 and resp.json["error"]["code"] == "ERR_INVALID"
    assert client.get(f"{API}/WO-001?org=MA01", headers=auth).json["status"] == "open"


def test_the_cli_lists_shows_updates_and_closes(orders, central_config):
    base = ["--home", central_config["home"], "--db", central_config["db_url"]]
    runner = CliRunner()

    def run(*args):
        out = runner.invoke(central_cli, [*base, "work-order", *args])
        return out

    added = run(
        "add", "--org", "MA01", "--number", "WO-CLI", "--sku", "TOTE-01", "--type", "OEM",
        "--quantity", "40", "--name", "From the CLI", "--source", "erp", "--sscc", "3",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    table = run("list", "--org", "MA01", "--search", "cli", "--format", "table")
    assert table.exit_code == 0 and "WO-CLI" in table.output and "1 of 1" in table.output
    page = run("list", "--page-size", "5", "--sort", "number", "--format", "json")
    body = json.loads(page.output)  # one tenant: --org may be left out
    assert body["count"] == 15 and len(body["results"]) == 5 and body["previous"] is None
    nxt = json.loads(
        run("list", "--page-size", "5", "--sort", "number", "--cursor", body["next"],
            "--format", "json").output
    )  # fmt: skip
    assert [r["number"] for r in nxt["results"]] == sorted(
        r["number"] for r in nxt["results"]
    ) and nxt["results"][0]["number"] > body["results"][-1]["number"]
    exported = run("list", "--format", "csv", "--source", "erp")
    rows = list(csv.DictReader(io.StringIO(exported.output)))
    assert {r["number"] for r in rows} == {"WO-000", "WO-004", "WO-008", "WO-CLI"}
    changed = run("update", "--org", "MA01", "--number", "WO-CLI", "--quantity", "50")
    assert changed.exit_code == 0, changed.output
    shown = json.loads(run("show", "WO-CLI", "--format", "json").output)
    assert shown["manual_fields"] == ["quantity"] and shown["requested_sscc"] == 3
    assert shown["history"][0]["action"] == "work_order_update"
    assert shown["history"][0]["actor"].startswith("cli:")
    assert run("close", "WO-CLI", "--reason", "done").exit_code == 0
    table = run("show", "WO-CLI", "--org", "ma01")
    assert "work_order_close" in table.output and "closed" in table.output
    refused = run("close", "WO-CLI", "--reason", "again")
    assert refused.exit_code == 1 and "ERR_WORK_ORDER_CLOSED" in refused.output
    for bad in (["--sort", "bogus"], ["--page-size", "0"], ["--from", "March"]):
        out = run("list", *bad)
        assert out.exit_code == 1 and "ERR_INVALID" in out.output, out.output
    both = run("update", "--org", "MA01", "--number", "WO-1", "--line", "L1", "--any-line")
    assert both.exit_code == 2


def test_new_orders_take_the_tenants_defaults_and_show_what_each_level_needs(client, orders, auth):
    from central import genconfig

    store = runtime(orders).store
    genconfig.save(
        store,
        "MA01",
        {
            "manufacturing_percentage": 5,
            "discrepancy_tolerance": 2,
            "aggregation_rules": {
                "l1": {"enabled": True, "multiplier": 1},
                "l2": {"enabled": True, "multiplier": 12},
                "l3": {"enabled": True, "multiplier": 480},
            },
        },
        "test",
        NOW,
        partial=True,
    )
    add(orders, "WO-DEF", quantity=1000)  # no overage or tolerance given
    add(orders, "WO-OWN", quantity=1000, overage_pct=0.0, tolerance_pct=0.0)
    shown = client.get(f"{API}/WO-DEF?org=MA01", headers=auth).json
    assert (shown["overage_pct"], shown["tolerance_pct"]) == (5.0, 2.0)
    # 1000 + 5 % = 1050 units; 1050 / 12 -> 88 cases; 1050 / 480 -> 3 pallets; 91 SSCCs
    assert shown["needs"]["units"] == 1050
    assert shown["needs"]["levels"]["l2"] == {"multiplier": 12, "count": 88}
    assert shown["needs"]["levels"]["l3"] == {"multiplier": 480, "count": 3}
    assert shown["needs"]["sscc"] == 91
    own = client.get(f"{API}/WO-OWN?org=MA01", headers=auth).json
    assert (own["overage_pct"], own["tolerance_pct"]) == (0.0, 0.0)
    assert own["needs"]["units"] == 1000 and own["needs"]["sscc"] == 84 + 3


def test_an_update_to_the_same_values_changes_nothing_and_a_long_reason_is_refused(
    client, orders, auth
):
    same = client.patch(f"{API}/WO-001?org=MA01", json={"quantity": 101}, headers=auth)
    assert same.status_code == 200 and same.json["unchanged"] is True
    shown = client.get(f"{API}/WO-001?org=MA01", headers=auth).json
    assert [h["action"] for h in shown["history"]] == ["work_order_create"]
    store = runtime(orders).store
    with pytest.raises(workorders.CentralError) as refused:
        workorders.update_work_order(
            store, "MA01", "WO-001", "cli:test", NOW, "R" * 100_000, quantity=150
        )
    assert refused.value.code == "ERR_INVALID"
    assert client.get(f"{API}/WO-001?org=MA01", headers=auth).json["quantity"] == 101


def test_the_cli_says_what_an_update_changed_in_words(orders, central_config):
    runner = CliRunner()
    base = ["--home", central_config["home"], "--db", central_config["db_url"]]
    args = [*base, "work-order", "update", "--org", "MA01", "--number", "WO-001"]
    out = runner.invoke(central_cli, [*args, "--quantity", "150", "--line", "L2"])
    assert out.exit_code == 0, out.output
    assert "quantity 101 -> 150" in out.output and "(line L2)" in out.output
    again = runner.invoke(central_cli, [*args, "--quantity", "150"])
    assert again.exit_code == 0 and "nothing changed" in again.output
