"""The agent's status, as `lineledger-edge status` prints it and the operator page shows it."""

from __future__ import annotations

import time
from typing import Any

from edge_agent import alerts, links, odometer, outbox, pool, printing, reconcile
from edge_agent.agent import REVOKED_ADVICE, Agent
from edge_agent.errors import (
    ERR_PRINTER_ODOMETER,
    CentralRefused,
    CentralUnreachable,
    EdgeError,
)


def pool_status(agent: Agent) -> dict[str, Any]:
    """Return numbers on hand per scope, with the operator warnings."""
    cfg = agent.config
    out = {}
    needs = _scope_needs(agent)
    for scope, level in pool.levels(agent.store.conn()).items():
        remaining = level["remaining"]
        # A pool that holds all its open work orders can still issue is not running low,
        # however small: central grants no more than the work needs.
        need = needs.get(scope.rsplit("-", 1)[0])
        low = cfg.low_water if need is None else min(cfg.low_water, need)
        warning = None
        if remaining == 0 and low > 0:
            warning = "empty"
        elif remaining < low // 4:
            warning = "critical"
        elif remaining < low:
            warning = "low"
        out[scope] = {"remaining": remaining, "leases": level["leases"], "warning": warning}
    return out


def _scope_needs(agent: Agent) -> dict[str, int]:
    """Return what the open work orders can still issue per scope prefix (org-type-category).

    A prefix with a work order of unknown allowance is left out (no limit known).
    """
    try:
        org = agent.identity().org
    except EdgeError:
        return {}
    needs: dict[str, int] = {}
    unlimited: set[str] = set()
    for r in agent.store.conn().execute(
        "SELECT ptype, category, allowed, consumed_elsewhere, issued_local FROM work_orders "
        "WHERE status = 'open'"
    ):
        prefix = f"{org}-{r['ptype']}-{r['category']}"
        if r["allowed"] is None:
            unlimited.add(prefix)
            continue
        left = max(0, r["allowed"] - r["consumed_elsewhere"] - r["issued_local"])
        needs[prefix] = needs.get(prefix, 0) + left
    return {k: v for k, v in needs.items() if k not in unlimited}


def allowance_status(agent: Agent) -> dict[str, dict[str, Any]]:
    """Return, per open work order, what it may still issue on this line."""
    out: dict[str, dict[str, Any]] = {}
    for r in agent.store.conn().execute(
        "SELECT number, allowed, consumed_elsewhere, issued_local FROM work_orders "
        "WHERE status = 'open' ORDER BY number"
    ):
        allowed = r["allowed"]
        left = (
            None
            if allowed is None
            else max(0, allowed - r["consumed_elsewhere"] - r["issued_local"])
        )
        out[r["number"]] = {
            "allowed": allowed,
            "issued_here": r["issued_local"],
            "consumed_elsewhere": r["consumed_elsewhere"],
            "remaining": left,
            "complete": left == 0,
        }
    return out


def clock_status(agent: Agent) -> dict[str, Any]:
    """Return the clock's offset from central, its state and any supervisor override."""
    cfg = agent.config
    out = agent.clock.status(cfg.clock_warn_seconds, cfg.clock_limit_seconds)
    out["override"] = agent.clock_override()
    return out


def revoked_status(agent: Agent) -> dict[str, Any] | None:
    """Return what the operator must know when central revoked this agent."""
    revoked = agent.revoked()
    if revoked is None:
        return None
    pending = outbox.counts(agent)["pending"]
    return {
        "at": revoked.get("at"),
        "central_said": revoked.get("message"),
        "message": f"This line PC was revoked by central. {REVOKED_ADVICE}",
        "unsynced_events": pending,
    }


def build_status(
    agent: Agent,
    probe: bool,
    sync_state: dict[str, Any] | None = None,
    printer_url: str | None = None,
) -> dict[str, Any]:
    """Return the whole status; `probe` asks central and the printer now (a few seconds)."""
    status: dict[str, Any] = {
        "home": str(agent.config.home_path.resolve()),
        "enrolled": agent.enrolled,
    }
    try:
        ident = agent.identity()
    except EdgeError as exc:
        status["error"] = exc.to_dict()
        return status
    status["agent"] = {
        "agent_id": ident.agent_id,
        "org": ident.org,
        "line": ident.line,
        "tenant": ident.tenant_name,
        "timezone": ident.timezone,
    }
    # Probed first: the answer may tell that the agent was revoked, reinstated, its clock off.
    central: dict[str, Any] = {"url": ident.central_url}
    if probe:
        try:
            agent.client().ping(timeout=min(3.0, agent.config.http_timeout))
            central.update(reachable=True)
        except (CentralUnreachable, CentralRefused) as exc:
            central.update(reachable=False, error=exc.to_dict())
    elif sync_state is not None:
        central.update(
            reachable=sync_state["last_error"] is None and sync_state["last_success"] is not None,
            **sync_state,
        )
    status["work_orders"] = agent.work_order_numbers()
    status["allowance"] = allowance_status(agent)
    status["revoked"] = revoked_status(agent)
    status["clock"] = clock_status(agent)
    conn = agent.store.conn()
    status["alerts"] = alerts.list_alerts(conn)
    status["links"] = links.link_counts(conn)
    status["reconcile"] = {
        "last_full": reconcile.last_reconcile(agent),
        "last_marks_at": agent.store.get_meta("marks_exchange_at"),
    }
    status["pool"] = pool_status(agent)
    counts = outbox.counts(agent)
    status["outbox"] = {
        "pending": counts["pending"],
        "dead": counts["dead"],
        "rejected": counts["rejected"],
        "quarantined": counts["quarantined"],
        "delivered": counts["done"],
        "oldest_pending_age_s": outbox.oldest_pending_age(agent, time.time()),
    }
    status["central"] = central
    url = printer_url or printing.default_printer(agent)
    # The jobs of the printer this line prints on, not those left for one it no longer uses.
    jobs = printing.job_counts(agent, url or None)
    printer: dict[str, Any] = {"url": url or None, "jobs": jobs}
    if url:
        if probe:
            queue = printing.PrintQueue(agent)
            try:
                queue.check(url)
            finally:
                queue.close()
        known = printing.printer_state(agent, url)
        printer.update(
            state=known["state"] if known else "unknown",
            message=known["message"] if known else None,
            checked_at=known["checked_at"] if known else None,
        )
        record = odometer.record(agent, url)
        printer["odometer"] = record.to_dict() if record else None
        if record is not None and record.held:
            # A hold outlives faults seen since: it is what the operator must act on first.
            printer.update(
                state=odometer.HELD,
                code=ERR_PRINTER_ODOMETER,
                message=odometer.message(record),
                last_check_state=known["state"] if known else "unknown",
            )
    else:
        printer["state"] = "none"
    status["printer"] = printer
    return status
