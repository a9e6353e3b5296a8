"""`_local/` documents as CouchDB 3.x keeps them: `0-N` revs, no conflicts, never in `_all_docs`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import Client

ERRORS: dict[str, dict[str, str]] = json.loads(
    (Path(__file__).parent / "data" / "errors.json").read_text())["errors"]
HOST = "http://127.0.0.1:5984"


@pytest.fixture
def client(module_app: Any) -> Client:
    """This module's client (overrides conftest's, which builds a store per test)."""
    return Client(module_app, extra_environ={"HTTP_HOST": "127.0.0.1:5984"})


def _put(client: Client, db: str, name: str, body: dict[str, Any], **kw: Any) -> Any:
    return client.put_json(f"/{db}/_local/{name}", body, **kw)


# -- write and read ------------------------------------------------------------------------------

def test_put_local_doc_is_201_with_rev_0_1(client: Client, fresh_db: str) -> None:
    res = _put(client, fresh_db, "x", {"a": 1}, status=201)
    assert res.json == {"ok": True, "id": "_local/x", "rev": "0-1"}
    assert res.headers["Location"] == f"{HOST}/{fresh_db}/_local%2Fx"
    doc = client.get(f"/{fresh_db}/_local/x", status=200)
    assert doc.json == {"_id": "_local/x", "_rev": "0-1", "a": 1}
    assert doc.headers["ETag"] == res.headers["ETag"]


def test_local_doc_etag_is_a_hash_and_if_none_match_gives_304(client: Client,
                                                              fresh_db: str) -> None:
    _put(client, fresh_db, "x", {"a": 1}, status=201)
    etag = client.get(f"/{fresh_db}/_local/x", status=200).headers["ETag"]
    assert etag != '"0-1"' and etag.startswith('"') and etag.endswith('"')
    res = client.get(f"/{fresh_db}/_local/x", headers={"If-None-Match": etag}, status=304)
    assert res.body == b""
    _put(client, fresh_db, "x", {"_rev": "0-1", "a": 2}, status=201)
    res = client.get(f"/{fresh_db}/_local/x", headers={"If-None-Match": etag}, status=200)
    assert res.json == {"_id": "_local/x", "_rev": "0-2", "a": 2}
    assert res.headers["ETag"] != etag


def test_head_local_doc_has_no_body(client: Client, fresh_db: str) -> None:
    _put(client, fresh_db, "x", {"a": 1}, status=201)
    assert client.head(f"/{fresh_db}/_local/x", status=200).body == b""
    assert client.head(f"/{fresh_db}/_local/nope", status=404).body == b""


def test_local_rev_counts_up_from_the_rev_given_in_body_query_or_if_match(
        client: Client, fresh_db: str) -> None:
    _put(client, fresh_db, "x", {"v": 1}, status=201)
    assert _put(client, fresh_db, "x", {"_rev": "0-1", "v": 2}, status=201).json["rev"] == "0-2"
    res = client.put_json(f"/{fresh_db}/_local/x?rev=0-2", {"v": 3}, status=201)
    assert res.json["rev"] == "0-3"
    res = client.put_json(f"/{fresh_db}/_local/x", {"v": 4}, headers={"If-Match": '"0-3"'},
                          status=201)
    assert res.json["rev"] == "0-4"
    assert client.get(f"/{fresh_db}/_local/x", status=200).json == {
        "_id": "_local/x", "_rev": "0-4", "v": 4}


def test_local_doc_updates_never_conflict(client: Client, fresh_db: str) -> None:
    _put(client, fresh_db, "x", {"v": 1}, status=201)
    _put(client, fresh_db, "x", {"_rev": "0-1", "v": 2}, status=201)
    # 3.x takes the counter of whatever rev is given (none counts as 0) and adds one
    assert _put(client, fresh_db, "x", {"v": 3}, status=201).json["rev"] == "0-1"
    assert _put(client, fresh_db, "x", {"_rev": "0-7", "v": 4}, status=201).json["rev"] == "0-8"
    assert client.get(f"/{fresh_db}/_local/x", status=200).json == {
        "_id": "_local/x", "_rev": "0-8", "v": 4}


def test_local_rev_that_is_not_0_n_is_400(client: Client, fresh_db: str) -> None:
    _put(client, fresh_db, "x", {"v": 1}, status=201)
    for rev in ("1-abc", "0-x", "abc"):
        res = _put(client, fresh_db, "x", {"_rev": rev, "v": 2}, status=400)
        assert res.json == ERRORS["bad_rev"], rev
    assert client.get(f"/{fresh_db}/_local/x", status=200).json["v"] == 1


def test_local_doc_rev_in_body_and_query_must_agree(client: Client, fresh_db: str) -> None:
    _put(client, fresh_db, "x", {"v": 1}, status=201)
    res = client.put_json(f"/{fresh_db}/_local/x?rev=0-1", {"_rev": "0-2"}, status=400)
    assert res.json == {"error": "bad_request", "reason": "Document rev from request body and "
                                                          "query string have different values"}


def test_local_doc_body_is_validated_like_any_doc(client: Client, fresh_db: str) -> None:
    res = _put(client, fresh_db, "x", {"_foo": 1}, status=400)
    assert res.json == {"error": "doc_validation", "reason": "Bad special document member: _foo"}
    res = client.raw("PUT", f"/{fresh_db}/_local/x", "[1]", status=400)
    assert res.json == {"error": "bad_request", "reason": "Document must be a JSON object"}
    res = client.raw("PUT", f"/{fresh_db}/_local/x", '{"a": 1, "a": 2}', status=400)
    assert res.json == {"error": "bad_request", "reason": 'Duplicate key "a"'}
    assert client.get(f"/{fresh_db}/_local/x", status=404).json == ERRORS["missing"]


def test_get_missing_local_doc_is_404_missing(client: Client, fresh_db: str) -> None:
    assert client.get(f"/{fresh_db}/_local/nope", status=404).json == ERRORS["missing"]


def test_local_doc_in_missing_db_is_404_database_does_not_exist(client: Client) -> None:
    assert client.get("/nope/_local/x", status=404).json == ERRORS["no_db"]
    assert client.put_json("/nope/_local/x", {}, status=404).json == ERRORS["no_db"]


def test_local_doc_through_encoded_slash_is_the_same_doc(client: Client, fresh_db: str) -> None:
    client.raw("PUT", f"/{fresh_db}/_local%2Fx", '{"a": 1}', status=201)
    assert client.get(f"/{fresh_db}/_local/x", status=200).json == {
        "_id": "_local/x", "_rev": "0-1", "a": 1}
    assert client.raw("GET", f"/{fresh_db}/_local%2Fx", status=200).json["a"] == 1


def test_local_id_with_encoded_slash_inside(client: Client, fresh_db: str) -> None:
    res = client.raw("PUT", f"/{fresh_db}/_local/a%2Fb", "{}", status=201)
    assert res.json["id"] == "_local/a/b"
    assert client.raw("GET", f"/{fresh_db}/_local/a%2Fb", status=200).json["_id"] == "_local/a/b"


def test_bare_local_prefix_is_400_invalid_local_document_id(client: Client,
                                                            fresh_db: str) -> None:
    for raw in (f"/{fresh_db}/_local", f"/{fresh_db}/_local/", f"/{fresh_db}/_local%2F"):
        assert client.raw("PUT", raw, "{}", status=400).json == ERRORS["bad_local_id"], raw
        assert client.raw("GET", raw, status=400).json == ERRORS["bad_local_id"], raw


def test_local_doc_attachment_path_is_400(client: Client, fresh_db: str) -> None:
    res = client.raw("PUT", f"/{fresh_db}/_local/a/b", "{}", status=400)
    assert res.json == {"error": "bad_request",
                        "reason": "_local documents do not accept attachments."}


def test_post_to_db_with_local_id_writes_a_local_doc(client: Client, fresh_db: str) -> None:
    res = client.post_json(f"/{fresh_db}", {"_id": "_local/p", "a": 1}, status=201)
    assert res.json == {"ok": True, "id": "_local/p", "rev": "0-1"}
    assert client.get(f"/{fresh_db}/_local/p", status=200).json == {
        "_id": "_local/p", "_rev": "0-1", "a": 1}
    assert client.get(f"/{fresh_db}", status=200).json["doc_count"] == 0


# -- delete --------------------------------------------------------------------------------------

def test_delete_local_doc_is_200_with_rev_0_0_and_forgets_it(client: Client,
                                                             fresh_db: str) -> None:
    _put(client, fresh_db, "x", {"a": 1}, status=201)
    res = client.delete(f"/{fresh_db}/_local/x?rev=0-1", status=200)
    assert res.json == {"ok": True, "id": "_local/x", "rev": "0-0"}
    assert client.get(f"/{fresh_db}/_local/x", status=404).json == ERRORS["missing"]
    assert client.delete(f"/{fresh_db}/_local/x?rev=0-1", status=404).json == ERRORS["missing"]
    # a re-created local doc starts over
    assert _put(client, fresh_db, "x", {"a": 2}, status=201).json["rev"] == "0-1"


def test_delete_local_doc_needs_no_rev(client: Client, fresh_db: str) -> None:
    _put(client, fresh_db, "x", {"a": 1}, status=201)
    res = client.delete(f"/{fresh_db}/_local/x", status=200)
    assert res.json == {"ok": True, "id": "_local/x", "rev": "0-0"}
    assert client.get(f"/{fresh_db}/_local/x", status=404).json == ERRORS["missing"]


def test_delete_missing_local_doc_is_404(client: Client, fresh_db: str) -> None:
    assert client.delete(f"/{fresh_db}/_local/nope", status=404).json == ERRORS["missing"]


# -- kept apart from replicated documents --------------------------------------------------------

def test_local_docs_are_not_in_all_docs_doc_count_or_update_seq(client: Client,
                                                                fresh_db: str) -> None:
    client.put_json(f"/{fresh_db}/doc", {}, status=201)
    before = client.get(f"/{fresh_db}", status=200).json
    _put(client, fresh_db, "x", {"a": 1}, status=201)
    _put(client, fresh_db, "x", {"_rev": "0-1", "a": 2}, status=201)
    client.delete(f"/{fresh_db}/_local/x", status=200)
    _put(client, fresh_db, "y", {}, status=201)
    after = client.get(f"/{fresh_db}", status=200).json
    assert (after["doc_count"], after["doc_del_count"]) == (1, 0)
    assert after["update_seq"] == before["update_seq"]
    rows = client.get(f"/{fresh_db}/_all_docs", status=200).json["rows"]
    assert [row["id"] for row in rows] == ["doc"]


def test_local_docs_lists_local_docs_with_their_0_n_revs(client: Client, fresh_db: str) -> None:
    _put(client, fresh_db, "b", {"v": "b"}, status=201)
    _put(client, fresh_db, "a", {"v": "a"}, status=201)
    _put(client, fresh_db, "a", {"_rev": "0-1", "v": "a2"}, status=201)
    _put(client, fresh_db, "gone", {}, status=201)
    client.delete(f"/{fresh_db}/_local/gone", status=200)
    client.put_json(f"/{fresh_db}/doc", {}, status=201)
    res = client.get(f"/{fresh_db}/_local_docs", status=200).json
    assert res == {"total_rows": None, "offset": None, "rows": [
        {"id": "_local/a", "key": "_local/a", "value": {"rev": "0-2"}},
        {"id": "_local/b", "key": "_local/b", "value": {"rev": "0-1"}},
    ]}
    rows = client.get(f"/{fresh_db}/_local_docs?include_docs=true&descending=true&limit=1",
                      status=200).json["rows"]
    assert rows == [{"id": "_local/b", "key": "_local/b", "value": {"rev": "0-1"},
                     "doc": {"_id": "_local/b", "_rev": "0-1", "v": "b"}}]
    rows = client.get(f'/{fresh_db}/_local_docs?startkey="_local/b"', status=200).json["rows"]
    assert [row["id"] for row in rows] == ["_local/b"]
