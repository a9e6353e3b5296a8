"""settee.client against a live settee: servers, databases, documents as a mapping, errors.

Every test talks HTTP to a real `settee serve` (SQLite, and PostgreSQL when it answers), started
once per module. The helpers at the top are shared with the other `test_client_*` modules:
`settee_server` starts a server, `need` skips a test while the server lacks a feature that is
still being built (probed once per session).
"""

from __future__ import annotations

import ast
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from live import LiveServer
from settee.client import (
    BadRequest,
    Conflict,
    CouchError,
    Database,
    Forbidden,
    NotFound,
    PreconditionFailed,
    Server,
    ServerError,
    TransportError,
    Unauthorized,
)
from settee.client.errors import error_for, item_error
from settee.client.transport import encode_params

pytestmark = pytest.mark.live
BACKENDS = ["sqlite", "postgres"]

# -- shared helpers -----------------------------------------------------------------------------


@contextmanager
def settee_server(request: pytest.FixtureRequest, workdir: Path, backend: str,
                  **options: Any) -> Iterator[LiveServer]:
    """A running `settee serve` on `backend` (a fresh PostgreSQL database when postgres)."""
    admin, pg_name, database_url = None, "", None
    if backend == "postgres":
        admin = request.getfixturevalue("pg_admin")
        pg_name = "settee_client_" + uuid.uuid4().hex[:12]
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{pg_name}"')
        database_url = admin.url.set(database=pg_name).render_as_string(hide_password=False)
    server = LiveServer.settee(workdir, database_url=database_url, **options)
    try:
        server.start()
        try:
            yield server
        finally:
            server.stop()
        assert "Traceback" not in server.stderr(), server.stderr()
    finally:
        if admin is not None:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


_MISSING: dict[str, str | None] = {}  # feature -> why it is missing (None: present)


def _probe(live: LiveServer, feature: str) -> str | None:
    db = "probe_" + uuid.uuid4().hex[:8]
    live.request("PUT", f"/{db}")
    try:
        if feature == "changes":
            reply = live.request("GET", f"/{db}/_changes")
        elif feature == "views":
            live.request("PUT", f"/{db}/_design/p",
                         '{"views": {"v": {"map": "function(doc) { emit(1, 1); }"}}}')
            reply = live.request("GET", f"/{db}/_design/p/_view/v")
        elif feature == "attachments":
            reply = live.request("PUT", f"/{db}/d/a.txt", b"x",
                                 headers={"Content-Type": "text/plain"})
            if reply.status != 201:
                return f"PUT /{{db}}/{{doc}}/{{att}} answers {reply.status}: {reply.body!r}"
            return None
        elif feature == "find":
            reply = live.request("POST", f"/{db}/_find", '{"selector": {}}')
            if reply.status != 200:
                return f"POST /{{db}}/_find answers {reply.status}: {reply.body!r}"
            return None
        else:
            raise ValueError(feature)
        return f"the server answers 501 ({reply.body!r})" if reply.status == 501 else None
    finally:
        live.request("DELETE", f"/{db}")


def missing(live: LiveServer, feature: str) -> str | None:
    """Why the server lacks `feature`, or None when it has it (probed once per session)."""
    if feature not in _MISSING:
        _MISSING[feature] = _probe(live, feature)
    return _MISSING[feature]


def need(live: LiveServer, feature: str) -> None:
    """Skip the calling test while the server lacks `feature`."""
    why = missing(live, feature)
    if why is not None:
        pytest.skip(f"{feature}: {why}")


def new_name() -> str:
    return "c_" + uuid.uuid4().hex[:10]


def counting(server: Server) -> list[str]:
    """Record `METHOD /path?query` of every request `server` sends from now on."""
    sent: list[str] = []
    transport = server.transport
    original = transport.request

    def request(method: str, path: str, **kwargs: Any) -> Any:
        sent.append(f"{method} {path}?{encode_params(kwargs.get('params') or {})}")
        return original(method, path, **kwargs)
    transport.request = request  # type: ignore[method-assign]
    return sent


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=BACKENDS)
def live(request: pytest.FixtureRequest,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with settee_server(request, tmp_path_factory.mktemp(f"client-{request.param}"),
                       request.param) as server:
        yield server


@pytest.fixture
def server(live: LiveServer) -> Iterator[Server]:
    with Server(live.url, timeout=10.0) as client:
        yield client


@pytest.fixture
def db(server: Server) -> Database:
    return server.create(new_name())


# -- the server and its databases ---------------------------------------------------------------


def test_server_info_up_and_uuids(server: Server) -> None:
    assert server.info()["couchdb"] == "Welcome"
    assert server.up()
    ids = server.uuids(3)
    assert len(ids) == 3 and len(set(ids)) == 3


def test_databases_create_find_and_delete(server: Server) -> None:
    name = new_name()
    assert name not in server
    with pytest.raises(KeyError):
        server[name]
    db = server.create(name)
    assert name in server and name in server.all_dbs() and name in list(server)
    assert server[name].name == name and db.exists()
    with pytest.raises(PreconditionFailed) as exc:
        server.create(name)
    assert exc.value.status == 412 and exc.value.error == "file_exists"
    assert server.create(name, exist_ok=True).name == name
    del server[name]
    assert name not in server and not db.exists()
    with pytest.raises(NotFound):
        server.delete(name)
    lazy = server.database(name)
    assert lazy.create() is lazy and lazy.exists()


def test_database_names_with_reserved_characters(server: Server) -> None:
    name = f"a/b$c(d)+e-{uuid.uuid4().hex[:6]}"
    db = server.create(name)
    db["x"] = {"n": 1}
    assert server[name]["x"]["n"] == 1 and name in server.all_dbs()
    server.delete(name)


def test_missing_database_is_not_found(server: Server) -> None:
    db = server.database(new_name())
    with pytest.raises(NotFound) as exc:
        db.info()
    assert exc.value.reason == "Database does not exist."
    with pytest.raises(KeyError):
        db["anything"]


# -- documents as a mapping ---------------------------------------------------------------------


def test_set_get_update_and_delete(db: Database) -> None:
    doc: dict[str, Any] = {"n": 1}
    db["a"] = doc
    assert doc["_id"] == "a" and doc["_rev"].startswith("1-")
    assert db["a"] == {"_id": "a", "_rev": doc["_rev"], "n": 1}
    doc["n"] = 2
    db["a"] = doc
    assert doc["_rev"].startswith("2-") and db["a"]["n"] == 2
    assert "a" in db and "b" not in db and 5 not in db
    assert len(db) == 1 and list(db) == ["a"]
    assert db.get("b") is None and db.get("b", 42) == 42 and db.get("a")["n"] == 2
    assert db.rev("a") == doc["_rev"]
    del db["a"]
    assert "a" not in db and len(db) == 0 and db.rev("a") is None
    with pytest.raises(KeyError) as exc:
        db["a"]
    assert isinstance(exc.value, NotFound) and exc.value.reason == "deleted"
    with pytest.raises(NotFound):
        del db["a"]
    db["a"] = {"back": True}  # re-creating a deleted document needs no rev
    assert db["a"]["back"] is True


def test_stale_rev_raises_conflict_with_the_current_rev(db: Database) -> None:
    first: dict[str, Any] = {"n": 1}
    db["d"] = first
    stale = dict(first)
    first["n"] = 2
    db["d"] = first
    with pytest.raises(Conflict) as exc:
        db["d"] = stale
    assert exc.value.status == 409 and exc.value.current_rev == first["_rev"]
    with pytest.raises(Conflict) as exc:
        db["d"] = {"no": "rev"}
    assert exc.value.current_rev == first["_rev"]
    with pytest.raises(Conflict) as exc:
        db.delete("d", stale["_rev"])
    assert exc.value.current_rev == first["_rev"]


def test_get_with_parameters_and_old_revs(db: Database) -> None:
    doc: dict[str, Any] = {"v": 1}
    db["r"] = doc
    first = doc["_rev"]
    doc["v"] = 2
    db["r"] = doc
    assert db.get("r", rev=first)["v"] == 1
    assert db.get("r", revs=True)["_revisions"]["start"] == 2
    assert [leaf["ok"]["v"] for leaf in db.get("r", open_revs="all")] == [2]


def test_ids_are_encoded_on_the_wire(db: Database) -> None:
    ids = ["a/b", "sp ace", "q?x=1&y#z", "é ü 日本", "plus+sign", "%2F", "_design/x/y",
           "_local/l/1"]
    for docid in ids:
        db[docid] = {"id": docid}
    for docid in ids:
        assert db[docid]["id"] == docid and docid in db
    assert set(db) == {d for d in ids if not d.startswith("_local/")}
    for docid in ids:
        if not docid.startswith("_local/"):
            del db[docid]
    assert len(db) == 0


def test_save_with_and_without_an_id(db: Database) -> None:
    doc: dict[str, Any] = {"k": 1}
    docid, rev = db.save(doc)
    assert doc["_id"] == docid and doc["_rev"] == rev and db[docid]["k"] == 1
    named: dict[str, Any] = {"_id": "named"}
    assert db.save(named)[0] == "named"
    named["x"] = 1
    db.save(named)
    assert db["named"]["x"] == 1


def test_iteration_pages_all_docs_with_startkey_never_skip(server: Server, db: Database) -> None:
    ids = sorted(f"k{i:03d}" for i in range(23))
    with db.batch() as batch:
        for docid in ids:
            batch.put({"_id": docid})
    sent = counting(server)
    rows = list(db.all_docs(page_size=4))
    assert [r["id"] for r in rows] == ids
    pages = [s for s in sent if "_all_docs" in s]
    assert len(pages) == 6 and not any("skip" in s for s in pages)  # 23 rows, 4 + 5 * 4
    assert pages[1].endswith("?limit=5&startkey=%22k003%22")  # from the last row delivered
    assert list(db) == ids and len(db) == 23
    assert [r["id"] for r in db.all_docs(startkey="k005", endkey="k009", page_size=2)] == \
        ids[5:10]
    assert [r["id"] for r in db.all_docs(descending=True, limit=5, page_size=2)] == \
        ids[::-1][:5]
    docs = list(db.all_docs(include_docs=True, keys=["k001", "nope", "k002"], page_size=2))
    assert [r.get("id") for r in docs] == ["k001", None, "k002"]
    assert docs[1]["error"] == "not_found"
    with pytest.raises(ValueError, match="skip"):
        db.all_docs(skip=3)


def test_update_retries_concurrent_increments(server: Server, db: Database) -> None:
    db["counter"] = {"n": 0}
    threads, per_thread = 4, 15

    def work() -> None:
        client = Server(server.url)
        for _ in range(per_thread):
            client.database(db.name).update("counter", lambda d: d.update(n=d["n"] + 1),
                                            retries=100)
    workers = [threading.Thread(target=work) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert db["counter"]["n"] == threads * per_thread


def test_update_gives_up_after_its_retries(server: Server, db: Database) -> None:
    db["hot"] = {"n": 0}
    other = Server(server.url).database(db.name)
    calls = []

    def meddle(doc: dict[str, Any]) -> None:  # someone else writes between read and write
        calls.append(1)
        other.update("hot", lambda d: d.update(n=d["n"] + 100))
        doc["n"] += 1
    with pytest.raises(Conflict):
        db.update("hot", meddle, retries=3)
    assert len(calls) == 4 and db["hot"]["n"] == 400


def test_update_returns_the_written_document_and_can_create(db: Database) -> None:
    with pytest.raises(NotFound):
        db.update("new", lambda d: None)
    made = db.update("new", lambda d: d.update(n=1), default={"n": 0, "tags": []})
    assert made["n"] == 1 and made["_rev"] == db.rev("new")
    again = db.update("new", lambda d: {**d, "n": d["n"] + 1})
    assert again["n"] == 2 and db["new"]["n"] == 2


# -- errors -------------------------------------------------------------------------------------


def test_error_answers_map_to_the_hierarchy(db: Database) -> None:
    with pytest.raises(BadRequest) as bad:
        db["x"] = {"_bad_member": 1}
    assert bad.value.status == 400 and bad.value.error == "doc_validation"
    with pytest.raises(BadRequest) as illegal:
        db["_illegal"] = {}
    assert illegal.value.error == "illegal_docid"
    assert "PUT" in str(illegal.value) and "illegal_docid" in str(illegal.value)
    with pytest.raises(CouchError) as unsupported:
        db.transport.request("GET", f"{db.path}/_bulk_docs")
    assert unsupported.value.status == 405


def test_error_table_covers_every_family() -> None:
    cases = {401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict, 400: BadRequest,
             412: PreconditionFailed, 500: ServerError, 503: ServerError}
    for status, cls in cases.items():
        err = error_for(status, {"error": "e", "reason": "r"})
        assert type(err) is cls and (err.status, err.error, err.reason) == (status, "e", "r")
    assert type(error_for(409, {"error": "not_found", "reason": "missing_rev"})) is Conflict
    assert type(error_for(418, None)) is CouchError
    assert isinstance(error_for(404, None), KeyError)
    assert type(item_error({"id": "a", "error": "forbidden", "reason": "no"})) is Forbidden
    assert type(item_error({"id": "a", "error": "unauthorized", "reason": "no"})) is Unauthorized


def test_a_closed_port_is_a_transport_error() -> None:
    import live
    with Server(f"http://127.0.0.1:{live.free_port()}", retries=0, timeout=2.0) as nowhere:
        with pytest.raises(TransportError):
            nowhere.info()
        assert not nowhere.up()


def test_connections_are_pooled_and_reused(server: Server, db: Database) -> None:
    for i in range(30):
        db[f"p{i}"] = {"i": i}
        assert db[f"p{i}"]["i"] == i
    pool = server.transport.pool.connection_from_url(server.url)
    assert pool.num_connections == 1  # 60 requests (and the fixture's), one connection


def test_url_credentials_become_basic_auth(live: LiveServer) -> None:
    client = Server(live.url.replace("http://", "http://admin:s%20cret@"))
    assert client.transport.headers["authorization"].startswith("Basic ")
    assert client.url == live.url and client.info()["couchdb"] == "Welcome"


# -- the package itself --------------------------------------------------------------------


def test_the_client_imports_no_server_code() -> None:
    """DESIGN.md section 2: the client speaks only HTTP and imports none of server/store/views."""
    folder = Path(__file__).resolve().parent.parent / "client"
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert node.level <= 1, f"{path.name} imports from outside the client"
                names = [node.module or ""] if node.level == 0 else []  # `.x`: the client's own
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in ("server", "store", "views"), (path.name, name)
                assert not name.startswith(("settee.server", "settee.store", "settee.views")), \
                    (path.name, name)


# -- the README's examples ------------------------------------------------------------------


def test_readme_examples_run(live: LiveServer, server: Server) -> None:
    """Every Python block of client/README.md, in order, as one script against this server."""
    need(live, "changes")
    need(live, "views")
    need(live, "attachments")
    for name in ("readme", "settings"):
        if name in server:
            server.delete(name)
    text = (Path(__file__).resolve().parent.parent / "client" / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    assert len(blocks) == 7
    namespace: dict[str, Any] = {"URL": live.url}
    for block in blocks:
        exec(compile(block, "client/README.md", "exec"), namespace)  # noqa: S102
