"""Database endpoints as in CouchDB 3.x: create, describe, delete, POST a doc, settings."""

from __future__ import annotations

import re

from conftest import Client

NO_DB = {"error": "not_found", "reason": "Database does not exist."}
EXISTS = {"error": "file_exists",
          "reason": "The database could not be created, the file already exists."}
EMPTY_REV = "1-967a00dff5e02add41819138abb3284d"


def _illegal(name: str) -> dict[str, str]:
    return {"error": "illegal_database_name",
            "reason": f"Name: '{name}'. Only lowercase characters (a-z), digits (0-9), and any of "
                      "the characters _, $, (, ), +, -, and / are allowed. "
                      "Must begin with a letter."}


# -- PUT /{db} -----------------------------------------------------------------------------------

def test_put_db_creates_it_with_201_ok_and_location(client: Client) -> None:
    res = client.put("/recipes", status=201)
    assert res.json == {"ok": True}
    assert res.headers["Location"] == "http://127.0.0.1:5984/recipes"
    assert client.get("/recipes", status=200).json["db_name"] == "recipes"


def test_put_existing_db_is_412_file_exists(client: Client) -> None:
    client.put("/recipes", status=201)
    assert client.put("/recipes", status=412).json == EXISTS


def test_put_db_accepts_couchdb_legal_names(client: Client) -> None:
    names = ["a", "db-1", "a$b(c)+d_e", "a/b/c", "x" * 238]
    for name in names:
        raw = "/" + name.replace("/", "%2F").replace("$", "%24").replace("+", "%2B")
        assert client.raw("PUT", raw, status=201).json == {"ok": True}, name
        assert client.raw("GET", raw, status=200).json["db_name"] == name
    assert client.get("/_all_dbs", status=200).json == sorted(names)


def test_put_db_accepts_system_db_names(client: Client) -> None:
    for name in ("_users", "_replicator", "_global_changes"):
        assert client.put(f"/{name}", status=201).json == {"ok": True}
    assert client.get("/_all_dbs", status=200).json == [
        "_global_changes", "_replicator", "_users"]


ILLEGAL_NAMES = [("/_foo", "_foo"), ("/Recipes", "Recipes"), ("/1db", "1db"),
                 ("/a%20b", "a b"), ("/a.b", "a.b"), ("/" + "x" * 239, "x" * 239)]


def test_put_db_with_illegal_name_is_400_illegal_database_name(client: Client) -> None:
    for raw, name in ILLEGAL_NAMES:
        assert client.raw("PUT", raw, status=400).json == _illegal(name)
    assert client.get("/_all_dbs", status=200).json == []


def test_encoded_slash_in_db_name_is_one_name(client: Client) -> None:
    res = client.raw("PUT", "/a%2Fb", status=201)
    assert res.headers["Location"] == "http://127.0.0.1:5984/a%2Fb"
    assert client.get("/_all_dbs", status=200).json == ["a/b"]
    assert client.raw("GET", "/a%2Fb", status=200).json["db_name"] == "a/b"
    assert client.raw("PUT", "/a%2Fb/doc", "{}", status=201).json["id"] == "doc"
    assert client.raw("GET", "/a%2Fb/doc", status=200).json["_id"] == "doc"
    assert client.raw("DELETE", "/a%2Fb", status=200).json == {"ok": True}
    assert client.get("/_all_dbs", status=200).json == []


# -- GET/HEAD /{db} ------------------------------------------------------------------------------

def test_get_db_info_has_couchdb_fields(client: Client, fresh_db: str) -> None:
    info = client.get(f"/{fresh_db}", status=200).json
    assert info["db_name"] == fresh_db
    assert info["doc_count"] == 0
    assert info["doc_del_count"] == 0
    assert info["compact_running"] is False
    assert info["instance_start_time"] == "0"
    assert info["disk_format_version"] == 8
    assert info["props"] == {}
    assert set(info["sizes"]) == {"active", "external", "file"}
    assert set(info["cluster"]) == {"q", "n", "w", "r"}
    assert {"update_seq", "purge_seq"} <= set(info)


def test_db_info_counts_live_deleted_and_design_docs_but_not_local(client: Client,
                                                                   fresh_db: str) -> None:
    before = client.get(f"/{fresh_db}", status=200).json["update_seq"]
    client.put_json(f"/{fresh_db}/a", {}, status=201)
    rev = client.put_json(f"/{fresh_db}/b", {}, status=201).json["rev"]
    client.put_json(f"/{fresh_db}/_design/d", {}, status=201)
    client.put_json(f"/{fresh_db}/_local/l", {}, status=201)
    client.delete(f"/{fresh_db}/b?rev={rev}", status=200)
    info = client.get(f"/{fresh_db}", status=200).json
    assert info["doc_count"] == 2
    assert info["doc_del_count"] == 1
    assert info["update_seq"] != before
    assert info["sizes"]["external"] >= 0


def test_get_missing_db_is_404_database_does_not_exist(client: Client) -> None:
    assert client.get("/nope", status=404).json == NO_DB


def test_head_db_is_200_without_body(client: Client, fresh_db: str) -> None:
    res = client.head(f"/{fresh_db}", status=200)
    assert res.body == b""


def test_head_missing_db_is_404_without_body(client: Client) -> None:
    assert client.head("/nope", status=404).body == b""


# -- DELETE /{db} --------------------------------------------------------------------------------

def test_delete_db_is_200_ok_and_forgets_it(client: Client, fresh_db: str) -> None:
    client.put_json(f"/{fresh_db}/doc", {}, status=201)
    assert client.delete(f"/{fresh_db}", status=200).json == {"ok": True}
    assert client.get(f"/{fresh_db}", status=404).json == NO_DB
    assert client.get(f"/{fresh_db}/doc", status=404).json == NO_DB
    # a new database of the same name starts empty
    client.put(f"/{fresh_db}", status=201)
    assert client.get(f"/{fresh_db}", status=200).json["doc_count"] == 0
    assert client.get(f"/{fresh_db}/doc", status=404).json["reason"] == "missing"


def test_delete_missing_db_is_404(client: Client) -> None:
    assert client.delete("/nope", status=404).json == NO_DB


def test_delete_db_with_rev_parameter_is_400_and_keeps_it(client: Client, fresh_db: str) -> None:
    res = client.delete(f"/{fresh_db}?rev=1-abc", status=400)
    assert res.json == {
        "error": "bad_request",
        "reason": "You tried to DELETE a database with a ?=rev parameter. "
                  "Did you mean to DELETE a document instead?",
    }
    client.get(f"/{fresh_db}", status=200)


# -- POST /{db} ----------------------------------------------------------------------------------

def test_post_doc_generates_an_id_and_answers_201_with_location(client: Client,
                                                                fresh_db: str) -> None:
    res = client.post_json(f"/{fresh_db}", {"servings": 4, "subtitle": "Delicious with fresh bread",
                                            "title": "Fish Stew"}, status=201)
    body = res.json
    assert set(body) == {"ok", "id", "rev"} and body["ok"] is True
    assert re.match(r"^[0-9a-f]{32}$", body["id"])
    assert body["rev"] == "1-9c65296036141e575d32ba9c034dd3ee"  # as in CouchDB's docs
    assert res.headers["Location"] == f"http://127.0.0.1:5984/{fresh_db}/{body['id']}"
    doc = client.get(f"/{fresh_db}/{body['id']}", status=200).json
    assert doc["title"] == "Fish Stew" and doc["_rev"] == body["rev"]


def test_post_doc_ids_are_distinct(client: Client, fresh_db: str) -> None:
    ids = {client.post_json(f"/{fresh_db}", {}, status=201).json["id"] for _ in range(5)}
    assert len(ids) == 5


def test_post_doc_with_id_uses_it(client: Client, fresh_db: str) -> None:
    res = client.post_json(f"/{fresh_db}", {"_id": "FishStew"}, status=201)
    assert res.json == {"ok": True, "id": "FishStew", "rev": EMPTY_REV}
    assert res.headers["Location"] == f"http://127.0.0.1:5984/{fresh_db}/FishStew"


def test_post_doc_with_existing_id_is_409_conflict(client: Client, fresh_db: str) -> None:
    client.post_json(f"/{fresh_db}", {"_id": "x", "v": 1}, status=201)
    res = client.post_json(f"/{fresh_db}", {"_id": "x", "v": 2}, status=409)
    assert res.json == {"error": "conflict", "reason": "Document update conflict."}
    assert client.get(f"/{fresh_db}/x", status=200).json["v"] == 1


def test_post_doc_batch_ok_is_202_without_rev(client: Client, fresh_db: str) -> None:
    res = client.post_json(f"/{fresh_db}?batch=ok", {"_id": "b"}, status=202)
    assert res.json == {"ok": True, "id": "b"}
    assert client.get(f"/{fresh_db}/b", status=200).json["_rev"] == EMPTY_REV


def test_post_doc_needs_json_content_type(client: Client, fresh_db: str) -> None:
    res = client.post(f"/{fresh_db}", "{}", headers={"Content-Type": "text/plain"}, status=415)
    assert res.json == {"error": "bad_content_type",
                        "reason": "Content-Type must be application/json"}


def test_post_doc_to_missing_db_is_404(client: Client) -> None:
    assert client.post_json("/nope", {}, status=404).json == NO_DB


def test_post_non_object_is_400(client: Client, fresh_db: str) -> None:
    res = client.post(f"/{fresh_db}", "[1]", headers={"Content-Type": "application/json"},
                      status=400)
    assert res.json == {"error": "bad_request", "reason": "Document must be a JSON object"}


def test_post_doc_with_illegal_id_is_400(client: Client, fresh_db: str) -> None:
    res = client.post_json(f"/{fresh_db}", {"_id": "_foo"}, status=400)
    assert res.json == {"error": "illegal_docid",
                        "reason": "Only reserved document ids may start with underscore."}
    res = client.post_json(f"/{fresh_db}", {"_id": ""}, status=400)
    assert res.json == {"error": "illegal_docid", "reason": "Document id must not be empty"}
    res = client.post_json(f"/{fresh_db}", {"_id": 5}, status=400)
    assert res.json == {"error": "illegal_docid", "reason": "Document id must be a string"}
    assert client.get(f"/{fresh_db}", status=200).json["doc_count"] == 0


# -- /{db}/_revs_limit ---------------------------------------------------------------------------

def test_revs_limit_defaults_to_1000_and_can_be_set(client: Client, fresh_db: str) -> None:
    assert client.get(f"/{fresh_db}/_revs_limit", status=200).json == 1000
    res = client.put(f"/{fresh_db}/_revs_limit", "5",
                     headers={"Content-Type": "application/json"}, status=200)
    assert res.json == {"ok": True}
    assert client.get(f"/{fresh_db}/_revs_limit", status=200).json == 5


def test_revs_limit_refuses_what_is_not_a_positive_integer(client: Client,
                                                          fresh_db: str) -> None:
    for value in ('"5"', "0", "-1", "1.5", "{}", "true"):
        res = client.put(f"/{fresh_db}/_revs_limit", value,
                         headers={"Content-Type": "application/json"}, status=400)
        assert res.json["error"] == "bad_request", value
    assert client.get(f"/{fresh_db}/_revs_limit", status=200).json == 1000


def test_revs_limit_of_missing_db_is_404(client: Client) -> None:
    assert client.get("/nope/_revs_limit", status=404).json == NO_DB


# -- /{db}/_security -----------------------------------------------------------------------------

ADMIN_ONLY = {"members": {"roles": ["_admin"]}, "admins": {"roles": ["_admin"]}}


def test_security_is_couchdb3_admin_only_until_set(client: Client, fresh_db: str) -> None:
    assert client.get(f"/{fresh_db}/_security", status=200).json == ADMIN_ONLY


def test_security_put_is_stored_and_returned(client: Client, fresh_db: str) -> None:
    sec = {"admins": {"names": ["boss"], "roles": ["ops"]},
           "members": {"names": ["ann"], "roles": []}}
    assert client.put_json(f"/{fresh_db}/_security", sec, status=200).json == {"ok": True}
    assert client.get(f"/{fresh_db}/_security", status=200).json == sec


def test_security_of_missing_db_is_404(client: Client) -> None:
    assert client.get("/nope/_security", status=404).json == NO_DB


def test_security_put_with_non_object_section_is_400(client: Client, fresh_db: str) -> None:
    res = client.put_json(f"/{fresh_db}/_security", {"admins": ["boss"]}, status=400)
    assert res.json["error"] == "bad_request"
    assert client.get(f"/{fresh_db}/_security", status=200).json == ADMIN_ONLY


# -- /{db}/_ensure_full_commit -------------------------------------------------------------------

def test_ensure_full_commit_is_201_with_instance_start_time(client: Client, fresh_db: str) -> None:
    res = client.post_json(f"/{fresh_db}/_ensure_full_commit", {}, status=201)
    assert res.json == {"ok": True, "instance_start_time": "0"}


def test_ensure_full_commit_needs_json_content_type(client: Client, fresh_db: str) -> None:
    res = client.post(f"/{fresh_db}/_ensure_full_commit", "",
                      headers={"Content-Type": "text/plain"}, status=415)
    assert res.json["error"] == "bad_content_type"


def test_ensure_full_commit_of_missing_db_is_404(client: Client) -> None:
    assert client.post_json("/nope/_ensure_full_commit", {}, status=404).json == NO_DB

