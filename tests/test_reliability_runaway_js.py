"""Runaway map functions on a live server (reliability.md section 4, test 42).

A live `settee serve` (one worker, so every request shares it) with `SETTEE_JS_TIME_LIMIT=1`:
map functions that loop forever, allocate without end, recurse without end, or backtrack
catastrophically. Each view query must end with a CouchDB-shaped error within
`js_time_limit + 2 s` wall time, while a loop of doc GETs on the same worker keeps p99 < 100 ms
with 0 failures; afterwards no JavaScript process keeps a CPU busy.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import reliability
from live import HOST, LiveServer
from reliability import BACKENDS, error_shape_problem, figure, percentile

pytest_plugins = ["reliability_report"]

pytestmark = pytest.mark.live

JS_TIME_LIMIT = 1.0
WALL_LIMIT = JS_TIME_LIMIT + 2.0
GET_P99_MS = 100.0
RUNAWAYS = {
    "loop": "function(doc) { while (true) {} }",
    "memory": "function(doc) { var a = []; while (true) { a.push(new Array(1 << 20)"
              ".join('x')); } }",
    "recursion": "function(doc) { function f(n) { return f(n + 1) + 1; } emit(f(0), 1); }",
    "regex": "function(doc) { emit(/(a+)+$/.test('a'.repeat(40) + 'b'), 1); }",
}


@pytest.fixture(params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, LiveServer]]:
    with reliability.live_store(request.param, request, tmp_path, workers=1, threads=8,
                                env={"SETTEE_JS_TIME_LIMIT": str(JS_TIME_LIMIT)}) as live:
        yield live.backend, live.server


def busy_js_processes(live: LiveServer) -> list[int]:
    """Descendants of the server (the JS children) using CPU over half a second."""
    def cpu(pid: int) -> int:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            return int(fields[11]) + int(fields[12])
        except (OSError, IndexError):
            return 0

    pids = []
    for worker in live.worker_pids():
        children = Path(f"/proc/{worker}/task/{worker}/children")
        try:
            pids += [int(p) for p in children.read_text().split()]
        except OSError:
            pass
    before = {pid: cpu(pid) for pid in pids}
    time.sleep(0.5)
    return [pid for pid in pids if cpu(pid) - before[pid] > 25]  # > half the interval, in ticks


def test_runaway_map_fns(server: tuple[str, LiveServer]) -> None:
    backend, live = server
    db = "js_" + uuid.uuid4().hex[:8]
    assert live.request("PUT", f"/{db}").status == 201
    for i in range(3):
        assert live.request("PUT", f"/{db}/d{i}", json.dumps({"n": i})).status == 201
    stop = threading.Event()
    latencies: list[float] = []
    failures: list[str] = []

    def getter() -> None:
        conn = http.client.HTTPConnection(HOST, live.port, timeout=10)
        try:
            while not stop.is_set():
                started = time.perf_counter()
                try:
                    conn.request("GET", f"/{db}/d1")
                    reply = conn.getresponse()
                    reply.read()
                    if reply.status != 200:
                        failures.append(f"GET: {reply.status}")
                except OSError as exc:
                    failures.append(f"GET: {exc!r}")
                    conn.close()
                    conn = http.client.HTTPConnection(HOST, live.port, timeout=10)
                latencies.append((time.perf_counter() - started) * 1000)
                time.sleep(0.01)  # about 100 GETs/s
        finally:
            conn.close()

    getter_thread = threading.Thread(target=getter)
    getter_thread.start()
    answers: dict[str, tuple[int, float, bytes]] = {}
    try:
        time.sleep(0.3)
        for name, fn in RUNAWAYS.items():
            ddoc = {"views": {"v": {"map": fn}}}
            assert live.request("PUT", f"/{db}/_design/{name}", json.dumps(ddoc)).status == 201
            started = time.monotonic()
            reply = live.request("GET", f"/{db}/_design/{name}/_view/v", timeout=60)
            elapsed = time.monotonic() - started
            answers[name] = (reply.status, elapsed, reply.body[:300])
            assert error_shape_problem(reply) is None, (name, reply.status, reply.body[:300])
        time.sleep(0.3)
    finally:
        stop.set()
        getter_thread.join(15)
    worst = max(elapsed for _, elapsed, _ in answers.values())
    p99 = percentile(latencies, 99)
    figure(backend, "runaway JS worst stop time (s)", round(worst, 2), mode="max")
    figure(backend, "concurrent GET p99 during runaway JS (ms)", round(p99, 1), mode="max")
    figure(backend, "concurrent GET failures during runaway JS", len(failures))
    print(f"\n{backend}: {answers}; {len(latencies)} GETs, p99 {p99:.1f} ms")
    for name, (status, elapsed, body) in answers.items():
        assert status >= 400, (name, status, body)
        assert elapsed <= WALL_LIMIT, (name, elapsed)
    assert failures == []
    assert p99 < GET_P99_MS
    deadline = time.monotonic() + 5
    while busy_js_processes(live) and time.monotonic() < deadline:
        pass
    assert busy_js_processes(live) == [], "a JavaScript process is still pinned"
    assert live.request("GET", "/_up").status == 200
