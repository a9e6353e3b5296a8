"""`_all_docs`, `_design_docs` and their `/queries` forms, checked against CouchDB 3.x."""

from __future__ import annotations

from typing import Any

import pytest

REV_A = "1-" + "a" * 32
REV_B = "1-" + "b" * 32

# Raw byte order: uppercase < "_" < lowercase < non-ASCII (UTF-8 lead bytes are >= 0xC2).
LIVE_IDS = ["B", "Z", "_design/d", "a", "b", "é"]
RANGE_ERROR = ("No rows can match your key range, reverse your start_key and end_key or set "
               "descending={}")


def _bulk(client: Any, db: str, docs: list[dict[str, Any]], **extra: Any) -> Any:
    resp = client.post_json(f"/{db}/_bulk_docs", {"docs": docs, **extra}, status="*")
    assert resp.status_int == 201, resp.body
    return resp.json


def _all(client: Any, db: str, path: str = "_all_docs", **params: str) -> Any:
    return client.get(f"/{db}/{path}", params=params, status="*")


def _ids(body: dict[str, Any]) -> list[str]:
    return [row["id"] for row in body["rows"]]


@pytest.fixture
def docs_db(client: Any, fresh_db: str) -> dict[str, Any]:
    """A database holding LIVE_IDS, one deleted doc and one local doc; returns db and revs."""
    results = _bulk(client, fresh_db, [{"_id": i, "n": n} for n, i in enumerate(LIVE_IDS)]
                    + [{"_id": "c", "n": 99}])
    revs = {r["id"]: r["rev"] for r in results}
    revs["c"] = client.delete(f"/{fresh_db}/c?rev={revs['c']}", status=200).json["rev"]
    client.put_json(f"/{fresh_db}/_local/x", {"v": 1}, status=201)
    return {"db": fresh_db, "revs": revs}


def test_rows_are_live_docs_in_raw_byte_order(client: Any, docs_db: dict[str, Any]) -> None:
    resp = _all(client, docs_db["db"])
    assert resp.status_int == 200
    assert resp.content_type == "application/json"
    revs = docs_db["revs"]
    assert resp.json == {
        "total_rows": 6,
        "offset": 0,
        "rows": [{"id": i, "key": i, "value": {"rev": revs[i]}} for i in LIVE_IDS],
    }


def test_all_docs_of_missing_db_is_404(client: Any) -> None:
    resp = _all(client, "no_such_db")
    assert resp.status_int == 404
    assert resp.json == {"error": "not_found", "reason": "Database does not exist."}


def test_startkey_endkey_is_an_inclusive_range_with_offset(client: Any,
                                                           docs_db: dict[str, Any]) -> None:
    body = _all(client, docs_db["db"], startkey='"a"', endkey='"b"').json
    assert _ids(body) == ["a", "b"]
    assert body["total_rows"] == 6
    assert body["offset"] == 3


def test_start_key_end_key_spellings_work_like_startkey_endkey(client: Any,
                                                               docs_db: dict[str, Any]) -> None:
    spelled = _all(client, docs_db["db"], start_key='"Z"', end_key='"a"').json
    classic = _all(client, docs_db["db"], startkey='"Z"', endkey='"a"').json
    assert spelled == classic
    assert _ids(spelled) == ["Z", "_design/d", "a"]
    assert spelled["offset"] == 1


def test_key_selects_exactly_one_row(client: Any, docs_db: dict[str, Any]) -> None:
    body = _all(client, docs_db["db"], key='"b"').json
    assert body == {"total_rows": 6, "offset": 4,
                    "rows": [{"id": "b", "key": "b", "value": {"rev": docs_db["revs"]["b"]}}]}


def test_key_of_deleted_doc_gives_no_rows(client: Any, docs_db: dict[str, Any]) -> None:
    body = _all(client, docs_db["db"], key='"c"').json
    assert body["rows"] == []


def test_inclusive_end_false_leaves_out_the_endkey(client: Any, docs_db: dict[str, Any]) -> None:
    body = _all(client, docs_db["db"], startkey='"Z"', endkey='"b"', inclusive_end="false").json
    assert _ids(body) == ["Z", "_design/d", "a"]


def test_descending_walks_backwards_from_startkey(client: Any, docs_db: dict[str, Any]) -> None:
    body = _all(client, docs_db["db"], descending="true", startkey='"b"', endkey='"Z"').json
    assert _ids(body) == ["b", "a", "_design/d", "Z"]
    assert body["total_rows"] == 6
    assert body["offset"] == 1  # "é" comes before "b" when walking backwards


def test_descending_without_range_reverses_every_row(client: Any,
                                                     docs_db: dict[str, Any]) -> None:
    body = _all(client, docs_db["db"], descending="true").json
    assert _ids(body) == list(reversed(LIVE_IDS))
    assert body["offset"] == 0


def test_descending_inclusive_end_false_leaves_out_the_endkey(client: Any,
                                                              docs_db: dict[str, Any]) -> None:
    body = _all(client, docs_db["db"], descending="true", startkey='"b"', endkey='"Z"',
                inclusive_end="false").json
    assert _ids(body) == ["b", "a", "_design/d"]


def test_limit_and_skip_page_through_rows(client: Any, docs_db: dict[str, Any]) -> None:
    body = _all(client, docs_db["db"], limit="2", skip="1").json
    assert _ids(body) == ["Z", "_design/d"]
    assert body["offset"] == 1
    assert _ids(_all(client, docs_db["db"], limit="0").json) == []


def test_offset_never_exceeds_total_rows(client: Any, docs_db: dict[str, Any]) -> None:
    body = _all(client, docs_db["db"], skip="100").json
    assert body == {"total_rows": 6, "offset": 6, "rows": []}


def test_reversed_range_is_a_query_parse_error(client: Any, docs_db: dict[str, Any]) -> None:
    resp = _all(client, docs_db["db"], startkey='"b"', endkey='"a"')
    assert resp.status_int == 400
    assert resp.json == {"error": "query_parse_error", "reason": RANGE_ERROR.format("true")}
    resp = _all(client, docs_db["db"], startkey='"a"', endkey='"b"', descending="true")
    assert resp.status_int == 400
    assert resp.json == {"error": "query_parse_error", "reason": RANGE_ERROR.format("false")}


def test_bad_limit_is_a_400_query_parse_error(client: Any, docs_db: dict[str, Any]) -> None:
    for limit in ("abc", "-1", "1.5"):
        resp = _all(client, docs_db["db"], limit=limit)
        assert resp.status_int == 400, limit
        assert resp.json["error"] == "query_parse_error"


def test_bad_limit_reason_is_couchdbs(client: Any, docs_db: dict[str, Any]) -> None:
    for limit, reason in (("abc", 'Invalid value for integer: "abc"'),
                          ("-1", 'Invalid value for positive integer: "-1"')):
        resp = _all(client, docs_db["db"], limit=limit)
        assert resp.status_int == 400
        assert resp.json == {"error": "query_parse_error", "reason": reason}


def test_include_docs_embeds_the_winning_doc(client: Any, docs_db: dict[str, Any]) -> None:
    body = _all(client, docs_db["db"], include_docs="true", key='"a"').json
    rev = docs_db["revs"]["a"]
    assert body["rows"] == [{"id": "a", "key": "a", "value": {"rev": rev},
                             "doc": {"_id": "a", "_rev": rev, "n": 3}}]


def test_conflicts_adds_conflicts_to_included_docs(client: Any, fresh_db: str) -> None:
    _bulk(client, fresh_db, [{"_id": "x", "_rev": REV_A, "v": "a"},
                             {"_id": "x", "_rev": REV_B, "v": "b"}], new_edits=False)
    body = _all(client, fresh_db, include_docs="true", conflicts="true").json
    assert body["rows"] == [{"id": "x", "key": "x", "value": {"rev": REV_B},
                             "doc": {"_id": "x", "_rev": REV_B, "v": "b",
                                     "_conflicts": [REV_A]}}]
    plain = _all(client, fresh_db, include_docs="true").json
    assert "_conflicts" not in plain["rows"][0]["doc"]
    keyed = client.post_json(f"/{fresh_db}/_all_docs?include_docs=true&conflicts=true",
                             {"keys": ["x"]}).json
    assert keyed["rows"] == body["rows"]


def test_update_seq_reports_the_database_update_seq(client: Any,
                                                    docs_db: dict[str, Any]) -> None:
    info = client.get(f"/{docs_db['db']}").json
    body = _all(client, docs_db["db"], update_seq="true").json
    assert body["update_seq"] == info["update_seq"]
    assert "update_seq" not in _all(client, docs_db["db"]).json


# -- keys ------------------------------------------------------------------------------------

def test_post_keys_keeps_order_and_marks_missing_and_deleted(client: Any,
                                                             docs_db: dict[str, Any]) -> None:
    revs = docs_db["revs"]
    resp = client.post_json(f"/{docs_db['db']}/_all_docs",
                            {"keys": ["b", "nope", "c", "B", "b"]}, status="*")
    assert resp.status_int == 200
    assert resp.json == {
        "total_rows": 6,
        "offset": None,
        "rows": [
            {"id": "b", "key": "b", "value": {"rev": revs["b"]}},
            {"key": "nope", "error": "not_found"},
            {"id": "c", "key": "c", "value": {"rev": revs["c"], "deleted": True}},
            {"id": "B", "key": "B", "value": {"rev": revs["B"]}},
            {"id": "b", "key": "b", "value": {"rev": revs["b"]}},
        ],
    }


def test_keys_with_include_docs_gives_null_doc_for_deleted(client: Any,
                                                           docs_db: dict[str, Any]) -> None:
    db, revs = docs_db["db"], docs_db["revs"]
    body = client.post_json(f"/{db}/_all_docs", {"keys": ["a", "c", "zz"], "include_docs": True}
                            ).json
    assert body["rows"] == [
        {"id": "a", "key": "a", "value": {"rev": revs["a"]},
         "doc": {"_id": "a", "_rev": revs["a"], "n": 3}},
        {"id": "c", "key": "c", "value": {"rev": revs["c"], "deleted": True}, "doc": None},
        {"key": "zz", "error": "not_found"},
    ]


def test_get_keys_parameter_works_like_post(client: Any, docs_db: dict[str, Any]) -> None:
    db = docs_db["db"]
    got = _all(client, db, keys='["é","a"]').json
    posted = client.post_json(f"/{db}/_all_docs", {"keys": ["é", "a"]}).json
    assert got == posted
    assert _ids(got) == ["é", "a"]


def test_keys_with_descending_skip_and_limit(client: Any, docs_db: dict[str, Any]) -> None:
    db = docs_db["db"]
    body = client.post_json(f"/{db}/_all_docs?descending=true&skip=1&limit=2",
                            {"keys": ["a", "b", "Z", "B"]}).json
    assert _ids(body) == ["Z", "b"]


def test_post_body_params_and_query_string_params_combine(client: Any,
                                                          docs_db: dict[str, Any]) -> None:
    db = docs_db["db"]
    body = client.post_json(f"/{db}/_all_docs?include_docs=true", {"keys": ["b"]}).json
    assert body["rows"][0]["doc"]["n"] == 4
    body = client.post_json(f"/{db}/_all_docs", {"startkey": "a", "limit": 1}).json
    assert _ids(body) == ["a"]


def test_keys_with_update_seq_reports_null_as_couchdb(client: Any,
                                                      docs_db: dict[str, Any]) -> None:
    body = client.post_json(f"/{docs_db['db']}/_all_docs?update_seq=true", {"keys": ["a"]}).json
    assert body["update_seq"] is None
    assert body["offset"] is None


def test_post_needs_a_json_content_type(client: Any, docs_db: dict[str, Any]) -> None:
    resp = client.post(f"/{docs_db['db']}/_all_docs", '{"keys":["a"]}',
                       content_type="text/plain", status="*")
    assert resp.status_int == 415
    assert resp.json == {"error": "bad_content_type",
                         "reason": "Content-Type must be application/json"}


def test_post_keys_that_is_not_an_array_is_400(client: Any, docs_db: dict[str, Any]) -> None:
    resp = client.post_json(f"/{docs_db['db']}/_all_docs", {"keys": "a"}, status="*")
    assert resp.status_int == 400
    assert resp.json == {"error": "bad_request", "reason": "`keys` body member must be an array."}


# -- _design_docs ----------------------------------------------------------------------------

def test_design_docs_lists_only_design_docs(client: Any, docs_db: dict[str, Any]) -> None:
    db = docs_db["db"]
    client.put_json(f"/{db}/_design/a", {"views": {}}, status=201)
    resp = _all(client, db, "_design_docs")
    assert resp.status_int == 200
    body = resp.json
    assert _ids(body) == ["_design/a", "_design/d"]
    assert body["total_rows"] == 2
    assert body["rows"][1] == {"id": "_design/d", "key": "_design/d",
                               "value": {"rev": docs_db["revs"]["_design/d"]}}


def test_design_docs_honours_range_and_descending(client: Any, docs_db: dict[str, Any]) -> None:
    db = docs_db["db"]
    client.put_json(f"/{db}/_design/a", {}, status=201)
    client.put_json(f"/{db}/_design/z", {}, status=201)
    body = _all(client, db, "_design_docs", descending="true", limit="2").json
    assert _ids(body) == ["_design/z", "_design/d"]
    body = _all(client, db, "_design_docs", startkey='"_design/b"').json
    assert _ids(body) == ["_design/d", "_design/z"]


def test_design_docs_keys_drop_ids_outside_the_namespace(client: Any,
                                                         docs_db: dict[str, Any]) -> None:
    db = docs_db["db"]
    body = client.post_json(f"/{db}/_design_docs",
                            {"keys": ["a", "_design/d", "_design/nope"]}).json
    assert body["rows"] == [
        {"id": "_design/d", "key": "_design/d", "value": {"rev": docs_db["revs"]["_design/d"]}},
        {"key": "_design/nope", "error": "not_found"},
    ]


# -- /queries --------------------------------------------------------------------------------

def test_all_docs_queries_answers_each_query_in_order(client: Any,
                                                      docs_db: dict[str, Any]) -> None:
    db = docs_db["db"]
    resp = client.post_json(f"/{db}/_all_docs/queries", {"queries": [
        {"keys": ["b", "nope"]},
        {"limit": 2},
        {"startkey": "b", "descending": True, "limit": 2, "skip": 1},
    ]}, status="*")
    assert resp.status_int == 200
    results = resp.json["results"]
    assert len(results) == 3
    assert results[0]["rows"] == [
        {"id": "b", "key": "b", "value": {"rev": docs_db["revs"]["b"]}},
        {"key": "nope", "error": "not_found"},
    ]
    assert results[1] == _all(client, db, limit="2").json
    assert _ids(results[2]) == ["a", "_design/d"]
    assert results[2]["offset"] == 2


def test_design_docs_queries_only_see_design_docs(client: Any, docs_db: dict[str, Any]) -> None:
    db = docs_db["db"]
    client.put_json(f"/{db}/_design/z", {}, status=201)
    body = client.post_json(f"/{db}/_design_docs/queries",
                            {"queries": [{}, {"descending": True, "limit": 1}]}).json
    assert [_ids(r) for r in body["results"]] == [["_design/d", "_design/z"], ["_design/z"]]
    assert [r["total_rows"] for r in body["results"]] == [2, 2]


def test_queries_without_queries_member_is_400(client: Any, docs_db: dict[str, Any]) -> None:
    resp = client.post_json(f"/{docs_db['db']}/_all_docs/queries", {"q": []}, status="*")
    assert resp.status_int == 400
    assert resp.json == {"error": "bad_request",
                         "reason": "POST body must include `queries` parameter."}


def test_queries_with_a_reversed_range_is_a_query_parse_error(client: Any,
                                                              docs_db: dict[str, Any]) -> None:
    resp = client.post_json(f"/{docs_db['db']}/_all_docs/queries",
                            {"queries": [{"startkey": "b", "endkey": "a"}]}, status="*")
    assert resp.status_int == 400
    assert resp.json == {"error": "query_parse_error", "reason": RANGE_ERROR.format("true")}


@pytest.mark.parametrize("descending", [False, True])
def test_paging_by_startkey_reports_the_counted_offset(client: Any, fresh_db: str,
                                                       descending: bool) -> None:
    """Each page's `offset` equals a fresh count, including pages whose offset the page before
    remembered (store/positions.py), and a write between pages moves it."""
    from settee.store import positions

    ids = [f"d{n:03d}" for n in range(0, 60, 2)]
    _bulk(client, fresh_db, [{"_id": i} for i in ids])
    order = sorted(ids, reverse=descending)
    flag = "true" if descending else "false"
    params = {"limit": "7", "descending": flag}
    seen: list[str] = []
    body = _all(client, fresh_db, **params).json
    while True:
        assert body["offset"] == len(seen)
        seen += _ids(body)
        if len(body["rows"]) < 7:
            break
        body = _all(client, fresh_db, startkey=f'"{seen[-1]}"', skip="1", **params).json
    assert seen == order
    # A doc written before the cursor: the same request's offset moves by one, cached or not.
    cursor = order[14]
    again = {"startkey": f'"{cursor}"', "skip": "1", **params}
    assert _all(client, fresh_db, **again).json["offset"] == 15
    _bulk(client, fresh_db, [{"_id": order[0][:-1] + ("/" if descending else "!")}])
    moved = _all(client, fresh_db, **again).json
    assert moved["offset"] == 16 and moved["total_rows"] == len(ids) + 1
    positions.forget_all()
    assert _all(client, fresh_db, **again).json["offset"] == 16
