"""Prometheus metrics: requests and latencies by endpoint, open feeds, database sizes, tasks,
and view index lag.

Under `settee serve` every worker writes its samples to files in `PROMETHEUS_MULTIPROC_DIR`
(prometheus-client's multiprocess mode; `serve.run` sets it inside the runtime directory before
the first worker forks, since the client picks its mode when it is imported), and a scrape adds
them up over the node's workers. Anywhere else (tests, bare gunicorn) the samples stay in the
process. Database figures are read from the store at scrape time, so every node sharing one
PostgreSQL reports the same ones. Endpoints are labelled by their route-table names, which keeps
the label sets bounded however many documents are requested.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric

from ..store import sql
from .accesslog import ENDPOINT_KEY, Finished
from .tasks import TASKS

if TYPE_CHECKING:
    from ..store import Store

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # what every Prometheus scrapes
LIVE_FEEDS = frozenset({"longpoll", "continuous", "eventsource"})
FEED_PATHS = ("/_changes", "/_db_updates")
METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE", "COPY", "OPTIONS"})
MAX_DBS = 1000  # databases reported per scrape, in name order
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
           30.0, 60.0)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class RequestMetrics:
    """The metrics the WSGI layer updates (one set per process)."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.requests = Counter(
            "settee_http_requests", "HTTP requests by endpoint, method and status.",
            ["endpoint", "method", "status"], registry=registry)
        self.duration = Histogram(
            "settee_http_request_duration_seconds",
            "Time from the request to the last byte of its response, by endpoint.",
            ["endpoint"], buckets=BUCKETS, registry=registry)
        self.feeds = Gauge(
            "settee_feed_connections", "Open long-poll, continuous and eventsource feeds.",
            ["feed"], multiprocess_mode="livesum", registry=registry)
        self.view_lag = Gauge(
            "settee_view_index_lag_seqs",
            "Database update_seq minus the seq of the design doc's most behind view index, "
            "as last seen by a view query or refresh on this node.",
            ["db", "ddoc"], multiprocess_mode="mostrecent", registry=registry)


_LOCAL = CollectorRegistry(auto_describe=True)
_metrics: RequestMetrics | None = None


def multiprocess_dir() -> str | None:
    """The directory of multiprocess mode, or None when samples stay in the process."""
    return os.environ.get(MULTIPROC_ENV) or None


def request_metrics() -> RequestMetrics:
    """This process's request metrics, made on first use."""
    global _metrics
    if _metrics is None:
        _metrics = RequestMetrics(None if multiprocess_dir() else _LOCAL)
    return _metrics


class Instrument:
    """A WSGI layer that counts and times each request once its response has been sent."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app
        self.metrics = request_metrics()
        # labelled children by label values: `labels()` costs more than the update itself
        self.counters: dict[tuple[str, str, str], Any] = {}
        self.timers: dict[str, Any] = {}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        started = time.perf_counter()
        status: list[str] = []
        feed = feed_kind(environ)
        if feed:
            self.metrics.feeds.labels(feed).inc()

        def recording_start(status_line: str, headers: Any, exc_info: Any = None) -> Any:
            status[:] = [status_line.split(" ", 1)[0]]
            return start_response(status_line, headers, exc_info)

        def done() -> None:
            endpoint = environ.get(ENDPOINT_KEY) or "unmatched"
            method = environ.get("REQUEST_METHOD", "")
            key = (endpoint, method if method in METHODS else "other",
                   status[0] if status else "500")
            counter = self.counters.get(key)
            if counter is None:
                counter = self.counters[key] = self.metrics.requests.labels(*key)
            counter.inc()
            timer = self.timers.get(endpoint)
            if timer is None:
                timer = self.timers[endpoint] = self.metrics.duration.labels(endpoint)
            timer.observe(time.perf_counter() - started)
            if feed:
                self.metrics.feeds.labels(feed).dec()

        try:
            body = self.app(environ, recording_start)
        except BaseException:
            done()
            raise
        return Finished(body, done)


def record_view_lag(db: str, ddoc: str, lag: int) -> None:
    """Set `settee_view_index_lag_seqs{db, ddoc}` (the views' `lag_listener`)."""
    request_metrics().view_lag.labels(db, ddoc).set(lag)


def feed_kind(environ: dict[str, Any]) -> str | None:
    """`longpoll`, `continuous` or `eventsource` for a live feed request, else None."""
    path = environ.get("PATH_INFO", "")
    if not path.endswith(FEED_PATHS):
        return None
    feed = parse_qs(environ.get("QUERY_STRING", "")).get("feed", [""])[-1]
    return feed if feed in LIVE_FEEDS else None


class StoreCollector:
    """Database counts and sizes, read from the store at scrape time; active tasks by type."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        docs = GaugeMetricFamily("settee_database_docs", "Live documents.", labels=["db"])
        deleted = GaugeMetricFamily("settee_database_deleted_docs", "Deleted documents.",
                                    labels=["db"])
        size = GaugeMetricFamily("settee_database_size_bytes",
                                 "Bytes of the documents' JSON (CouchDB's sizes.external).",
                                 labels=["db"])
        seq = GaugeMetricFamily("settee_database_update_seq", "Latest update sequence.",
                                labels=["db"])
        self.store.setup()  # a scrape may be a worker's first request
        with self.store.engine.transaction() as conn:
            total = sql.fetchone(conn, "SELECT count(*) FROM settee_dbs")
            rows = sql.fetchall(conn, "SELECT name, doc_count, doc_del_count, body_bytes, "
                                "update_seq FROM settee_dbs ORDER BY name LIMIT ?", (MAX_DBS,))
        for name, doc_count, del_count, body_bytes, update_seq in rows:
            docs.add_metric([name], doc_count)
            deleted.add_metric([name], del_count)
            size.add_metric([name], max(body_bytes, 0))
            seq.add_metric([name], update_seq)
        yield GaugeMetricFamily("settee_databases", "Databases in the store.",
                                value=total[0] if total else 0)
        yield from (docs, deleted, size, seq)
        if self.store.engine.is_sqlite:
            yield GaugeMetricFamily("settee_store_file_bytes",
                                    "Bytes on disk of the SQLite file and its WAL.",
                                    value=self.store.file_size())
        tasks = GaugeMetricFamily("settee_active_tasks", "Running tasks by type.",
                                  labels=["type"])
        counts: dict[str, int] = {}
        for task in TASKS.active():
            counts[task["type"]] = counts.get(task["type"], 0) + 1
        for kind, count in sorted(counts.items()):
            tasks.add_metric([kind], count)
        yield tasks


class _Forward:
    """The in-process registry's samples, as a collector of another registry."""

    def collect(self) -> Iterator[Metric]:
        return iter(_LOCAL.collect())


def request_registry() -> CollectorRegistry:
    """A registry whose collection is the request metrics of the whole node (or process)."""
    request_metrics()  # so a scrape before any request still shows the families
    registry = CollectorRegistry(auto_describe=False)
    directory = multiprocess_dir()
    if directory:
        multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    else:
        registry.register(_Forward())
    return registry


def exposition(store: Store) -> bytes:
    """Every metric in Prometheus's text format."""
    registry = request_registry()
    registry.register(StoreCollector(store))
    return generate_latest(registry)


def mark_process_dead(pid: int) -> None:
    """Drop a dead worker's live gauges (gunicorn's `child_exit` hook calls this)."""
    directory = multiprocess_dir()
    if directory:
        multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]


def wrap(app: WsgiApp) -> WsgiApp:
    """`app` with request metrics."""
    return Instrument(app)
