"""settee on the wire: `settee serve` and bare gunicorn, ids in headers, no lost update.

The tests start real gunicorn processes on loopback ports (see `live.py`); the in-process tests of
the command line are in `test_cli.py`.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import live
import pytest
import requests
from live import LiveServer

BACKENDS = ["sqlite", "postgres"]
REFUSAL = "refusing to bind {host} without an admin password (SETTEE_ADMIN_PASSWORD)"


@pytest.fixture(scope="module", params=BACKENDS)
def live_server(request: pytest.FixtureRequest,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """`settee serve` with 2 gthread workers x 8 threads, on SQLite or a fresh PostgreSQL db."""
    workdir = tmp_path_factory.mktemp(f"live-{request.param}")
    admin, pg_name, database_url = None, "", None
    if request.param == "postgres":
        admin = request.getfixturevalue("pg_admin")
        pg_name = "settee_live_" + uuid.uuid4().hex[:12]
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{pg_name}"')
        database_url = admin.url.set(database=pg_name).render_as_string(hide_password=False)
    server = LiveServer.settee(workdir, database_url=database_url, workers=2, threads=8)
    try:
        server.start()
        try:
            yield server
        finally:
            status = server.stop()
        assert status == 0, server.stderr()  # a clean shutdown on SIGTERM
        # settee logs every unhandled error (a 500) with its traceback
        assert "Traceback" not in server.stderr(), server.stderr()
    finally:
        if admin is not None:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


def new_db(server: LiveServer) -> str:
    name = "db_" + uuid.uuid4().hex[:10]
    reply = server.request("PUT", f"/{name}")
    assert reply.status == 201, reply.body
    return name


def check_basic_api(server: LiveServer) -> None:
    welcome = server.request("GET", "/")
    assert welcome.status == 200
    assert welcome.headers["Content-Type"] == "application/json"
    assert welcome.json()["couchdb"] == "Welcome"
    db = new_db(server)
    put = server.request("PUT", f"/{db}/doc1", '{"n": 1}')
    assert put.status == 201, put.body
    rev = put.json()["rev"]
    assert put.headers["ETag"] == f'"{rev}"'
    got = server.request("GET", f"/{db}/doc1")
    assert got.status == 200
    assert got.json() == {"_id": "doc1", "_rev": rev, "n": 1}


# -- starting the server ---------------------------------------------------------------------

@pytest.mark.live
def test_settee_serve_answers_the_basic_api(live_server: LiveServer) -> None:
    check_basic_api(live_server)
    assert "Using worker: settee.server.worker.SetteeWorker" in live_server.stderr()
    if not os.path.isdir("/proc"):
        return
    deadline = time.monotonic() + 10  # /_up answers as soon as the first worker has booted
    while len(live_server.worker_pids()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(live_server.worker_pids()) == 2
    # The master never opens the store: engines are built in the workers, after fork.
    assert not [f for f in live_server.open_files(live_server.pid) if "settee.sqlite" in f]
    if "--data-dir" in live_server.argv_for("-"):  # and the workers that served do
        assert any("settee.sqlite" in f for worker in live_server.worker_pids()
                   for f in live_server.open_files(worker))


@pytest.mark.live
def test_bare_gunicorn_builds_the_app_from_the_environment(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    # --no-control-socket: gunicorn >= 25 shares one control socket path per user between
    # every instance on the machine; it is not part of what this test checks.
    with LiveServer.gunicorn(tmp_path, args=["--no-control-socket"],
                             env={"SETTEE_DATA_DIR": str(data_dir)}) as server:
        check_basic_api(server)
    assert (data_dir / "settee.sqlite").is_file()
    assert "Traceback" not in server.stderr()


def run_cli(args: list[str], env: dict[str, str], timeout: float = 30.0
            ) -> subprocess.CompletedProcess[str]:
    """`python -m settee.server.cli ARGS` to completion; a server that starts instead is killed."""
    proc = subprocess.Popen([sys.executable, "-m", "settee.server.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"settee did not exit within {timeout} s (it started?)\n{err}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.live
def test_public_bind_without_admin_password_is_refused(tmp_path: Path) -> None:
    result = run_cli(["serve", "--bind", f"0.0.0.0:{live.free_port()}",
                      "--data-dir", str(tmp_path / "data")], live.server_environ())
    assert result.returncode == 2
    assert REFUSAL.format(host="0.0.0.0") in result.stderr
    assert not (tmp_path / "data").exists()  # refused before anything was opened


# -- ids in URLs and headers, through gunicorn -----------------------------------------------

@pytest.mark.live
def test_unicode_ids_are_distinct_and_location_is_percent_encoded(
        live_server: LiveServer) -> None:
    db = new_db(live_server)
    for raw, decoded in (("caf%C3%A9", "caf\u00e9"), ("cafe%CC%81", "cafe\u0301")):
        reply = live_server.request("PUT", f"/{db}/{raw}", f'{{"form": "{raw}"}}')
        assert reply.status == 201, (reply.status, reply.body)
        assert reply.json()["id"] == decoded
        assert reply.headers["Location"] == f"{live_server.url}/{db}/{raw}"
    nfc = live_server.request("GET", f"/{db}/caf%C3%A9").json()
    nfd = live_server.request("GET", f"/{db}/cafe%CC%81").json()
    assert (nfc["_id"], nfc["form"]) == ("caf\u00e9", "caf%C3%A9")
    assert (nfd["_id"], nfd["form"]) == ("cafe\u0301", "cafe%CC%81")
    assert live_server.request("GET", f"/{db}").json()["doc_count"] == 2
    copied = live_server.request("COPY", f"/{db}/caf%C3%A9",
                                 headers={"Destination": "%E2%98%83"})
    assert copied.status == 201, copied.body
    assert copied.json()["id"] == "\u2603"
    assert copied.headers["Location"] == f"{live_server.url}/{db}/%E2%98%83"


@pytest.mark.live
def test_crlf_in_an_id_injects_no_header(live_server: LiveServer) -> None:
    db = new_db(live_server)
    raw = "x%0D%0ASet-Cookie:%20x=1"
    put = live_server.request("PUT", f"/{db}/{raw}", "{}")
    assert put.status < 500, put.body
    assert put.headers.get_all("Set-Cookie") is None
    if put.status == 201:
        assert put.headers["Location"] == f"{live_server.url}/{db}/x%0D%0ASet-Cookie%3A%20x%3D1"
        got = live_server.request("GET", f"/{db}/{raw}")
        assert got.status == 200
        assert got.json()["_id"] == "x\r\nSet-Cookie: x=1"
        assert got.headers.get_all("Set-Cookie") is None
    else:
        assert put.json()["error"] in ("bad_request", "illegal_docid")


@pytest.mark.live
def test_encoded_slash_is_part_of_the_id(live_server: LiveServer) -> None:
    db = new_db(live_server)
    put = live_server.request("PUT", f"/{db}/a%2Fb", '{"slash": true}')
    assert put.status == 201, put.body
    assert put.headers["Location"] == f"{live_server.url}/{db}/a%2Fb"
    got = live_server.request("GET", f"/{db}/a%2Fb")
    assert got.status == 200
    assert got.json()["_id"] == "a/b"


@pytest.mark.live
@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_invalid_utf8_in_the_path_is_a_400(live_server: LiveServer, method: str) -> None:
    db = new_db(live_server)
    reply = live_server.request(method, f"/{db}/%FF", "{}" if method == "PUT" else None)
    assert reply.status == 400
    assert reply.headers["Content-Type"] == "application/json"
    assert set(reply.json()) == {"error", "reason"}


# -- no lost update ----------------------------------------------------------------------------

THREADS = 8
UPDATES_PER_THREAD = 200
DOCS = 5
TIME_LIMIT = 20.0  # seconds of updates per backend; the invariants hold for any number done
MIN_UPDATES = 200  # fewer than this in TIME_LIMIT would make the test say little


@dataclass
class Tally:
    """What the clients saw: per document, the revs and counters of each 201."""

    revs: dict[str, list[str]] = field(default_factory=dict)
    counters: dict[str, list[int]] = field(default_factory=dict)
    conflicts: int = 0
    unexpected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def success(self, doc: str, rev: str, counter: int) -> None:
        with self.lock:
            self.revs.setdefault(doc, []).append(rev)
            self.counters.setdefault(doc, []).append(counter)


def _updater(url: str, db: str, ids: list[str], offset: int, deadline: float,
             tally: Tally) -> None:
    with requests.Session() as session:  # one keep-alive connection per thread
        for n in range(UPDATES_PER_THREAD):
            doc = ids[(offset + n) % len(ids)]
            while time.monotonic() < deadline:
                got = session.get(f"{url}/{db}/{doc}", timeout=10)
                if got.status_code != 200:
                    tally.unexpected.append(f"GET {doc}: {got.status_code} {got.text}")
                    return
                body = got.json()
                body["counter"] += 1
                put = session.put(f"{url}/{db}/{doc}", json=body, timeout=10)
                if put.status_code == 201:
                    tally.success(doc, put.json()["rev"], body["counter"])
                    break
                if put.status_code != 409:  # any other answer leaves the outcome unknown
                    tally.unexpected.append(f"PUT {doc}: {put.status_code} {put.text}")
                    return
                with tally.lock:
                    tally.conflicts += 1
            else:
                return


@pytest.mark.live
def test_no_lost_update_under_concurrent_writers(live_server: LiveServer,
                                                request: pytest.FixtureRequest) -> None:
    db = new_db(live_server)
    ids = [f"doc{i}" for i in range(DOCS)]
    for doc in ids:
        assert live_server.request("PUT", f"/{db}/{doc}", '{"counter": 0}').status == 201
    tally = Tally()
    started = time.monotonic()
    deadline = started + TIME_LIMIT
    threads = [threading.Thread(target=_updater,
                                args=(live_server.url, db, ids, i, deadline, tally))
               for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIME_LIMIT + 30)
    elapsed = time.monotonic() - started
    assert not any(thread.is_alive() for thread in threads), "an updater hung"
    assert tally.unexpected == []

    total = sum(len(revs) for revs in tally.revs.values())
    backend = request.node.callspec.params["live_server"]
    print(f"\nno lost update on {backend}: {total} updates ({tally.conflicts} conflicts retried) "
          f"by {THREADS} threads on {DOCS} docs in {elapsed:.1f} s")
    assert total >= MIN_UPDATES
    for doc in ids:
        reply = live_server.request("GET", f"/{db}/{doc}?revs=true&conflicts=true")
        assert reply.status == 200
        final = reply.json()
        successes = len(tally.revs.get(doc, []))
        history = final["_revisions"]
        start, hashes = history["start"], history["ids"]
        in_history = {f"{start - i}-{h}" for i, h in enumerate(hashes)}
        assert start == 1 + successes, doc
        assert len(hashes) == start, doc  # the whole history, nothing stemmed
        assert set(tally.revs.get(doc, [])) <= in_history, doc
        assert final["counter"] == successes, doc
        # two 201s from the same parent would have returned the same counter
        assert sorted(tally.counters.get(doc, [])) == list(range(1, successes + 1)), doc
        assert "_conflicts" not in final, doc


def test_an_idle_keep_alive_connection_outlasts_a_clients_reuse_window(
        live_server: LiveServer) -> None:
    """The server keeps an idle keep-alive connection open longer than clients reuse one
    (node's fetch: 4 s), so a request sent on it is never met by the server closing it (a
    flaky `fetch failed` from nano under load, when gunicorn's 2 s applied)."""
    conn = http.client.HTTPConnection("127.0.0.1", live_server.port, timeout=10)
    try:
        for pause in (0.0, 4.2):
            time.sleep(pause)
            conn.request("GET", "/_up")
            answer = conn.getresponse()
            answer.read()
            assert answer.status == 200
    finally:
        conn.close()
