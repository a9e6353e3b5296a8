"""Shared helpers of the reliability tests: sizes, figures, in-process calls, store inspection."""

# Not a test module: the `test_reliability_*` files `import reliability` (pytest puts `tests/` on
# `sys.path`). Sizes are the CI ones unless `SETTEE_SOAK=1` (`make soak`). Figures recorded with
# `figure()` are printed at the end of the run by the `reliability_report` plugin.

from __future__ import annotations

import io
import math
import os
import signal
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Set
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes

import orjson
import pytest
import revmodel
import sqlalchemy as sa
from live import LiveServer
from settee.store import Store, StoreConfig

SOAK = os.environ.get("SETTEE_SOAK", "").lower() in ("1", "true", "yes")
BACKENDS = ["sqlite", "postgres"]


def sized(ci: int, soak: int) -> int:
    """The CI size, or the soak size under `SETTEE_SOAK=1`."""
    return soak if SOAK else ci


# Defects these tests found and that were fixed: U+0000 in ids/keys/names was a 500 on PostgreSQL
# (now 400 before any query, store/sql.py); `_revs_limit` beyond 2**31 - 1 overflowed the column
# (now 400); `_security` with an integer beyond 64 bits failed in orjson (now exact); a failed
# COMMIT on SQLite left the transaction open on a kept connection (now rolled back or dropped);
# a view answer took `total_rows`/`offset` from an older index state than its rows (now read in
# the first page's transaction, REPEATABLE READ on PostgreSQL, views/answer.py); a fresh worker's
# first concurrent requests each built an engine, so one worker held several PostgreSQL pools
# and 8 workers ran out of connections (now built once under a lock, with a hard per-process
# cap and a bounded wait, store/engine.py); a replicated path that gave a known rev another
# parent added that parent as a childless root, i.e. a leaf without a body (now the path stops
# there, store/revtree.py `merge_path`; found by the model test at larger sizes).


# -- figures (printed by reliability_report) ---------------------------------------------------

FIGURES: dict[str, dict[str, float]] = {}
_FIGURES_LOCK = threading.Lock()


def figure(backend: str, name: str, value: float, *, mode: str = "add") -> None:
    """Record a figure of section 5 for a backend: summed (`add`) or the worst (`max`)."""
    with _FIGURES_LOCK:
        row = FIGURES.setdefault(name, {})
        if mode == "max":
            row[backend] = max(row.get(backend, value), value)
        else:
            row[backend] = row.get(backend, 0) + value


# -- in-process requests -----------------------------------------------------------------------

@dataclass
class Answer:
    """One in-process response: status, headers and the whole body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


def call(app: Any, method: str, raw_path: str, body: bytes | str | None = None,
         headers: Mapping[str, str] | None = None) -> Answer:
    """Call the WSGI app directly, `raw_path` as on the wire (what gunicorn gives as RAW_URI).

    Cheaper than webtest for thousands of requests, and the bytes go through untouched.
    """
    data = body.encode() if isinstance(body, str) else (body or b"")
    path, _, query = raw_path.partition("?")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": _decoded_path(path),
        "QUERY_STRING": query,
        "RAW_URI": raw_path,
        "REQUEST_URI": raw_path,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "5984",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1:5984",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(data),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if body is not None:
        environ["CONTENT_TYPE"] = "application/json"
        environ["CONTENT_LENGTH"] = str(len(data))
    for name, value in (headers or {}).items():
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            environ[key] = value
        else:
            environ["HTTP_" + key] = value
    status: list[str] = []
    out_headers: dict[str, str] = {}

    def start_response(line: str, pairs: list[tuple[str, str]], exc_info: Any = None) -> Any:
        status.append(line)
        out_headers.update(pairs)
        return lambda chunk: None

    chunks = app(environ, start_response)
    try:
        payload = b"".join(chunks)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    return Answer(int(status[0].split()[0]), out_headers, payload)


def _decoded_path(path: str) -> str:
    """PATH_INFO as a WSGI server gives it: percent-decoded, as latin-1 characters."""
    return unquote_to_bytes(path).decode("latin-1")


def error_shape_problem(answer: Any) -> str | None:
    """Why a 4xx/5xx answer is not CouchDB's `{"error": str, "reason": str}` JSON, or None."""
    if answer.status == 304 or answer.status < 400:
        return None
    content_type = answer.headers.get("Content-Type", "")
    if not content_type.startswith("application/json"):
        return f"{answer.status} with Content-Type {content_type!r}"
    try:
        body = orjson.loads(answer.body)
    except orjson.JSONDecodeError:
        return f"{answer.status} with a body that is not JSON: {answer.body[:200]!r}"
    if not isinstance(body, dict) or not isinstance(body.get("error"), str) \
            or not isinstance(body.get("reason"), str):
        return f"{answer.status} with body {answer.body[:200]!r}"
    return None


# -- PostgreSQL databases of our own -----------------------------------------------------------

def new_pg_database(admin: sa.Engine, prefix: str = "settee_rel_") -> str:
    """Create an empty PostgreSQL database on the `pg_admin` server; return its store URL."""
    name = prefix + uuid.uuid4().hex[:12]
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    return admin.url.set(database=name).render_as_string(hide_password=False)


def drop_pg_database(admin: sa.Engine, url: str) -> None:
    """Drop a database made by `new_pg_database` (connections still open are cut)."""
    name = sa.engine.make_url(url).database
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def store_url_for(backend: str, request: pytest.FixtureRequest, directory: Path
                  ) -> Iterator[str]:
    """A fresh store URL on `backend`: a SQLite file in `directory`, or a new PG database."""
    if backend == "sqlite":
        yield "sqlite:///" + str(Path(directory).resolve() / "data" / "settee.sqlite")
        return
    admin = request.getfixturevalue("pg_admin")
    url = new_pg_database(admin)
    try:
        yield url
    finally:
        drop_pg_database(admin, url)


def create_schema_first(url: str) -> None:
    """Create a fresh SQLite store's schema before a live server starts, so its workers' first
    requests do not race in `setup()` (test_reliability_schema_race; PostgreSQL serialises it)."""
    if not url.startswith("sqlite"):
        return
    Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    store = Store(StoreConfig(url=url))
    try:
        store.setup()
    finally:
        store.close()


# -- live servers on a fresh store, and killing them --------------------------------------------

@dataclass
class Live:
    """A live server on a fresh store: its backend, the server, the store URL, its tables."""

    backend: str
    server: LiveServer
    url: str
    view: StoreView


@contextmanager
def live_store(backend: str, request: pytest.FixtureRequest, directory: Path, *,
               workers: int = 4, threads: int = 4, start: bool = True, args: Iterable[str] = (),
               env: Mapping[str, str] | None = None, clean_exit: bool = False
               ) -> Iterator[Live]:
    """`settee serve` on a fresh store of `backend` (schema made first) and a view of its
    tables; afterwards the server is stopped and the store dropped. With `clean_exit`, a body
    that ended without error also needs the server to stop with status 0 and no traceback in
    its error log."""
    with store_url_for(backend, request, directory) as url:
        create_schema_first(url)
        server = LiveServer.settee(directory, database_url=None if backend == "sqlite" else url,
                                   workers=workers, threads=threads, args=args, env=env)
        view = StoreView(url)
        try:
            if start:
                server.start()
            yield Live(backend, server, url, view)
            if clean_exit:
                assert server.stop() in (0, None), server.stderr()[-5000:]
                assert "Traceback" not in server.stderr(), server.stderr()[-5000:]
        finally:
            server.stop()
            view.close()


def kill_whole_server(server: LiveServer) -> None:
    """kill -9 the master and every worker (the server's own process group)."""
    os.killpg(server.pid, signal.SIGKILL)
    server.stop()


def wait_up(server: LiveServer, timeout: float = 30.0, *, workers: int = 0,
            replacing: Set[int] = frozenset()) -> None:
    """Wait until `/_up` answers 200 again (after a kill), and the server has at least `workers`
    worker processes, none of them one of the killed ones in `replacing`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = set(server.worker_pids())
        if len(pids) >= workers and not pids & replacing:
            try:
                if server.request("GET", "/_up", timeout=5).status == 200:
                    return
            except OSError:
                pass
        time.sleep(0.05)
    raise AssertionError("the server did not come back\n" + server.stderr()[-3000:])


# -- looking at the store's tables directly ------------------------------------------------------

class StoreView:
    """Read-only SQL access to a store's tables, from outside the server (no pooled connections)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        # One pooled connection, idle between queries (so never a long read transaction).
        self.engine = sa.create_engine(url, pool_size=1, max_overflow=2)

    def close(self) -> None:
        self.engine.dispose()

    def rows(self, query: str, **params: Any) -> list[tuple[Any, ...]]:
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(query), params)]

    def db_row(self, name: str) -> dict[str, Any] | None:
        found = self.rows("SELECT id, update_seq, doc_count, doc_del_count, body_bytes, "
                          "revs_limit, purge_seq, security FROM settee_dbs WHERE name = :n", n=name)
        if not found:
            return None
        keys = ("id", "update_seq", "doc_count", "doc_del_count", "body_bytes", "revs_limit",
                "purge_seq", "security")
        return dict(zip(keys, found[0]))

    def docs(self, db_id: int) -> dict[str, dict[str, Any]]:
        """doc id -> tree, winner, deleted, seq."""
        return {
            doc_id: {"tree": orjson.loads(tree), "winner": winner, "deleted": bool(deleted),
                     "seq": seq}
            for doc_id, tree, winner, deleted, seq in self.rows(
                "SELECT doc_id, tree, winner, deleted, seq FROM settee_docs WHERE db_id = :d",
                d=db_id)
        }

    def bodies(self, db_id: int) -> dict[tuple[str, str], bytes]:
        """(doc id, rev) -> the stored body's JSON (record layers unpacked, metadata dropped)."""
        from settee.store.layers import build_stack
        layer = build_stack(4096, True)
        return {(doc_id, rev): layer.body_of(bytes(body)) for doc_id, rev, body in self.rows(
            "SELECT doc_id, rev, body FROM settee_revs WHERE db_id = :d", d=db_id)}

    def packed_sizes(self, db_id: int) -> int:
        found = self.rows("SELECT coalesce(sum(length(body)), 0) FROM settee_revs "
                          "WHERE db_id = :d", d=db_id)
        return int(found[0][0])

    def integrity(self) -> str:
        """SQLite's `PRAGMA integrity_check` (`ok`), or `ok` on PostgreSQL (no amcheck here)."""
        if not self.is_sqlite:
            return "ok"
        path = sa.engine.make_url(self.url).database
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            return "; ".join(str(r[0]) for r in conn.execute("PRAGMA integrity_check"))
        finally:
            conn.close()

    def snapshot(self, name: str) -> dict[str, Any] | None:
        """Everything stored for one database, comparable across two stores or two moments:
        counters, every doc row (tree, winner, deleted, seq) and every body (metadata dropped)."""
        db = self.db_row(name)
        if db is None:
            return None
        head = {k: v for k, v in db.items() if k not in ("id", "body_bytes")}
        return {"db": head, "docs": self.docs(db["id"]),
                "bodies": {f"{d} {r}": b for (d, r), b in self.bodies(db["id"]).items()},
                "atts": self.atts(db["id"]), "views": self.views(db["id"])}

    def atts(self, db_id: int) -> dict[str, list[Any]]:
        """'doc rev name' -> the attachment row (ord, type, digest, length, revpos, encoding)."""
        return {f"{d} {r} {n}": rest for d, r, n, *rest in (tuple(row) for row in self.rows(
            "SELECT doc_id, rev, name, ord, content_type, digest, length, revpos, encoding "
            "FROM settee_atts WHERE db_id = :d", d=db_id))}

    def views(self, db_id: int) -> dict[str, Any]:
        """signature -> the index (seq, row count, total), its rows and its reductions. An index
        at seq 0 without rows is left out: a query creates it empty before its first batch, and
        that is the same as no index."""
        if not self._has_views():
            return {}
        out: dict[str, Any] = {}
        for index_id, sig, seq, count, total in self.rows(
                "SELECT id, signature, seq, row_count, total FROM settee_view_indexes "
                "WHERE db_id = :d", d=db_id):
            rows = sorted((bytes(k), i, n, bytes(kj), bytes(v)) for k, i, n, kj, v in self.rows(
                "SELECT key_bytes, doc_id, dup, key_json, value_json FROM settee_view_rows "
                "WHERE index_id = :i", i=index_id))
            reds = sorted((bytes(k), bytes(kj), bytes(r), c, bool(u)) for k, kj, r, c, u in
                          self.rows("SELECT key_bytes, key_json, reduction, row_count, uniform "
                                    "FROM settee_view_reductions WHERE index_id = :i",
                                    i=index_id))
            if seq == 0 and not rows and not reds:
                continue
            out[sig] = {"seq": seq, "row_count": count,
                        "total": None if total is None else bytes(total),
                        "rows": rows, "reductions": reds}
        return out

    def _has_views(self) -> bool:
        return sa.inspect(self.engine).has_table("settee_view_indexes")

    def blob_problems(self, db_id: int) -> list[str]:
        """Attachments whose blob is missing or whose chunks do not add up to its length."""
        problems = []
        for digest, length, chunked in self.rows(
                "SELECT a.digest, coalesce(b.length, -2), (SELECT coalesce(sum(length(c.data)), "
                "-1) FROM settee_blob_chunks c WHERE c.digest = a.digest) FROM settee_atts a "
                "LEFT JOIN settee_blobs b ON b.digest = a.digest WHERE a.db_id = :d", d=db_id):
            if int(chunked) != int(length) and not (length == 0 and chunked == -1):
                problems.append(f"attachment blob {digest}: {chunked} bytes stored of {length}")
        return problems

    def invariant_problems(self, name: str) -> list[str]:
        """What is wrong with one database's rows: counters against the docs table, update_seq
        against the highest seq, seqs unique, winners and deleted flags against the trees,
        every leaf with a body, body_bytes against the stored bodies, and integrity_check."""
        problems: list[str] = []
        db = self.db_row(name)
        if db is None:
            return [f"database {name} is missing"]
        docs = self.docs(db["id"])
        bodies = self.bodies(db["id"])
        live = sum(1 for d in docs.values() if not d["deleted"])
        dead = len(docs) - live
        if (db["doc_count"], db["doc_del_count"]) != (live, dead):
            problems.append(f"counters {db['doc_count']}/{db['doc_del_count']} but docs table "
                            f"has {live} live / {dead} deleted")
        seqs = [d["seq"] for d in docs.values()]
        if len(set(seqs)) != len(seqs):
            problems.append("two documents share a seq")
        if seqs and max(seqs) != db["update_seq"]:
            problems.append(f"update_seq {db['update_seq']} but highest doc seq {max(seqs)}")
        if not seqs and db["update_seq"] != 0 and db["purge_seq"] == 0:
            problems.append(f"update_seq {db['update_seq']} with no documents")
        for doc_id, doc in docs.items():
            tree = {rev: (node[0], bool(node[1])) for rev, node in doc["tree"].items()}
            leaves = revmodel.leaves(tree)
            if doc["winner"] != leaves[0]:
                problems.append(f"{doc_id}: winner {doc['winner']} but tree says {leaves[0]}")
            if doc["deleted"] != all(tree[leaf][1] for leaf in leaves):
                problems.append(f"{doc_id}: deleted flag {doc['deleted']} disagrees with leaves")
            for leaf in leaves:
                if (doc_id, leaf) not in bodies:
                    problems.append(f"{doc_id}: leaf {leaf} has no body (a partial write)")
        problems += self.blob_problems(db["id"])
        if db["body_bytes"] != self.packed_sizes(db["id"]):
            problems.append(f"body_bytes {db['body_bytes']} but bodies hold "
                            f"{self.packed_sizes(db['id'])}")
        check = self.integrity()
        if check != "ok":
            problems.append(f"integrity_check: {check}")
        return problems


# -- small numbers ----------------------------------------------------------------------------

def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of `values`; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(p / 100 * len(ordered))))
    return ordered[rank - 1]
