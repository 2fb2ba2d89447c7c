"""The OpenAPI 3.1 description of the edge, public and admin APIs, served at `/api/openapi.json`.

Written by hand as a dict rather than generated: the views decode their bodies with the
strict readers of `protocol` (dataclasses, not a schema library), so a generator would need
every view annotated twice. A test checks that every JSON API route of the app is described
here, validates the document with openapi-spec-validator, and fuzzes a live central with
schemathesis against it (no 5xx, no status code or body outside the description).

Public answers never forbid additional properties: the verify answer grows fields (such as
`manufacturer` or `warning`) without breaking clients. Errors always have the one shape.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from protocol.events import MAX_BATCH, RESULT_STATUSES
from protocol.lifecycle import EVENT_TYPES
from protocol.serials import MAX_SEQ

bp = Blueprint("openapi", __name__)

Schema = dict[str, Any]

_REASONS = {
    400: "the request is malformed: bad JSON (`ERR_JSON`, `ERR_JSON_NONFINITE`, "
    "`ERR_NUL_CHARACTER`), a field out of range (`ERR_SCHEMA`, `ERR_INVALID`, ...)",
    401: "no valid bearer token (`ERR_UNAUTHORIZED`; `ERR_ENROLL_CODE` for enrollment)",
    403: "the agent was revoked (`ERR_AGENT_REVOKED`) or access is forbidden (`ERR_FORBIDDEN`)",
    404: "nothing at this address, or the thing named does not exist (`ERR_NOT_FOUND`, "
    "`ERR_LEASE_UNKNOWN`, `ERR_QUARANTINE_UNKNOWN`, ...)",
    409: "the request clashes with what is recorded (`ERR_LEASE_CAP`, `ERR_LEASE_RETURNED`, "
    "`ERR_QUARANTINE_RESOLVED`, ...)",
    413: "the request body is too large (`ERR_TOO_LARGE`, `ERR_BATCH_TOO_LARGE`)",
    415: "the body is not `Content-Type: application/json` (`ERR_UNSUPPORTED_MEDIA_TYPE`)",
    429: "too many requests from this address (`ERR_RATE_LIMITED`)",
    503: "the registry database is unavailable (`ERR_DATABASE`), or, on the public verify "
    "endpoints, central is saturated and sheds load (`ERR_OVERLOADED`, with `Retry-After`) or "
    "the rate-limit storage is down (`ERR_RATE_LIMIT_STORAGE`); retry",
}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(required: list[str], props: Schema, closed: bool = False) -> Schema:
    out: Schema = {"type": "object", "required": required, "properties": props}
    if closed:
        out["additionalProperties"] = False
    return out


_S: Schema = {"type": "string"}
_INT: Schema = {"type": "integer"}
_BOOL: Schema = {"type": "boolean"}
_TRUE: Schema = {"const": True}
_TS: Schema = {"type": "string", "description": "UTC time, RFC 3339 with Z"}
_NSTR: Schema = {"type": ["string", "null"]}
_NINT: Schema = {"type": ["integer", "null"]}
_ID: Schema = {
    "type": "string",
    "description": "a UUIDv7 in its canonical text form",
    "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$",
}
_V: Schema = {"type": "integer", "const": 1, "description": "schema version (absent: 1)"}
_ANY_OBJ: Schema = {"type": "object"}

_NTS: Schema = {"type": ["string", "null"], "description": "UTC time, RFC 3339, or null"}
_GEN_STATUS: Schema = {"enum": ["pending", "in_progress", "completed", "failed"]}
_PCT: Schema = {"type": "number", "minimum": 0, "maximum": 100}
# issue #9: a work order as lists, the detail view and the CSV export show it. Our names for
# the reference's fields: wo_id -> number, wo_name -> name, wo_source -> source,
# total_requested_serials -> quantity, total_requested_sscc -> requested_sscc,
# serial_generation_status -> serial_status, sscc_generation_status -> sscc_status.
_WORK_ORDER: Schema = _obj(
    ["number", "name", "sku", "source", "status", "quantity", "allowed", "requested_sscc"],
    {
        "number": _S,
        "name": _S,
        "sku": _S,
        "product_name": _S,
        "production_type": _S,
        "source": {"enum": ["erp", "manual"]},
        "status": {"enum": ["open", "closed"]},
        "quantity": _INT,
        "allowed": {"type": "integer", "description": "quantity x (1 + overage %)"},
        "requested_sscc": _INT,
        "overage_pct": {"type": "number"},
        "tolerance_pct": {"type": "number"},
        "generated_serials": _INT,
        "generated_sscc": _INT,
        "serial_status": _GEN_STATUS,
        "sscc_status": _GEN_STATUS,
        "last_serial_generation_at": _NTS,
        "last_sscc_generation_at": _NTS,
        "error_message": _NSTR,
        "line": {"type": ["string", "null"], "description": "null: any line of the tenant"},
        "created_at": _TS,
        "updated_at": _NTS,
        "closed_at": _NTS,
        "recalled_at": _NTS,
        "erp_synced_at": _NTS,
        "manual_fields": {
            "type": "array",
            "items": _S,
            "description": "fields changed by hand on an `erp` order (an ERP sync keeps them)",
        },
    },
)
_WORK_ORDER_SCHEMAS: dict[str, Schema] = {
    "WorkOrder": _WORK_ORDER,
    "WorkOrderList": _obj(
        ["count", "next", "previous", "results"],
        {
            "count": {"type": "integer", "description": "work orders matching the filters"},
            "next": {"type": ["string", "null"], "description": "URL of the next page"},
            "previous": {"type": ["string", "null"], "description": "URL of the page before"},
            "results": {"type": "array", "items": {"$ref": "#/components/schemas/WorkOrder"}},
        },
    ),
    "WorkOrderDetail": {
        "allOf": [
            {"$ref": "#/components/schemas/WorkOrder"},
            _obj(
                ["history", "needs"],
                {
                    "needs": _obj(
                        ["quantity", "overage_pct", "units", "levels", "sscc"],
                        {
                            "quantity": _INT,
                            "overage_pct": {"type": "number"},
                            "units": _INT,
                            "levels": {
                                "type": "object",
                                "description": "per enabled level l1..l4: multiplier, count",
                                "additionalProperties": _ANY_OBJ,
                            },
                            "sscc": _INT,
                        },
                    ),
                    "history": {
                        "type": "array",
                        "description": "the newest 100 history rows, newest first",
                        "items": _obj(
                            ["action", "status", "actor", "created_at"],
                            {
                                "id": _INT,
                                "action": _S,
                                "status": _S,
                                "requested_quantity": _NINT,
                                "generated_quantity": _NINT,
                                "details": _ANY_OBJ,
                                "error_details": {},
                                "execution_ms": _NINT,
                                "task_id": _NSTR,
                                "actor": _S,
                                "created_at": _TS,
                            },
                        ),
                    },
                },
            ),
        ]
    },
    "WorkOrderUpdate": _obj(
        [],
        {
            "name": {"type": "string", "minLength": 1, "maxLength": 200},
            "quantity": {"type": ["integer", "null"], "minimum": 1, "maximum": 10_000_000},
            "overage_pct": {**_PCT, "type": ["number", "null"]},
            "tolerance_pct": {**_PCT, "type": ["number", "null"]},
            "requested_sscc": {"type": ["integer", "null"], "minimum": 0, "maximum": 10_000_000},
            "line": {"type": ["string", "null"], "description": "null: any line"},
            "reason": {"type": ["string", "null"], "maxLength": 500},
        },
        closed=True,
    ),
    "WorkOrderUpdated": _obj(
        ["work_order", "before", "after", "allowed", "manual_fields"],
        {
            "work_order": _S,
            "before": _ANY_OBJ,
            "after": _ANY_OBJ,
            "allowed": _INT,
            "manual_fields": {"type": "array", "items": _S},
            "line": {"type": ["string", "null"], "description": "null: any line"},
            "unchanged": {"type": "boolean", "description": "true: the values were already so"},
        },
    ),
    "WorkOrderClose": _obj(
        ["reason"], {"reason": {"type": "string", "minLength": 1, "maxLength": 500}}
    ),
    "WorkOrderClosed": _obj(
        ["work_order", "status", "closed_at"],
        {"work_order": _S, "status": {"const": "closed"}, "closed_at": _TS},
    ),
}

SCHEMAS: dict[str, Schema] = {
    "Error": _obj(
        ["ok", "error"],
        {
            "ok": {"const": False},
            "error": _obj(
                ["code", "message"],
                {
                    "code": {"type": "string", "pattern": "^[A-Z][A-Z0-9_]*$"},
                    "message": _S,
                    # ERR_VALIDATION only: every problem of a document, by field
                    "details": {
                        "type": "object",
                        "additionalProperties": {"type": "array", "items": _S},
                    },
                },
                closed=True,
            ),
        },
        closed=True,
    ),
    "EnrollRequest": _obj(
        ["code"],
        {
            "v": _V,
            "code": {"type": "string", "minLength": 1, "maxLength": 64},
            "hostname": {"type": "string", "minLength": 1, "maxLength": 128},
            "agent_version": {"type": "string", "minLength": 1, "maxLength": 32},
        },
    ),
    "EnrollResponse": _obj(
        ["ok", "agent_id", "token", "org", "line", "tenant_name"],
        {"ok": _TRUE, "agent_id": _S, "token": _S, "org": _S, "line": _S, "tenant_name": _S},
    ),
    "Ping": _obj(["ok", "agent_id", "time"], {"ok": _TRUE, "agent_id": _S, "time": _TS}),
    "LeaseRequest": _obj(
        ["request_id", "scope", "size"],
        {
            "v": _V,
            "request_id": _ID,
            "scope": {"type": "string", "description": "ORG-TYPE-CAT-YYYYMMDD"},
            "size": {"type": "integer", "minimum": 1, "maximum": MAX_SEQ},
        },
    ),
    "LeaseGrant": _obj(
        ["lease_id", "scope", "first", "last", "key", "key_version", "expires_at"],
        {
            "lease_id": _S,
            "scope": _S,
            "first": _INT,
            "last": _INT,
            "key": {"type": "string", "description": "the lease key, hex"},
            "key_version": _INT,
            "expires_at": _TS,
        },
    ),
    "LeaseResponse": _obj(
        ["ok", "request_id", "requested", "granted", "fulfilled", "leases"],
        {
            "ok": _TRUE,
            "request_id": _S,
            "requested": _INT,
            "granted": _INT,
            "fulfilled": _BOOL,
            "leases": {"type": "array", "items": _ref("LeaseGrant")},
        },
    ),
    "LeaseReturn": _obj(
        ["high_water"],
        {"v": _V, "high_water": {"type": "integer", "minimum": 0, "maximum": MAX_SEQ}},
    ),
    "LeaseReturned": _obj(
        ["ok", "lease_id", "high_water", "voided"],
        {"ok": _TRUE, "lease_id": _S, "high_water": _INT, "voided": _INT},
    ),
    "Event": _obj(
        ["event_id", "type", "serial", "occurred_at"],
        {
            "v": _V,
            "event_id": _ID,
            "type": {"enum": list(EVENT_TYPES)},
            "serial": {"type": "string", "minLength": 1, "maxLength": 64},
            "occurred_at": _TS,
            "lease_id": {"type": "string", "minLength": 1, "maxLength": 64},
            "work_order": {"type": "string", "minLength": 1, "maxLength": 64},
            "data": {
                "type": "object",
                "maxProperties": 32,
                "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
                "description": "flat facts; strings hold no control or bidi-override characters",
            },
        },
    ),
    "EventBatch": _obj(
        ["events"],
        {"v": _V, "events": {"type": "array", "maxItems": MAX_BATCH, "items": _ref("Event")}},
    ),
    "EventResult": _obj(
        ["event_id", "status"],
        {
            "event_id": _S,
            "status": {"enum": list(RESULT_STATUSES)},
            "code": {
                "type": "string",
                "description": "why (e.g. ERR_EVENT_TIME_RANGE, ERR_WORK_ORDER_UNKNOWN, "
                "ERR_WORK_ORDER_PRODUCT, ERR_CONTROL_CHARACTER, CLONE_SIGNAL)",
            },
            "message": _S,
        },
    ),
    "EventResults": _obj(
        ["ok", "results"],
        {"ok": _TRUE, "results": {"type": "array", "items": _ref("EventResult")}},
    ),
    "ReconcileRequest": _obj(
        ["leases"],
        {
            "v": _V,
            "mode": {"enum": ["full", "marks"]},
            "leases": {
                "type": "array",
                "maxItems": 1000,
                "items": _obj(
                    ["lease_id", "high_water"],
                    {
                        "lease_id": {"type": "string", "minLength": 1, "maxLength": 64},
                        "high_water": {"type": "integer", "minimum": 0, "maximum": MAX_SEQ},
                        "counts": _ANY_OBJ,
                        "buckets": _ANY_OBJ,
                        "links": _ANY_OBJ,
                    },
                ),
            },
            "outbox": _ANY_OBJ,
            "clock_offset_ms": _INT,
            "agent_version": _S,
        },
    ),
    "ReconcileResponse": _obj(
        ["ok", "time", "leases", "unreported"],
        {
            "ok": _TRUE,
            "time": _TS,
            "leases": {
                "type": "array",
                "items": _obj(
                    ["lease_id", "status", "central_high_water"],
                    {"lease_id": _S, "status": _S, "central_high_water": _INT},
                ),
            },
            "unreported": {"type": "array", "items": _ANY_OBJ},
        },
    ),
    "AgentConfig": _obj(
        [
            "ok",
            "v",
            "agent_id",
            "org",
            "line",
            "tenant_name",
            "timezone",
            "verify_base_url",
            "work_orders",
            "flags",
            "label_templates",
        ],
        {
            "ok": _TRUE,
            "v": _V,
            "agent_id": _S,
            "org": _S,
            "line": _S,
            "tenant_name": _S,
            "timezone": _S,
            "verify_base_url": _S,
            "work_orders": {
                "type": "array",
                "items": _obj(
                    ["number", "sku", "product_name", "category", "type", "quantity", "status"],
                    {
                        "number": _S,
                        "sku": _S,
                        "product_name": _S,
                        "category": _S,
                        "type": _S,
                        "quantity": _INT,
                        "status": _S,
                        "gtin": _NSTR,
                        "label_template": _S,
                        "allowed": _INT,
                        "consumed_elsewhere": _INT,
                    },
                ),
            },
            "flags": {"type": "object", "additionalProperties": _S},
            "label_templates": {"type": "object", "additionalProperties": _ANY_OBJ},
        },
    ),
    "Verification": _obj(
        ["ok", "serial", "verdict", "message"],
        {
            "ok": _TRUE,
            "serial": _S,
            "verdict": {
                "enum": [
                    "genuine",
                    "pending",
                    "unknown",
                    "malformed",
                    "voided",
                    "recalled",
                    "under_review",
                ]
            },
            "message": _S,
            "reason": _S,
            "gs1": _S,
            "manufacturer": _S,
            "brand": _S,
            "warning": _obj(["code", "message"], {"code": _S, "message": _S}),
            "details": _ANY_OBJ,
        },
    ),
    "SerialView": {
        "allOf": [
            _ref("Verification"),
            _obj(
                ["clone_signals"],
                {
                    "clone_signals": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "scans of this serial by another line than its own",
                    }
                },
            ),
        ]
    },
    "Reason": _obj([], {"reason": {"type": ["string", "null"], "maxLength": 500}}),
    "AgentRevoked": _obj(["ok", "agent_id"], {"ok": _TRUE, "agent_id": _S, "line": _S}),
    "AgentReinstated": _obj(
        ["ok", "agent_id", "status"], {"ok": _TRUE, "agent_id": _S, "status": {"const": "active"}}
    ),
    "Decision": _obj(
        ["ok", "serial", "decision", "entries", "events_applied", "events_superseded", "state"],
        {
            "ok": _TRUE,
            "serial": _S,
            "decision": _S,
            "entries": {"type": "array"},
            "events_applied": _INT,
            "events_superseded": _INT,
            "state": _NSTR,
        },
    ),
    "QuarantineList": _obj(
        ["ok", "entries"], {"ok": _TRUE, "entries": {"type": "array", "items": _ANY_OBJ}}
    ),
    "RecallRequest": _obj(
        [],
        {
            "serial": {"type": "string", "maxLength": 64},
            "org": {"type": "string", "maxLength": 6},
            "work_order": {"type": "string", "maxLength": 64},
            "reason": {"type": "string", "maxLength": 500},
        },
    ),
    "Jobs": _obj(
        ["ok", "scheduler", "jobs"],
        {"ok": _TRUE, "scheduler": _ANY_OBJ, "jobs": {"type": "array", "items": _ANY_OBJ}},
    ),
    "JobRuns": _obj(["ok", "runs"], {"ok": _TRUE, "runs": {"type": "array", "items": _ANY_OBJ}}),
    "Health": _obj(["ok", "time", "database"], {"ok": _TRUE, "time": _TS, "database": _S}),
    # issue #9, ERP: the reference's /erp/status answer, plus the newest sync in full
    "ErpStatus": _obj(
        [
            "ok",
            "org",
            "last_sync",
            "status",
            "synced_records",
            "failed_records",
            "next_scheduled_sync",
        ],
        {
            "ok": _TRUE,
            "org": _S,
            "configured": _BOOL,
            "erp_url": _NSTR,
            "interval_s": _NINT,
            "last_sync": {"type": ["string", "null"], "description": "UTC time, RFC 3339"},
            "status": {"enum": ["never", "queued", "running", "success", "partial", "failed"]},
            "synced_records": _INT,
            "failed_records": _INT,
            "next_scheduled_sync": {"type": ["string", "null"], "description": "null: no schedule"},
            "sync": {"type": ["object", "null"]},
            "history": {"type": "array", "items": _ANY_OBJ},
        },
    ),
    "ErpSyncQueued": _obj(
        ["ok", "org", "sync_id", "queued", "status"],
        {"ok": _TRUE, "org": _S, "sync_id": _INT, "queued": _BOOL, "status": {"const": "queued"}},
    ),
    "ErpSyncReport": _obj(
        ["ok", "status", "received", "created", "updated", "unchanged", "failed", "errors"],
        {
            "ok": _TRUE,
            "sync_id": _NINT,
            "status": {"enum": ["success", "partial", "failed"]},
            "dry_run": _BOOL,
            "received": _INT,
            "created": _INT,
            "updated": _INT,
            "unchanged": _INT,
            "synced": _INT,
            "failed": _INT,
            "conflicts": _INT,
            "reason": _NSTR,
            "errors": {
                "type": "array",
                "description": "per-record errors and conflicts (the first 1,000)",
                "items": _ANY_OBJ,
            },
            "errors_total": _INT,
        },
    ),
    **_WORK_ORDER_SCHEMAS,
}


# issue #9: a tenant's generation configuration (central/genconfig.py)
_LEVEL: Schema = _obj(
    ["enabled", "multiplier"],
    {"enabled": _BOOL, "multiplier": {"type": "integer", "minimum": 1, "maximum": 10_000_000}},
    closed=True,
)
_PCT: Schema = {"type": "number", "minimum": 0, "maximum": 100}
_CONFIG_FIELDS: Schema = {
    "serial_sources": {
        "type": "array",
        "maxItems": 16,
        "items": _obj(
            ["name", "kind"],
            {
                "name": {"type": "string", "maxLength": 64},
                "kind": {"enum": ["standard", "sgtin-seq", "sgtin-random"]},
                "enabled": _BOOL,
            },
            closed=True,
        ),
    },
    "sscc_sources": {
        "type": "array",
        "maxItems": 16,
        "items": _obj(
            ["name", "company_prefix", "extension_digit"],
            {
                "name": {"type": "string", "maxLength": 64},
                "company_prefix": {"type": "string", "pattern": "^[0-9]{6,12}$"},
                "extension_digit": {"type": "integer", "minimum": 0, "maximum": 9},
                "enabled": _BOOL,
            },
            closed=True,
        ),
    },
    "manufacturing_percentage": _PCT,
    "discrepancy_tolerance": _PCT,
    "aggregation_rules": _obj(
        ["l1"], {"l1": _LEVEL, "l2": _LEVEL, "l3": _LEVEL, "l4": _LEVEL}, closed=True
    ),
    "erp_url": {"type": ["string", "null"], "maxLength": 500},
    "erp_interval_s": {"type": ["integer", "null"], "minimum": 60, "maximum": 604_800},
}
_CONFIG_SHOWN: Schema = {
    "org": _S,
    "erp_token_set": _BOOL,
    "is_default": _BOOL,
    "updated_at": {"type": ["string", "null"]},
    "updated_by": _NSTR,
}
_CONFIG_INPUT: Schema = {
    **_CONFIG_FIELDS,
    "erp_token": {
        "type": ["string", "null"],
        "maxLength": 500,
        "description": "a secret: stored, never returned (absent: keep; null: clear)",
    },
    **{k: {"description": "read-only: accepted and ignored"} for k in _CONFIG_SHOWN},
}
_REQUIRED_CONFIG = [
    "serial_sources",
    "sscc_sources",
    "manufacturing_percentage",
    "discrepancy_tolerance",
    "aggregation_rules",
    "erp_url",
    "erp_interval_s",
]
SCHEMAS.update(
    {
        "GenerationConfigInput": _obj(_REQUIRED_CONFIG, _CONFIG_INPUT, closed=True),
        "GenerationConfigPatch": _obj([], _CONFIG_INPUT, closed=True),
        "GenerationConfig": _obj(
            [*_REQUIRED_CONFIG, *_CONFIG_SHOWN], {**_CONFIG_FIELDS, **_CONFIG_SHOWN}
        ),
        "GenerationConfigShown": _obj(
            ["ok", "config"], {"ok": _TRUE, "config": _ref("GenerationConfig")}
        ),
        "GenerationConfigSaved": _obj(
            ["ok", "dry_run", "changed", "config"],
            {
                "ok": _TRUE,
                "dry_run": _BOOL,
                "changed": {"type": "array", "items": _S},
                "config": _ref("GenerationConfig"),
            },
        ),
        "GenerationConfigHistory": _obj(
            ["ok", "history"],
            {
                "ok": _TRUE,
                "history": {
                    "type": "array",
                    "items": _obj(
                        ["id", "at", "actor", "status", "changed"],
                        {
                            "id": _INT,
                            "at": _TS,
                            "actor": _S,
                            "status": _S,
                            "changed": {"type": "array", "items": _S},
                            "before": _ANY_OBJ,
                            "after": _ANY_OBJ,
                        },
                    ),
                },
            },
        ),
    }
)


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Schema]:
    return {str(s): {"$ref": f"#/components/responses/E{s}"} for s in statuses}


def _body(name: str) -> Schema:
    return {"required": True, "content": {"application/json": {"schema": _ref(name)}}}


def _path_param(name: str, description: str, pattern: str | None = None) -> Schema:
    schema: Schema = {"type": "string"}
    if pattern:
        schema["pattern"] = pattern
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema,
    }


def _query(name: str, schema: Schema, description: str) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _op(
    op_id: str,
    summary: str,
    ok: dict[str, Schema],
    errors: tuple[int, ...],
    tags: list[str],
    *,
    body: str | None = None,
    params: list[Schema] | None = None,
    security: list[dict[str, list[str]]] | None = None,
) -> Schema:
    if security is None and tags == ["admin"]:
        security = _ADMIN
    out: Schema = {
        "operationId": op_id,
        "summary": summary,
        "tags": tags,
        "responses": {**ok, **_errors(*errors)},
    }
    if body is not None:
        out["requestBody"] = _body(body)
    if params:
        out["parameters"] = params
    if security is not None:
        out["security"] = security
    return out


# Error answers each kind of route gives besides its own (400: also a NUL in the address,
# which every route but public verification refuses).
_EDGE_GET = (400, 401, 403, 503)
_EDGE_POST = (400, 401, 403, 404, 409, 413, 415, 503)
_ADMIN_GET = (400, 401, 404, 503)
_ADMIN_POST = (400, 401, 404, 409, 413, 415, 503)
_NONE: list[dict[str, list[str]]] = []
_AGENT = [{"agentToken": []}]
_ADMIN = [{"adminToken": []}]
_ID_PATTERN = "^[0-9]{1,9}$"


def _paths() -> dict[str, Schema]:
    edge, admin, public = ["edge"], ["admin"], ["public"]
    entry = _path_param("entry", "a quarantine entry's id", None)
    agent = _path_param("agent_id", "the agent's id")
    org = {**_query("org", _S, "the tenant's org code"), "required": True}
    dry_run = _query("dry_run", {"enum": ["0", "1", "true", "false"]}, "1: check, write nothing")
    return {
        "/api/edge/v1/enroll": {
            "post": _op(
                "enroll",
                "Trade a one-time enrollment code for an agent id and bearer token",
                {"201": _json(_ref("EnrollResponse"), "enrolled")},
                (400, 401, 409, 413, 415, 429, 503),
                edge,
                body="EnrollRequest",
                security=_NONE,
            )
        },
        "/api/edge/v1/ping": {
            "get": _op(
                "ping",
                "Answer with central's clock",
                {"200": _json(_ref("Ping"), "central's time")},
                _EDGE_GET,
                edge,
            )
        },
        "/api/edge/v1/leases": {
            "post": _op(
                "grantLease",
                "Grant fresh numbers of a scope; a partial grant says `fulfilled: false`",
                {"200": _json(_ref("LeaseResponse"), "the grant")},
                _EDGE_POST,
                edge,
                body="LeaseRequest",
            )
        },
        "/api/edge/v1/leases/{lease_id}/return": {
            "post": _op(
                "returnLease",
                "Close a lease at its high-water mark; the unused tail is voided for good",
                {"200": _json(_ref("LeaseReturned"), "closed")},
                _EDGE_POST,
                edge,
                body="LeaseReturn",
                params=[_path_param("lease_id", "the lease's id")],
            )
        },
        "/api/edge/v1/events": {
            "post": _op(
                "ingestEvents",
                "Ingest a batch of events; one result per event, in order",
                {"200": _json(_ref("EventResults"), "one result per event")},
                _EDGE_POST,
                edge,
                body="EventBatch",
            )
        },
        "/api/edge/v1/reconcile": {
            "post": _op(
                "reconcile",
                "Compare the agent's account of its leases with the registry's",
                {"200": _json(_ref("ReconcileResponse"), "per lease: what central is missing")},
                _EDGE_POST,
                edge,
                body="ReconcileRequest",
            )
        },
        "/api/edge/v1/config": {
            "get": _op(
                "agentConfig",
                "Return the line's open work orders, the tenant's flags and label templates",
                {"200": _json(_ref("AgentConfig"), "the line's configuration")},
                _EDGE_GET,
                edge,
            )
        },
        "/api/public/serial/verify/{code}": {
            "get": _op(
                "verify",
                "Is this product genuine? (no authentication, CORS open, rate-limited)",
                {"200": _json(_ref("Verification"), "the verdict")},
                (404, 429, 503),
                public,
                params=[
                    _path_param(
                        "code", "a serial as printed or typed, or an SSCC ((00) and 18 digits)"
                    )
                ],
                security=_NONE,
            )
        },
        "/healthz": {
            "get": _op(
                "health",
                "Answer 200 when the database answers",
                {"200": _json(_ref("Health"), "healthy")},
                (400, 503),
                ["ops"],
                security=_NONE,
            )
        },
        "/api/admin/v1/serials/{code}": {
            "get": _op(
                "adminSerial",
                "Everything about a serial: the internal verify view and its clone signals",
                {"200": _json(_ref("SerialView"), "the serial")},
                _ADMIN_GET,
                admin,
                params=[_path_param("code", "a serial")],
            )
        },
        "/api/admin/v1/label-preview": {
            "get": _op(
                "labelPreview",
                "Render the next label of a work order with a sample serial",
                {
                    "200": {
                        "description": "the label",
                        "content": {
                            "image/png": {"schema": {"type": "string", "format": "binary"}},
                            "application/pdf": {"schema": {"type": "string", "format": "binary"}},
                            "text/plain": {"schema": _S},
                        },
                    }
                },
                _ADMIN_GET,
                admin,
                params=[
                    _query("org", _S, "the tenant's org code"),
                    _query("work_order", _S, "the work order's number"),
                    _query("format", {"enum": ["png", "pdf", "zpl"]}, "png (default), pdf, zpl"),
                ],
            )
        },
        "/api/admin/v1/agents/{agent_id}/revoke": {
            "post": _op(
                "revokeAgent",
                "Revoke an agent: its calls are refused and its leases closed",
                {"200": _json(_ref("AgentRevoked"), "revoked")},
                _ADMIN_POST,
                admin,
                body="Reason",
                params=[agent],
            )
        },
        "/api/admin/v1/agents/{agent_id}/reinstate": {
            "post": _op(
                "reinstateAgent",
                "Let a revoked agent call again",
                {"200": _json(_ref("AgentReinstated"), "reinstated")},
                _ADMIN_POST,
                admin,
                body="Reason",
                params=[agent],
            )
        },
        "/api/admin/v1/quarantine": {
            "get": _op(
                "listQuarantine",
                "Quarantine entries, newest first",
                {"200": _json(_ref("QuarantineList"), "entries")},
                _ADMIN_GET,
                admin,
                params=[
                    _query("org", _S, "tenant"),
                    _query("reason", _S, "an ERR_ code"),
                    _query("status", {"enum": ["open", "resolved", "all"]}, "default open"),
                    _query("serial", _S, "one serial"),
                    _query("limit", {"type": "string", "pattern": "^[0-9]{1,4}$"}, "page size"),
                    _query("before", {"type": "string", "pattern": _ID_PATTERN}, "page before"),
                ],
            )
        },
        "/api/admin/v1/quarantine/{entry}": {
            "get": _op(
                "showQuarantine",
                "One entry with its held event, registry row and other entries",
                {"200": _json(_ANY_OBJ, "the entry")},
                _ADMIN_GET,
                admin,
                params=[entry],
            )
        },
        "/api/admin/v1/quarantine/{entry}/release": {
            "post": _op(
                "releaseQuarantine",
                "Release a held serial and apply its held events",
                {"200": _json(_ref("Decision"), "released")},
                _ADMIN_POST,
                admin,
                body="Reason",
                params=[entry],
            )
        },
        "/api/admin/v1/quarantine/{entry}/confirm": {
            "post": _op(
                "confirmQuarantine",
                "Confirm a held serial is not to be trusted: retire it",
                {"200": _json(_ref("Decision"), "retired")},
                _ADMIN_POST,
                admin,
                body="Reason",
                params=[entry],
            )
        },
        "/api/admin/v1/recalls": {
            "post": _op(
                "recall",
                "Recall a serial or a work order",
                {
                    "200": _json(_ANY_OBJ, "already recalled: nothing changed"),
                    "201": _json(_ANY_OBJ, "recalled"),
                },
                _ADMIN_POST,
                admin,
                body="RecallRequest",
            )
        },
        "/api/admin/v1/reports/reconcile": {
            "get": _op(
                "reconcileReport",
                "The reconciliation report of a work order (`org`, `work_order`) or a `lease`",
                {
                    "200": {
                        "description": "the report",
                        "content": {
                            "application/json": {"schema": _ANY_OBJ},
                            "text/csv": {"schema": _S},
                        },
                    }
                },
                _ADMIN_GET,
                admin,
                params=[
                    _query("org", _S, "tenant"),
                    _query("work_order", _S, "work order number"),
                    _query("lease", _S, "a lease id instead"),
                    _query("format", {"enum": ["json", "csv"]}, "json (default) or csv"),
                ],
            )
        },
        "/api/admin/v1/config": {
            "get": _op(
                "generationConfig",
                "A tenant's generation configuration (the defaults, `is_default`, if never set)",
                {"200": _json(_ref("GenerationConfigShown"), "the configuration")},
                _ADMIN_GET,
                admin,
                params=[org],
            ),
            "put": _op(
                "replaceGenerationConfig",
                "Replace a tenant's generation configuration (a GET answer is taken as is); 400 "
                "ERR_VALIDATION with details",
                {"200": _json(_ref("GenerationConfigSaved"), "saved (or checked: dry_run)")},
                _ADMIN_POST,
                admin,
                body="GenerationConfigInput",
                params=[org, dry_run],
            ),
            "patch": _op(
                "patchGenerationConfig",
                "Change the top-level fields sent (a GET answer is taken as is); 400 "
                "ERR_VALIDATION with details",
                {"200": _json(_ref("GenerationConfigSaved"), "saved (or checked: dry_run)")},
                _ADMIN_POST,
                admin,
                body="GenerationConfigPatch",
                params=[org, dry_run],
            ),
        },
        "/api/admin/v1/config/history": {
            "get": _op(
                "generationConfigHistory",
                "A tenant's configuration changes, newest first",
                {"200": _json(_ref("GenerationConfigHistory"), "the changes")},
                _ADMIN_GET,
                admin,
                params=[
                    org,
                    _query("limit", {"type": "string", "pattern": "^[0-9]{1,3}$"}, "1..500"),
                ],
            )
        },
        **_work_order_paths(admin),
        "/api/admin/v1/jobs": {
            "get": _op(
                "jobs",
                "Each job's last run, last success and last error",
                {"200": _json(_ref("Jobs"), "job status")},
                _ADMIN_GET,
                admin,
            )
        },
        "/api/admin/v1/jobs/runs": {
            "get": _op(
                "jobRuns",
                "Recorded job runs, newest first",
                {"200": _json(_ref("JobRuns"), "runs")},
                _ADMIN_GET,
                admin,
                params=[
                    _query("job", _S, "a job's name"),
                    _query("limit", {"type": "string", "pattern": "^[0-9]{1,4}$"}, "1..1000"),
                ],
            )
        },
        # helper erp
        "/api/admin/v1/erp/status": {
            "get": _op(
                "erpStatus",
                "The ERP sync: last sync, status, synced and failed records, next pull",
                {"200": _json(_ref("ErpStatus"), "status")},
                _ADMIN_GET,
                admin,
                params=[
                    _query("org", _S, "the tenant's org code"),
                    _query("history", {"type": "string", "pattern": "^[0-9]{1,3}$"}, "0..100"),
                ],
            )
        },
        "/api/admin/v1/erp/sync": {
            "post": _op(
                "erpSync",
                "Queue a pull of the tenant's ERP for the jobs process (no body)",
                {"202": _json(_ref("ErpSyncQueued"), "queued, or already queued or running")},
                _ADMIN_POST,
                admin,
                params=[_query("org", _S, "the tenant's org code")],
            )
        },
        "/api/admin/v1/erp/import": {
            "post": {
                **_op(
                    "erpImport",
                    "Sync an uploaded ERP export now (JSON records or CSV with a header)",
                    {"200": _json(_ref("ErpSyncReport"), "what the import did, record by record")},
                    _ADMIN_POST,
                    admin,
                    params=[
                        _query("org", _S, "the tenant's org code"),
                        _query(
                            "dry_run",
                            {"enum": ["1", "0", "true", "false", "yes", "no"]},
                            "validate only (any case; another value or an unknown "
                            "parameter: 400 ERR_INVALID)",
                        ),
                        _query("name", _S, "a file name to record as the source"),
                    ],
                ),
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"type": ["array", "object"], "description": "records"}
                        },
                        "text/csv": {"schema": _S},
                    },
                },
            }
        },
    }


def _work_order_paths(admin: list[str]) -> dict[str, Schema]:
    number = _path_param("number", "the work order's number")
    org = {**_query("org", _S, "the tenant's org code"), "required": True}
    list_params = [
        org,
        _query("status", {"enum": ["open", "closed"]}, "open or closed"),
        _query("source", {"enum": ["erp", "manual"]}, "erp or manual"),
        _query("serial_status", _GEN_STATUS, "serial generation status"),
        _query("sscc_status", _GEN_STATUS, "SSCC generation status"),
        _query("sku", _S, "the product's SKU"),
        _query("search", _S, "text in the number or the name (case-insensitive)"),
        _query("from", {"type": "string", "format": "date"}, "created on or after (plant date)"),
        _query("to", {"type": "string", "format": "date"}, "created on or before (plant date)"),
        _query(
            "sort",
            _S,
            "created_at, number or quantity; prefix - for descending (default -created_at); "
            "ties break on the id",
        ),
        _query("page_size", {"type": "string", "pattern": "^[0-9]{1,3}$"}, "1..500 (50)"),
    ]
    paging = [
        _query("page", {"type": "string", "pattern": "^[0-9]{1,5}$"}, "a page number"),
        _query("cursor", _S, "from `next` / `previous`: pages never skip or repeat"),
    ]
    return {
        "/api/admin/v1/work-orders": {
            "get": _op(
                "listWorkOrders",
                "A tenant's work orders, filtered, sorted and paged",
                {"200": _json(_ref("WorkOrderList"), "one page")},
                _ADMIN_GET,
                admin,
                params=list_params + paging,
            )
        },
        "/api/admin/v1/work-orders.csv": {
            "get": _op(
                "exportWorkOrders",
                "Every work order that matches, as CSV (streamed)",
                {"200": {"description": "CSV", "content": {"text/csv": {"schema": _S}}}},
                _ADMIN_GET,
                admin,
                params=list_params,
            )
        },
        "/api/admin/v1/work-orders/{number}": {
            "get": _op(
                "showWorkOrder",
                "One work order with its history, newest first",
                {"200": _json(_ref("WorkOrderDetail"), "the work order")},
                _ADMIN_GET,
                admin,
                params=[number, org],
            ),
            "patch": _op(
                "updateWorkOrder",
                "Change a work order; on an `erp` order the fields join `manual_fields`",
                {"200": _json(_ref("WorkOrderUpdated"), "changed")},
                _ADMIN_POST,
                admin,
                body="WorkOrderUpdate",
                params=[number, org],
            ),
        },
        "/api/admin/v1/work-orders/{number}/close": {
            "post": _op(
                "closeWorkOrder",
                "Close a work order: lines stop getting it, no lease is sized for it again",
                {"200": _json(_ref("WorkOrderClosed"), "closed")},
                _ADMIN_POST,
                admin,
                body="WorkOrderClose",
                params=[number, org],
            )
        },
    }


# issue #9: work-order generation tasks, central.api_generate
SCHEMAS.update(
    {
        "GenerateRequest": _obj(
            ["quantity"],
            {
                "quantity": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 10_000_000,
                    "description": "how many the work order should have (SSCCs: at most "
                    "1,000,000); with force_regenerate, how many more to make",
                },
                "force_regenerate": _BOOL,
                "override_config": _BOOL,
                "org": {"type": "string", "description": "the tenant, if the number is shared"},
            },
            closed=True,
        ),
        "GenerationTask": _obj(
            ["task_id", "kind", "status", "requested", "done", "progress"],
            {
                "task_id": _S,
                "org": _S,
                "work_order": _S,
                "kind": {"enum": ["serials", "sscc"]},
                "status": {"enum": ["queued", "running", "completed", "failed", "cancelled"]},
                "requested": _INT,
                "done": _INT,
                "progress": {"type": "number", "minimum": 0, "maximum": 1},
                "force_regenerate": _BOOL,
                "target": _NINT,
                "error": _NSTR,
                "estimated_completion": _NSTR,
            },
        ),
        "GenerateAnswer": _obj(
            ["ok", "task_id", "status", "estimated_completion", "message", "created"],
            {
                "ok": _TRUE,
                "task_id": _NSTR,
                "status": {"enum": ["initiated", "queued", "running", "completed"]},
                "estimated_completion": _NSTR,
                "message": _S,
                "created": _BOOL,
                "task": _ref("GenerationTask"),
            },
        ),
        "SsccList": _obj(
            ["ok", "work_order", "ssccs", "count"],
            {
                "ok": _TRUE,
                "work_order": _S,
                "ssccs": {"type": "array", "items": {"type": "string", "pattern": "^[0-9]{18}$"}},
                "levels": {
                    "type": "array",
                    "description": "the packaging level of each SSCC, in the same order: "
                    "l2 (case), l3/l4 (pallet) or null (a spare beyond the order's needs)",
                    "items": {"enum": ["l2", "l3", "l4", None]},
                },
                "count": _INT,
            },
        ),
    }
)


def _generation_paths() -> dict[str, Schema]:
    admin = ["admin"]
    number = _path_param("number", "the work order's number")
    task = _path_param("task_id", "a generation task's id")
    org = _query("org", _S, "the tenant, if several have this work order number")
    started = {
        "202": _json(_ref("GenerateAnswer"), "a task was queued (status initiated)"),
        "200": _json(
            _ref("GenerateAnswer"),
            "nothing new started: a task of this kind with the same target is queued or "
            "running (its id), or the work order has the quantity already (task_id null)",
        ),
    }
    return {
        "/api/admin/v1/work-orders/{number}/generate-sscc": {
            "post": _op(
                "generateSscc",
                "Make the SSCCs a work order should have, as a jobs-process task; 409 "
                "ERR_TASK_ACTIVE while one with another target is queued or running",
                started,
                _ADMIN_POST,
                admin,
                body="GenerateRequest",
                params=[number, org],
            )
        },
        "/api/admin/v1/work-orders/{number}/generate-serials": {
            "post": _op(
                "generateSerials",
                "Make the randomised serials (sgtin-random) a work order should have; 400 "
                "ERR_OVER_ALLOWANCE above quantity x (1 + overage %), 409 ERR_TASK_ACTIVE "
                "while one with another target is queued or running",
                started,
                _ADMIN_POST,
                admin,
                body="GenerateRequest",
                params=[number, org],
            )
        },
        "/api/admin/v1/work-orders/{number}/ssccs": {
            "get": _op(
                "workOrderSsccs",
                "A work order's SSCCs in order",
                {"200": _json(_ref("SsccList"), "SSCCs")},
                _ADMIN_GET,
                admin,
                params=[
                    number,
                    org,
                    _query("limit", {"type": "string", "pattern": "^[0-9]{1,5}$"}, "1..10000"),
                    _query("after", {"type": "string", "pattern": "^[0-9]{18}$"}, "page after"),
                ],
            )
        },
        "/api/admin/v1/tasks/{task_id}": {
            "get": _op(
                "generationTask",
                "A generation task: status, progress (done/requested) and ETA",
                {"200": _json(_ref("GenerationTask"), "the task")},
                _ADMIN_GET,
                admin,
                params=[task],
            )
        },
        "/api/admin/v1/tasks/{task_id}/cancel": {
            "post": _op(
                "cancelGenerationTask",
                "Cancel a task: a queued one at once, a running one after its current chunk",
                {"200": _json(_ref("GenerationTask"), "cancelled, or stopping")},
                _ADMIN_POST,
                admin,
                params=[task],
            )
        },
    }


def document() -> Schema:
    """Return the OpenAPI 3.1 document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "LineLedger central",
            "version": "1",
            "description": "The edge sync API, public verification and the admin API. Every "
            'error has one shape: `{"ok": false, "error": {"code", "message"}}`. '
            "Request bodies are `application/json` only.",
        },
        "security": _AGENT,
        "tags": [
            {"name": "edge", "description": "edge agents (agent bearer token)"},
            {"name": "public", "description": "customers (no authentication)"},
            {"name": "admin", "description": "admins and scripts (admin bearer token)"},
            {"name": "ops", "description": "load balancers"},
        ],
        "paths": {**_paths(), **_generation_paths()},
        "components": {
            "schemas": SCHEMAS,
            "responses": {
                f"E{s}": _json(_ref("Error"), text) for s, text in sorted(_REASONS.items())
            },
            "securitySchemes": {
                "agentToken": {"type": "http", "scheme": "bearer", "description": "agent token"},
                "adminToken": {"type": "http", "scheme": "bearer", "description": "admin token"},
            },
        },
    }


@bp.get("/api/openapi.json")
def openapi_json() -> Schema:
    """Serve the OpenAPI description."""
    return document()
