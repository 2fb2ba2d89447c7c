"""The agent's status, as `lineledger-edge status` prints it and the operator page shows it."""

from __future__ import annotations

import time
from typing import Any

from edge_agent import odometer, outbox, pool, printing
from edge_agent.agent import Agent
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
    for scope, level in pool.levels(agent.store.conn()).items():
        remaining = level["remaining"]
        warning = None
        if remaining == 0:
            warning = "empty"
        elif remaining < cfg.low_water // 4:
            warning = "critical"
        elif remaining < cfg.low_water:
            warning = "low"
        out[scope] = {"remaining": remaining, "leases": level["leases"], "warning": warning}
    return out


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
    status["work_orders"] = agent.work_order_numbers()
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
    status["central"] = central
    url = printer_url or agent.config.printer_url
    jobs = printing.job_counts(agent)
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
