"""Public verification for customers: the JSON API and a plain page for phones.

No authentication, CORS open to every origin, rate-limited per client address (the limit is
attached to this blueprint in `create_app`), and never any personal data.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from flask import Blueprint, Response, make_response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as WerkzeugResponse

from central.admin import admin_token_valid
from central.auth import bearer_token
from central.errors import NotFound
from central.runtime import runtime
from central.timeutil import utcnow
from central.verify import (
    GENUINE,
    Verification,
    looks_like_sscc,
    verify_code,
    verify_gs1,
    verify_sscc,
)

bp = Blueprint("public", __name__)


@bp.app_template_filter("month_name")
def month_name(value: str) -> str:
    """Write `2025-11` as `November 2025` (the page's script shows the reader's own format)."""
    try:
        return dt.datetime.strptime(value, "%Y-%m").strftime("%B %Y")
    except (TypeError, ValueError):
        return str(value)


@bp.app_template_filter("readable_ts")
def readable_ts(value: str) -> str:
    """Write an ISO timestamp as `1 December 2026, 14:03 UTC`."""
    try:
        when = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(dt.UTC)
    except ValueError:
        return str(value)
    return f"{when.day} {when:%B %Y, %H:%M} UTC"


MAX_CODE = 200  # anything longer is malformed; never echo more than this


def _is_admin() -> bool:
    """Tell whether the request carries a live admin token (for the internal privacy mode)."""
    token = bearer_token(request.headers.get("Authorization", ""))
    if not token:
        return False
    with runtime().store.read() as conn:
        return admin_token_valid(conn, token)


def _verify(code: str, gs1: tuple[str, str] | None = None, sscc: bool = False) -> Verification:
    rt = runtime()
    started = time.perf_counter()
    warn = rt.config.verify_warn_client_days
    sscc = sscc or (gs1 is None and looks_like_sscc(code[:MAX_CODE]))
    if sscc:
        result = verify_sscc(rt.store, code[:MAX_CODE], _is_admin())
    elif gs1 is None:
        result = verify_code(rt.store, rt.keyring, code[:MAX_CODE], _is_admin(), None, warn)
    else:
        gtin, ai21 = gs1[0][:MAX_CODE], gs1[1][:MAX_CODE]
        result = verify_gs1(rt.store, rt.keyring, gtin, ai21, _is_admin(), warn)
    rt.metrics.verify_seconds.observe(time.perf_counter() - started)
    rt.metrics.verify.labels(result.verdict).inc()
    # SSCCs are not counted per client: they are printed in clear, a count says nothing.
    if not sscc and (result.verdict == GENUINE or "verifications" in result.details):
        rt.tally.add(result.serial, utcnow(), request.remote_addr)
    return result


@bp.after_request
def cors(response: Response) -> Response:
    """Let any web page call the verify API, and keep answers out of shared caches."""
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Access-Control-Allow-Methods"] = "GET, OPTIONS"
    response.headers["Access-Control-Allow-Headers"] = "Content-Type"
    response.headers["Access-Control-Max-Age"] = "86400"
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.route("/api/public/serial/verify/<path:code>", methods=["GET", "OPTIONS"])
def verify_api(code: str) -> Any:
    """Answer `{"ok": true, "serial": ..., "verdict": ...}` for a code."""
    if request.method == "OPTIONS":
        return make_response("", 204)
    return _verify(code).to_dict()


@bp.get("/v/<path:code>")
def verify_page(code: str) -> str:
    """Show the verdict on a page a phone can read (the QR code on a label points here)."""
    result = _verify(code)
    return render_template("verify.html", result=result.to_dict())


@bp.get("/v/")
def verify_form() -> WerkzeugResponse | str:
    """Let a customer type a code."""
    code = request.args.get("code", "").strip()[:MAX_CODE]
    if code:
        return redirect(url_for("public.verify_page", code=code))
    return render_template("verify.html", result=None)


_DL_QUALIFIERS = ("22", "10", "21")  # GS1 Digital Link: qualifiers of (01), in this order


@bp.get("/01/<gtin>/<path:qualifiers>")
def digital_link(gtin: str, qualifiers: str) -> Any:
    """Resolve a GS1 Digital Link: the page for people, JSON for programs that ask for it."""
    parts = qualifiers.split("/")
    pairs = list(zip(parts[0::2], parts[1::2], strict=False))
    keys = [key for key, _ in pairs]
    if len(parts) % 2 or "21" not in keys or keys != [q for q in _DL_QUALIFIERS if q in keys]:
        raise NotFound(
            "ERR_NOT_FOUND", "a GS1 Digital Link here is /01/{gtin}[/22/..][/10/..]/21/{serial}"
        )
    result = _verify("", (gtin, dict(pairs)["21"]))
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    if request.args.get("format") == "json" or best == "application/json":
        return result.to_dict()
    return render_template("verify.html", result=result.to_dict())


@bp.get("/00/<sscc>")
def digital_link_sscc(sscc: str) -> Any:
    """Resolve a GS1 Digital Link of a case or pallet: `/00/{sscc}`."""
    result = _verify(sscc, sscc=True)
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    if request.args.get("format") == "json" or best == "application/json":
        return result.to_dict()
    return render_template("verify.html", result=result.to_dict())
