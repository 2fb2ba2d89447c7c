"""Find label printers and the central registry on the local network with zeroconf (DNS-SD).

`browse(types, timeout)` listens for `timeout` seconds for services of the given types
(`PRINTER_TYPE`, network printers taking raw print data such as ZPL on TCP 9100;
`CENTRAL_TYPE`, a LineLedger central started with `--advertise`) and returns what it found as
`Found` records, each with the URL to configure (`tcp://...` for a printer, `http://...` for
central). The browser's handler runs on zeroconf's event loop, so it only records names in a
lock-protected dict and returns at once; the services are resolved afterwards from the
calling thread (`ServiceInfo.request`), which waits on its own and never on the loop.

`advertise(zc, type_, name, port, properties, addresses)` registers a service and returns the
`ServiceInfo` to unregister later (`zc.unregister_service(info)`). What other hosts announce
is not trusted: names, addresses and TXT values are decoded defensively and capped.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import ifaddr
from zeroconf import (
    BadTypeInNameException,
    InterfaceChoice,
    IPVersion,
    ServiceBrowser,
    ServiceInfo,
    ServiceStateChange,
    Zeroconf,
)

from printers.tcp import tcp_url

PRINTER_TYPE = "_pdl-datastream._tcp.local."
CENTRAL_TYPE = "_lineledger._tcp.local."
# Beyond these a peer is not describing a printer; the rest is dropped, not trusted.
MAX_SERVICES = 256
MAX_PROPERTIES = 64
MAX_TEXT = 255
# Resolving the names found gets at most this long in total, after browsing.
RESOLVE_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class Found:
    """One service that answered: where it is and what its TXT record says."""

    type: str
    name: str
    host: str
    port: int
    addresses: tuple[str, ...]
    properties: Mapping[str, str] = field(default_factory=dict, hash=False)

    @property
    def url(self) -> str:
        """Return the URL to configure: tcp:// for a printer, http:// for anything else.

        An address is preferred to the host name, because a line PC may not resolve
        `.local` names outside zeroconf.
        """
        host = self.addresses[0] if self.addresses else self.host
        if self.type == PRINTER_TYPE:
            return tcp_url(host, self.port)
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"


class _Names:
    """Service names seen by a browser, recorded from zeroconf's event loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._names: dict[tuple[str, str], None] = {}

    def on_change(
        self,
        zeroconf: Zeroconf,
        service_type: str,
        name: str,
        state_change: ServiceStateChange,
    ) -> None:
        """Record or forget a name; never block, since this runs on zeroconf's event loop."""
        key = (service_type, name)
        with self._lock:
            if state_change is ServiceStateChange.Removed:
                self._names.pop(key, None)
            elif len(self._names) < MAX_SERVICES:
                self._names[key] = None

    def snapshot(self) -> list[tuple[str, str]]:
        """Return the names seen so far, in the order they arrived."""
        with self._lock:
            return list(self._names)


def _text(value: bytes | str | None) -> str:
    """Return a TXT key or value from the network as short, printable text."""
    if value is None:
        return ""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return "".join(char if char.isprintable() else "?" for char in text[:MAX_TEXT])


def _found(info: ServiceInfo, service_type: str) -> Found | None:
    """Return a Found for a resolved service, or None if it gave no usable port."""
    port = info.port
    if port is None or not 1 <= port <= 65535:
        return None
    addresses = []
    for address in info.parsed_scoped_addresses(IPVersion.All):
        try:
            addresses.append(str(ipaddress.ip_address(address.split("%")[0])))
        except ValueError:
            continue
    # IPv4 first: a printer's IPv6 link-local address needs a scope a URL cannot carry.
    addresses.sort(key=lambda address: ":" in address)
    properties = {
        _text(key): _text(value) for key, value in list(info.properties.items())[:MAX_PROPERTIES]
    }
    server = _text(info.server or "").rstrip(".")
    return Found(service_type, _text(info.name), server, port, tuple(addresses), properties)


def browse(
    types: Sequence[str],
    timeout: float,
    zc: Zeroconf | None = None,
    interfaces: Sequence[str] | InterfaceChoice = InterfaceChoice.All,
) -> list[Found]:
    """Return the services of `types` that answer within `timeout` seconds, resolved.

    With `zc` None a Zeroconf instance on `interfaces` is made for the call and closed after.
    """
    if isinstance(types, str) or not types:
        raise ValueError("types is a non-empty list of service types, e.g. [PRINTER_TYPE]")
    if not timeout > 0:
        raise ValueError("timeout must be a positive number of seconds")
    own = zc is None
    zeroconf = Zeroconf(interfaces=interfaces) if zc is None else zc
    names = _Names()
    try:
        browser = ServiceBrowser(zeroconf, list(types), handlers=[names.on_change])
        try:
            # mDNS has no "that was everyone": answers come when they come.
            threading.Event().wait(timeout)
        finally:
            browser.cancel()
        found: list[Found] = []
        deadline = time.monotonic() + RESOLVE_SECONDS
        for service_type, name in names.snapshot():
            info = ServiceInfo(service_type, name)
            remaining_ms = max(0.0, deadline - time.monotonic()) * 1000
            # The browse usually brought SRV, TXT and A records along: then this is instant.
            if not info.load_from_cache(zeroconf) and remaining_ms > 0:
                info.request(zeroconf, remaining_ms)
            record = _found(info, service_type)
            if record is not None:
                found.append(record)
        return found
    finally:
        if own:
            zeroconf.close()


def _local_addresses() -> list[str]:
    """Return this host's IPv4 addresses other than loopback, or loopback if that is all."""
    found = [
        str(ip.ip)
        for adapter in ifaddr.get_adapters()
        for ip in adapter.ips
        if isinstance(ip.ip, str) and not ip.ip.startswith("127.")
    ]
    return found or ["127.0.0.1"]


def advertise(
    zc: Zeroconf,
    type_: str,
    name: str,
    port: int,
    properties: Mapping[str, str] | None = None,
    addresses: Sequence[str] | None = None,
) -> ServiceInfo:
    """Register service instance `name` of `type_` on `port` and return its ServiceInfo.

    `addresses` defaults to this host's IPv4 addresses. A name already taken on the network
    gets a number appended by zeroconf; the returned info carries the name in use.
    """
    if not 1 <= port <= 65535:
        raise ValueError("port must be 1 to 65535")
    if not name or len(name) > 63 or "." in name:
        raise ValueError("name is a service instance name of 1-63 characters without dots")
    for address in addresses or ():
        ipaddress.ip_address(address)  # raises ValueError for anything else
    host = "".join(c if c.isalnum() or c == "-" else "-" for c in socket.gethostname())[:63]
    try:
        info = ServiceInfo(
            type_,
            f"{name}.{type_}",
            port=port,
            properties=dict(properties or {}),
            server=f"{host or 'lineledger'}.local.",
            parsed_addresses=list(addresses) if addresses else _local_addresses(),
        )
    except BadTypeInNameException as exc:
        raise ValueError(f"not a service type: {type_!r} ({exc})") from None
    zc.register_service(info, allow_name_change=True)
    return info
