"""The OpenAPI description: valid, complete, and true of a live central (schemathesis)."""

import datetime as dt

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from openapi_spec_validator import validate
from schemathesis import checks
from schemathesis.specs.openapi import checks as oa_checks

from central import admin, create_app, init_registry
from central.config import load_config
from central.openapi import document
from tests.conftest import LiveServer, runtime

# The API routes the description covers; pages (/v/, Digital Link), /metrics and static
# files are not JSON APIs.
NOT_DESCRIBED = {
    "/metrics",
    "/static/{filename}",
    "/v/",
    "/v/{code}",
    "/01/{gtin}/{qualifiers}",
    "/00/{sscc}",
}


def _openapi_path(rule: str) -> str:
    import re

    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)


def test_the_description_is_served_and_valid(client):
    resp = client.get("/api/openapi.json")
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    spec = resp.json
    assert spec["openapi"].startswith("3.1")
    validate(spec)  # raises on any violation of the OpenAPI 3.1 schema


def test_every_api_route_and_method_is_described(app):
    spec = document()
    routes = {}
    for rule in app.url_map.iter_rules():
        path = _openapi_path(rule.rule)
        if path in NOT_DESCRIBED or path == "/api/openapi.json":
            continue
        routes[path] = {m.lower() for m in rule.methods - {"HEAD", "OPTIONS"}}
    described = {p: set(ops) for p, ops in spec["paths"].items()}
    assert routes == described
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            codes = set(op["responses"])
            if "public" not in op["tags"]:
                assert "400" in codes, path  # a NUL in the address is refused
            if method == "post":
                assert {"400", "413", "415"} <= codes, (path, codes)
            if op.get("security", spec["security"]):
                assert "401" in codes, path
            for code, answer in op["responses"].items():
                if code.startswith(("4", "5")):
                    assert answer == {"$ref": f"#/components/responses/E{code}"}


def test_the_public_verify_answer_may_grow(client):
    spec = client.get("/api/openapi.json").json
    verification = spec["components"]["schemas"]["Verification"]
    assert verification.get("additionalProperties", True) is not False
    assert verification["properties"]["brand"] == {"type": "string"}  # #7


@pytest.fixture
def fuzz_central(db_url, tmp_path):
    config = {
        "home": str(tmp_path / "fuzz-home"),
        "db_url": db_url,
        "verify_flush_seconds": 0.05,
        "verify_rate_limit": "100000/hour",
    }
    init_registry(load_config(config), dt.datetime.now(dt.UTC))
    application = create_app(config)
    rt = runtime(application)
    now = dt.datetime.now(dt.UTC)
    admin.add_tenant(rt.store, "MA01", "Maison Atelier", "Europe/Paris", now)
    admin.add_product(rt.store, "MA01", "TOTE-01", "BAG", "Tote bag", "04006381333931", now)
    admin.add_work_order(rt.store, "MA01", "WO-HAT-1", "TOTE-01", "HAT", 1000, now)
    code = admin.create_enroll_code(rt.store, "MA01", "L1", 1, now)
    agent = admin.enroll_agent(rt.store, code.code, "fuzz", "test", now).token
    token = admin.add_admin_token(rt.store, "fuzz", now)
    server = LiveServer(application)
    yield server.url.rstrip("/"), {"agent": agent, "admin": token}
    server.close()
    rt.close()


CHECKS = [
    checks.not_a_server_error,
    oa_checks.status_code_conformance,
    oa_checks.response_schema_conformance,
    oa_checks.content_type_conformance,
]
EXAMPLES = 30  # per operation: bounded, and derandomized so every run sends the same requests


def _fuzz(operation, base_url, headers):
    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def call(case):
        case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS)

    call()


@pytest.mark.slow
def test_fuzzing_a_live_central_finds_no_5xx_and_nothing_undescribed(fuzz_central):
    base_url, tokens = fuzz_central
    api = schemathesis.openapi.from_dict(document())
    failures = []
    for found in api.get_all_operations():
        operation = found.ok()
        who = "admin" if operation.path.startswith("/api/admin/") else "agent"
        try:
            _fuzz(operation, base_url, {"Authorization": f"Bearer {tokens[who]}"})
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
