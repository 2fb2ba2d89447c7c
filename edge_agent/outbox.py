"""The outbox and its sync worker: deliver every recorded fact to central, at least once.

Central makes delivery exactly-once in effect (event ids are unique there). While central
is unreachable the whole queue waits with a jittered, capped backoff; an event central
answers `retry` waits on its own schedule (1 m, 5 m, 15 m, 1 h, 6 h, then every 6 h) and
goes `dead` after `max_attempts`. Events of one serial are sent in the order they were
recorded: an event waits while an earlier event of its serial is waiting.
"""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from edge_agent.agent import Agent
from edge_agent.errors import ERR_AGENT_REVOKED, CentralRefused, CentralUnreachable
from protocol.events import ACCEPTED, DUPLICATE, QUARANTINED, REJECTED, Event
from protocol.reconcile import Digest
from protocol.timefmt import parse_ts

PENDING = "pending"
DONE = "done"
DEAD = "dead"
FINAL = {ACCEPTED: DONE, DUPLICATE: DONE, QUARANTINED: QUARANTINED, REJECTED: REJECTED}

_DUE = """
SELECT o.seq, o.body, o.attempts FROM outbox o
WHERE o.status = 'pending' AND o.next_attempt_at <= :now
  AND NOT EXISTS (
    SELECT 1 FROM outbox p
    WHERE p.serial = o.serial AND p.seq < o.seq AND p.status = 'pending'
      AND p.next_attempt_at > :now)
ORDER BY o.seq LIMIT :limit
"""


def counts(agent: Agent) -> dict[str, int]:
    """Return the number of outbox events per status (pending, dead, ...)."""
    rows = agent.store.conn().execute("SELECT status, COUNT(*) AS n FROM outbox GROUP BY status")
    found = {r["status"]: r["n"] for r in rows}
    return {s: found.get(s, 0) for s in (PENDING, DEAD, REJECTED, QUARANTINED, DONE)}


def waiting(agent: Agent) -> dict[str, int]:
    """Return the pending and dead events only: a look at those index ranges, not a count of
    every delivered event kept for the retention (the marks reports ask every 50 serials)."""
    rows = agent.store.conn().execute(
        "SELECT status, COUNT(*) AS n FROM outbox WHERE status IN (?, ?) GROUP BY status",
        (PENDING, DEAD),
    )
    found = {r["status"]: r["n"] for r in rows}
    return {PENDING: found.get(PENDING, 0), DEAD: found.get(DEAD, 0)}


def oldest_pending_age(agent: Agent, now: float) -> float | None:
    """Return the age in seconds of the oldest pending event, if any."""
    row = (
        agent.store.conn()
        .execute("SELECT created_at FROM outbox WHERE status = 'pending' ORDER BY seq LIMIT 1")
        .fetchone()
    )
    if row is None:
        return None
    return max(0.0, now - parse_ts(row["created_at"]).timestamp())


@dataclass
class PushResult:
    """What one push did."""

    sent: int = 0
    results: Counter[str] = field(default_factory=Counter)
    dead: int = 0


def retry_delay(schedule: tuple[float, ...], attempts: int) -> float:
    """Return the wait after the `attempts`-th `retry` answer (1-based)."""
    return schedule[min(attempts, len(schedule)) - 1]


def push_once(agent: Agent, now: float | None = None) -> PushResult:
    """Send one batch of due events and record central's answers; raise if central is down.

    A revoked agent sends nothing (central would refuse it) and keeps every event.
    """
    now = time.time() if now is None else now
    cfg = agent.config
    revoked = agent.revoked()
    if revoked is not None:
        raise CentralRefused(
            ERR_AGENT_REVOKED,
            f"not sending: this agent was revoked by central ({revoked.get('message', '')}); "
            "its events are kept",
            403,
        )
    rows = agent.store.conn().execute(_DUE, {"now": now, "limit": cfg.sync_batch}).fetchall()
    if not rows:
        return PushResult()
    events = [Event.from_json(r["body"]) for r in rows]
    results = agent.client().push_events(events)
    by_id = {r.event_id: r for r in results}
    report = PushResult(sent=len(rows))
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    with agent.store.write() as conn:
        for row, event in zip(rows, events, strict=True):
            result = by_id.get(event.event_id)
            status = result.status if result else "retry"
            report.results[status] += 1
            code = result.code if result else "ERR_NO_RESULT"
            message = result.message if result else "central gave no result for this event"
            final = FINAL.get(status)
            if final is not None:
                conn.execute(
                    "UPDATE outbox SET status = ?, acked_at = ?, last_code = ?, last_message = ?, "
                    "attempts = attempts + 1 WHERE seq = ? AND status = 'pending'",
                    (final, stamp, code, message, row["seq"]),
                )
                continue
            attempts = row["attempts"] + 1
            if attempts >= cfg.max_attempts:
                report.dead += 1
                conn.execute(
                    "UPDATE outbox SET status = 'dead', attempts = ?, last_code = ?, "
                    "last_message = ? WHERE seq = ? AND status = 'pending'",
                    (attempts, code, message, row["seq"]),
                )
            else:
                conn.execute(
                    "UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_code = ?, "
                    "last_message = ? WHERE seq = ? AND status = 'pending'",
                    (
                        attempts,
                        now + retry_delay(cfg.retry_schedule, attempts),
                        code,
                        message,
                        row["seq"],
                    ),
                )
    return report


@dataclass
class FlushSummary:
    """The outcome of `flush`, as printed by `lineledger-edge sync`."""

    batches: int = 0
    sent: int = 0
    results: Counter[str] = field(default_factory=Counter)
    error: dict[str, str] | None = None
    outbox: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON summary."""
        out: dict[str, Any] = {
            "ok": self.error is None,
            "batches": self.batches,
            "sent": self.sent,
            "results": dict(self.results),
            "outbox": self.outbox,
        }
        if self.error:
            out["error"] = self.error
        return out


def flush(agent: Agent, probe: bool = False) -> FlushSummary:
    """Push until nothing is due or central refuses or cannot be reached.

    With `probe`, central is asked (ping) when there was nothing to push, so a caller learns
    that central is down even with an empty outbox.
    """
    summary = FlushSummary()
    try:
        while True:
            result = push_once(agent)
            if result.sent == 0:
                break
            summary.batches += 1
            summary.sent += result.sent
            summary.results.update(result.results)
        if probe and summary.batches == 0:
            agent.client().ping(timeout=min(3.0, agent.config.http_timeout))
    except (CentralUnreachable, CentralRefused) as exc:
        summary.error = exc.to_dict()
    summary.outbox = counts(agent)
    return summary


class SyncWorker:
    """Push due events on a schedule, backing off while central is unreachable."""

    def __init__(self, agent: Agent, rng: random.Random | None = None) -> None:
        self.agent = agent
        self.rng = rng or random.Random()
        self.failures = 0
        self.next_try = 0.0
        self.last_error: dict[str, str] | None = None
        self.last_success: float | None = None
        # Events waited for central (down, refusing, resent by a reconcile, or a backlog the
        # service found at its start): the next drain is a catch-up, and a reconcile follows.
        self.behind = True
        self.caught_up = False  # the outbox drained after being behind: time to reconcile
        self._lock = threading.Lock()

    def backoff(self) -> float:
        """Return the next reconnect delay: exponential, capped, with full jitter in [½, 1]."""
        cfg = self.agent.config
        ceiling = min(cfg.backoff_max, cfg.backoff_base * (2 ** min(self.failures, 30)))
        return ceiling * self.rng.uniform(0.5, 1.0)

    def run(self, now: float | None = None) -> PushResult | None:
        """Push batches until nothing is due; skip while backing off. Thread-safe."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            now = time.time() if now is None else now
            if now < self.next_try:
                return None
            total = PushResult()
            while True:
                try:
                    result = push_once(self.agent, now)
                except (CentralUnreachable, CentralRefused) as exc:
                    self.failures += 1
                    self.behind = True
                    self.last_error = exc.to_dict()
                    self.next_try = now + self.backoff()
                    if exc.code == ERR_AGENT_REVOKED:
                        self._probe()
                    return total
                self.failures = 0
                self.last_error = None
                self.last_success = now
                if result.sent == 0:
                    if self.behind:
                        self.behind = False
                        self.caught_up = self.caught_up or total.sent > 0
                    return total
                total.sent += result.sent
                total.results.update(result.results)
                total.dead += result.dead
                now = time.time()
        finally:
            self._lock.release()

    def _probe(self) -> None:
        """Ask central (cheaply) whether a revoked agent was reinstated meanwhile."""
        try:
            self.agent.client().ping(timeout=min(3.0, self.agent.config.http_timeout))
        except (CentralUnreachable, CentralRefused):
            return  # still revoked or unreachable; a success clears the mark by itself

    def take_caught_up(self) -> bool:
        """Return whether the outbox caught up since the last call (and forget it)."""
        caught_up, self.caught_up = self.caught_up, False
        return caught_up

    def state(self) -> dict[str, Any]:
        """Return the worker's view of central for the status page."""
        return {
            "failures": self.failures,
            "next_try": self.next_try,
            "last_error": self.last_error,
            "last_success": self.last_success,
        }


def dead_letters(agent: Agent, limit: int = 50) -> list[dict[str, Any]]:
    """Return the events that will not be delivered without help (dead or refused)."""
    rows = agent.store.conn().execute(
        "SELECT event_id, serial, type, status, attempts, last_code, last_message FROM outbox "
        "WHERE status IN ('dead', 'rejected', 'quarantined') ORDER BY seq DESC LIMIT ?",
        (limit,),
    )
    return [dict(r) for r in rows]


def pruned_digest(conn: sqlite3.Connection, lease_id: str) -> tuple[Counter[str], Digest]:
    """Return the counts per type and the digest of a lease's pruned events."""
    row = conn.execute(
        "SELECT counts, buckets FROM lease_digests WHERE lease_id = ?", (lease_id,)
    ).fetchone()
    if row is None:
        return Counter(), Digest()
    counts = Counter({str(k): int(v) for k, v in json.loads(row["counts"] or "{}").items()})
    return counts, Digest.from_wire(json.loads(row["buckets"] or "{}"))


def _fold(conn: sqlite3.Connection, rows: list[sqlite3.Row]) -> None:
    """Fold events about to be deleted into their leases' kept digests."""
    by_lease: dict[str, list[sqlite3.Row]] = {}
    for row in rows:
        by_lease.setdefault(row["lease_id"], []).append(row)
    for lease_id, items in by_lease.items():
        counts, digest = pruned_digest(conn, lease_id)
        for row in items:
            digest.add(row["event_id"])
            counts[row["type"]] += 1
        conn.execute(
            "INSERT INTO lease_digests(lease_id, counts, buckets, events) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(lease_id) DO UPDATE SET counts = excluded.counts, "
            "buckets = excluded.buckets, events = excluded.events",
            (
                lease_id,
                json.dumps(dict(counts), sort_keys=True),
                json.dumps(digest.to_wire(), sort_keys=True),
                digest.total,
            ),
        )


def prune(agent: Agent, now: float, retention_days: float) -> int:
    """Delete confirmed events and sent print jobs older than the retention; return how many.

    Only events a reconcile confirmed central holds are deleted, and they are folded into
    their lease's kept digest in the same transaction, so later reconciles still match;
    pending, dead, refused and unconfirmed events stay until someone deals with them.
    """
    cutoff = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now - retention_days * 86400))
    with agent.store.write() as conn:
        rows = conn.execute(
            "SELECT o.seq, o.event_id, o.type, s.lease_id FROM outbox o "
            "JOIN serials s ON s.serial = o.serial WHERE o.status = 'done' "
            "AND o.confirmed_at IS NOT NULL AND o.acked_at < ? AND s.lease_id IS NOT NULL",
            (cutoff,),
        ).fetchall()
        _fold(conn, rows)
        events = 0
        seqs = [r["seq"] for r in rows]
        for i in range(0, len(seqs), 500):
            chunk = seqs[i : i + 500]
            events += conn.execute(
                f"DELETE FROM outbox WHERE seq IN ({','.join('?' * len(chunk))})", chunk
            ).rowcount
        jobs = conn.execute(
            "DELETE FROM print_jobs WHERE status = 'sent' AND sent_at < ?", (cutoff,)
        ).rowcount
    return int(events + jobs)
