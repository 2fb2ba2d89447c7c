"""The central registry: a Flask app over a SQLAlchemy Core store (SQLite or PostgreSQL).

It grants non-overlapping leases of serial numbers to edge agents, ingests their events
exactly once in effect, quarantines what it cannot trust and answers public verification.
`create_app` builds the app; `central.cli` is the `lineledger-central` command.
"""

from __future__ import annotations

import atexit
import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from central import (
    api_admin,
    api_edge,
    api_erp,
    api_genconfig,
    api_generate,
    api_jobs,
    api_ops,
    api_public,
    api_requests,
    api_review,
    api_workorders,
    openapi,
    ratelimit,
    shedding,
    web_errors,
)
from central.admin import ensure_active_key
from central.config import CentralConfig, load_config
from central.db import PRIVATE_DIR, Store, make_private
from central.keyring import Keyring
from central.metrics import Metrics
from central.public_url import watch_request_hosts
from central.runtime import Runtime
from central.verify_tally import VerifyTally
from central.webserver import apply_proxy_headers, apply_security_headers


def create_app(
    test_config: Mapping[str, Any] | None = None, *, server_reads_proxy_headers: bool = False
) -> Flask:
    """Build the central app; `test_config` overrides every other configuration source.

    `server_reads_proxy_headers`: the WSGI server already took the client's address from the
    trusted proxy's X-Forwarded-For (`serve`); otherwise (gunicorn) the app does.
    """
    config = load_config(test_config)
    home = Path(config.home).resolve()
    app = Flask(__name__, instance_path=str(home))
    app.config.update(MAX_CONTENT_LENGTH=config.max_body_bytes, JSON_SORT_KEYS=False)
    store = Store(config.database_url)
    tally = VerifyTally(store, config.verify_flush_seconds)
    atexit.register(tally.close)  # a web worker that exits writes its last counts
    app.extensions["lineledger"] = Runtime(
        config=config,
        store=store,
        keyring=Keyring.load(config.keyring_file),
        tally=tally,
        metrics=Metrics(store),
    )
    if not server_reads_proxy_headers:
        apply_proxy_headers(app, config)
    # Before the budgets, so an answer they refuse still gets the headers and a CSP nonce.
    apply_security_headers(app)
    shedding.register(app, config.shed_after_ms)  # first: a shed request costs nothing more
    app.before_request(api_requests.refuse_nul_in_address)
    app.register_blueprint(api_ops.bp)
    app.register_blueprint(api_edge.bp)
    app.register_blueprint(api_public.bp)
    app.register_blueprint(api_admin.bp)
    app.register_blueprint(api_jobs.bp)
    app.register_blueprint(api_erp.bp)
    app.register_blueprint(api_review.bp)
    app.register_blueprint(api_genconfig.bp)
    app.register_blueprint(api_workorders.bp)
    app.register_blueprint(api_generate.bp)
    app.register_blueprint(openapi.bp)
    # One budget per client address for the verify API and page together (CORS preflights
    # cost nothing), one for enrollment: central/ratelimit.py.
    close_budgets = ratelimit.register(
        app, config.verify_rate_limit, config.enroll_rate_limit, config.ratelimit_storage_uri
    )
    app.extensions["lineledger"].closers.append(close_budgets)
    web_errors.register(app)
    watch_request_hosts(app, config)
    return app


def init_registry(config: CentralConfig, now: dt.datetime) -> int:
    """Create or upgrade the schema and make sure a master key exists; return its version."""
    home = Path(config.home)
    home.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    try:
        home.chmod(PRIVATE_DIR)  # it holds the master keys and, on SQLite, the database
    except PermissionError:
        pass  # a home owned by someone else: its owner decides
    store = Store(config.database_url)
    try:
        store.init_schema()
        if store.sqlite_path is not None:
            make_private(store.sqlite_path)
        return ensure_active_key(store, Keyring.load(config.keyring_file), now)
    finally:
        store.dispose()
