"""One JSON error shape for every failure: `{"ok": false, "error": {"code", "message"}}`."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from flask import (
    Flask,
    Response,
    current_app,
    g,
    jsonify,
    make_response,
    render_template,
    request,
)
from werkzeug.exceptions import HTTPException

from central import errors as E
from central.shedding import ERR_OVERLOADED, RETRY_AFTER_SECONDS
from protocol.errors import ProtocolError, error_body

log = logging.getLogger("lineledger.central")

_HTTP_CODES = {
    400: "ERR_BAD_REQUEST",
    401: E.ERR_UNAUTHORIZED,
    403: E.ERR_FORBIDDEN,
    404: E.ERR_NOT_FOUND,
    405: E.ERR_METHOD,
    413: E.ERR_TOO_LARGE,
    415: E.ERR_UNSUPPORTED_MEDIA_TYPE,
    429: E.ERR_RATE_LIMITED,
}
_MESSAGES = {
    404: "there is nothing at this address",
    405: "this address does not take that method",
    413: "the request body is too large",
    429: "too many requests from your address; try again later",
}
# What a customer on the verify pages reads instead of the API's message.
_PAGE_TITLES = {
    404: "There is nothing here",
    405: "This page cannot do that",
    429: "Too many checks from your network",
    503: "Please try again in a moment",
}
_PAGE_MESSAGES = {
    503: "We could not answer just now. Please try again in a few seconds.",
    429: "To keep codes private, each network can check only a limited number of codes. "
    "Please wait {wait} and try again.",
}


def _wants_page() -> bool:
    """Tell whether a person's browser asked: the verify pages, or a Digital Link opened."""
    if request.path.startswith("/v/"):
        return True
    if request.path.startswith("/01/") and request.args.get("format") != "json":
        best = request.accept_mimetypes.best_match(["text/html", "application/json"])
        return best == "text/html"
    return False


def _retry_seconds() -> int:
    """Return how many seconds until the rate limit lets this client in again (at least 1)."""
    return max(1, int(g.get("retry_after", 1)))  # set by the budget that refused it


def _retry_wait() -> str:
    """Return how long until the rate limit lets this client in again, in words."""
    seconds = _retry_seconds()
    if seconds <= 1:
        return "a while"
    minutes = round(seconds / 60)
    return "a minute" if minutes <= 1 else f"about {minutes} minutes"


def _page(code: str, message: str, status: int) -> str:
    title = _PAGE_TITLES.get(status, "Something went wrong")
    if status in _PAGE_MESSAGES:
        message = _PAGE_MESSAGES[status].format(wait=_retry_wait())
    return render_template("verify_error.html", code=code, title=title, message=message)


def _answer(
    code: str, message: str, status: int, details: dict[str, list[str]] | None = None
) -> Any:
    rt = current_app.extensions.get("lineledger")
    if rt is not None:
        rt.metrics.http_errors.labels(code).inc()
    if _wants_page():
        response: Response = make_response(_page(code, message, status), status)
    else:
        body = error_body(code, message)
        if details is not None:  # ERR_VALIDATION: every problem, by field
            body["error"]["details"] = details  # type: ignore[index]
        response = jsonify(body)
        response.status_code = status
    if code == ERR_OVERLOADED:
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    elif status == 429:
        # Only a refused request asks the budget when its window reopens: an allowed one
        # sends no X-RateLimit headers, which would cost a second round trip to its storage.
        response.headers["Retry-After"] = str(_retry_seconds())
    return response


def register(app: Flask) -> None:
    """Attach the error handlers to an app."""

    @app.errorhandler(E.CentralError)
    def central_error(exc: E.CentralError) -> Any:
        return _answer(exc.code, exc.message, exc.status, getattr(exc, "details", None))

    @app.errorhandler(ProtocolError)
    def protocol_error(exc: ProtocolError) -> Any:
        status = 413 if exc.code in ("ERR_TOO_LARGE", "ERR_BATCH_TOO_LARGE") else 400
        return _answer(exc.code, exc.message, status)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        status = exc.code or 500
        code = _HTTP_CODES.get(status, f"ERR_HTTP_{status}")
        return _answer(code, _MESSAGES.get(status, exc.description or "request failed"), status)

    @app.errorhandler(sa.exc.OperationalError)
    def database_down(exc: sa.exc.OperationalError) -> Any:
        log.warning("database unavailable: %s", exc.orig)
        response = _answer(E.ERR_DATABASE, "the registry database is unavailable; retry", 503)
        return response

    @app.errorhandler(Exception)
    def internal(exc: Exception) -> Any:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _answer(E.ERR_INTERNAL, "an internal error occurred; it has been logged", 500)
