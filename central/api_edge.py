"""The edge sync API under `/api/edge/v1/`: enroll, leases, events and config."""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, g, request

from central import tables as T
from central.admin import enroll_agent, flags, label_templates
from central.api_requests import json_body
from central.auth import bearer_token, hash_secret
from central.errors import (
    ERR_AGENT_REVOKED,
    ERR_LEASE_UNKNOWN,
    ERR_UNAUTHORIZED,
    CentralError,
    NotFound,
    Unauthorized,
)
from central.ingest import ingest_batch
from central.leases import AgentRef, allowed_serials, grant_lease, return_lease
from central.reconcile import reconcile
from central.runtime import runtime
from central.timeutil import as_utc, utcnow
from protocol.events import decode_batch
from protocol.messages import (
    AgentConfig,
    EnrollRequest,
    LeaseRequest,
    LeaseReturn,
    WorkOrderInfo,
)
from protocol.reconcile import ReconcileRequest
from protocol.timefmt import format_ts

bp = Blueprint("edge", __name__, url_prefix="/api/edge/v1")

_SEEN_EVERY = dt.timedelta(seconds=60)
_LEASE_ID = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
)  # how often last_seen_at is written per agent


def _body() -> Any:
    return json_body(runtime().config.max_body_bytes)


def _agent() -> AgentRef:
    agent: AgentRef = g.agent
    return agent


@bp.after_request
def stamp_time(response: Response) -> Response:
    """Tell the agent central's clock on every answer, so it can measure its own offset."""
    response.headers["X-LineLedger-Time"] = format_ts(utcnow())
    return response


@bp.before_request
def authenticate() -> None:
    """Resolve the bearer token to an active agent (enroll needs none)."""
    if request.endpoint == "edge.enroll":
        return
    token = bearer_token(request.headers.get("Authorization", ""))
    if not token:
        raise Unauthorized(ERR_UNAUTHORIZED, "send Authorization: Bearer <agent token>")
    rt = runtime()
    with rt.store.read() as conn:
        row = conn.execute(
            sa.select(T.agents, T.tenants.c.org_code, T.tenants.c.timezone)
            .join(T.tenants, T.tenants.c.id == T.agents.c.tenant_id)
            .where(T.agents.c.token_hash == hash_secret(token))
        ).first()
    if row is None:
        raise Unauthorized(ERR_UNAUTHORIZED, "unknown agent token; enroll the agent again")
    if row.status != "active":
        raise CentralError(
            ERR_AGENT_REVOKED,
            "this line PC was revoked by central"
            + (f" ({row.revoked_reason})" if row.revoked_reason else "")
            + "; its unsynced events are kept; ask an admin to reinstate it",
            403,
        )
    g.agent = AgentRef(row.id, row.tenant_id, row.org_code, row.line, row.timezone)
    now = utcnow()
    last = as_utc(row.last_seen_at)
    if last is None or now - last > _SEEN_EVERY:
        with rt.store.write() as conn:
            conn.execute(T.agents.update().where(T.agents.c.id == row.id).values(last_seen_at=now))


@bp.post("/enroll")
def enroll() -> tuple[dict[str, Any], int]:
    """Trade a one-time enrollment code for an agent id and bearer token."""
    req = EnrollRequest.from_dict(_body())
    rt = runtime()
    resp = enroll_agent(rt.store, req.code, req.hostname, req.agent_version, utcnow())
    return resp.to_dict(), 201


@bp.get("/ping")
def ping() -> dict[str, Any]:
    """Answer an authenticated agent with the central clock (for reachability and skew)."""
    return {"ok": True, "agent_id": _agent().id, "time": format_ts(utcnow())}


@bp.post("/leases")
def leases() -> dict[str, Any]:
    """Grant a lease of fresh numbers; partial grants say `fulfilled: false`."""
    req = LeaseRequest.from_dict(_body())
    rt = runtime()
    started = time.perf_counter()
    resp = grant_lease(rt.store, rt.keyring, rt.config, _agent(), req, utcnow())
    rt.metrics.lease_seconds.observe(time.perf_counter() - started)
    rt.metrics.leases.inc(len(resp.leases))
    rt.metrics.lease_numbers.inc(resp.granted)
    return resp.to_dict()


@bp.post("/leases/<lease_id>/return")
def lease_return(lease_id: str) -> dict[str, Any]:
    """Close a lease at its high-water mark; the unused tail is voided for good."""
    req = LeaseReturn.from_dict(_body())
    if not _LEASE_ID.fullmatch(lease_id):
        raise NotFound(ERR_LEASE_UNKNOWN, f"this agent holds no lease {lease_id[:64]!r}")
    return return_lease(runtime().store, _agent(), lease_id, req.high_water, utcnow())


@bp.post("/events")
def events() -> dict[str, Any]:
    """Ingest a batch of events; answer one result per event, in order."""
    items = decode_batch(_body())
    rt = runtime()
    started = time.perf_counter()
    tolerance = dt.timedelta(seconds=rt.config.clock_tolerance_seconds)
    report = ingest_batch(rt.store, rt.keyring, _agent(), items, utcnow(), tolerance)
    rt.metrics.ingest_seconds.observe(time.perf_counter() - started)
    rt.metrics.record_ingest(report.counts, [r.code for r in report.results])
    return {"ok": True, "results": [r.to_dict() for r in report.results]}


@bp.post("/reconcile")
def reconcile_leases() -> dict[str, Any]:
    """Compare the agent's account of its leases with the registry's (see central.reconcile)."""
    req = ReconcileRequest.from_dict(_body())
    rt = runtime()
    return reconcile(rt.store, rt.keyring, _agent(), req, utcnow()).to_dict()


@bp.get("/config")
def config() -> dict[str, Any]:
    """Return the line's open work orders, the tenant's flags and label settings."""
    agent = _agent()
    rt = runtime()
    wo, p = T.work_orders, T.products
    with rt.store.read() as conn:
        tenant = conn.execute(sa.select(T.tenants).where(T.tenants.c.id == agent.tenant_id)).one()
        rows = conn.execute(
            sa.select(
                wo,
                p.c.sku,
                p.c.name.label("product_name"),
                p.c.category,
                p.c.gtin,
                p.c.label_template,
            )
            .join(p, p.c.id == wo.c.product_id)
            .where(
                wo.c.tenant_id == agent.tenant_id,
                wo.c.status == "open",
                wo.c.recalled_at.is_(None),
                sa.or_(wo.c.line.is_(None), wo.c.line == agent.line),
            )
            .order_by(wo.c.id)
        ).all()
        numbers = [r.number for r in rows]
        elsewhere: dict[str, int] = {}
        for i in range(0, len(numbers), 500):
            reg = T.registry.c
            elsewhere.update(
                conn.execute(
                    sa.select(reg.work_order, sa.func.count())
                    .where(
                        reg.tenant_id == agent.tenant_id,
                        reg.work_order.in_(numbers[i : i + 500]),
                        reg.agent_id != agent.id,
                    )
                    .group_by(reg.work_order)
                ).all()
            )
        tenant_flags = flags(conn, agent.tenant_id)
        templates = label_templates(conn, agent.tenant_id)
    cfg = AgentConfig(
        agent_id=agent.id,
        org=agent.org,
        line=agent.line,
        tenant_name=tenant.name,
        timezone=tenant.timezone,
        verify_base_url=rt.config.public_base_url.rstrip("/"),
        work_orders=tuple(
            WorkOrderInfo(
                r.number,
                r.sku,
                r.product_name,
                r.category,
                r.production_type,
                r.quantity,
                r.status,
                r.gtin,
                r.label_template,
                allowed=allowed_serials(r.quantity, r.overage_pct),
                consumed_elsewhere=elsewhere.get(r.number, 0),
            )
            for r in rows
        ),
        flags=tenant_flags,
        label_templates=templates,
    )
    return cfg.to_dict()
