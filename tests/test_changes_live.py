"""The changes feed on a real gunicorn with two workers, on SQLite and PostgreSQL.

* A long-poll held by one worker wakes within 100 ms of a write sent on another connection
  that another worker serves; which worker serves a connection is read from `/proc` (the
  server-side socket of the connection, found in the workers' open files). The time runs from
  before the PUT is sent, so it includes the write's own commit. The bound holds at the 90th
  percentile of 30 trials (the third slowest): on this 2-core machine a busy neighbour can stall
  one trial's process for hundreds of milliseconds, which says nothing about the wake-up path,
  while a broken path (the PostgreSQL listener falling back to its 1 s safety poll, SQLite
  polling slower than its 20 ms tick) fails every trial. The slowest trial is printed.
* Four writer threads while a continuous feed runs: every change arrives once, in seq order,
  and resuming from `last_seq` after the feed ends neither repeats nor skips a change.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import reliability
import requests
from live import HOST, LiveServer

TRIALS = 30
WAKE_MS = 100.0
WAKE_PERCENTILE = 0.9
WRITERS = 4
WRITE_SECONDS = 3.0


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """`settee serve`, 2 gthread workers x 8 threads, on SQLite or a fresh PostgreSQL db."""
    workdir = tmp_path_factory.mktemp(f"changes-live-{request.param}")
    with reliability.live_store(request.param, request, workdir, workers=2, threads=8,
                                clean_exit=True) as live:
        _wait_for_workers(live.server, 2)
        yield live.server


def _wait_for_workers(live: LiveServer, count: int) -> None:
    deadline = time.monotonic() + 20
    while len(live.worker_pids()) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(live.worker_pids()) >= count


def _new_db(live: LiveServer) -> str:
    name = "feed_" + uuid.uuid4().hex[:10]
    assert live.request("PUT", f"/{name}").status == 201
    return name


def serving_worker(live: LiveServer, conn: http.client.HTTPConnection) -> int | None:
    """The worker process that holds the server side of `conn` (Linux `/proc`)."""
    assert conn.sock is not None
    client_port = conn.sock.getsockname()[1]
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if (int(local.split(":")[1], 16) == live.port
                and int(remote.split(":")[1], 16) == client_port):
            inode = fields[9]
    if inode is None:
        return None
    for pid in live.worker_pids():
        if f"socket:[{inode}]" in live.open_files(pid):
            return pid
    return None


def _call(conn: http.client.HTTPConnection, method: str, path: str,
          body: str | None = None) -> Any:
    conn.request(method, path, body=body,
                 headers={"Content-Type": "application/json"} if body else {})
    response = conn.getresponse()
    return response.status, json.loads(response.read())


def _connections_on_two_workers(live: LiveServer
                                ) -> tuple[http.client.HTTPConnection, http.client.HTTPConnection]:
    """Two keep-alive connections that two different workers serve."""
    for _ in range(50):
        feed = http.client.HTTPConnection(HOST, live.port, timeout=30)
        writes = http.client.HTTPConnection(HOST, live.port, timeout=30)
        _call(feed, "GET", "/_up")
        _call(writes, "GET", "/_up")
        a, b = serving_worker(live, feed), serving_worker(live, writes)
        if a is not None and b is not None and a != b:
            return feed, writes
        feed.close()
        writes.close()
    pytest.fail("could not get connections served by two different workers")


@pytest.mark.live
def test_longpoll_wakes_across_workers_within_100ms(server: LiveServer) -> None:
    db = _new_db(server)
    feed, writes = _connections_on_two_workers(server)
    feed_worker, write_worker = serving_worker(server, feed), serving_worker(server, writes)
    latencies: list[float] = []
    since = 0
    for trial in range(TRIALS):
        result: dict[str, Any] = {}

        def poll(since: int = since, result: dict[str, Any] = result) -> None:
            result["reply"] = _call(feed, "GET", f"/{db}/_changes?feed=longpoll&since={since}"
                                    "&timeout=10000")
            result["at"] = time.perf_counter()
        poller = threading.Thread(target=poll)
        poller.start()
        time.sleep(0.15)  # let the long-poll reach its wait
        sent = time.perf_counter()
        status, _ = _call(writes, "PUT", f"/{db}/doc{trial}", "{}")
        assert status == 201
        poller.join(15)
        status, body = result["reply"]
        assert status == 200 and [r["id"] for r in body["results"]] == [f"doc{trial}"]
        latencies.append((result["at"] - sent) * 1000)
        since = body["last_seq"]
    assert serving_worker(server, feed) == feed_worker != serving_worker(server, writes) \
        == write_worker, "a connection moved to another worker during the trials"
    latencies.sort()
    p50, p90 = latencies[len(latencies) // 2], latencies[int(len(latencies) * WAKE_PERCENTILE)]
    print(f"\nlong-poll wake across workers: p50 {p50:.1f} ms, p90 {p90:.1f} ms, "
          f"slowest {latencies[-1]:.1f} ms")
    assert p90 <= WAKE_MS, latencies


def _writer(live: LiveServer, db: str, me: int, stop: threading.Event,
            acked: dict[str, str], errors: list[str]) -> None:
    """Create and update this writer's own documents (so never a conflict) until stopped."""
    session = requests.Session()
    revs: dict[str, str] = {}
    n = 0
    while not stop.is_set():
        doc_id = f"w{me}-{n % 7}"
        body: dict[str, Any] = {"n": n}
        if doc_id in revs:
            body["_rev"] = revs[doc_id]
        reply = session.put(f"{live.url}/{db}/{doc_id}", json=body, timeout=30)
        if reply.status_code != 201:
            errors.append(f"{doc_id}: {reply.status_code} {reply.text}")
            return
        revs[doc_id] = acked[doc_id] = reply.json()["rev"]
        n += 1


def _follow(live: LiveServer, db: str, since: int, query: str
            ) -> tuple[list[dict[str, Any]], int]:
    """Read one continuous feed to its end: its rows and its `last_seq`."""
    url = f"{live.url}/{db}/_changes?feed=continuous&since={since}&{query}"
    got: list[dict[str, Any]] = []
    with requests.get(url, stream=True, timeout=60) as reply:
        assert reply.status_code == 200
        for line in reply.iter_lines():
            if not line:
                continue  # a heartbeat
            row = json.loads(line)
            if "last_seq" in row:
                return got, int(row["last_seq"])
            got.append(row)
    raise AssertionError("the feed ended without last_seq")


@pytest.mark.live
def test_continuous_feed_under_four_writers_delivers_every_change_once(
        server: LiveServer) -> None:
    db = _new_db(server)
    stop, acked, errors = threading.Event(), {}, []  # type: ignore[var-annotated]
    writers = [threading.Thread(target=_writer, args=(server, db, i, stop, acked, errors))
               for i in range(WRITERS)]
    for thread in writers:
        thread.start()
    delivered: list[dict[str, Any]] = []
    since, segments = 0, 0
    deadline = time.monotonic() + WRITE_SECONDS
    while time.monotonic() < deadline:  # short feeds, each resumed from the last one's last_seq
        rows, last = _follow(server, db, since, "limit=40&heartbeat=200")
        assert all(r["seq"] > since for r in rows), "a resumed feed repeated a change"
        delivered += rows
        since, segments = last, segments + 1
    stop.set()
    for thread in writers:
        thread.join(30)
    assert not errors, errors
    rows, since = _follow(server, db, since, "timeout=1000")  # drain what is left
    delivered += rows
    seqs = [r["seq"] for r in delivered]
    assert seqs == sorted(set(seqs)), "changes out of seq order, or repeated"
    final = requests.get(f"{server.url}/{db}/_changes", timeout=30).json()
    assert final["last_seq"] == since
    seen = {(r["seq"], r["id"], r["changes"][0]["rev"]) for r in delivered}
    missing = [r for r in final["results"]
               if (r["seq"], r["id"], r["changes"][0]["rev"]) not in seen]
    assert not missing, f"changes never delivered: {missing[:5]}"
    latest = {r["id"]: r["changes"][0]["rev"] for r in delivered}
    assert latest == acked, "the feed does not end at every document's acknowledged rev"
    assert segments > 3 and len(delivered) > 50
