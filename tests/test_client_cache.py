"""settee.client `CachedDict` against a live settee: memory reads, sync from `_changes`, encodings,
and a cache that ends equal to the server's state under concurrent writers (SQLite, PostgreSQL)."""

from __future__ import annotations

import datetime
import random
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from live import LiveServer
from settee.client import (
    CachedDict,
    Conflict,
    Database,
    DocumentEncoding,
    JSONEncoding,
    NotFound,
    PickleEncoding,
    Server,
)
from settee.client.transport import Doc
from test_client import BACKENDS, counting, need, settee_server

pytestmark = pytest.mark.live


@pytest.fixture(scope="module", params=BACKENDS)
def live(request: pytest.FixtureRequest,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with settee_server(request, tmp_path_factory.mktemp(f"client-cache-{request.param}"),
                       request.param, workers=2, threads=8) as server:
        yield server


@pytest.fixture
def server(live: LiveServer) -> Server:
    need(live, "changes")
    return Server(live.url)


@pytest.fixture
def db(server: Server) -> Database:
    return server.create("k_" + uuid.uuid4().hex[:10])


def server_state(db: Database) -> dict[str, Any]:
    return {row["id"]: row["doc"]["value"] for row in db.all_docs(include_docs=True)
            if not row["id"].startswith("_design/")}


def test_loads_once_then_reads_from_memory(server: Server, db: Database) -> None:
    for i in range(5):
        db[f"k{i}"] = {"value": {"i": i}}
    db["_design/x"] = {"views": {}}
    cache = CachedDict(db, autosync=False)
    sent = counting(server)
    assert len(cache) == 5 and "k3" in cache and "_design/x" not in cache
    assert cache["k3"] == {"i": 3} and cache.get("nope") is None
    assert dict(cache) == {f"k{i}": {"i": i} for i in range(5)}
    cache["k3"]["i"] = 99  # what a read returns is a copy
    assert cache["k3"] == {"i": 3}
    assert sent == []


def test_writes_go_to_the_server_then_to_memory(server: Server, db: Database) -> None:
    cache = CachedDict(db, autosync=False)
    value = [1, {"two": 2}]
    cache["a"] = value
    value.append(3)  # the cache kept its own copy
    assert db["a"]["value"] == [1, {"two": 2}] and cache["a"] == [1, {"two": 2}]
    assert cache.rev("a") == db.rev("a")
    cache["a"] = "replaced"
    assert db["a"]["value"] == "replaced"
    sent = counting(server)
    del cache["a"]
    assert [s.split("?")[0].split()[0] for s in sent] == ["DELETE"]
    assert "a" not in cache and "a" not in db
    with pytest.raises(KeyError):
        del cache["a"]
    with pytest.raises(KeyError):
        cache["_design/no"] = 1


def test_sync_reads_only_changes_after_its_seq(server: Server, db: Database) -> None:
    db["a"] = {"value": 1}
    cache = CachedDict(db, autosync=False, batch_size=3)
    seq = cache.seq
    for i in range(8):
        db[f"n{i}"] = {"value": i}
    db.update("a", lambda d: d.update(value=2))
    del db["n0"]
    assert "n1" not in cache  # not synced yet
    sent = counting(server)
    assert cache.sync() == 9  # a, n0 (deleted) and n1..n7, each once at its latest seq
    assert all("/_changes?" in s for s in sent) and len(sent) == 3  # pages of 3 (pending 0)
    assert f"since={seq}&" in sent[0]
    assert cache["a"] == 2 and "n0" not in cache and cache["n7"] == 7
    assert dict(cache) == server_state(db)
    sent.clear()
    assert cache.sync() == 0 and len(sent) == 1 and "since=0&" not in sent[0]


def test_autosync_after_the_interval_only(server: Server, db: Database) -> None:
    other = Server(server.url).database(db.name)
    auto = CachedDict(db, autosync=True, interval=0.3)
    manual = CachedDict(db, autosync=False)
    other["x"] = {"value": "new"}
    assert "x" not in auto and "x" not in manual  # the interval has not passed
    time.sleep(0.35)
    assert auto["x"] == "new" and "x" not in manual
    manual.sync()
    assert manual["x"] == "new"
    every = CachedDict(db, interval=0.0)
    other.update("x", lambda d: d.update(value="newer"))
    assert every["x"] == "newer"  # interval 0: every read syncs first


def test_assignment_wins_over_a_concurrent_write(server: Server, db: Database) -> None:
    cache = CachedDict(db, autosync=False)
    cache["k"] = 1
    Server(server.url).database(db.name).update("k", lambda d: d.update(value=2))
    cache["k"] = 3  # the cached rev is stale: retried on the current one
    assert db["k"]["value"] == 3 and cache["k"] == 3
    db.delete("k")
    cache["k"] = 4  # re-created after someone deleted it
    assert db["k"]["value"] == 4
    db.delete("k")
    cache["j"] = 0
    del cache["k"]  # already deleted by someone else: gone either way
    assert "k" not in cache


def test_pluggable_encodings(server: Server, db: Database) -> None:
    pickled = CachedDict(db, encoding=PickleEncoding(member="p"), autosync=False)
    when = datetime.datetime(2024, 5, 6, 7, 8, 9)
    pickled["obj"] = {("tuple", 1): {when}}
    assert isinstance(db["obj"]["p"], str)
    assert CachedDict(db, encoding=PickleEncoding(member="p"))["obj"] == {("tuple", 1): {when}}

    documents = CachedDict(db, encoding=DocumentEncoding(), autosync=False)
    documents["person"] = {"name": "Ada", "born": 1815, "_rev": "ignored"}
    assert db["person"]["name"] == "Ada" and "value" not in db["person"]
    assert documents["person"] == {"name": "Ada", "born": 1815}

    class Upper:
        """A custom encoding: strings stored upper-case under "text"."""

        def encode(self, value: Any) -> Doc:
            return {"text": str(value).upper()}

        def decode(self, body: Doc) -> Any:
            return body["text"].lower()
    custom = CachedDict(db, encoding=Upper(), autosync=False)
    custom["greeting"] = "hello"
    assert db["greeting"]["text"] == "HELLO" and custom["greeting"] == "hello"
    plain = CachedDict(db, encoding=JSONEncoding())
    with pytest.raises(ValueError, match="no 'value' member"):
        plain["greeting"]


def test_mapping_methods(db: Database) -> None:
    cache = CachedDict(db, autosync=False)
    cache.update({"a": 1, "b": 2})
    assert cache.setdefault("c", 3) == 3 and cache.pop("a") == 1
    assert sorted(cache.items()) == [("b", 2), ("c", 3)]
    cache.clear()
    assert len(cache) == 0 and server_state(db) == {}
    assert "keys at seq" in repr(cache)


def test_caches_equal_the_server_under_concurrent_writers(server: Server, db: Database) -> None:
    keys = [f"k{i}" for i in range(12)]
    shared = CachedDict(db, autosync=True, interval=0.05)
    stop = time.monotonic() + 3.0
    errors: list[BaseException] = []

    def through_cache(cache: CachedDict, seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < stop:
            key = rng.choice(keys)
            if rng.random() < 0.2:
                cache.pop(key, None)
            else:
                cache[key] = {"by": seed, "n": rng.random()}
            cache.get(rng.choice(keys))

    def through_http(seed: int) -> None:
        rng = random.Random(seed)
        other = Server(server.url).database(db.name)
        while time.monotonic() < stop:
            key = rng.choice(keys)
            if rng.random() < 0.2 and key in other:
                try:
                    other.delete(key)
                except (NotFound, Conflict):  # raced with another writer: fine
                    pass
            else:
                other.update(key, lambda d: d.update(value={"by": seed}), default={},
                             retries=1000)

    def guard(fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)
    own = CachedDict(Server(server.url).database(db.name), interval=0.0)
    threads = [threading.Thread(target=guard, args=(through_cache, shared, 1)),
               threading.Thread(target=guard, args=(through_cache, shared, 2)),
               threading.Thread(target=guard, args=(through_cache, own, 3)),
               threading.Thread(target=guard, args=(through_http, 4)),
               threading.Thread(target=guard, args=(through_http, 5))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    expected = server_state(db)
    assert expected  # the writers left something behind
    for cache in (shared, own):
        cache.sync()
        assert dict(cache) == expected
        assert {k: cache.rev(k) for k in cache} == {k: db.rev(k) for k in expected}
