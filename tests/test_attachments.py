"""Attachments inside documents: inline base64, stubs, revpos, rev ids, and how reads show them.

The standalone endpoints, multipart bodies and blob storage have their own files
(`test_attachment_http.py`, `test_attachment_multipart.py`, `test_attachment_blobs.py`).
"""

from __future__ import annotations

from typing import Any

import pytest
from attkit import GOLDEN, JSON_ONLY, b64, digest, inline
from conftest import Client

pytestmark = pytest.mark.filterwarnings("ignore:Unknown REQUEST_METHOD")  # webtest and COPY


@pytest.fixture
def client(module_app: Any) -> Client:
    """This module's client (overrides conftest's, which builds a store per test)."""
    return Client(module_app, extra_environ={"HTTP_HOST": "127.0.0.1:5984"})


def _stub(data: bytes, revpos: int, content_type: str = "text/plain") -> dict[str, Any]:
    return {"content_type": content_type, "revpos": revpos, "digest": digest(data),
            "length": len(data), "stub": True}


def _golden_body() -> dict[str, Any]:
    body = {k: v for k, v in GOLDEN["body"].items() if k != "_attachments"}
    body["_attachments"] = {a["name"]: inline(a["data"].encode(), a["content_type"])
                            for a in GOLDEN["atts"]}
    return body


# -- writing inline -------------------------------------------------------------------------------

def test_inline_attachments_hash_into_couchdbs_rev_and_read_back_as_stubs(
        client: Client, fresh_db: str) -> None:
    res = client.put_json(f"/{fresh_db}/somedoc", _golden_body(), status=201)
    assert res.json["rev"] == GOLDEN["rev"] == "1-5575e26acdeb1df561bb5b70b26ba151"
    doc = client.get(f"/{fresh_db}/somedoc").json
    assert doc == {"_id": "somedoc", "_rev": GOLDEN["rev"], "body": "This is a body.",
                   "_attachments": {a["name"]: _stub(a["data"].encode(), 1)
                                    for a in GOLDEN["atts"]}}
    assert list(doc["_attachments"]) == ["foo.txt", "bar.txt"]  # order kept, it is hashed
    got = client.get(f"/{fresh_db}/somedoc/foo.txt")
    assert got.body == b"this is 21 chars long" and got.content_type == "text/plain"


def test_attachment_order_and_content_type_are_part_of_the_rev(client: Client,
                                                               fresh_db: str) -> None:
    a, b = inline(b"A"), inline(b"B")
    revs = {client.put_json(f"/{fresh_db}/{name}", {"_attachments": atts}).json["rev"]
            for name, atts in [("ab", {"a": a, "b": b}), ("ba", {"b": b, "a": a}),
                               ("ab2", {"a": a, "b": b}), ("typed", {"a": inline(b"A", "x/y"),
                                                                      "b": b})]}
    assert len(revs) == 3  # the same edit on two docs gives the same rev; order and type count


def test_post_and_bulk_docs_take_inline_attachments(client: Client, fresh_db: str) -> None:
    res = client.post_json(f"/{fresh_db}", {"_id": "p", "_attachments": {"x": inline(b"xx")}},
                           status=201)
    assert client.get(f"/{fresh_db}/p").json["_attachments"] == {"x": _stub(b"xx", 1)}
    res = client.post_json(f"/{fresh_db}/_bulk_docs", {"docs": [
        {"_id": "b1", "_attachments": {"y": inline(b"yy", "image/png")}}, {"_id": "b2"}]},
        status=201)
    assert [r["ok"] for r in res.json] == [True, True]
    assert client.get(f"/{fresh_db}/b1/y").body == b"yy"


@pytest.mark.parametrize("entry", [{"data": "!!not base64!!"}, {"data": 12}, {},
                                   {"content_type": "text/plain", "data": "QQ=\u00e9"}])
def test_bad_inline_data_is_400_and_nothing_is_written(client: Client, fresh_db: str,
                                                        entry: dict[str, Any]) -> None:
    res = client.put_json(f"/{fresh_db}/d", {"_attachments": {"a.txt": entry}}, status=400)
    assert res.json == {"error": "bad_request", "reason": "Invalid attachment data for a.txt"}
    client.get(f"/{fresh_db}/d", status=404)
    res = client.post_json(f"/{fresh_db}/_bulk_docs", {"docs": [
        {"_id": "ok"}, {"_id": "d", "_attachments": {"a.txt": entry}}]}, status=400)
    client.get(f"/{fresh_db}/ok", status=404)


def test_base64_with_line_breaks_and_no_padding_is_read(client: Client, fresh_db: str) -> None:
    data = bytes(range(200))
    wrapped = "\n".join(b64(data)[i:i + 76] for i in range(0, len(b64(data)), 76)).rstrip("=")
    client.put_json(f"/{fresh_db}/d", {"_attachments": {"a": {"data": wrapped}}}, status=201)
    assert client.get(f"/{fresh_db}/d/a").body == data


def test_names_starting_with_underscore_are_400_with_couchdbs_reason(client: Client,
                                                                      fresh_db: str) -> None:
    reason = "Attachment name '_foo' starts with prohibited character '_'"
    res = client.put_json(f"/{fresh_db}/d", {"_attachments": {"_foo": inline(b"x")}}, status=400)
    assert res.json == {"error": "bad_request", "reason": reason}
    res = client.post_json(f"/{fresh_db}/_bulk_docs",
                           {"docs": [{"_id": "d", "_attachments": {"_foo": inline(b"x")}}]},
                           status=400)
    assert res.json["reason"] == reason


def test_attachments_member_must_be_an_object(client: Client, fresh_db: str) -> None:
    res = client.put_json(f"/{fresh_db}/d", {"_attachments": []}, status=400)
    assert res.json == {"error": "doc_validation",
                        "reason": "Bad special document member: _attachments"}
    client.put_json(f"/{fresh_db}/d", {"_attachments": {"a": 1}}, status=400)
    client.put_json(f"/{fresh_db}/d", {"_attachments": {}}, status=201)


# -- stubs and revpos -----------------------------------------------------------------------------

def test_stubs_keep_attachments_and_their_revpos_new_content_gets_the_new_pos(
        client: Client, fresh_db: str) -> None:
    url = f"/{fresh_db}/d"
    rev1 = client.put_json(url, {"_attachments": {"a": inline(b"one")}}).json["rev"]
    rev2 = client.put_json(url, {"_rev": rev1, "v": 2,
                                 "_attachments": {"a": {"stub": True}}}).json["rev"]
    assert client.get(url).json["_attachments"] == {"a": _stub(b"one", 1)}
    rev3 = client.put_json(url, {"_rev": rev2, "_attachments": {
        "a": {"stub": True, "revpos": 1}, "b": inline(b"two")}}).json["rev"]
    assert client.get(url).json["_attachments"] == {"a": _stub(b"one", 1), "b": _stub(b"two", 3)}
    client.put_json(url, {"_rev": rev3, "_attachments": {"a": inline(b"changed")}})
    assert client.get(url).json["_attachments"] == {"a": _stub(b"changed", 4)}
    assert client.get(f"{url}/a?rev={rev2}").body == b"one"  # old revisions keep theirs


def test_a_put_without_attachments_drops_them(client: Client, fresh_db: str) -> None:
    url = f"/{fresh_db}/d"
    rev = client.put_json(url, {"_attachments": {"a": inline(b"x")}}).json["rev"]
    rev2 = client.put_json(url, {"_rev": rev, "v": 1}).json["rev"]
    assert client.get(url).json == {"_id": "d", "_rev": rev2, "v": 1}
    client.get(f"{url}/a", status=404)


def test_unknown_stubs_are_412_missing_stub_and_fail_the_whole_request(
        client: Client, fresh_db: str) -> None:
    url = f"/{fresh_db}/d"
    rev = client.put_json(url, {"_attachments": {"a": inline(b"x")}}).json["rev"]
    for stub in ({"nope": {"stub": True}}, {"a": {"stub": True, "revpos": 7}}):
        res = client.put_json(url, {"_rev": rev, "_attachments": stub}, status=412)
        name = next(iter(stub))
        assert res.json == {"error": "missing_stub",
                            "reason": f"Invalid attachment stub in d for {name}"}
    res = client.put_json(f"/{fresh_db}/new", {"_attachments": {"a": {"stub": True}}},
                          status=412)
    assert res.json["reason"] == "Invalid attachment stub in new for a"
    res = client.post_json(f"/{fresh_db}/_bulk_docs", {"docs": [
        {"_id": "fine", "v": 1}, {"_id": "d", "_rev": rev, "_attachments": {"z": {"stub": True}}},
    ]}, status=412)
    assert res.json["error"] == "missing_stub"
    client.get(f"/{fresh_db}/fine", status=404)  # nothing of the batch was written
    assert client.get(url).json["_rev"] == rev


REV_A = "1-" + "a" * 32
REV_B = "2-" + "b" * 32
REV_C = "2-" + "c" * 32


def _replicated(client: Client, db: str, doc: dict[str, Any], status: int = 201) -> Any:
    return client.post_json(f"/{db}/_bulk_docs", {"docs": [doc], "new_edits": False},
                            status=status)


def test_replicated_inline_data_keeps_the_revpos_sent(client: Client, fresh_db: str) -> None:
    res = _replicated(client, fresh_db, {"_id": "p", "_rev": REV_A, "_attachments": {
        "a.png": inline(b"png", "image/png", revpos=1, digest=digest(b"png")),
        "old": inline(b"old", revpos=0)}})
    assert res.json == []
    atts = client.get(f"/{fresh_db}/p").json["_attachments"]
    assert atts == {"a.png": _stub(b"png", 1, "image/png"), "old": _stub(b"old", 0)}


def test_replicated_stubs_resolve_against_stored_revisions(client: Client,
                                                           fresh_db: str) -> None:
    _replicated(client, fresh_db, {"_id": "r", "_rev": REV_A,
                                   "_attachments": {"a": inline(b"kept", revpos=1)}})
    stub = {"stub": True, "revpos": 1, "digest": digest(b"kept"), "length": 4}
    res = _replicated(client, fresh_db, {"_id": "r", "_revisions": {
        "start": 2, "ids": ["b" * 32, "a" * 32]}, "v": 2, "_attachments": {"a": stub}})
    assert res.json == []
    assert client.get(f"/{fresh_db}/r?rev={REV_B}").json["_attachments"] == {"a": _stub(b"kept", 1)}
    # a branch whose ancestry is not stored still finds the bytes in another revision
    res = _replicated(client, fresh_db, {"_id": "r", "_revisions": {
        "start": 2, "ids": ["c" * 32, "f" * 32]}, "_attachments": {"a": stub}})
    assert res.json == []
    assert client.get(f"/{fresh_db}/r/a?rev={REV_C}").body == b"kept"
    for wrong in ({**stub, "digest": digest(b"other")}, {**stub, "revpos": 9}):
        res = _replicated(client, fresh_db, {"_id": "r", "_revisions": {
            "start": 3, "ids": ["d" * 32, "b" * 32]}, "_attachments": {"a": wrong}}, 412)
        assert res.json == {"error": "missing_stub", "reason": "Invalid attachment stub in r for a"}
    _replicated(client, fresh_db, {"_id": "gone", "_rev": REV_A,
                                   "_attachments": {"a": {"stub": True}}}, 412)


def test_a_replayed_replicated_revision_is_a_no_op(client: Client, fresh_db: str) -> None:
    doc = {"_id": "r", "_rev": REV_A, "_attachments": {"a": inline(b"x", revpos=1)}}
    assert _replicated(client, fresh_db, doc).json == []
    assert _replicated(client, fresh_db, doc).json == []
    res = client.post_json(f"/{fresh_db}/_bulk_docs", {"new_edits": False, "docs": [
        doc, {**doc, "_rev": REV_B, "_revisions": {"start": 2, "ids": ["b" * 32, "a" * 32]}},
        doc]}, status=201)
    assert res.json == []
    assert client.get(f"/{fresh_db}/r/a").body == b"x"


# -- reading --------------------------------------------------------------------------------------

def _two_revs(client: Client, db: str) -> tuple[str, str]:
    url = f"/{db}/d"
    rev1 = client.put_json(url, {"_attachments": {"a": inline(b"first")}}).json["rev"]
    rev2 = client.put_json(url, {"_rev": rev1, "_attachments": {
        "a": {"stub": True}, "b": inline(b"second", "application/json")}}).json["rev"]
    return rev1, rev2


def test_attachments_true_inlines_data_and_atts_since_only_newer_ones(
        client: Client, fresh_db: str) -> None:
    rev1, rev2 = _two_revs(client, fresh_db)
    url = f"/{fresh_db}/d"
    full = {"a": {"content_type": "text/plain", "revpos": 1, "digest": digest(b"first"),
                  "data": b64(b"first")},
            "b": {"content_type": "application/json", "revpos": 2, "digest": digest(b"second"),
                  "data": b64(b"second")}}
    res = client.get(f"{url}?attachments=true", headers=JSON_ONLY)
    assert res.content_type == "application/json"
    assert res.json["_attachments"] == full
    assert res.headers["ETag"] == f'"{rev2}"'
    since = client.get(f'{url}?atts_since=["{rev1}"]', headers=JSON_ONLY).json["_attachments"]
    assert since == {"a": _stub(b"first", 1), "b": full["b"]}
    since = client.get(f'{url}?atts_since=["{rev2}","9-x"]', headers=JSON_ONLY).json
    assert since["_attachments"] == {"a": _stub(b"first", 1),
                                     "b": _stub(b"second", 2, "application/json")}
    unknown = client.get(f'{url}?atts_since=["1-zzz"]', headers=JSON_ONLY).json["_attachments"]
    assert unknown == full
    old = client.get(f"{url}?rev={rev1}&attachments=true&revs=true", headers=JSON_ONLY).json
    assert list(old) == ["_id", "_rev", "_revisions", "_attachments"]
    assert old["_attachments"] == {"a": full["a"]}
    client.get(f"{url}?atts_since=nope", status=400)
    client.get(f'{url}?atts_since=["bad"]', status=400)
    client.get(f"{url}?att_encoding_info=true", status=200)  # accepted: nothing is stored encoded


def test_all_docs_bulk_get_and_open_revs_show_stubs_or_data(client: Client,
                                                            fresh_db: str) -> None:
    rev1, rev2 = _two_revs(client, fresh_db)
    stubs = {"a": _stub(b"first", 1), "b": _stub(b"second", 2, "application/json")}
    rows = client.get(f"/{fresh_db}/_all_docs?include_docs=true").json["rows"]
    assert rows[0]["doc"]["_attachments"] == stubs
    res = client.post_json(f"/{fresh_db}/_bulk_get", {"docs": [{"id": "d"}]}).json
    assert res["results"][0]["docs"][0]["ok"]["_attachments"] == stubs
    res = client.post_json(f"/{fresh_db}/_bulk_get?attachments=true",
                           {"docs": [{"id": "d", "rev": rev2}]}).json
    got = res["results"][0]["docs"][0]["ok"]["_attachments"]
    assert got["a"]["data"] == b64(b"first") and got["b"]["data"] == b64(b"second")
    res = client.post_json(f"/{fresh_db}/_bulk_get?revs=true",
                           {"docs": [{"id": "d", "atts_since": [rev1]},
                                     {"id": "d", "atts_since": "nope"}]}).json
    got = res["results"][0]["docs"][0]["ok"]
    assert got["_attachments"]["a"] == stubs["a"] and "data" in got["_attachments"]["b"]
    assert got["_revisions"]["start"] == 2
    assert res["results"][1]["docs"][0]["error"]["reason"] == \
        "att_since value must be array of revs."
    res = client.get(f'/{fresh_db}/d?open_revs=["{rev2}"]', headers=JSON_ONLY).json
    assert res[0]["ok"]["_attachments"] == stubs
    res = client.get(f'/{fresh_db}/d?open_revs=all&attachments=true&atts_since=["{rev1}"]',
                     headers=JSON_ONLY).json
    assert res[0]["ok"]["_attachments"]["a"] == stubs["a"]
    assert res[0]["ok"]["_attachments"]["b"]["data"] == b64(b"second")


def test_copy_carries_the_attachments(client: Client, fresh_db: str) -> None:
    _two_revs(client, fresh_db)
    res = client._gen_request("COPY", f"/{fresh_db}/d", headers={"Destination": "copy"},
                              status=201)
    doc = client.get(f"/{fresh_db}/copy").json
    assert doc["_rev"] == res.json["rev"] and doc["_rev"].startswith("1-")
    assert doc["_attachments"] == {"a": _stub(b"first", 1),
                                   "b": _stub(b"second", 2, "application/json")}
    assert client.get(f"/{fresh_db}/copy/b").body == b"second"


def test_deleting_a_document_drops_its_attachments(client: Client, fresh_db: str) -> None:
    _, rev2 = _two_revs(client, fresh_db)
    rev3 = client.delete(f"/{fresh_db}/d?rev={rev2}").json["rev"]
    client.get(f"/{fresh_db}/d/a", status=404)
    assert client.get(f"/{fresh_db}/d?rev={rev3}").json == {
        "_id": "d", "_rev": rev3, "_deleted": True}
    assert client.get(f"/{fresh_db}/d/a?rev={rev2}").body == b"first"


def test_local_documents_take_no_attachments(client: Client, fresh_db: str) -> None:
    res = client.put_json(f"/{fresh_db}/_local/x", {"_attachments": {"a": inline(b"x")}},
                          status=400)
    assert res.json["reason"] == "_local documents do not accept attachments."
    client.post_json(f"/{fresh_db}/_bulk_docs",
                     {"docs": [{"_id": "_local/x", "_attachments": {"a": inline(b"x")}}]},
                     status=400)


def test_replicated_inline_data_without_revpos_belongs_to_its_revision(client: Client,
                                                                       fresh_db: str) -> None:
    doc = {"_id": "r", "_rev": "3-" + "c" * 32,
           "_attachments": {"a.txt": {"content_type": "text/plain", "data": b64(b"hello")}}}
    client.post_json(f"/{fresh_db}/_bulk_docs", {"docs": [doc], "new_edits": False}, status=201)
    got = client.get(f"/{fresh_db}/r?attachments=true",
                     headers={"Accept": "application/json"}).json["_attachments"]["a.txt"]
    assert got["revpos"] == 3 and got["data"] == b64(b"hello")
