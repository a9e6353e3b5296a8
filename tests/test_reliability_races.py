"""Concurrent writers on a live server: one winner per rev, no lost update (tests 10-12, 16)."""

# Also: creates of one new id that race, and a `_bulk_docs` racing single PUTs.
#
# Every test talks to a real `settee serve` with 4 gthread workers (so the racers really run in
# different processes), on SQLite and on PostgreSQL; the counter test also runs two app nodes on
# one PostgreSQL database.

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import reliability
from live import HOST, LiveServer
from reliability import BACKENDS, StoreView, figure, sized

pytest_plugins = ["reliability_report"]

pytestmark = pytest.mark.live

# (writers, rounds): a round of 512 writers takes ~1.5 s on SQLite and ~2 s on PostgreSQL here
# (512 connections, 4 workers x 4 threads), so it runs fewer rounds in CI; 100 of each in soak.
RACERS = [(8, sized(5, 100)), (64, sized(5, 100)), (512, sized(3, 100))]
COUNTER_CLIENTS = 8
INCREMENTS = sized(40, 500)  # per client
CREATE_RACERS = 64
CREATE_ROUNDS = sized(5, 50)
BULK_DOCS = 1000
CONTESTED_EVERY = 10
TIMEOUT = 60.0


class Server:
    """A live server with its backend name, store URL and a view of its tables."""

    def __init__(self, backend: str, live: LiveServer, url: str, view: StoreView) -> None:
        self.backend, self.live, self.url, self.view = backend, live, url, view

    def new_db(self) -> str:
        name = "race_" + uuid.uuid4().hex[:8]
        assert self.live.request("PUT", f"/{name}").status == 201
        return name

    def json(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        reply = self.live.request(method, path, None if body is None else json.dumps(body),
                                  headers={"Accept": "application/json"}, timeout=TIMEOUT)
        return reply.status, reply.json()

    def update_seq(self, db: str) -> int:
        return int(self.json("GET", f"/{db}")[1]["update_seq"])


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Server]:
    """`settee serve`, 4 workers x 4 threads, for the whole module."""
    workdir = tmp_path_factory.mktemp(f"races-{request.param}")
    with reliability.live_store(request.param, request, workdir, clean_exit=True) as live:
        yield Server(live.backend, live.server, live.url, live.view)


def race(port_for: Callable[[int], int], n: int, send: Callable[[http.client.HTTPConnection, int],
         None]) -> list[tuple[int, Any]]:
    """n threads, each with a connection opened beforehand, released at once by a barrier;
    each calls `send(conn, i)`; their (status, JSON body) in thread order."""
    conns = [http.client.HTTPConnection(HOST, port_for(i), timeout=TIMEOUT) for i in range(n)]
    for conn in conns:
        conn.connect()
    barrier = threading.Barrier(n)
    results: list[tuple[int, Any]] = [(0, None)] * n

    def run(i: int) -> None:
        try:
            barrier.wait()
            send(conns[i], i)
            reply = conns[i].getresponse()
            results[i] = (reply.status, json.loads(reply.read()))
        except Exception as exc:  # noqa: BLE001 - recorded, and fails the round
            results[i] = (-1, repr(exc))
        finally:
            conns[i].close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT * 2)
    assert not any(t.is_alive() for t in threads), "a racer hung"
    return results


def _put(path: str, body: dict[str, Any]) -> Callable[[http.client.HTTPConnection, int], None]:
    def send(conn: http.client.HTTPConnection, i: int) -> None:
        conn.request("PUT", path, json.dumps({**body, "racer": i}),
                     {"Content-Type": "application/json"})
    return send


# -- 10: one winner per parent rev ---------------------------------------------------------------

@pytest.mark.parametrize(("racers", "rounds"), RACERS, ids=[str(n) for n, _ in RACERS])
def test_same_rev_race(server: Server, racers: int, rounds: int) -> None:
    db = server.new_db()
    status, created = server.json("PUT", f"/{db}/contested", {"round": 0})
    assert status == 201
    parent = created["rev"]
    bad_rounds: list[str] = []
    for round_ in range(1, rounds + 1):
        seq_before = server.update_seq(db)
        results = race(lambda i: server.live.port, racers,
                       _put(f"/{db}/contested", {"_rev": parent, "round": round_}))
        statuses = sorted(s for s, _ in results)
        winners = [(i, body) for i, (s, body) in enumerate(results) if s == 201]
        if statuses != [201] + [409] * (racers - 1) or any(
                body.get("error") != "conflict" for s, body in results if s == 409):
            bad_rounds.append(f"round {round_}: statuses {statuses}")
            break
        racer, answer = winners[0]
        status, leaves = server.json("GET", f"/{db}/contested?open_revs=all")
        assert status == 200
        assert [leaf["ok"]["_rev"] for leaf in leaves] == [answer["rev"]], f"round {round_}"
        assert leaves[0]["ok"]["racer"] == racer and leaves[0]["ok"]["round"] == round_
        seq_after = server.update_seq(db)
        row = server.view.db_row(db)
        assert row is not None and seq_after == seq_before + 1, f"round {round_}: one seq"
        assert server.view.docs(row["id"])["contested"]["seq"] == seq_after
        parent = answer["rev"]
    figure(server.backend, "same-rev race rounds", rounds)
    figure(server.backend, "most concurrent same-rev writers", racers, mode="max")
    figure(server.backend, "same-rev rounds without exactly one winner", len(bad_rounds))
    assert bad_rounds == []


# -- 11: no lost update ----------------------------------------------------------------------------

def count_up(port: int, db: str, doc: str, times: int, errors: list[str]) -> int:
    """Increment the counter `times` times by GET then PUT, retrying on 409; the conflicts seen."""
    conflicts = 0
    conn = http.client.HTTPConnection(HOST, port, timeout=TIMEOUT)
    try:
        done = 0
        while done < times:
            conn.request("GET", f"/{db}/{doc}")
            reply = conn.getresponse()
            current = json.loads(reply.read())
            if reply.status != 200:
                errors.append(f"GET {reply.status} {current}")
                return conflicts
            current["count"] += 1
            conn.request("PUT", f"/{db}/{doc}", json.dumps(current),
                         {"Content-Type": "application/json"})
            reply = conn.getresponse()
            answer = json.loads(reply.read())
            if reply.status == 201:
                done += 1
            elif reply.status == 409:
                conflicts += 1
            else:
                errors.append(f"PUT {reply.status} {answer}")
                return conflicts
    finally:
        conn.close()
    return conflicts


def run_counter(server: Server, ports: list[int]) -> tuple[int, int, float]:
    """8 clients spread over `ports` increment one counter; (final count, revs, seconds)."""
    db = server.new_db()
    assert server.json("PUT", f"/{db}/counter", {"count": 0})[0] == 201
    errors: list[str] = []
    conflicts = [0] * COUNTER_CLIENTS

    def client(i: int) -> None:
        conflicts[i] = count_up(ports[i % len(ports)], db, "counter", INCREMENTS, errors)

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(COUNTER_CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(600)
    elapsed = time.monotonic() - started
    assert errors == []
    status, final = server.json("GET", f"/{db}/counter?revs=true&conflicts=true")
    assert status == 200
    assert "_conflicts" not in final
    history = final["_revisions"]
    assert len(history["ids"]) == history["start"], "the whole history, nothing stemmed"
    print(f"\n{server.backend} on {len(ports)} node(s): {final['count']} increments, "
          f"{sum(conflicts)} conflicts retried, {elapsed:.1f} s")
    return final["count"], history["start"], elapsed


def test_no_lost_update_counter(server: Server, tmp_path: Path) -> None:
    total = COUNTER_CLIENTS * INCREMENTS
    count, revs, _ = run_counter(server, [server.live.port])
    lost = total - count
    assert revs == total + 1
    if server.backend == "postgres":  # two app nodes on one PostgreSQL database
        second = LiveServer.settee(tmp_path, database_url=server.url, workers=2, threads=4)
        with second:
            count2, revs2, _ = run_counter(server, [server.live.port, second.port])
        assert "Traceback" not in second.stderr(), second.stderr()[-5000:]
        lost += total - count2
        assert revs2 == total + 1
        total *= 2
    figure(server.backend, "counter increments", total)
    figure(server.backend, "lost updates", lost)
    assert lost == 0


# -- 12: racing creates of one new id ------------------------------------------------------------

def test_create_same_id_race(server: Server) -> None:
    db = server.new_db()
    for round_ in range(CREATE_ROUNDS):
        doc = f"new-{round_}"
        seq_before = server.update_seq(db)

        def send(conn: http.client.HTTPConnection, i: int, doc: str = doc) -> None:
            body = {"racer": i}
            if i % 2:  # half create with POST /db and `_id`, half with PUT /db/id
                conn.request("POST", f"/{db}", json.dumps({"_id": doc, **body}),
                             {"Content-Type": "application/json"})
            else:
                conn.request("PUT", f"/{db}/{doc}", json.dumps(body),
                             {"Content-Type": "application/json"})

        results = race(lambda i: server.live.port, CREATE_RACERS, send)
        statuses = sorted(s for s, _ in results)
        assert statuses == [201] + [409] * (CREATE_RACERS - 1), f"round {round_}: {statuses}"
        assert all(body["error"] == "conflict" for s, body in results if s == 409)
        winner = next(i for i, (s, _) in enumerate(results) if s == 201)
        status, leaves = server.json("GET", f"/{db}/{doc}?open_revs=all")
        assert status == 200
        assert [leaf["ok"]["racer"] for leaf in leaves] == [winner]
        assert server.update_seq(db) == seq_before + 1


# -- 16: a _bulk_docs racing single updates --------------------------------------------------------

def test_bulk_docs_partial_conflicts(server: Server) -> None:
    db = server.new_db()
    docs = [{"_id": f"d{i:04d}", "v": 0} for i in range(BULK_DOCS)]
    status, rows = server.json("POST", f"/{db}/_bulk_docs", {"docs": docs})
    assert status == 201 and all(row["ok"] for row in rows)
    revs = {row["id"]: row["rev"] for row in rows}
    contested = [f"d{i:04d}" for i in range(0, BULK_DOCS, CONTESTED_EVERY)]
    seq_before = server.update_seq(db)
    update = [{"_id": d, "_rev": revs[d], "v": "bulk"} for d in sorted(revs)]
    racers = 1 + len(contested)

    def send(conn: http.client.HTTPConnection, i: int) -> None:
        if i == 0:
            conn.request("POST", f"/{db}/_bulk_docs", json.dumps({"docs": update}),
                         {"Content-Type": "application/json"})
        else:
            doc = contested[i - 1]
            conn.request("PUT", f"/{db}/{doc}", json.dumps({"_rev": revs[doc], "v": "single"}),
                         {"Content-Type": "application/json"})

    results = race(lambda i: server.live.port, racers, send)
    status, bulk_rows = results[0]
    assert status == 201, bulk_rows
    assert [row["id"] for row in bulk_rows] == sorted(revs)
    by_id = {row["id"]: row for row in bulk_rows}
    singles_won = 0
    for i, doc in enumerate(contested, start=1):
        single_status, answer = results[i]
        bulk_ok = by_id[doc].get("ok") is True
        assert single_status in (201, 409), answer
        assert (single_status == 201) != bulk_ok, f"{doc}: exactly one of the two writes wins"
        if not bulk_ok:
            assert by_id[doc]["error"] == "conflict"
        singles_won += single_status == 201
    assert all(by_id[d].get("ok") for d in revs if d not in contested)
    expected = {row["id"]: ("bulk", row["rev"]) for row in bulk_rows if row.get("ok")}
    expected.update({doc: ("single", results[i][1]["rev"])
                     for i, doc in enumerate(contested, start=1) if results[i][0] == 201})
    status, listing = server.json("POST", f"/{db}/_all_docs?include_docs=true&conflicts=true",
                                  {"keys": sorted(revs)})
    assert status == 200
    for row in listing["rows"]:
        value, rev = expected[row["id"]]
        assert (row["doc"]["v"], row["value"]["rev"]) == (value, rev), row["id"]
        assert "_conflicts" not in row["doc"]
    assert server.update_seq(db) == seq_before + BULK_DOCS
    assert server.view.invariant_problems(db) == []
    print(f"\n{server.backend}: the single PUTs won {singles_won} of {len(contested)}")
