"""Slow clients must not starve everyone else (reliability.md section 4, test 43, slowloris)."""

# 2 x threads x workers connections each trickle one header byte per second into a live server,
# while a well-behaved client times `GET /_up` and a document GET on fresh connections. The goal
# is p99 < 200 ms for the well-behaved requests. (The feeds part of test 43 waits for `_changes`.)

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from live import HOST, LiveServer
from reliability import figure, percentile

pytest_plugins = ["reliability_report"]

pytestmark = pytest.mark.live

WORKERS = 4
THREADS = 4
SLOW_CLIENTS = 2 * WORKERS * THREADS
TRICKLE_EVERY = 1.0  # seconds between header bytes
MEASURE_FOR = 5.0  # seconds of well-behaved requests
GOOD_TIMEOUT = 3.0  # a request slower than this counts as this slow
P99_GOAL_MS = 200.0


@pytest.fixture
def slow_target(tmp_path: Path) -> Iterator[LiveServer]:
    """The server under attack, on SQLite (the transport does not depend on the backend)."""
    with LiveServer.settee(tmp_path, workers=WORKERS, threads=THREADS) as server:
        yield server


def trickle(port: int, stop: threading.Event, opened: list[socket.socket]) -> None:
    """One slowloris client: a request line and headers, one byte per TRICKLE_EVERY seconds."""
    data = b"GET /_up HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 1000
    try:
        sock = socket.create_connection((HOST, port), timeout=5)
    except OSError:
        return
    opened.append(sock)
    try:
        for byte in data:
            if stop.is_set():
                return
            sock.sendall(bytes([byte]))
            stop.wait(TRICKLE_EVERY)
    except OSError:
        return  # the server closed the slow connection: that is a defence, fine


def timed_get(port: int, path: str) -> float:
    started = time.monotonic()
    try:
        with socket.create_connection((HOST, port), timeout=GOOD_TIMEOUT) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
            if not data.startswith(b"HTTP/1.1 200"):
                return GOOD_TIMEOUT
    except OSError:
        return GOOD_TIMEOUT
    return time.monotonic() - started


def test_slowloris_does_not_starve_other_clients(slow_target: LiveServer) -> None:
    server = slow_target
    db = "slow_" + uuid.uuid4().hex[:8]
    assert server.request("PUT", f"/{db}").status == 201
    assert server.request("PUT", f"/{db}/doc", '{"v": 1}').status == 201
    baseline = [timed_get(server.port, "/_up") for _ in range(20)]
    stop = threading.Event()
    opened: list[socket.socket] = []
    slow = [threading.Thread(target=trickle, args=(server.port, stop, opened), daemon=True)
            for _ in range(SLOW_CLIENTS)]
    for thread in slow:
        thread.start()
    time.sleep(1.5)  # every slow client has sent its first bytes
    latencies: list[float] = []
    deadline = time.monotonic() + MEASURE_FOR
    try:
        while time.monotonic() < deadline:
            latencies.append(timed_get(server.port, "/_up"))
            latencies.append(timed_get(server.port, f"/{db}/doc"))
            time.sleep(0.05)
    finally:
        stop.set()
        for sock in opened:
            sock.close()
        for thread in slow:
            thread.join(5)
    p99 = percentile(latencies, 99) * 1000
    failed = sum(1 for t in latencies if t >= GOOD_TIMEOUT)
    figure("sqlite", "slowloris p99 ms", p99, mode="max")
    print(f"\nslowloris x{SLOW_CLIENTS}: {len(latencies)} requests, p50 "
          f"{percentile(latencies, 50) * 1000:.0f} ms, p99 {p99:.0f} ms, {failed} timed out "
          f"(baseline p99 {percentile(baseline, 99) * 1000:.0f} ms)")
    assert server.request("GET", "/_up").status == 200  # it recovers once they leave
    assert p99 < P99_GOAL_MS
