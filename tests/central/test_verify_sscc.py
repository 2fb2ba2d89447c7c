"""Public verify of cases and pallets: an SSCC, typed, scanned as (00) or as `/00/{sscc}`."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from central import recall
from central import tables as T
from protocol.gs1 import sscc as make_sscc
from tests.conftest import runtime

PREFIX = "4006381"
_GOOD = make_sscc(3, PREFIX, 7)
_BAD_CHECK = _GOOD[:-1] + str((int(_GOOD[-1]) + 1) % 10)


def _generated(tenant, level: str = "l2", ref: int = 7) -> str:
    """Record an SSCC as central's generation does, for work order WO-HAT-1."""
    code = make_sscc(3, PREFIX, ref)
    rt = runtime(tenant.app)
    with rt.store.write() as conn:
        wo = conn.execute(
            sa.select(T.work_orders.c.id, T.work_orders.c.tenant_id).where(
                T.work_orders.c.number == "WO-HAT-1"
            )
        ).one()
        conn.execute(
            T.ssccs.insert().values(
                sscc=code,
                tenant_id=wo.tenant_id,
                work_order_id=wo.id,
                level=level,
                created_at=dt.datetime.now(dt.UTC),
            )
        )
    return code


def test_a_generated_sscc_is_genuine_everywhere_a_customer_can_ask(tenant, client):
    code = _generated(tenant)
    for url in (
        f"/00/{code}?format=json",
        f"/api/public/serial/verify/{code}",
        f"/api/public/serial/verify/(00){code}",
        f"/api/public/serial/verify/00{code}",
    ):
        body = client.get(url).json
        assert body["verdict"] == "genuine", (url, body)
        assert body["serial"] == f"(00){code}" and body["gs1"] == f"(00){code}"
        assert body["manufacturer"] == "Maison Atelier"
    page = client.get(f"/00/{code}", headers={"Accept": "text/html"})
    assert page.status_code == 200 and b'data-verdict="genuine"' in page.data


def test_an_sscc_central_never_generated_is_unknown(tenant, client):
    _generated(tenant, ref=7)
    other = make_sscc(3, PREFIX, 8)  # valid check digit, never generated
    body = client.get(f"/00/{other}?format=json").json
    assert body["verdict"] == "unknown"
    assert "manufacturer" not in body and "details" not in body


@pytest.mark.parametrize(
    "bad, reason",
    [
        (_BAD_CHECK, "ERR_SSCC"),  # wrong check digit
        ("34006381000000007", "ERR_ELEMENT_STRING"),  # 17 digits
        ("3400638100000000701", "ERR_ELEMENT_STRING"),  # 19 digits
        ("34006381OOOOOOOO75", "ERR_ELEMENT_STRING"),  # letters
        ("%00" * 10, "ERR_ELEMENT_STRING"),
        ("' OR 1=1 --", "ERR_ELEMENT_STRING"),
    ],
)
def test_a_broken_sscc_is_malformed_without_a_lookup(tenant, client, bad, reason):
    resp = client.get(f"/00/{bad}?format=json")
    assert resp.status_code == 200
    assert resp.json["verdict"] == "malformed" and resp.json["reason"] == reason


def test_a_recalled_work_orders_sscc_says_recalled(tenant, client):
    code = _generated(tenant, level="l3")
    rt = runtime(tenant.app)
    recall.recall_work_order(
        rt.store, "MA01", "WO-HAT-1", "contaminated lot", "test", dt.datetime.now(dt.UTC)
    )
    body = client.get(f"/00/{code}?format=json").json
    assert body["verdict"] == "recalled"


def test_sscc_details_follow_the_privacy_mode(tenant, client):
    code = _generated(tenant, level="l3")
    rt = runtime(tenant.app)
    from central import admin

    admin.set_flag(rt.store, "MA01", admin.FLAG_VERIFY_MODE, "standard", dt.datetime.now(dt.UTC))
    body = client.get(f"/00/{code}?format=json").json
    assert body["details"]["package"] == "pallet"
    assert "work_order" not in body["details"]  # internal detail is for admins only
