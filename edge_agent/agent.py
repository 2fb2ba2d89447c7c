"""One edge agent: its configuration, local store, identity and link to central."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Any

import requests

from edge_agent import alerts
from edge_agent.client import CentralClient
from edge_agent.clock import REFUSE, Clock, ClockReading, ClockSources, describe, state_of
from edge_agent.config import EdgeConfig
from edge_agent.errors import (
    ERR_AGENT_REVOKED,
    ERR_NOT_ENROLLED,
    ERR_UNAUTHORIZED,
    ERR_UNKNOWN_WORK_ORDER,
    EdgeError,
)
from edge_agent.store import EdgeStore
from protocol.ids import Uuid7Sequence
from protocol.messages import AgentConfig, WorkOrderInfo
from protocol.timefmt import format_ts

log = logging.getLogger("lineledger.edge")
REVOKED_KEY = "revoked"
CLOCK_KEY = "clock"
OVERRIDE_KEY = "clock_override"
# A new reading is written down when it moved the offset this much, or this long after the
# last one written: a write at every contact would contend with issuing for nothing.
_CLOCK_SAVE_DELTA = 1.0
_CLOCK_SAVE_EVERY = 60.0
REVOKED_ADVICE = (
    "Issuing is stopped; the unsynced events stay on this PC. If the PC was revoked by "
    "mistake, ask a central admin to reinstate it (lineledger-central agent reinstate); if "
    "it got a new token, run lineledger-edge set-token."
)


@dataclass(frozen=True)
class Identity:
    """Who the agent is, as central told it at enrollment and in its config."""

    central_url: str
    agent_id: str
    token: str
    org: str
    line: str
    tenant_name: str
    timezone: str
    verify_base_url: str


_IDENTITY_KEYS = (
    "central_url",
    "agent_id",
    "token",
    "org",
    "line",
    "tenant_name",
    "timezone",
    "verify_base_url",
)


class Agent:
    """The services of one agent home, shared by the CLI, the scheduler and the operator page."""

    def __init__(
        self,
        config: EdgeConfig,
        session: requests.Session | None = None,
        clock_sources: ClockSources | None = None,
    ) -> None:
        self.config = config
        self.store = EdgeStore(config.home_path)
        self.store.init_schema()
        self._ids = Uuid7Sequence()
        self._ids_lock = threading.Lock()
        self._session = session
        self._client: CentralClient | None = None
        self._clock_saved = ClockReading.from_json(self.store.get_meta(CLOCK_KEY))
        self._clock_state_saved = self._clock_state(self._clock_saved)
        self.clock = Clock(self._clock_saved, clock_sources)

    def now(self) -> dt.datetime:
        """Return the current time, aware, in UTC: corrected by central's clock once measured."""
        return self.clock.now()

    def new_event_id(self) -> str:
        """Return a fresh UUIDv7, increasing within this process."""
        with self._ids_lock:
            return self._ids.next(time.time_ns() // 1_000_000, os.urandom(10))

    @property
    def enrolled(self) -> bool:
        """Tell whether the agent has an identity."""
        return self.store.get_meta("token") is not None

    def identity(self) -> Identity:
        """Return the agent's identity, or raise ERR_NOT_ENROLLED."""
        values = {k: self.store.get_meta(k) for k in _IDENTITY_KEYS}
        if not values["token"] or not values["central_url"]:
            raise EdgeError(
                ERR_NOT_ENROLLED,
                "this agent is not enrolled: run lineledger-edge enroll --central URL --code CODE",
            )
        return Identity(**{k: v or "" for k, v in values.items()})

    def client(self) -> CentralClient:
        """Return the HTTP client for central (one per agent object)."""
        if self._client is None:
            self._client = self.new_client(self.config.http_timeout, self._session)
        return self._client

    def new_client(self, timeout: float, session: requests.Session | None = None) -> CentralClient:
        """Return a new client for central (for a thread of its own); the caller closes it."""
        ident = self.identity()
        client = CentralClient(
            ident.central_url,
            ident.token,
            timeout,
            session,
            boot_id=self.clock.boot_id,
            clock=self.clock.sources,
            insecure=self.config.insecure,
            ca_bundle=self.config.ca_bundle_path,
        )
        client.on_clock = self.on_clock_reading
        client.on_answer = self.on_central_answer
        return client

    # -- the clock -------------------------------------------------------------------------

    def _clock_state(self, reading: ClockReading | None) -> str:
        offset = None if reading is None else reading.offset
        return state_of(offset, self.config.clock_warn_seconds, self.config.clock_limit_seconds)

    def on_clock_reading(self, reading: ClockReading) -> None:
        """Take a clock reading central's answer gave: correct time, warn, write it down."""
        self.clock.update(reading)
        saved = self._clock_saved
        state = self._clock_state(reading)
        if (
            saved is not None
            and state == self._clock_state_saved
            and abs(reading.offset - saved.offset) <= _CLOCK_SAVE_DELTA
            and reading.central_at - saved.central_at < _CLOCK_SAVE_EVERY
        ):
            return
        try:
            self._save_clock(reading, state)
        except sqlite3.Error as exc:  # a full disk must not turn a good answer into a failure
            log.warning("could not record the clock reading: %s", exc)
            return
        self._clock_saved, self._clock_state_saved = reading, state

    def _save_clock(self, reading: ClockReading, state: str) -> None:
        stamp = format_ts(self.now())
        cfg = self.config
        with self.store.write() as conn:
            self.store.set_meta(conn, CLOCK_KEY, reading.to_json())
            if state == "ok":
                alerts.clear_kind(conn, alerts.CLOCK_SKEW, "the clock is within tolerance", stamp)
            else:
                message = f"this PC's clock is {describe(reading.offset)}; set it right (NTP)"
                if state == REFUSE:
                    message += (
                        f". Beyond {cfg.clock_limit_seconds:g} s issuing is refused "
                        "(ERR_CLOCK_SKEW) unless a supervisor overrides: "
                        "lineledger-edge clock override --reason TEXT"
                    )
                else:
                    message += f" (tolerance {cfg.clock_warn_seconds:g} s)"
                details = {"offset_s": round(reading.offset, 3), "rtt_s": round(reading.rtt, 3)}
                alerts.raise_alert(conn, alerts.CLOCK_SKEW, message, stamp, details)
            if state != REFUSE:
                # The clock is fixed: an override must not outlive the problem it covered.
                conn.execute("DELETE FROM meta WHERE key = ?", (OVERRIDE_KEY,))
                alerts.clear_kind(
                    conn, alerts.CLOCK_OVERRIDE, "the clock is within the limit again", stamp
                )

    def _meta_object(self, key: str) -> dict[str, Any] | None:
        raw = self.store.get_meta(key)
        if raw is None:
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            value = None
        return value if isinstance(value, dict) else {"message": "(unreadable record)"}

    def clock_override(self) -> dict[str, Any] | None:
        """Return the supervisor's clock override, if one is in force."""
        return self._meta_object(OVERRIDE_KEY)

    def set_clock_override(self, reason: str, by: str) -> dict[str, Any]:
        """Let issuing go on despite a clock beyond the limit (a supervisor's decision)."""
        offset = self.clock.offset()
        stamp = format_ts(self.now())
        value = {
            "reason": reason,
            "by": by,
            "at": stamp,
            "offset_s": None if offset is None else round(offset, 3),
        }
        with self.store.write() as conn:
            self.store.set_meta(conn, OVERRIDE_KEY, json.dumps(value, sort_keys=True))
            alerts.raise_alert(
                conn,
                alerts.CLOCK_OVERRIDE,
                f"issuing despite the clock: supervisor override by {by} ({reason})",
                stamp,
                value,
            )
        return value

    def clear_clock_override(self) -> bool:
        """End the clock override; return whether there was one."""
        stamp = format_ts(self.now())
        with self.store.write() as conn:
            gone = conn.execute("DELETE FROM meta WHERE key = ?", (OVERRIDE_KEY,)).rowcount
            alerts.clear_kind(conn, alerts.CLOCK_OVERRIDE, "override cleared", stamp)
        return bool(gone)

    # -- standing with central -------------------------------------------------------------

    def revoked(self) -> dict[str, Any] | None:
        """Return what central said when it revoked this agent (None: not revoked)."""
        return self._meta_object(REVOKED_KEY)

    def on_central_answer(self, status: int, code: str | None, message: str) -> None:
        """Learn from any answer that central revoked, refused or accepted this agent."""
        try:
            if status == 403 and code == ERR_AGENT_REVOKED:
                self._mark_revoked(message)
            elif status == 401 and code == ERR_UNAUTHORIZED:
                self._token_rejected(message)
            elif 200 <= status < 300:
                self._accepted()
        except sqlite3.Error as exc:
            log.warning("could not record central's answer: %s", exc)

    def _mark_revoked(self, message: str) -> None:
        if self.revoked() is not None:
            return
        stamp = format_ts(self.now())
        value = {"at": stamp, "message": message or "revoked by central"}
        with self.store.write() as conn:
            if self.store.get_meta(REVOKED_KEY) is not None:
                return
            self.store.set_meta(conn, REVOKED_KEY, json.dumps(value, sort_keys=True))
            alerts.raise_alert(
                conn,
                alerts.AGENT_REVOKED,
                f"central revoked this line PC; central said: {value['message']}. {REVOKED_ADVICE}",
                stamp,
                value,
            )
        log.warning("central revoked this agent: %s", value["message"])

    def _token_rejected(self, message: str) -> None:
        stamp = format_ts(self.now())
        with self.store.write() as conn:
            alerts.raise_alert(
                conn,
                alerts.TOKEN_REJECTED,
                "central does not accept this PC's token any more; if an admin rotated it, run "
                "lineledger-edge set-token and paste the new token",
                stamp,
                {"central": message},
            )

    def _accepted(self) -> None:
        conn = self.store.conn()
        revoked = conn.execute("SELECT 1 FROM meta WHERE key = ?", (REVOKED_KEY,)).fetchone()
        token = conn.execute(
            "SELECT 1 FROM alerts WHERE kind = ? AND cleared_at IS NULL", (alerts.TOKEN_REJECTED,)
        ).fetchone()
        if revoked is None and token is None:
            return
        stamp = format_ts(self.now())
        with self.store.write() as w:
            w.execute("DELETE FROM meta WHERE key = ?", (REVOKED_KEY,))
            alerts.clear_kind(w, alerts.AGENT_REVOKED, "central accepts this agent again", stamp)
            alerts.clear_kind(w, alerts.TOKEN_REJECTED, "central accepts the token", stamp)
        if revoked is not None:
            log.warning("central accepts this agent again (reinstated)")

    def set_token(self, token: str) -> None:
        """Store a new agent token (central rotated it); the next call uses it."""
        with self.store.write() as conn:
            self.store.set_meta(conn, "token", token)
        if self._client is not None:
            self._client.close()
            self._client = None

    def save_config(self, cfg: AgentConfig) -> None:
        """Store what central says about the line, replacing the cached work orders."""
        with self.store.write() as conn:
            for key, value in (
                ("timezone", cfg.timezone),
                ("verify_base_url", cfg.verify_base_url),
                ("tenant_name", cfg.tenant_name),
                ("org", cfg.org),
                ("line", cfg.line),
            ):
                self.store.set_meta(conn, key, value)
            # Work orders central no longer lists are kept as closed: their serials may
            # still need a reprint, which needs the product's name and template.
            conn.execute("UPDATE work_orders SET status = 'closed'")
            # issued_local is the agent's own count and is never overwritten by central.
            conn.executemany(
                "INSERT INTO work_orders(number, sku, product_name, category, ptype, quantity,"
                " status, gtin, label_template, allowed, consumed_elsewhere) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(number) DO UPDATE SET sku = excluded.sku, product_name = "
                "excluded.product_name, category = excluded.category, ptype = excluded.ptype, "
                "quantity = excluded.quantity, status = excluded.status, gtin = excluded.gtin, "
                "label_template = excluded.label_template, allowed = excluded.allowed, "
                "consumed_elsewhere = excluded.consumed_elsewhere",
                [
                    (
                        w.number,
                        w.sku,
                        w.product_name,
                        w.category,
                        w.ptype,
                        w.quantity,
                        w.status,
                        w.gtin,
                        w.label_template,
                        w.allowed,
                        w.consumed_elsewhere,
                    )
                    for w in cfg.work_orders
                ],
            )
            self.store.set_meta(conn, "label_templates", json.dumps(cfg.label_templates))
            self.store.set_meta(conn, "config_at", self.now().isoformat())

    def refresh_config(self) -> AgentConfig:
        """Fetch the line's configuration from central and cache it."""
        cfg = self.client().config()
        self.save_config(cfg)
        return cfg

    def work_order(self, number: str) -> WorkOrderInfo:
        """Return a cached open work order, or raise ERR_UNKNOWN_WORK_ORDER."""
        row = (
            self.store.conn()
            .execute("SELECT * FROM work_orders WHERE number = ?", (number,))
            .fetchone()
        )
        if row is None or row["status"] != "open":
            raise EdgeError(
                ERR_UNKNOWN_WORK_ORDER,
                f"work order {number!r} is not open for this line (known: "
                f"{', '.join(self.work_order_numbers()) or 'none'}); "
                "the list refreshes from central while it is reachable",
            )
        return WorkOrderInfo(
            row["number"],
            row["sku"],
            row["product_name"],
            row["category"],
            row["ptype"],
            row["quantity"],
            row["status"],
            row["gtin"],
            row["label_template"] or "default",
            row["allowed"],
            row["consumed_elsewhere"] or 0,
        )

    def work_order_numbers(self) -> list[str]:
        """Return the open work orders this line knows."""
        return [
            r["number"]
            for r in self.store.conn().execute(
                "SELECT number FROM work_orders WHERE status = 'open' ORDER BY number"
            )
        ]

    def close(self) -> None:
        """Release connections."""
        if self._client is not None:
            self._client.close()
        self.store.close()
