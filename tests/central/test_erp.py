"""ERP records: parsing, validation, and the idempotent upsert (file imports, both stores)."""

import datetime as dt
import json

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from stdnum import ean

from central import erp, erp_records, errors
from central import tables as T
from central.errors import CentralError
from tests.conftest import runtime

NOW = dt.datetime(2026, 12, 2, 9, 0, tzinfo=dt.UTC)
GTIN_TOTE = "04006381333931"
GTIN_BELT = "04006381333924"


def rec(number, **kw):
    base = {"number": number, "sku": "TOTE-01", "production_type": "OEM", "quantity": 100}
    base.update(kw)
    return base


@pytest.fixture
def products():
    return erp_records.Products({"TOTE-01": 1, "BELT-02": 2}, {GTIN_TOTE: 1, GTIN_BELT: 2})


# --- validation ---------------------------------------------------------------------------


def test_a_clean_record_is_trimmed_and_normalised(products):
    raw = {
        "number": "  WO-1 ",
        "gtin": " 4006381333931 ",  # GTIN-13: padded to 14
        "production_type": "oem",
        "quantity": 5,
        "name": "  Totes  ",
        "lines": ["L1"],
        "status": "CLOSED",
        "overage_pct": 2.5,
        "extra": "ignored",
    }
    got = erp_records.clean_record(raw, 0, products)
    assert got.number == "WO-1"
    assert got.values == {
        "product_id": 1,
        "production_type": "OEM",
        "quantity": 5,
        "name": "Totes",
        "line": "L1",
        "status": "closed",
        "overage_pct": 2.5,
    }


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not an object", errors.ERR_ERP_FIELD),
        ({"sku": "TOTE-01", "production_type": "OEM", "quantity": 1}, errors.ERR_ERP_FIELD),
        (rec("bad number!"), errors.ERR_ERP_FIELD),
        (rec("W" * 65), errors.ERR_ERP_FIELD),
        (rec("WO-1", sku=None), errors.ERR_ERP_FIELD),
        (rec("WO-1", sku="NOPE"), errors.ERR_ERP_PRODUCT_UNKNOWN),
        (rec("WO-1", sku=None, gtin="09501101530003"), errors.ERR_ERP_PRODUCT_UNKNOWN),
        (rec("WO-1", gtin="04006381333932"), errors.ERR_ERP_GTIN),  # wrong check digit
        (rec("WO-1", gtin="1234567"), errors.ERR_ERP_GTIN),
        (rec("WO-1", gtin="０４００６３８１３３３９３１"), errors.ERR_ERP_GTIN),  # fullwidth digits
        (rec("WO-1", gtin=GTIN_BELT), errors.ERR_ERP_PRODUCT_MISMATCH),
        (rec("WO-1", production_type="XYZ"), errors.ERR_ERP_FIELD),
        (rec("WO-1", quantity=-5), errors.ERR_ERP_QUANTITY),
        (rec("WO-1", quantity=0), errors.ERR_ERP_QUANTITY),
        (rec("WO-1", quantity=10**12), errors.ERR_ERP_QUANTITY),
        (rec("WO-1", quantity="100"), errors.ERR_ERP_QUANTITY),  # JSON: a number, not text
        (rec("WO-1", quantity=1.5), errors.ERR_ERP_QUANTITY),
        (rec("WO-1", quantity=True), errors.ERR_ERP_QUANTITY),
        (rec("WO-1", quantity=None), errors.ERR_ERP_QUANTITY),
        (rec("WO-1", overage_pct=101), errors.ERR_ERP_FIELD),
        (rec("WO-1", tolerance_pct="5"), errors.ERR_ERP_FIELD),
        (rec("WO-1", lines=["L1", "L2"]), errors.ERR_ERP_FIELD),
        (rec("WO-1", line="L 1"), errors.ERR_ERP_FIELD),
        (rec("WO-1", status="paused"), errors.ERR_ERP_FIELD),
        (rec("WO-1", name="evil\u202etext"), errors.ERR_ERP_FIELD),
        (rec("WO-1", name="x" * 201), errors.ERR_ERP_FIELD),
        (rec("WO-1", sku=["TOTE-01"]), errors.ERR_ERP_FIELD),
    ],
)
def test_a_bad_record_is_refused_with_a_code(products, raw, code):
    with pytest.raises(erp_records.RecordError) as info:
        erp_records.clean_record(raw, 3, products)
    assert info.value.code == code
    assert info.value.message


@given(st.from_regex(r"[0-9]{13}", fullmatch=True))
def test_gtin_check_digits_agree_with_python_stdnum(digits):
    products = erp_records.Products({}, {})
    try:
        erp_records.clean_record({"number": "W", "gtin": digits}, 0, products)
    except erp_records.RecordError as exc:
        if ean.is_valid(digits):
            assert exc.code == errors.ERR_ERP_PRODUCT_UNKNOWN
        else:
            assert exc.code == errors.ERR_ERP_GTIN


@given(
    st.dictionaries(
        st.sampled_from(erp_records._FIELDS),
        st.one_of(st.none(), st.text(), st.integers(), st.floats(), st.lists(st.text())),
    )
)
def test_hostile_records_raise_only_record_errors(raw):
    try:
        erp_records.clean_record(raw, 0, erp_records.Products({"TOTE-01": 1}, {GTIN_TOTE: 1}))
        erp_records.clean_record(
            {k: str(v) for k, v in raw.items()}, 0, erp_records.Products({}, {}), True
        )
    except erp_records.RecordError:
        pass


# --- parsing ------------------------------------------------------------------------------


def test_csv_with_bom_header_and_blank_lines():
    data = (
        "\ufeffNumber, SKU ,production_type,quantity,line,unknown\r\n"
        "WO-1,TOTE-01,OEM, 7 ,,x\r\n\r\n"
    )
    rows = erp_records.parse_csv(data.encode())
    assert rows == [
        {
            "number": "WO-1",
            "sku": "TOTE-01",
            "production_type": "OEM",
            "quantity": " 7 ",
            "__line__": "2",
        }
    ]


@pytest.mark.parametrize("sep", [";", "\t"])
def test_semicolon_and_tab_separated_csv_is_read(sep):
    data = sep.join(["number", "sku", "production_type", "quantity", "overage_pct"]) + "\n"
    data += sep.join(["WO-1", "TOTE-01", "OEM", "7", "2.5"]) + "\n"
    rows = erp_records.parse_csv(data.encode())
    assert rows == [
        {
            "number": "WO-1",
            "sku": "TOTE-01",
            "production_type": "OEM",
            "quantity": "7",
            "overage_pct": "2.5",
            "__line__": "2",
        }
    ]


def test_a_csv_row_with_too_few_cells_says_so(products):
    rows = erp_records.parse_csv(b"number,sku,production_type,quantity\nWO-1,TOTE-01\n")
    with pytest.raises(erp_records.RecordError) as info:
        erp_records.clean_record(rows[0], 0, products, from_csv=True)
    assert "fewer cells than the header (2 of 4)" in info.value.message


@pytest.mark.parametrize("data", [b"", b"  \n", b"\xef\xbb\xbf"])
def test_an_empty_json_file_says_so(data):
    with pytest.raises(CentralError) as info:
        erp_records.parse_json(data)
    assert (info.value.code, info.value.message) == (errors.ERR_ERP_FORMAT, "the file is empty")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\n\n",
        b"sku,quantity\nTOTE-01,1\n",  # no number column
        b"number,number\n1,2\n",
        b"number\n\xff\xfe\n",  # not UTF-8
        b"number\nWO\x00-1\n",
        b'number\n"unterminated\n',
    ],
)
def test_unreadable_csv_is_refused_as_a_whole(data):
    with pytest.raises(CentralError) as info:
        erp_records.parse_csv(data)
    assert info.value.code in (errors.ERR_ERP_FORMAT, errors.ERR_ERP_TOO_LARGE)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"{",
        b'{"results": 5}',
        b'"text"',
        b"[NaN]",
        b'{"results": [], "next": 5}',
        b"[" * 100_000 + b"]" * 100_000,
        b"\xff",
    ],
)
def test_unreadable_json_is_refused_as_a_whole(data):
    with pytest.raises(CentralError) as info:
        erp_records.parse_json(data)
    assert info.value.code == errors.ERR_ERP_FORMAT


def test_oversized_and_overlong_feeds_are_refused(monkeypatch):
    monkeypatch.setattr(erp_records, "MAX_RECORDS", 3)
    with pytest.raises(CentralError) as info:
        erp_records.parse_json(b"[1,2,3,4]")
    assert info.value.code == errors.ERR_ERP_TOO_LARGE and info.value.status == 413
    with pytest.raises(CentralError):
        erp_records.parse_csv(b"number\n1\n2\n3\n4\n")
    monkeypatch.setattr(erp_records, "MAX_FILE_BYTES", 10)
    with pytest.raises(CentralError) as info:
        erp_records.parse_json(b"[" + b" " * 20 + b"]")
    assert info.value.code == errors.ERR_ERP_TOO_LARGE


def test_safe_source_hides_credentials():
    url = "https://user:pw@erp.example.com:8443/api/wo?since=1&api_token=abc&Key=z"
    shown = erp.safe_source(url)
    assert "pw" not in shown and "abc" not in shown and "user" not in shown
    assert shown.startswith("https://erp.example.com:8443/api/wo?since=1")


# --- the sync (SQLite and PostgreSQL) -----------------------------------------------------


@pytest.fixture
def store(tenant):
    from central import admin

    rt = runtime(tenant.app)
    admin.add_product(rt.store, "MA01", "BELT-02", "BAG", "Belt", GTIN_BELT, NOW)
    return rt.store


def wo_rows(store):
    with store.read() as conn:
        rows = conn.execute(sa.select(T.work_orders).order_by(T.work_orders.c.number)).all()
    return {r.number: r for r in rows}


def do_import(store, records, name="orders.json", dry_run=False):
    data = json.dumps(records).encode()
    return erp.import_records(store, "MA01", name, data, "test", NOW, dry_run=dry_run)


GOOD = [
    rec("ERP-1", name="Totes", requested_sscc=4, line="L1"),
    rec("ERP-2", sku=None, gtin="4006381333924", production_type="HAT", quantity=50),
    rec("ERP-3", status="closed"),
]


def test_a_file_creates_work_orders_and_a_second_import_changes_nothing(store):
    first = do_import(store, GOOD)
    assert (first.status, first.created, first.updated, first.unchanged, first.failed) == (
        "success",
        3,
        0,
        0,
        0,
    )
    rows = wo_rows(store)
    one = rows["ERP-1"]
    assert (one.source, one.name, one.requested_sscc, one.line, one.quantity) == (
        "erp",
        "Totes",
        4,
        "L1",
        100,
    )
    assert one.erp_synced_at is not None
    assert rows["ERP-2"].production_type == "HAT"
    assert rows["ERP-3"].status == "closed" and rows["ERP-3"].closed_at is not None
    with store.read() as conn:
        history = conn.execute(
            sa.select(sa.func.count())
            .select_from(T.generation_history)
            .where(T.generation_history.c.action == "erp_sync")
        ).scalar()
        audits = (
            conn.execute(sa.select(T.audit_log.c.action).where(T.audit_log.c.action.like("erp.%")))
            .scalars()
            .all()
        )
    assert history == 3
    assert sorted(audits) == ["erp.sync", "erp.sync_batch"]

    second = do_import(store, GOOD)
    assert (second.created, second.updated, second.unchanged, second.failed) == (0, 0, 3, 0)
    assert wo_rows(store) == rows  # not even erp_synced_at moved
    with store.read() as conn:
        erp_rows = (
            sa.select(sa.func.count())
            .select_from(T.generation_history)
            .where(T.generation_history.c.action == "erp_sync")
        )
        assert conn.execute(erp_rows).scalar() == 3


def test_changes_update_erp_orders_with_history(store):
    do_import(store, GOOD)
    changed = [rec("ERP-1", quantity=150, name="Totes", requested_sscc=4, line="L1"), GOOD[1]]
    report = do_import(store, changed)
    assert (report.created, report.updated, report.unchanged) == (0, 1, 1)
    assert wo_rows(store)["ERP-1"].quantity == 150
    with store.read() as conn:
        details = (
            conn.execute(
                sa.select(T.generation_history.c.details).order_by(T.generation_history.c.id.desc())
            )
            .scalars()
            .first()
        )
    assert json.loads(details)["before"] == {"quantity": 100}


def test_manual_fields_orders_and_closed_orders_are_kept_and_reported(store):
    do_import(store, GOOD)
    with store.write() as conn:
        conn.execute(
            T.work_orders.update()
            .where(T.work_orders.c.number == "ERP-1")
            .values(quantity=120, manual_fields='["quantity"]')
        )
    before = wo_rows(store)
    report = do_import(
        store,
        [
            rec("ERP-1", quantity=999, name="Renamed"),  # quantity kept, name taken
            rec("WO-HAT-1", quantity=5),  # a manual order of the tenant fixture
            rec("ERP-3", status="open"),  # closed: never reopened
            rec("ERP-2", production_type="OEM"),  # product/type change: left alone
        ],
    )
    after = wo_rows(store)
    assert after["ERP-1"].quantity == 120 and after["ERP-1"].name == "Renamed"
    assert after["WO-HAT-1"] == before["WO-HAT-1"]
    assert after["ERP-3"] == before["ERP-3"]
    assert after["ERP-2"] == before["ERP-2"]
    codes = {(p["number"], p["code"], p["kind"]) for p in report.problems}
    assert codes == {
        ("ERP-1", errors.ERR_ERP_MANUAL_VALUE, "conflict"),
        ("WO-HAT-1", errors.ERR_ERP_MANUAL_ORDER, "conflict"),
        ("ERP-3", errors.ERR_ERP_CLOSED, "conflict"),
        ("ERP-2", errors.ERR_ERP_PRODUCT_CHANGED, "conflict"),
    }
    # ERP-1's name was taken but its quantity kept: counted once, as a conflict.
    assert report.updated == 0 and report.conflicts == 4 and report.failed == 0
    assert report.created + report.updated + report.unchanged + report.conflicts == 4
    assert "kept manual value of quantity (120)" in report.problems[0]["message"]


def test_bad_records_are_refused_one_by_one_and_the_rest_synced(store):
    feed = [
        GOOD[0],
        rec("ERP-9", quantity=-1),
        rec("ERP-8", sku="UNKNOWN"),
        rec("ERP-1"),  # a duplicate in one feed
        {"sku": "TOTE-01"},
    ]
    report = do_import(store, feed)
    assert report.status == "partial" and report.created == 1 and report.failed == 4
    assert [(p["index"], p["code"]) for p in report.problems] == [
        (1, errors.ERR_ERP_QUANTITY),
        (2, errors.ERR_ERP_PRODUCT_UNKNOWN),
        (3, errors.ERR_ERP_DUPLICATE),
        (4, errors.ERR_ERP_FIELD),
    ]
    with store.read() as conn:
        row = conn.execute(sa.select(T.erp_syncs)).one()
    assert (row.status, row.received, row.synced, row.failed, row.created) == (
        "partial",
        5,
        1,
        4,
        1,
    )
    assert len(json.loads(row.errors)) == 4
    assert set(wo_rows(store)) == {"ERP-1", "WO-HAT-1", "WO-OEM-1"}


def test_all_bad_is_failed_and_errors_are_bounded(store, monkeypatch):
    monkeypatch.setattr(erp, "MAX_ERRORS_KEPT", 5)
    report = do_import(store, [rec(f"X-{i}", quantity=0) for i in range(20)])
    assert report.status == "failed" and report.failed == 20
    assert len(report.problems) == 5 and report.problems_total == 20


def test_dry_run_writes_nothing(store):
    report = do_import(store, GOOD, dry_run=True)
    assert report.created == 3 and report.dry_run
    assert set(wo_rows(store)) == {"WO-HAT-1", "WO-OEM-1"}
    with store.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(T.erp_syncs)).scalar() == 0


def test_csv_import_and_defaults_from_generation_config(store):
    with store.write() as conn:
        conn.execute(
            T.generation_config.insert().values(
                tenant_id=1,
                manufacturing_percentage=3.0,
                discrepancy_tolerance=1.5,
                updated_at=NOW,
                updated_by="t",
            )
        )
    csv_data = (
        b"number,sku,gtin,production_type,quantity,overage_pct,lines\n"
        b"C-1,TOTE-01,,OEM,10,,L1\n"
        b"C-2,,04006381333924,HAT,20,7.5,\n"
        b"C-3,TOTE-01,,OEM,ten,,\n"
    )
    report = erp.import_records(store, "MA01", "/tmp/x/orders.csv", csv_data, "t", NOW)
    assert (report.created, report.failed, report.source) == (2, 1, "orders.csv")
    rows = wo_rows(store)
    assert (rows["C-1"].overage_pct, rows["C-1"].tolerance_pct, rows["C-1"].line) == (
        3.0,
        1.5,
        "L1",
    )
    assert (rows["C-2"].overage_pct, rows["C-2"].line) == (7.5, None)


def test_batches_of_more_than_one_transaction(store, monkeypatch):
    monkeypatch.setattr(erp, "BATCH", 7)
    feed = [rec(f"B-{i:03d}", quantity=i + 1) for i in range(30)]
    assert do_import(store, feed).created == 30
    feed[12]["quantity"] = 999
    again = do_import(store, feed)
    assert (again.updated, again.unchanged) == (1, 29)


def test_a_supervisors_update_is_kept_by_later_syncs(store):
    from central import workorders

    do_import(store, GOOD)
    workorders.update_work_order(store, "MA01", "ERP-1", "sup", NOW, "rush", quantity=300)
    workorders.update_work_order(store, "MA01", "WO-HAT-1", "sup", NOW, quantity=7)
    rows = wo_rows(store)
    assert json.loads(rows["ERP-1"].manual_fields) == ["quantity"]
    assert json.loads(rows["WO-HAT-1"].manual_fields) == []  # manual orders need no list
    report = do_import(store, GOOD)
    assert wo_rows(store)["ERP-1"].quantity == 300
    assert [p["code"] for p in report.problems] == [errors.ERR_ERP_MANUAL_VALUE]
    # counted once: the kept record is a conflict, not also unchanged
    assert (report.unchanged, report.updated, report.conflicts) == (2, 0, 1)
    assert report.received == report.unchanged + report.conflicts


def test_a_number_created_meanwhile_by_another_import_is_planned_again(store, monkeypatch):
    do_import(store, [GOOD[0]])  # the rival import's work order
    sync = erp.Sync(store, "MA01", erp.FILE, "race.json", "t", NOW)
    sync.start()
    real_lock_row = store.lock_row
    stale = []

    def lock_row_seeing_a_stale_snapshot(query):
        if not stale:  # the first look misses ERP-1, as if it was read before the rival
            stale.append(True)
            return real_lock_row(query).where(sa.false())
        return real_lock_row(query)

    monkeypatch.setattr(store, "lock_row", lock_row_seeing_a_stale_snapshot)
    sync.feed([GOOD[0], GOOD[1]])
    report = sync.finish(NOW)
    assert (report.created, report.unchanged, report.status) == (1, 1, "success")
    assert len(wo_rows(store)) == 4


def test_records_are_named_from_1_and_csv_records_by_their_line(store):
    data = b"number;sku;production_type;quantity\nC-1;TOTE-01;OEM;5\n\nC-2;TOTE-01;OEM;0\nC-3\n"
    report = erp.import_records(store, "MA01", "eu.csv", data, "t", NOW)
    assert report.created == 1 and report.failed == 2
    got = [(p["record"], p["line"], p["number"]) for p in report.problems]
    assert got == [(2, 4, "C-2"), (3, 5, "C-3")]
    assert "fewer cells" in report.problems[1]["message"]


def test_stored_error_texts_are_bounded():
    report = erp.SyncReport(None, "MA01", erp.FILE, "x.json")
    report.note("error", 0, "N" * 5000, "ERR_ERP_FIELD", "m" * 100_000)
    item = report.problems[0]
    assert len(item["number"]) <= erp.MAX_NUMBER_KEPT
    assert len(item["message"]) <= erp.MAX_MESSAGE_KEPT


@pytest.mark.parametrize("stop", [KeyboardInterrupt, SystemExit])
def test_an_interrupted_import_is_not_left_running(store, monkeypatch, stop):
    def interrupted(self, records, from_csv=False, dry_run=False):
        raise stop()

    monkeypatch.setattr(erp.Sync, "feed", interrupted)
    with pytest.raises(stop):
        do_import(store, GOOD)
    with store.read() as conn:
        row = conn.execute(sa.select(T.erp_syncs)).one()
    assert row.status == "failed" and row.reason.startswith("interrupted")
    assert row.finished_at is not None
