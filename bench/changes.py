"""Benchmark the changes feed: normal `_changes` rows/s over 100,000 docs, long-poll wake latency.

Usage: `.venv/bin/python bench/changes.py` starts settee under gunicorn (settee's worker, 2 x 8
threads) on a fresh SQLite data dir, or on PostgreSQL with `--database-url`; `--url` measures a
running server instead (CouchDB too; the cross-worker check then cannot be made).

1. Loads `--docs` documents of ~100 bytes with `_bulk_docs` (1,000 per request).
2. Reads the whole normal feed in one request (`GET /db/_changes`), and in pages of 1,000 with
   `since` (how replicators read it), `--reads` times each; reports rows/s of the best and the
   median run, and the same for `style=all_docs` and `include_docs=true` in pages. The time is
   from sending each request to receiving its last byte; parsing the JSON is the client's.
3. Long-poll wake latency: a long-poll waits on one keep-alive connection while a write is sent
   on another; the latency runs from sending the write to receiving the long-poll's answer.
   When the server runs here, the two connections are held by two different workers (read from
   `/proc`), so every trial wakes a feed in another process. Reports p50, p90, p99 and max.

Results are printed, not committed; figures depend on the machine that ran them.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from serve import SETTEE_WORKER, Gunicorn, GunicornSettings


def _request(conn: http.client.HTTPConnection, method: str, path: str,
             body: bytes | None = None) -> tuple[int, bytes]:
    conn.request(method, path, body=body,
                 headers={"Content-Type": "application/json"} if body is not None else {})
    response = conn.getresponse()
    return response.status, response.read()


def load(conn: http.client.HTTPConnection, db: str, docs: int) -> float:
    """Create `db` and fill it; returns docs/s."""
    status, body = _request(conn, "PUT", f"/{db}")
    assert status == 201, body
    start = time.perf_counter()
    for first in range(0, docs, 1000):
        batch = [{"_id": f"doc{i:07d}", "n": i, "name": f"name {i}", "tags": ["a", "b"],
                  "payload": "x" * 40} for i in range(first, min(docs, first + 1000))]
        status, body = _request(conn, "POST", f"/{db}/_bulk_docs",
                                json.dumps({"docs": batch}).encode())
        assert status == 201, body[:200]
    return docs / (time.perf_counter() - start)


def read_feed(conn: http.client.HTTPConnection, db: str, query: str, page: int | None
              ) -> tuple[int, float]:
    """Read the whole feed (in pages of `page` rows with `since`): rows, and the seconds spent
    waiting for the server's bytes (the client's JSON parsing is not counted)."""
    since, total, spent = 0, 0, 0.0
    while True:
        limit = f"&limit={page}" if page else ""
        start = time.perf_counter()
        status, body = _request(conn, "GET", f"/{db}/_changes?since={since}{limit}{query}")
        spent += time.perf_counter() - start
        assert status == 200, body[:200]
        got = json.loads(body)
        total += len(got["results"])
        since = got["last_seq"]
        if not page or len(got["results"]) < page:
            return total, spent


def rows_per_second(conn: http.client.HTTPConnection, db: str, query: str, page: int | None,
                    reads: int) -> tuple[float, float, int]:
    rates, rows = [], 0
    for _ in range(reads):
        rows, spent = read_feed(conn, db, query, page)
        rates.append(rows / spent)
    return max(rates), statistics.median(rates), rows


def worker_of(server_port: int, conn: http.client.HTTPConnection, workers: list[int]) -> int:
    """The worker process holding the server side of `conn` (Linux `/proc`), or 0."""
    assert conn.sock is not None
    client_port = conn.sock.getsockname()[1]
    inode = ""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if (int(fields[1].split(":")[1], 16) == server_port
                and int(fields[2].split(":")[1], 16) == client_port):
            inode = fields[9]
    for pid in workers:
        try:
            links = [os.readlink(f) for f in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:
            continue
        if f"socket:[{inode}]" in links:
            return pid
    return 0


def wake_latency(host: str, port: int, db: str, trials: int, workers: list[int]
                 ) -> tuple[list[float], list[float], str]:
    """Milliseconds from sending a write to receiving the long-poll it wakes, per trial, and
    the write's own round trip (its commit is somewhere inside it)."""
    for _ in range(50):
        feed = http.client.HTTPConnection(host, port, timeout=30)
        writes = http.client.HTTPConnection(host, port, timeout=30)
        _request(feed, "GET", "/_up")
        _request(writes, "GET", "/_up")
        a, b = worker_of(port, feed, workers), worker_of(port, writes, workers)
        if not workers or (a and b and a != b):
            break
        feed.close()
        writes.close()
    where = f"workers {a} and {b}" if workers else "unknown workers"
    status, body = _request(feed, "GET", f"/{db}")
    since = json.loads(body)["update_seq"]
    latencies, writes_ms = [], []
    for trial in range(trials):
        answer: dict[str, Any] = {}

        def poll(since: int = since, answer: dict[str, Any] = answer) -> None:
            answer["reply"] = _request(feed, "GET", f"/{db}/_changes?feed=longpoll"
                                       f"&since={since}&timeout=30000")
            answer["at"] = time.perf_counter()
        poller = threading.Thread(target=poll)
        poller.start()
        time.sleep(0.1)
        sent = time.perf_counter()
        status, body = _request(writes, "PUT", f"/{db}/wake{trial}-{uuid.uuid4().hex}", b"{}")
        writes_ms.append((time.perf_counter() - sent) * 1000)
        assert status == 201, body
        poller.join(60)
        status, body = answer["reply"]
        assert status == 200, body
        latencies.append((answer["at"] - sent) * 1000)
        since = json.loads(body)["last_seq"]
    return latencies, writes_ms, where


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="measure this server instead of starting settee")
    p.add_argument("--database-url", help="run settee on this PostgreSQL URL")
    p.add_argument("--docs", type=int, default=100_000, help="documents to load")
    p.add_argument("--reads", type=int, default=3, help="reads of each feed variant")
    p.add_argument("--trials", type=int, default=100, help="long-poll wake trials")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=8)
    args = p.parse_args()
    db = "bench-changes-" + uuid.uuid4().hex[:8]
    if args.url:
        host, _, port = args.url.split("://", 1)[-1].rstrip("/").rpartition(":")
        run(host, int(port), db, args, [])
        return
    with tempfile.TemporaryDirectory() as tmp:
        env = {"SETTEE_DATA_DIR": str(Path(tmp) / "data")}
        if args.database_url:
            env["SETTEE_DATABASE_URL"] = args.database_url
        settings = GunicornSettings(SETTEE_WORKER, args.workers, args.threads)
        with Gunicorn("settee.server:create_app()", settings, log=Path(tmp) / "gunicorn.log",
                      ready_path="/_up", env=env) as server:
            children = Path(f"/proc/{server._proc.pid}/task/{server._proc.pid}/children")  # type: ignore[union-attr]
            workers = [int(x) for x in children.read_text().split()]
            run("127.0.0.1", server.port, db, args, workers)


def run(host: str, port: int, db: str, args: argparse.Namespace, workers: list[int]) -> None:
    conn = http.client.HTTPConnection(host, port, timeout=300)
    print(f"loading {args.docs} docs ... {load(conn, db, args.docs):,.0f} docs/s")
    for label, query, page in [("normal, one request", "", None),
                               ("normal, pages of 1000", "", 1000),
                               ("style=all_docs, pages of 1000", "&style=all_docs", 1000),
                               ("include_docs, pages of 1000", "&include_docs=true", 1000)]:
        best, median, rows = rows_per_second(conn, db, query, page, args.reads)
        print(f"_changes {label:32s} {rows:>7} rows  best {best:>9,.0f} rows/s  "
              f"median {median:>9,.0f} rows/s")
    latencies, writes_ms, where = wake_latency(host, port, db, args.trials, workers)
    print(f"long-poll wake ({len(latencies)} trials, {where}): "
          f"p50 {_percentile(latencies, 0.5):.1f} ms  p90 {_percentile(latencies, 0.9):.1f} ms  "
          f"p99 {_percentile(latencies, 0.99):.1f} ms  max {max(latencies):.1f} ms  "
          f"(the write's own round trip: p50 {_percentile(writes_ms, 0.5):.1f} ms)")
    cleanup = http.client.HTTPConnection(host, port, timeout=60)  # `conn` idled past keep-alive
    _request(cleanup, "DELETE", f"/{db}")


if __name__ == "__main__":
    main()
