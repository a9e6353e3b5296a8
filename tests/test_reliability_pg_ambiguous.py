"""PostgreSQL ambiguous commit: the connection drops while COMMIT is on the wire (test 9).

The app reaches PostgreSQL through a small TCP proxy in this test. Armed, the proxy cuts the
connection at the next statement that commits a write: the `COMMIT` of a transaction that wrote,
or a call of the write function (`store.direct`), which commits as it returns. It cuts either
before forwarding it (PostgreSQL rolls the write back, or never runs it) or after forwarding it
and letting PostgreSQL commit, dropping only the reply. To the app both look the same: the
connection died during COMMIT, and it cannot know whether the write happened. The client must then
get an error (5xx), never a 201; the write must be whole or absent (a `_bulk_docs` all or nothing);
a re-read tells which; a retry of the same edit gets 201 or 409 and ends at the rev the edit
computes (revs are content hashes), with one leaf, never two; the next request on the app works.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import reliability
import sqlalchemy as sa
from reliability import StoreView, call, figure
from settee.server import create_app
from settee.store import direct

pytest_plugins = ["reliability_report"]

pytestmark = pytest.mark.postgres


PARSE = re.compile(rb"(_pg3_\d+)\x00([^\x00]*)\x00")  # a Parse message: name, query
COMMIT = b"Q\x00\x00\x00\x0bCOMMIT\x00"  # psycopg's commit(): a simple-query COMMIT
WRITES = re.compile(rb"\b(INSERT|UPDATE|DELETE)\b")
COMMITS_ITSELF = re.compile(direct.FUNCTION.encode() + rb"\(")  # in autocommit: writes, commits


class CommitCutter:
    """A loopback TCP proxy to PostgreSQL that can cut one connection at its next COMMIT."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.mode: str | None = None  # "before" or "after" the COMMIT reaches PostgreSQL
        self.cut = threading.Event()
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, mode: str) -> None:
        with self.lock:
            self.mode = mode
            self.cut.clear()

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            mute = threading.Event()  # set: replies are dropped, not forwarded
            threading.Thread(target=self._pump, args=(client, server, True, mute),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False, mute),
                             daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, to_server: bool,
              mute: threading.Event) -> None:
        wrote = False  # this connection's transaction has written: its COMMIT is the one
        writers: set[bytes] = set()  # prepared statements (psycopg prepares repeated ones)
        committers: set[bytes] = set()  # prepared calls of the write function
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                mode = None
                if to_server:
                    for name, query in PARSE.findall(data):
                        if COMMITS_ITSELF.search(query):
                            committers.add(name + b"\x00")
                        elif WRITES.search(query):
                            writers.add(name + b"\x00")
                    if WRITES.search(data) or any(name in data for name in writers):
                        wrote = True
                if to_server and (COMMITS_ITSELF.search(data)
                                  or any(name in data for name in committers)):
                    with self.lock:
                        mode, self.mode = self.mode, None
                elif to_server and COMMIT in data:
                    if wrote:
                        with self.lock:
                            mode, self.mode = self.mode, None
                    wrote = False
                if not to_server and mute.is_set():
                    continue
                if mode is not None:
                    mute.set()
                if mode == "after":  # let PostgreSQL commit; its reply is dropped
                    dst.sendall(data)
                    time.sleep(0.2)
                if mode is not None:
                    self.cut.set()
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()


@pytest.fixture
def cut_app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Any, Any, Any]]:
    with reliability.store_url_for("postgres", request, tmp_path) as url:
        parsed = sa.engine.make_url(url)
        proxy = CommitCutter((parsed.host or "127.0.0.1", parsed.port or 5432))
        proxied = parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(
            hide_password=False)
        app = create_app({"database_url": proxied, "data_dir": str(tmp_path / "data")})
        view = StoreView(url)
        try:
            yield app, proxy, view
        finally:
            app.store.close()
            view.close()
            proxy.close()


def _leaves(app: Any, db: str, doc: str) -> list[str]:
    got = call(app, "GET", f"/{db}/{doc}?open_revs=all", None, {"Accept": "application/json"})
    return [d["ok"]["_rev"] for d in got.json() if "ok" in d]


@pytest.mark.parametrize("mode", ["before", "after"])
def test_ambiguous_commit_single_put(cut_app: tuple[Any, Any, Any], mode: str) -> None:
    app, proxy, view = cut_app
    db = "amb_" + uuid.uuid4().hex[:8]
    assert call(app, "PUT", f"/{db}").status == 201
    old = call(app, "PUT", f"/{db}/doc", json.dumps({"n": 0})).json()["rev"]
    edit = json.dumps({"_rev": old, "n": 1})
    proxy.arm(mode)
    answer = call(app, "PUT", f"/{db}/doc", edit)
    assert proxy.cut.is_set(), "the proxy never saw the write commit"
    assert answer.status >= 500, (answer.status, answer.body)
    assert set(answer.json()) >= {"error", "reason"}
    now = call(app, "GET", f"/{db}/doc").json()  # a re-read resolves the ambiguity
    committed = now["_rev"] != old
    assert committed == (mode == "after"), now
    if committed:
        assert now["n"] == 1
    retry = call(app, "PUT", f"/{db}/doc", edit)
    assert retry.status == (409 if committed else 201), retry.body
    final = call(app, "GET", f"/{db}/doc").json()
    assert final["n"] == 1 and final["_rev"].startswith("2-")
    if committed:
        assert final["_rev"] == now["_rev"]
    assert _leaves(app, db, "doc") == [final["_rev"]]  # one leaf: never two from one edit
    assert view.invariant_problems(db) == []
    figure("postgres", f"ambiguous commits ({mode} COMMIT reached the server)", 1)


@pytest.mark.parametrize("mode", ["before", "after"])
def test_ambiguous_commit_bulk_docs(cut_app: tuple[Any, Any, Any], mode: str) -> None:
    app, proxy, view = cut_app
    db = "amb_" + uuid.uuid4().hex[:8]
    assert call(app, "PUT", f"/{db}").status == 201
    docs = {"docs": [{"_id": f"b{i}", "n": i} for i in range(5)]}
    proxy.arm(mode)
    answer = call(app, "POST", f"/{db}/_bulk_docs", json.dumps(docs))
    assert proxy.cut.is_set()
    assert answer.status >= 500, (answer.status, answer.body)
    info = call(app, "GET", f"/{db}").json()
    assert info["doc_count"] == (5 if mode == "after" else 0), info  # whole or absent
    retry = call(app, "POST", f"/{db}/_bulk_docs", json.dumps(docs))
    assert retry.status == 201
    results = retry.json()
    if mode == "after":
        assert all(r.get("error") == "conflict" for r in results), results
    else:
        assert all(r.get("ok") for r in results), results
    assert call(app, "GET", f"/{db}").json()["doc_count"] == 5
    for i in range(5):
        assert len(_leaves(app, db, f"b{i}")) == 1
    assert view.invariant_problems(db) == []
    assert call(app, "PUT", f"/{db}/next", "{}").status == 201  # the app goes on working
