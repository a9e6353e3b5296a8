"""kill -9 under write load loses no acknowledged write (reliability.md section 4, test 1)."""

# A live `settee serve` (4 gthread workers) takes PUT / DELETE / `_bulk_docs` from 8 clients
# (`writeload.py`) while the test `kill -9`s a random worker at random instants, and every 10th
# time the whole server (master and workers), which it then restarts. After each kill the
# clients pause and `INV` is checked: every acknowledged write is readable at its rev (or at a
# later rev the test wrote), every unacknowledged one is absent or whole (a `_bulk_docs` all or
# nothing), the counters agree with `_all_docs` and with the `settee_docs` table, `update_seq`
# is the highest seq, every leaf has its body and SQLite's `integrity_check` is ok.

from __future__ import annotations

import json
import os
import random
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import reliability
from live import LiveServer
from reliability import BACKENDS, StoreView, figure, kill_whole_server, sized, wait_up
from writeload import REQUEST_TIMEOUT, Client, Harness

pytest_plugins = ["reliability_report"]

CLIENTS = 8
KILLS = sized(100, 1000)  # kill points per backend
FULL_KILL_EVERY = 10


@pytest.fixture(params=BACKENDS)
def crash_target(request: pytest.FixtureRequest, tmp_path: Path
                 ) -> Iterator[tuple[str, LiveServer, StoreView]]:
    with reliability.live_store(request.param, request, tmp_path, start=False) as live:
        yield live.backend, live.server, live.view


def check_inv(h: Harness, clients: list[Client], view: StoreView) -> None:
    """INV after a kill, with the clients paused."""
    ids = [doc_id for c in clients for doc_id in c.ids]
    got = h.server.request("POST", f"/{h.db}/_bulk_get?revs=true",
                           json.dumps({"docs": [{"id": i} for i in ids]}), timeout=60)
    assert got.status == 200, got.body
    leaves: dict[str, list[dict[str, Any]]] = {}
    for result in got.json()["results"]:
        leaves[result["id"]] = [d["ok"] for d in result["docs"] if "ok" in d]
    for client in clients:
        client.check(leaves)
    live = sum(1 for c in clients for d in c.docs.values() if d.rev and not d.deleted)
    dead = sum(1 for c in clients for d in c.docs.values() if d.rev and d.deleted)
    info = h.server.request("GET", f"/{h.db}").json()
    if (info["doc_count"], info["doc_del_count"]) != (live, dead):
        h.tally.violation(f"GET /db counts {info['doc_count']}/{info['doc_del_count']}, "
                          f"the writers expect {live}/{dead}")
    listing = h.server.request("GET", f"/{h.db}/_all_docs", timeout=60).json()
    expected = sorted(i for c in clients for i, d in c.docs.items() if d.rev and not d.deleted)
    if listing["total_rows"] != info["doc_count"] or \
            [row["id"] for row in listing["rows"]] != expected:
        h.tally.violation(f"_all_docs total {listing['total_rows']} / {len(listing['rows'])} "
                          f"rows, not the {len(expected)} live docs")
    for problem in view.invariant_problems(h.db):
        h.tally.violation(f"store: {problem}")


@pytest.mark.live
def test_crash_kill9_write_load(crash_target: tuple[str, LiveServer, StoreView]) -> None:
    backend, server, view = crash_target
    server.start()
    db = "crash_" + uuid.uuid4().hex[:8]
    assert server.request("PUT", f"/{db}").status == 201
    h = Harness(server, db)
    clients = [Client(h, n) for n in range(CLIENTS)]
    rng = random.Random()
    for client in clients:
        client.start()
    started = time.monotonic()
    kills = full_kills = 0
    try:
        for point in range(1, KILLS + 1):
            h.go.set()
            time.sleep(rng.uniform(0.2, 0.8))
            if point % FULL_KILL_EVERY == 0:
                kill_whole_server(server)
                full_kills += 1
                h.pause()
                server.start()
                h.port = server.port
            else:
                workers = server.worker_pids()
                assert workers, "no workers to kill"
                os.kill(rng.choice(workers), signal.SIGKILL)
                h.pause()
            kills += 1
            wait_up(server)
            time.sleep(0.2)  # a PostgreSQL backend of a killed worker ends its session
            check_inv(h, clients, view)
            if len(h.tally.violations) > 20:
                break
    finally:
        h.stop = True
        h.go.set()
        for client in clients:
            client.join(REQUEST_TIMEOUT)
    t = h.tally
    lost = sum(1 for v in t.violations if v.startswith("LOST"))
    figure(backend, "kill -9 points survived", kills if not t.violations else 0)
    figure(backend, "acked writes checked", t.acked)
    figure(backend, "lost acked writes", lost)
    figure(backend, "unacked writes resolved (absent/whole)", t.resolved_absent + t.resolved_whole)
    figure(backend, "partial or torn writes", len(t.violations) - lost)
    print(f"\n{backend}: {kills} kill -9 points ({full_kills} whole-server) in "
          f"{time.monotonic() - started:.1f} s; {t.acked} acked writes, {t.unknown} unanswered "
          f"({t.resolved_absent} absent, {t.resolved_whole} whole), {t.five_xx} 5xx")
    assert t.violations == []
    assert t.acked > KILLS * 10, "too little load to say anything"
    assert "Traceback" not in server.stderr(), server.stderr()[-5000:]
