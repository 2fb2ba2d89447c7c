import pytest

from protocol import errors as E
from protocol import lifecycle as L
from protocol.errors import ProtocolError


def test_happy_path():
    state = None
    for event, expected in [
        (L.ISSUED, L.ISSUED),
        (L.PRINTED, L.PRINTED),
        (L.REPRINTED, L.PRINTED),
        (L.LINKED, L.LINKED),
        (L.SCANNED, L.LINKED),
        (L.PACKED, L.PACKED),
        (L.SHIPPED, L.SHIPPED),
    ]:
        state = L.next_state(state, event)
        assert state == expected


@pytest.mark.parametrize(
    "state, event",
    [
        (L.VOIDED, L.PACKED),  # the reference's example: packing a voided serial
        (L.VOIDED, L.PRINTED),
        (L.ISSUED, L.ISSUED),
        (None, L.PRINTED),
        (L.ISSUED, L.SHIPPED),
        (L.SHIPPED, L.VOIDED),
        (L.DESTROYED, L.DECOMMISSIONED),
        (L.ISSUED, L.REPRINTED),
        (L.PRINTED, "teleported"),
    ],
)
def test_illegal_transitions(state, event):
    with pytest.raises(ProtocolError) as exc:
        L.next_state(state, event)
    assert exc.value.code == E.ERR_ILLEGAL_TRANSITION


def test_every_event_type_has_a_rule_and_scanning_keeps_state():
    for state in L.STATES:
        assert L.next_state(state, L.SCANNED) == state
    for event in L.EVENT_TYPES:
        assert L.needs_known_serial(event) == (event != L.ISSUED)


@pytest.mark.parametrize(
    "ptype, data, ok",
    [
        ("HAT", {"token": "T1"}, True),
        ("HAT", {"job_ticket": "J1"}, True),
        ("HAT", {"job_ticket": "J1", "token": "T1"}, True),
        ("HAT", {"work_order": "MO1"}, False),  # HAT serial with an MO
        ("HAT", {}, False),
        ("OEM", {"work_order": "MO1"}, True),
        ("OEM", {"job_ticket": "J1"}, True),
        ("OEM", {"token": "T1"}, False),  # OEM serial with a token
        ("OEM", {"work_order": ""}, False),
        ("XYZ", {"token": "T1"}, False),
    ],
)
def test_link_context_rules(ptype, data, ok):
    if ok:
        L.check_link_context(ptype, data)
    else:
        with pytest.raises(ProtocolError) as exc:
            L.check_link_context(ptype, data)
        assert exc.value.code == E.ERR_CONTEXT_MISMATCH
