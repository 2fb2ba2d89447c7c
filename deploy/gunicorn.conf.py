"""gunicorn settings for several central web workers (PostgreSQL + Redis rate limiting).

Run: gunicorn -c deploy/gunicorn.conf.py 'central:create_app()'
Background jobs never run in web workers.
"""

import multiprocessing
import os

bind = os.environ.get("LINELEDGER_BIND", "127.0.0.1:8080")
workers = int(os.environ.get("LINELEDGER_WORKERS", multiprocessing.cpu_count() * 2))
threads = 4
worker_class = "gthread"
timeout = 30
graceful_timeout = 20
keepalive = 5
accesslog = "-"
errorlog = "-"
limit_request_line = 4096
