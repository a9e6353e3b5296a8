"""Scale-out: two `settee serve` nodes on different loopback ports sharing one PostgreSQL database.

What one node writes the other reads at once; writers on both nodes to the same documents lose no
update; SIGKILL of one node mid-write leaves the other serving and every acknowledged write
readable. The long-poll and view tests run once `_changes` and views answer (they are skipped
while those are placeholders), and are written against CouchDB's documented behaviour.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import Client
from live import LiveServer
from settee.server import create_app

pytestmark = [pytest.mark.live, pytest.mark.postgres]


def _answers(path: str) -> bool:
    """Whether an endpoint answers 200 yet (probed in-process on a throwaway SQLite store, with
    a database `probe` holding a design doc `_design/probe` whose view `probe` emits each id)."""
    with tempfile.TemporaryDirectory() as data_dir:
        app = create_app({"data_dir": data_dir})
        try:
            client = Client(app, extra_environ={"HTTP_HOST": "127.0.0.1:5984"})
            client.put("/probe", status="*")
            client.put("/probe/_design/probe", json.dumps(
                {"views": {"probe": {"map": "function (doc) { emit(doc._id, null); }"}}}),
                content_type="application/json", status="*")
            return bool(client.get(path, status="*").status_int == 200)
        finally:
            app.store.close()


NO_CHANGES = not _answers("/probe/_changes")
NO_VIEWS = not _answers("/probe/_design/probe/_view/probe")


@pytest.fixture(scope="module")
def database_url(pg_admin: Any) -> Iterator[str]:
    """A fresh PostgreSQL database for this module's nodes."""
    name = "settee_scale_" + uuid.uuid4().hex[:12]
    with pg_admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    yield pg_admin.url.set(database=name).render_as_string(hide_password=False)
    with pg_admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def node(workdir: Path, database_url: str) -> LiveServer:
    return LiveServer.settee(workdir, database_url=database_url, workers=2, threads=8)


@pytest.fixture(scope="module")
def nodes(database_url: str, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[tuple[LiveServer, LiveServer]]:
    """Nodes A and B, started one after the other on the same (empty) database."""
    a = node(tmp_path_factory.mktemp("node-a"), database_url).start()
    try:
        b = node(tmp_path_factory.mktemp("node-b"), database_url).start()
        try:
            yield a, b
        finally:
            b.stop()
    finally:
        a.stop()
    for server in (a, b):
        assert "Traceback" not in server.stderr(), server.stderr()


def new_db(server: LiveServer) -> str:
    name = "scale_" + uuid.uuid4().hex[:10]
    assert server.request("PUT", f"/{name}").status == 201
    return name


def test_a_write_on_one_node_reads_back_on_the_other_at_once(
        nodes: tuple[LiveServer, LiveServer]) -> None:
    a, b = nodes
    db = new_db(a)
    assert b.request("GET", f"/{db}").status == 200
    for n in range(20):
        put = a.request("PUT", f"/{db}/doc{n}", json.dumps({"n": n}))
        assert put.status == 201
        got = b.request("GET", f"/{db}/doc{n}")  # no wait, no retry
        assert got.status == 200 and got.json() == {"_id": f"doc{n}",
                                                    "_rev": put.json()["rev"], "n": n}
    rev = b.request("GET", f"/{db}/doc0").json()["_rev"]
    assert b.request("DELETE", f"/{db}/doc0?rev={rev}").status == 200
    assert a.request("GET", f"/{db}/doc0").status == 404
    assert a.request("GET", f"/{db}").json()["doc_count"] == 19
    assert b.request("DELETE", f"/{db}").status == 200
    assert a.request("GET", f"/{db}").status == 404


# -- no lost update across nodes ---------------------------------------------------------------

THREADS_PER_NODE = 4
DOCS = 4
TIME_LIMIT = 15.0


def _update_loop(url: str, db: str, ids: list[str], offset: int, deadline: float,
                 done: dict[str, list[int]], problems: list[str], lock: threading.Lock) -> None:
    with requests.Session() as session:
        n = 0
        while time.monotonic() < deadline:
            doc = ids[(offset + n) % len(ids)]
            body = session.get(f"{url}/{db}/{doc}", timeout=10).json()
            body["counter"] += 1
            put = session.put(f"{url}/{db}/{doc}", json=body, timeout=10)
            if put.status_code == 201:
                with lock:
                    done.setdefault(doc, []).append(body["counter"])
                n += 1
            elif put.status_code != 409:
                problems.append(f"PUT {doc} on {url}: {put.status_code} {put.text}")
                return


def test_writers_on_both_nodes_lose_no_update(nodes: tuple[LiveServer, LiveServer]) -> None:
    a, b = nodes
    db = new_db(a)
    ids = [f"counter{i}" for i in range(DOCS)]
    for doc in ids:
        assert a.request("PUT", f"/{db}/{doc}", '{"counter": 0}').status == 201
    done: dict[str, list[int]] = {}
    problems: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + TIME_LIMIT
    threads = [threading.Thread(target=_update_loop,
                                args=(server.url, db, ids, i, deadline, done, problems, lock))
               for server in (a, b) for i in range(THREADS_PER_NODE)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIME_LIMIT + 30)
    assert problems == []
    total = sum(len(v) for v in done.values())
    assert total >= 100, f"only {total} updates in {TIME_LIMIT} s"
    for doc in ids:
        final = b.request("GET", f"/{db}/{doc}?revs=true&conflicts=true").json()
        successes = sorted(done.get(doc, []))
        assert final["counter"] == len(successes), doc
        assert successes == list(range(1, len(successes) + 1)), doc  # no two 201s per parent
        assert final["_revisions"]["start"] == len(successes) + 1
        assert "_conflicts" not in final


# -- SIGKILL of one node -----------------------------------------------------------------------

def _writer(url: str, db: str, prefix: str, acked: dict[str, str], stop: threading.Event
            ) -> None:
    with requests.Session() as session:
        for n in range(100_000):
            if stop.is_set():
                return
            doc = f"{prefix}-{n}"
            try:
                put = session.put(f"{url}/{db}/{doc}", json={"n": n, "pad": "x" * 200},
                                  timeout=10)
            except requests.RequestException:
                return  # the node died: this write's outcome is unknown, and not counted
            if put.status_code == 201:
                acked[doc] = put.json()["rev"]


def test_killing_a_node_mid_write_leaves_the_other_serving_and_consistent(
        database_url: str, tmp_path: Path) -> None:
    a = node(tmp_path / "a", database_url).start()
    b = node(tmp_path / "b", database_url).start()
    try:
        db = new_db(a)
        acked: dict[str, str] = {}
        stop = threading.Event()
        writers = [threading.Thread(target=_writer, args=(a.url, db, f"w{i}", acked, stop))
                   for i in range(6)]
        for writer in writers:
            writer.start()
        deadline = time.monotonic() + 20
        while len(acked) < 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.killpg(a.pid, signal.SIGKILL)  # master and workers at once, mid-write
        stop.set()
        for writer in writers:
            writer.join(30)
        assert len(acked) >= 200
        started = time.monotonic()
        put = b.request("PUT", f"/{db}/after-the-kill", "{}", timeout=30)
        assert put.status == 201, put.body  # no lock of a dead connection holds B up
        assert time.monotonic() - started < 10
        for doc, rev in sorted(acked.items()):
            got = b.request("GET", f"/{db}/{doc}")
            assert got.status == 200 and got.json()["_rev"] == rev, doc
        info = b.request("GET", f"/{db}").json()
        rows = b.request("GET", f"/{db}/_all_docs").json()
        assert info["doc_count"] == rows["total_rows"] == len(rows["rows"])
        assert info["doc_count"] >= len(acked) + 1
        if isinstance(info["update_seq"], int):  # one seq per committed create, acked or not
            assert info["update_seq"] == info["doc_count"]
    finally:
        a.stop()
        b.stop()
    assert "Traceback" not in b.stderr(), b.stderr()


# -- the changes feed and views, once they answer ---------------------------------------------

@pytest.mark.skipif(NO_CHANGES, reason="/{db}/_changes does not answer yet")
def test_a_long_poll_on_one_node_wakes_within_100_ms_of_a_write_on_the_other(
        nodes: tuple[LiveServer, LiveServer]) -> None:
    a, b = nodes
    db = new_db(a)
    delays = []
    for n in range(5):
        since = b.request("GET", f"/{db}").json()["update_seq"]
        result: dict[str, Any] = {}

        def poll(since: Any = since, result: dict[str, Any] = result) -> None:
            reply = b.request("GET", f"/{db}/_changes?feed=longpoll&since={since}"
                              "&timeout=10000", timeout=20)
            result["at"], result["reply"] = time.monotonic(), reply

        poller = threading.Thread(target=poll)
        poller.start()
        time.sleep(0.3)  # the poll is waiting on B
        assert "reply" not in result, "the long-poll returned before any write"
        put = a.request("PUT", f"/{db}/wake{n}", "{}")
        written = time.monotonic()
        assert put.status == 201
        poller.join(15)
        reply = result["reply"]
        assert reply.status == 200
        changes = reply.json()
        assert [r["id"] for r in changes["results"]] == [f"wake{n}"]
        assert changes["results"][0]["changes"] == [{"rev": put.json()["rev"]}]
        delays.append(result["at"] - written)
    print(f"\nlong-poll wake delays across nodes (s): {[round(d, 4) for d in delays]}")
    assert statistics.median(delays) < 0.1, delays
    assert max(delays) < 1.0, delays


MAP = "function (doc) { if (doc.kind === 'item') { emit(doc.n, doc.n * 10); } }"


def view_rows(server: LiveServer, db: str) -> dict[str, Any]:
    reply = server.request("GET", f"/{db}/_design/app/_view/by_n", timeout=30)
    assert reply.status == 200, reply.body
    rows: dict[str, Any] = reply.json()
    return rows


@pytest.mark.skipif(NO_VIEWS, reason="views do not answer yet")
def test_an_index_built_through_one_node_answers_and_stays_current_on_both(
        nodes: tuple[LiveServer, LiveServer]) -> None:
    a, b = nodes
    db = new_db(a)
    ddoc = {"views": {"by_n": {"map": MAP}}}
    assert a.request("PUT", f"/{db}/_design/app", json.dumps(ddoc)).status == 201
    docs = [{"_id": f"item{n:03d}", "kind": "item", "n": n} for n in range(50)]
    bulk = a.request("POST", f"/{db}/_bulk_docs", json.dumps({"docs": docs}))
    assert bulk.status == 201
    built = view_rows(a, db)
    assert built["total_rows"] == 50 and built["offset"] == 0
    assert view_rows(b, db) == built
    extra = [{"_id": f"item{n:03d}", "kind": "item", "n": n} for n in range(50, 60)]
    assert b.request("POST", f"/{db}/_bulk_docs", json.dumps({"docs": extra})).status == 201
    threads = [threading.Thread(target=view_rows, args=(server, db)) for server in (a, b, a, b)]
    for thread in threads:  # both nodes bring the index up to date at the same time
        thread.start()
    for thread in threads:
        thread.join(60)
    for server in (a, b):
        rows = view_rows(server, db)
        assert rows["total_rows"] == 60
        assert [r["id"] for r in rows["rows"]] == [f"item{n:03d}" for n in range(60)]
        assert [(r["key"], r["value"]) for r in rows["rows"]] == \
            [(n, n * 10) for n in range(60)]
    gone = a.request("GET", f"/{db}/item000").json()["_rev"]
    assert a.request("DELETE", f"/{db}/item000?rev={gone}").status == 200
    assert [r["id"] for r in view_rows(b, db)["rows"]][:1] == ["item001"]
