"""kill -9 while a JavaScript view builds (reliability.md section 4, test 5).

A live `settee serve` builds a JS view over a few thousand documents; the whole server is
`kill -9`ed at random instants during the build, several times, and restarted. After each kill
the index seq is <= the db seq; at the end the view's rows equal a from-scratch rebuild (a second
design document with the same map code renamed, so a different signature), with no duplicate
(key, id) row.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import live
import pytest
import reliability
import sqlalchemy as sa
from live import LiveServer
from reliability import BACKENDS, StoreView, figure, kill_whole_server, sized, wait_up

pytest_plugins = ["reliability_report"]

DOCS = sized(3000, 20000)
KILLS = sized(3, 10)
MAP = ("function(doc) { if (doc.k !== undefined) { emit(doc.k, doc.n); "
       "emit([doc.k, doc._id], null); } }")
REBUILD_MAP = ("function(d) { if (d.k !== undefined) { emit(d.k, d.n); "
               "emit([d.k, d._id], null); } }")


@pytest.fixture(params=BACKENDS)
def target(request: pytest.FixtureRequest, tmp_path: Path
           ) -> Iterator[tuple[str, LiveServer, StoreView]]:
    with reliability.live_store(request.param, request, tmp_path, workers=2,
                                start=False) as live:
        yield live.backend, live.server, live.view


def index_seqs(view: StoreView) -> list[int]:
    """The stored index seqs; none before the first view query has created the view tables."""
    try:
        return [int(r[0]) for r in view.rows("SELECT seq FROM settee_view_indexes")]
    except sa.exc.DBAPIError:  # no such table yet (PostgreSQL says so; SQLite the same)
        return []


@pytest.mark.live
def test_crash_during_view_build(target: tuple[str, LiveServer, StoreView]) -> None:
    backend, server, view = target
    server.start()
    db = "vcrash_" + uuid.uuid4().hex[:8]
    assert server.request("PUT", f"/{db}").status == 201
    add_docs(server, db, 0, DOCS)
    ddoc = {"views": {"v": {"map": MAP}}}
    assert server.request("PUT", f"/{db}/_design/a", json.dumps(ddoc)).status == 201
    db_seq = server.request("GET", f"/{db}").json()["update_seq"]
    rng = random.Random()
    problems: list[str] = []
    partial = 0
    added = DOCS
    for point in range(KILLS):
        threading.Thread(target=lambda port=server.port: _query_ignoring_errors(port, db),
                         daemon=True).start()
        time.sleep(rng.uniform(0.0, 0.2))
        deadline = time.monotonic() + 10  # then kill once the build has committed progress
        while time.monotonic() < deadline and not any(0 < s < db_seq for s in index_seqs(view)) \
                and not any(s >= db_seq for s in index_seqs(view)):
            time.sleep(0.005)
        kill_whole_server(server)
        seqs = index_seqs(view)
        if any(s > db_seq for s in seqs):
            problems.append(f"index seq {seqs} > db seq {db_seq}")
        if any(0 < s < db_seq for s in seqs):
            partial += 1
        server.start()
        wait_up(server)
        if any(s >= db_seq for s in index_seqs(view)) and point < KILLS - 1:
            add_docs(server, db, added, added + 4000)  # more to build for the next point
            added += 4000
            db_seq = server.request("GET", f"/{db}").json()["update_seq"]
    rows = server.request("GET", f"/{db}/_design/a/_view/v", timeout=120).json()
    assert server.request("PUT", f"/{db}/_design/b", json.dumps(
        {"views": {"v": {"map": REBUILD_MAP}}})).status == 201
    fresh = server.request("GET", f"/{db}/_design/b/_view/v", timeout=120).json()
    dups = [k for k, n in Counter((json.dumps(r["key"]), r["id"]) for r in rows["rows"]).items()
            if n > 1]
    if dups:
        problems.append(f"{len(dups)} duplicate (key, id) rows, e.g. {dups[:3]}")
    if rows["rows"] != fresh["rows"] or rows["total_rows"] != fresh["total_rows"]:
        problems.append(f"view {rows['total_rows']} rows, rebuild {fresh['total_rows']}")
    if max(index_seqs(view)) > db_seq + 1:  # + 1: the rebuild's design doc
        problems.append(f"index seqs {index_seqs(view)} beyond db seq")
    figure(backend, "kill -9 points during view builds", KILLS)
    figure(backend, "view builds killed part-way", partial)
    figure(backend, "view inconsistencies after crash (rows, dups, seq)", len(problems))
    print(f"\n{backend}: {KILLS} kills, {partial} part-way, {rows['total_rows']} rows")
    assert problems == []
    assert rows["total_rows"] == 2 * added
    # how many kills landed part-way is a figure, not asserted: a fast build can finish first
    assert "Traceback" not in server.stderr(), server.stderr()[-5000:]


def add_docs(server: LiveServer, db: str, first: int, end: int) -> None:
    for start in range(first, end, 1000):
        docs = [{"_id": f"d{i:06d}", "k": i % 97, "n": i} for i in range(start, min(end,
                                                                                    start + 1000))]
        assert server.request("POST", f"/{db}/_bulk_docs", json.dumps({"docs": docs}),
                              timeout=60).status == 201


def _query_ignoring_errors(port: int, db: str) -> None:
    try:
        live.request(port, "GET", f"/{db}/_design/a/_view/v?limit=1", timeout=60)
    except OSError:
        pass  # the server was killed under it

