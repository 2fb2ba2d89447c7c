"""The consistency checker: every finding is built in a real registry (SQLite and PostgreSQL),
through the edge API where the API can produce it and by direct SQL only to simulate
corruption the API refuses to make."""

import datetime as dt
import json

import sqlalchemy as sa

from central import admin, review
from central import tables as T
from central.jobs import findings as F
from central.jobs.checker import ALREADY_QUARANTINED, FIXED, QUARANTINED, REPORTED, run_check
from central.keyring import Keyring
from protocol.reconcile import link_digest, link_record
from protocol.serials import render
from tests.central.helpers import event, grant, push, serial_of
from tests.central.jobs_support import (
    check,
    details,
    full_report,
    lease_row,
    of_kind,
    quarantine_rows,
    reconcile,
    scope,
)
from tests.conftest import runtime

NOW = dt.datetime.now(dt.UTC)
EMPTY_LINKS = link_digest([])


def verdict(client, serial):
    return client.get(f"/api/public/serial/verify/{serial}").json["verdict"]


def now():
    return dt.datetime.now(dt.UTC)


def issue(client, h, g, seqs, wo="WO-HAT-1", data=None):
    events = [event("issued", serial_of(g, s), g.lease_id, wo, data) for s in seqs]
    assert {r["status"] for r in push(client, h, events)} == {"accepted"}
    return events


def test_a_consistent_registry_has_no_findings_and_a_check_changes_nothing(app, client, tenant):
    h = tenant.enroll()
    hat = grant(client, h, scope(tenant), 10)
    oem = grant(client, h, scope(tenant, "OEM"), 10)
    events = issue(client, h, hat, [1, 2])
    events += [
        event("printed", serial_of(hat, 1)),
        event("linked", serial_of(hat, 1), data={"job_ticket": "JT-1", "token": "TK-1"}),
    ]
    oem_events = issue(client, h, oem, [1], "WO-OEM-1") + [event("printed", serial_of(oem, 1))]
    push(client, h, events[2:] + oem_events[1:])
    links = link_digest([link_record(serial_of(hat, 1), "JT-1", "TK-1", None)])
    counts = {"issued": 2, "printed": 1, "linked": 1}
    reconcile(
        client,
        h,
        [
            full_report(hat.lease_id, 2, [e.event_id for e in events], counts, links),
            full_report(
                oem.lease_id,
                1,
                [e.event_id for e in oem_events],
                {"issued": 1, "printed": 1},
                EMPTY_LINKS,
            ),
        ],
        outbox={"pending": 0},
    )
    report = check(app)
    assert report.findings == [] and report.errors == []
    assert report.summary()["tenants_processed"] == 1 and report.failures == 0
    assert quarantine_rows(app) == []


def test_agent_counting_more_than_central_is_asked_to_resend(app, client, tenant):
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 10)
    sent = issue(client, h, g, [1, 2])
    lost = event("issued", serial_of(g, 3), g.lease_id, "WO-HAT-1")  # central never got it
    ids = [e.event_id for e in sent] + [lost.event_id]
    reconcile(client, h, [full_report(g.lease_id, 3, ids, {"issued": 3}, EMPTY_LINKS)])
    assert lease_row(app, g.lease_id).digest_ok is False

    report = check(app)
    [finding] = of_kind(report, F.LEASE_ACCOUNTING)
    assert (finding.action, finding.outcome) == (F.RESEND, FIXED)
    assert finding.details["central_behind"] == {"issued": [2, 3]}
    assert report.summary()["fixed"] == 1 and report.failures == 0
    assert lease_row(app, g.lease_id).resend_requested_at is not None
    # asked once: a second check waits for the agent instead of asking again
    [again] = of_kind(check(app), F.LEASE_ACCOUNTING)
    assert again.outcome == "awaiting_resend"

    # the agent's next full reconcile is told to re-send; it does, and everything adds up
    answer = reconcile(client, h, [full_report(g.lease_id, 3, ids, {"issued": 3}, EMPTY_LINKS)])
    assert answer["leases"][0]["resend"] is True
    push(client, h, [lost])
    reconcile(client, h, [full_report(g.lease_id, 3, ids, {"issued": 3}, EMPTY_LINKS)])
    assert of_kind(check(app), F.LEASE_ACCOUNTING) == []


def test_central_holding_events_the_agent_lost_is_reported(app, client, tenant):
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 10)
    sent = issue(client, h, g, [1, 2, 3])
    # an agent restored from an older copy knows only the first two
    ids = [e.event_id for e in sent[:2]]
    reconcile(client, h, [full_report(g.lease_id, 2, ids, {"issued": 2}, EMPTY_LINKS)])
    report = check(app)
    [finding] = of_kind(report, F.LEASE_ACCOUNTING)
    # central has the facts and the agent raises its own alert: noted, nothing to fix
    assert (finding.action, finding.outcome) == (F.NOTE, "noted")
    assert finding.details["central_ahead"] == {"issued": [3, 2]}
    assert "central holds events the agent did not count" in finding.message
    assert report.failures == 0 and report.summary()["lease_accounting_mismatches"] == 1
    assert report.summary()["noted"] == 1 and report.summary()["fixed"] == 0
    assert lease_row(app, g.lease_id).resend_requested_at is None


def test_agent_links_differing_from_the_registry_are_missing_tenant_links(app, client, tenant):
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 10)
    sent = issue(client, h, g, [1])
    linked = event("linked", serial_of(g, 1), data={"token": "TK-1"})
    push(client, h, [linked])
    ids = [sent[0].event_id, linked.event_id]
    theirs = link_digest([link_record(serial_of(g, 1), None, "TK-2", None)])  # agent says TK-2
    counts = {"issued": 1, "linked": 1}
    reconcile(client, h, [full_report(g.lease_id, 1, ids, counts, theirs)])
    assert lease_row(app, g.lease_id).links_ok is False

    report = check(app)
    [finding] = of_kind(report, F.MISSING_TENANT_LINK)
    # central holds every event of the lease, so a re-send cannot fix it: a person looks
    assert (finding.action, finding.outcome) == (F.REPORT, REPORTED)
    assert report.summary()["missing_tenant_links"] == 1
    assert "Missing tenant links: 1" in report.to_text().splitlines()

    ours = link_digest([link_record(serial_of(g, 1), None, "TK-1", None)])
    reconcile(client, h, [full_report(g.lease_id, 1, ids, counts, ours)])
    assert of_kind(check(app), F.MISSING_TENANT_LINK) == []


def test_link_differences_follow_the_event_accounting(app, client, tenant):
    """Links differ because events are missing at central: the same re-send fixes both; links
    differ because the agent lost events central holds: noted with them."""
    h = tenant.enroll()
    behind = grant(client, h, scope(tenant), 10)
    ahead = grant(client, h, scope(tenant, "OEM"), 10)
    sent = issue(client, h, behind, [1])
    unsent = event("linked", serial_of(behind, 1), data={"token": "TK-1"})
    theirs = link_digest([link_record(serial_of(behind, 1), None, "TK-1", None)])
    kept = issue(client, h, ahead, [1], "WO-OEM-1")
    issue(client, h, ahead, [2], "WO-OEM-1")
    reconcile(
        client,
        h,
        [
            full_report(
                behind.lease_id,
                1,
                [sent[0].event_id, unsent.event_id],
                {"issued": 1, "linked": 1},
                theirs,
            ),
            full_report(ahead.lease_id, 2, [kept[0].event_id], {"issued": 1}, link_digest(["x"])),
        ],
    )
    report = check(app)
    links = {f.lease_id: f for f in of_kind(report, F.MISSING_TENANT_LINK)}
    assert (links[behind.lease_id].action, links[behind.lease_id].outcome) == (F.RESEND, FIXED)
    assert (links[ahead.lease_id].action, links[ahead.lease_id].outcome) == (F.NOTE, "noted")
    assert report.failures == 0
    assert lease_row(app, behind.lease_id).resend_requested_at is not None
    assert lease_row(app, ahead.lease_id).resend_requested_at is None


def test_registry_links_not_matching_the_events_are_missing_core_links(app, client, tenant):
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 10)
    issue(client, h, g, [1], data={"job_ticket": "JT-1"})  # pre-generated for a job ticket
    issue(client, h, g, [2, 3])
    push(
        client,
        h,
        [
            event("linked", serial_of(g, 1), data={"token": "TK-1"}),
            event("linked", serial_of(g, 2), data={"token": "TK-2"}),
        ],
    )
    assert check(app).findings == []
    reg = T.registry.c
    with runtime(app).store.write() as conn:  # corruption the API cannot make
        conn.execute(T.registry.update().where(reg.serial == serial_of(g, 1)).values(token="TK-9"))
        conn.execute(T.registry.update().where(reg.serial == serial_of(g, 2)).values(token=None))
        conn.execute(
            T.registry.update().where(reg.serial == serial_of(g, 3)).values(job_ticket="JT-X")
        )
    report = check(app)
    found = {f.serial: f for f in of_kind(report, F.MISSING_CORE_LINK)}
    assert set(found) == {serial_of(g, s) for s in (1, 2, 3)}
    assert found[serial_of(g, 1)].details == {"token": {"registry": "TK-9", "events": ["TK-1"]}}
    assert found[serial_of(g, 2)].details == {"token": {"registry": None, "events": ["TK-2"]}}
    assert all(f.outcome == QUARANTINED for f in found.values())
    assert report.summary()["missing_core_links"] == 3
    rows = quarantine_rows(app, serial_of(g, 1))
    assert [(r.reason, r.source, r.holds_serial) for r in rows] == [
        ("ERR_LINK_MISMATCH", "checker", True)
    ]
    assert verdict(client, serial_of(g, 1)) == "under_review"


def test_duplicates_are_held_once(app, client, tenant):
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 10)
    s1, s2 = serial_of(g, 1), serial_of(g, 2)
    issue(client, h, g, [1, 2])
    [r] = push(client, h, [event("issued", s1, g.lease_id, "WO-HAT-1")])
    assert r["code"] == "ERR_DUPLICATE_SERIAL"  # ingest held it already
    # a second `issued` that got in without a hold: corruption the API cannot make
    with runtime(app).store.write() as conn:
        agent_id = lease_row(app, g.lease_id).agent_id
        second = event("issued", s2, g.lease_id, "WO-HAT-1")
        conn.execute(
            T.events.insert().values(
                event_id=second.event_id,
                tenant_id=lease_row(app, g.lease_id).tenant_id,
                agent_id=agent_id,
                type="issued",
                serial=s2,
                lease_id=g.lease_id,
                occurred_at=now(),
                received_at=now(),
                data="{}",
                outcome="accepted",
            )
        )
    report = check(app)
    found = {f.serial: f for f in of_kind(report, F.DUPLICATE_SERIAL)}
    assert found[s1].outcome == ALREADY_QUARANTINED
    assert found[s2].outcome == QUARANTINED and found[s2].event_id == second.event_id
    assert [r.source for r in quarantine_rows(app, s1)] == ["ingest"]
    [entry] = quarantine_rows(app, s2)
    assert (entry.reason, entry.source, entry.holds_serial) == (
        "ERR_DUPLICATE_SERIAL",
        "checker",
        True,
    )
    assert verdict(client, s2) == "under_review"

    again = check(app)  # never the same finding twice while an entry is open
    assert {f.outcome for f in of_kind(again, F.DUPLICATE_SERIAL)} == {ALREADY_QUARANTINED}
    assert len(quarantine_rows(app, s2)) == 1
    assert again.summary()["already_quarantined"] == 2 and again.failures == 2

    # a reviewer's decision stands: the resolved finding is not entered again
    review.confirm(runtime(app).store, entry.id, "two labels seen", "cli:test", now())
    assert [f.serial for f in of_kind(check(app), F.DUPLICATE_SERIAL)] == [s1]
    assert len(quarantine_rows(app, s2)) == 1


def test_serials_outside_their_lease_or_in_a_gap_are_quarantined(app, client, tenant):
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 10)
    issue(client, h, g, [1, 2, 3])
    resp = client.post(
        f"/api/edge/v1/leases/{g.lease_id}/return", headers=h, json={"v": 1, "high_water": 3}
    )
    assert resp.status_code == 200, resp.json
    reg, gap = T.registry.c, T.gaps.c
    with runtime(app).store.write() as conn:  # corruption: a number beyond its lease, a gap
        conn.execute(T.registry.update().where(reg.serial == serial_of(g, 1)).values(seq=50))
        conn.execute(T.gaps.update().where(gap.lease_id == g.lease_id).values(first_seq=3))
    report = check(app)
    found = {f.serial: f for f in of_kind(report, F.OUTSIDE_LEASE)}
    assert set(found) == {serial_of(g, 1), serial_of(g, 3)}
    assert "outside its registry lease" in found[serial_of(g, 1)].message
    assert "recorded gap" in found[serial_of(g, 3)].message
    assert {f.outcome for f in found.values()} == {QUARANTINED}
    assert report.summary()["serials_outside_leases"] == 2
    assert [r.reason for r in quarantine_rows(app, serial_of(g, 3))] == ["ERR_OUTSIDE_LEASE"]


def test_orphans_follow_the_grace_of_their_production_type(app, client, tenant):
    h = tenant.enroll()
    hat = grant(client, h, scope(tenant), 10)
    oem = grant(client, h, scope(tenant, "OEM"), 10)
    issue(client, h, hat, [1, 2, 3])
    issue(client, h, hat, [4], data={"job_ticket": "JT-1"})  # reserved for a job ticket
    push(
        client,
        h,
        [
            event("printed", serial_of(hat, 1)),  # printed, never linked: an orphan
            event("linked", serial_of(hat, 2), data={"token": "TK-2"}),
        ],
    )
    issue(client, h, oem, [1, 2], "WO-OEM-1")
    push(client, h, [event("printed", serial_of(oem, 2))])
    orphan_hat = {serial_of(hat, 1), serial_of(hat, 3)}

    assert of_kind(check(app), F.ORPHAN) == []
    day = check(app, now() + dt.timedelta(hours=25))
    assert {f.serial for f in of_kind(day, F.ORPHAN)} == {serial_of(oem, 1)}
    three_days = check(app, now() + dt.timedelta(hours=73))
    assert {f.serial for f in of_kind(three_days, F.ORPHAN)} == orphan_hat | {serial_of(oem, 1)}
    assert three_days.summary()["orphaned_serials"] == 3
    assert {r.reason for r in quarantine_rows(app)} == {"ERR_ORPHANED"}
    assert verdict(client, serial_of(oem, 1)) == "under_review"
    assert verdict(client, serial_of(hat, 2)) == "genuine"


def test_silent_agents_with_unsynced_work_are_reported(app, client, tenant):
    pending, idle, marks = tenant.enroll("L1"), tenant.enroll("L2"), tenant.enroll("L3")
    day = tenant.today
    gp = grant(client, pending, scope(tenant, day=day), 10)
    gm = grant(client, marks, f"MA01-OEM-BAG-{day:%Y%m%d}", 10)
    reconcile(client, pending, [], mode="marks", outbox={"pending": 4})
    reconcile(client, idle, [], mode="marks", outbox={"pending": 0})
    issue(client, marks, gm, [1, 2], "WO-OEM-1")
    reconcile(client, marks, [full_report(gm.lease_id, 5, [], {}, EMPTY_LINKS)], mode="marks")
    assert gp.lease_id

    assert of_kind(check(app, now() + dt.timedelta(hours=1)), F.AGENT_SILENT) == []
    report = check(app, now() + dt.timedelta(hours=7))
    found = {f.details["line"]: f for f in of_kind(report, F.AGENT_SILENT)}
    assert set(found) == {"L1", "L3"}
    assert found["L1"].details["outbox_pending"] == 4
    assert found["L3"].details["unsynced_leases"] == {
        gm.lease_id: {"reported_hw": 5, "highest_fact": 2}
    }
    assert {f.outcome for f in found.values()} == {REPORTED}
    assert report.summary()["silent_agents"] == 2


def test_used_numbers_whose_facts_never_came_are_quarantined(app, client, tenant):
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 10)
    sent = issue(client, h, g, [1, 2, 3])
    # the agent said it used up to 5, then reconciled in full: 4 and 5 are not in its outbox
    reconcile(client, h, [full_report(g.lease_id, 5, [], {}, EMPTY_LINKS)], mode="marks")
    ids = [e.event_id for e in sent]
    reconcile(client, h, [full_report(g.lease_id, 5, ids, {"issued": 3}, EMPTY_LINKS)])
    lost = [serial_of(g, 4), serial_of(g, 5)]
    assert verdict(client, lost[0]) == "pending"

    assert of_kind(check(app, now() + dt.timedelta(minutes=30)), F.FACTS_LOST) == []
    report = check(app, now() + dt.timedelta(minutes=61))
    found = of_kind(report, F.FACTS_LOST)
    assert [f.serial for f in found] == lost
    assert {f.outcome for f in found} == {QUARANTINED}
    rows = quarantine_rows(app)
    assert [(r.serial, r.reason, r.source, r.holds_serial) for r in rows] == [
        (s, "ERR_FACTS_LOST", "checker", True) for s in lost
    ]
    assert details(rows[0])["seq"] == 4
    assert verdict(client, lost[0]) == "under_review"
    hour = dt.timedelta(minutes=61)
    assert {f.outcome for f in of_kind(check(app, now() + hour), F.FACTS_LOST)} == {
        ALREADY_QUARANTINED
    }
    # a supervisor who knows the labels exist releases them: central records the fact
    rt = runtime(app)
    review.release(rt.store, rt.keyring, rows[0].id, "labels seen", "cli:t", now())
    after = of_kind(check(app, now() + hour), F.FACTS_LOST)
    assert [f.serial for f in after] == [lost[1]]


def test_used_numbers_of_a_closed_lease_without_facts_are_lost(app, client, tenant):
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 10)
    issue(client, h, g, [1, 3])  # 2 was used but its facts never came
    resp = client.post(
        f"/api/edge/v1/leases/{g.lease_id}/return", headers=h, json={"v": 1, "high_water": 4}
    )
    assert resp.status_code == 200
    report = check(app, now() + dt.timedelta(minutes=61))
    assert [f.serial for f in of_kind(report, F.FACTS_LOST)] == [serial_of(g, 2), serial_of(g, 4)]


def test_invalid_registry_formats_are_quarantined(app, client, tenant):
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 10)
    issue(client, h, g, [1, 2])
    bad_check = serial_of(g, 1)[:-1] + ("A" if serial_of(g, 1)[-1] != "A" else "B")
    forged = render(g.scope, 2, b"\x01" * 32)
    reg = T.registry.c
    with runtime(app).store.write() as conn:  # corruption of the serial text itself
        conn.execute(
            T.registry.update().where(reg.serial == serial_of(g, 1)).values(serial=bad_check)
        )
        conn.execute(T.registry.update().where(reg.serial == serial_of(g, 2)).values(serial=forged))
    report = check(app)
    found = {f.serial: f.reason for f in of_kind(report, F.INVALID_FORMAT)}
    assert found == {bad_check: "ERR_SERIAL_CHECK", forged: "ERR_SERIAL_MAC"}
    assert report.summary()["invalid_formats"] == 2
    assert {r.reason for r in quarantine_rows(app)} == {"ERR_SERIAL_CHECK", "ERR_SERIAL_MAC"}


def test_expired_lease_tails_still_open_are_closed(app, client, tenant):
    h = tenant.enroll()
    g = grant(client, h, scope(tenant), 10)
    issue(client, h, g, [1, 2, 3])
    later = now() + dt.timedelta(days=4)
    report = check(app, later)
    [finding] = of_kind(report, F.EXPIRED_TAIL)
    assert finding.outcome == FIXED and finding.details["numbers_voided"] == 7
    assert report.summary()["fixed"] == 1
    lease = lease_row(app, g.lease_id)
    assert (lease.status, lease.high_water) == ("expired", 3)
    with runtime(app).store.read() as conn:
        gap = conn.execute(sa.select(T.gaps).where(T.gaps.c.lease_id == g.lease_id)).one()
    assert (gap.first_seq, gap.last_seq, gap.reason) == (4, 10, "expired")
    assert of_kind(check(app, later), F.EXPIRED_TAIL) == []


def test_a_tenant_that_cannot_be_checked_does_not_hide_the_others(app, client, tenant, tmp_path):
    rt = runtime(app)
    admin.add_tenant(rt.store, "ZZ01", "Zeta Works", "UTC", now())
    h = tenant.enroll()
    admin.rotate_keys(rt.store, rt.keyring, now())
    g = grant(client, h, scope(tenant), 10)  # made with key version 2
    issue(client, h, g, [1])
    only_v1 = tmp_path / "v1.json"
    only_v1.write_text(json.dumps({"versions": {"1": rt.keyring.master(1).hex()}}))
    report = run_check(rt.store, Keyring.load(only_v1), rt.config, now())
    assert [t.tenant.org for t in report.tenants] == ["MA01", "ZZ01"]
    assert report.tenants[0].error.startswith("ERR_KEY_UNAVAILABLE")
    assert report.tenants[1].error is None
    assert report.summary()["errors"] == 1 and report.failures == 1
    text = report.to_text()
    assert "  ❌ Error: ERR_KEY_UNAVAILABLE" in text and "❌ Completed with 1 errors" in text


def test_summary_has_the_reference_lines_in_order(app, client, tenant):
    rt = runtime(app)
    admin.add_tenant(rt.store, "ZZ01", "Zeta Works", "UTC", now())
    h = tenant.enroll()
    oem = grant(client, h, scope(tenant, "OEM"), 10)
    issue(client, h, oem, [1], "WO-OEM-1")
    text = check(app, now() + dt.timedelta(hours=25)).to_text()
    lines = text.splitlines()
    assert lines[:3] == [
        "=== LineLedger Consistency Checker ===",
        lines[1],
        "Mode: LIVE",
    ]
    assert lines[1].startswith("Started at: ") and lines[1].endswith(" UTC")
    start = lines.index("Processing tenant: Maison Atelier (MA01)")
    assert lines[start + 1] == "  Found 1 orphaned serial"
    assert lines[start + 2].startswith(f"    - {serial_of(oem, 1)}: issued ")
    assert lines[start + 3] == "  ✅ Completed"
    assert "Processing tenant: Zeta Works (ZZ01)" in lines
    summary = lines[lines.index("=== Summary ===") + 1 :]
    labels = [line.split(":")[0] for line in summary[:19]]
    assert labels == [
        "Tenants processed",
        "Missing tenant links",
        "Missing core links",
        "Invalid formats",
        "Orphaned serials",
        "Fixed",
        "Quarantined",
        "Errors",
        "Lease accounting mismatches",
        "Duplicate serials",
        "Serials outside leases",
        "Silent agents",
        "Facts lost",
        "Expired lease tails",
        "Already quarantined",
        "Awaiting re-send",
        "Noted, nothing to do",
        "Needing attention",
        "",
    ]
    assert "Tenants processed: 2" in summary and "Orphaned serials: 1" in summary
    assert "Quarantined: 1" in summary and "Needing attention: 1" in summary
    assert summary[-2].startswith("Completed at: ") and summary[-1] == "✅ Success!"


def test_a_check_of_one_tenant_covers_that_tenant_only(app, client, tenant):
    rt = runtime(app)
    admin.add_tenant(rt.store, "ZZ01", "Zeta Works", "UTC", now())
    report = run_check(rt.store, rt.keyring, rt.config, now(), org="zz01")
    assert [t.tenant.org for t in report.tenants] == ["ZZ01"]
    assert report.counts()["tenant"] == "ZZ01"
