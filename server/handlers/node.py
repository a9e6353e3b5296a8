"""Node endpoints: `_prometheus`, `_stats` and `_system` under `/_node/{node}`, and `_active_tasks`.

A settee node is one `settee serve` (all its workers); `{node}` is `_local` or the node's name,
as in CouchDB. `_stats` keeps CouchDB's shape (`{"couchdb": {"httpd_status_codes": {"200":
{"value", "type", "desc"}}, "request_time": ...}}`) for the figures settee has; `_system` reports
the answering worker's process (uptime, memory, I/O) in the fields of CouchDB's that make sense.
"""

from __future__ import annotations

import gc
import os
import resource
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Response

from .. import metrics
from ..errors import NotFoundError
from ..tasks import TASKS
from ..wrappers import SetteeRequest, json_response

if TYPE_CHECKING:
    from prometheus_client.core import Metric

    from ..app import Settee

NODE_NAME = TASKS.node
PERCENTILES = (50, 75, 90, 95, 99, 999)
STARTED = time.time()


def _check_node(node: str) -> None:
    if node not in ("_local", NODE_NAME):
        raise NotFoundError("missing")


def prometheus(app: Settee, request: SetteeRequest, node: str) -> Response:
    """`GET /_node/{node}/_prometheus`: every metric in Prometheus's text format."""
    _check_node(node)
    return Response(metrics.exposition(app.store), content_type=metrics.CONTENT_TYPE)


def active_tasks(app: Settee, request: SetteeRequest) -> Response:
    """`GET /_active_tasks`: running indexers and replications of this node."""
    return json_response(TASKS.active())


def stats(app: Settee, request: SetteeRequest, node: str, path: str = "") -> Response:
    """`GET /_node/{node}/_stats[/{group}/{name}]`: request statistics in CouchDB's shape."""
    _check_node(node)
    value: Any = stats_json(metrics.request_registry().collect())
    for part in (p for p in path.split("/") if p):
        if not isinstance(value, dict) or part not in value:
            raise NotFoundError("missing")
        value = value[part]
    return json_response(value)


def stats_json(families: Iterable[Metric]) -> dict[str, Any]:
    """CouchDB's `_stats` object from the request metrics."""
    by_method: dict[str, float] = {}
    by_status: dict[str, float] = {}
    buckets: dict[float, float] = {}
    total_seconds = 0.0
    gauges: dict[str, float] = {}
    for family in families:
        for sample in family.samples:
            if sample.name == "settee_http_requests_total":
                method, status = sample.labels["method"], sample.labels["status"]
                by_method[method] = by_method.get(method, 0) + sample.value
                by_status[status] = by_status.get(status, 0) + sample.value
            elif sample.name == "settee_http_request_duration_seconds_bucket":
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0) + sample.value
            elif sample.name == "settee_http_request_duration_seconds_sum":
                total_seconds += sample.value
            elif family.type == "gauge":
                gauges[sample.name] = gauges.get(sample.name, 0) + sample.value
    return {
        "couchdb": {
            "httpd": {"requests": _counter(sum(by_method.values()), "number of HTTP requests")},
            "httpd_request_methods": {
                m: _counter(n, f"number of HTTP {m} requests")
                for m, n in sorted(by_method.items())},
            "httpd_status_codes": {
                s: _counter(n, f"number of HTTP {s} responses")
                for s, n in sorted(by_status.items())},
            "request_time": _histogram(buckets, total_seconds),
        },
        "settee": {
            "feed_connections": _gauge(gauges.get("settee_feed_connections", 0),
                                       "open long-poll, continuous and eventsource feeds"),
        },
    }


def _counter(value: float, desc: str) -> dict[str, Any]:
    return {"value": int(value), "type": "counter", "desc": desc}


def _gauge(value: float, desc: str) -> dict[str, Any]:
    return {"value": int(value), "type": "gauge", "desc": desc}


def _histogram(buckets: dict[float, float], total_seconds: float) -> dict[str, Any]:
    """CouchDB's histogram stat (milliseconds) estimated from cumulative buckets."""
    bounds = sorted(buckets)
    count = buckets.get(float("inf"), 0)
    value: dict[str, Any] = {
        "n": int(count),
        "arithmetic_mean": round(total_seconds * 1000 / count, 3) if count else 0,
        "percentile": [[p, _quantile(bounds, buckets, count, p / (1000 if p > 100 else 100))]
                       for p in PERCENTILES],
        "histogram": [[_ms(b), int(buckets[b] - (buckets[a] if a is not None else 0))]
                      for a, b in zip([None, *bounds[:-1]], bounds) if b != float("inf")],
    }
    value["median"] = value["percentile"][0][1]
    return {"value": value, "type": "histogram",
            "desc": "length of a request inside settee, to the last byte of the response"}


def _quantile(bounds: list[float], buckets: dict[float, float], count: float, q: float
              ) -> float:
    """The `q` quantile in ms, interpolated within its bucket as Prometheus does."""
    if not count:
        return 0
    rank, lower, below = q * count, 0.0, 0.0
    for bound in bounds:
        if buckets[bound] >= rank:
            if bound == float("inf"):
                return _ms(lower)
            width = buckets[bound] - below
            share = (rank - below) / width if width else 1.0
            return _ms(lower + (bound - lower) * share)
        lower, below = bound, buckets[bound]
    return _ms(lower)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def system(app: Settee, request: SetteeRequest, node: str) -> Response:
    """`GET /_node/{node}/_system`: the answering worker's process, in CouchDB's field names."""
    _check_node(node)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    io = _proc_io()
    rss = _rss_bytes(usage)
    return json_response({
        "uptime": int(time.time() - STARTED),
        "memory": {"total": rss, "processes": rss},
        "run_queue": 0,
        "ets_table_count": 0,
        "context_switches": usage.ru_nvcsw + usage.ru_nivcsw,
        "reductions": 0,
        "garbage_collection_count": sum(s["collections"] for s in gc.get_stats()),
        "words_reclaimed": 0,
        "io_input": io.get("rchar", 0),
        "io_output": io.get("wchar", 0),
        "os_proc_count": 0,
        "stale_proc_count": 0,
        "process_count": threading.active_count(),
        "process_limit": app.settings.threads,
        "message_queues": {},
        "internal_replication_jobs": 0,
        "distribution": {},
        "settee": {"pid": os.getpid(), "threads": threading.active_count(),
                   "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3)},
    })


def _proc_io() -> dict[str, int]:
    """`/proc/self/io` (bytes read and written by this process), empty where there is none."""
    try:
        with open("/proc/self/io") as handle:
            pairs = (line.split(":", 1) for line in handle)
            return {key.strip(): int(value) for key, value in pairs}
    except (OSError, ValueError):
        return {}


def _rss_bytes(usage: resource.struct_rusage) -> int:
    """Resident memory now (Linux `/proc/self/statm`), else the peak from `getrusage`."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return usage.ru_maxrss * 1024
