"""The HTTP client of the edge API; the session comes from outside so tests and tools can
swap it, and every failure becomes either `CentralUnreachable` or `CentralRefused`."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from edge_agent.clock import TIME_HEADER, ClockReading, ClockSources, Instant, measure
from edge_agent.errors import (
    ERR_CONFIG,
    ERR_INSECURE_CENTRAL,
    CentralRefused,
    CentralUnreachable,
    EdgeError,
)
from protocol.errors import ProtocolError
from protocol.events import Event, EventResult, decode_results, encode_batch
from protocol.messages import (
    AgentConfig,
    EnrollRequest,
    EnrollResponse,
    LeaseRequest,
    LeaseResponse,
    LeaseReturn,
)
from protocol.reconcile import ReconcileRequest, ReconcileResponse

API = "/api/edge/v1"
MAX_ANSWER = 8 * 1024 * 1024


def is_loopback(host: str) -> bool:
    """Tell whether `host` names this machine: localhost, 127.0.0.0/8 or ::1."""
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def check_central_url(url: str, insecure: bool = False) -> str:
    """Return `url` without a trailing slash, or refuse it.

    Enrollment codes, agent tokens and lease keys travel to central: over plain http they
    could be read on the plant's network, so http is refused (ERR_INSECURE_CENTRAL) unless
    central is this machine or the operator chose `--insecure` / `insecure = true`.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EdgeError(
            ERR_CONFIG, f"central URL {url[:100]!r} must be https://HOST[:PORT] (or http://)"
        )
    if parts.scheme == "http" and not insecure and not is_loopback(parts.hostname):
        raise EdgeError(
            ERR_INSECURE_CENTRAL,
            f"{url[:100]} is plain http: the agent's token and lease keys would cross the "
            "network unencrypted; use an https:// URL (with --ca-bundle FILE for the plant's "
            "own CA), or pass --insecure to enroll (insecure = true in edge.toml) to allow it",
        )
    return url.strip().rstrip("/")


def tls_verify(ca_bundle: str) -> bool | str:
    """Return what requests' `verify=` takes: the plant's CA file, or True (system CAs)."""
    if not ca_bundle:
        return True
    if not Path(ca_bundle).is_file():
        raise EdgeError(
            ERR_CONFIG, f"ca_bundle {ca_bundle} is not a readable file of PEM CA certificates"
        )
    return ca_bundle


class CentralClient:
    """Talk to one central registry as one agent.

    `on_clock` gets a clock reading from every answer that carries central's time;
    `on_answer` gets the HTTP status and error code of every answer central gave (not of
    failures to reach it), so the agent learns at any call that it was revoked or reinstated.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None,
        timeout: float,
        session: requests.Session | None = None,
        boot_id: str | None = None,
        clock: ClockSources | None = None,
        insecure: bool = False,
        ca_bundle: str = "",
    ) -> None:
        self.base_url = check_central_url(base_url, insecure)
        self.verify = tls_verify(ca_bundle)
        self.clock = clock
        self.token = token
        self.timeout = timeout
        self.session = session or requests.Session()
        self.boot_id = boot_id
        self.on_clock: Callable[[ClockReading], None] | None = None
        self.on_answer: Callable[[int, str | None, str], None] | None = None

    def close(self) -> None:
        """Release the HTTP connections."""
        self.session.close()

    def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        sent = Instant.take(self.clock)
        try:
            resp = self.session.request(
                method,
                self.base_url + API + path,
                json=body,
                headers=headers,
                timeout=timeout or self.timeout,
                verify=self.verify,
            )
        except requests.exceptions.SSLError:
            raise CentralUnreachable(
                f"{self.base_url} failed the TLS certificate check: if central's certificate "
                "comes from the plant's own CA, pass --ca-bundle FILE to enroll (ca_bundle in "
                "edge.toml)"
            ) from None
        except requests.RequestException as exc:
            raise CentralUnreachable(
                f"{self.base_url} did not answer: {type(exc).__name__}"
            ) from None
        received = Instant.take(self.clock)
        stamp = resp.headers.get(TIME_HEADER)
        if stamp is not None and self.on_clock is not None:
            reading = measure(stamp, sent, received, self.boot_id)
            if reading is not None:
                self.on_clock(reading)
        with resp:
            if resp.status_code >= 500 or resp.status_code == 429:
                raise CentralUnreachable(f"{self.base_url} answered HTTP {resp.status_code}")
            if len(resp.content) > MAX_ANSWER:
                raise CentralUnreachable(f"{self.base_url} sent an oversized answer")
            try:
                data = resp.json()
            except (ValueError, RecursionError):  # not JSON, or nested beyond reason
                raise CentralUnreachable(
                    f"{self.base_url} answered with no JSON "
                    f"(HTTP {resp.status_code}); is it a LineLedger "
                    "central?"
                ) from None
        if resp.status_code >= 400:
            error = data.get("error") if isinstance(data, dict) else None
            code = str(error.get("code", "ERR_HTTP")) if isinstance(error, dict) else "ERR_HTTP"
            message = str(error.get("message", "")) if isinstance(error, dict) else ""
            if self.on_answer is not None:
                self.on_answer(resp.status_code, code[:64], message[:500])
            raise CentralRefused(
                code[:64], message[:500] or f"HTTP {resp.status_code}", resp.status_code
            )
        if self.on_answer is not None:
            self.on_answer(resp.status_code, None, "")
        return data

    def _decode(self, decoder: Any, data: Any) -> Any:
        try:
            return decoder(data)
        except ProtocolError as exc:
            raise CentralUnreachable(f"central sent a malformed answer: {exc.message}") from None

    def enroll(self, req: EnrollRequest) -> EnrollResponse:
        """Trade an enrollment code for the agent's identity."""
        return self._decode(EnrollResponse.from_dict, self._call("POST", "/enroll", req.to_dict()))

    def ping(self, timeout: float | None = None) -> Any:
        """Check that central answers and knows this agent."""
        return self._call("GET", "/ping", timeout=timeout)

    def config(self) -> AgentConfig:
        """Fetch the line's work orders, flags and label settings."""
        return self._decode(AgentConfig.from_dict, self._call("GET", "/config"))

    def lease(self, req: LeaseRequest) -> LeaseResponse:
        """Ask for a lease."""
        return self._decode(LeaseResponse.from_dict, self._call("POST", "/leases", req.to_dict()))

    def return_lease(self, lease_id: str, high_water: int) -> Any:
        """Give back the unused tail of a lease."""
        return self._call("POST", f"/leases/{lease_id}/return", LeaseReturn(high_water).to_dict())

    def push_events(self, events: list[Event]) -> list[EventResult]:
        """Send a batch and return central's results."""
        return self._decode(decode_results, self._call("POST", "/events", encode_batch(events)))

    def reconcile(self, req: ReconcileRequest, timeout: float | None = None) -> ReconcileResponse:
        """Compare the agent's leases with central's (high-water marks, digests)."""
        return self._decode(
            ReconcileResponse.from_dict,
            self._call("POST", "/reconcile", req.to_dict(), timeout=timeout),
        )
