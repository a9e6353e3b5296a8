"""Hostile input, in-process on both backends (reliability.md section 4, tests 18 and 21-29)."""

# Duplicate keys, deep nesting, numbers JSON or doubles cannot hold, bad encodings and ids, bad
# revs, bad database names, Unicode ids that differ only in normalisation, query-string abuse and
# U+0000 in ids and keys. Every refusal must be a 4xx with CouchDB's error body and must change
# nothing. The wire-level cases (bodies over the limit, ids in headers, long URLs) are in
# `test_reliability_wire.py`.

from __future__ import annotations

import time
import unicodedata
import uuid
from typing import Any

import orjson
import pytest
from reliability import (
    Answer,
    call,
    error_shape_problem,
    figure,
)

pytest_plugins = ["reliability_report"]


def fresh(app: Any) -> str:
    db = "in_" + uuid.uuid4().hex[:8]
    assert call(app, "PUT", f"/{db}").status == 201
    return db


def seq(app: Any, db: str) -> tuple[int, int, int]:
    info = call(app, "GET", f"/{db}").json()
    return info["update_seq"], info["doc_count"], info["doc_del_count"]


def refused(answer: Answer, status: int = 400, error: str | None = "bad_request",
            reason: str | None = None) -> None:
    assert answer.status == status, (answer.status, answer.body)
    assert error_shape_problem(answer) is None
    if error is not None:
        assert answer.json()["error"] == error, answer.body
    if reason is not None:
        assert answer.json()["reason"] == reason, answer.body


# -- 18: duplicate keys ----------------------------------------------------------------------------

DUPLICATES = [
    ("PUT", "/x", b'{"_id":"x","a":1,"a":2}'),
    ("PUT", "/x", b'{"a":{"b":{"c":1,"c":2}}}'),
    ("PUT", "/x", b'{"a":[{"b":[{"c":1,"d":{"e":1,"e":1}}]}]}'),
    ("PUT", "/x", b'{"_rev":"1-abc","_rev":"1-def","a":1}'),
    ("PUT", "/x", b'{"_deleted":true,"_deleted":false}'),
    ("POST", "", b'{"_id":"x","_id":"y"}'),
    ("POST", "/_bulk_docs", b'{"docs":[{"_id":"x","a":1,"a":2}]}'),
    ("POST", "/_bulk_docs", b'{"docs":[],"docs":[{"_id":"x"}]}'),
    ("POST", "/_bulk_docs", b'{"docs":[{"_id":"ok"},{"_id":"x","n":{"m":1,"m":1}}]}'),
    ("PUT", "/_security", b'{"members":{"roles":["_admin"],"roles":[]}}'),
    ("PUT", "/_local/x", b'{"a":1,"a":2}'),
    ("POST", "/_purge", b'{"x":["1-abc"],"x":[]}'),
]


@pytest.mark.parametrize("method,path,body", DUPLICATES)
def test_dup_keys_rejected(module_app: Any, method: str, path: str, body: bytes) -> None:
    db = fresh(module_app)
    before = seq(module_app, db), call(module_app, "GET", f"/{db}/_security").body
    refused(call(module_app, method, f"/{db}{path}", body))
    assert (seq(module_app, db), call(module_app, "GET", f"/{db}/_security").body) == before
    assert call(module_app, "GET", f"/{db}/x").status == 404
    assert call(module_app, "GET", f"/{db}/ok").status == 404
    assert call(module_app, "GET", f"/{db}/_local/x").status == 404


def test_dup_roles_in_users_db_rejected(module_app: Any) -> None:
    status = call(module_app, "PUT", "/_users").status
    assert status in (201, 412)
    body = (b'{"_id":"org.couchdb.user:eve","name":"eve","type":"user","password":"x",'
            b'"roles":["_admin"],"roles":[]}')
    refused(call(module_app, "PUT", "/_users/org.couchdb.user:eve", body))
    assert call(module_app, "GET", "/_users/org.couchdb.user:eve").status == 404


# -- 21: deep nesting ------------------------------------------------------------------------------

@pytest.mark.parametrize("depth", [65, 255, 1025, 10_000, 1_000_000])
@pytest.mark.parametrize("kind", ["array", "object"])
def test_deep_nesting(module_app: Any, depth: int, kind: str) -> None:
    db = fresh(module_app)
    inner = depth - 1  # the document object itself is one level
    if kind == "array":
        body = b'{"a":' + b"[" * inner + b"]" * inner + b"}"
    else:
        body = b'{"a":' + b'{"a":' * inner + b"1" + b"}" * inner + b"}"
    started = time.perf_counter()
    answer = call(module_app, "PUT", f"/{db}/deep", body)
    elapsed = time.perf_counter() - started
    refused(answer)
    assert elapsed < 0.5, f"{elapsed:.3f} s to refuse {depth} levels"
    assert seq(module_app, db)[0] == 0


def test_nesting_at_the_limit_round_trips(module_app: Any) -> None:
    db = fresh(module_app)
    body = b'{"a":' + b"[" * 63 + b"]" * 63 + b"}"
    assert call(module_app, "PUT", f"/{db}/deep", body).status == 201
    got = call(module_app, "GET", f"/{db}/deep")
    assert got.status == 200 and got.body.endswith(b'"a":' + b"[" * 63 + b"]" * 63 + b"}")


# -- 22: numbers -----------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "01",
                                  "1.", ".5", "+1", "0x10"])
def test_not_a_json_number_is_refused(module_app: Any, text: str) -> None:
    db = fresh(module_app)
    refused(call(module_app, "PUT", f"/{db}/n", b'{"n":' + text.encode() + b"}"))
    assert seq(module_app, db)[0] == 0


BIG = "9" * 10_000


@pytest.mark.parametrize("text", [str(2**53 + 1), str(-(2**53) - 1), str(2**63 - 1),
                                  str(2**64), str(-(2**63) - 1), str(10**30), BIG, "-" + BIG,
                                  "1" + "0" * 10_000, "0.1", "1.7976931348623157e+308",
                                  "5e-324", "-0.0", "123456789012345678901234567890.5"])
def test_numbers_round_trip_exactly_or_are_refused(module_app: Any, text: str) -> None:
    db = fresh(module_app)
    put = call(module_app, "PUT", f"/{db}/n", b'{"n":' + text.encode() + b"}")
    if put.status == 400:
        assert error_shape_problem(put) is None
        assert seq(module_app, db)[0] == 0
        return
    assert put.status == 201, put.body
    for path in (f"/{db}/n", f"/{db}/_all_docs?include_docs=true"):
        got = call(module_app, "GET", path)
        assert got.status == 200
        shown = got.body.split(b'"n":', 1)[1].split(b"}", 1)[0].split(b",", 1)[0]
        assert float(shown) == float(text) if "." in text or "e" in text else shown == \
            text.encode(), f"stored {text[:40]}..., {path} shows {shown[:40]!r}"


def test_minus_zero_integer_is_zero(module_app: Any) -> None:
    db = fresh(module_app)
    assert call(module_app, "PUT", f"/{db}/n", b'{"n":-0}').status == 201
    assert call(module_app, "GET", f"/{db}/n").json()["n"] == 0


# -- 23: bad encodings and ids ---------------------------------------------------------------------

@pytest.mark.parametrize("body", [b'{"a":"\xff"}', b'{"a":"\xc0\xaf"}', b'{"a":"\xed\xa0\x80"}',
                                  b'{"a":"\\ud800"}', b'{"a":"\\udc00x"}', b'\xef\xbb\xbf{}',
                                  b'{"\xff":1}', b"", b"{}x", b"{} {}", b"\x00{}"])
def test_bad_encoding_in_a_body(module_app: Any, body: bytes) -> None:
    db = fresh(module_app)
    refused(call(module_app, "PUT", f"/{db}/x", body))
    if body:
        refused(call(module_app, "POST", f"/{db}/_bulk_docs", b'{"docs":[' + body + b"]}"))
    assert seq(module_app, db)[0] == 0


@pytest.mark.parametrize("raw_id", ["%FF", "%ED%A0%80", "%C0%AF", "a%80b", "%F4%90%80%80"])
@pytest.mark.parametrize("method", ["PUT", "GET", "DELETE"])
def test_bad_encoding_in_an_id(module_app: Any, raw_id: str, method: str) -> None:
    db = fresh(module_app)
    answer = call(module_app, method, f"/{db}/{raw_id}", b"{}" if method == "PUT" else None)
    assert answer.status == 400 and error_shape_problem(answer) is None, answer.body
    assert answer.json()["error"] in ("bad_request", "illegal_docid")
    assert call(module_app, "GET", f"/{db}/%EF%BF%BD").status == 404  # no U+FFFD doc
    assert call(module_app, "GET", f"/{db}/_all_docs").json()["rows"] == []


# -- 24: bad revs ----------------------------------------------------------------------------------

BAD_REVS = ["", "1", "1-", "x-abc", "-1-abc", "0-abc", "1" * 30 + "-abc", "1-a b", "1-\u0000",
            "01-abc", "1-" + "a" * 300]


@pytest.mark.parametrize("rev", BAD_REVS)
def test_bad_rev_format_is_400(module_app: Any, rev: str) -> None:
    db = fresh(module_app)
    created = call(module_app, "PUT", f"/{db}/d", b'{"v":1}')
    assert created.status == 201
    before = seq(module_app, db)
    quoted = "".join(f"%{b:02X}" for b in rev.encode())
    reason = "Invalid rev format"
    refused(call(module_app, "PUT", f"/{db}/d", orjson.dumps({"_rev": rev, "v": 2})),
            reason=reason)
    if rev:  # an empty ?rev= is no rev at all, as in CouchDB
        refused(call(module_app, "PUT", f"/{db}/d?rev={quoted}", b'{"v":2}'), reason=reason)
        refused(call(module_app, "DELETE", f"/{db}/d?rev={quoted}"), reason=reason)
        refused(call(module_app, "GET", f"/{db}/d?rev={quoted}"), reason=reason)
    refused(call(module_app, "POST", f"/{db}/_bulk_docs",
                 orjson.dumps({"docs": [{"_id": "d", "_rev": rev, "v": 3}]})), reason=reason)
    assert seq(module_app, db) == before


def test_rev_mismatches_and_missing_revs(module_app: Any) -> None:
    db = fresh(module_app)
    rev = call(module_app, "PUT", f"/{db}/d", b'{"v":1}').json()["rev"]
    other = "1-" + "0" * 32
    before = seq(module_app, db)
    refused(call(module_app, "PUT", f"/{db}/d?rev={other}", orjson.dumps({"_rev": rev})),
            reason="Document rev from request body and query string have different values")
    refused(call(module_app, "PUT", f"/{db}/d?rev={rev}", b'{"v":2}', {"If-Match": other}),
            reason="Document rev and etag have different values")
    refused(call(module_app, "PUT", f"/{db}/d", b'{"v":2}'), 409, "conflict")
    refused(call(module_app, "PUT", f"/{db}/d", orjson.dumps({"_rev": other})), 409, "conflict")
    refused(call(module_app, "PUT", f"/{db}/d", orjson.dumps({"_rev": "2-" + "0" * 32})), 409,
            "conflict")
    refused(call(module_app, "DELETE", f"/{db}/d"), 409, "conflict")
    refused(call(module_app, "DELETE", f"/{db}/d?rev={other}"), 409, "conflict")
    refused(call(module_app, "PUT", f"/{db}/d", orjson.dumps({"_rev": 1})), 400)
    assert seq(module_app, db) == before


# -- 25: database names ----------------------------------------------------------------------------

@pytest.mark.parametrize("raw", ["A", "1db", "db%20name", "_foo", "..%2Fx", "a%00b", "a" * 300,
                                 "%2e%2e", "db%0Aname", "caf%C3%A9", "%2Fx", "x%3Fy"])
def test_bad_db_names_are_400(module_app: Any, raw: str) -> None:
    answer = call(module_app, "PUT", f"/{raw}")
    # a NUL is refused for the whole URL, before the name is looked at
    refused(answer, 400, "bad_request" if "%00" in raw else "illegal_database_name")
    assert call(module_app, "GET", f"/{raw}").status in (400, 404)


@pytest.mark.parametrize("raw,name", [("_users", "_users"), ("_replicator", "_replicator"),
                                      ("a%2Fb", "a/b"), ("a-b_c%24(d)%2B", "a-b_c$(d)+")])
def test_good_db_names_are_accepted(module_app: Any, raw: str, name: str) -> None:
    status = call(module_app, "PUT", f"/{raw}").status
    assert status in (201, 412)
    info = call(module_app, "GET", f"/{raw}")
    assert info.status == 200 and info.json()["db_name"] == name


# -- 27: Unicode normalisation ---------------------------------------------------------------------

def test_nfc_and_nfd_ids_are_two_documents(module_app: Any) -> None:
    db = fresh(module_app)
    nfc, nfd = "caf\u00e9", "cafe\u0301"
    assert unicodedata.normalize("NFC", nfd) == nfc
    assert call(module_app, "PUT", f"/{db}/caf%C3%A9", b'{"form":"nfc"}').status == 201
    rows = call(module_app, "POST", f"/{db}/_bulk_docs",
                orjson.dumps({"docs": [{"_id": nfd, "form": "nfd"}]})).json()
    assert rows[0]["ok"] is True
    assert call(module_app, "GET", f"/{db}/caf%C3%A9").json()["form"] == "nfc"
    assert call(module_app, "GET", f"/{db}/cafe%CC%81").json()["form"] == "nfd"
    listing = call(module_app, "GET", f"/{db}/_all_docs").json()
    assert listing["total_rows"] == 2
    assert [r["id"] for r in listing["rows"]] == sorted([nfc, nfd], key=lambda s: s.encode())
    keyed = call(module_app, "POST", f"/{db}/_all_docs", orjson.dumps({"keys": [nfd, nfc]}))
    assert [r["id"] for r in keyed.json()["rows"]] == [nfd, nfc]


# -- 29: query-string abuse (the URL and header limits are live tests) -------------------------

QUERIES = [
    "/_all_docs?limit=-1", "/_all_docs?limit=1e99", "/_all_docs?limit=abc",
    "/_all_docs?skip=1000000000000000000", "/_all_docs?skip=-5", "/_all_docs?keys=5",
    "/_all_docs?keys=%7B", "/_all_docs?startkey=%7B", "/_all_docs?endkey=%5B",
    "/_all_docs?key=nope", "/_all_docs?descending=maybe", "/_all_docs?include_docs=2",
    "/_all_docs?startkey=%22b%22&endkey=%22a%22", "/_all_docs?keys=%5B1%5D&key=%221%22",
    "/_design_docs?limit=-1", "/_local_docs?skip=x", "/d?revs=maybe", "/d?open_revs=5",
    "/d?open_revs=%5B1%5D", "/d?rev=", "/d?meta=yes",
]


@pytest.mark.parametrize("query", QUERIES)
def test_query_abuse_is_a_4xx(module_app: Any, query: str) -> None:
    db = fresh(module_app)
    assert call(module_app, "PUT", f"/{db}/d", b"{}").status == 201
    answer = call(module_app, "GET", f"/{db}{query}")
    assert answer.status < 500, answer.body
    assert error_shape_problem(answer) is None


@pytest.mark.parametrize("count,status", [("1000000", 400), ("1001", 400), ("-1", 400),
                                          ("x", 400), ("1e3", 400), ("1000", 200), ("0", 200)])
def test_uuids_count_is_capped(module_app: Any, count: str, status: int) -> None:
    answer = call(module_app, "GET", f"/_uuids?count={count}")
    assert answer.status == status, answer.body
    assert error_shape_problem(answer) is None
    if status == 200:
        assert len(answer.json()["uuids"]) == int(count)


# -- U+0000 in ids, keys and names (PostgreSQL text cannot hold it) -------------------------------


NUL_REQUESTS = [
    ("POST", "/_revs_diff", {"a\u0000b": ["1-abc"]}),
    ("POST", "/_missing_revs", {"a\u0000b": ["1-abc"]}),
    ("POST", "/_all_docs", {"keys": ["\u0000"]}),
    ("POST", "/_all_docs", {"startkey": "a\u0000"}),
    ("GET", "/_all_docs?endkey=%22a%5Cu0000%22", None),
    ("GET", "/_design_docs?startkey=%22%5Cu0000%22", None),
    ("GET", "/_local_docs?startkey=%22%5Cu0000%22", None),
    ("POST", "/_purge", {"a\u0000": ["1-abc"]}),
    ("POST", "/_bulk_get", {"docs": [{"id": "a\u0000"}]}),
    ("POST", "/../_dbs_info", {"keys": ["a\u0000"]}),
    ("GET", "/../_all_dbs?startkey=%22%5Cu0000%22", None),
]


@pytest.mark.parametrize("method,path,body", NUL_REQUESTS)
def test_nul_in_ids_and_keys(module_app: Any, method: str, path: str, body: Any,
                             request: pytest.FixtureRequest) -> None:
    db = fresh(module_app)
    assert call(module_app, "PUT", f"/{db}/a", b"{}").status == 201
    target = path[3:] if path.startswith("/../") else f"/{db}{path}"
    answer = call(module_app, method, target, None if body is None else orjson.dumps(body))
    if answer.status >= 500:
        figure(request.node.callspec.params["module_app"], "5xx seen", 1)
    assert answer.status < 500, answer.body
    assert error_shape_problem(answer) is None


# -- integers the per-database settings cannot hold ------------------------------------------------



@pytest.mark.parametrize("limit", [2**31 - 1, 2**31, 2**63, 2**64])
def test_revs_limit_out_of_range(module_app: Any, limit: int,
                                 request: pytest.FixtureRequest) -> None:
    db = fresh(module_app)
    answer = call(module_app, "PUT", f"/{db}/_revs_limit", str(limit))
    assert answer.status in (200, 400), answer.body
    shown = call(module_app, "GET", f"/{db}/_revs_limit").json()
    assert shown == (limit if answer.status == 200 else 1000)




def test_security_with_a_big_integer(module_app: Any) -> None:
    db = fresh(module_app)
    body = b'{"admins":{"names":[],"roles":[]},"members":{},"n":18446744073709551616}'
    answer = call(module_app, "PUT", f"/{db}/_security", body)
    assert answer.status in (200, 400), answer.body
    if answer.status == 200:
        assert b"18446744073709551616" in call(module_app, "GET", f"/{db}/_security").body
