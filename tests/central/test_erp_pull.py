"""Pulling from an ERP over HTTP: a fake ERP on loopback serving good pages, bad records,
failing and slow pages, wrong answers and foreign redirects (SQLite and PostgreSQL)."""

import datetime as dt
import json
import threading

import pytest
import sqlalchemy as sa

from central import admin, erp, erp_pull, errors
from central import tables as T
from central.errors import CentralError
from central.jobs import catalog
from tests.conftest import runtime
from tests.fake_erp import FakeErp, Route

NOW = dt.datetime(2026, 12, 2, 9, 0, tzinfo=dt.UTC)
TOKEN = "s3cret-erp-token"
FAST = erp_pull.PullSettings(
    connect_timeout=2.0, read_timeout=0.3, attempts=2, backoff_s=0.0, deadline_s=60.0
)


def rec(number, **kw):
    base = {"number": number, "sku": "TOTE-01", "production_type": "OEM", "quantity": 10}
    base.update(kw)
    return base


@pytest.fixture
def fake():
    server = FakeErp().start()
    yield server
    server.close()


@pytest.fixture
def store(tenant):
    return runtime(tenant.app).store


def configure(store, url, interval=None, token=TOKEN):
    erp.set_erp_settings(store, "MA01", url, token, interval, "test", NOW)


def pull(store, **kw):
    return erp_pull.pull(store, "MA01", "test", NOW, settings=kw.pop("settings", FAST), **kw)


def numbers(store):
    with store.read() as conn:
        rows = conn.execute(
            sa.select(T.work_orders.c.number).where(T.work_orders.c.source == "erp")
        ).scalars()
        return set(rows)


def sync_row(store, sync_id):
    with store.read() as conn:
        return conn.execute(sa.select(T.erp_syncs).where(T.erp_syncs.c.id == sync_id)).one()


def test_good_pages_are_synced_with_the_token_and_a_second_pull_changes_nothing(store, fake):
    records = [rec(f"P-{i:02d}", quantity=i + 1) for i in range(25)]
    configure(store, fake.pages(records, 10))
    report = pull(store)
    assert (report.status, report.received, report.created, report.failed) == ("success", 25, 25, 0)
    assert numbers(store) == {r["number"] for r in records}
    assert set(fake.seen_auth) == {f"Bearer {TOKEN}"}
    again = pull(store)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 25)
    row = sync_row(store, again.sync_id)
    assert (row.status, row.trigger, row.unchanged) == ("success", "cli", 25)
    assert TOKEN not in json.dumps(erp.sync_dict(row))


def test_malformed_records_are_refused_one_by_one(store, fake):
    records = [
        rec("M-1"),
        rec("M-2", gtin="04006381333932"),  # bad check digit
        rec("M-3", sku="NOPE"),
        rec("M-4", quantity=-1),
        rec("M-5", quantity=10**9),
        rec("M-6", quantity="10"),
        {"number": "M-7"},
        rec("M-1"),  # duplicate across pages
        ["not", "an", "object"],
    ]
    configure(store, fake.pages(records, 4))
    report = pull(store)
    assert report.status == "partial" and report.created == 1 and report.failed == 8
    codes = [p["code"] for p in report.problems]
    assert codes == [
        errors.ERR_ERP_GTIN,
        errors.ERR_ERP_PRODUCT_UNKNOWN,
        errors.ERR_ERP_QUANTITY,
        errors.ERR_ERP_QUANTITY,
        errors.ERR_ERP_QUANTITY,
        errors.ERR_ERP_FIELD,
        errors.ERR_ERP_DUPLICATE,
        errors.ERR_ERP_FIELD,
    ]


def test_a_failing_next_page_leaves_the_first_synced_and_the_sync_partial(store, fake):
    first = fake.pages([rec("A-1"), rec("A-2")], 2)
    fake.routes["/wo?page=1"].body["next"] = f"{fake.url}/broken"
    fake.routes["/broken"] = Route(status=500, body={"error": "down"})
    configure(store, first)
    report = pull(store)
    assert report.status == "partial" and report.created == 2
    assert report.reason.startswith(errors.ERR_ERP_UNAVAILABLE)
    assert "2 attempts" in report.reason and "500" in report.reason
    assert fake.routes["/broken"].hits == 2  # retried, bounded
    assert numbers(store) == {"A-1", "A-2"}
    status = sync_row(store, report.sync_id)
    assert status.status == "partial" and status.reason == report.reason


def test_a_foreign_next_link_keeps_the_records_read_before_it(store, fake):
    first = fake.pages([rec("F-1"), rec("F-2")], 2)
    fake.routes["/wo?page=1"].body["next"] = "http://evil.example/p2"
    configure(store, first)
    report = pull(store)
    assert report.status == "partial" and report.created == 2
    assert report.reason.startswith(errors.ERR_ERP_FOREIGN_URL)
    assert numbers(store) == {"F-1", "F-2"}
    assert sync_row(store, report.sync_id).status == "partial"


def test_a_5xx_then_success_is_retried(store, fake):
    url = fake.pages([rec("R-1")], 5)
    fake.routes["/wo?page=1"].fail_times = 1
    configure(store, url)
    report = pull(store)
    assert report.status == "success" and report.created == 1
    assert fake.routes["/wo?page=1"].hits == 2


def test_an_erp_slower_than_the_read_timeout_fails_the_pull(store, fake):
    held = threading.Event()
    url = fake.pages([rec("S-1")], 5)
    fake.routes["/wo?page=1"].hold = held
    configure(store, url)
    try:
        report = pull(store)
    finally:
        held.set()
    assert report.status == "failed" and report.created == 0
    assert "did not answer in time" in report.reason


def test_a_slow_second_page_after_a_good_first(store, fake):
    held = threading.Event()
    url = fake.pages([rec("T-1"), rec("T-2")], 1)
    fake.routes["/wo?page=2"].hold = held
    configure(store, url)
    try:
        report = pull(store)
    finally:
        held.set()
    assert report.status == "partial" and numbers(store) == {"T-1"}


@pytest.mark.parametrize(
    ("route", "code"),
    [
        (Route(status=500), errors.ERR_ERP_UNAVAILABLE),
        (Route(status=401, body={"detail": "bad token"}), errors.ERR_ERP_REFUSED),
        (Route(status=404), errors.ERR_ERP_REFUSED),
        (Route(body=b"<html>login</html>", content_type="text/html"), errors.ERR_ERP_FORMAT),
        (Route(body=b"{not json"), errors.ERR_ERP_FORMAT),
        (Route(body={"rows": []}), errors.ERR_ERP_FORMAT),
        (Route(body=[rec("BIG-1", name="x" * 200)] * 200), errors.ERR_ERP_TOO_LARGE),
        (Route(status=302, location="http://localhost:1/steal"), errors.ERR_ERP_FOREIGN_URL),
        (Route(body={"results": [], "next": "http://evil.example/p2"}), "foreign-next"),
    ],
)
def test_wrong_answers_fail_the_pull_with_a_code(store, fake, route, code):
    route.hits = 0  # one Route serves both databases' runs
    fake.routes["/feed"] = route
    configure(store, f"{fake.url}/feed")
    settings = erp_pull.PullSettings(
        connect_timeout=2.0, read_timeout=2.0, attempts=2, backoff_s=0.0, max_page_bytes=20_000
    )
    report = pull(store, settings=settings)
    assert report.status == "failed"
    if code == "foreign-next":
        code = errors.ERR_ERP_FOREIGN_URL
    assert report.reason.startswith(code), report.reason
    assert TOKEN not in report.reason
    if route.status == 401:
        assert route.hits == 1  # a 4xx is not retried


def test_same_host_redirects_are_followed(store, fake):
    fake.pages([rec("D-1")], 5)
    fake.routes["/old"] = Route(status=301, location="/wo?page=1")
    configure(store, f"{fake.url}/old")
    assert pull(store).created == 1


def test_an_unreachable_erp_fails_and_manual_entry_still_works(store, fake):
    url = f"{fake.url}/x"
    fake.close()
    configure(store, url)
    report = pull(store)
    assert report.status == "failed" and "cannot connect" in report.reason
    admin.add_work_order(store, "MA01", "MANUAL-9", "TOTE-01", "OEM", 5, NOW)


def test_too_many_pages_stop(store, fake):
    configure(store, fake.pages([rec(f"G-{i}") for i in range(5)], 1))
    settings = erp_pull.PullSettings(attempts=1, backoff_s=0.0, max_pages=3)
    report = pull(store, settings=settings)
    assert report.status == "partial" and report.created == 3
    assert report.reason.startswith(errors.ERR_ERP_TOO_LARGE)


def test_not_configured_is_refused(store):
    with pytest.raises(CentralError) as info:
        pull(store)
    assert info.value.code == errors.ERR_ERP_NOT_CONFIGURED and info.value.status == 409
    with pytest.raises(CentralError):
        erp_pull.queue_pull(store, "MA01", "test", NOW)


def test_settings_are_checked(store):
    for url, interval in (("ftp://x/y", None), ("http:///nohost", None), ("http://x", 5)):
        with pytest.raises(CentralError):
            configure(store, url, interval)


def test_the_job_runs_queued_and_due_pulls_only(store, fake):
    configure(store, fake.pages([rec("J-1")], 5), interval=3600)
    sync_id, queued = erp_pull.queue_pull(store, "MA01", "token:ops", NOW)
    assert queued and erp_pull.queue_pull(store, "MA01", "token:ops", NOW) == (sync_id, False)
    counts, errors = erp_pull.run_due(store, NOW, settings=FAST)
    assert errors == [] and counts["pulls"] == 1
    row = sync_row(store, sync_id)
    assert (row.status, row.trigger, row.created) == ("success", "api", 1)
    with store.read() as conn:
        settings = erp.erp_settings(conn, "MA01")
        due = erp.next_pull(conn, settings, NOW)
    assert due is not None and due > NOW
    counts, _ = erp_pull.run_due(store, NOW + dt.timedelta(minutes=5), settings=FAST)
    assert counts["pulls"] == 0  # not due yet
    counts, _ = erp_pull.run_due(store, due + dt.timedelta(seconds=1), settings=FAST)
    assert counts["pulls"] == 1
    with store.read() as conn:
        triggers = conn.execute(sa.select(T.erp_syncs.c.trigger).order_by(T.erp_syncs.c.id))
        assert list(triggers.scalars()) == ["api", "schedule"]


def test_a_failing_erp_makes_the_job_report_an_error(store, fake):
    fake.routes["/down"] = Route(status=503)
    configure(store, f"{fake.url}/down", interval=60)
    counts, errors = erp_pull.run_due(store, NOW, settings=FAST)
    assert counts["failed_pulls"] == 1
    assert len(errors) == 1 and errors[0].startswith("MA01: ERR_ERP_UNAVAILABLE")


def test_abandoned_running_pulls_are_closed_by_the_next_job_run(store, fake):
    configure(store, f"{fake.url}/none")
    with store.write() as conn:
        conn.execute(
            T.erp_syncs.insert().values(
                tenant_id=1, trigger="schedule", source="x", started_at=NOW, status="running"
            )
        )
    erp_pull.run_due(store, NOW, settings=FAST)
    with store.read() as conn:
        row = conn.execute(sa.select(T.erp_syncs).order_by(T.erp_syncs.c.id)).first()
    assert row.status == "failed" and row.reason.startswith("ERR_JOB_ABANDONED")


def test_a_file_import_left_running_is_closed_once_it_cannot_still_be_running(store, fake):
    configure(store, f"{fake.url}/none")
    with store.write() as conn:
        for started in (NOW - dt.timedelta(hours=2), NOW - dt.timedelta(minutes=5)):
            conn.execute(
                T.erp_syncs.insert().values(
                    tenant_id=1,
                    trigger="file",
                    source="f.csv",
                    started_at=started,
                    status="running",
                )
            )
    erp_pull.run_due(store, NOW, settings=FAST)
    with store.read() as conn:
        rows = conn.execute(
            sa.select(T.erp_syncs).where(T.erp_syncs.c.trigger == "file").order_by(T.erp_syncs.c.id)
        ).all()
    assert rows[0].status == "failed" and rows[0].reason.startswith("ERR_JOB_ABANDONED")
    assert rows[1].status == "running"  # five minutes: it may still be working


def test_erp_pull_is_a_scheduled_job():
    job = catalog.find_job("erp-pull")
    assert job.name == catalog.ERP_PULL and job.interval_setting == "erp_check_minutes"


def test_the_scheduled_job_pulls_due_tenants_and_records_its_run(store, fake, tenant):
    from central.jobs.runs import SCHEDULE, JobContext, run_job

    rt = runtime(tenant.app)
    ctx = JobContext(rt.store, rt.keyring, rt.config)
    job = catalog.JOBS[catalog.ERP_PULL]
    configure(store, fake.pages([rec("K-1"), rec("K-2")], 1), interval=3600)
    done = run_job(ctx, job.name, job.run, SCHEDULE)
    assert done.status == "ok" and done.counts["synced"] == 2
    assert numbers(store) == {"K-1", "K-2"}
    fake.routes["/gone"] = Route(status=404)
    configure(store, f"{fake.url}/gone", interval=60)
    later = run_job(ctx, job.name, job.run, SCHEDULE, now=dt.datetime.now(dt.UTC))
    assert later.status == "ok" and later.counts["pulls"] == 0  # not due for an hour
    with store.write() as conn:
        conn.execute(T.erp_syncs.update().values(started_at=NOW - dt.timedelta(days=1)))
    failed = run_job(ctx, job.name, job.run, SCHEDULE)
    assert failed.status == "failed" and "ERR_ERP_REFUSED" in failed.errors
    assert TOKEN not in failed.errors
