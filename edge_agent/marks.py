"""High-water-mark reports while an `issue` command runs, in a thread of their own.

Issuing never waits for them: the issuing loop only counts serials and wakes the reporter
after `marks_every` serials or `marks_seconds` seconds (whichever comes first). The reporter
uses a client of its own with a short timeout; when central cannot be reached it waits
`marks_seconds` before it tries again, and a refusal (an old central without reconcile, a
revoked agent) ends the reports of this command. `finish` sends the last report, unless
central was just found unreachable, so a command that ran online leaves central knowing
every number it used.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING

from edge_agent import rollback
from edge_agent.agent import Agent
from edge_agent.client import CentralClient
from edge_agent.errors import CentralRefused, CentralUnreachable, EdgeError
from protocol.timefmt import format_ts

if TYPE_CHECKING:
    from edge_agent.issuing import Issuer

log = logging.getLogger("lineledger.edge")


class MarksReporter:
    """Report high-water marks in the background while serials are issued."""

    def __init__(self, agent: Agent) -> None:
        cfg = agent.config
        self.agent = agent
        self.enabled = cfg.marks_report
        self.every = cfg.marks_every
        self.seconds = cfg.marks_seconds
        self.timeout = cfg.guard_timeout
        self.reports = 0
        self.failures = 0
        self.last_error: dict[str, str] | None = None
        self.rollback = False
        self._unreported = 0
        self._last = time.monotonic()
        self._down_until = 0.0
        self._stopped = False
        self._wake = threading.Event()
        self._lock = threading.Lock()  # one report at a time
        self._count_lock = threading.Lock()
        self._client: CentralClient | None = None
        self._acks: dict[str, int] = {}  # marks central acknowledged, not yet written down
        self._acks_lock = threading.Lock()
        self._issuer: Issuer | None = None  # the issuing loop that notes them (ride_on)
        self._thread = threading.Thread(target=self._run, name="marks-reporter", daemon=True)

    def __enter__(self) -> MarksReporter:
        if self.enabled:
            self._client = self.agent.new_client(self.timeout)
            self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.finish()

    def ride_on(self, issuer: Issuer) -> None:
        """Let `issuer` note acknowledged marks inside its next issuing transaction.

        Noted in a transaction of their own, they cost a commit (a disk flush) and, when the
        reporter takes the lock just before the issuing loop wants it, a wait of the next
        serial for the lock; riding along they cost neither.
        """
        issuer.rider = self
        self._issuer = issuer

    def ride(self, conn: sqlite3.Connection) -> Callable[[], None] | None:
        """Note the acknowledged marks in the caller's transaction (see `ride_on`)."""
        with self._acks_lock:
            if not self._acks:
                return None
            acks = dict(self._acks)
        for sql, params in rollback.ack_statements(acks, format_ts(self.agent.now())):
            conn.execute(sql, params)
        return lambda: self._forget(acks)

    def _forget(self, noted: dict[str, int]) -> None:
        """Drop the acks a committed transaction noted (unless a newer one came meanwhile)."""
        with self._acks_lock:
            for lease_id, mark in noted.items():
                if self._acks.get(lease_id) == mark:
                    del self._acks[lease_id]

    def issued(self, count: int = 1) -> None:
        """Count serials just issued; wake the reporter when a report is due."""
        with self._count_lock:
            self._unreported += count
            due = self._unreported >= self.every
        if due or time.monotonic() - self._last >= self.seconds:
            self._wake.set()

    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait(self.seconds)
            self._wake.clear()
            if self._stopped:
                return
            if self._unreported and time.monotonic() >= self._down_until:
                self.report()

    def report(self) -> bool:
        """Send one report now; return whether central took it."""
        if not self.enabled or self._client is None:
            return False
        with self._lock:
            with self._count_lock:
                pending, self._unreported = self._unreported, 0
            self._last = time.monotonic()
            try:
                req, sent = rollback.marks_request(self.agent)
                resp = self._client.reconcile(req, timeout=self.timeout)
                if rollback.answer_is_routine(self.agent, resp):
                    # Central has the marks now; noting that locally can wait for a moment
                    # the issuing loop leaves the store free, so reports keep their pace.
                    with self._acks_lock:
                        self._acks.update(sent)
                    # Riding on an issuer, the next issuing transaction notes them; at the
                    # end, `finish` does.
                    if self._issuer is None and not self._stopped:
                        self._note_acks(wait=False)
                    self.reports += 1
                    return True
                guard = rollback.apply_answer(self.agent, resp, sent, rollback.MARKS)
                with self._acks_lock:
                    self._acks.clear()
            except CentralUnreachable as exc:
                self._requeue(pending)
                self.failures += 1
                self.last_error = exc.to_dict()
                self._down_until = time.monotonic() + self.seconds
                return False
            except CentralRefused as exc:
                self.last_error = exc.to_dict()
                self.enabled = False  # an old central, or this agent was revoked: stop
                log.warning("high-water reports stopped: %s", exc)
                return False
            except (EdgeError, sqlite3.Error) as exc:  # the store refused (a full disk, ...)
                self._requeue(pending)
                self.last_error = {"code": getattr(exc, "code", "ERR_IO"), "message": str(exc)}
                self._down_until = time.monotonic() + self.seconds
                return False
            self.reports += 1
            self.rollback = self.rollback or guard.rollback
            return True

    def _note_acks(self, wait: bool) -> None:
        """Write the acknowledged marks down (now if `wait`, else only if the store is free)."""
        with self._acks_lock:
            acks = dict(self._acks)
        if not acks:
            return
        statements = rollback.ack_statements(acks, format_ts(self.agent.now()))
        if wait:
            with self.agent.store.write() as conn:
                for sql, params in statements:
                    conn.execute(sql, params)
            self._forget(acks)
        elif self.agent.store.try_write(statements):
            self._forget(acks)

    def _requeue(self, count: int) -> None:
        with self._count_lock:
            self._unreported += count

    def finish(self) -> None:
        """Stop the thread and send the last report (skipped while central is down)."""
        if self._issuer is not None:
            if self._issuer.rider is self:
                self._issuer.rider = None
            self._issuer = None  # the last acks are noted below, in a transaction of their own
        self._stopped = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()
        if self.enabled and time.monotonic() >= self._down_until:
            try:
                unreported = bool(self._unreported) or rollback.unreported_marks(self.agent)
            except sqlite3.Error:
                unreported = False
            if unreported:
                self.report()
        try:
            self._note_acks(wait=True)
        except (EdgeError, sqlite3.Error) as exc:  # a full disk: central has the marks anyway
            log.warning("acknowledged marks not noted: %s", exc)
        if self._client is not None:
            self._client.close()
            self._client = None
