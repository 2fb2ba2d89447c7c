"""The print queue: labels waiting for a printer, sent in order, never lost or sent twice.

A job goes queued → claimed (by one process) → sending → sent, and its `printed` event is
recorded in the same transaction that marks it sent, as is one more label in the printer's
odometer record (`edge_agent.odometer`); a failed send makes it `failed`, tried again after
`print_retry`. The printer's status is checked before every batch: a fault (paper out, head
open, silent printer, unreachable) leaves the jobs queued and tells the operator, and printing
resumes once the fault clears. A ready printer's label odometer is read too: a printer that
printed labels this agent has no record of holds its queue until a supervisor confirms. A format the
printer took before a fault appeared stays in its buffer and prints when the fault clears,
so it is not sent again. A claim whose process died mid-send is put on hold for the operator:
whether that label came out cannot be known, and a second label with the same serial would be
worse than a missing one.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from edge_agent import odometer
from edge_agent.agent import Agent
from edge_agent.errors import ERR_BUSY, ERR_JOB_UNKNOWN, ERR_NOT_OURS, EdgeError
from edge_agent.issuing import check_reason, void_serial
from edge_agent.labels import label_for
from printers import PrinterError, PrinterStatus, open_printer
from printers.base import PrinterTransport
from printers.errors import ERR_PRINTER_IO, ERR_PRINTER_NO_ANSWER, ERR_PRINTER_UNREACHABLE
from printers.render import render_label
from protocol.errors import CodedError, ProtocolError
from protocol.events import Event
from protocol.lifecycle import PRINTED, REPRINTED, next_state
from protocol.timefmt import format_ts

QUEUED = "queued"
CLAIMED = "claimed"  # taken by one process, not started
SENDING = "sending"  # being written to the printer
SENT = "sent"
CANCELLED = "cancelled"  # the serial was voided before its label was sent
FAILED = "failed"  # the last attempt failed; tried again at next_attempt_at
HELD = "held"
_ERROR_STATES = {ERR_PRINTER_UNREACHABLE: "unreachable", ERR_PRINTER_NO_ANSWER: "no_answer"}


@dataclass
class PrintRound:
    """What one run of the queue did for one printer."""

    printer: str
    sent: list[int] = field(default_factory=list)
    state: str = "ready"
    error: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the round as JSON."""
        return {
            "printer": self.printer,
            "sent": len(self.sent),
            "state": self.state,
            "error": self.error,
        }


def printer_state(agent: Agent, url: str) -> dict[str, Any] | None:
    """Return the last known state of a printer."""
    value = agent.store.get_meta_json(f"printer:{url}")
    return value if isinstance(value, dict) else None


def job_counts(agent: Agent, printer_url: str | None = None) -> dict[str, int]:
    """Return print jobs per status, of one printer when `printer_url` is given."""
    if printer_url is None:
        rows = agent.store.conn().execute(
            "SELECT status, COUNT(*) AS n FROM print_jobs GROUP BY status"
        )
    else:
        rows = agent.store.conn().execute(
            "SELECT status, COUNT(*) AS n FROM print_jobs WHERE printer_url = ? GROUP BY status",
            (printer_url,),
        )
    found = {r["status"]: r["n"] for r in rows}
    return {s: found.get(s, 0) for s in (QUEUED, CLAIMED, SENDING, SENT, FAILED, HELD, CANCELLED)}


class PrintQueue:
    """Send one agent's queued labels to their printers."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._transports: dict[str, PrinterTransport] = {}

    def close(self) -> None:
        """Close printer connections."""
        for transport in self._transports.values():
            transport.close()
        self._transports.clear()

    def _transport(self, url: str) -> PrinterTransport:
        transport = self._transports.get(url)
        if transport is None:
            timeout = self.agent.config.printer_timeout
            transport = open_printer(url, connect_timeout=timeout, status_timeout=timeout)
            self._transports[url] = transport
        return transport

    def _remember(
        self, url: str, state: str, error: CodedError | None, status: PrinterStatus | None = None
    ) -> None:
        value = {
            "url": url,
            "state": state,
            "checked_at": format_ts(self.agent.now()),
            "code": error.code if error else None,
            "message": error.message if error else "ready",
            "formats_in_buffer": status.formats_in_buffer if status else None,
        }
        with self.agent.store.write() as conn:
            self.agent.store.set_meta(conn, f"printer:{url}", json.dumps(value))

    def check(self, url: str) -> tuple[str, CodedError | None]:
        """Ask the printer how it is (and, when ready, its label count); remember the answer."""
        try:
            status = self._transport(url).query_status()
        except PrinterError as exc:
            state = _ERROR_STATES.get(exc.code, "error")
            self._remember(url, state, exc)
            return state, exc
        error = status.error()
        if error is None and self.agent.config.odometer_check:
            state, odometer_error = self._check_odometer(url, status)
            if odometer_error is not None:
                self._remember(url, state, odometer_error, status)
                return state, odometer_error
        self._remember(url, status.state, error, status)
        return status.state, error

    def _check_odometer(self, url: str, status: PrinterStatus) -> tuple[str, CodedError | None]:
        """Compare the printer's label count with what this agent sent it."""
        if odometer.recently_silent(self.agent, url, time.time()):
            return "ready", None  # it ignored the query a moment ago: no timeout per batch
        try:
            reading = self._transport(url).query_odometer()
        except PrinterError as exc:
            return _ERROR_STATES.get(exc.code, "error"), exc
        verdict = odometer.evaluate(self.agent, url, reading, status)
        return verdict.state, verdict.error

    def recover_stale(self, now: float | None = None) -> int:
        """Settle claims whose process stopped; return how many jobs were put on hold.

        A job claimed but never started goes back to the queue. A job that was being sent
        is put on hold: whether its label came out cannot be known.
        """
        cutoff = (time.time() if now is None else now) - self.agent.config.claim_stale_seconds
        with self.agent.store.write() as conn:
            conn.execute(
                "UPDATE print_jobs SET status = 'queued', owner = NULL, claimed_at = NULL "
                "WHERE status = 'claimed' AND claimed_at < ?",
                (cutoff,),
            )
            held = conn.execute(
                "UPDATE print_jobs SET status = 'held', last_error = ? "
                "WHERE status = 'sending' AND claimed_at < ?",
                (
                    "sending was interrupted; check whether the label came out, then confirm "
                    "or release the job",
                    cutoff,
                ),
            )
            return held.rowcount

    def _claim(self, url: str, job_ids: list[int] | None, now: float) -> list[Any]:
        only = ""
        params: list[Any] = [self.owner, now, url, now]
        if job_ids is not None:
            only = f" AND id IN ({','.join('?' * len(job_ids))})"
            params += job_ids
        params.append(self.agent.config.print_batch)
        with self.agent.store.write() as conn:
            rows = conn.execute(
                "UPDATE print_jobs SET status = 'claimed', owner = ?, claimed_at = ? "
                "WHERE id IN (SELECT id FROM print_jobs WHERE status IN ('queued', 'failed') AND "
                f"printer_url = ? AND next_attempt_at <= ?{only} ORDER BY id LIMIT ?) "
                "RETURNING id, serial, kind, reason",
                params,
            ).fetchall()
        return sorted(rows, key=lambda r: r["id"])

    def _start_sending(self, job: Any) -> bool:
        """Mark a claimed job as being sent; False if this process no longer owns it."""
        with self.agent.store.write() as conn:
            cur = conn.execute(
                "UPDATE print_jobs SET status = 'sending', claimed_at = ? "
                "WHERE id = ? AND owner = ? AND status = 'claimed'",
                (time.time(), job["id"], self.owner),
            )
            return cur.rowcount == 1

    def _release(
        self, jobs: list[Any], error: PrinterError, failed: int | None, now: float
    ) -> None:
        """Give jobs back after a failure; the one that failed waits `print_retry`."""
        with self.agent.store.write() as conn:
            for job in jobs:
                bump = job["id"] == failed
                conn.execute(
                    "UPDATE print_jobs SET status = ?, owner = NULL, claimed_at = NULL, "
                    "attempts = attempts + ?, next_attempt_at = ?, last_error = ? "
                    "WHERE id = ? AND owner = ? AND status IN ('claimed', 'sending')",
                    (
                        FAILED if bump else QUEUED,
                        1 if bump else 0,
                        now + self.agent.config.print_retry if bump else 0,
                        f"{error.code}: {error.message}",
                        job["id"],
                        self.owner,
                    ),
                )

    def _hold(self, job: Any, exc: CodedError) -> None:
        with self.agent.store.write() as conn:
            conn.execute(
                "UPDATE print_jobs SET status = 'held', last_error = ? WHERE id = ? AND owner = ?",
                (f"{exc.code}: {exc.message}", job["id"], self.owner),
            )

    def run(self, url: str, job_ids: list[int] | None = None) -> PrintRound:
        """Send queued labels for one printer until none is due or the printer has a fault.

        The printer's status is asked before every batch and once more after the last one,
        so a fault that appeared while printing is shown at once.
        """
        result = PrintRound(url)
        while True:
            now = time.time()
            state, error = self.check(url)
            result.state = state
            if error is not None:
                result.error = error.to_dict()
                return result
            jobs = self._claim(url, job_ids, now)
            if not jobs:
                return result
            transport = self._transport(url)
            for i, job in enumerate(jobs):
                try:
                    label, template = label_for(self.agent, job["serial"])
                    data = render_label(label, template, transport.format)
                except (PrinterError, EdgeError) as exc:  # this label cannot be printed: hold it
                    self._hold(job, exc)
                    continue
                if not self._start_sending(job):
                    continue  # settled by someone else meanwhile
                try:
                    transport.send(data, job_name=job["serial"])
                except PrinterError as exc:
                    if exc.code == ERR_PRINTER_IO and not transport.partial_write_discarded:
                        # Part of this label may sit in the printer's buffer: someone must look.
                        self._hold(job, exc)
                        self._release(jobs[i + 1 :], exc, None, now)
                    else:
                        # Unreachable, or a broken-off write the printer dropped: try again.
                        self._release(jobs[i:], exc, job["id"], now)
                    result.state = self.check(url)[0]
                    result.error = exc.to_dict()
                    return result
                mark_sent(self.agent, job, url, self.owner)
                result.sent.append(job["id"])

    def run_all(self) -> list[PrintRound]:
        """Run the queue for every printer that has due jobs."""
        self.recover_stale()
        urls = [
            r["printer_url"]
            for r in self.agent.store.conn().execute(
                "SELECT DISTINCT printer_url FROM print_jobs WHERE status IN ('queued', 'failed') "
                "AND next_attempt_at <= ?",
                (time.time(),),
            )
        ]
        return [self.run(url) for url in urls]


def _event_data(job: Any, url: str) -> dict[str, Any]:
    data: dict[str, Any] = {"printer": url[:256], "job": job["id"]}
    if job["reason"]:
        data["reason"] = job["reason"][:256]
    return data


def job_statuses(agent: Agent, job_ids: list[int]) -> dict[str, int]:
    """Return how many of the given jobs are in each status."""
    counts = dict.fromkeys((QUEUED, CLAIMED, SENDING, SENT, FAILED, HELD, CANCELLED), 0)
    conn = agent.store.conn()
    for i in range(0, len(job_ids), 500):
        chunk = job_ids[i : i + 500]
        for row in conn.execute(
            f"SELECT status, COUNT(*) AS n FROM print_jobs WHERE id IN "
            f"({','.join('?' * len(chunk))}) GROUP BY status",
            chunk,
        ):
            counts[row["status"]] = counts.get(row["status"], 0) + row["n"]
    return counts


def recover_stale_jobs(agent: Agent) -> int:
    """Settle the claims of processes that stopped (see PrintQueue.recover_stale)."""
    queue = PrintQueue(agent)
    try:
        return queue.recover_stale()
    finally:
        queue.close()


def mark_sent(agent: Agent, job: Any, url: str, owner: str | None) -> bool:
    """Record a job sent and its `printed` event in one transaction.

    `owner` is the sending process: the job must still be `sending` by it (or put on hold
    meanwhile, for it was sent all the same). None is the operator confirming a held job.
    Returns False, recording nothing, when the job is in no such state.
    """
    stamp = format_ts(agent.now())
    kind = REPRINTED if job["kind"] == "reprint" else PRINTED
    event = Event(
        agent.new_event_id(),
        kind,
        job["serial"],
        stamp,
        data=_event_data(job, url),
    )
    if owner is None:
        where, params = "status = 'held'", ()
    else:
        where, params = "owner = ? AND status IN ('sending', 'held')", (owner,)
    with agent.store.write() as conn:
        cur = conn.execute(
            "UPDATE print_jobs SET status = 'sent', sent_at = ?, last_error = NULL "
            f"WHERE id = ? AND {where}",
            (stamp, job["id"], *params),
        )
        if cur.rowcount != 1:
            return False
        if kind == PRINTED:
            conn.execute(
                "UPDATE serials SET state = 'printed' WHERE serial = ? AND state = 'issued'",
                (job["serial"],),
            )
        odometer.count_sent(conn, url)
        conn.execute(
            "INSERT INTO outbox(event_id, serial, type, body, created_at, status) "
            "VALUES (?, ?, ?, ?, ?, 'pending')",
            (event.event_id, job["serial"], kind, event.to_json(), stamp),
        )
    return True


def queue_reprint(agent: Agent, serial: str, reason: str, printer_url: str) -> int:
    """Queue a reprint of a printed serial's label, with the reason it is needed."""
    reason = check_reason(reason)
    stamp = format_ts(agent.now())
    with agent.store.write() as conn:
        row = conn.execute("SELECT state FROM serials WHERE serial = ?", (serial,)).fetchone()
        if row is None:
            raise EdgeError(ERR_NOT_OURS, f"serial {serial} was not issued by this agent")
        try:
            next_state(row["state"], REPRINTED)
        except ProtocolError as exc:
            raise EdgeError(exc.code, f"cannot reprint {serial}: it is {row['state']}") from None
        job = conn.execute(
            "INSERT INTO print_jobs(serial, printer_url, kind, status, created_at, reason) "
            "VALUES (?, ?, 'reprint', 'queued', ?, ?)",
            (serial, printer_url, stamp, reason),
        ).lastrowid
    assert job is not None
    return job


def release_job(agent: Agent, job_id: int) -> None:
    """Queue a held job again (the operator saw that its label did not come out)."""
    with agent.store.write() as conn:
        cur = conn.execute(
            "UPDATE print_jobs SET status = 'queued', next_attempt_at = 0, "
            "owner = NULL, last_error = NULL WHERE id = ? AND status = 'held'",
            (job_id,),
        )
        if cur.rowcount != 1:
            raise EdgeError(ERR_JOB_UNKNOWN, f"no held print job {job_id}")


def confirm_job(agent: Agent, job_id: int) -> None:
    """Mark a held job sent (the operator saw its label come out) and record `printed`."""
    row = (
        agent.store.conn()
        .execute(
            "SELECT id, serial, kind, reason, printer_url FROM print_jobs WHERE id = ?", (job_id,)
        )
        .fetchone()
    )
    if row is None or not mark_sent(agent, row, row["printer_url"], None):
        raise EdgeError(ERR_JOB_UNKNOWN, f"no held print job {job_id}")


LINE_PRINTER_KEY = "line_printer"


def line_printer(agent: Agent) -> str | None:
    """Return the printer `run` serves the line with (recorded at its start), if any."""
    value = agent.store.get_meta_json(LINE_PRINTER_KEY)
    url = value.get("url") if isinstance(value, dict) else None
    return url if isinstance(url, str) and url else None


def set_line_printer(agent: Agent, url: str | None) -> None:
    """Record the printer the line's service prints on, so `issue --print` uses it too."""
    with agent.store.write() as conn:
        if url:
            value = {"url": url, "set_by": "run", "at": format_ts(agent.now())}
            agent.store.set_meta(conn, LINE_PRINTER_KEY, json.dumps(value, sort_keys=True))
        else:
            conn.execute("DELETE FROM meta WHERE key = ?", (LINE_PRINTER_KEY,))


def default_printer(agent: Agent) -> str | None:
    """Return the printer a command uses when none is named: the line's, else edge.toml's."""
    return line_printer(agent) or agent.config.printer_url or None


@dataclass
class Cancelled:
    """What `cancel_jobs` did: the jobs cancelled, and the serials voided with them."""

    jobs: list[int] = field(default_factory=list)
    serials: list[str] = field(default_factory=list)
    voided: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return the outcome as JSON."""
        return {"cancelled": self.jobs, "serials": self.serials, "voided": self.voided}


CANCELLABLE = (QUEUED, FAILED, HELD)


def cancel_jobs(
    agent: Agent,
    reason: str,
    job_ids: list[int] | None = None,
    printer_url: str | None = None,
    void: bool = False,
) -> Cancelled:
    """Cancel waiting print jobs (by id, or every one of a printer); serials stay issued.

    A job being sent right now cannot be cancelled (ERR_BUSY). With `void`, the operator
    says those labels were never applied: each cancelled first print's serial is voided
    with the reason (a reprint's serial keeps its label, so it is not voided).
    """
    reason = check_reason(reason)
    stamp = format_ts(agent.now())
    done = Cancelled()
    with agent.store.write() as conn:
        if job_ids is not None:
            rows = []
            for job_id in job_ids:
                row = conn.execute(
                    "SELECT id, serial, kind, status FROM print_jobs WHERE id = ?", (job_id,)
                ).fetchone()
                if row is None:
                    raise EdgeError(ERR_JOB_UNKNOWN, f"no print job {job_id}")
                if row["status"] in (CLAIMED, SENDING):
                    raise EdgeError(
                        ERR_BUSY, f"print job {job_id} is being sent right now; try again"
                    )
                if row["status"] not in CANCELLABLE:
                    raise EdgeError(
                        ERR_JOB_UNKNOWN,
                        f"print job {job_id} is {row['status']}: only queued, failed or held "
                        "jobs can be cancelled",
                    )
                rows.append(row)
        else:
            rows = conn.execute(
                f"SELECT id, serial, kind, status FROM print_jobs WHERE printer_url = ? AND "
                f"status IN ({','.join('?' * len(CANCELLABLE))}) ORDER BY id",
                (printer_url, *CANCELLABLE),
            ).fetchall()
        for row in rows:
            conn.execute(
                "UPDATE print_jobs SET status = 'cancelled', owner = NULL, claimed_at = NULL, "
                "last_error = ? WHERE id = ?",
                (f"cancelled by the operator at {stamp}: {reason}"[:256], row["id"]),
            )
            done.jobs.append(row["id"])
            if row["serial"] not in done.serials:
                done.serials.append(row["serial"])
    if void:
        firsts = {r["serial"] for r in rows if r["kind"] != "reprint"}
        for serial in [s for s in done.serials if s in firsts]:
            state = (
                agent.store.conn()
                .execute("SELECT state FROM serials WHERE serial = ?", (serial,))
                .fetchone()
            )
            if state is not None and state["state"] == "issued":
                void_serial(agent, serial, f"label never applied (print cancelled): {reason}")
                done.voided.append(serial)
    return done


def list_jobs(agent: Agent, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Return print jobs, newest first."""
    query = (
        "SELECT id, serial, printer_url, kind, status, attempts, last_error, sent_at "
        "FROM print_jobs"
    )
    params: list[Any] = []
    if status:
        query += " WHERE status = ?"
        params.append(status)
    query += " ORDER BY id DESC LIMIT ?"
    params.append(limit)
    return [dict(r) for r in agent.store.conn().execute(query, params)]
