"""gunicorn settings for several central web workers (PostgreSQL + Redis rate limiting).

Install: pip install "lineledger[server]" (gunicorn and redis).
Run: gunicorn -c deploy/gunicorn.conf.py 'central:create_app()'
Behind nginx (deploy/nginx.conf.example), which absorbs slow clients and hands gunicorn only
complete requests; gunicorn listens on loopback only. With LINELEDGER_TRUSTED_PROXIES=1 the
app takes the customer's address from X-Forwarded-For, believed only from
LINELEDGER_TRUSTED_PROXY_ADDRESS (default 127.0.0.1, nginx on the same host).
Background jobs never run in web workers.
"""

import multiprocessing
import os

bind = os.environ.get("LINELEDGER_BIND", "127.0.0.1:8080")
workers = int(os.environ.get("LINELEDGER_WORKERS", multiprocessing.cpu_count() * 2))
threads = int(os.environ.get("LINELEDGER_THREADS", "4"))
# gunicorn's gthread worker, noting how long each request waits for a thread: past
# LINELEDGER_SHED_AFTER_MS (default 100) a public verify request is answered 503 + Retry-After
# at once instead of queueing into seconds (central/shedding.py).
worker_class = "central.shedding.QueueTimingWorker"
# A request that takes longer than this kills its worker (gunicorn starts a new one).
timeout = 30
graceful_timeout = 20
keepalive = 5
accesslog = "-"
errorlog = "-"
# Request line and header limits; the body limit is the app's (LINELEDGER_MAX_BODY_BYTES)
# and nginx's client_max_body_size.
limit_request_line = 4096
limit_request_fields = 100
limit_request_field_size = 8190
# X-Forwarded-Proto is believed from nginx on this host only.
forwarded_allow_ips = "127.0.0.1,::1"
