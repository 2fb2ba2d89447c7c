"""Label templates per product, GS1 Digital Link resolution, admin tokens."""

import datetime as dt

import pytest

from central import admin
from central.errors import CentralError
from protocol.gs1 import ai21_from_standard, digital_link
from tests.central.helpers import event, grant, push, serial_of
from tests.conftest import runtime


def now():
    return dt.datetime.now(dt.UTC)


def scope(tenant):
    return f"MA01-OEM-BAG-{tenant.today:%Y%m%d}"


def test_templates_reach_the_agents_with_their_work_orders(app, client, tenant):
    rt = runtime(app)
    admin.set_label_template(
        rt.store,
        "MA01",
        "big-gs1",
        {"width_mm": 101.6, "height_mm": 76.2, "barcodes": ["gs1_datamatrix", "qr"]},
        now(),
    )
    admin.set_product_template(rt.store, "MA01", "TOTE-01", "big-gs1")
    cfg = client.get("/api/edge/v1/config", headers=tenant.enroll()).json
    assert {w["label_template"] for w in cfg["work_orders"]} == {"big-gs1"}
    assert cfg["label_templates"]["big-gs1"]["height_mm"] == 76.2
    assert cfg["label_templates"]["big-gs1"]["barcodes"] == ["gs1_datamatrix", "qr"]
    assert "default" in cfg["label_templates"]


@pytest.mark.parametrize(
    "body, code",
    [
        ({"dpi": 7}, "ERR_LABEL_TEMPLATE"),
        ({"barcodes": ["morse"]}, "ERR_LABEL_TEMPLATE"),
        ({"width_mm": "wide"}, "ERR_LABEL_TEMPLATE"),
    ],
)
def test_bad_templates_are_refused(app, tenant, body, code):
    with pytest.raises(CentralError) as exc:
        admin.set_label_template(runtime(app).store, "MA01", "bad", body, now())
    assert exc.value.code == code


def test_unknown_template_for_a_product(app, tenant):
    with pytest.raises(CentralError) as exc:
        admin.set_product_template(runtime(app).store, "MA01", "TOTE-01", "nope")
    assert exc.value.code == "ERR_TEMPLATE_UNKNOWN"


def test_a_gtin_names_one_product(app, tenant):
    with pytest.raises(CentralError) as exc:
        admin.add_product(
            runtime(app).store, "MA01", "OTHER", "BAG", "Other", "4006381333931", now()
        )
    assert exc.value.code == "ERR_PRODUCT_EXISTS"


def test_digital_link_resolves_to_the_standard_serial(app, client, tenant):
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 5)
    serial = serial_of(g, 1)
    push(client, h, [event("issued", serial, g.lease_id, "WO-OEM-1")])
    link = digital_link("http://localhost", "04006381333931", ai21_from_standard(serial))
    path = link.removeprefix("http://localhost")
    body = client.get(path, headers={"Accept": "application/json"}).json
    assert body["verdict"] == "genuine" and body["serial"] == serial
    assert body["gs1"] == f"(01)04006381333931(21){ai21_from_standard(serial)}"
    page = client.get(path)
    assert page.status_code == 200 and b'data-verdict="genuine"' in page.data
    pending = ai21_from_standard(serial_of(g, 2))
    assert client.get(f"/01/04006381333931/21/{pending}?format=json").json["verdict"] == "pending"
    # The AI (21) check character covers the org and category, which only the GTIN's lookup
    # tells: a wrong one answers like an unregistered GTIN would, `unknown` (#7).
    typo = pending[:-1] + ("0" if pending[-1] != "0" else "1")
    assert client.get(f"/01/04006381333931/21/{typo}?format=json").json["verdict"] == "unknown"
    assert (
        client.get(f"/01/04006381333932/21/{pending}?format=json").json["verdict"] == "malformed"
    )  # bad GTIN check digit
    assert (
        client.get(f"/01/09506000134352/21/{pending}?format=json").json["verdict"] == "unknown"
    )  # not one of our GTINs
    assert (
        client.get("/01/04006381333931/21/SOMETHING-ELSE?format=json").json["verdict"] == "unknown"
    )


def test_admin_token_unlocks_internal_detail(app, client, tenant):
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 5)
    serial = serial_of(g, 1)
    push(client, h, [event("issued", serial, g.lease_id, "WO-OEM-1")])
    token = admin.add_admin_token(runtime(app).store, "ops", now())
    public = client.get("/api/public/serial/verify/" + serial).json
    assert "details" not in public
    inside = client.get(
        "/api/public/serial/verify/" + serial, headers={"Authorization": f"Bearer {token}"}
    ).json
    assert inside["details"]["state"] == "issued" and inside["details"]["work_order"] == "WO-OEM-1"
    api = client.get(
        "/api/admin/v1/serials/" + serial, headers={"Authorization": f"Bearer {token}"}
    )
    assert api.status_code == 200 and api.json["details"]["line_agent"] == h["X-Agent-Id"]
    assert client.get("/api/admin/v1/serials/" + serial).status_code == 401
    agent_token = h["Authorization"]
    assert (
        client.get(
            "/api/admin/v1/serials/" + serial, headers={"Authorization": agent_token}
        ).status_code
        == 401
    )
    with pytest.raises(CentralError):
        admin.add_admin_token(runtime(app).store, "ops", now())


@pytest.mark.parametrize("fmt", ["png", "pdf", "zpl"])
def test_admin_label_preview(app, client, tenant, fmt):
    from tests.printers.decoding import decode_pdf, decode_png

    rt = runtime(app)
    token = admin.add_admin_token(rt.store, "ops", now())
    h = {"Authorization": f"Bearer {token}"}
    url = f"/api/admin/v1/label-preview?org=MA01&work_order=WO-HAT-1&format={fmt}"
    resp = client.get(url, headers=h)
    assert resp.status_code == 200
    if fmt == "zpl":
        assert resp.data.startswith(b"^XA") and resp.mimetype == "text/plain"
        return
    found = decode_png(resp.data) if fmt == "png" else decode_pdf(resp.data)
    kinds = {d.symbology: d for d in found}
    assert set(kinds) == {"]C0", "]Q1", "]d2"}
    assert kinds["]d2"].gs1_fields()[0] == ("01", "04006381333931")
    # the sample serial of a preview never verifies
    assert client.get("/api/public/serial/verify/" + kinds["]C0"].text).json["verdict"] == "unknown"
    assert client.get(url).status_code == 401
    bad = client.get(url.replace(f"format={fmt}", "format=bmp"), headers=h)
    assert bad.status_code == 400 and bad.json["error"]["code"] == "ERR_INVALID"
    missing = client.get(url.replace("WO-HAT-1", "NOPE"), headers=h)
    assert missing.status_code == 404


def test_digital_link_with_qualifiers_and_a_copied_code(app, client, tenant):
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 5)
    serial = serial_of(g, 1)
    push(client, h, [event("issued", serial, g.lease_id, "WO-OEM-1")])
    ai21 = ai21_from_standard(serial)
    ok = client.get(f"/01/04006381333931/10/LOT-7/21/{ai21}?format=json").json
    assert ok["verdict"] == "genuine"
    assert (
        client.get(f"/01/04006381333931/22/A1/10/L/21/{ai21}?format=json").json["verdict"]
        == "genuine"
    )
    for bad in (
        f"/01/04006381333931/21/{ai21}/10/LOT",
        "/01/04006381333931/10/LOT",
        f"/01/04006381333931/99/x/21/{ai21}",
    ):
        assert client.get(bad).status_code == 404
    # A genuine serial printed under another product's GTIN of the same category: a copy.
    admin.add_product(
        runtime(app).store, "MA01", "LUXE-01", "BAG", "Luxury bag", "09506000134352", now()
    )
    copied = client.get(f"/01/09506000134352/21/{ai21}?format=json").json
    assert copied["verdict"] == "unknown"
