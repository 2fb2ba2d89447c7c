"""Tests for zeroconf discovery on the loopback interface: real multicast, real services.

Zeroconf bound to 127.0.0.1 sends and receives mDNS multicast on `lo` (the kernel loops
multicast back to the sender's host), so a responder and a browser in this process see each
other without any network. Service names carry a random suffix so parallel runs on one host
cannot see each other's services.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from zeroconf import ServiceStateChange, Zeroconf

from printers.discovery import CENTRAL_TYPE, PRINTER_TYPE, Found, _Names, advertise, browse

# Registering a service probes the network for about a second, and browsing listens.
pytestmark = pytest.mark.slow
LOOPBACK = ["127.0.0.1"]
# Long enough for probing-free answers on loopback, which arrive within milliseconds.
BROWSE_SECONDS = 2.0


@pytest.fixture
def responder() -> Iterator[Zeroconf]:
    zc = Zeroconf(interfaces=LOOPBACK)
    try:
        yield zc
    finally:
        zc.close()


@pytest.fixture
def browser() -> Iterator[Zeroconf]:
    zc = Zeroconf(interfaces=LOOPBACK)
    try:
        yield zc
    finally:
        zc.close()


def test_a_printer_and_a_central_are_found_on_loopback(
    responder: Zeroconf, browser: Zeroconf
) -> None:
    tag = uuid.uuid4().hex[:8]
    printer = advertise(
        responder,
        PRINTER_TYPE,
        f"Zebra ZD421 {tag}",
        9100,
        {"ty": "Zebra ZD421-203dpi ZPL", "pdl": "application/vnd.zebra-zpl"},
        ["127.0.0.1"],
    )
    central = advertise(
        responder, CENTRAL_TYPE, f"LineLedger central {tag}", 8080, {"api": "v1"}, ["127.0.0.1"]
    )
    try:
        found = browse([PRINTER_TYPE, CENTRAL_TYPE], BROWSE_SECONDS, zc=browser)
    finally:
        responder.unregister_service(printer)
        responder.unregister_service(central)
    mine = {f.name: f for f in found if tag in f.name}
    assert set(mine) == {printer.name, central.name}
    zebra, registry = mine[printer.name], mine[central.name]
    assert zebra == Found(
        PRINTER_TYPE,
        printer.name,
        zebra.host,
        9100,
        ("127.0.0.1",),
        {"ty": "Zebra ZD421-203dpi ZPL", "pdl": "application/vnd.zebra-zpl"},
    )
    assert zebra.host.endswith(".local")
    assert zebra.url == "tcp://127.0.0.1:9100"
    assert registry.url == "http://127.0.0.1:8080"
    assert registry.properties == {"api": "v1"}


def test_browse_makes_and_closes_its_own_zeroconf(responder: Zeroconf) -> None:
    tag = uuid.uuid4().hex[:8]
    info = advertise(responder, PRINTER_TYPE, f"printer {tag}", 6101, None, ["127.0.0.1"])
    try:
        found = browse([PRINTER_TYPE], BROWSE_SECONDS, interfaces=LOOPBACK)
    finally:
        responder.unregister_service(info)
    assert [f.url for f in found if tag in f.name] == ["tcp://127.0.0.1:6101"]


def test_what_a_peer_announces_is_decoded_defensively(
    responder: Zeroconf, browser: Zeroconf
) -> None:
    tag = uuid.uuid4().hex[:8]
    properties = {"bin": b"\xff\xfe\x00\x07", "empty": None, "text": "x" * 200}
    info = advertise(
        responder,
        PRINTER_TYPE,
        f"odd {tag}",
        9100,
        properties,  # type: ignore[arg-type]
        ["127.0.0.1", "::1"],
    )
    try:
        found = browse([PRINTER_TYPE], BROWSE_SECONDS, zc=browser)
    finally:
        responder.unregister_service(info)
    (odd,) = [f for f in found if tag in f.name]
    assert odd.properties["bin"] == "\ufffd\ufffd??"
    assert odd.properties["empty"] == ""
    assert odd.properties["text"] == "x" * 200
    assert odd.addresses[0] == "127.0.0.1"  # IPv4 first: the URL prefers it


def test_a_taken_name_gets_another_and_the_info_says_which(responder: Zeroconf) -> None:
    tag = uuid.uuid4().hex[:8]
    first = advertise(responder, CENTRAL_TYPE, f"central {tag}", 8080, None, ["127.0.0.1"])
    try:
        second = advertise(responder, CENTRAL_TYPE, f"central {tag}", 8081, None, ["127.0.0.1"])
        try:
            assert second.name != first.name and second.port == 8081
        finally:
            responder.unregister_service(second)
    finally:
        responder.unregister_service(first)


def test_the_browser_handler_only_records_names() -> None:
    names = _Names()
    # Any use of zeroconf from the handler (resolving, sending) would fail on this object.
    sentinel = object()
    names.on_change(sentinel, PRINTER_TYPE, "a", ServiceStateChange.Added)  # type: ignore[arg-type]
    names.on_change(sentinel, PRINTER_TYPE, "b", ServiceStateChange.Updated)  # type: ignore[arg-type]
    names.on_change(sentinel, PRINTER_TYPE, "a", ServiceStateChange.Removed)  # type: ignore[arg-type]
    assert names.snapshot() == [(PRINTER_TYPE, "b")]


def test_the_url_brackets_ipv6_and_falls_back_to_the_host_name() -> None:
    assert Found(PRINTER_TYPE, "p", "p.local", 9100, ("fd00::5",)).url == "tcp://[fd00::5]:9100"
    assert Found(CENTRAL_TYPE, "c", "c.local", 80, ("fd00::5",)).url == "http://[fd00::5]:80"
    assert Found(CENTRAL_TYPE, "c", "c.local", 80, ()).url == "http://c.local:80"


@pytest.mark.parametrize(
    ("types", "timeout"), [([], 1.0), (PRINTER_TYPE, 1.0), ([PRINTER_TYPE], 0.0)]
)
def test_browse_refuses_bad_arguments(types: object, timeout: float) -> None:
    with pytest.raises(ValueError):
        browse(types, timeout, interfaces=LOOPBACK)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("type_", "name", "port", "addresses"),
    [
        (PRINTER_TYPE, "p", 0, None),
        (PRINTER_TYPE, "", 9100, None),
        (PRINTER_TYPE, "a.b", 9100, None),
        (PRINTER_TYPE, "x" * 64, 9100, None),
        (PRINTER_TYPE, "p", 9100, ["not-an-address"]),
        ("printers", "p", 9100, None),
    ],
)
def test_advertise_refuses_bad_arguments(
    responder: Zeroconf, type_: str, name: str, port: int, addresses: list[str] | None
) -> None:
    with pytest.raises(ValueError):
        advertise(responder, type_, name, port, None, addresses)
