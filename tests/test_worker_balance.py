"""New connections go to the worker holding the fewest (`server/balance.py`, `SetteeWorker`).

Under stock gthread, keep-alive connections opened one after another often all land on one
worker; here a real `settee serve` with 2 workers must split them evenly, every time.
"""

from __future__ import annotations

import http.client
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from live import HOST, LiveServer
from settee.server.balance import STALE_AFTER, Board

WORKERS = 2
ESTABLISHED = frozenset({"01"})  # /proc/net/tcp's state column
NOT_LISTENING = frozenset(f"{n:02X}" for n in range(1, 12)) - {"0A"}


def test_a_worker_sees_the_fewest_connections_any_other_live_worker_holds() -> None:
    board = Board()
    assert board.fewest_elsewhere(0) is None
    board.publish(0, 5)
    assert board.fewest_elsewhere(0) is None  # only itself
    board.publish(3, 2)
    board.publish(7, 4)
    assert board.fewest_elsewhere(0) == 2 and board.fewest_elsewhere(3) == 4
    board.clear(3)
    assert board.fewest_elsewhere(0) == 4


def test_a_worker_that_stopped_publishing_does_not_count(monkeypatch: pytest.MonkeyPatch) -> None:
    board = Board()
    board.publish(1, 0)
    later = time.monotonic() + STALE_AFTER + 1
    monkeypatch.setattr(time, "monotonic", lambda: later)
    assert board.fewest_elsewhere(0) is None


def test_the_table_is_shared_with_forked_workers() -> None:
    board = Board()
    pid = os.fork()
    if pid == 0:  # the child publishes, as a worker does
        board.publish(4, 9)
        os._exit(0)
    os.waitpid(pid, 0)
    assert board.fewest_elsewhere(0) == 9


def _connections_by_worker(server: LiveServer,
                           states: frozenset[str] = ESTABLISHED) -> Counter[int]:
    """How many connections to the server's port in `states` each worker holds (`/proc`)."""
    port = f"{server.port:04X}"
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(":" + port) and fields[3] in states:
            inodes.add(f"socket:[{fields[9]}]")
    held: Counter[int] = Counter()
    for pid in server.worker_pids():
        held[pid] = sum(1 for link in server.open_files(pid) if link in inodes)
    return held


def _open(server: LiveServer, count: int) -> list[http.client.HTTPConnection]:
    """`count` kept-alive connections, opened one after another, each answered once."""
    opened = []
    for _ in range(count):
        conn = http.client.HTTPConnection(HOST, server.port, timeout=10)
        conn.request("GET", "/_up")
        reply = conn.getresponse()
        reply.read()
        assert reply.status == 200
        opened.append(conn)
    return opened


def _split(server: LiveServer, count: int) -> list[int]:
    """How `count` new connections were shared out; returns once the workers closed them."""
    opened = _open(server, count)
    try:
        return sorted(_connections_by_worker(server).values())
    finally:
        for conn in opened:
            conn.close()
        deadline = time.monotonic() + 10
        while any(_connections_by_worker(server, NOT_LISTENING).values()) \
                and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)  # each worker publishes its count when its event loop next turns


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """`settee serve --workers 2`, once both workers accept connections."""
    with LiveServer.settee(tmp_path_factory.mktemp("balance"), workers=WORKERS) as server:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if len([n for n in _split(server, 4) if n]) == WORKERS:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the second worker never took a connection")
        yield server


@pytest.mark.live
def test_connections_opened_one_after_another_are_split_between_workers(
        two_workers: LiveServer) -> None:
    splits = Counter(tuple(_split(two_workers, 2)) for _ in range(10))
    assert splits == {(1, 1): 10}


@pytest.mark.live
def test_eight_connections_are_split_four_and_four(two_workers: LiveServer) -> None:
    splits = Counter(tuple(_split(two_workers, 8)) for _ in range(5))
    assert splits == {(4, 4): 5}
