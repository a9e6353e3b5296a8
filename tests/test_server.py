"""Server endpoints as in CouchDB 3.x: `/`, `/_up`, `/_all_dbs`, `/_dbs_info`, `/_uuids`."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Client
from settee.server import create_app

HEX32 = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture
def sqlite_client(tmp_path: Any) -> Iterator[Client]:
    """A client of an app on SQLite only, for answers that never depend on the backend."""
    app = create_app({"data_dir": str(tmp_path / "data")})
    yield Client(app, extra_environ={"HTTP_HOST": "127.0.0.1:5984"})
    app.store.close()


def _make_dbs(client: Client, *names: str) -> None:
    for name in names:
        client.put(f"/{name}", status=201)


# -- GET / ---------------------------------------------------------------------------------------

def test_welcome_names_couchdb_version_uuid_features_and_vendor(client: Client) -> None:
    res = client.get("/", status=200)
    assert res.content_type == "application/json"
    body = res.json
    assert body["couchdb"] == "Welcome"
    assert re.match(r"^3\.\d+\.\d+$", body["version"])
    assert HEX32.match(body["uuid"])
    assert isinstance(body["git_sha"], str)
    assert "partitioned" in body["features"]
    assert isinstance(body["vendor"]["name"], str) and body["vendor"]["name"]


def test_welcome_uuid_is_stable_across_app_restarts_on_the_same_store(
        store_url: str, tmp_path: Any) -> None:
    settings = {"database_url": store_url, "data_dir": str(tmp_path / "data")}
    first = create_app(settings)
    try:
        uuid = Client(first).get("/", status=200).json["uuid"]
    finally:
        first.store.close()
    second = create_app(settings)
    try:
        assert Client(second).get("/", status=200).json["uuid"] == uuid
    finally:
        second.store.close()


def test_welcome_head_has_headers_and_no_body(sqlite_client: Client) -> None:
    res = sqlite_client.head("/", status=200)
    assert res.body == b""
    assert res.content_type == "application/json"


def test_welcome_refuses_post_with_405_json(sqlite_client: Client) -> None:
    res = sqlite_client.post("/", status=405)
    assert res.json["error"] == "method_not_allowed"
    assert "GET" in res.headers["Allow"]


# -- /_up ----------------------------------------------------------------------------------------

def test_up_answers_status_ok(client: Client) -> None:
    res = client.get("/_up", status=200)
    assert res.json == {"status": "ok", "seeds": {}}


# -- /_all_dbs -----------------------------------------------------------------------------------

def test_all_dbs_is_empty_on_a_fresh_store(client: Client) -> None:
    assert client.get("/_all_dbs", status=200).json == []


def test_all_dbs_lists_names_in_byte_order_including_system_dbs(client: Client) -> None:
    _make_dbs(client, "zeta", "alpha", "_users", "m(1)")
    assert client.get("/_all_dbs", status=200).json == ["_users", "alpha", "m(1)", "zeta"]


ALL_DBS_QUERIES = [
    ("", ["a", "b", "c", "d", "e"]),
    ("descending=true", ["e", "d", "c", "b", "a"]),
    ('startkey="b"', ["b", "c", "d", "e"]),
    ('start_key="b"', ["b", "c", "d", "e"]),
    ('endkey="c"', ["a", "b", "c"]),
    ('end_key="c"&inclusive_end=false', ["a", "b"]),
    ('startkey="b"&endkey="d"', ["b", "c", "d"]),
    ('descending=true&startkey="d"&endkey="b"', ["d", "c", "b"]),
    ('descending=true&startkey="d"&endkey="b"&inclusive_end=false', ["d", "c"]),
    ("limit=2", ["a", "b"]),
    ("limit=0", []),
    ("skip=3", ["d", "e"]),
    ("skip=1&limit=2", ["b", "c"]),
    ("descending=true&skip=1&limit=2", ["d", "c"]),
]


def test_all_dbs_range_and_paging_parameters(client: Client) -> None:
    _make_dbs(client, "c", "a", "e", "b", "d")
    for query, expected in ALL_DBS_QUERIES:
        assert client.get(f"/_all_dbs?{query}", status=200).json == expected, query


def test_all_dbs_refuses_a_negative_limit(client: Client) -> None:
    res = client.get("/_all_dbs?limit=-1", status=400)
    assert res.json["error"] == "query_parse_error"


# -- /_dbs_info ----------------------------------------------------------------------------------

def test_dbs_info_get_lists_every_db_with_its_info(client: Client) -> None:
    _make_dbs(client, "b", "a")
    client.put_json("/a/doc", {}, status=201)
    rows = client.get("/_dbs_info", status=200).json
    assert [row["key"] for row in rows] == ["a", "b"]
    assert rows[0]["info"]["db_name"] == "a"
    assert rows[0]["info"]["doc_count"] == 1
    assert rows[1]["info"]["db_name"] == "b"
    assert rows[1]["info"]["doc_count"] == 0


def test_dbs_info_get_takes_all_dbs_paging_parameters(client: Client) -> None:
    _make_dbs(client, "a", "b", "c")
    rows = client.get("/_dbs_info?descending=true&limit=2", status=200).json
    assert [row["key"] for row in rows] == ["c", "b"]


def test_dbs_info_post_answers_in_key_order_with_not_found_for_unknown(client: Client) -> None:
    _make_dbs(client, "a", "b")
    res = client.post_json("/_dbs_info", {"keys": ["b", "nope", "a"]}, status=200)
    rows = res.json
    assert [row["key"] for row in rows] == ["b", "nope", "a"]
    assert rows[0]["info"]["db_name"] == "b"
    assert rows[1] == {"key": "nope", "error": "not_found"}
    assert rows[2]["info"]["db_name"] == "a"


def test_dbs_info_post_without_keys_is_400(client: Client) -> None:
    res = client.post_json("/_dbs_info", {}, status=400)
    assert res.json == {"error": "bad_request", "reason": "`keys` member must exist."}


def test_dbs_info_post_with_non_array_keys_is_400(client: Client) -> None:
    res = client.post_json("/_dbs_info", {"keys": "a"}, status=400)
    assert res.json == {"error": "bad_request", "reason": "`keys` member must be an array."}


def test_dbs_info_post_takes_100_keys(client: Client) -> None:
    keys = [f"db{i}" for i in range(100)]
    rows = client.post_json("/_dbs_info", {"keys": keys}, status=200).json
    assert rows == [{"key": k, "error": "not_found"} for k in keys]


def test_dbs_info_post_with_more_than_100_keys_is_400_too_many_keys(client: Client) -> None:
    keys = [f"db{i}" for i in range(101)]
    res = client.post_json("/_dbs_info", {"keys": keys}, status=400)
    assert res.json == {"error": "bad_request", "reason": "too_many_keys"}


def test_dbs_info_post_needs_a_json_content_type(client: Client) -> None:
    res = client.post("/_dbs_info", json.dumps({"keys": []}),
                      headers={"Content-Type": "text/plain"}, status=415)
    assert res.json == {"error": "bad_content_type",
                        "reason": "Content-Type must be application/json"}


# -- /_uuids -------------------------------------------------------------------------------------

def test_uuids_default_to_one_32_hex_uuid(sqlite_client: Client) -> None:
    res = sqlite_client.get("/_uuids", status=200)
    assert list(res.json) == ["uuids"]
    assert len(res.json["uuids"]) == 1
    assert HEX32.match(res.json["uuids"][0])


def test_uuids_count_gives_distinct_sequential_uuids(sqlite_client: Client) -> None:
    values = sqlite_client.get("/_uuids?count=50", status=200).json["uuids"]
    assert len(values) == 50 and len(set(values)) == 50
    assert all(HEX32.match(v) for v in values)
    # CouchDB's default `sequential` algorithm: a shared prefix and an increasing suffix.
    assert values == sorted(values)
    assert len({v[:26] for v in values}) <= 2


def test_uuids_are_uncacheable(sqlite_client: Client) -> None:
    res = sqlite_client.get("/_uuids", status=200)
    assert "no-cache" in res.headers["Cache-Control"]
    assert res.headers["Pragma"] == "no-cache"
    assert res.headers["Expires"] == "Mon, 01 Jan 1990 00:00:00 GMT"
    assert re.match(r'^"[^"]+"$', res.headers["ETag"])
    again = sqlite_client.get("/_uuids", status=200)
    assert again.json != res.json
    assert again.headers["ETag"] != res.headers["ETag"]


def test_uuids_count_zero_gives_an_empty_list(sqlite_client: Client) -> None:
    assert sqlite_client.get("/_uuids?count=0", status=200).json == {"uuids": []}


def test_uuids_count_up_to_max_count_is_allowed(sqlite_client: Client) -> None:
    assert len(sqlite_client.get("/_uuids?count=1000", status=200).json["uuids"]) == 1000


def test_uuids_count_over_max_count_is_400(sqlite_client: Client) -> None:
    res = sqlite_client.get("/_uuids?count=1001", status=400)
    assert res.json == {"error": "bad_request", "reason": "count parameter too large"}


def test_uuids_count_that_is_not_a_natural_number_is_400(sqlite_client: Client) -> None:
    for count in ("-1", "abc", "1.5", ""):
        res = sqlite_client.get(f"/_uuids?count={count}", status=400)
        assert res.json == {"error": "bad_request",
                            "reason": "count must be a positive integer"}, count


def test_location_is_sent_as_built_and_non_ascii_ones_are_still_encoded() -> None:
    """`json_response` sends an ASCII `Location` as it is (no second IRI pass) and leaves the
    response's own headers unchanged; a non-ASCII one still goes through werkzeug's encoding."""
    from settee.server.wrappers import json_response

    environ = {"wsgi.url_scheme": "http", "HTTP_HOST": "h", "SERVER_NAME": "h",
               "SERVER_PORT": "80", "PATH_INFO": "/", "SCRIPT_NAME": ""}
    plain = json_response({"ok": True}, 201, {"Location": "http://h/db/%C3%A9t%C3%A9"})
    assert plain.get_wsgi_headers(environ)["Location"] == "http://h/db/%C3%A9t%C3%A9"
    assert plain.headers["Location"] == "http://h/db/%C3%A9t%C3%A9"
    iri = json_response({"ok": True}, 201, {"Location": "http://h/db/\u00e9t\u00e9"})
    assert iri.get_wsgi_headers(environ)["Location"] == "http://h/db/%C3%A9t%C3%A9"


def test_query_args_answer_get_as_werkzeug_does() -> None:
    """`QueryArgs.get` skips werkzeug's exception for an absent name and otherwise behaves the
    same: the first value, `type` conversion, the default when absent or not convertible."""
    from settee.server.wrappers import QueryArgs, SetteeRequest
    from werkzeug.test import EnvironBuilder

    args = SetteeRequest(EnvironBuilder(path="/db/x?a=1&a=2&n=3&b=x&e=").get_environ()).args
    assert isinstance(args, QueryArgs)
    assert (args.get("a"), args.getlist("a"), args.get("e")) == ("1", ["1", "2"], "")
    assert (args.get("n", type=int), args.get("b", 7, type=int)) == (3, 7)
    assert (args.get("absent"), args.get("absent", "d"), args.get("absent", 4, type=int)) == (
        None, "d", 4)
    assert "absent" not in args and args["a"] == "1"
