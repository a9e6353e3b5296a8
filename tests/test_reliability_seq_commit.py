"""Seqs in commit order as long-poll readers see them (reliability.md section 4, test 13).

8 writers PUT new documents on a live `settee serve` (4 gthread workers) while 4 long-poll
readers chain `since=last_seq`: no reader ever sees a seq <= one it already saw, and every
acknowledged write is in the union of what the readers saw.
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
from reliability import BACKENDS, figure, sized

pytest_plugins = ["reliability_report"]

pytestmark = pytest.mark.live

WRITERS = 8
READERS = 4
WRITES = sized(40, 500)  # per writer


@pytest.fixture(params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, LiveServer]]:
    with reliability.live_store(request.param, request, tmp_path, threads=8,
                                clean_exit=True) as live:
        yield live.backend, live.server


def test_seq_commit_order(server: tuple[str, LiveServer]) -> None:
    backend, live = server
    db = "seq_" + uuid.uuid4().hex[:8]
    assert live.request("PUT", f"/{db}").status == 201
    acked: set[str] = set()
    lock = threading.Lock()
    errors: list[str] = []
    writers_done = threading.Event()

    def writer(n: int) -> None:
        conn = http.client.HTTPConnection(HOST, live.port, timeout=30)
        try:
            for i in range(WRITES):
                doc_id = f"w{n}-{i}"
                conn.request("PUT", f"/{db}/{doc_id}", json.dumps({"n": n, "i": i}),
                             {"Content-Type": "application/json"})
                reply = conn.getresponse()
                body = reply.read()
                if reply.status == 201:
                    with lock:
                        acked.add(doc_id)
                else:
                    errors.append(f"PUT {doc_id}: {reply.status} {body[:200]!r}")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(f"writer {n}: {exc!r}")
        finally:
            conn.close()

    seen: list[set[str]] = [set() for _ in range(READERS)]
    regressions: list[str] = []
    polls = [0]

    def reader(n: int) -> None:
        conn = http.client.HTTPConnection(HOST, live.port, timeout=30)
        since, last = 0, 0
        try:
            while True:
                final = writers_done.is_set()
                conn.request("GET", f"/{db}/_changes?feed=longpoll&since={since}&timeout=500")
                reply = conn.getresponse()
                body = json.loads(reply.read())
                polls[0] += 1
                for row in body["results"]:
                    if row["seq"] <= last:
                        regressions.append(f"reader {n}: seq {row['seq']} after {last}")
                    last = row["seq"]
                    seen[n].add(row["id"])
                since = body["last_seq"]
                if final and not body["results"]:
                    return
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(f"reader {n}: {exc!r}")
        finally:
            conn.close()

    readers = [threading.Thread(target=reader, args=(n,)) for n in range(READERS)]
    writers = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    started = time.monotonic()
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join(120)
    writers_done.set()
    for t in readers:
        t.join(60)
    assert not any(t.is_alive() for t in readers + writers), "a client hung"
    union = set().union(*seen)
    missing = acked - union
    figure(backend, "seq regressions seen by readers", len(regressions))
    figure(backend, "acked writes missed by _changes readers", len(missing))
    print(f"\n{backend}: {len(acked)} acked writes, {polls[0]} long-polls in "
          f"{time.monotonic() - started:.1f} s; {len(regressions)} regressions, "
          f"{len(missing)} missing")
    assert errors == []
    assert regressions == []
    assert missing == set()
    assert len(acked) == WRITERS * WRITES
    # every reader ends with every write: each chain is complete, not only the union
    assert all(s == acked for s in seen)
