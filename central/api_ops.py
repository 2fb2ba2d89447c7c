"""Operations endpoints: health for load balancers and `/metrics` for Prometheus."""

from __future__ import annotations

import hmac
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, request
from prometheus_client import generate_latest

from central.errors import ERR_DATABASE, ERR_FORBIDDEN, CentralError, Unavailable
from central.runtime import runtime
from central.timeutil import utcnow
from protocol.timefmt import format_ts

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def health() -> dict[str, Any]:
    """Answer 200 when the database answers, 503 otherwise."""
    rt = runtime()
    try:
        with rt.store.read() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError:
        raise Unavailable(ERR_DATABASE, "the database does not answer") from None
    return {"ok": True, "time": format_ts(utcnow()), "database": rt.store.dialect}


@bp.get("/metrics")
def scrape() -> Response:
    """Expose the metrics; loopback only unless a metrics token is configured."""
    rt = runtime()
    token = rt.config.metrics_token
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise CentralError(ERR_FORBIDDEN, "a metrics token is required", 403)
    elif request.remote_addr not in ("127.0.0.1", "::1"):
        raise CentralError(
            ERR_FORBIDDEN,
            "metrics are served to loopback clients only; set LINELEDGER_METRICS_TOKEN "
            "to scrape remotely",
            403,
        )
    return Response(
        generate_latest(rt.metrics.registry), mimetype="text/plain; version=0.0.4; charset=utf-8"
    )
