"""Does `LINELEDGER_PUBLIC_BASE_URL` (what the labels' QR codes point to) reach this server?

Without a reverse proxy in front (`LINELEDGER_TRUSTED_PROXIES` = 0) customers' phones reach
`serve` itself, so the base URL must name its port, and an address phones can reach. `serve`
says so at start; the app notes once the first request that arrived under another host.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from urllib.parse import urlsplit

from flask import Flask, request

from central.config import CentralConfig

log = logging.getLogger("lineledger.central")

_DEFAULT_PORTS = {"http": 80, "https": 443}
_ALL_INTERFACES = ("", "0.0.0.0", "::", "*")


def _host_port(url: str) -> tuple[str, str, int | None]:
    """Return (scheme, host, port) of a URL; the port is the scheme's default when absent."""
    parts = urlsplit(url.strip())
    try:
        port = parts.port
    except ValueError:
        port = None
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def base_url_mismatch(config: CentralConfig, host: str, port: int) -> str | None:
    """Return why the public base URL cannot be how `serve` on host:port is reached, if so."""
    if config.trusted_proxies:
        return None  # the base URL names the proxy, which forwards to us
    scheme, url_host, url_port = _host_port(config.public_base_url)
    bind = host.strip("[]").lower()
    problems = []
    if scheme != "http":
        problems.append(f"serve speaks http, not {scheme or 'this scheme'}")
    if url_port != port:
        problems.append(f"port {url_port} is not the port serve listens on ({port})")
    if bind not in _ALL_INTERFACES:
        if _is_loopback(bind) and not _is_loopback(url_host):
            problems.append(f"serve listens on {bind} only, which no phone can reach")
        elif (
            _is_ip(url_host)
            and _is_ip(bind)
            and ipaddress.ip_address(url_host) != (ipaddress.ip_address(bind))
        ):
            problems.append(f"host {url_host} is not the address serve listens on ({bind})")
    if not problems:
        return None
    return (
        f"warning: LINELEDGER_PUBLIC_BASE_URL={config.public_base_url} does not match how serve "
        f"is reached ({'; '.join(problems)}) and no proxy is configured "
        "(LINELEDGER_TRUSTED_PROXIES=0): labels' QR codes would point elsewhere"
    )


_PUBLIC_PATHS = ("/v/", "/01/", "/api/public/")  # what customers' phones and shops reach


def watch_request_hosts(app: Flask, config: CentralConfig) -> None:
    """Log once when a customer's request arrives under a Host the public base URL lacks.

    Only public verify requests count: line PCs may well reach central by another name.
    """
    if config.trusted_proxies:
        return
    _, url_host, url_port = _host_port(config.public_base_url)
    warned = threading.Event()

    @app.before_request
    def note_host() -> None:
        if warned.is_set() or not request.path.startswith(_PUBLIC_PATHS):
            return
        _, got_host, got_port = _host_port(f"{request.scheme}://{request.host}")
        if (got_host, got_port) != (url_host, url_port) and not warned.is_set():
            warned.set()
            log.warning(
                "a customer reached central as %s://%s but LINELEDGER_PUBLIC_BASE_URL is %s, "
                "where labels' QR codes point; set it to the address customers reach "
                "(noted once)",
                request.scheme,
                request.host,
                config.public_base_url,
            )
