import random
import time

import sqlalchemy as sa

from central import tables as T
from edge_agent import outbox, reconcile
from edge_agent.issuing import Issuer
from edge_agent.outbox import SyncWorker, flush, push_once, retry_delay
from edge_agent.printing import PrintQueue
from tests.conftest import runtime


def registry_serials(tenant):
    with runtime(tenant.app).store.read() as conn:
        return set(conn.execute(sa.select(T.registry.c.serial)).scalars())


def test_flush_delivers_everything_once(agents, tenant):
    agent = agents.enroll(sync_batch=7)
    issuer = Issuer(agent)
    serials = {issuer.issue("WO-HAT-1").serial for _ in range(30)}
    summary = flush(agent)
    assert summary.error is None and summary.batches == 5 and summary.sent == 30
    assert summary.results == {"accepted": 30}
    assert summary.outbox["pending"] == 0 and summary.outbox["done"] == 30
    assert registry_serials(tenant) == serials
    # a second delivery of the same events (e.g. an ack lost on the way) changes nothing
    with agent.store.write() as conn:
        conn.execute("UPDATE outbox SET status = 'pending'")
    again = flush(agent)
    assert again.results == {"duplicate": 30}
    assert registry_serials(tenant) == serials


def test_retry_schedule_then_dead_letter(agents, tenant):
    agent = agents.enroll(retry_schedule=[60, 300, 900, 3600, 21600], max_attempts=3)
    issued = Issuer(agent).issue("WO-HAT-1")
    queue_event = agent.new_event_id()
    from protocol.events import Event
    from protocol.timefmt import format_ts

    # A printed event whose issued event central never got (the issued row is marked done
    # without being sent, as if an operator had restored an old outbox).
    printed = Event(queue_event, "printed", issued.serial, format_ts(agent.now()))
    with agent.store.write() as conn:
        conn.execute("UPDATE outbox SET status = 'done' WHERE event_id = ?", (issued.event_id,))
        conn.execute(
            "INSERT INTO outbox(event_id, serial, type, body, created_at, status) "
            "VALUES (?, ?, 'printed', ?, ?, 'pending')",
            (printed.event_id, issued.serial, printed.to_json(), format_ts(agent.now())),
        )
    now = time.time()
    expected_waits = [60, 300]
    for attempt, wait in enumerate(expected_waits, start=1):
        result = push_once(agent, now)
        assert result.results == {"retry": 1}
        row = (
            agent.store.conn()
            .execute(
                "SELECT attempts, next_attempt_at, last_code, status FROM outbox "
                "WHERE event_id = ?",
                (printed.event_id,),
            )
            .fetchone()
        )
        assert (row["attempts"], row["status"], row["last_code"]) == (
            attempt,
            "pending",
            "ERR_AWAITING_ISSUE",
        )
        assert row["next_attempt_at"] == now + wait
        assert push_once(agent, now).sent == 0  # not due yet
        now += wait
    result = push_once(agent, now)
    assert result.dead == 1
    assert outbox.counts(agent)["dead"] == 1
    [dead] = outbox.dead_letters(agent)
    assert dead["event_id"] == printed.event_id and dead["attempts"] == 3


def test_retry_delays_follow_the_reference_schedule():
    schedule = (60.0, 300.0, 900.0, 3600.0, 21600.0)
    assert [retry_delay(schedule, n) for n in range(1, 9)] == [
        60,
        300,
        900,
        3600,
        21600,
        21600,
        21600,
        21600,
    ]


def test_events_of_one_serial_keep_their_order(agents, tenant):
    agent = agents.enroll()
    issued = Issuer(agent).issue("WO-HAT-1")
    other = Issuer(agent).issue("WO-HAT-1")
    from protocol.events import Event
    from protocol.timefmt import format_ts

    printed = Event(agent.new_event_id(), "printed", issued.serial, format_ts(agent.now()))
    with agent.store.write() as conn:
        conn.execute(
            "INSERT INTO outbox(event_id, serial, type, body, created_at, status) "
            "VALUES (?, ?, 'printed', ?, ?, 'pending')",
            (printed.event_id, issued.serial, printed.to_json(), format_ts(agent.now())),
        )
        # the issued event of the first serial waits on its retry schedule
        conn.execute(
            "UPDATE outbox SET next_attempt_at = ? WHERE event_id = ?",
            (time.time() + 3600, issued.event_id),
        )
    result = push_once(agent)
    assert result.sent == 1  # only the other serial's event; `printed` waits behind `issued`
    rows = {
        r["event_id"]: r["status"]
        for r in agent.store.conn().execute("SELECT event_id, status FROM outbox")
    }
    assert rows[other.event_id] == "done"
    assert rows[printed.event_id] == "pending" and rows[issued.event_id] == "pending"


def test_unreachable_central_backs_off_with_jitter_and_a_cap(agents):
    agent = agents.enroll(backoff_base=1.0, backoff_max=60.0)
    Issuer(agent).issue("WO-HAT-1")
    with agent.store.write() as conn:
        agent.store.set_meta(conn, "central_url", "http://127.0.0.1:9")
    down = agents.open(agent.config.home_path, http_timeout=1.0)
    worker = SyncWorker(down, random.Random(7))
    now = 1_000_000.0
    delays = []
    for _ in range(10):
        worker.run(now)
        delays.append(worker.next_try - now)
        assert worker.run(now) is None  # backing off: no attempt before next_try
        now = worker.next_try
    ceilings = [min(60.0, 2.0 ** (i + 1)) for i in range(10)]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert max(delays) <= 60.0 and delays[-1] >= 30.0
    assert worker.last_error["code"] == "ERR_CENTRAL_UNREACHABLE"
    assert outbox.counts(down)["pending"] == 1  # not the event's fault: it is still pending


def test_printed_events_follow_issued_through_the_queue(agents, tenant, tmp_path):
    agent = agents.enroll()
    url = f"file://{tmp_path / 'spool'}?create=1"
    issued = Issuer(agent).issue("WO-OEM-1", printer_url=url)
    queue = PrintQueue(agent)
    try:
        assert queue.run(url).sent == [issued.print_job]
    finally:
        queue.close()
    flush(agent)
    with runtime(tenant.app).store.read() as conn:
        row = conn.execute(sa.select(T.registry).where(T.registry.c.serial == issued.serial)).one()
    assert (row.state, row.print_count) == ("printed", 1)


def test_prune_keeps_what_is_not_delivered_or_not_confirmed(agents, tenant):
    agent = agents.enroll()
    issuer = Issuer(agent)
    for _ in range(5):
        issuer.issue("WO-HAT-1")
    flush(agent)
    issuer.issue("WO-HAT-1")  # pending
    later = time.time() + 31 * 86400
    assert outbox.prune(agent, later, retention_days=30) == 0  # delivered, not confirmed
    reconcile.reconcile(agent)  # central confirms the 5 it holds
    assert outbox.prune(agent, time.time(), retention_days=30) == 0  # all fresh
    assert outbox.prune(agent, later, retention_days=30) == 5
    assert outbox.counts(agent) == {
        "pending": 1,
        "dead": 0,
        "rejected": 0,
        "quarantined": 0,
        "done": 0,
    }
