"""A `_changes` consumer with checkpoints across kill -9 (reliability.md section 4, test 7).

The kill -9 test's write load (`writeload.py`, 8 clients) runs on a live `settee serve` while a
consumer follows `_changes` (long-poll, `since=` its checkpoint, the `last_seq` of the last
whole answer). The whole server is `kill -9`ed a few times and restarted; the consumer resumes
from its checkpoint. At the end (every unanswered write resolved by `INV`): the union of ids the
consumer saw equals the set of ids with an acknowledged write, and no seq it saw was ever <= the
checkpoint it resumed from, nor <= the previous seq of the same answer.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import reliability
from live import HOST, LiveServer
from reliability import BACKENDS, StoreView, figure, kill_whole_server, sized, wait_up
from test_reliability_crash import check_inv
from writeload import REQUEST_TIMEOUT, Client, Harness

pytest_plugins = ["reliability_report"]

CLIENTS = 8
KILLS = sized(4, 50)


@pytest.fixture(params=BACKENDS)
def target(request: pytest.FixtureRequest, tmp_path: Path
           ) -> Iterator[tuple[str, LiveServer, StoreView]]:
    with reliability.live_store(request.param, request, tmp_path, start=False) as live:
        yield live.backend, live.server, live.view


class Consumer(threading.Thread):
    """Follows `_changes` from its checkpoint, reconnecting (to the current port) on errors."""

    def __init__(self, server: LiveServer, db: str) -> None:
        super().__init__(daemon=True)
        self.server, self.db = server, db
        self.checkpoint = 0
        self.seen: set[str] = set()
        self.regressions: list[str] = []
        self.resumes = 0
        self.answers = 0
        self.stop = False

    def run(self) -> None:
        conn: http.client.HTTPConnection | None = None
        while not self.stop:
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(HOST, self.server.port, timeout=15)
                conn.request("GET", f"/{self.db}/_changes?feed=longpoll&since={self.checkpoint}"
                             "&timeout=1000")
                reply = conn.getresponse()
                payload = reply.read()
                if reply.status != 200:
                    raise OSError(f"{reply.status} {payload[:200]!r}")
                body = json.loads(payload)
            except (OSError, http.client.HTTPException, ValueError):
                if conn is not None:
                    conn.close()
                conn = None
                self.resumes += 1
                time.sleep(0.05)
                continue
            last = self.checkpoint
            for row in body["results"]:
                if row["seq"] <= last:
                    self.regressions.append(f"seq {row['seq']} after {last} "
                                            f"(checkpoint {self.checkpoint})")
                last = row["seq"]
                self.seen.add(row["id"])
            if body["last_seq"] < self.checkpoint:
                self.regressions.append(f"last_seq {body['last_seq']} < {self.checkpoint}")
            self.checkpoint = body["last_seq"]
            self.answers += 1
        if conn is not None:
            conn.close()


@pytest.mark.live
def test_changes_resume_after_crash(target: tuple[str, LiveServer, StoreView]) -> None:
    backend, server, view = target
    server.start()
    db = "chcrash_" + uuid.uuid4().hex[:8]
    assert server.request("PUT", f"/{db}").status == 201
    h = Harness(server, db)
    clients = [Client(h, n) for n in range(CLIENTS)]
    consumer = Consumer(server, db)
    rng = random.Random()
    for client in clients:
        client.start()
    consumer.start()
    kills = 0
    try:
        for _ in range(KILLS):
            h.go.set()
            time.sleep(rng.uniform(0.5, 1.5))
            kill_whole_server(server)
            h.pause()
            server.start()
            h.port = server.port
            kills += 1
            wait_up(server)
            time.sleep(0.2)
            check_inv(h, clients, view)
        h.go.set()
        time.sleep(0.5)
        h.pause()
        check_inv(h, clients, view)  # every unanswered write is now resolved
    finally:
        h.stop = True
        h.go.set()
        for client in clients:
            client.join(REQUEST_TIMEOUT)
    final_seq = server.request("GET", f"/{db}").json()["update_seq"]
    deadline = time.monotonic() + 30
    while consumer.checkpoint < final_seq and time.monotonic() < deadline:
        time.sleep(0.05)
    consumer.stop = True
    consumer.join(20)
    acked = {i for c in clients for i, d in c.docs.items() if d.rev is not None}
    missing = acked - consumer.seen
    extra = consumer.seen - acked
    figure(backend, "changes consumer kill -9 resumes", kills)
    figure(backend, "acked writes missed by _changes readers", len(missing))
    figure(backend, "seq regressions seen by readers", len(consumer.regressions))
    print(f"\n{backend}: {kills} kills, {consumer.answers} answers, {consumer.resumes} "
          f"reconnects, {len(acked)} acked ids, {len(missing)} missing, {len(extra)} extra")
    assert h.tally.violations == []
    assert consumer.checkpoint >= final_seq
    assert consumer.regressions == []
    assert missing == set()
    assert extra == set()
    assert consumer.resumes >= kills
