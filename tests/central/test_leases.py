import datetime as dt
import threading

import pytest
import sqlalchemy as sa

from central import tables as T
from protocol.messages import LeaseResponse
from tests.central.helpers import grant, lease, new_id
from tests.conftest import runtime


def scope(tenant, ptype="HAT", day=None):
    return f"MA01-{ptype}-BAG-{(day or tenant.today):%Y%m%d}"


def test_grants_are_contiguous_and_never_overlap(client, tenant):
    h = tenant.enroll()
    a = grant(client, h, scope(tenant), 100)
    b = grant(client, h, scope(tenant), 50)
    c = grant(client, h, scope(tenant, "OEM"), 10)
    assert (a.first, a.last) == (1, 100)
    assert (b.first, b.last) == (101, 150)
    assert (c.first, c.last) == (1, 10)  # another scope has its own numbers
    assert a.key != b.key and len(a.key) == 32


def test_a_repeated_request_gets_the_same_lease(client, tenant):
    h = tenant.enroll()
    rid = new_id()
    first = lease(client, h, scope(tenant), 100, rid).json
    again = lease(client, h, scope(tenant), 100, rid).json
    assert first == again
    nxt = grant(client, h, scope(tenant), 1)
    assert nxt.first == 101  # the repeat consumed nothing


def test_partial_grant_then_exhausted(app, client, tenant):
    h = tenant.enroll()
    store = runtime(app).store
    grant(client, h, scope(tenant), 1)
    with store.write() as conn:
        conn.execute(T.scope_counters.update().values(next_seq=99_601))
    resp = lease(client, h, scope(tenant), 1000)
    body = LeaseResponse.from_dict(resp.json)
    assert resp.json["fulfilled"] is False and resp.json["granted"] == 399
    assert (body.leases[0].first, body.leases[0].last) == (99_601, 99_999)
    resp = lease(client, h, scope(tenant), 10)
    assert resp.status_code == 409
    assert resp.json == {
        "ok": False,
        "error": {"code": "ERR_SCOPE_EXHAUSTED", "message": resp.json["error"]["message"]},
    }


def test_lease_size_is_capped_by_configuration(client, tenant):
    h = tenant.enroll()
    resp = lease(client, h, scope(tenant), 50_000)
    assert resp.json["granted"] == 10_000 and resp.json["fulfilled"] is False


@pytest.mark.parametrize(
    "bad_scope, code, status",
    [
        ("ZZ99-HAT-BAG-{d}", "ERR_SCOPE_FOREIGN", 403),
        ("MA01-XYZ-BAG-{d}", "ERR_SCOPE_TYPE", 400),
        ("MA01-HAT-SHOE-{d}", "ERR_SCOPE_CATEGORY", 400),
        ("MA01-HAT-BAG-20200101", "ERR_SCOPE_DATE", 400),
        ("MA01-HAT-BAG", "ERR_SCOPE_INVALID", 400),
    ],
)
def test_scope_rules(client, tenant, bad_scope, code, status):
    h = tenant.enroll()
    resp = lease(client, h, bad_scope.format(d=f"{tenant.today:%Y%m%d}"), 10)
    assert resp.status_code == status
    assert resp.json["ok"] is False and resp.json["error"]["code"] == code


def test_tomorrow_may_be_leased_ahead(client, tenant):
    h = tenant.enroll()
    g = grant(client, h, scope(tenant, day=tenant.today + dt.timedelta(days=1)), 10)
    assert g.first == 1


def test_leases_need_a_valid_token(client, tenant):
    resp = lease(client, {}, scope(tenant), 10)
    assert resp.status_code == 401 and resp.json["error"]["code"] == "ERR_UNAUTHORIZED"
    resp = lease(client, {"Authorization": "Bearer llt_nope"}, scope(tenant), 10)
    assert resp.status_code == 401


def test_revoked_agent_is_refused(app, client, tenant):
    h = tenant.enroll()
    with runtime(app).store.write() as conn:
        conn.execute(T.agents.update().values(status="revoked"))
    resp = lease(client, h, scope(tenant), 10)
    assert resp.status_code == 403 and resp.json["error"]["code"] == "ERR_AGENT_REVOKED"


def test_return_records_the_unused_tail_as_a_gap(app, client, tenant):
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 100)
    url = f"/api/edge/v1/leases/{g.lease_id}/return"
    resp = client.post(url, headers=h, json={"v": 1, "high_water": 40})
    assert resp.json == {"ok": True, "lease_id": g.lease_id, "high_water": 40, "voided": 60}
    assert client.post(url, headers=h, json={"v": 1, "high_water": 40}).status_code == 200
    again = client.post(url, headers=h, json={"v": 1, "high_water": 50})
    assert again.status_code == 409 and again.json["error"]["code"] == "ERR_LEASE_RETURNED"
    with runtime(app).store.read() as conn:
        gap = conn.execute(sa.select(T.gaps)).one()
    assert (gap.first_seq, gap.last_seq, gap.reason) == (41, 100, "returned")
    # the gap is never granted again
    assert grant(client, h, scope(tenant), 5).first == 101


def test_return_is_refused_for_someone_elses_lease_and_bad_marks(client, tenant):
    h1, h2 = tenant.enroll("L1"), tenant.enroll("L2")
    g = grant(client, h1, scope(tenant), 10)
    url = f"/api/edge/v1/leases/{g.lease_id}/return"
    assert client.post(url, headers=h2, json={"high_water": 5}).status_code == 404
    resp = client.post(url, headers=h1, json={"high_water": 11})
    assert resp.status_code == 400 and resp.json["error"]["code"] == "ERR_INVALID"


def test_threads_leasing_at_once_never_share_a_number(app, live_central, tenant):
    """Many agents hit one central at once (real HTTP, real database)."""
    import requests

    headers = [tenant.enroll(f"L{i}") for i in range(6)]
    ranges: list[tuple[int, int]] = []
    errors: list[str] = []
    lock = threading.Lock()

    def work(h):
        with requests.Session() as s:
            for i in range(15):
                r = s.post(
                    live_central.url + "/api/edge/v1/leases",
                    headers=h,
                    json={"v": 1, "request_id": new_id(), "scope": scope(tenant), "size": 7 + i},
                )
                if r.status_code != 200:
                    errors.append(r.text)
                    continue
                for item in r.json()["leases"]:
                    with lock:
                        ranges.append((item["first"], item["last"]))

    threads = [threading.Thread(target=work, args=(h,)) for h in headers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    numbers = [n for first, last in ranges for n in range(first, last + 1)]
    assert len(numbers) == len(set(numbers)) == sum(7 + i for i in range(15)) * 6
    assert sorted(numbers) == list(range(1, len(numbers) + 1))  # no gaps either


def test_the_same_request_sent_twice_at_once_gets_one_lease(app, live_central, tenant):
    """The CLI and the service of one line may repeat a request id at the same moment."""
    import requests

    h = tenant.enroll()
    rid = new_id()
    answers: list = []
    barrier = threading.Barrier(4)

    def send():
        barrier.wait()
        r = requests.post(
            live_central.url + "/api/edge/v1/leases",
            headers=h,
            timeout=30,
            json={"v": 1, "request_id": rid, "scope": scope(tenant), "size": 25},
        )
        answers.append((r.status_code, r.json()))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [code for code, _ in answers] == [200] * 4
    assert len({body["leases"][0]["lease_id"] for _, body in answers}) == 1
    with runtime(app).store.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(T.leases)).scalar() == 1


def test_hostile_lease_ids_in_the_path(client, tenant):
    h = tenant.enroll()
    for lease_id in ["%00", "x" * 500, "../../config", "0190c4a4-4d2b-7e1b-9f6e-3c1a2b3c4d5e%00"]:
        resp = client.post(
            f"/api/edge/v1/leases/{lease_id}/return", headers=h, json={"high_water": 1}
        )
        if "%00" in lease_id:  # no address may hold NUL (refused before any view runs)
            assert (resp.status_code, resp.json["error"]["code"]) == (400, "ERR_NUL_CHARACTER")
            continue
        assert resp.status_code == 404 and resp.json["error"]["code"] in (
            "ERR_LEASE_UNKNOWN",
            "ERR_NOT_FOUND",
        )
