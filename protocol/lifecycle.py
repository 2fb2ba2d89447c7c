"""The serial lifecycle: which event may follow which state, and the link context rules.

`issued` → `printed` → (`reprinted`)* → `linked` → `packed` → `shipped`, with the side exits
`voided`, `decommissioned` and `destroyed`. `recalled` and `retired` (a quarantined serial a
reviewer took out of use) are set centrally only. `scanned` is a fact that changes no state.
A handcraft piece may be linked to its token before its label is printed: printing a linked
serial keeps it `linked`.
"""

from __future__ import annotations

from collections.abc import Mapping

from protocol.errors import ERR_CONTEXT_MISMATCH, ERR_ILLEGAL_TRANSITION, ProtocolError

ISSUED = "issued"
PRINTED = "printed"
REPRINTED = "reprinted"
VOIDED = "voided"
LINKED = "linked"
PACKED = "packed"
SHIPPED = "shipped"
SCANNED = "scanned"
DECOMMISSIONED = "decommissioned"
DESTROYED = "destroyed"
RECALLED = "recalled"
RETIRED = "retired"

EVENT_TYPES = (
    ISSUED,
    PRINTED,
    REPRINTED,
    VOIDED,
    LINKED,
    PACKED,
    SHIPPED,
    SCANNED,
    DECOMMISSIONED,
    DESTROYED,
)
STATES = (
    ISSUED,
    PRINTED,
    LINKED,
    PACKED,
    SHIPPED,
    VOIDED,
    DECOMMISSIONED,
    DESTROYED,
    RECALLED,
    RETIRED,
)
FINAL_STATES = frozenset({VOIDED, DECOMMISSIONED, DESTROYED, RETIRED})

# event type -> states it may follow (None: the serial is not known yet) and the state it leads to
# (None: the state does not change).
_IN_USE = frozenset({ISSUED, PRINTED, LINKED, PACKED, SHIPPED})
_RULES: dict[str, tuple[frozenset[str | None], str | None]] = {
    ISSUED: (frozenset({None}), ISSUED),
    PRINTED: (frozenset({ISSUED, LINKED}), PRINTED),
    REPRINTED: (frozenset({PRINTED, LINKED, PACKED}), None),
    VOIDED: (frozenset({ISSUED, PRINTED}), VOIDED),
    LINKED: (frozenset({ISSUED, PRINTED}), LINKED),
    PACKED: (frozenset({PRINTED, LINKED}), PACKED),
    SHIPPED: (frozenset({PACKED}), SHIPPED),
    SCANNED: (frozenset(STATES), None),
    DECOMMISSIONED: (
        frozenset({ISSUED, PRINTED, LINKED, PACKED, SHIPPED, RECALLED}),
        DECOMMISSIONED,
    ),
    DESTROYED: (
        frozenset({ISSUED, PRINTED, LINKED, PACKED, SHIPPED, RECALLED, DECOMMISSIONED}),
        DESTROYED,
    ),
}


def next_state(current: str | None, event_type: str) -> str:
    """Return the state after `event_type` happens in state `current`, or raise."""
    rule = _RULES.get(event_type)
    if rule is None:
        raise ProtocolError(ERR_ILLEGAL_TRANSITION, f"unknown event type {event_type!r}")
    allowed, target = rule
    if current not in allowed:
        where = "an unknown serial" if current is None else f"a {current} serial"
        raise ProtocolError(ERR_ILLEGAL_TRANSITION, f"cannot record {event_type} for {where}")
    if event_type == PRINTED and current == LINKED:
        return LINKED  # a piece linked before its label was printed stays linked
    assert current is not None or target is not None
    return target if target is not None else current  # type: ignore[return-value]


def needs_known_serial(event_type: str) -> bool:
    """Tell whether the event can only follow an earlier event of the same serial."""
    return event_type != ISSUED


# A link names what the physical piece is tied to. HAT (handcraft) pieces are tokens on a
# job ticket; OEM pieces belong to a manufacturing order (work order) or a job ticket.
_LINK_TARGETS = ("job_ticket", "token", "work_order")
_LINK_RULES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    # production type -> (targets it may link to, targets that are a mismatch)
    "HAT": (frozenset({"job_ticket", "token"}), frozenset({"work_order"})),
    "OEM": (frozenset({"work_order", "job_ticket"}), frozenset({"token"})),
}


def check_link_context(ptype: str, data: Mapping[str, object]) -> None:
    """Raise ERR_CONTEXT_MISMATCH unless a link's targets suit the production type."""
    rules = _LINK_RULES.get(ptype)
    present = {t for t in _LINK_TARGETS if data.get(t) not in (None, "")}
    if rules is None:
        raise ProtocolError(ERR_CONTEXT_MISMATCH, f"no link rules for production type {ptype!r}")
    allowed, forbidden = rules
    if present & forbidden:
        bad = ", ".join(sorted(present & forbidden))
        raise ProtocolError(ERR_CONTEXT_MISMATCH, f"a {ptype} serial cannot link to {bad}")
    if not present & allowed:
        need = " or ".join(sorted(allowed))
        raise ProtocolError(ERR_CONTEXT_MISMATCH, f"a {ptype} serial links to a {need}")
