import datetime as dt
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import errors as E
from protocol import lifecycle as L
from protocol.errors import ProtocolError
from protocol.events import (
    MAX_BATCH,
    Event,
    EventResult,
    decode_batch,
    decode_results,
    encode_batch,
)
from protocol.ids import uuid7
from protocol.messages import (
    AgentConfig,
    EnrollRequest,
    LeaseGrant,
    LeaseRequest,
    LeaseResponse,
    LeaseReturn,
    WorkOrderInfo,
)
from protocol.schema import loads
from protocol.serials import Scope
from protocol.timefmt import format_ts, parse_ts

SCOPE = Scope("MA01", "OEM", "BAG", dt.date(2025, 11, 9))
printable = st.characters(categories=["L", "M", "N", "P", "S"])
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    # Lone surrogates left out: no UTF-8 text holds them, and the schema refuses them.
    st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=256),
)
events = st.builds(
    Event,
    event_id=st.builds(uuid7, st.integers(0, (1 << 48) - 1), st.binary(min_size=10, max_size=10)),
    type=st.sampled_from(L.EVENT_TYPES),
    serial=st.text(printable, min_size=1, max_size=64),
    occurred_at=st.datetimes(
        min_value=dt.datetime(2000, 1, 1),
        max_value=dt.datetime(2100, 1, 1),
        timezones=st.just(dt.UTC),
    ).map(format_ts),
    lease_id=st.none() | st.text(printable, min_size=1, max_size=64),
    work_order=st.none() | st.text(printable, min_size=1, max_size=64),
    data=st.dictionaries(st.text(printable, min_size=1, max_size=64), scalars, max_size=32),
)


@given(events)
def test_event_round_trip_through_json(event):
    assert Event.from_json(event.to_json()) == event


@given(events, st.text(max_size=40), st.none() | st.text(max_size=40))
def test_event_json_is_exactly_what_json_dumps_writes(event, any_text, maybe_text):
    """The field-by-field fast path of events without data gives json.dumps' very text."""
    bare = Event(event.event_id, event.type, any_text, event.occurred_at, maybe_text, any_text)
    for e in (event, bare):
        assert e.to_json() == json.dumps(e.to_dict(), separators=(",", ":"), sort_keys=True)


@given(st.lists(events, max_size=20))
def test_batch_round_trip(batch):
    wire = json.loads(json.dumps(encode_batch(batch)))
    items = decode_batch(wire)
    assert [i.event for i in items] == batch
    assert all(i.error is None for i in items)


def _event(**over):
    base = Event(uuid7(1_700_000_000_000, bytes(10)), "issued", "S", "2025-11-09T10:00:00.000Z")
    wire = base.to_dict()
    wire.update(over)
    return wire


@pytest.mark.parametrize(
    "change, code",
    [
        ({"event_id": "nope"}, E.ERR_EVENT_ID),
        ({"event_id": None}, E.ERR_EVENT_ID),
        ({"type": "teleported"}, E.ERR_EVENT_TYPE),
        ({"type": ["issued"]}, E.ERR_EVENT_TYPE),
        ({"serial": ""}, E.ERR_SCHEMA),
        ({"serial": "x" * 65}, E.ERR_SCHEMA),
        ({"serial": 12}, E.ERR_SCHEMA),
        ({"occurred_at": "yesterday"}, E.ERR_TIMESTAMP),
        ({"occurred_at": "2025-11-09T10:00:00"}, E.ERR_TIMESTAMP),
        ({"occurred_at": 1731146400}, E.ERR_TIMESTAMP),
        ({"v": 2}, E.ERR_SCHEMA_VERSION),
        ({"v": True}, E.ERR_SCHEMA_VERSION),
        ({"data": []}, E.ERR_SCHEMA),
        ({"data": {"k": {"nested": 1}}}, E.ERR_SCHEMA),
        ({"data": {"k": "x" * 257}}, E.ERR_SCHEMA),
        ({"data": {str(i): i for i in range(33)}}, E.ERR_SCHEMA),
        ({"data": {"": 1}}, E.ERR_SCHEMA),
        ({"lease_id": 5}, E.ERR_SCHEMA),
        ({"work_order": "w" * 65}, E.ERR_SCHEMA),
        ({"work_order": "WO\x00-1"}, E.ERR_SCHEMA),
        ({"serial": "MA01\n"}, E.ERR_SCHEMA),
        ({"lease_id": "\x00"}, E.ERR_SCHEMA),
        ({"data": {"reason": "torn\x00"}}, E.ERR_SCHEMA),
        ({"data": {"\x07": 1}}, E.ERR_SCHEMA),
        ({"occurred_at": "0001-01-01T00:00:00+01:00"}, E.ERR_TIMESTAMP),
        ({"occurred_at": "0999-01-01T00:00:00Z"}, E.ERR_TIMESTAMP),
        ({"occurred_at": "1969-12-31T23:59:59Z"}, E.ERR_TIMESTAMP),
        ({"occurred_at": "9999-12-31T23:59:59-01:00"}, E.ERR_TIMESTAMP),
    ],
)
def test_hostile_events(change, code):
    with pytest.raises(ProtocolError) as exc:
        Event.from_dict(_event(**change))
    assert exc.value.code == code


def test_nan_in_data_is_refused():
    with pytest.raises(ProtocolError) as exc:
        Event.from_dict(_event(data={"x": float("nan")}))
    assert exc.value.code == E.ERR_SCHEMA


def test_timestamps_are_normalised_to_utc():
    wire = _event(occurred_at="2025-11-09T17:00:00+07:00")
    assert Event.from_dict(wire).occurred_at == "2025-11-09T10:00:00.000Z"
    assert parse_ts("2025-11-09T10:00:00.5Z") == dt.datetime(2025, 11, 9, 10, 0, 0, 500000, dt.UTC)
    with pytest.raises(ValueError):
        format_ts(dt.datetime(2025, 1, 1))


def test_batch_with_one_bad_event_keeps_the_rest():
    good = _event()
    items = decode_batch({"v": 1, "events": [good, {"event_id": "bad"}, "not an object", None]})
    assert items[0].error is None and items[0].event is not None
    assert items[1].error.code == E.ERR_EVENT_ID and items[1].event_id == "bad"
    assert items[2].error.code == E.ERR_SCHEMA and items[2].event_id == ""
    assert items[3].error is not None


@pytest.mark.parametrize(
    "body, code",
    [
        ([], E.ERR_SCHEMA),
        ("events", E.ERR_SCHEMA),
        ({"events": "x"}, E.ERR_SCHEMA),
        ({}, E.ERR_SCHEMA),
        ({"v": 9, "events": []}, E.ERR_SCHEMA_VERSION),
        ({"events": [{}] * (MAX_BATCH + 1)}, E.ERR_BATCH_TOO_LARGE),
    ],
)
def test_hostile_batches(body, code):
    with pytest.raises(ProtocolError) as exc:
        decode_batch(body)
    assert exc.value.code == code


def test_encode_batch_refuses_oversized():
    e = Event.from_dict(_event())
    with pytest.raises(ProtocolError) as exc:
        encode_batch([e] * (MAX_BATCH + 1))
    assert exc.value.code == E.ERR_BATCH_TOO_LARGE


@pytest.mark.parametrize(
    "raw, code",
    [
        (b"{", E.ERR_JSON),
        (b"\xff\xfe", E.ERR_JSON),
        (b"[" * 100_000, E.ERR_JSON),
        (b"1" * 2000, E.ERR_TOO_LARGE),
        (b"", E.ERR_JSON),
    ],
)
def test_loads_hostile(raw, code):
    with pytest.raises(ProtocolError) as exc:
        loads(raw, 1000 if code == E.ERR_TOO_LARGE else 1_000_000)
    assert exc.value.code == code


def test_results_round_trip_and_hostile():
    r = EventResult("id", "quarantined", "ERR_SERIAL_MAC", "bad mac")
    assert decode_results({"results": [r.to_dict()]}) == [r]
    for bad in ({"results": [{"event_id": "x", "status": "maybe"}]}, {"results": 3}, []):
        with pytest.raises(ProtocolError):
            decode_results(bad)


def test_lease_messages_round_trip():
    req = LeaseRequest(uuid7(5, bytes(10)), SCOPE, 1000)
    assert LeaseRequest.from_dict(json.loads(json.dumps(req.to_dict()))) == req
    grant = LeaseGrant("L1", SCOPE, 1, 400, b"k" * 32, 1, "2025-11-11T00:00:00.000Z")
    resp = LeaseResponse(req.request_id, 1000, (grant,))
    wire = json.loads(json.dumps(resp.to_dict()))
    assert wire["granted"] == 400 and wire["fulfilled"] is False
    assert LeaseResponse.from_dict(wire) == resp
    assert LeaseReturn.from_dict(LeaseReturn(17).to_dict()) == LeaseReturn(17)


@pytest.mark.parametrize(
    "change",
    [
        {"size": 0},
        {"size": 100_000},
        {"size": "10"},
        {"scope": "MA01-HAT"},
        {"request_id": "x"},
        {"v": 3},
    ],
)
def test_lease_request_hostile(change):
    wire = LeaseRequest(uuid7(5, bytes(10)), SCOPE, 10).to_dict()
    wire.update(change)
    with pytest.raises(ProtocolError):
        LeaseRequest.from_dict(wire)


def test_lease_grant_refuses_inverted_range_and_bad_key():
    wire = LeaseGrant("L1", SCOPE, 5, 9, b"k" * 32, 1, "2025-11-11T00:00:00.000Z").to_dict()
    with pytest.raises(ProtocolError):
        LeaseGrant.from_dict({**wire, "first": 10})
    with pytest.raises(ProtocolError) as exc:
        LeaseGrant.from_dict({**wire, "key": "abc"})
    assert exc.value.code == E.ERR_KEY_INVALID


def test_enroll_and_config_round_trip():
    req = EnrollRequest("ABCD-1234", "line-pc-1", "0.1.0")
    assert EnrollRequest.from_dict(req.to_dict()) == req
    wo = WorkOrderInfo("WO-1", "SKU1", "Bag", "BAG", "OEM", 200, "open", None)
    cfg = AgentConfig(
        "A1",
        "MA01",
        "L1",
        "Maison",
        "Europe/Paris",
        "https://v.example",
        (wo,),
        {"FF_X": "on"},
        {"default": {}, "big": {"dpi": 300, "barcodes": ["qr"]}},
    )
    assert AgentConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    for bad in (
        {"x" * 65: {}},
        {"t": []},
        {str(i): {} for i in range(101)},
        {"t": {str(i): 1 for i in range(65)}},
    ):
        with pytest.raises(ProtocolError):
            AgentConfig.from_dict({**cfg.to_dict(), "label_templates": bad})
    with pytest.raises(ProtocolError):
        WorkOrderInfo.from_dict({**wo.to_dict(), "type": "XYZ"})
    with pytest.raises(ProtocolError):
        EnrollRequest.from_dict({"code": "c" * 65})


def test_an_event_cut_short_anywhere_is_refused_cleanly():
    wire = Event(
        uuid7(1_700_000_000_000, bytes(10)),
        "printed",
        "MA01-HAT-BAG-20251109-00001-ABCD-E",
        "2025-11-09T10:00:00.000Z",
        "L1",
        "WO-1",
        {"printer": "tcp://x:9100"},
    )
    text = wire.to_json().encode()
    for cut in range(len(text)):
        with pytest.raises(ProtocolError) as exc:
            Event.from_json(text[:cut])
        assert exc.value.code.startswith("ERR_")
    assert Event.from_json(text) == wire


@given(st.binary(max_size=300))
def test_garbage_bytes_never_escape_as_anything_but_protocol_error(raw):
    for decode in (Event.from_json, lambda r: decode_batch(loads(r, 10_000))):
        try:
            decode(raw)
        except ProtocolError:
            pass


@given(
    st.recursive(
        scalars,
        lambda kids: (
            st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_arbitrary_json_values_as_messages(value):
    for decoder in (
        Event.from_dict,
        decode_batch,
        LeaseRequest.from_dict,
        LeaseGrant.from_dict,
        LeaseResponse.from_dict,
        EnrollRequest.from_dict,
        AgentConfig.from_dict,
        decode_results,
    ):
        try:
            decoder(value)
        except ProtocolError:
            pass
