"""`POST /_replicate` one-shot, in-process on each backend: copies, checkpoints, options, errors."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest
from conftest import Client
from settee.server.replication import Options, Replication, replication_id
from settee.server.replication_log import start_seq
from settee.server.replication_peers import LocalPeer, Reply


def _db(client: Client) -> str:
    name = "r_" + uuid.uuid4().hex[:8]
    client.put(f"/{name}", status=201)
    return name


def _replicate(client: Client, status: int = 200, **body: Any) -> Any:
    return client.post_json("/_replicate", body, status=status).json


def _ids(client: Client, db: str) -> list[str]:
    return [row["id"] for row in client.get(f"/{db}/_all_docs").json["rows"]]


def _leaves(client: Client, db: str, doc_id: str) -> list[Any]:
    reply = client.get(f"/{db}/{doc_id}?open_revs=all&revs=true",
                       headers={"Accept": "application/json"}).json
    return sorted(json.dumps(entry, sort_keys=True) for entry in reply)


@pytest.fixture
def pair(client: Client) -> tuple[str, str]:
    return _db(client), _db(client)


# -- one-shot, local to local -------------------------------------------------------------------

def test_one_shot_copies_every_doc_and_answers_couchdb_shape(client: Client,
                                                            pair: tuple[str, str]) -> None:
    source, target = pair
    for i in range(7):
        client.put_json(f"/{source}/d{i}", {"n": i}, status=201)
    out = _replicate(client, source=source, target=target, worker_batch_size=3)
    assert out["ok"] is True and out["replication_id_version"] == 4
    entry = out["history"][0]
    assert entry["session_id"] == out["session_id"]
    assert (entry["docs_read"], entry["docs_written"], entry["doc_write_failures"]) == (7, 7, 0)
    assert (entry["missing_checked"], entry["missing_found"]) == (7, 7)
    for key in ("start_time", "end_time", "start_last_seq", "end_last_seq", "recorded_seq"):
        assert key in entry
    assert out["source_last_seq"] == entry["recorded_seq"]
    assert _ids(client, target) == [f"d{i}" for i in range(7)]
    assert client.get(f"/{target}/d3").json["n"] == 3


def test_conflicts_and_deletions_arrive_with_the_same_winner(client: Client,
                                                            pair: tuple[str, str]) -> None:
    source, target = pair
    client.post_json(f"/{source}/_bulk_docs", {"new_edits": False, "docs": [
        {"_id": "c", "_rev": "1-aaa", "v": "a"}, {"_id": "c", "_rev": "1-bbb", "v": "b"},
        {"_id": "c", "_rev": "2-ccc", "v": "c", "_revisions": {"start": 2,
                                                              "ids": ["ccc", "aaa"]}}]},
                     status=201)
    rev = client.put_json(f"/{source}/gone", {"x": 1}, status=201).json["rev"]
    client.delete(f"/{source}/gone?rev={rev}", status=200)
    _replicate(client, source=source, target=target)
    for db in pair:
        doc = client.get(f"/{db}/c?conflicts=true").json
        assert (doc["_rev"], doc["_conflicts"]) == ("2-ccc", ["1-bbb"])
    assert _leaves(client, source, "c") == _leaves(client, target, "c")
    assert client.get(f"/{target}/gone", status=404).json["reason"] == "deleted"
    assert _leaves(client, source, "gone") == _leaves(client, target, "gone")


def test_attachments_are_copied_with_their_bytes(client: Client, pair: tuple[str, str]) -> None:
    source, target = pair
    data = bytes(range(256)) * 40
    client.put_json(f"/{source}/a", {"_attachments": {"blob.bin": {
        "content_type": "application/octet-stream",
        "data": base64.b64encode(data).decode()}}}, status=201)
    _replicate(client, source=source, target=target)
    assert client.get(f"/{target}/a/blob.bin").body == data
    stub = client.get(f"/{target}/a").json["_attachments"]["blob.bin"]
    assert stub["length"] == len(data) and stub["stub"] is True


def test_a_second_run_has_no_changes(client: Client, pair: tuple[str, str]) -> None:
    source, target = pair
    client.put_json(f"/{source}/one", {}, status=201)
    _replicate(client, source=source, target=target)
    assert _replicate(client, source=source, target=target) == {"ok": True, "no_changes": True}


def test_checkpoints_on_both_sides_let_the_next_run_read_only_new_changes(
        client: Client, pair: tuple[str, str]) -> None:
    source, target = pair
    for i in range(5):
        client.put_json(f"/{source}/d{i}", {}, status=201)
    first = _replicate(client, source=source, target=target)
    local = client.get(f"/{source}/_local_docs").json["rows"]
    assert len(local) == 1 and client.get(f"/{target}/_local_docs").json["rows"][0]["id"] \
        == local[0]["id"]
    checkpoint = client.get(f"/{target}/{local[0]['id']}").json
    assert checkpoint["session_id"] == first["session_id"]
    assert checkpoint["replicator"] == "settee" and checkpoint["version"] == 1
    assert checkpoint["last_seq"] == first["source_last_seq"]
    for i in range(5, 7):
        client.put_json(f"/{source}/d{i}", {}, status=201)
    second = _replicate(client, source=source, target=target)
    entry = second["history"][0]
    assert entry["start_last_seq"] == first["source_last_seq"]
    assert (entry["missing_checked"], entry["docs_written"]) == (2, 2)
    assert [h["session_id"] for h in second["history"]] == [second["session_id"],
                                                            first["session_id"]]
    assert len(_ids(client, target)) == 7


def test_target_already_holding_the_revisions_writes_nothing(client: Client,
                                                              pair: tuple[str, str]) -> None:
    source, target = pair
    client.put_json(f"/{source}/d", {"v": 1}, status=201)
    _replicate(client, source=source, target=target)
    out = _replicate(client, source=target, target=source)  # other direction: all present
    entry = out["history"][0]
    assert (entry["missing_checked"], entry["missing_found"], entry["docs_written"]) == (1, 0, 0)


def test_doc_ids_replicates_only_those(client: Client, pair: tuple[str, str]) -> None:
    source, target = pair
    for name in ("a", "b", "c"):
        client.put_json(f"/{source}/{name}", {}, status=201)
    _replicate(client, source=source, target=target, doc_ids=["a", "c"])
    assert _ids(client, target) == ["a", "c"]


def test_selector_replicates_only_matching_docs(client: Client, pair: tuple[str, str]) -> None:
    source, target = pair
    for i in range(6):
        client.put_json(f"/{source}/d{i}", {"n": i}, status=201)
    _replicate(client, source=source, target=target, selector={"n": {"$gte": 4}})
    assert _ids(client, target) == ["d4", "d5"]


def test_design_doc_filter_with_query_params(client: Client, pair: tuple[str, str]) -> None:
    source, target = pair
    client.put_json(f"/{source}/_design/app", {"filters": {
        "kind": "function(doc, req) { return doc.kind === req.query.kind; }"}}, status=201)
    for i, kind in enumerate("xyx"):
        client.put_json(f"/{source}/d{i}", {"kind": kind}, status=201)
    _replicate(client, source=source, target=target, filter="app/kind",
               query_params={"kind": "x"})
    assert _ids(client, target) == ["d0", "d2"]


def test_create_target(client: Client) -> None:
    source, target = _db(client), "r_new_" + uuid.uuid4().hex[:8]
    client.put_json(f"/{source}/d", {}, status=201)
    err = _replicate(client, 404, source=source, target=target)
    assert err["error"] == "db_not_found" and target in err["reason"]
    _replicate(client, source=source, target={"url": target}, create_target=True)
    assert _ids(client, target) == ["d"]


@pytest.mark.parametrize("body, status, error", [
    ({"target": "x"}, 400, "bad_request"),
    ({"source": "x"}, 400, "bad_request"),
    ({"source": 5, "target": "x"}, 400, "bad_request"),
    ({"source": "x", "target": "y", "doc_ids": "a"}, 400, "bad_request"),
    ({"source": "x", "target": "y", "continuous": "yes"}, 400, "bad_request"),
    ({"source": "x", "target": "y", "selector": [1]}, 400, "bad_request"),
    ({"source": "r_missing_source", "target": "y"}, 404, "db_not_found"),
    ({"source": "http://127.0.0.1:9/nothing", "target": "y"}, 404, "db_not_found"),
    ({"cancel": True, "replication_id": "abc+continuous"}, 404, "not_found"),
])
def test_errors(client: Client, body: dict[str, Any], status: int, error: str) -> None:
    assert _replicate(client, status, **body)["error"] == error


def test_a_body_that_is_not_an_object_is_a_bad_request(client: Client) -> None:
    reply = client.post("/_replicate", "[]", content_type="application/json", status=400)
    assert reply.json["error"] == "bad_request"


# -- the loop's parts ---------------------------------------------------------------------------

class _NoBulkGet(LocalPeer):
    """A peer like a server without `_bulk_get` (CouchDB before 2.0): 400 for it."""

    def call(self, method: str, path: str = "", *, query: dict[str, Any] | None = None,
             body: Any = None) -> Reply:
        if path == "/_bulk_get":
            return Reply(400, {"error": "bad_request", "reason": "unknown"})
        return super().call(method, path, query=query, body=body)


def test_without_bulk_get_revisions_are_read_with_open_revs(app: Any, client: Client,
                                                            pair: tuple[str, str]) -> None:
    source, target = pair
    client.post_json(f"/{source}/_bulk_docs", {"new_edits": False, "docs": [
        {"_id": "c", "_rev": "1-aaa"}, {"_id": "c", "_rev": "1-bbb"},
        {"_id": "_design/x", "_rev": "1-ccc", "_attachments": {"t.txt": {
            "content_type": "text/plain", "revpos": 1,
            "data": base64.b64encode(b"hi").decode()}}}]},
                     status=201)
    out = Replication(_NoBulkGet(app, source), LocalPeer(app, target), Options()).run()
    assert out["history"][0]["docs_written"] == 3
    assert _leaves(client, source, "c") == _leaves(client, target, "c")
    assert client.get(f"/{target}/_design/x/t.txt").body == b"hi"


def test_start_seq_reads_pouchdb_and_couchdb_checkpoints() -> None:
    pouch = {"session_id": "s2", "last_seq": 9,
             "history": [{"session_id": "s2", "last_seq": 9}, {"session_id": "s1", "last_seq": 4}]}
    couch = {"session_id": "s1", "source_last_seq": 4,
             "history": [{"session_id": "s1", "recorded_seq": 4}]}
    assert start_seq(pouch, dict(pouch)) == 9
    assert start_seq(pouch, couch) == 4  # the newest session both sides know
    assert start_seq(couch, {"session_id": "other", "history": []}) == 0
    assert start_seq(None, couch) == 0


def test_replication_id_depends_on_both_ends_and_the_options(app: Any) -> None:
    a, b = LocalPeer(app, "a"), LocalPeer(app, "b")
    base = replication_id(a, b, Options())
    assert base == replication_id(a, b, Options(continuous=True, create_target=True))
    assert len({base, replication_id(b, a, Options()), replication_id(a, b, Options(
        doc_ids=["x"])), replication_id(a, b, Options(selector={"x": 1}))}) == 4


class _Recording(LocalPeer):
    """A local peer that keeps the documents sent to its `_bulk_docs`."""

    sent: list[dict[str, Any]]

    def call(self, method: str, path: str = "", *, query: dict[str, Any] | None = None,
             body: Any = None) -> Reply:
        if path == "/_bulk_docs":
            self.sent = body["docs"]
        return super().call(method, path, query=query, body=body)


@pytest.mark.parametrize("source_kind", [LocalPeer, _NoBulkGet])
def test_attachments_the_target_has_are_sent_as_stubs(app: Any, client: Client,
                                                      pair: tuple[str, str],
                                                      source_kind: type[LocalPeer]) -> None:
    source, target = pair
    client.put_json(f"/{source}/a", {"_attachments": {"t.txt": {
        "content_type": "text/plain", "data": base64.b64encode(b"kept").decode()}}}, status=201)
    _replicate(client, source=source, target=target)
    doc = client.get(f"/{source}/a").json
    client.put_json(f"/{source}/a", {**doc, "edited": True}, status=201)
    recorder = _Recording(app, target)
    out = Replication(source_kind(app, source), recorder, Options()).run()
    assert out["history"][0]["docs_written"] == 1
    assert recorder.sent[0]["_attachments"]["t.txt"].get("stub") is True
    assert client.get(f"/{target}/a").json["edited"] is True
    assert client.get(f"/{target}/a/t.txt").body == b"kept"
