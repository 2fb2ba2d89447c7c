"""One edge agent: its configuration, local store, identity and link to central."""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
from dataclasses import dataclass

import requests

from edge_agent.client import CentralClient
from edge_agent.config import EdgeConfig
from edge_agent.errors import ERR_NOT_ENROLLED, ERR_UNKNOWN_WORK_ORDER, EdgeError
from edge_agent.store import EdgeStore
from protocol.ids import Uuid7Sequence
from protocol.messages import AgentConfig, WorkOrderInfo


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

    def __init__(self, config: EdgeConfig, session: requests.Session | None = None) -> None:
        self.config = config
        self.store = EdgeStore(config.home_path)
        self.store.init_schema()
        self._ids = Uuid7Sequence()
        self._ids_lock = threading.Lock()
        self._session = session
        self._client: CentralClient | None = None

    @staticmethod
    def now() -> dt.datetime:
        """Return the current time, aware, in UTC."""
        return dt.datetime.now(dt.UTC)

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
            ident = self.identity()
            self._client = CentralClient(
                ident.central_url, ident.token, self.config.http_timeout, self._session
            )
        return self._client

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
            conn.executemany(
                "INSERT INTO work_orders(number, sku, product_name, category, ptype, quantity,"
                " status, gtin, label_template) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(number) DO UPDATE SET sku = excluded.sku, product_name = "
                "excluded.product_name, category = excluded.category, ptype = excluded.ptype, "
                "quantity = excluded.quantity, status = excluded.status, gtin = excluded.gtin, "
                "label_template = excluded.label_template",
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
