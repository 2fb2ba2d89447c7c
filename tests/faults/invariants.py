"""The invariants every fault scenario ends with, checked against central's database and the
agents' own databases; a failure lists exactly what is wrong.

1. Every serial an agent handed out (the `issue` stdout) or printed (printer simulator, file
   spool) is in the registry exactly once (one accepted `issued` fact), or held in quarantine
   with a reason. A scenario may declare serials whose facts are lost for good (an agent
   restored from an older copy): those must not be in the registry, and central must know
   their numbers were used (at or below its high-water mark of their lease), so they are never
   handed out again.
2. No serial was handed out twice, and no number is in two leases: the leases of one scope
   never overlap, registry (scope, seq) is unique and inside its lease, recorded gaps lie
   inside their lease and never overlap each other or a registered number.
3. The reconciliation report of every lease balances (`central.reports.lease_report`).
4. Every outbox event an agent marked `done` is known to central, and its serial is in the
   registry or in quarantine; every serial an agent handed out is in that agent's outbox.
"""

from __future__ import annotations

import re
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from central import tables as T
from central.db import Store
from central.leases import high_waters
from central.reports import lease_report
from printers.zpl import extract_fields
from protocol.errors import ProtocolError
from protocol.serials import parse

SERIAL = re.compile(
    r"(?<![A-Z0-9])[A-Z0-9]{2,6}-[A-Z]{3}-[A-Z]{2,4}-[0-9]{8}-[0-9]{5}-[0-9A-Z]{4}-[0-9A-Z](?![A-Z0-9])"
)
SHOWN = 15  # items listed per violation


def serials_in_labels(labels: Iterable[bytes]) -> list[str]:
    """Return the serial each printed label (ZPL) carries, one per label."""
    out = []
    for data in labels:
        found = {m for text in extract_fields(data) for m in SERIAL.findall(text)}
        if len(found) != 1:
            raise AssertionError(f"a printed label carries {sorted(found) or 'no'} serial(s)")
        out.append(found.pop())
    return out


def serials_in_spool(directory: Path) -> list[str]:
    """Return the serials of the labels in a file spool (or a simulator's record dir)."""
    return serials_in_labels(p.read_bytes() for p in sorted(directory.glob("*.zpl")))


@dataclass
class Evidence:
    """What the agents of a scenario did, as seen from outside them."""

    homes: list[Path] = field(default_factory=list)  # agent homes (edge.db)
    handed_out: dict[Path, list[str]] = field(default_factory=dict)  # home -> issue stdout
    printed: list[str] = field(default_factory=list)  # labels that came out of printers
    lost: set[str] = field(default_factory=set)  # facts lost for good (declared by the test)
    # serials an agent's database no longer holds (it was restored from an older copy)
    forgotten: set[str] = field(default_factory=set)

    def hand_out(self, home: Path, serials: Iterable[str]) -> None:
        """Note serials an agent's `issue` printed on stdout."""
        if home not in self.homes:
            self.homes.append(home)
        self.handed_out.setdefault(home, []).extend(serials)


class Violations:
    """Collected problems, one heading each with the items that show it."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, heading: str, items: Iterable[Any] = ()) -> None:
        listed = list(items)
        if not listed:
            self.items.append(heading)
            return
        more = f" ... and {len(listed) - SHOWN} more" if len(listed) > SHOWN else ""
        shown = "\n      ".join(str(i) for i in listed[:SHOWN])
        self.items.append(f"{heading} ({len(listed)}):\n      {shown}{more}")

    def check(self, cond: bool, heading: str, items: Iterable[Any] = ()) -> None:
        if not cond:
            self.add(heading, items)

    def raise_if_any(self) -> None:
        if self.items:
            raise AssertionError(
                f"{len(self.items)} invariant(s) violated:\n  - " + "\n  - ".join(self.items)
            )


def _read_agent(home: Path) -> dict[str, Any]:
    db = sqlite3.connect(f"file:{home / 'edge.db'}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        outbox = [dict(r) for r in db.execute("SELECT event_id, serial, type, status FROM outbox")]
        serials = {r["serial"]: dict(r) for r in db.execute("SELECT * FROM serials")}
    finally:
        db.close()
    return {"outbox": outbox, "serials": serials}


def _central(store: Store) -> dict[str, Any]:
    with store.read() as conn:
        leases = conn.execute(sa.select(T.leases)).all()
        return {
            "registry": {
                r.serial: r
                for r in conn.execute(
                    sa.select(
                        T.registry.c.serial,
                        T.registry.c.scope_key,
                        T.registry.c.seq,
                        T.registry.c.lease_id,
                        T.registry.c.state,
                    )
                )
            },
            "issued_facts": Counter(
                conn.execute(
                    sa.select(T.events.c.serial).where(
                        T.events.c.type == "issued",
                        T.events.c.outcome.in_(("accepted", "released")),
                    )
                ).scalars()
            ),
            "event_ids": set(conn.execute(sa.select(T.events.c.event_id)).scalars()),
            "quarantine": {
                (r.serial, r.reason)
                for r in conn.execute(sa.select(T.quarantine.c.serial, T.quarantine.c.reason))
            },
            "leases": leases,
            "marks": high_waters(conn, leases),
            "gaps": conn.execute(sa.select(T.gaps)).all(),
            "reports": [
                (lease, lease_report(conn, lease, m)) for lease, m in _marked(conn, leases)
            ],
        }


def _marked(conn: Any, leases: list[Any]) -> list[tuple[Any, int]]:
    marks = high_waters(conn, leases)
    return [(lease, marks[lease.id]) for lease in leases]


def _check_leases(v: Violations, c: Mapping[str, Any]) -> None:
    by_scope: dict[str, list[Any]] = defaultdict(list)
    for lease in c["leases"]:
        by_scope[lease.scope_key].append(lease)
    overlaps = []
    for scope, leases in by_scope.items():
        leases.sort(key=lambda r: r.first_seq)
        for a, b in zip(leases, leases[1:], strict=False):
            if b.first_seq <= a.last_seq:
                overlaps.append(
                    f"{scope}: lease {a.id} [{a.first_seq}, {a.last_seq}] (agent {a.agent_id}) "
                    f"and lease {b.id} [{b.first_seq}, {b.last_seq}] (agent {b.agent_id})"
                )
    v.check(not overlaps, "numbers in two leases", overlaps)
    leases = {lease.id: lease for lease in c["leases"]}
    seen: Counter[tuple[str, int]] = Counter()
    outside = []
    for r in c["registry"].values():
        seen[(r.scope_key, r.seq)] += 1
        lease = leases.get(r.lease_id)
        if lease is None or lease.scope_key != r.scope_key:
            outside.append(f"{r.serial}: its lease {r.lease_id} is not of its scope")
        elif not lease.first_seq <= r.seq <= lease.last_seq:
            outside.append(
                f"{r.serial}: #{r.seq} outside lease [{lease.first_seq}, {lease.last_seq}]"
            )
    twice = [f"{scope} #{seq} x{n}" for (scope, seq), n in seen.items() if n > 1]
    v.check(not twice, "registry (scope, seq) not unique", twice)
    v.check(not outside, "registry serials outside their lease", outside)
    bad_gaps = []
    gaps_by_lease: dict[str, list[Any]] = defaultdict(list)
    for g in c["gaps"]:
        lease = leases.get(g.lease_id)
        if lease is None or not lease.first_seq <= g.first_seq <= g.last_seq <= lease.last_seq:
            bad_gaps.append(f"gap [{g.first_seq}, {g.last_seq}] of {g.scope_key} outside its lease")
        gaps_by_lease[g.lease_id].append(g)
        used = [
            r.serial
            for r in c["registry"].values()
            if r.scope_key == g.scope_key and g.first_seq <= r.seq <= g.last_seq
        ]
        if used:
            bad_gaps.append(f"gap [{g.first_seq}, {g.last_seq}] of {g.scope_key} holds {used[:3]}")
    for lease_id, gs in gaps_by_lease.items():
        gs.sort(key=lambda g: g.first_seq)
        for a, b in zip(gs, gs[1:], strict=False):
            if b.first_seq <= a.last_seq:
                bad_gaps.append(f"gaps of lease {lease_id} overlap: {a.first_seq}-{b.last_seq}")
    v.check(not bad_gaps, "recorded gaps wrong", bad_gaps)
    unbalanced = [
        f"lease {rep['lease_id']} {rep['scope']} [{rep['first']}, {rep['last']}] {rep['status']}:"
        f" issued {rep['issued']} + unaccounted {rep['unaccounted']} + gap {rep['gap']} + "
        f"unused {rep['unused']} != leased {rep['leased']} (mark {rep['high_water']}, "
        f"above mark {rep['above_mark']})"
        for _, rep in c["reports"]
        if not rep["balanced"]
    ]
    v.check(not unbalanced, "reconciliation reports that do not balance", unbalanced)


def _lease_of(c: Mapping[str, Any], serial: str) -> Any:
    try:
        s = parse(serial)
    except ProtocolError:
        return None
    for lease in c["leases"]:
        if lease.scope_key == s.scope.key and lease.first_seq <= s.seq <= lease.last_seq:
            return lease
    return None


def check(db_url: str, evidence: Evidence) -> dict[str, Any]:
    """Check every invariant; raise AssertionError listing each violation. Return counts."""
    store = Store(db_url)
    try:
        c = _central(store)
    finally:
        store.dispose()
    v = Violations()
    registry, facts = c["registry"], c["issued_facts"]
    held = defaultdict(set)
    for serial, reason in c["quarantine"]:
        held[serial].add(reason)
    no_reason = sorted(s for s, reasons in held.items() if not all(r.strip() for r in reasons))
    v.check(not no_reason, "quarantine entries without a reason", no_reason)

    handed: list[str] = [s for serials in evidence.handed_out.values() for s in serials]
    twice = [f"{s} x{n}" for s, n in Counter(handed).items() if n > 1]
    v.check(not twice, "serials handed out twice (two physical labels, one number)", twice)
    everything = set(handed) | set(evidence.printed)
    unknown_printed = sorted(set(evidence.printed) - set(handed)) if evidence.handed_out else []
    v.check(not unknown_printed, "labels printed that no issue handed out", unknown_printed)

    missing, doubled, lost_wrong = [], [], []
    for serial in sorted(everything):
        if serial in evidence.lost:
            lease = _lease_of(c, serial)
            if serial in registry:
                lost_wrong.append(f"{serial}: declared lost, yet in the registry")
            elif lease is None:
                lost_wrong.append(f"{serial}: declared lost, and in no lease")
            elif parse(serial).seq > c["marks"][lease.id]:
                lost_wrong.append(
                    f"{serial}: lost, and central does not know its number was used "
                    f"(#{parse(serial).seq} above the mark {c['marks'][lease.id]} of lease "
                    f"{lease.id}): it could be handed out again"
                )
            continue
        if serial in registry:
            if facts[serial] != 1:
                doubled.append(f"{serial}: {facts[serial]} accepted issued facts")
        elif serial not in held:
            missing.append(serial)
    v.check(
        not missing, "serials handed out or printed, in neither registry nor quarantine", missing
    )
    v.check(not doubled, "registered serials without exactly one issued fact", doubled)
    v.check(not lost_wrong, "serials declared lost, wrongly accounted", lost_wrong)
    many = [f"{s}: {n} accepted issued facts" for s, n in facts.items() if n > 1]
    v.check(not many, "serials issued more than once in central's facts", many)

    _check_leases(v, c)

    done_unknown, done_nowhere, unrecorded = [], [], []
    for home in evidence.homes:
        agent = _read_agent(home)
        for row in agent["outbox"]:
            if row["status"] != "done":
                continue
            if row["event_id"] not in c["event_ids"]:
                done_unknown.append(f"{home.name}: {row['type']} {row['serial']} {row['event_id']}")
            if row["serial"] not in registry and row["serial"] not in held:
                done_nowhere.append(f"{home.name}: {row['serial']}")
        issued_in_outbox = {r["serial"] for r in agent["outbox"] if r["type"] == "issued"}
        for serial in evidence.handed_out.get(home, []):
            if serial in evidence.forgotten:
                continue
            if serial not in agent["serials"] or serial not in issued_in_outbox:
                unrecorded.append(f"{home.name}: {serial}")
    v.check(not done_unknown, "outbox events marked done that central does not know", done_unknown)
    v.check(
        not done_nowhere, "done outbox serials in neither registry nor quarantine", done_nowhere
    )
    v.check(not unrecorded, "serials handed out but not recorded in the agent's outbox", unrecorded)
    v.raise_if_any()
    return {
        "registered": len(registry),
        "quarantined": len(held),
        "leases": len(c["leases"]),
        "handed_out": len(handed),
        "printed": len(evidence.printed),
    }
