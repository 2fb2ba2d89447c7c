"""Answer a scan on the line: is this product ours, voided, already packed? Offline first.

The answer comes from the agent's own store (it knows every serial it issued), so a scan is
answered in well under the 200 ms an operator notices, with or without the network. A scan
of one of this line's serials is recorded as a `scanned` event.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass
from typing import Any

from edge_agent.agent import Agent
from edge_agent.scanframes import Scan, ScanError, decode_scan
from protocol.errors import ProtocolError
from protocol.events import Event
from protocol.gs1 import standard_from_ai21
from protocol.lifecycle import PACKED, SCANNED, SHIPPED, VOIDED
from protocol.serials import parse
from protocol.timefmt import format_ts

GENUINE = "genuine"
NOT_OURS = "not_ours"
VOIDED_VERDICT = "voided"
ALREADY_PACKED = "already_packed"
UNREADABLE = "unreadable"

MESSAGES = {
    GENUINE: "Ours: issued on this line.",
    NOT_OURS: "Not ours: this line never issued this code.",
    VOIDED_VERDICT: "VOIDED: this serial was withdrawn; take the product aside.",
    ALREADY_PACKED: "Already packed: this serial is in a container.",
    UNREADABLE: "Unreadable scan; scan again.",
}


@dataclass(frozen=True)
class ScanAnswer:
    """What the operator sees for one scan."""

    verdict: str
    message: str
    serial: str | None
    state: str | None
    symbology: str
    source: str
    answered_ms: float
    at: str

    def to_dict(self) -> dict[str, Any]:
        """Return the answer as JSON."""
        return {
            "verdict": self.verdict,
            "message": self.message,
            "serial": self.serial,
            "state": self.state,
            "symbology": self.symbology,
            "source": self.source,
            "answered_ms": round(self.answered_ms, 2),
            "at": self.at,
        }


def _serial_of(agent: Agent, scan: Scan) -> str | None:
    """Return the standard serial a scan stands for, if this line can tell."""
    if scan.serial_text:
        try:
            return parse(scan.serial_text).text
        except ProtocolError:
            return None
    gtin, ai21 = scan.element("01"), scan.element("21")
    if not gtin or not ai21:
        return None
    row = (
        agent.store.conn()
        .execute("SELECT category FROM work_orders WHERE gtin = ? LIMIT 1", (gtin,))
        .fetchone()
    )
    org = agent.store.get_meta("org")
    if row is None or not org:
        return None
    try:
        return standard_from_ai21(ai21, org, row["category"])
    except ProtocolError:
        return None


class ScanDesk:
    """Answer scans from the serial scanner and the operator page, keeping the last ones."""

    def __init__(self, agent: Agent, keep: int = 20) -> None:
        self.agent = agent
        self._recent: collections.deque[ScanAnswer] = collections.deque(maxlen=keep)
        self._lock = threading.Lock()

    def recent(self) -> list[dict[str, Any]]:
        """Return the latest answers, newest first."""
        with self._lock:
            return [a.to_dict() for a in reversed(self._recent)]

    def on_scanner(self, item: Scan | ScanError) -> None:
        """Take a result of the serial scanner (the reader thread calls this)."""
        if isinstance(item, ScanError):
            self._keep(self._unreadable(time.perf_counter(), "scanner", item.message))
        else:
            self.answer(item, "scanner")

    def answer_text(self, text: str, source: str = "wedge") -> ScanAnswer:
        """Answer what a keyboard-wedge scanner typed into the operator page."""
        started = time.perf_counter()
        try:
            scan = decode_scan(text.strip("\r\n"))
        except ScanError as exc:
            return self._keep(self._unreadable(started, source, exc.message))
        return self.answer(scan, source, started)

    def answer(self, scan: Scan, source: str, started: float | None = None) -> ScanAnswer:
        """Answer one decoded scan and record it if the serial is this line's."""
        started = time.perf_counter() if started is None else started
        serial = _serial_of(self.agent, scan)
        state = None
        if serial is not None:
            stamp = format_ts(self.agent.now())
            with self.agent.store.write() as conn:
                row = conn.execute(
                    "SELECT s.state, w.gtin FROM serials s LEFT JOIN work_orders w "
                    "ON w.number = s.work_order WHERE s.serial = ?",
                    (serial,),
                ).fetchone()
                scanned_gtin = scan.element("01")
                if row is not None and scanned_gtin and row["gtin"] != scanned_gtin:
                    row = None  # our serial under another product's GTIN: a copied code
                if row is not None:
                    state = row["state"]
                    event = Event(
                        self.agent.new_event_id(),
                        SCANNED,
                        serial,
                        stamp,
                        data={"symbology": scan.symbology, "source": source},
                    )
                    conn.execute(
                        "INSERT INTO outbox(event_id, serial, type, body, created_at, status) "
                        "VALUES (?, ?, ?, ?, ?, 'pending')",
                        (event.event_id, serial, SCANNED, event.to_json(), stamp),
                    )
        if state is None:
            verdict = NOT_OURS
        elif state == VOIDED:
            verdict = VOIDED_VERDICT
        elif state in (PACKED, SHIPPED):
            verdict = ALREADY_PACKED
        else:
            verdict = GENUINE
        return self._keep(
            ScanAnswer(
                verdict,
                MESSAGES[verdict],
                serial,
                state,
                scan.symbology,
                source,
                (time.perf_counter() - started) * 1000,
                format_ts(self.agent.now()),
            )
        )

    def _unreadable(self, started: float, source: str, why: str) -> ScanAnswer:
        return ScanAnswer(
            UNREADABLE,
            f"{MESSAGES[UNREADABLE]} ({why})",
            None,
            None,
            "unknown",
            source,
            (time.perf_counter() - started) * 1000,
            format_ts(self.agent.now()),
        )

    def _keep(self, answer: ScanAnswer) -> ScanAnswer:
        with self._lock:
            self._recent.append(answer)
        return answer
