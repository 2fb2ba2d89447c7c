"""Generation configuration per tenant: validation, storage, history, needs, admin API."""

from __future__ import annotations

import copy
import datetime as dt
import json
import math

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from central import admin
from central import genconfig as G
from central import tables as T
from central.errors import ValidationFailed
from central.leases import allowed_serials
from tests.conftest import runtime

NOW = dt.datetime(2026, 12, 2, 10, 0, tzinfo=dt.UTC)
PREFIX = "0614141"  # GS1 US

GOOD = {
    "serial_sources": [
        {"name": "standard", "kind": "standard", "enabled": True},
        {"name": "random", "kind": "sgtin-random", "enabled": False},
    ],
    "sscc_sources": [
        {"name": "plant-A", "company_prefix": PREFIX, "extension_digit": 3, "enabled": True}
    ],
    "manufacturing_percentage": 5,
    "discrepancy_tolerance": 2.5,
    "aggregation_rules": {
        "l1": {"enabled": True, "multiplier": 1},
        "l2": {"enabled": True, "multiplier": 12},
        "l3": {"enabled": True, "multiplier": 480},
        "l4": {"enabled": False, "multiplier": 1000},
    },
    "erp_url": "https://erp.example/api",
    "erp_token": "s3cret-erp-token",
    "erp_interval_s": 300,
}


def good(**changes):
    doc = copy.deepcopy(GOOD)
    doc.update(changes)
    return doc


def problems(document):
    with pytest.raises(ValidationFailed) as caught:
        G.validate(document)
    assert caught.value.code == "ERR_VALIDATION"
    return caught.value.details


# --- validation --------------------------------------------------------------------------


def test_a_good_document_validates():
    checked = G.validate(good())
    assert checked["manufacturing_percentage"] == 5.0
    assert checked["erp_token"] == "s3cret-erp-token"
    assert G.validate(good(erp_token=None) | {})["erp_token"] is None
    doc = good()
    del doc["erp_token"]
    assert G.validate(doc)["erp_token"] is G.KEEP


def test_every_problem_is_reported_at_once():
    details = problems(
        good(
            manufacturing_percentage=101,
            discrepancy_tolerance=-1,
            erp_interval_s=59,
            erp_url="ftp://erp.example",
            colour="blue",
        )
    )
    assert details["manufacturing_percentage"] == ["Value must be between 0 and 100"]
    assert details["discrepancy_tolerance"] == ["Value must be between 0 and 100"]
    assert "erp_interval_s" in details and "erp_url" in details
    assert details["colour"] == ["Unknown field"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"manufacturing_percentage": "5"}, "manufacturing_percentage"),
        ({"manufacturing_percentage": True}, "manufacturing_percentage"),
        ({"manufacturing_percentage": float("nan")}, "manufacturing_percentage"),
        ({"manufacturing_percentage": float("inf")}, "manufacturing_percentage"),
        ({"manufacturing_percentage": 10**400}, "manufacturing_percentage"),
        ({"manufacturing_percentage": 1.234}, "manufacturing_percentage"),
        ({"discrepancy_tolerance": None}, "discrepancy_tolerance"),
        ({"serial_sources": {}}, "serial_sources"),
        ({"serial_sources": [{"name": "x", "kind": "external"}]}, "serial_sources[0].kind"),
        ({"serial_sources": ["standard"]}, "serial_sources[0]"),
        (
            {"serial_sources": [{"name": "a", "kind": "standard"}] * 2},
            "serial_sources[1].name",
        ),
        ({"serial_sources": [{"name": "a", "kind": "standard"}] * 17}, "serial_sources"),
        (
            {"serial_sources": [{"name": "a\u202e", "kind": "standard"}]},
            "serial_sources[0].name",
        ),
        (
            {"serial_sources": [{"name": "a", "kind": "standard", "url": "x"}]},
            "serial_sources[0].url",
        ),
        (
            {"sscc_sources": [{"name": "s", "company_prefix": "12345", "extension_digit": 0}]},
            "sscc_sources[0].company_prefix",
        ),
        (
            {
                "sscc_sources": [
                    {"name": "s", "company_prefix": "1234567890123", "extension_digit": 0}
                ]
            },
            "sscc_sources[0].company_prefix",
        ),
        (
            {"sscc_sources": [{"name": "s", "company_prefix": 614141, "extension_digit": 0}]},
            "sscc_sources[0].company_prefix",
        ),
        (  # 140: no GS1 member organisation has it
            {"sscc_sources": [{"name": "s", "company_prefix": "1400000", "extension_digit": 0}]},
            "sscc_sources[0].company_prefix",
        ),
        (  # 200-299: restricted circulation numbers, not a company's
            {"sscc_sources": [{"name": "s", "company_prefix": "2001234", "extension_digit": 0}]},
            "sscc_sources[0].company_prefix",
        ),
        (
            {"sscc_sources": [{"name": "s", "company_prefix": PREFIX, "extension_digit": 10}]},
            "sscc_sources[0].extension_digit",
        ),
        (
            {"sscc_sources": [{"name": "s", "company_prefix": PREFIX, "extension_digit": "3"}]},
            "sscc_sources[0].extension_digit",
        ),
        (
            {
                "sscc_sources": [
                    {"name": "a", "company_prefix": PREFIX, "extension_digit": 1},
                    {"name": "b", "company_prefix": PREFIX, "extension_digit": 1},
                ]
            },
            "sscc_sources[1]",
        ),
        ({"aggregation_rules": []}, "aggregation_rules"),
        (
            {"aggregation_rules": {"l1": {"enabled": True, "multiplier": 2}}},
            "aggregation_rules.l1",
        ),
        (
            {"aggregation_rules": {"l1": {"enabled": False, "multiplier": 1}}},
            "aggregation_rules.l1",
        ),
        (
            {
                "aggregation_rules": {
                    "l1": {"enabled": True, "multiplier": 1},
                    "l2": {"enabled": True, "multiplier": 12},
                    "l3": {"enabled": True, "multiplier": 100},
                }
            },
            "aggregation_rules.l3.multiplier",
        ),
        (
            {
                "aggregation_rules": {
                    "l1": {"enabled": True, "multiplier": 1},
                    "l2": {"enabled": True, "multiplier": 0},
                }
            },
            "aggregation_rules.l2.multiplier",
        ),
        (
            {
                "aggregation_rules": {
                    "l1": {"enabled": True, "multiplier": 1},
                    "l2": {"enabled": True, "multiplier": 12.0},
                }
            },
            "aggregation_rules.l2.multiplier",
        ),
        (
            {
                "aggregation_rules": {
                    "l1": {"enabled": True, "multiplier": 1},
                    "l2": {"enabled": "yes", "multiplier": 12},
                }
            },
            "aggregation_rules.l2.enabled",
        ),
        ({"aggregation_rules": {"l1": {"enabled": True, "multiplier": 1}, "l5": {}}}, None),
        ({"erp_url": "https://user:pw@erp.example/"}, "erp_url"),
        ({"erp_url": "https://erp.example:99999/"}, "erp_url"),
        ({"erp_url": "javascript:alert(1)"}, "erp_url"),
        ({"erp_url": "https://" + "e" * 600}, "erp_url"),
        ({"erp_url": 5}, "erp_url"),
        ({"erp_url": "https://erp.example/api?api_key=S3CRET"}, "erp_url"),  # shown everywhere
        ({"erp_url": "https://erp.example/api?Token=x&page=1"}, "erp_url"),
        ({"erp_url": "http://erp.example.com/api"}, "erp_url"),  # token in clear across nets
        ({"erp_url": "http://169.254.169.254/latest/meta-data"}, "erp_url"),  # link-local
        ({"erp_url": "https://[fe80::1]/api"}, "erp_url"),
        ({"erp_token": "x" * 501}, "erp_token"),
        ({"erp_token": "tok\nen"}, "erp_token"),
        ({"erp_token": 12345}, "erp_token"),
        ({"erp_interval_s": 10**12}, "erp_interval_s"),
        ({"erp_interval_s": 60.5}, "erp_interval_s"),
        ({"erp_url": None, "erp_interval_s": 300}, "erp_interval_s"),
    ],
)
def test_hostile_fields_are_named_in_details(changes, field):
    details = problems(good(**changes))
    if field is None:
        assert any(k.startswith("aggregation_rules.") for k in details), details
    else:
        assert field in details, details
    assert all(isinstance(m, str) and m for msgs in details.values() for m in msgs)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/api",
        "http://localhost/api",
        "http://10.1.2.3/erp",
        "http://erp.plant.lan/api",
        "https://erp.example.com/api?page=1&format=json",
    ],
)
def test_plant_and_https_erp_addresses_are_accepted(url):
    assert G.validate(good(erp_url=url))["erp_url"] == url


@pytest.mark.parametrize("document", [None, [], "config", 5])
def test_not_an_object(document):
    assert problems(document)


def test_a_missing_field_is_required():
    doc = good()
    del doc["aggregation_rules"]
    assert problems(doc) == {"aggregation_rules": ["Required"]}


# --- storage, audit, history ---------------------------------------------------------------


@pytest.fixture
def store(app):
    rt = runtime(app)
    admin.add_tenant(rt.store, "MA01", "Maison Atelier", "Europe/Paris", NOW)
    admin.add_tenant(rt.store, "OT02", "Other", "Europe/Paris", NOW)
    return rt.store


def test_defaults_when_never_set(store):
    with store.read() as conn:
        shown = G.load(conn, "MA01")
    assert shown["is_default"] is True and shown["erp_token_set"] is False
    assert shown["manufacturing_percentage"] == 0.0
    assert shown["aggregation_rules"]["l1"] == {"enabled": True, "multiplier": 1}


def test_save_writes_row_audit_and_history_and_never_the_token(store):
    result = G.save(store, "MA01", good(), "cli:alice", NOW)
    assert result["after"]["erp_token_set"] is True
    assert "erp_token" in result["changed"] and "manufacturing_percentage" in result["changed"]
    with store.read() as conn:
        shown = G.load(conn, "MA01")
        assert G.erp_token(conn, "MA01") == "s3cret-erp-token"
        assert G.load(conn, "OT02")["is_default"] is True
        audits = conn.execute(
            sa.select(T.audit_log).where(T.audit_log.c.action == "generation_config.update")
        ).all()
        hist = G.history(conn, "MA01")
    assert shown["sscc_sources"][0]["company_prefix"] == PREFIX
    assert shown["updated_by"] == "cli:alice" and shown["is_default"] is False
    assert "erp_token" not in shown
    assert len(audits) == 1 and len(hist) == 1
    assert hist[0]["actor"] == "cli:alice" and hist[0]["before"]["is_default"] is True
    assert "s3cret" not in json.dumps(shown) + audits[0].details + json.dumps(hist)


def test_keep_clear_and_patch_the_token(store):
    G.save(store, "MA01", good(), "a", NOW)
    doc = good()
    del doc["erp_token"]
    assert "erp_token" not in G.save(store, "MA01", doc, "a", NOW)["changed"]
    with store.read() as conn:
        assert G.erp_token(conn, "MA01") == "s3cret-erp-token"
    G.save(store, "MA01", {"manufacturing_percentage": 7.5}, "a", NOW, partial=True)
    with store.read() as conn:
        shown = G.load(conn, "MA01")
        assert shown["manufacturing_percentage"] == 7.5 and shown["discrepancy_tolerance"] == 2.5
        assert G.erp_token(conn, "MA01") == "s3cret-erp-token"
    G.save(store, "MA01", {"erp_token": None}, "a", NOW, partial=True)
    with store.read() as conn:
        assert G.erp_token(conn, "MA01") is None
        assert len(G.history(conn, "MA01")) == 4


def test_a_refused_or_dry_run_document_writes_nothing(store):
    G.save(store, "MA01", good(), "a", NOW)
    with pytest.raises(ValidationFailed):
        G.save(store, "MA01", good(manufacturing_percentage=300), "a", NOW)
    dry = G.save(store, "MA01", good(manufacturing_percentage=9), "a", NOW, dry_run=True)
    assert dry["dry_run"] and dry["changed"] == ["manufacturing_percentage"]
    with store.read() as conn:
        assert G.load(conn, "MA01")["manufacturing_percentage"] == 5.0
        assert len(G.history(conn, "MA01")) == 1


def test_an_export_imports_unchanged(store):
    G.save(store, "MA01", good(), "a", NOW)
    with store.read() as conn:
        exported = G.load(conn, "MA01")
    result = G.save(store, "OT02", exported, "a", NOW)
    for field in G.EDITABLE:
        if field != "erp_token":
            assert result["after"][field] == exported[field], field
    assert result["after"]["erp_token_set"] is False  # the secret never travels


# --- needs ---------------------------------------------------------------------------------


def test_needs_of_a_work_order():
    rules = G.validate(good())["aggregation_rules"]
    n = G.needs(1000, 5, rules)
    assert n["units"] == 1050
    assert n["levels"]["l2"] == {"multiplier": 12, "count": 88}  # ceil(1050 / 12)
    assert n["levels"]["l3"] == {"multiplier": 480, "count": 3}
    assert "l4" not in n["levels"]
    assert n["sscc"] == 91


def test_needs_rounds_units_like_the_edge_allowance():
    assert G.needs(3, 33.33, G.DEFAULTS["aggregation_rules"])["units"] == allowed_serials(3, 33.33)
    assert G.needs(10, 0, G.DEFAULTS["aggregation_rules"]) == {
        "quantity": 10,
        "overage_pct": 0,
        "units": 10,
        "levels": {"l1": {"multiplier": 1, "count": 10}},
        "sscc": 0,
        "sscc_requests": 0,
    }


@pytest.mark.parametrize(("quantity", "overage"), [(0, 0), (10**8, 0), (5, -1), (5, 101)])
def test_needs_refuses_out_of_range(quantity, overage):
    with pytest.raises(ValueError):
        G.needs(quantity, overage, G.DEFAULTS["aggregation_rules"])


@st.composite
def rules(draw):
    out = {"l1": {"enabled": True, "multiplier": 1}}
    size = 1
    for level in ("l2", "l3", "l4"):
        enabled = draw(st.booleans())
        factor = draw(st.integers(2, 50))
        out[level] = {"enabled": enabled, "multiplier": size * factor}
        if enabled:
            size *= factor
    return out


@given(
    st.integers(1, G.MAX_QUANTITY),
    st.decimals(0, 100, places=2).map(float),
    rules(),
)
def test_needs_are_consistent(quantity, overage, generated):
    checked = G.validate(good(aggregation_rules=generated))["aggregation_rules"]
    n = G.needs(quantity, overage, checked)
    units = n["units"]
    assert quantity <= units <= quantity * (1 + overage / 100) + 1e-6
    assert units == allowed_serials(quantity, overage)
    previous = units
    for level, body in n["levels"].items():
        m, count = body["multiplier"], body["count"]
        assert count * m >= units and (count - 1) * m < units  # enough, not one too many
        assert count <= previous
        previous = count
        assert checked[level]["enabled"]
    assert n["sscc"] == sum(b["count"] for k, b in n["levels"].items() if k != "l1")
    assert n["levels"]["l1"]["count"] == units
    assert math.isfinite(n["sscc"])


def test_needs_for_a_work_order_row(store):
    admin.add_product(store, "MA01", "TOTE-01", "BAG", "Tote", "04006381333931", NOW)
    admin.add_work_order(store, "MA01", "WO-1", "TOTE-01", "HAT", 100, NOW, overage_pct=10)
    G.save(store, "MA01", good(), "a", NOW)
    with store.read() as conn:
        row = conn.execute(sa.select(T.work_orders).where(T.work_orders.c.number == "WO-1")).one()
        n = G.needs_for_work_order(conn, row)
    assert n["units"] == 110 and n["levels"]["l2"]["count"] == 10 and n["sscc"] == 11


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
FIELDS = st.fixed_dictionaries(
    {},
    optional={name: JSON for name in (*G.EDITABLE, *G.READ_ONLY)},
)


@given(st.one_of(JSON, FIELDS, FIELDS.map(lambda d: {**GOOD, **d})))
def test_any_document_validates_or_names_its_problems(document):
    try:
        checked = G.validate(document)
    except ValidationFailed as exc:
        assert exc.details and all(
            isinstance(k, str) and msgs and all(isinstance(m, str) for m in msgs)
            for k, msgs in exc.details.items()
        )
        json.dumps(exc.to_dict())
    else:
        assert set(checked) == set(G.EDITABLE)


def test_an_absent_level_is_as_by_default():
    checked = G.validate(good(aggregation_rules={"l2": {"enabled": True, "multiplier": 6}}))
    assert checked["aggregation_rules"]["l1"] == {"enabled": True, "multiplier": 1}
    assert checked["aggregation_rules"]["l4"]["enabled"] is False


# --- SSCC sources another tenant numbers, and the GET wrapper --------------------------------


def _numbered_by(store, org, prefix, ext):
    with store.write() as conn:
        tenant_id = conn.execute(
            sa.select(T.tenants.c.id).where(T.tenants.c.org_code == org)
        ).scalar_one()
        conn.execute(
            T.number_counters.insert().values(
                key=f"sscc:{ext}:{prefix}", tenant_id=tenant_id, next_value=12, updated_at=NOW
            )
        )


def test_an_sscc_range_another_tenant_numbers_is_refused_at_save(store):
    _numbered_by(store, "OT02", PREFIX, 3)
    doc = good(
        sscc_sources=[
            {"name": "own", "company_prefix": "4006381", "extension_digit": 3},
            {"name": "theirs", "company_prefix": PREFIX, "extension_digit": 3, "enabled": False},
        ]
    )
    for dry_run in (True, False):
        with pytest.raises(ValidationFailed) as caught:
            G.save(store, "MA01", doc, "a", NOW, dry_run=dry_run)
        details = caught.value.details
        assert list(details) == ["sscc_sources[1].company_prefix"]
        assert "numbered by another tenant" in details["sscc_sources[1].company_prefix"][0]
    with store.read() as conn:
        assert G.load(conn, "MA01")["is_default"] is True  # nothing written
    # another extension digit of the prefix is another range: fine; so is its own range
    doc["sscc_sources"][1]["extension_digit"] = 4
    assert G.save(store, "MA01", doc, "a", NOW)["after"]["sscc_sources"][1]["extension_digit"] == 4
    assert G.save(store, "OT02", good(), "a", NOW)["changed"]
    # a PATCH that keeps a range numbered by another tenant meanwhile is refused too
    _numbered_by(store, "OT02", "4006381", 3)
    with pytest.raises(ValidationFailed) as caught:
        G.save(store, "MA01", {"discrepancy_tolerance": 1}, "a", NOW, partial=True)
    assert list(caught.value.details) == ["sscc_sources[0].company_prefix"]


def test_a_get_answer_saves_back_as_is(store):
    G.save(store, "MA01", good(), "a", NOW)
    with store.read() as conn:
        shown = {"ok": True, "config": G.load(conn, "MA01")}
    assert G.save(store, "MA01", shown, "a", NOW)["changed"] == []
    assert G.save(store, "MA01", shown, "a", NOW, partial=True)["changed"] == []
    # only exactly that wrapper is unwrapped: anything else beside "config" stays refused
    with pytest.raises(ValidationFailed) as caught:
        G.save(store, "MA01", {**shown, "extra": 1}, "a", NOW)
    assert "config" in caught.value.details


def test_needs_says_how_many_requests_the_ssccs_take():
    rules = G.validate(good())["aggregation_rules"]
    assert G.needs(1000, 5, rules)["sscc_requests"] == 1
    big = G.needs(10_000_000, 100, {"l2": {"enabled": True, "multiplier": 12}})
    assert big["sscc"] == 1_666_667 and big["sscc_requests"] == 2
    assert G.needs(10, 0, G.DEFAULTS["aggregation_rules"])["sscc_requests"] == 0
