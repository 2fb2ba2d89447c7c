"""Budgets per client address (public verify, enrollment), through the `limits` library.

We used flask-limiter, which is built on `limits`; its per-request bookkeeping (an app-wide
check on every request, then resolving, filtering and evaluating the view's limits, and a
second storage round trip for X-RateLimit headers) cost about a fifth of a verify's Python
work. Asked directly, `limits` does one moving-window hit per limit in the configured storage
(memory, or Redis shared by every worker) and nothing else, and only on the guarded
endpoints. A refused request is answered 429 `ERR_RATE_LIMITED` with `Retry-After`; the
verify page answers in the page's look.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from flask import Flask, g, request
from limits import RateLimitItem, parse_many
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from central.errors import CentralError, Unavailable
from central.shedding import SHED_ENDPOINTS

log = logging.getLogger("lineledger.central")

ERR_RATE_LIMITED = "ERR_RATE_LIMITED"
ERR_RATE_LIMIT_STORAGE = "ERR_RATE_LIMIT_STORAGE"
ENROLL_ENDPOINTS = frozenset({"edge.enroll"})


class RateLimited(CentralError):
    """Too many verify requests from one client address; `retry_after` seconds to wait."""

    status = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__(ERR_RATE_LIMITED, "too many requests from your address; try again later")
        self.retry_after = retry_after


class Budget:
    """A moving-window budget per client address, e.g. `60/hour` or `20/minute;500/day`."""

    def __init__(self, name: str, limit: str, strategy: MovingWindowRateLimiter) -> None:
        self.namespace = ("lineledger", name)
        self.items: list[RateLimitItem] = parse_many(limit)
        self.strategy = strategy

    def spend(self, client: str) -> int | None:
        """Count one request of `client`; return None if allowed, else seconds to wait."""
        for item in self.items:
            if not self.strategy.hit(item, *self.namespace, client):
                reset = self.strategy.get_window_stats(item, *self.namespace, client).reset_time
                return max(1, int(reset - time.time()) + 1)
        return None


def register(
    app: Flask, verify_limit: str, enroll_limit: str, storage_uri: str
) -> Callable[[], None]:
    """Charge public verify requests (not CORS preflights) and enrollments to their client;
    return what closes the storage's connections."""
    storage = storage_from_string(storage_uri)
    strategy = MovingWindowRateLimiter(storage)
    budgets = {
        **dict.fromkeys(SHED_ENDPOINTS, Budget("verify", verify_limit, strategy)),
        **dict.fromkeys(ENROLL_ENDPOINTS, Budget("enroll", enroll_limit, strategy)),
    }

    @app.before_request
    def charge_budget() -> None:
        budget = budgets.get(request.endpoint or "")
        if budget is None or request.method == "OPTIONS":
            return
        try:
            wait = budget.spend(request.remote_addr or "")
        except Exception as exc:  # the shared storage (Redis) is down: fail closed
            log.warning("rate-limit storage unavailable: %s", exc)
            raise Unavailable(ERR_RATE_LIMIT_STORAGE, "unavailable for a moment; retry") from None
        if wait is not None:
            g.retry_after = wait
            raise RateLimited(wait)

    def close() -> None:
        client = getattr(storage, "storage", None)  # Redis: the client and its pool
        if client is not None and hasattr(client, "close"):
            client.close()

    return close
