"""Document endpoints as in CouchDB 3.x: revs, ETags, conflicts, meta queries, ids, bodies."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Client
from settee.server import create_app

# webtest's lint does not know COPY; CouchDB does.
pytestmark = pytest.mark.filterwarnings("ignore:Unknown REQUEST_METHOD")

DATA = Path(__file__).parent / "data"
ERRORS: dict[str, dict[str, str]] = json.loads((DATA / "errors.json").read_text())["errors"]
REVS = {case["name"]: case for case in json.loads((DATA / "revs.json").read_text())["cases"]}

EMPTY_REV = "1-967a00dff5e02add41819138abb3284d"
REV_A = "1-" + "a" * 32
REV_B = "1-" + "b" * 32
HOST = "http://127.0.0.1:5984"


@pytest.fixture
def client(module_app: Any) -> Client:
    """This module's client (overrides conftest's, which builds a store per test)."""
    return Client(module_app, extra_environ={"HTTP_HOST": "127.0.0.1:5984"})


def _pos(rev: str) -> int:
    return int(rev.split("-", 1)[0])


def _create(client: Client, db: str, docid: str, body: dict[str, Any] | None = None) -> str:
    return str(client.put_json(f"/{db}/{docid}", body or {}, status=201).json["rev"])


def _conflicted(client: Client, db: str, docid: str = "c") -> None:
    """Two `1-` leaves written as a replicator would: REV_B wins (greater rev id)."""
    for rev, value in ((REV_A, "a"), (REV_B, "b")):
        res = client.put_json(f"/{db}/{docid}?new_edits=false", {"_rev": rev, "v": value},
                              status=201)
        assert res.json == {"ok": True, "id": docid, "rev": rev}


# -- revision ids --------------------------------------------------------------------------------

def test_put_empty_doc_gets_couchdb_golden_rev_etag_and_location(client: Client,
                                                                 fresh_db: str) -> None:
    res = client.put_json(f"/{fresh_db}/doc", {}, status=201)
    assert res.json == {"ok": True, "id": "doc", "rev": EMPTY_REV}
    assert res.headers["ETag"] == f'"{EMPTY_REV}"'
    assert res.headers["Location"] == f"{HOST}/{fresh_db}/doc"
    assert res.content_type == "application/json"


def test_revs_of_create_update_and_delete_match_couchdb_docs(client: Client,
                                                             fresh_db: str) -> None:
    fish = REVS["FishStew create"]
    assert _create(client, fresh_db, "FishStew", fish["body"]) == fish["rev"]
    res = client.delete(f"/{fresh_db}/FishStew?rev={fish['rev']}", status=200)
    assert res.json["rev"] == REVS["FishStew delete"]["rev"]
    spaghetti = REVS["SpaghettiWithMeatballs create"]
    assert _create(client, fresh_db, "Spaghetti", spaghetti["body"]) == spaghetti["rev"]
    update = REVS["SpaghettiWithMeatballs update"]
    res = client.put_json(f"/{fresh_db}/Spaghetti", update["body"], status=201)
    assert res.json["rev"] == update["rev"]


def test_same_body_and_parent_give_the_same_rev_whatever_the_id(client: Client,
                                                                fresh_db: str) -> None:
    assert _create(client, fresh_db, "one", {"k": [1, 2.5, None]}) == \
        _create(client, fresh_db, "two", {"k": [1, 2.5, None]})
    assert _create(client, fresh_db, "three", {"k": [1, 2.5, False]}) != \
        _create(client, fresh_db, "four", {"k": [1, 2.5, None]})


# -- GET and HEAD --------------------------------------------------------------------------------

def test_get_doc_returns_body_id_rev_and_quoted_rev_etag(client: Client, fresh_db: str) -> None:
    rev = _create(client, fresh_db, "doc", {"a": 1, "nested": {"b": [True, None]}})
    res = client.get(f"/{fresh_db}/doc", status=200)
    assert res.json == {"_id": "doc", "_rev": rev, "a": 1, "nested": {"b": [True, None]}}
    assert res.headers["ETag"] == f'"{rev}"'


def test_head_doc_has_etag_and_no_body(client: Client, fresh_db: str) -> None:
    rev = _create(client, fresh_db, "doc")
    res = client.head(f"/{fresh_db}/doc", status=200)
    assert res.body == b""
    assert res.headers["ETag"] == f'"{rev}"'


def test_if_none_match_current_etag_is_304_with_empty_body(client: Client, fresh_db: str) -> None:
    rev = _create(client, fresh_db, "doc")
    for method in ("GET", "HEAD"):
        res = client.raw(method, f"/{fresh_db}/doc", headers={"If-None-Match": f'"{rev}"'},
                         status=304)
        assert res.body == b""
        assert res.headers["ETag"] == f'"{rev}"'


def test_if_none_match_other_etag_is_200(client: Client, fresh_db: str) -> None:
    rev = _create(client, fresh_db, "doc")
    res = client.get(f"/{fresh_db}/doc", headers={"If-None-Match": f'"{REV_A}"'}, status=200)
    assert res.json["_rev"] == rev


def test_get_missing_doc_is_404_missing(client: Client, fresh_db: str) -> None:
    assert client.get(f"/{fresh_db}/nope", status=404).json == ERRORS["missing"]
    assert client.head(f"/{fresh_db}/nope", status=404).body == b""


def test_doc_requests_in_missing_db_are_404_database_does_not_exist(client: Client) -> None:
    assert client.get("/nope/doc", status=404).json == ERRORS["no_db"]
    assert client.put_json("/nope/doc", {}, status=404).json == ERRORS["no_db"]
    assert client.delete("/nope/doc?rev=1-abc", status=404).json == ERRORS["no_db"]


def test_get_with_rev_returns_that_revision(client: Client, fresh_db: str) -> None:
    first = _create(client, fresh_db, "doc", {"v": 1})
    second = client.put_json(f"/{fresh_db}/doc", {"_rev": first, "v": 2}, status=201).json["rev"]
    old = client.get(f"/{fresh_db}/doc?rev={first}", status=200)
    assert old.json == {"_id": "doc", "_rev": first, "v": 1}
    assert old.headers["ETag"] == f'"{first}"'
    assert client.get(f"/{fresh_db}/doc", status=200).json["_rev"] == second


def test_get_with_unknown_rev_is_404_missing(client: Client, fresh_db: str) -> None:
    _create(client, fresh_db, "doc")
    assert client.get(f"/{fresh_db}/doc?rev={REV_A}", status=404).json == ERRORS["missing"]


def test_get_with_malformed_rev_is_400_invalid_rev_format(client: Client, fresh_db: str) -> None:
    _create(client, fresh_db, "doc")
    assert client.get(f"/{fresh_db}/doc?rev=abc", status=400).json == ERRORS["bad_rev"]


# -- updates -------------------------------------------------------------------------------------

def test_update_names_the_rev_in_body_query_or_if_match(client: Client, fresh_db: str) -> None:
    rev = _create(client, fresh_db, "doc", {"v": 0})
    rev = client.put_json(f"/{fresh_db}/doc", {"_rev": rev, "v": 1}, status=201).json["rev"]
    rev = client.put_json(f"/{fresh_db}/doc?rev={rev}", {"v": 2}, status=201).json["rev"]
    res = client.put_json(f"/{fresh_db}/doc", {"v": 3}, headers={"If-Match": f'"{rev}"'},
                          status=201)
    assert _pos(res.json["rev"]) == 4
    assert res.headers["ETag"] == f'"{res.json["rev"]}"'
    assert client.get(f"/{fresh_db}/doc", status=200).json == {
        "_id": "doc", "_rev": res.json["rev"], "v": 3}


def test_update_without_rev_is_409_conflict(client: Client, fresh_db: str) -> None:
    _create(client, fresh_db, "doc", {"v": 1})
    assert client.put_json(f"/{fresh_db}/doc", {"v": 2}, status=409).json == ERRORS["conflict"]
    assert client.get(f"/{fresh_db}/doc", status=200).json["v"] == 1


def test_update_with_stale_rev_is_409_conflict(client: Client, fresh_db: str) -> None:
    first = _create(client, fresh_db, "doc", {"v": 1})
    client.put_json(f"/{fresh_db}/doc", {"_rev": first, "v": 2}, status=201)
    res = client.put_json(f"/{fresh_db}/doc", {"_rev": first, "v": 3}, status=409)
    assert res.json == ERRORS["conflict"]
    assert client.get(f"/{fresh_db}/doc", status=200).json["v"] == 2


def test_update_with_unknown_rev_is_409_conflict(client: Client, fresh_db: str) -> None:
    _create(client, fresh_db, "doc")
    res = client.put_json(f"/{fresh_db}/doc", {"_rev": REV_A}, status=409)
    assert res.json == ERRORS["conflict"]
    res = client.put_json(f"/{fresh_db}/new", {"_rev": REV_A}, status=409)
    assert res.json == ERRORS["conflict"]
    assert client.get(f"/{fresh_db}/new", status=404).json == ERRORS["missing"]


def test_update_with_malformed_rev_is_400_invalid_rev_format(client: Client,
                                                             fresh_db: str) -> None:
    _create(client, fresh_db, "doc")
    for body in ({"_rev": "abc"}, {"_rev": 5}):
        assert client.put_json(f"/{fresh_db}/doc", body, status=400).json == ERRORS["bad_rev"]


@pytest.mark.parametrize(("where", "reason"), [
    ("query+header", "Document rev and etag have different values"),
    ("body+query", "Document rev from request body and query string have different values"),
    ("body+header", "Document rev and etag have different values"),
])
def test_revs_that_disagree_are_400_with_couchdb_reasons(client: Client, fresh_db: str,
                                                         where: str, reason: str) -> None:
    rev = _create(client, fresh_db, "doc", {"v": 1})
    other = "1-" + "0" * 32
    url = f"/{fresh_db}/doc"
    body: dict[str, Any] = {"v": 2}
    headers: dict[str, str] = {}
    if "body" in where:
        body["_rev"] = rev
    if "query" in where:
        url += f"?rev={other if where == 'body+query' else rev}"
    if "header" in where:
        headers["If-Match"] = f'"{other}"'
    res = client.put_json(url, body, headers=headers, status=400)
    assert res.json == {"error": "bad_request", "reason": reason}
    assert client.get(f"/{fresh_db}/doc", status=200).json == {"_id": "doc", "_rev": rev, "v": 1}


def test_delete_with_rev_and_if_match_that_disagree_is_400(client: Client, fresh_db: str) -> None:
    rev = _create(client, fresh_db, "doc")
    res = client.delete(f"/{fresh_db}/doc?rev={rev}", headers={"If-Match": f'"{REV_A}"'},
                        status=400)
    assert res.json == {"error": "bad_request",
                        "reason": "Document rev and etag have different values"}
    client.get(f"/{fresh_db}/doc", status=200)


# -- deletes -------------------------------------------------------------------------------------

def test_delete_is_200_not_201_with_tombstone_rev_and_etag(client: Client, fresh_db: str) -> None:
    rev = _create(client, fresh_db, "doc", {"v": 1})
    res = client.delete(f"/{fresh_db}/doc?rev={rev}", status=200)
    assert res.json["ok"] is True and res.json["id"] == "doc"
    assert _pos(res.json["rev"]) == 2
    assert res.headers["ETag"] == f'"{res.json["rev"]}"'
    assert "Location" not in res.headers


def test_get_deleted_doc_is_404_deleted_but_its_tombstone_is_readable(client: Client,
                                                                      fresh_db: str) -> None:
    rev = _create(client, fresh_db, "doc", {"v": 1})
    tomb = client.delete(f"/{fresh_db}/doc?rev={rev}", status=200).json["rev"]
    assert client.get(f"/{fresh_db}/doc", status=404).json == ERRORS["deleted"]
    assert client.head(f"/{fresh_db}/doc", status=404).body == b""
    res = client.get(f"/{fresh_db}/doc?rev={tomb}", status=200)
    assert res.json == {"_id": "doc", "_rev": tomb, "_deleted": True}
    assert client.get(f"/{fresh_db}/doc?rev={rev}", status=200).json["v"] == 1


def test_delete_by_if_match(client: Client, fresh_db: str) -> None:
    rev = _create(client, fresh_db, "doc")
    res = client.delete(f"/{fresh_db}/doc", headers={"If-Match": f'"{rev}"'}, status=200)
    assert _pos(res.json["rev"]) == 2
    assert client.get(f"/{fresh_db}/doc", status=404).json == ERRORS["deleted"]


def test_delete_without_rev_or_with_stale_rev_is_409(client: Client, fresh_db: str) -> None:
    first = _create(client, fresh_db, "doc")
    client.put_json(f"/{fresh_db}/doc", {"_rev": first, "v": 2}, status=201)
    assert client.delete(f"/{fresh_db}/doc", status=409).json == ERRORS["conflict"]
    assert client.delete(f"/{fresh_db}/doc?rev={first}", status=409).json == ERRORS["conflict"]
    assert client.get(f"/{fresh_db}/doc", status=200).json["v"] == 2


def test_delete_missing_doc_is_404_missing(client: Client, fresh_db: str) -> None:
    assert client.delete(f"/{fresh_db}/nope?rev={REV_A}", status=404).json == ERRORS["missing"]


def test_delete_deleted_doc_is_404_deleted_whatever_the_rev(client: Client,
                                                           fresh_db: str) -> None:
    rev = _create(client, fresh_db, "doc")
    tomb = client.delete(f"/{fresh_db}/doc?rev={rev}", status=200).json["rev"]
    assert client.delete(f"/{fresh_db}/doc", status=404).json == ERRORS["deleted"]
    assert client.delete(f"/{fresh_db}/doc?rev={tomb}", status=404).json == ERRORS["deleted"]
    res = client.get(f"/{fresh_db}/doc?revs_info=true&rev={tomb}", status=200)
    assert [r["rev"] for r in res.json["_revs_info"]] == [tomb, rev]


def test_put_with_deleted_true_deletes_with_200(client: Client, fresh_db: str) -> None:
    rev = _create(client, fresh_db, "doc")
    res = client.put_json(f"/{fresh_db}/doc", {"_rev": rev, "_deleted": True}, status=200)
    assert _pos(res.json["rev"]) == 2
    assert client.get(f"/{fresh_db}/doc", status=404).json == ERRORS["deleted"]
    assert client.get(f"/{fresh_db}", status=200).json["doc_del_count"] == 1


def test_recreate_after_delete_without_rev_extends_the_tombstone(client: Client,
                                                                 fresh_db: str) -> None:
    rev = _create(client, fresh_db, "doc", {"v": 1})
    tomb = client.delete(f"/{fresh_db}/doc?rev={rev}", status=200).json["rev"]
    res = client.put_json(f"/{fresh_db}/doc", {"v": 2}, status=201)
    new = res.json["rev"]
    assert _pos(new) == _pos(tomb) + 1 == 3
    doc = client.get(f"/{fresh_db}/doc?revs=true", status=200).json
    assert doc["v"] == 2
    assert doc["_revisions"] == {"start": 3, "ids": [r.split("-")[1] for r in (new, tomb, rev)]}
    info = client.get(f"/{fresh_db}", status=200).json
    assert (info["doc_count"], info["doc_del_count"]) == (1, 0)


# -- COPY ----------------------------------------------------------------------------------------

def test_copy_creates_the_destination_with_the_source_body(client: Client, fresh_db: str) -> None:
    rev = _create(client, fresh_db, "src", {"v": 1})
    res = client.raw("COPY", f"/{fresh_db}/src", headers={"Destination": "dst"}, status=201)
    assert res.json == {"ok": True, "id": "dst", "rev": rev}  # same body, no parent: same rev
    assert res.headers["Location"] == f"{HOST}/{fresh_db}/dst"
    assert res.headers["ETag"] == f'"{rev}"'
    assert client.get(f"/{fresh_db}/dst", status=200).json == {"_id": "dst", "_rev": rev, "v": 1}


def test_copy_onto_an_existing_doc_needs_its_rev_in_destination(client: Client,
                                                                fresh_db: str) -> None:
    _create(client, fresh_db, "src", {"v": 1})
    dst_rev = _create(client, fresh_db, "dst", {"v": 0})
    res = client.raw("COPY", f"/{fresh_db}/src", headers={"Destination": "dst"}, status=409)
    assert res.json == ERRORS["conflict"]
    res = client.raw("COPY", f"/{fresh_db}/src", headers={"Destination": f"dst?rev={dst_rev}"},
                     status=201)
    assert _pos(res.json["rev"]) == 2
    assert client.get(f"/{fresh_db}/dst", status=200).json["v"] == 1


def test_copy_of_an_older_source_rev_by_query_or_if_match(client: Client, fresh_db: str) -> None:
    first = _create(client, fresh_db, "src", {"v": 1})
    client.put_json(f"/{fresh_db}/src", {"_rev": first, "v": 2}, status=201)
    client.raw("COPY", f"/{fresh_db}/src?rev={first}", headers={"Destination": "a"}, status=201)
    client.raw("COPY", f"/{fresh_db}/src", status=201,
               headers={"Destination": "b", "If-Match": f'"{first}"'})
    assert client.get(f"/{fresh_db}/a", status=200).json["v"] == 1
    assert client.get(f"/{fresh_db}/b", status=200).json["v"] == 1


def test_copy_to_an_encoded_destination_id(client: Client, fresh_db: str) -> None:
    _create(client, fresh_db, "src")
    res = client.raw("COPY", f"/{fresh_db}/src", headers={"Destination": "a%2Fb"}, status=201)
    assert res.json["id"] == "a/b"
    client.raw("GET", f"/{fresh_db}/a%2Fb", status=200)


def test_copy_without_destination_is_400(client: Client, fresh_db: str) -> None:
    _create(client, fresh_db, "src")
    res = client.raw("COPY", f"/{fresh_db}/src", status=400)
    assert res.json == {"error": "bad_request",
                        "reason": "Destination header is mandatory for COPY."}


def test_copy_of_missing_or_deleted_source_is_404(client: Client, fresh_db: str) -> None:
    res = client.raw("COPY", f"/{fresh_db}/nope", headers={"Destination": "x"}, status=404)
    assert res.json == ERRORS["missing"]
    rev = _create(client, fresh_db, "gone")
    client.delete(f"/{fresh_db}/gone?rev={rev}", status=200)
    res = client.raw("COPY", f"/{fresh_db}/gone", headers={"Destination": "x"}, status=404)
    assert res.json == ERRORS["deleted"]
    assert client.get(f"/{fresh_db}/x", status=404).json == ERRORS["missing"]


# -- conflicts and meta members ------------------------------------------------------------------

def test_two_replicated_first_revs_conflict_and_the_greater_wins(client: Client,
                                                                 fresh_db: str) -> None:
    _conflicted(client, fresh_db)
    res = client.get(f"/{fresh_db}/c", status=200)
    assert res.json == {"_id": "c", "_rev": REV_B, "v": "b"}
    assert res.headers["ETag"] == f'"{REV_B}"'
    res = client.get(f"/{fresh_db}/c?conflicts=true", status=200)
    assert res.json == {"_id": "c", "_rev": REV_B, "v": "b", "_conflicts": [REV_A]}
    assert "ETag" not in res.headers  # a meta member is in the answer
    info = client.get(f"/{fresh_db}", status=200).json
    assert (info["doc_count"], info["doc_del_count"]) == (1, 0)


def test_new_edits_false_without_rev_is_400(client: Client, fresh_db: str) -> None:
    res = client.put_json(f"/{fresh_db}/c?new_edits=false", {"v": 1}, status=400)
    assert res.json == {"error": "bad_request", "reason": "When `new_edits: false`, the document "
                                                          "needs `_rev` or `_revisions` specified"}


def test_replaying_a_replicated_rev_is_a_no_op(client: Client, fresh_db: str) -> None:
    _conflicted(client, fresh_db)
    seq = client.get(f"/{fresh_db}", status=200).json["update_seq"]
    res = client.put_json(f"/{fresh_db}/c?new_edits=false", {"_rev": REV_A, "v": "other"},
                          status=201)
    assert res.json["rev"] == REV_A
    assert client.get(f"/{fresh_db}", status=200).json["update_seq"] == seq
    assert client.get(f"/{fresh_db}/c?rev={REV_A}", status=200).json["v"] == "a"


def test_updating_a_losing_leaf_is_allowed(client: Client, fresh_db: str) -> None:
    _conflicted(client, fresh_db)
    res = client.put_json(f"/{fresh_db}/c", {"_rev": REV_A, "v": "a2"}, status=201)
    new = res.json["rev"]
    assert _pos(new) == 2
    doc = client.get(f"/{fresh_db}/c?conflicts=true", status=200).json
    assert doc == {"_id": "c", "_rev": new, "v": "a2", "_conflicts": [REV_B]}


def test_conflicts_true_without_conflicts_adds_nothing_and_keeps_the_etag(client: Client,
                                                                          fresh_db: str) -> None:
    rev = _create(client, fresh_db, "doc")
    res = client.get(f"/{fresh_db}/doc?conflicts=true&deleted_conflicts=true", status=200)
    assert res.json == {"_id": "doc", "_rev": rev}
    assert res.headers["ETag"] == f'"{rev}"'


def test_deleted_conflicts_lists_deleted_losing_leaves(client: Client, fresh_db: str) -> None:
    _conflicted(client, fresh_db)
    tomb = client.delete(f"/{fresh_db}/c?rev={REV_A}", status=200).json["rev"]
    assert client.get(f"/{fresh_db}/c?conflicts=true", status=200).json == {
        "_id": "c", "_rev": REV_B, "v": "b"}
    res = client.get(f"/{fresh_db}/c?deleted_conflicts=true", status=200)
    assert res.json == {"_id": "c", "_rev": REV_B, "v": "b", "_deleted_conflicts": [tomb]}
    assert "ETag" not in res.headers


def test_deleting_the_winner_of_a_conflict_promotes_the_loser(client: Client,
                                                              fresh_db: str) -> None:
    _conflicted(client, fresh_db)
    tomb = client.delete(f"/{fresh_db}/c?rev={REV_B}", status=200).json["rev"]
    res = client.get(f"/{fresh_db}/c?deleted_conflicts=true", status=200)
    assert res.json == {"_id": "c", "_rev": REV_A, "v": "a", "_deleted_conflicts": [tomb]}


def test_meta_true_gives_conflicts_deleted_conflicts_and_revs_info(client: Client,
                                                                   fresh_db: str) -> None:
    _conflicted(client, fresh_db)
    client.put_json(f"/{fresh_db}/c?new_edits=false", {"_rev": "1-" + "9" * 32, "v": "9"},
                    status=201)
    tomb = client.delete(f"/{fresh_db}/c?rev={'1-' + '9' * 32}", status=200).json["rev"]
    res = client.get(f"/{fresh_db}/c?meta=true", status=200)
    assert res.json == {
        "_id": "c", "_rev": REV_B, "v": "b",
        "_revs_info": [{"rev": REV_B, "status": "available"}],
        "_conflicts": [REV_A],
        "_deleted_conflicts": [tomb],
    }
    assert "ETag" not in res.headers


def test_revs_true_lists_the_ancestry_newest_first(client: Client, fresh_db: str) -> None:
    revs = [_create(client, fresh_db, "doc", {"v": 0})]
    for v in (1, 2):
        revs.append(client.put_json(f"/{fresh_db}/doc", {"_rev": revs[-1], "v": v},
                                    status=201).json["rev"])
    res = client.get(f"/{fresh_db}/doc?revs=true", status=200)
    assert res.json["_revisions"] == {"start": 3, "ids": [r[2:] for r in reversed(revs)]}
    assert res.headers["ETag"] == f'"{revs[-1]}"'  # `_revisions` is not a meta member
    old = client.get(f"/{fresh_db}/doc?revs=true&rev={revs[1]}", status=200).json
    assert old["_revisions"] == {"start": 2, "ids": [revs[1][2:], revs[0][2:]]}


def test_revs_info_true_gives_the_status_of_each_ancestor(client: Client, fresh_db: str) -> None:
    first = _create(client, fresh_db, "doc", {"v": 1})
    second = client.put_json(f"/{fresh_db}/doc", {"_rev": first, "v": 2}, status=201).json["rev"]
    res = client.get(f"/{fresh_db}/doc?revs_info=true", status=200)
    assert res.json["_revs_info"] == [{"rev": second, "status": "available"},
                                      {"rev": first, "status": "available"}]
    assert "ETag" not in res.headers
    tomb = client.delete(f"/{fresh_db}/doc?rev={second}", status=200).json["rev"]
    res = client.get(f"/{fresh_db}/doc?revs_info=true&rev={tomb}", status=200)
    assert res.json["_revs_info"][0] == {"rev": tomb, "status": "deleted"}


def test_local_seq_true_gives_the_seq_of_the_docs_last_change(client: Client,
                                                              fresh_db: str) -> None:
    _create(client, fresh_db, "a")
    rev = _create(client, fresh_db, "b")
    client.put_json(f"/{fresh_db}/b", {"_rev": rev, "v": 1}, status=201)
    res = client.get(f"/{fresh_db}/b?local_seq=true", status=200)
    assert res.json["_local_seq"] == client.get(f"/{fresh_db}", status=200).json["update_seq"]
    assert "ETag" not in res.headers
    a_seq = client.get(f"/{fresh_db}/a?local_seq=true", status=200).json["_local_seq"]
    assert a_seq != res.json["_local_seq"]


def test_latest_true_with_an_old_rev_opens_the_current_leaf(client: Client,
                                                            fresh_db: str) -> None:
    first = _create(client, fresh_db, "doc", {"v": 1})
    second = client.put_json(f"/{fresh_db}/doc", {"_rev": first, "v": 2}, status=201).json["rev"]
    res = client.get(f"/{fresh_db}/doc?rev={first}&latest=true", status=200)
    assert res.json == {"_id": "doc", "_rev": second, "v": 2}


def test_latest_true_with_a_conflict_opens_the_winner_as_couchdb_3(client: Client,
                                                                   fresh_db: str) -> None:
    _conflicted(client, fresh_db)
    res = client.get(f"/{fresh_db}/c?rev={REV_A}&latest=true", status=200)
    assert res.json == {"_id": "c", "_rev": REV_B, "v": "b"}


# -- open_revs -----------------------------------------------------------------------------------

JSON_ACCEPT = {"Accept": "application/json"}


def test_open_revs_all_lists_every_leaf_as_json(client: Client, fresh_db: str) -> None:
    _conflicted(client, fresh_db)
    res = client.get(f"/{fresh_db}/c?open_revs=all", headers=JSON_ACCEPT, status=200)
    assert res.content_type == "application/json"
    assert sorted(res.json, key=lambda r: r["ok"]["_rev"]) == [
        {"ok": {"_id": "c", "_rev": REV_A, "v": "a"}},
        {"ok": {"_id": "c", "_rev": REV_B, "v": "b"}},
    ]


def test_open_revs_all_includes_deleted_leaves(client: Client, fresh_db: str) -> None:
    _conflicted(client, fresh_db)
    tomb = client.delete(f"/{fresh_db}/c?rev={REV_A}", status=200).json["rev"]
    res = client.get(f"/{fresh_db}/c?open_revs=all", headers=JSON_ACCEPT, status=200)
    assert {"ok": {"_id": "c", "_rev": tomb, "_deleted": True}} in res.json
    assert len(res.json) == 2


def test_open_revs_list_answers_in_order_with_missing_entries(client: Client,
                                                              fresh_db: str) -> None:
    _conflicted(client, fresh_db)
    unknown = "2-" + "c" * 32
    revs = json.dumps([unknown, REV_A])
    res = client.get(f"/{fresh_db}/c?open_revs={revs}&revs=true", headers=JSON_ACCEPT,
                     status=200)
    assert res.json == [
        {"missing": unknown},
        {"ok": {"_id": "c", "_rev": REV_A, "v": "a",
                "_revisions": {"start": 1, "ids": ["a" * 32]}}},
    ]


def test_open_revs_list_of_a_missing_doc_reports_each_rev_missing(client: Client,
                                                                  fresh_db: str) -> None:
    res = client.get(f"/{fresh_db}/nope?open_revs={json.dumps([REV_A])}", headers=JSON_ACCEPT,
                     status=200)
    assert res.json == [{"missing": REV_A}]


def test_open_revs_all_of_a_missing_doc_is_404(client: Client, fresh_db: str) -> None:
    res = client.get(f"/{fresh_db}/nope?open_revs=all", headers=JSON_ACCEPT, status=404)
    assert res.json == ERRORS["missing"]


def test_open_revs_with_latest_gives_the_leaf_below_each_rev(client: Client,
                                                             fresh_db: str) -> None:
    first = _create(client, fresh_db, "doc", {"v": 1})
    second = client.put_json(f"/{fresh_db}/doc", {"_rev": first, "v": 2}, status=201).json["rev"]
    res = client.get(f"/{fresh_db}/doc?open_revs={json.dumps([first])}&latest=true",
                     headers=JSON_ACCEPT, status=200)
    assert res.json == [{"ok": {"_id": "doc", "_rev": second, "v": 2}}]


def test_open_revs_without_accept_json_is_multipart_mixed(client: Client, fresh_db: str) -> None:
    _conflicted(client, fresh_db)
    unknown = "1-" + "c" * 32
    res = client.get(f"/{fresh_db}/c?open_revs={json.dumps([REV_A, unknown])}", status=200)
    match = re.match(r'^multipart/mixed; boundary="([^"]+)"$', res.headers["Content-Type"])
    assert match
    boundary = match.group(1).encode()
    assert res.body.startswith(b"--" + boundary + b"\r\n")
    assert res.body.endswith(b"--" + boundary + b"--")
    parts = res.body[:-len(boundary) - 4].split(b"--" + boundary + b"\r\n")[1:]
    heads, docs = zip(*(p.rstrip(b"\r\n").split(b"\r\n\r\n", 1) for p in parts))
    assert heads == (b"Content-Type: application/json",
                     b'Content-Type: application/json; error="true"')
    assert [json.loads(d) for d in docs] == [{"_id": "c", "_rev": REV_A, "v": "a"},
                                            {"missing": unknown}]


def test_open_revs_that_is_not_a_list_of_revs_is_400(client: Client, fresh_db: str) -> None:
    _create(client, fresh_db, "doc")
    for value in ("notjson", '"1-abc"', "[1]"):
        res = client.get(f"/{fresh_db}/doc?open_revs={value}", headers=JSON_ACCEPT, status=400)
        assert res.json["error"] in ("bad_request", "query_parse_error"), value


# -- design documents ----------------------------------------------------------------------------

def test_design_doc_lives_under_the_design_prefix(client: Client, fresh_db: str) -> None:
    res = client.put_json(f"/{fresh_db}/_design/app", {"language": "javascript"}, status=201)
    assert res.json == {"ok": True, "id": "_design/app", "rev": res.json["rev"]}
    assert res.headers["Location"] == f"{HOST}/{fresh_db}/_design%2Fapp"
    doc = client.get(f"/{fresh_db}/_design/app", status=200).json
    assert doc == {"_id": "_design/app", "_rev": res.json["rev"], "language": "javascript"}
    ids = [row["id"] for row in client.get(f"/{fresh_db}/_all_docs", status=200).json["rows"]]
    assert ids == ["_design/app"]
    assert client.get(f"/{fresh_db}", status=200).json["doc_count"] == 1


def test_design_doc_written_through_encoded_slash(client: Client, fresh_db: str) -> None:
    res = client.raw("PUT", f"/{fresh_db}/_design%2Fapp", "{}", status=201)
    assert res.json["id"] == "_design/app"
    assert client.get(f"/{fresh_db}/_design/app", status=200).json["_id"] == "_design/app"
    rev = res.json["rev"]
    res = client.raw("DELETE", f"/{fresh_db}/_design%2Fapp?rev={rev}", status=200)
    assert res.json["id"] == "_design/app"
    assert client.get(f"/{fresh_db}/_design/app", status=404).json == ERRORS["deleted"]


def test_get_of_design_doc_through_encoded_slash_redirects(client: Client, fresh_db: str) -> None:
    rev = _create(client, fresh_db, "_design/app")
    res = client.raw("GET", f"/{fresh_db}/_design%2Fapp?rev={rev}", status=301)
    assert res.headers["Location"] == f"{HOST}/{fresh_db}/_design/app?rev={rev}"
    assert res.body == b""


def test_design_doc_update_and_delete(client: Client, fresh_db: str) -> None:
    rev = _create(client, fresh_db, "_design/app", {"v": 1})
    rev = client.put_json(f"/{fresh_db}/_design/app", {"_rev": rev, "v": 2},
                          status=201).json["rev"]
    assert client.put_json(f"/{fresh_db}/_design/app", {"v": 3}, status=409).json == \
        ERRORS["conflict"]
    client.delete(f"/{fresh_db}/_design/app?rev={rev}", status=200)
    assert client.get(f"/{fresh_db}/_design/app", status=404).json == ERRORS["deleted"]


# -- ids -----------------------------------------------------------------------------------------

def test_id_with_leading_underscore_is_400_illegal_docid(client: Client, fresh_db: str) -> None:
    expected = {"error": "illegal_docid",
                "reason": "Only reserved document ids may start with underscore."}
    for raw in (f"/{fresh_db}/_foo", f"/{fresh_db}/_design", f"/{fresh_db}/_foo%2Fbar"):
        assert client.raw("PUT", raw, "{}", status=400).json == expected, raw
        assert client.raw("GET", raw, status=400).json == expected, raw
    assert client.get(f"/{fresh_db}", status=200).json["doc_count"] == 0


def test_bare_design_or_local_prefix_is_400_illegal_docid(client: Client, fresh_db: str) -> None:
    design = {"error": "illegal_docid", "reason": "Illegal document id `_design/`"}
    assert client.raw("PUT", f"/{fresh_db}/_design%2F", "{}", status=400).json == design
    assert client.post_json(f"/{fresh_db}", {"_id": "_design/"}, status=400).json == design
    res = client.post_json(f"/{fresh_db}", {"_id": "_local/"}, status=400)
    assert res.json == {"error": "illegal_docid", "reason": "Illegal document id `_local/`"}
    assert client.get(f"/{fresh_db}", status=200).json["doc_count"] == 0


def test_empty_id_is_400_illegal_docid(client: Client, fresh_db: str) -> None:
    res = client.post_json(f"/{fresh_db}", {"_id": ""}, status=400)
    assert res.json == {"error": "illegal_docid", "reason": "Document id must not be empty"}


def test_encoded_slash_is_part_of_the_id_and_a_plain_slash_is_not(client: Client,
                                                                  fresh_db: str) -> None:
    res = client.raw("PUT", f"/{fresh_db}/a%2Fb", '{"v": 1}', status=201)
    assert res.json["id"] == "a/b"
    assert res.headers["Location"] == f"{HOST}/{fresh_db}/a%2Fb"
    assert client.raw("GET", f"/{fresh_db}/a%2Fb", status=200).json == {
        "_id": "a/b", "_rev": res.json["rev"], "v": 1}
    # `/db/a/b` is attachment `b` of document `a`, which does not exist
    assert client.raw("GET", f"/{fresh_db}/a/b", status=404).json["error"] == "not_found"
    assert client.get(f"/{fresh_db}/a", status=404).json == ERRORS["missing"]
    ids = [row["id"] for row in client.get(f"/{fresh_db}/_all_docs", status=200).json["rows"]]
    assert ids == ["a/b"]


def test_location_percent_encodes_a_unicode_id(client: Client, fresh_db: str) -> None:
    res = client.raw("PUT", f"/{fresh_db}/%C3%A9t%C3%A9%20%E2%98%83", "{}", status=201)
    assert res.json["id"] == "\u00e9t\u00e9 \u2603"
    assert res.headers["Location"] == f"{HOST}/{fresh_db}/%C3%A9t%C3%A9%20%E2%98%83"
    doc = client.raw("GET", f"/{fresh_db}/%C3%A9t%C3%A9%20%E2%98%83", status=200).json
    assert doc["_id"] == "\u00e9t\u00e9 \u2603"
    res = client.post_json(f"/{fresh_db}", {"_id": "\u00fcber"}, status=201)
    assert res.headers["Location"] == f"{HOST}/{fresh_db}/%C3%BCber"


# -- bodies --------------------------------------------------------------------------------------

def test_unknown_special_member_is_400_doc_validation_and_nothing_is_written(
        client: Client, fresh_db: str) -> None:
    res = client.put_json(f"/{fresh_db}/doc", {"_foo": 1, "a": 2}, status=400)
    assert res.json == {"error": "doc_validation", "reason": "Bad special document member: _foo"}
    assert client.get(f"/{fresh_db}/doc", status=404).json == ERRORS["missing"]


def test_non_boolean_deleted_is_400_bad_special_member(client: Client, fresh_db: str) -> None:
    res = client.put_json(f"/{fresh_db}/doc", {"_deleted": "yes"}, status=400)
    assert res.json == {"error": "doc_validation",
                        "reason": "Bad special document member: _deleted"}


def test_post_to_a_doc_needs_a_form_upload_content_type(client: Client, fresh_db: str) -> None:
    _create(client, fresh_db, "doc")
    res = client.post_json(f"/{fresh_db}/doc", {}, status=415)
    assert res.json == {"error": "bad_content_type",
                        "reason": "Content-Type must be multipart/form-data"}


def test_ignored_special_members_are_dropped(client: Client, fresh_db: str) -> None:
    body = {"a": 1, "_conflicts": ["1-x"], "_revs_info": [], "_deleted_conflicts": [],
            "_local_seq": 9}
    rev = client.put_json(f"/{fresh_db}/doc", body, status=201).json["rev"]
    assert client.get(f"/{fresh_db}/doc", status=200).json == {"_id": "doc", "_rev": rev, "a": 1}


@pytest.mark.parametrize("body", ["[]", '"text"', "1", "null"])
def test_body_that_is_not_an_object_is_400(client: Client, fresh_db: str, body: str) -> None:
    res = client.raw("PUT", f"/{fresh_db}/doc", body, status=400)
    assert res.json == {"error": "bad_request", "reason": "Document must be a JSON object"}


def test_body_that_is_not_json_is_400(client: Client, fresh_db: str) -> None:
    for body in ("{", "", "{'a': 1}", "{\"a\": NaN}"):
        res = client.raw("PUT", f"/{fresh_db}/doc", body, status=400)
        assert res.json == {"error": "bad_request", "reason": "invalid UTF-8 JSON"}, body
    assert client.get(f"/{fresh_db}/doc", status=404).json == ERRORS["missing"]


def test_duplicate_keys_are_400_and_nothing_is_written(client: Client, fresh_db: str) -> None:
    res = client.raw("PUT", f"/{fresh_db}/doc", '{"a": 1, "a": 2}', status=400)
    assert res.json == {"error": "bad_request", "reason": 'Duplicate key "a"'}
    assert client.get(f"/{fresh_db}/doc", status=404).json == ERRORS["missing"]
    rev = _create(client, fresh_db, "doc", {"a": 0})
    res = client.raw("PUT", f"/{fresh_db}/doc", json.dumps({"_rev": rev})[:-1] + ', "b": {"c": 1'
                     ', "c": 2}}', status=400)
    assert res.json == {"error": "bad_request", "reason": 'Duplicate key "c"'}
    assert client.get(f"/{fresh_db}/doc", status=200).json == {"_id": "doc", "_rev": rev, "a": 0}


def test_large_integers_and_unicode_round_trip_exactly(client: Client, fresh_db: str) -> None:
    raw = '{"big": 123456789012345678901234567890, "f": 1.5, "s": "\\u00e9\\ud83d\\ude00"}'
    client.raw("PUT", f"/{fresh_db}/doc", raw, status=201)
    body = client.get(f"/{fresh_db}/doc", status=200).body
    assert b'"big":123456789012345678901234567890' in body
    assert json.loads(body)["s"] == "\u00e9\U0001f600"


@pytest.fixture
def small_docs_client(store_url: str, tmp_path: Any) -> Iterator[Client]:
    """A client of an app whose `max_document_size` is 100 bytes."""
    app = create_app({"database_url": store_url, "data_dir": str(tmp_path / "data"),
                      "max_document_size": 100})
    client = Client(app, extra_environ={"HTTP_HOST": "127.0.0.1:5984"})
    client.put("/db", status=201)
    yield client
    app.store.close()


def test_document_over_max_document_size_is_413_document_too_large(
        small_docs_client: Client) -> None:
    client = small_docs_client
    client.put_json("/db/small", {"a": "x" * 10}, status=201)
    res = client.put_json("/db/big", {"a": "x" * 200}, status=413)
    assert res.json == {"error": "document_too_large", "reason": "big"}
    res = client.post_json("/db", {"_id": "big", "a": "x" * 200}, status=413)
    assert res.json == {"error": "document_too_large", "reason": "big"}
    assert client.get("/db/big", status=404).json == ERRORS["missing"]


# -- batch=ok ------------------------------------------------------------------------------------

def test_put_batch_ok_is_202_with_id_and_no_rev(client: Client, fresh_db: str) -> None:
    res = client.put_json(f"/{fresh_db}/doc?batch=ok", {"v": 1}, status=202)
    assert res.json == {"ok": True, "id": "doc"}
    assert client.get(f"/{fresh_db}/doc", status=200).json["v"] == 1
