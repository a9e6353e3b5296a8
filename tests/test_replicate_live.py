"""Continuous replication and `_scheduler/jobs` in-process, then two live servers over HTTP."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Client
from live import LiveServer
from settee.server.replication_jobs import jobs_of


def _db(client: Client) -> str:
    name = "r_" + uuid.uuid4().hex[:8]
    client.put(f"/{name}", status=201)
    return name


def _replicate(client: Client, status: int = 200, **body: Any) -> Any:
    return client.post_json("/_replicate", body, status=status).json


def _ids(client: Client, db: str) -> list[str]:
    return [row["id"] for row in client.get(f"/{db}/_all_docs").json["rows"]]


def _eventually(check: Callable[[], bool], timeout: float = 8.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def pair(client: Client) -> tuple[str, str]:
    return _db(client), _db(client)


# -- continuous, in-process ---------------------------------------------------------------------

def test_continuous_picks_up_later_writes_until_cancelled(app: Any, client: Client,
                                                          pair: tuple[str, str]) -> None:
    source, target = pair
    client.put_json(f"/{source}/before", {}, status=201)
    try:
        reply = client.post_json("/_replicate", {"source": source, "target": target,
                                                 "continuous": True}, status=202).json
        job_id = reply["_local_id"]
        assert reply["ok"] is True and job_id.endswith("+continuous")
        assert _eventually(lambda: "before" in _ids(client, target))
        client.put_json(f"/{source}/after", {}, status=201)
        assert _eventually(lambda: "after" in _ids(client, target), timeout=5)
        jobs = client.get("/_scheduler/jobs").json
        assert jobs["total_rows"] == 1 and jobs["offset"] == 0
        row = jobs["jobs"][0]
        assert (row["id"], row["source"], row["target"]) == (job_id, source, target)
        assert row["database"] is None and row["user"] is None and row["doc_id"] is None
        assert {"pid", "node", "start_time", "history"} <= set(row)
        assert row["info"]["docs_written"] == 2
        again = _replicate(client, 202, source=source, target=target, continuous=True)
        assert again["_local_id"] == job_id  # the same job, not a second one
        assert _replicate(client, cancel=True, replication_id=job_id)["ok"] is True
        assert client.get("/_scheduler/jobs").json["jobs"] == []
        time.sleep(0.5 + 2.5)  # a long-poll in flight ends within its timeout
        client.put_json(f"/{source}/late", {}, status=201)
        time.sleep(1.0)
        assert "late" not in _ids(client, target)
        _replicate(client, 404, cancel=True, replication_id=job_id)
    finally:
        jobs_of(app).stop_all()
        time.sleep(2.5)  # let the thread finish its long-poll before the store closes


def test_cancel_by_the_same_body(app: Any, client: Client, pair: tuple[str, str]) -> None:
    source, target = pair
    try:
        _replicate(client, 202, source=source, target=target, continuous=True)
        out = _replicate(client, source=source, target=target, continuous=True, cancel=True)
        assert out["ok"] is True
        assert client.get("/_scheduler/jobs").json["total_rows"] == 0
    finally:
        jobs_of(app).stop_all()
        time.sleep(2.5)


# -- two live servers ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, LiveServer]]:
    base = tmp_path_factory.mktemp("replicate")
    with LiveServer.settee(Path(base) / "a") as one, LiveServer.settee(Path(base) / "b") as two:
        yield one, two


def _live(server: LiveServer, method: str, path: str, body: Any = None) -> Any:
    reply = server.request(method, path, None if body is None else json.dumps(body),
                           timeout=60)
    return reply.status, reply.json()


def _live_db(server: LiveServer, docs: int = 0) -> str:
    name = "r_" + uuid.uuid4().hex[:8]
    assert _live(server, "PUT", f"/{name}")[0] == 201
    if docs:
        assert _live(server, "POST", f"/{name}/_bulk_docs", {"docs": [
            {"_id": f"d{i}", "n": i} for i in range(docs)]})[0] == 201
    return name


def _live_ids(server: LiveServer, db: str) -> list[str]:
    return [row["id"] for row in _live(server, "GET", f"/{db}/_all_docs")[1]["rows"]]


def test_live_pull_over_http(servers: tuple[LiveServer, LiveServer]) -> None:
    one, two = servers
    source = _live_db(one, docs=150)
    target = _live_db(two)
    status, out = _live(two, "POST", "/_replicate", {"source": f"{one.url}/{source}",
                                                     "target": target})
    assert status == 200 and out["history"][0]["docs_written"] == 150
    assert len(_live_ids(two, target)) == 150
    assert _live(two, "POST", "/_replicate", {"source": f"{one.url}/{source}",
                                              "target": target})[1]["no_changes"] is True


def test_live_push_over_http_creating_the_target(servers: tuple[LiveServer, LiveServer]) -> None:
    one, two = servers
    source = _live_db(one, docs=3)
    target = "r_pushed_" + uuid.uuid4().hex[:8]
    url = f"http://user:secret@127.0.0.1:{two.port}/{target}"
    status, out = _live(one, "POST", "/_replicate", {"source": source, "target": url,
                                                     "create_target": True})
    assert status == 200 and out["history"][0]["docs_written"] == 3
    assert _live_ids(two, target) == ["d0", "d1", "d2"]


def test_live_continuous_pull_listed_then_cancelled(
        servers: tuple[LiveServer, LiveServer]) -> None:
    one, two = servers
    source, target = _live_db(one, docs=2), _live_db(two)
    body = {"source": f"http://admin:pw@127.0.0.1:{one.port}/{source}", "target": target,
            "continuous": True}
    status, out = _live(two, "POST", "/_replicate", body)
    assert status == 202
    try:
        assert _eventually(lambda: len(_live_ids(two, target)) == 2)
        _live(one, "PUT", f"/{source}/later", {"v": 1})
        assert _eventually(lambda: "later" in _live_ids(two, target), timeout=5)
        jobs = _live(two, "GET", "/_scheduler/jobs")[1]["jobs"]
        assert [job["id"] for job in jobs] == [out["_local_id"]]
        assert "pw" not in jobs[0]["source"] and jobs[0]["source"].endswith(f"/{source}/")
    finally:
        assert _live(two, "POST", "/_replicate", {**body, "cancel": True})[0] == 200
    assert _live(two, "GET", "/_scheduler/jobs")[1]["total_rows"] == 0
