"""settee.client change streams against a live settee: events, head-of-feed, tokens and restarts.

On SQLite and PostgreSQL. The restart test stops a server of its own and starts it again on the
same port and data, while one stream is in the middle of following it.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from live import LiveServer, free_port
from settee.client import ChangeStream, Database, Server, TransportError
from test_client import BACKENDS, need, settee_server

pytestmark = pytest.mark.live


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def live(request: pytest.FixtureRequest, backend: str,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with settee_server(request, tmp_path_factory.mktemp(f"client-stream-{backend}"),
                       backend) as server:
        yield server


@pytest.fixture
def db(live: LiveServer) -> Database:
    need(live, "changes")
    return Server(live.url).create("s_" + uuid.uuid4().hex[:10])


def take(stream: ChangeStream, count: int, within: float = 15.0) -> list[dict[str, Any]]:
    """The next `count` events, skipping `None`s; fails after `within` seconds."""
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + within
    while len(events) < count:
        assert time.monotonic() < deadline, f"only {len(events)} of {count} events"
        event = next(stream)
        if event is not None:
            events.append(event)
    return events


def drain(stream: ChangeStream) -> list[dict[str, Any]]:
    """Events up to the head of the feed (the first `None`)."""
    events = []
    while (event := next(stream)) is not None:
        events.append(event)
    return events


def test_insert_modify_delete_with_documents_and_previous_bodies(db: Database) -> None:
    stream = db.stream("latest", include_docs=True, include_previous=True, poll_timeout=2.0)
    assert next(stream) is None  # nothing after "latest" yet: the head
    doc: dict[str, Any] = {"n": 1}
    db["a"] = doc
    (insert,) = take(stream, 1)
    assert insert["type"] == "INSERT" and insert["id"] == "a" and insert["old"] is None
    assert insert["new"] == {"_id": "a", "_rev": doc["_rev"], "n": 1}
    assert insert["rev"] == doc["_rev"]
    first = dict(doc)
    doc["n"] = 2
    db["a"] = doc
    (modify,) = take(stream, 1)
    assert modify["type"] == "MODIFY" and modify["old"] == first and modify["new"]["n"] == 2
    assert modify["seq"] != insert["seq"]
    del db["a"]
    (delete,) = take(stream, 1)
    assert delete["type"] == "DELETE" and delete["new"] is None and delete["old"] == doc
    db["a"] = {"n": 3}
    (again,) = take(stream, 1)
    assert again["type"] == "INSERT" and again["old"] is None and again["new"]["n"] == 3


def test_without_previous_bodies_the_rev_tells_insert_from_modify(db: Database) -> None:
    db["x"] = {"v": 1}
    db.update("x", lambda d: d.update(v=2))
    db["y"] = {"v": 1}
    del db["y"]
    db["z"] = {"v": 1}
    events = drain(db.stream("trim_horizon"))
    assert [(e["id"], e["type"]) for e in events] == [("x", "MODIFY"), ("y", "DELETE"),
                                                       ("z", "INSERT")]
    assert all(e["new"] is None and e["old"] is None for e in events)
    seqs = [e["seq"] for e in events]
    assert len(set(map(json.dumps, seqs))) == 3


def test_the_head_is_reported_and_a_wait_is_bounded(db: Database) -> None:
    stream = db.stream("trim_horizon", poll_timeout=0.6)
    assert next(stream) is None  # empty database: at the head at once
    started = time.monotonic()
    assert next(stream) is None  # a wait with nothing to deliver
    waited = time.monotonic() - started
    assert 0.5 < waited < 3.0, waited
    writer = threading.Timer(0.3, lambda: db.save({"late": True}))
    writer.start()
    started = time.monotonic()
    (event,) = take(stream, 1, within=5.0)
    assert event["type"] == "INSERT" and time.monotonic() - started < 2.0
    assert next(stream) is None  # delivered that, back at the head
    writer.join()


def test_a_token_resumes_exactly_after_the_last_event(db: Database) -> None:
    with db.batch() as batch:
        for i in range(50):
            batch.put({"_id": f"d{i:02d}"})
    first = db.stream("trim_horizon", batch_size=7)
    seen = [e["id"] for e in take(first, 20)]
    token = json.loads(json.dumps(first.token))  # a token survives being saved as JSON
    second = db.stream(token, batch_size=7)
    rest = [e["id"] for e in drain(second)]
    assert seen + rest == [f"d{i:02d}" for i in range(50)]
    with db.batch() as batch:
        for i in range(50, 55):
            batch.put({"_id": f"d{i:02d}"})
    third = db.stream(second.token)
    assert [e["id"] for e in drain(third)] == [f"d{i:02d}" for i in range(50, 55)]
    assert drain(db.stream(third.token)) == []


def test_latest_starts_after_everything_already_written(db: Database) -> None:
    db["old"] = {}
    stream = db.stream("latest")
    db["new"] = {}
    assert [e["id"] for e in take(stream, 1)] == ["new"]


def test_tokens_and_since_values_are_checked(db: Database) -> None:
    with pytest.raises(ValueError, match="token of database"):
        db.stream({"db": "other", "since": 3})
    with pytest.raises(ValueError):
        db.stream(since=1.5)
    db["a"] = {}
    assert [e["id"] for e in drain(db.stream(0))] == ["a"]


def test_concurrent_writers_are_delivered_exactly_once_in_seq_order(db: Database) -> None:
    stream = db.stream("latest", batch_size=10, poll_timeout=1.0)
    url = db.transport.url

    def write(prefix: str) -> None:
        target = Server(url).database(db.name)
        for i in range(30):
            target[f"{prefix}{i:02d}"] = {"i": i}
    writers = [threading.Thread(target=write, args=(p,)) for p in "abc"]
    for t in writers:
        t.start()
    events = take(stream, 90, within=60.0)
    for t in writers:
        t.join()
    ids = [e["id"] for e in events]
    assert len(ids) == len(set(ids)) == 90
    seqs = [e["seq"] for e in events]
    if all(isinstance(s, int) for s in seqs):
        assert seqs == sorted(seqs)


def test_a_stream_survives_a_server_restart(request: pytest.FixtureRequest, backend: str,
                                            tmp_path_factory: pytest.TempPathFactory) -> None:
    workdir = tmp_path_factory.mktemp(f"client-restart-{backend}")
    with settee_server(request, workdir, backend) as live:
        need(live, "changes")
        db = Server(live.url, timeout=5.0).create("restart")
        for i in range(10):
            db[f"before{i}"] = {}
        stream = db.stream("trim_horizon", batch_size=4, poll_timeout=0.5, max_backoff=0.5)
        assert len(take(stream, 8)) == 8  # two whole pages: nothing left in memory
        saved = stream.token
        live.stop()
        assert next(stream) is None  # the server is gone: nothing to deliver, no error
        live._spawn()  # the same port and data (LiveServer.start would choose a new port)
        live._wait_up(20.0)
        for i in range(5):
            db[f"after{i}"] = {}
        rest = [e["id"] for e in take(stream, 7, within=30.0)]
        assert rest == ["before8", "before9"] + [f"after{i}" for i in range(5)]
        assert next(stream) is None
        resumed = Server(live.url).database("restart").stream(saved)
        assert [e["id"] for e in drain(resumed)] == rest


def test_a_stream_that_never_reconnects_gives_up() -> None:
    nowhere = Server(f"http://127.0.0.1:{free_port()}", retries=0).database("gone")
    stream = nowhere.stream("trim_horizon", max_backoff=0.05, give_up_after=0.3)
    with pytest.raises(TransportError):
        for _ in range(1000):
            assert next(stream) is None
