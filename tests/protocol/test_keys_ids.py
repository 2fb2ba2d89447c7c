import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import errors as E
from protocol.crockford import ALPHABET as CROCKFORD
from protocol.errors import ProtocolError
from protocol.ids import Uuid7Sequence, parse_uuid7, uuid7, uuid7_unix_ms
from protocol.keys import (
    compute_mac,
    derive_lease_key,
    key_fingerprint,
    lease_key_from_hex,
    mac_matches,
)


def test_lease_keys_differ_per_lease_and_master():
    a = derive_lease_key(b"a" * 32, "L1")
    assert a != derive_lease_key(b"a" * 32, "L2")
    assert a != derive_lease_key(b"b" * 32, "L1")
    assert a == derive_lease_key(b"a" * 32, "L1")
    assert len(a) == 32


@pytest.mark.parametrize("master, lease", [(b"short", "L1"), (b"a" * 32, "")])
def test_derive_refuses_weak_input(master, lease):
    with pytest.raises(ProtocolError) as exc:
        derive_lease_key(master, lease)
    assert exc.value.code == E.ERR_KEY_INVALID


@given(st.binary(min_size=32, max_size=32), st.text(min_size=1, max_size=40))
def test_mac_shape(key, body):
    body = body.encode("ascii", "ignore").decode() or "x"
    mac = compute_mac(key, body)
    assert len(mac) == 4 and all(c in CROCKFORD for c in mac)
    assert mac_matches(key, body, mac)


def test_fingerprint_is_stable_and_not_the_key():
    key = b"k" * 32
    assert key_fingerprint(key) == key_fingerprint(key)
    assert key.hex() not in key_fingerprint(key)


@pytest.mark.parametrize("text", [None, "zz", "00" * 31, "00" * 33, 12])
def test_lease_key_from_hex_hostile(text):
    with pytest.raises(ProtocolError) as exc:
        lease_key_from_hex(text)
    assert exc.value.code == E.ERR_KEY_INVALID


@given(st.integers(min_value=0, max_value=(1 << 48) - 1), st.binary(min_size=10, max_size=10))
def test_uuid7_layout(ms, rand):
    value = uuid7(ms, rand)
    assert parse_uuid7(value) == value
    assert uuid7_unix_ms(value) == ms
    assert value[14] == "7" and value[19] in "89ab"


def test_uuid7_sequence_is_strictly_increasing_within_ms_and_backwards_clock():
    seq = Uuid7Sequence()
    ids = [seq.next(1000, bytes(10)) for _ in range(1000)]
    ids += [seq.next(999, b"\xff" * 10) for _ in range(10)]  # clock stepped back
    ids += [seq.next(1001, b"\x00" * 10)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(parse_uuid7(i) for i in ids)


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "not-a-uuid",
        "0190c4a4-4d2b-4e1b-9f6e-3c1a2b3c4d5e",  # version 4
        "0190c4a4-4d2b-7e1b-cf6e-3c1a2b3c4d5e",  # wrong variant
        "0190c4a4-4d2b-7e1b-9f6e-3c1a2b3c4d5e" + "0",
        "0190c4a44d2b7e1b9f6e3c1a2b3c4d5e0000",
        5,
    ],
)
def test_parse_uuid7_hostile(text):
    with pytest.raises(ProtocolError) as exc:
        parse_uuid7(text)
    assert exc.value.code == E.ERR_EVENT_ID


def test_parse_uuid7_accepts_upper_case():
    value = uuid7(1, bytes(10))
    assert parse_uuid7(value.upper()) == value
