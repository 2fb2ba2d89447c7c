"""The printer's label odometer as a second witness: labels printed that this agent never sent.

Each printer has a record: the labels this agent sent it (counted in the transaction that marks
a print job sent, `printing.mark_sent`) and a baseline, the printer's odometer and the agent's
count when the two were last known to agree. Before every batch the print queue reads the
printer's lifetime label count (`printers.odometer`). When the printer counted more labels
since the baseline than the agent sent it, beyond `odometer_tolerance`, those labels came from
somewhere else: most often from this very agent, run from a newer copy of its database before
the line PC was restored from an older one, so their serial numbers may be handed out again.
Issuing and printing on that printer are then held, its waiting print jobs are put on hold
(their labels may already have come out), and the operator page says so, until a supervisor
confirms with `lineledger-edge printer confirm-odometer`: that records who, why and when, skips
as many numbers of every active lease as there were unknown labels (the numbers those labels
most likely carry), and takes a new baseline at the next check.

Rules, and why:
- The first contact with a printer takes the baseline; so does the first check after a
  confirmation. A baseline is taken only while the printer reports an empty receive buffer and
  no labels left in its batch: a label still to print would later look like an unknown one.
- Labels the printer has not counted yet (still in its buffer, or lost) never hold. The
  baseline is kept, because those labels may still print.
- A count lower than at the baseline means another printer answers at this address (or its
  counter was reset): a new baseline is taken and noted, never a hold. While held, it changes
  nothing: only a supervisor lifts a hold.
- Print jobs another process is sending at this moment may already be counted by the printer
  and not yet by us: they are not taken for unknown labels.
- A printer that answers "?" or nothing has no odometer to compare: no hold, and its state
  says so. One that stayed silent is asked again after `odometer_recheck_seconds`, so it does
  not cost a timeout per batch.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from dataclasses import asdict, dataclass
from typing import Any

from edge_agent.agent import Agent
from edge_agent.errors import (
    ERR_PRINTER_BUSY,
    ERR_PRINTER_ODOMETER,
    ERR_PRINTER_UNKNOWN,
    ERR_REASON,
    EdgeError,
)
from edge_agent.issuing import check_reason
from printers.errors import PrinterError
from printers.odometer import NO_ANSWER, LabelOdometer
from printers.status import PrinterStatus
from printers.urls import describe_url
from protocol.timefmt import format_ts

log = logging.getLogger("lineledger.edge")

OK = "ok"
NEW = "new"  # no baseline: the next check with an idle printer takes one
WAITING = "waiting"  # a baseline is due, but the printer is still printing
HELD = "odometer_mismatch"
HELD_JOB_PREFIX = f"{ERR_PRINTER_ODOMETER}: "
MAX_ACTOR = 64
# What the print queue shows for each of our states that stops printing.
CHECK_STATES = {HELD: HELD, WAITING: "busy"}


def printer_key(url: str) -> str:
    """Return the URL that names a printer's record: its normal form, so spellings agree."""
    try:
        return describe_url(url)
    except PrinterError:
        return url


@dataclass(frozen=True)
class OdometerRecord:
    """What this agent knows about one printer's label odometer."""

    printer: str
    labels_sent: int = 0
    baseline_odometer: int | None = None
    baseline_sent: int = 0
    baseline_at: str | None = None
    state: str = NEW
    unknown: int = 0
    uncounted: int = 0
    printer_count: int | None = None
    checked_at: str | None = None
    asked_at: float | None = None
    note: str | None = None

    @property
    def held(self) -> bool:
        """Return True while issuing and printing on this printer are held."""
        return self.state == HELD

    def to_dict(self) -> dict[str, Any]:
        """Return the record as JSON for `status` and the operator page."""
        out = asdict(self)
        out.pop("asked_at")
        out["held"] = self.held
        if self.baseline_odometer is not None and self.printer_count is not None:
            out["since_baseline"] = {
                "printed": self.printer_count - self.baseline_odometer,
                "sent": self.labels_sent - self.baseline_sent,
            }
        out["message"] = message(self)
        out["summary"] = summary(self)
        return out


@dataclass(frozen=True)
class Decision:
    """What one reading of the odometer means for a printer's record."""

    state: str
    baseline: tuple[int, int] | None = None  # a new (printer count, labels sent), or keep
    unknown: int = 0
    uncounted: int = 0
    event: str | None = None  # what to write to the odometer log
    note: str | None = None


def decide(
    record: OdometerRecord, count: int, idle: bool, in_flight: int, tolerance: int
) -> Decision:
    """Compare a printer's label count with the record; pure, see the module's rules."""
    held = record.held
    if record.baseline_odometer is None:
        if not idle:
            return Decision(WAITING, note="waiting for the printer to finish what it holds")
        return Decision(OK, (count, record.labels_sent), event="baseline")
    if count < record.baseline_odometer:
        went_down = (
            f"The printer's label count went down from {record.baseline_odometer} to {count}: "
            "another printer answers at this address, or its counter was reset."
        )
        if held:
            return Decision(HELD, unknown=record.unknown, note=went_down)
        if not idle:
            return Decision(WAITING, note=went_down)
        return Decision(
            OK, (count, record.labels_sent), event="replaced", note=went_down + " New baseline."
        )
    printed = count - record.baseline_odometer
    sent = record.labels_sent - record.baseline_sent
    unknown = printed - sent - in_flight
    if unknown > tolerance:
        event = "mismatch" if not held or unknown != record.unknown else None
        return Decision(HELD, unknown=unknown, event=event)
    return Decision(
        OK,
        unknown=max(unknown, 0),
        uncounted=max(sent - printed, 0),
        event="resolved" if held else None,
    )


def message(record: OdometerRecord) -> str:
    """Return a sentence for the operator about the record's state."""
    if record.held:
        printed = (record.printer_count or 0) - (record.baseline_odometer or 0)
        sent = record.labels_sent - record.baseline_sent
        counted = (
            f": it counted {printed} since the baseline, this agent sent it {sent}"
            if printed >= 0
            else ""  # another printer answers now; the note says so
        )
        return (
            f"The printer has printed {record.unknown} label{_s(record.unknown)} this agent has "
            f"no record of{counted}. This line PC may run from an older copy of its database "
            "(those labels may "
            "carry serial numbers it would hand out again), or something else printed here. "
            "Issuing and printing on this printer are held. A supervisor must find those labels, "
            "then run: lineledger-edge printer confirm-odometer --printer "
            f'{record.printer} --reason "..."' + (f" ({record.note})" if record.note else "")
        )
    if record.state == WAITING:
        return (
            "The printer is still printing what it holds; LineLedger reads its label count once "
            "it is idle, then prints."
        )
    if record.state == NEW:
        return "The printer's label count is read at the next check."
    if record.state == "unsupported":
        return "This printer does not report a label count: the odometer check is off for it."
    if record.state == NO_ANSWER:
        return (
            "This printer does not answer the label count query (no Set-Get-Do): the odometer "
            "check is off for it."
        )
    if record.state == "spool":
        return "A spool directory keeps no label odometer."
    text = f"Label count {record.printer_count}, in step with this agent."
    if record.uncounted:
        text = (
            f"Label count {record.printer_count}; {record.uncounted} label"
            f"{_s(record.uncounted)} sent not counted yet (still in the printer, or lost)."
        )
    return text + (f" {record.note}" if record.note else "")


def summary(record: OdometerRecord) -> str:
    """Return a few words about the record for the printer card."""
    if record.held:
        return f"HOLD: {record.unknown} unknown label{_s(record.unknown)}"
    if record.state == OK:
        extra = f", {record.uncounted} not counted yet" if record.uncounted else ""
        return f"{record.printer_count} labels, in step{extra}"
    return {
        NEW: "read at the next check",
        WAITING: "waiting for the printer to be idle",
        "unsupported": "not reported by this printer",
        NO_ANSWER: "not reported by this printer",
        "spool": "none (spool directory)",
    }.get(record.state, record.state)


def _s(n: int) -> str:
    return "" if n == 1 else "s"


_COLUMNS = (
    "printer_url, labels_sent, baseline_odometer, baseline_sent, baseline_at, state, "
    "unknown_labels, uncounted_labels, printer_count, checked_at, asked_at, note"
)


def _record(row: sqlite3.Row) -> OdometerRecord:
    return OdometerRecord(
        printer=row["printer_url"],
        labels_sent=row["labels_sent"] or 0,
        baseline_odometer=row["baseline_odometer"],
        baseline_sent=row["baseline_sent"] or 0,
        baseline_at=row["baseline_at"],
        state=row["state"] or NEW,
        unknown=row["unknown_labels"] or 0,
        uncounted=row["uncounted_labels"] or 0,
        printer_count=row["printer_count"],
        checked_at=row["checked_at"],
        asked_at=row["asked_at"],
        note=row["note"],
    )


def _load(conn: sqlite3.Connection, key: str) -> OdometerRecord | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM printer_odometers WHERE printer_url = ?", (key,)
    ).fetchone()
    return None if row is None else _record(row)


def _save(conn: sqlite3.Connection, record: OdometerRecord) -> None:
    conn.execute(
        f"INSERT INTO printer_odometers({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(printer_url) DO UPDATE SET labels_sent = excluded.labels_sent, "
        "baseline_odometer = excluded.baseline_odometer, baseline_sent = excluded.baseline_sent, "
        "baseline_at = excluded.baseline_at, state = excluded.state, "
        "unknown_labels = excluded.unknown_labels, uncounted_labels = excluded.uncounted_labels, "
        "printer_count = excluded.printer_count, checked_at = excluded.checked_at, "
        "asked_at = excluded.asked_at, note = excluded.note",
        (
            record.printer,
            record.labels_sent,
            record.baseline_odometer,
            record.baseline_sent,
            record.baseline_at,
            record.state,
            record.unknown,
            record.uncounted,
            record.printer_count,
            record.checked_at,
            record.asked_at,
            record.note,
        ),
    )


def _log(
    conn: sqlite3.Connection,
    record: OdometerRecord,
    event: str,
    stamp: str,
    actor: str | None = None,
    reason: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    conn.execute(
        "INSERT INTO odometer_log(printer_url, at, event, printer_count, labels_sent, "
        "unknown_labels, actor, reason, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            record.printer,
            stamp,
            event,
            record.printer_count,
            record.labels_sent,
            record.unknown,
            actor,
            reason,
            json.dumps(detail or {}, sort_keys=True),
        ),
    )


def count_sent(conn: sqlite3.Connection, url: str) -> None:
    """Count one label sent to a printer, inside the caller's transaction (see mark_sent)."""
    conn.execute(
        "INSERT INTO printer_odometers(printer_url, labels_sent, state) VALUES (?, 1, ?) "
        "ON CONFLICT(printer_url) DO UPDATE SET labels_sent = labels_sent + 1",
        (printer_key(url), NEW),
    )


def _jobs_urls(conn: sqlite3.Connection, key: str, statuses: tuple[str, ...]) -> list[str]:
    """Return the job URLs, as written, that name the printer `key`."""
    rows = conn.execute(
        f"SELECT DISTINCT printer_url FROM print_jobs WHERE status IN "
        f"({','.join('?' * len(statuses))})",
        statuses,
    )
    return [r["printer_url"] for r in rows if printer_key(r["printer_url"]) == key]


def _in_flight(conn: sqlite3.Connection, key: str) -> int:
    urls = _jobs_urls(conn, key, ("sending",))
    if not urls:
        return 0
    return int(
        conn.execute(
            f"SELECT COUNT(*) FROM print_jobs WHERE status = 'sending' AND printer_url IN "
            f"({','.join('?' * len(urls))})",
            urls,
        ).fetchone()[0]
    )


def _hold_waiting_jobs(conn: sqlite3.Connection, key: str) -> int:
    """Put the printer's waiting jobs on hold: their labels may have come out already."""
    held = 0
    for url in _jobs_urls(conn, key, ("queued", "failed")):
        held += conn.execute(
            "UPDATE print_jobs SET status = 'held', owner = NULL, claimed_at = NULL, "
            "last_error = ? WHERE printer_url = ? AND status IN ('queued', 'failed')",
            (
                HELD_JOB_PREFIX + "held with the printer's label odometer: check whether this "
                "label came out already, then confirm or release the job",
                url,
            ),
        ).rowcount
    return held


def odometer_held_jobs(conn: sqlite3.Connection, key: str) -> list[int]:
    """Return the ids of the printer's jobs put on hold by an odometer hold."""
    ids: list[int] = []
    for url in _jobs_urls(conn, key, ("held",)):
        ids += [
            r["id"]
            for r in conn.execute(
                "SELECT id FROM print_jobs WHERE printer_url = ? AND status = 'held' "
                "AND last_error LIKE ? ORDER BY id",
                (url, HELD_JOB_PREFIX + "%"),
            )
        ]
    return ids


@dataclass(frozen=True)
class Verdict:
    """The outcome of one odometer check, for the print queue."""

    state: str  # "ready", "busy" or HELD
    record: OdometerRecord
    error: EdgeError | None = None
    jobs_held: int = 0


def evaluate(agent: Agent, url: str, reading: LabelOdometer, status: PrinterStatus) -> Verdict:
    """Compare a reading with the printer's record, store the outcome and say what it means."""
    key = printer_key(url)
    stamp = format_ts(agent.now())
    idle = status.formats_in_buffer == 0 and status.labels_remaining == 0
    jobs_held = 0
    event = None
    with agent.store.write() as conn:
        old = _load(conn, key) or OdometerRecord(key)
        if reading.labels is None:
            # Nothing to compare: a hold stays until a supervisor lifts it.
            record = OdometerRecord(
                **{
                    **asdict(old),
                    "state": old.state if old.held else reading.why,
                    "checked_at": stamp,
                    "asked_at": time.time() if reading.why == NO_ANSWER else None,
                    "note": "The printer no longer reports its label count." if old.held else None,
                }
            )
            _save(conn, record)
        else:
            decision = decide(
                old, reading.labels, idle, _in_flight(conn, key), agent.config.odometer_tolerance
            )
            values = {
                **asdict(old),
                "state": decision.state,
                "unknown": decision.unknown,
                "uncounted": decision.uncounted,
                "printer_count": reading.labels,
                "checked_at": stamp,
                "asked_at": None,
                # A note (a replaced printer, a confirmation) stays while all is well.
                "note": decision.note
                or (old.note if decision.state == OK and old.state in (OK, NEW) else None),
            }
            if decision.baseline is not None:
                values.update(
                    baseline_odometer=decision.baseline[0],
                    baseline_sent=decision.baseline[1],
                    baseline_at=stamp,
                )
            record = OdometerRecord(**values)
            _save(conn, record)
            if decision.state == HELD and not old.held:
                jobs_held = _hold_waiting_jobs(conn, key)
            event = decision.event
            if event is not None:
                _log(conn, record, event, stamp, detail={"jobs_held": jobs_held})
    if event in ("mismatch", "replaced"):
        log.warning("printer %s: %s", key, message(record))
    error = None
    if record.held:
        error = EdgeError(ERR_PRINTER_ODOMETER, message(record))
    elif record.state == WAITING:
        error = EdgeError(ERR_PRINTER_BUSY, message(record))
    return Verdict(CHECK_STATES.get(record.state, "ready"), record, error, jobs_held)


def recently_silent(agent: Agent, url: str, now: float) -> bool:
    """Return True if the printer ignored the query less than odometer_recheck_seconds ago."""
    rec = record(agent, url)
    return (
        rec is not None
        and rec.state == NO_ANSWER
        and rec.asked_at is not None
        and 0 <= now - rec.asked_at < agent.config.odometer_recheck_seconds
    )


def record(agent: Agent, url: str) -> OdometerRecord | None:
    """Return the printer's odometer record, if it has one."""
    return _load(agent.store.conn(), printer_key(url))


def records(agent: Agent) -> list[OdometerRecord]:
    """Return every printer's odometer record."""
    rows = agent.store.conn().execute(
        f"SELECT {_COLUMNS} FROM printer_odometers ORDER BY printer_url"
    )
    return [_record(r) for r in rows]


def history(agent: Agent, url: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """Return odometer log entries, newest first, for one printer or all."""
    query = (
        "SELECT id, printer_url, at, event, printer_count, labels_sent, unknown_labels, actor, "
        "reason, detail FROM odometer_log"
    )
    params: list[Any] = []
    if url is not None:
        query += " WHERE printer_url = ?"
        params.append(printer_key(url))
    query += " ORDER BY id DESC LIMIT ?"
    params.append(limit)
    out = []
    for row in agent.store.conn().execute(query, params):
        entry = dict(row)
        entry["detail"] = json.loads(entry["detail"] or "{}")
        out.append(entry)
    return out


def refuse_if_held(agent: Agent, url: str) -> None:
    """Raise ERR_PRINTER_ODOMETER if issuing and printing on this printer are held."""
    rec = record(agent, url)
    if rec is not None and rec.held:
        raise EdgeError(ERR_PRINTER_ODOMETER, message(rec))


def _skip_numbers(conn: sqlite3.Connection, count: int) -> dict[str, list[list[Any]]]:
    """Move every active scope's next number `count` ahead; return what was skipped per scope."""
    skipped: dict[str, list[list[Any]]] = {}
    scopes = [
        r["scope_key"]
        for r in conn.execute(
            "SELECT DISTINCT scope_key FROM leases WHERE status = 'active' "
            "AND next_seq <= last_seq ORDER BY scope_key"
        )
    ]
    for scope in scopes:
        left = count
        leases = conn.execute(
            "SELECT lease_id, next_seq, last_seq FROM leases WHERE scope_key = ? AND "
            "status = 'active' AND next_seq <= last_seq ORDER BY first_seq",
            (scope,),
        ).fetchall()
        for lease in leases:
            if left == 0:
                break
            take = min(left, lease["last_seq"] - lease["next_seq"] + 1)
            conn.execute(
                "UPDATE leases SET next_seq = next_seq + ? WHERE lease_id = ?",
                (take, lease["lease_id"]),
            )
            skipped.setdefault(scope, []).append(
                [lease["lease_id"], lease["next_seq"], lease["next_seq"] + take - 1]
            )
            left -= take
    return skipped


def confirm(
    agent: Agent,
    url: str,
    reason: str,
    actor: str,
    skip_numbers: bool = True,
    requeue_held: bool = False,
) -> dict[str, Any]:
    """Record a supervisor's confirmation, lift a hold and have the next check take a baseline.

    Unless `skip_numbers` is False (the supervisor found the unknown labels carried no serial
    of this line), every active scope skips as many numbers as there were unknown labels.
    `requeue_held` queues again the jobs the hold put on hold (their labels did not come out).
    """
    reason = check_reason(reason)
    actor = actor.strip()
    if not actor or len(actor) > MAX_ACTOR or not actor.isprintable():
        raise EdgeError(ERR_REASON, f"name who confirms in 1-{MAX_ACTOR} printable characters")
    key = printer_key(url)
    stamp = format_ts(agent.now())
    with agent.store.write() as conn:
        old = _load(conn, key)
        if old is None:
            raise EdgeError(
                ERR_PRINTER_UNKNOWN,
                f"this agent has no label odometer record for {key}: it has not checked or "
                "printed on that printer (see lineledger-edge printer odometer)",
            )
        unknown = old.unknown if old.held else 0
        skipped = _skip_numbers(conn, unknown) if skip_numbers and unknown > 0 else {}
        held_jobs = odometer_held_jobs(conn, key)
        if requeue_held and held_jobs:
            conn.execute(
                f"UPDATE print_jobs SET status = 'queued', next_attempt_at = 0, owner = NULL, "
                f"last_error = NULL WHERE id IN ({','.join('?' * len(held_jobs))})",
                held_jobs,
            )
        record = OdometerRecord(
            **{
                **asdict(old),
                "state": NEW,
                "baseline_odometer": None,
                "unknown": 0,
                "uncounted": 0,
                "note": f"Confirmed by {actor} at {stamp}: {reason}",
            }
        )
        _save(conn, record)
        detail = {
            "was_held": old.held,
            "unknown_labels": unknown,
            "skipped": skipped,
            "requeued_jobs": held_jobs if requeue_held else [],
            "held_jobs": [] if requeue_held else held_jobs,
        }
        _log(conn, old, "confirmed", stamp, actor=actor, reason=reason, detail=detail)
    return {"printer": key, "confirmed_at": stamp, "by": actor, "reason": reason, **detail}
