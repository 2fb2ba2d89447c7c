"""Generation tasks on SQLite and PostgreSQL: idempotence, force, cancel, resume, capacity."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
import sqlalchemy as sa
from biip.gs1_messages import GS1Message
from biip.sscc import Sscc
from stdnum import ean

from central import gentasks
from central import tables as T
from central.errors import CentralError
from tests.central.gen_support import (
    GTIN,
    PREFIX,
    STALE,
    ask,
    history,
    make_random,
    run_all,
    serials_of,
    set_sscc_source,
    ssccs_of,
    work_order,
)
from tests.conftest import runtime


@pytest.fixture
def store(app: Any, tenant: Any) -> Any:
    store = runtime(app).store
    set_sscc_source(store)
    make_random(store)
    return store


def assert_valid_sscc(code: str) -> None:
    """Check an SSCC with two independent GS1 implementations (biip and python-stdnum)."""
    parsed = Sscc.parse(code)  # raises on a wrong length or check digit
    assert parsed.company_prefix is not None
    assert ean.calc_check_digit(code[:-1]) == code[-1]


def test_sscc_task_generates_valid_unique_ssccs(store: Any) -> None:
    task, answer = ask(store, "sscc", 12)
    assert task is not None and answer["created"] and task.status == "queued"
    assert work_order(store).sscc_status == "in_progress"
    assert run_all(store)["completed"] == 1
    codes = ssccs_of(store)
    assert len(codes) == len(set(codes)) == 12
    for code in codes:
        assert_valid_sscc(code)
        assert code.startswith("3" + PREFIX)
    wo = work_order(store)
    assert (wo.generated_sscc, wo.requested_sscc, wo.sscc_status) == (12, 12, "completed")
    assert wo.last_sscc_generation_at is not None
    assert history(store, task.id) == ["started", "completed"]
    with store.read() as conn:
        done = gentasks.get_task(conn, task.id)
        rows = conn.execute(
            sa.select(T.audit_log.c.action).where(T.audit_log.c.action.like("%generat%"))
        ).scalars()
        actions = set(rows)
    assert (done.status, done.done, done.requested) == ("completed", 12, 12)
    assert {"work_order.generate_sscc", "generation_task.completed"} <= actions


def test_sscc_request_is_idempotent_and_force_adds(store: Any) -> None:
    task, _ = ask(store, "sscc", 10)
    again, answer = ask(store, "sscc", 10)  # still queued: the same task answers
    assert again is not None and again.id == task.id and not answer["created"]
    run_all(store)
    none, answer = ask(store, "sscc", 10)  # already has 10: nothing to do
    assert none is None and not answer["created"]
    more, _ = ask(store, "sscc", 15)  # should have 15: make the missing 5
    assert more is not None and more.requested == 5
    run_all(store)
    assert len(ssccs_of(store)) == 15
    forced, _ = ask(store, "sscc", 4, force=True)  # 4 new ones in addition
    assert forced is not None and forced.requested == 4
    run_all(store)
    codes = ssccs_of(store)
    assert len(codes) == len(set(codes)) == 19
    assert work_order(store).generated_sscc == 19


def test_sscc_counter_never_reissues_across_work_orders(store: Any) -> None:
    ask(store, "sscc", 7)
    ask(store, "sscc", 5, number="WO-OEM-1")
    run_all(store)
    first, second = ssccs_of(store), ssccs_of(store, "WO-OEM-1")
    assert not set(first) & set(second)
    refs = sorted(int(code[1 + len(PREFIX) : -1]) for code in first + second)
    assert refs == list(range(12))
    with store.read() as conn:
        counter = conn.execute(sa.select(T.number_counters)).one()
    assert (counter.key, counter.next_value) == (f"sscc:3:{PREFIX}", 12)


def test_sscc_capacity_exhausted_fails_the_task_with_a_clear_code(store: Any) -> None:
    set_sscc_source(store, prefix="400638100001")  # 12 digits: 10^4 serial references
    with pytest.raises(CentralError) as exc:
        ask(store, "sscc", 10_001)
    assert exc.value.code == "ERR_SSCC_EXHAUSTED"
    task, _ = ask(store, "sscc", 9_000)
    assert task is not None
    with store.write() as conn:  # another work order took numbers meanwhile
        conn.execute(
            T.number_counters.insert().values(
                key="sscc:3:400638100001",
                tenant_id=work_order(store).tenant_id,
                next_value=5_000,
                updated_at=dt.datetime.now(dt.UTC),
            )
        )
    counts = run_all(store)
    assert counts["failed"] == 1
    with store.read() as conn:
        failed = gentasks.get_task(conn, task.id)
    assert failed.status == "failed" and failed.error is not None
    assert failed.error.startswith("ERR_SSCC_EXHAUSTED")
    assert failed.done == 5_000  # the first chunk fitted; the second, which did not, wrote nothing
    wo = work_order(store)
    assert wo.sscc_status == "failed" and "ERR_SSCC_EXHAUSTED" in wo.error_message
    assert history(store, task.id) == ["started", "failed"]
    with store.read() as conn:
        nxt = conn.execute(sa.select(T.number_counters.c.next_value)).scalar_one()
    assert nxt == 10_000 and len(ssccs_of(store)) == 5_000


def test_sscc_needs_an_enabled_source(store: Any) -> None:
    set_sscc_source(store, enabled=False)
    with pytest.raises(CentralError) as exc:
        ask(store, "sscc", 1)
    assert exc.value.code == "ERR_SSCC_SOURCE"


def test_random_serials_task(store: Any) -> None:
    task, _ = ask(store, "serials", 12_345)
    assert task is not None
    assert run_all(store)["completed"] == 1
    serials = serials_of(store)
    assert len(serials) == len(set(serials)) == 12_345
    for serial in serials[:500]:
        message = GS1Message.parse(f"01{GTIN}21{serial}")  # biip validates AI (21)
        assert [e.value for e in message.element_strings] == [GTIN, serial]
        assert len(serial) == 12
    wo = work_order(store)
    assert (wo.generated_serials, wo.serial_status) == (12_345, "completed")
    again, answer = ask(store, "serials", 12_345)
    assert again is None and not answer["created"]


def test_serials_for_a_standard_product_are_not_pregenerated(store: Any) -> None:
    from central.serialformats import set_serial_format

    set_serial_format(store, "MA01", "TOTE-01", "standard", "test", dt.datetime.now(dt.UTC))
    with pytest.raises(CentralError) as exc:
        ask(store, "serials", 10)
    assert exc.value.code == "ERR_NOT_PREGENERATED"


def test_serial_space_bound_refuses_too_many(store: Any) -> None:
    make_random(store, alphabet="0123456789", length=6)  # 10^6 / 10^4: at most 99 serials
    with pytest.raises(CentralError) as exc:
        ask(store, "serials", 100)
    assert exc.value.code == "ERR_SERIAL_SPACE"
    task, _ = ask(store, "serials", 99)
    assert task is not None
    run_all(store)
    assert len(serials_of(store)) == 99
    with pytest.raises(CentralError) as exc:
        ask(store, "serials", 1, number="WO-OEM-1")  # the bound is per GTIN
    assert exc.value.code == "ERR_SERIAL_SPACE"


def test_cancel_between_chunks(store: Any) -> None:
    now = dt.datetime.now(dt.UTC)
    task, _ = ask(store, "sscc", 25)
    assert task is not None
    claim = gentasks.claim_next(store, now, STALE)
    assert claim is not None and claim.task_id == task.id
    claim = gentasks.step(store, claim, now + dt.timedelta(seconds=1), chunk=10)
    assert claim is not None
    cancelled = gentasks.cancel_task(store, task.id, "test", now)
    assert cancelled.status == "running" and cancelled.cancel_requested_at is not None
    assert gentasks.step(store, claim, now + dt.timedelta(seconds=2), chunk=10) is None
    with store.read() as conn:
        final = gentasks.get_task(conn, task.id)
    assert (final.status, final.done) == ("cancelled", 10)
    assert len(ssccs_of(store)) == 10
    assert work_order(store).sscc_status == "pending"
    assert history(store, task.id) == ["started", "cancelled"]
    with pytest.raises(CentralError) as exc:
        gentasks.cancel_task(store, task.id, "test", now)
    assert exc.value.code == "ERR_TASK_FINISHED"
    again, _ = ask(store, "sscc", 25)  # asking again makes only the missing 15
    assert again is not None and again.requested == 15


def test_cancel_a_queued_task_at_once(store: Any) -> None:
    task, _ = ask(store, "serials", 100)
    assert task is not None
    assert gentasks.cancel_task(store, task.id, "test", dt.datetime.now(dt.UTC)).status == (
        "cancelled"
    )
    assert run_all(store)["completed"] == 0
    assert serials_of(store) == []


def test_stale_running_task_is_resumed_and_a_live_one_is_not(store: Any) -> None:
    now = dt.datetime.now(dt.UTC)
    task, _ = ask(store, "serials", 12)
    assert task is not None
    claim = gentasks.claim_next(store, now, STALE)
    assert claim is not None
    claim = gentasks.step(store, claim, now, chunk=5)  # then the process "dies"
    assert claim is not None
    assert gentasks.claim_next(store, now + dt.timedelta(seconds=60), STALE) is None
    later = now + STALE + dt.timedelta(seconds=1)
    resumed = gentasks.claim_next(store, later, STALE)
    assert resumed is not None and resumed.resumed
    with pytest.raises(gentasks.TaskLost):  # the old owner wakes up: it lost the task
        gentasks.step(store, claim, later, chunk=5)
    assert gentasks.run_task(store, resumed, clock=lambda: later) == "completed"
    assert len(serials_of(store)) == 12
    assert history(store, task.id) == ["started", "started", "completed"]


def test_two_claimers_never_share_a_task(store: Any) -> None:
    now = dt.datetime.now(dt.UTC)
    ask(store, "sscc", 3)
    first = gentasks.claim_next(store, now, STALE)
    second = gentasks.claim_next(store, now, STALE)
    assert first is not None and second is None


def test_closed_work_order_refuses(store: Any) -> None:
    with store.write() as conn:
        conn.execute(
            T.work_orders.update()
            .where(T.work_orders.c.number == "WO-HAT-1")
            .values(status="closed")
        )
    with pytest.raises(CentralError) as exc:
        ask(store, "sscc", 1)
    assert exc.value.code == "ERR_WORK_ORDER_CLOSED"


@pytest.mark.parametrize("quantity", [0, -1, 10_000_001, True, "5", 2.5])
def test_hostile_quantities(store: Any, quantity: Any) -> None:
    with pytest.raises(CentralError) as exc:
        ask(store, "serials", quantity)
    assert exc.value.code == "ERR_INVALID"
    with store.read() as conn:
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(T.generation_tasks)).scalar() == 0
        )


def test_pool_skips_a_serial_the_gtin_has_already(store: Any) -> None:
    """The database, not luck, keeps serials unique per GTIN: a repeat is skipped, counted out."""
    task, _ = ask(store, "serials", 3)
    assert task is not None
    now = dt.datetime.now(dt.UTC)
    with store.write() as conn:
        row = conn.execute(sa.select(T.generation_tasks)).one()
        assert gentasks._insert_pool(store, conn, row, GTIN, ["AAA", "BBB"], now) == 2
        assert gentasks._insert_pool(store, conn, row, GTIN, ["BBB", "CCC", "AAA"], now) == 1
        assert gentasks._insert_pool(store, conn, row, "00000000000000", ["AAA"], now) == 1
    assert sorted(serials_of(store)) == ["AAA", "AAA", "BBB", "CCC"]


def test_ssccs_go_to_cases_then_pallets_then_spares(store: Any) -> None:
    rules = {
        "l1": {"enabled": True, "multiplier": 1},
        "l2": {"enabled": True, "multiplier": 1000},  # 200,000 units: 200 cases
        "l3": {"enabled": True, "multiplier": 50000},  # 4 pallets
    }
    with store.write() as conn:  # beside the fixture's SSCC sources, written the same way
        conn.execute(T.generation_config.update().values(aggregation_rules=json.dumps(rules)))
    ask(store, "sscc", 150)
    run_all(store)
    ask(store, "sscc", 210)  # the missing 60, in a second task
    run_all(store)
    with store.read() as conn:
        rows = conn.execute(
            sa.select(T.ssccs.c.sscc, T.ssccs.c.level).order_by(T.ssccs.c.sscc)
        ).all()
    assert [r.level for r in rows] == ["l2"] * 200 + ["l3"] * 4 + [None] * 6


def _set_allowance(store: Any, quantity: int, overage: float, number: str = "WO-HAT-1") -> None:
    with store.write() as conn:
        conn.execute(
            T.work_orders.update()
            .where(T.work_orders.c.number == number)
            .values(quantity=quantity, overage_pct=overage)
        )


def _task_count(store: Any) -> int:
    with store.read() as conn:
        return int(
            conn.execute(sa.select(sa.func.count()).select_from(T.generation_tasks)).scalar_one()
        )


def test_serials_above_the_work_orders_allowance_are_refused(store: Any) -> None:
    _set_allowance(store, 100, 5)  # may consume 105
    with pytest.raises(CentralError) as exc:
        ask(store, "serials", 100_000)
    assert (exc.value.code, exc.value.status) == ("ERR_OVER_ALLOWANCE", 400)
    assert "at most 105 serials" in exc.value.message
    assert "work-order update" in exc.value.message and "--overage" in exc.value.message
    with pytest.raises(CentralError) as exc:
        ask(store, "serials", 106)
    assert exc.value.code == "ERR_OVER_ALLOWANCE"
    assert _task_count(store) == 0
    task, _ = ask(store, "serials", 100)
    assert task is not None and task.requested == 100
    # --force-regenerate N more: the bound is on the total, queued ones included
    with pytest.raises(CentralError) as exc:
        ask(store, "serials", 6, force=True)
    assert exc.value.code == "ERR_OVER_ALLOWANCE" and "100 made or queued" in exc.value.message
    forced, _ = ask(store, "serials", 5, force=True)
    assert forced is not None
    run_all(store)
    assert len(serials_of(store)) == 105
    with pytest.raises(CentralError) as exc:
        ask(store, "serials", 1, force=True)
    assert exc.value.code == "ERR_OVER_ALLOWANCE"


def test_ssccs_are_not_bounded_by_the_allowance(store: Any) -> None:
    _set_allowance(store, 100, 5)
    task, _ = ask(store, "sscc", 1_000)  # spares are allowed
    assert task is not None and task.requested == 1_000
    with pytest.raises(CentralError) as exc:
        ask(store, "sscc", 1_000_001, number="WO-OEM-1")  # the per-request cap stays
    assert exc.value.code == "ERR_INVALID"


def test_another_target_while_a_task_is_active_is_refused(store: Any) -> None:
    first, answer = ask(store, "sscc", 3)
    assert first is not None and answer["created"]
    same, answer = ask(store, "sscc", 3)  # the same target: the active task answers
    assert same is not None and same.id == first.id and not answer["created"]
    with pytest.raises(CentralError) as exc:
        ask(store, "sscc", 8)
    assert (exc.value.code, exc.value.status) == ("ERR_TASK_ACTIVE", 409)
    assert first.id in exc.value.message and "up to 3" in exc.value.message
    assert "ask again when it has finished, or cancel it" in exc.value.message
    assert _task_count(store) == 1
    run_all(store)
    more, answer = ask(store, "sscc", 8)  # once it finished, the new target is honoured
    assert more is not None and answer["created"] and more.requested == 5
