"""Pull work orders from a tenant's ERP over HTTP (`requests`), page by page.

GET `erp_url` with `Authorization: Bearer <erp_token>` answers JSON: a list of records, or a
page `{"results": [...], "next": url-or-null}` (see `central.erp` for the record format).
Each page is synced as it arrives, so a failure on page 7 leaves pages 1-6 synced and the sync
`partial` with the reason. Connect and read timeouts, a deadline for the whole pull, a size
limit per page, a bounded number of pages, and `next` links and redirects only to the same
scheme, host and port (the token never travels elsewhere). Timeouts, connection errors and
5xx answers are retried a few times with backoff; 4xx answers are not. The token never
appears in a message, a log line or the recorded source.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import sqlalchemy as sa

from central import audit, erp, erp_records
from central import tables as T
from central.db import Store
from central.errors import (
    ERR_ERP_DEADLINE,
    ERR_ERP_FOREIGN_URL,
    ERR_ERP_FORMAT,
    ERR_ERP_NOT_CONFIGURED,
    ERR_ERP_REFUSED,
    ERR_ERP_STOPPED,
    ERR_ERP_TOO_LARGE,
    ERR_ERP_UNAVAILABLE,
    CentralError,
    Conflict,
)

log = logging.getLogger("lineledger.central.erp")


@dataclass(frozen=True)
class PullSettings:
    """How patient a pull is, and how much it accepts."""

    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    attempts: int = 3  # per page
    backoff_s: float = 1.0  # doubled after each failed attempt
    max_pages: int = 1000
    max_page_bytes: int = 16 * 1024 * 1024
    max_redirects: int = 3
    deadline_s: float = 600.0  # the whole pull


class PullError(Exception):
    """The feed stopped: a stable code and a message without secrets."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


class PageReader:
    """Fetch the pages of one ERP feed; iterate to get each page's records."""

    def __init__(
        self,
        url: str,
        token: str | None,
        settings: PullSettings,
        session: requests.Session | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.url = url
        self.origin = _origin(url)
        self.settings = settings
        self.session = session or requests.Session()
        self.session.trust_env = False  # no proxy or .netrc credentials from the environment
        self.headers = {"Accept": "application/json", "User-Agent": "lineledger-central"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.stop = stop or threading.Event()
        self.deadline = time.monotonic() + settings.deadline_s
        self.pages = 0

    def _check_url(self, url: str, what: str) -> None:
        if _origin(url) != self.origin:
            raise PullError(
                ERR_ERP_FOREIGN_URL,
                f"{what} points to {erp.safe_source(url)}, not the ERP's own host; not followed",
            )

    def _once(self, url: str) -> bytes:
        """GET one page (same-origin redirects followed); raise PullError or a retryable."""
        s = self.settings
        for _hop in range(s.max_redirects + 1):
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise PullError(ERR_ERP_DEADLINE, f"the pull took over {s.deadline_s:g} s")
            resp = self.session.get(
                url,
                headers=self.headers,
                timeout=(s.connect_timeout, min(s.read_timeout, remaining)),
                allow_redirects=False,
                stream=True,
            )
            with resp:
                if resp.is_redirect:
                    url = urljoin(url, resp.headers.get("Location", ""))
                    self._check_url(url, "a redirect")
                    continue
                if resp.status_code >= 500:
                    raise _Retryable(f"the ERP answered {resp.status_code}")
                if resp.status_code != 200:
                    raise PullError(
                        ERR_ERP_REFUSED,
                        f"the ERP answered {resp.status_code} for {erp.safe_source(url)} "
                        "(check erp_url and erp_token)",
                    )
                ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
                if ctype != "application/json" and not ctype.endswith("+json"):
                    raise PullError(
                        ERR_ERP_FORMAT,
                        f"the ERP answered {ctype or 'no content type'}, not application/json",
                    )
                declared = resp.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > s.max_page_bytes:
                    raise PullError(ERR_ERP_TOO_LARGE, self._too_large())
                body = bytearray()
                for chunk in resp.iter_content(64 * 1024):
                    body += chunk
                    if len(body) > s.max_page_bytes:
                        raise PullError(ERR_ERP_TOO_LARGE, self._too_large())
                    if time.monotonic() > self.deadline:
                        raise PullError(ERR_ERP_DEADLINE, f"the pull took over {s.deadline_s:g} s")
                return bytes(body)
        raise PullError(ERR_ERP_FOREIGN_URL, f"more than {s.max_redirects} redirects")

    def _too_large(self) -> str:
        return f"a page is over {self.settings.max_page_bytes} bytes"

    def fetch(self, url: str) -> bytes:
        """GET one page with retries for timeouts, connection errors and 5xx."""
        s = self.settings
        wait = s.backoff_s
        for attempt in range(1, s.attempts + 1):
            try:
                return self._once(url)
            except (_Retryable, requests.Timeout, requests.ConnectionError) as exc:
                why = _describe(exc)
            except requests.RequestException as exc:  # malformed URL, bad chunking, ...
                raise PullError(ERR_ERP_UNAVAILABLE, _describe(exc)) from None
            log.warning("ERP page %d attempt %d failed: %s", self.pages + 1, attempt, why)
            if attempt == s.attempts:
                break
            if time.monotonic() + wait > self.deadline:
                raise PullError(ERR_ERP_DEADLINE, f"the pull took over {s.deadline_s:g} s")
            if self.stop.wait(wait):
                raise PullError(ERR_ERP_STOPPED, "stopped by a shutdown")
            wait *= 2
        raise PullError(
            ERR_ERP_UNAVAILABLE,
            f"page {self.pages + 1} of {erp.safe_source(url)}: {why} "
            f"({s.attempts} attempts); manual entry stays available",
        )

    def __iter__(self) -> Iterator[list[Any]]:
        url: str | None = self.url
        while url is not None:
            if self.stop.is_set():
                raise PullError(ERR_ERP_STOPPED, "stopped by a shutdown")
            if self.pages >= self.settings.max_pages:
                raise PullError(ERR_ERP_TOO_LARGE, f"more than {self.settings.max_pages} pages")
            body = self.fetch(url)
            self.pages += 1
            try:
                records, nxt = erp_records.parse_json(body)
            except CentralError as exc:
                raise PullError(exc.code, f"page {self.pages}: {exc.message}") from None
            # This page's records are synced before `next` is checked: a bad link stops the
            # pull, but what was read before it stays (the sync is then partial).
            yield records
            if nxt is not None:
                nxt = urljoin(url, nxt)
                self._check_url(nxt, "`next`")
            url = nxt


class _Retryable(Exception):
    pass


def _describe(exc: BaseException) -> str:
    """Say what went wrong without echoing the URL (its query might carry a secret)."""
    if isinstance(exc, _Retryable):
        return str(exc)
    if isinstance(exc, requests.ConnectTimeout):
        return "connecting timed out"
    if isinstance(exc, requests.Timeout):
        return "the ERP did not answer in time"
    if isinstance(exc, requests.ConnectionError):
        return "cannot connect to the ERP"
    return f"request failed ({type(exc).__name__})"


def pull(
    store: Store,
    org: str,
    actor: str,
    now: dt.datetime,
    trigger: str = erp.CLI,
    settings: PullSettings | None = None,
    stop: threading.Event | None = None,
    sync_id: int | None = None,
    session: requests.Session | None = None,
) -> erp.SyncReport:
    """Pull a tenant's ERP feed now and sync it; return the report (failed ones too)."""
    with store.read() as conn:
        conf = erp.erp_settings(conn, org)
    if not conf.url:
        raise Conflict(
            ERR_ERP_NOT_CONFIGURED,
            f"{org} has no erp_url; set it in the generation config (or import a file)",
        )
    sync = erp.Sync(store, org, trigger, erp.safe_source(conf.url), actor, now)
    sync.start(sync_id)
    own = session is None
    http = session or requests.Session()
    reader = PageReader(conf.url, conf.token, settings or PullSettings(), http, stop)
    try:
        for records in reader:
            sync.feed(records)
    except PullError as exc:
        log.warning("ERP pull for %s stopped: %s", org, exc)
        return sync.finish(_now(), str(exc))
    except Exception as exc:  # recorded, then raised to the job runner
        sync.finish(_now(), f"ERR_INTERNAL: {type(exc).__name__}")
        raise
    finally:
        if own:
            http.close()
    return sync.finish(_now())


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def queue_pull(store: Store, org: str, actor: str, now: dt.datetime) -> tuple[int, bool]:
    """Ask the jobs process to pull a tenant's ERP soon; return (sync id, newly queued).

    A pull already queued or running for the tenant is returned instead of a second one.
    """
    s = T.erp_syncs.c
    with store.write() as conn:
        conf = erp.erp_settings(conn, org)
        if not conf.url:
            raise Conflict(
                ERR_ERP_NOT_CONFIGURED,
                f"{org} has no erp_url; set it in the generation config (or import a file)",
            )
        waiting = conn.execute(
            sa.select(s.id).where(
                s.tenant_id == conf.tenant_id,
                s.trigger != erp.FILE,
                s.status.in_((erp.QUEUED, erp.RUNNING)),
            )
        ).first()
        if waiting is not None:
            return int(waiting.id), False
        result = conn.execute(
            T.erp_syncs.insert().values(
                tenant_id=conf.tenant_id,
                trigger=erp.API,
                source=erp.safe_source(conf.url),
                started_at=now,
                status=erp.QUEUED,
            )
        )
        sync_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        audit.record(
            conn,
            actor,
            "erp.sync_queued",
            f"erp_sync:{org}/{sync_id}",
            now,
            None,
            {},
            conf.tenant_id,
        )
    return sync_id, True


# A file import of the largest body allowed takes seconds; one running this long has died.
FILE_IMPORT_ABANDONED_AFTER = dt.timedelta(hours=1)


def run_due(
    store: Store,
    now: dt.datetime,
    actor: str = "job:erp_pull",
    settings: PullSettings | None = None,
    stop: threading.Event | None = None,
    org: str | None = None,
    force: bool = False,
    reports: list[erp.SyncReport] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Run queued pulls and every tenant's scheduled pull that is due; return counts, errors.

    Run only under the erp_pull job's lock: pulls left `running` are then abandoned ones.
    `org` limits the run to one tenant; `force` pulls it even if not due (`erp pull`);
    each finished pull's report is appended to `reports` if given.
    """
    s = T.erp_syncs.c
    with store.write() as conn:
        conn.execute(
            T.erp_syncs.update()
            .where(s.trigger != erp.FILE, s.status == erp.RUNNING)
            .values(
                status=erp.FAILED,
                finished_at=now,
                reason="ERR_JOB_ABANDONED: the process running this pull stopped first",
            )
        )
        # File imports run in the CLI or a web worker, outside the job's lock: one still
        # `running` long after any import could take was left by a process that died.
        conn.execute(
            T.erp_syncs.update()
            .where(
                s.trigger == erp.FILE,
                s.status == erp.RUNNING,
                s.started_at < now - FILE_IMPORT_ABANDONED_AFTER,
            )
            .values(
                status=erp.FAILED,
                finished_at=now,
                reason="ERR_JOB_ABANDONED: the import stopped before it finished",
            )
        )
        queued = conn.execute(
            sa.select(s.id, T.tenants.c.org_code)
            .join(T.tenants, T.tenants.c.id == s.tenant_id)
            .where(s.status == erp.QUEUED)
            .order_by(s.id)
        ).all()
        orgs = [org] if org else list(erp.tenants_with_erp(conn))
    counts: dict[str, Any] = {"pulls": 0, "synced": 0, "failed_records": 0, "failed_pulls": 0}
    errors: list[str] = []
    done: set[str] = set()

    def one(code: str, trigger: str, sync_id: int | None = None) -> None:
        try:
            report = pull(store, code, actor, _now(), trigger, settings, stop, sync_id)
        except CentralError as exc:
            if sync_id is not None:
                _fail_queued(store, sync_id, f"{exc.code}: {exc.message}")
            errors.append(f"{code}: {exc.code}: {exc.message}")
            return
        done.add(code)
        if reports is not None:
            reports.append(report)
        counts["pulls"] += 1
        counts["synced"] += report.synced
        counts["failed_records"] += report.failed
        if report.reason is not None:
            counts["failed_pulls"] += 1
            errors.append(f"{code}: {report.reason}")

    for row in queued:
        if org is None or row.org_code == org:
            one(row.org_code, erp.API, row.id)
    for code in orgs:
        if code in done or (stop is not None and stop.is_set()):
            continue
        with store.read() as conn:
            conf = erp.erp_settings(conn, code)
            due = erp.next_pull(conn, conf, now)
        if force or (due is not None and due <= now):
            one(code, erp.CLI if force else erp.SCHEDULE)
    return counts, errors


def _fail_queued(store: Store, sync_id: int, reason: str) -> None:
    with store.write() as conn:
        conn.execute(
            T.erp_syncs.update()
            .where(T.erp_syncs.c.id == sync_id, T.erp_syncs.c.status == erp.QUEUED)
            .values(status=erp.FAILED, finished_at=_now(), reason=reason[:1000])
        )
