"""What central asks of the web server in front of it: proxy headers, limits, security headers.

`lineledger-central serve` runs waitress, which reads X-Forwarded-* itself (from the trusted
proxy's address only) and refuses bodies over the app's limit before reading them. Under
gunicorn (deploy/gunicorn.conf.py) the app reads the proxy headers itself, again only from
the trusted proxy's address.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask import Flask
from flask_talisman import Talisman
from werkzeug.middleware.proxy_fix import ProxyFix

from central.config import CentralConfig

PROXY_HEADERS = ("x-forwarded-for", "x-forwarded-proto", "x-forwarded-host")
_ENVIRON_PROXY_KEYS = (
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT",
    "HTTP_X_FORWARDED_PREFIX",
    "HTTP_FORWARDED",
)

# Pages load nothing from elsewhere; scripts and stylesheets only from central's own /static/
# (no inline script at all); an inline <style> must carry the answer's nonce.
CONTENT_SECURITY_POLICY = {
    "default-src": "'none'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "form-action": "'self'",
    "base-uri": "'none'",
    "frame-ancestors": "'none'",
}


def waitress_settings(config: CentralConfig) -> dict[str, Any]:
    """Return the waitress adjustments for `config` (limits, and the trusted proxy if any)."""
    settings: dict[str, Any] = {
        "max_request_body_size": config.max_body_bytes,
        "connection_limit": config.connection_limit,
        "channel_timeout": config.channel_timeout,
        "cleanup_interval": config.cleanup_interval,
        "clear_untrusted_proxy_headers": True,
    }
    if config.trusted_proxies:
        settings.update(
            trusted_proxy=config.trusted_proxy_address,
            trusted_proxy_count=config.trusted_proxies,
            trusted_proxy_headers=set(PROXY_HEADERS),
        )
    return settings


class TrustedProxyFix:
    """ProxyFix for requests from the trusted proxy's address; other clients' headers dropped.

    ProxyFix alone believes X-Forwarded-For from whoever connects, so a client that reaches
    gunicorn directly could pick its own rate-limit bucket.
    """

    def __init__(self, app: Any, count: int, address: str) -> None:
        self.app = app
        self.address = address
        self.fixed = ProxyFix(app, x_for=count, x_proto=count, x_host=count)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if self.address == "*" or environ.get("REMOTE_ADDR") == self.address:
            result: Iterable[bytes] = self.fixed(environ, start_response)
            return result
        for key in _ENVIRON_PROXY_KEYS:
            environ.pop(key, None)
        result = self.app(environ, start_response)
        return result


def apply_proxy_headers(app: Flask, config: CentralConfig) -> None:
    """Make the app read the client's address from the trusted proxy's headers."""
    if config.trusted_proxies:
        app.wsgi_app = TrustedProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, config.trusted_proxies, config.trusted_proxy_address
        )


def apply_security_headers(app: Flask) -> None:
    """Send CSP, frame-ancestors/X-Frame-Options, nosniff and Referrer-Policy on every answer.

    HTTPS is the reverse proxy's job (deploy/nginx.conf.example): the app never redirects to
    it; HSTS is sent on requests that arrived over HTTPS (X-Forwarded-Proto from the proxy).
    """
    Talisman(
        app,
        force_https=False,
        session_cookie_secure=True,
        frame_options="DENY",
        content_security_policy=CONTENT_SECURITY_POLICY,
        content_security_policy_nonce_in=["style-src"],
        referrer_policy="no-referrer",
        x_content_type_options=True,
    )
