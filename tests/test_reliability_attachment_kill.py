"""kill -9 while an attachment PUT streams in (reliability.md section 4, test 6).

A client streams a large attachment (chunked, 64 KiB pieces) to a live `settee serve` and the
test `kill -9`s every worker at a point of the upload: part-way through the body, right after
its last byte, and a few milliseconds later (while the blob is copied in and committed). After
the master has restarted the workers, the document must be at its old rev without the
attachment, or at a new rev whose attachment's bytes have the md5 of its `digest` and the
length sent; every attachment row names a whole blob, and `INV` holds. A 201 the client got
means the new rev. The next upload succeeds.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import reliability
from live import HOST, LiveServer
from reliability import BACKENDS, StoreView, figure, sized, wait_up

pytest_plugins = ["reliability_report"]

pytestmark = pytest.mark.live

SIZE = sized(8, 50) * 1024 * 1024
PIECE = 64 * 1024
# When to kill: after this fraction of the body, or this fraction of the time the server took
# to answer once it had the whole body (measured first, with an upload left alone).
POINTS: list[tuple[str, float]] = [("body", 0.1), ("body", 0.95), ("after", 0.3), ("after", 0.6),
                                   ("after", 0.8), ("after", 0.9), ("after", 0.97)]


@pytest.fixture(params=BACKENDS)
def target(request: pytest.FixtureRequest, tmp_path: Path
           ) -> Iterator[tuple[str, LiveServer, StoreView]]:
    with reliability.live_store(request.param, request, tmp_path, workers=2) as live:
        yield live.backend, live.server, live.view


def _payload(point: int) -> bytes:
    seed = hashlib.sha256(f"point {point}".encode()).digest()
    return (seed * (SIZE // len(seed) + 1))[:SIZE]


def _upload_and_kill(live: LiveServer, path: str, data: bytes, when: str, at: float
                     ) -> int | None:
    """Stream `data` as a chunked PUT, kill every worker at the point (`at` seconds after the
    body for "after"; never for "none"); the status, if any."""
    sock = socket.create_connection((HOST, live.port), timeout=30)
    try:
        sock.sendall(f"PUT {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: "
                     f"application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
        cut = int(len(data) * at) if when == "body" else len(data) + 1
        sent = 0
        workers = set(live.worker_pids())
        while sent < len(data):
            if sent >= cut:
                break
            piece = data[sent:sent + PIECE]
            sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            sent += len(piece)
        if sent >= len(data):
            sock.sendall(b"0\r\n\r\n")
            if when == "none":
                sock.settimeout(60)
                return int(sock.recv(65536).split()[1])
            time.sleep(at)
        for pid in workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        sock.settimeout(10)
        try:
            head = sock.recv(65536)
        except OSError:
            return None
        if not head.startswith(b"HTTP/1.1 "):
            return None
        return int(head.split()[1])
    finally:
        sock.close()
        if when != "none":
            wait_up(live, workers=2, replacing=workers)


def test_kill_during_attachment_stream(target: tuple[str, LiveServer, StoreView]) -> None:
    backend, live, view = target
    db = "att_kill_" + uuid.uuid4().hex[:8]
    assert live.request("PUT", f"/{db}").status == 201
    outcomes: list[str] = []
    assert live.request("PUT", f"/{db}/calibrate", "{}").status == 201
    rev = live.request("GET", f"/{db}/calibrate").json()["_rev"]
    began = time.perf_counter()
    assert _upload_and_kill(live, f"/{db}/calibrate/big.bin?rev={rev}", _payload(-1), "none",
                            0) == 201
    answer_s = time.perf_counter() - began  # upper bound of the time after the last byte
    for n, (when, at) in enumerate(POINTS):
        if when == "after":
            at *= answer_s
        doc = f"doc-{n}"
        created = live.request("PUT", f"/{db}/{doc}", json.dumps({"n": n}))
        assert created.status == 201, created.body
        old_rev = created.json()["rev"]
        data = _payload(n)
        status = _upload_and_kill(live, f"/{db}/{doc}/big.bin?rev={old_rev}", data, when, at)
        got = live.request("GET", f"/{db}/{doc}").json()
        label = f"kill at {when} {at:.3f}: status {status}, rev {got['_rev'][:2]}"
        atts = got.get("_attachments", {})
        if got["_rev"] == old_rev:
            assert status != 201, f"{label}: acknowledged but absent"
            assert atts == {}, label
            outcomes.append(f"{label}: old")
        else:
            stub = atts["big.bin"]
            body = live.request("GET", f"/{db}/{doc}/big.bin", timeout=60).body
            md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
            assert stub["digest"] == f"md5-{md5}", label
            assert stub["length"] == len(body) == len(data) and body == data, label
            outcomes.append(f"{label}: new")
        assert view.invariant_problems(db) == [], label
    again = live.request("PUT", f"/{db}/after/big.bin", _payload(99),
                         headers={"Content-Type": "application/octet-stream"}, timeout=60)
    assert again.status == 201, again.body
    figure(backend, "kill -9 points during attachment streams", len(outcomes))
    figure(backend, "attachment streams left partial", 0)
    print(f"\n{backend}: " + "; ".join(outcomes))
