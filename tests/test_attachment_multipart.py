"""Multipart documents: `multipart/related` PUT (CouchDB's docs example and its replicator's
`new_edits=false` form, gzip parts included), `attachments=true` answered as `multipart/related`,
and `open_revs` as `multipart/mixed` with nested parts, as CouchDB sends them to its replicator.
"""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest
from attkit import GOLDEN, JSON_ONLY, digest, inline, parse_multipart, related_body, send
from conftest import Client


@pytest.fixture
def client(module_app: Any) -> Client:
    """This module's client (overrides conftest's, which builds a store per test)."""
    return Client(module_app, extra_environ={"HTTP_HOST": "127.0.0.1:5984"})


def _put_related(client: Client, path: str, doc: dict[str, Any],
                 parts: list[Any], **headers: str) -> Any:
    body, content_type = related_body(doc, parts)
    return send(client, "PUT", path, body, {"Content-Type": content_type, **headers})


# -- multipart/related in -------------------------------------------------------------------------

def test_the_couchdb_docs_example_gets_the_documented_rev(client: Client, fresh_db: str) -> None:
    # Byte for byte the request of "Creating Multiple Attachments" (api/document/common.rst).
    body = (b'--abc123\r\nContent-Type: application/json\r\n\r\n{\r\n'
            b'    "body": "This is a body.",\r\n    "_attachments": {\r\n'
            b'        "foo.txt": {\r\n            "follows": true,\r\n'
            b'            "content_type": "text/plain",\r\n            "length": 21\r\n'
            b'        },\r\n        "bar.txt": {\r\n            "follows": true,\r\n'
            b'            "content_type": "text/plain",\r\n            "length": 20\r\n'
            b'        }\r\n    }\r\n}\r\n\r\n--abc123\r\n\r\nthis is 21 chars long\r\n'
            b'--abc123\r\n\r\nthis is 20 chars lon\r\n--abc123--')
    res = send(client, "PUT", f"/{fresh_db}/somedoc", body,
               {"Content-Type": 'multipart/related;boundary="abc123"'})
    assert res.status_int == 201, res.body
    assert res.json == {"ok": True, "id": "somedoc", "rev": GOLDEN["rev"]}
    assert client.get(f"/{fresh_db}/somedoc/foo.txt").body == b"this is 21 chars long"
    assert client.get(f"/{fresh_db}/somedoc/bar.txt").body == b"this is 20 chars lon"
    doc = client.get(f"/{fresh_db}/somedoc").json
    assert doc["body"] == "This is a body." and doc["_attachments"]["bar.txt"]["length"] == 20


def test_replicator_style_put_with_new_edits_false_stubs_and_gzip(client: Client,
                                                                  fresh_db: str) -> None:
    rev1 = client.put_json(f"/{fresh_db}/d", {"_attachments": {"old": inline(b"old")}}).json["rev"]
    text = b"compressible " * 500
    packed = gzip.compress(text)
    doc = {"_id": "d", "_rev": "2-" + "e" * 32, "v": 2,
           "_revisions": {"start": 2, "ids": ["e" * 32, rev1[2:]]},
           "_attachments": {
               "new.txt": {"content_type": "text/plain", "revpos": 2, "digest": digest(text),
                           "length": len(text), "follows": True, "encoding": "gzip",
                           "encoded_length": len(packed)},
               "raw.bin": {"content_type": "application/octet-stream", "revpos": 2,
                           "digest": digest(b"\x00\x01"), "length": 2, "follows": True},
               "old": {"content_type": "text/plain", "revpos": 1, "digest": digest(b"old"),
                       "length": 3, "stub": True}}}
    headers = {"Content-Disposition": 'attachment; filename="new.txt"',
               "Content-Type": "text/plain", "Content-Length": str(len(packed)),
               "Content-Encoding": "gzip"}
    res = _put_related(client, f"/{fresh_db}/d?new_edits=false", doc,
                       [(headers, packed), b"\x00\x01"])
    assert res.status_int == 201, res.body
    assert res.json["rev"] == "2-" + "e" * 32
    got = client.get(f"/{fresh_db}/d").json
    assert got["_attachments"]["new.txt"] == {"content_type": "text/plain", "revpos": 2,
                                              "digest": digest(text), "length": len(text),
                                              "stub": True}
    assert list(got["_attachments"]) == ["new.txt", "raw.bin", "old"]
    assert client.get(f"/{fresh_db}/d/new.txt").body == text
    assert client.get(f"/{fresh_db}/d/old").body == b"old"


@pytest.mark.parametrize(("attachments", "parts", "status", "reason"), [
    ({"a": {"follows": True, "length": 5}}, [b"abc"], 400, "attachment shorter than expected"),
    ({"a": {"follows": True, "length": 2}}, [b"abc"], 400, "attachment longer than expected"),
    ({"a": {"follows": True}}, [], 400, "attachment shorter than expected"),
    ({"a": {"follows": True}}, [b"x", b"y"], 400,
     "A multipart part follows that no attachment announced"),
    ({"a": {"follows": True, "digest": "md5-AAAAAAAAAAAAAAAAAAAAAA=="}}, [b"x"], 400,
     "Possible message corruption."),
    ({"a": {"follows": True, "encoding": "gzip"}}, [b"not gzip"], 400,
     "Invalid gzip data for attachment a"),
    ({"a": {"stub": True}}, [], 412, "Invalid attachment stub in d for a"),
])
def test_bad_multipart_bodies_write_nothing(client: Client, fresh_db: str,
                                            attachments: dict[str, Any], parts: list[bytes],
                                            status: int, reason: str) -> None:
    res = _put_related(client, f"/{fresh_db}/d", {"_attachments": attachments}, parts)
    assert res.status_int == status and res.json["reason"] == reason
    client.get(f"/{fresh_db}/d", status=404)


def test_the_first_part_must_be_json(client: Client, fresh_db: str) -> None:
    body = b"--b\r\nContent-Type: text/plain\r\n\r\n{}\r\n--b--"
    res = send(client, "PUT", f"/{fresh_db}/d", body,
               {"Content-Type": 'multipart/related; boundary="b"'})
    assert res.status_int == 415 and res.json["error"] == "bad_content_type"
    res = send(client, "PUT", f"/{fresh_db}/d", b"no parts",
               {"Content-Type": 'multipart/related; boundary="b"'})
    assert res.status_int == 400
    res = send(client, "PUT", f"/{fresh_db}/d", body, {"Content-Type": "multipart/related"})
    assert res.status_int == 400


def test_a_boundary_split_across_reads_and_a_large_part(client: Client, fresh_db: str) -> None:
    data = (b"\r\n--abc12" * 20_000) + bytes(range(256)) * 600
    res = _put_related(client, f"/{fresh_db}/d", {"_attachments": {"a": {"follows": True}}},
                       [data])
    assert res.status_int == 201, res.body
    assert client.get(f"/{fresh_db}/d/a").body == data


# -- multipart out --------------------------------------------------------------------------------

def _two_revs(client: Client, db: str) -> tuple[str, str]:
    rev1 = client.put_json(f"/{db}/d", {"v": 1, "_attachments": {
        "a.txt": inline(b"first")}}).json["rev"]
    rev2 = client.put_json(f"/{db}/d", {"_rev": rev1, "v": 2, "_attachments": {
        "a.txt": {"stub": True}, "b.bin": inline(b"\x00second", "image/png")}}).json["rev"]
    return rev1, rev2


def test_attachments_true_answers_multipart_related_to_clients_that_accept_it(
        client: Client, fresh_db: str) -> None:
    rev1, rev2 = _two_revs(client, fresh_db)
    for accept in ({"Accept": "multipart/related"}, {}, {"Accept": "*/*"}):
        res = client.get(f"/{fresh_db}/d?attachments=true", headers=accept)
        assert res.headers["Content-Type"].startswith("multipart/related; boundary=")
        assert res.headers["ETag"] == f'"{rev2}"'
        assert int(res.headers["Content-Length"]) == len(res.body)
        parts = parse_multipart(res.headers["Content-Type"], res.body)
        assert parts[0][0] == {"content-type": "application/json"}
        doc = json.loads(parts[0][1])
        assert doc["_attachments"]["a.txt"] == {"content_type": "text/plain", "revpos": 1,
                                                "digest": digest(b"first"), "length": 5,
                                                "follows": True}
        assert [(h["content-disposition"], h["content-type"], h["content-length"], data)
                for h, data in parts[1:]] == [
            ('attachment; filename="a.txt"', "text/plain", "5", b"first"),
            ('attachment; filename="b.bin"', "image/png", "7", b"\x00second")]
    res = client.get(f'/{fresh_db}/d?atts_since=["{rev1}"]',
                     headers={"Accept": "multipart/related"})
    parts = parse_multipart(res.headers["Content-Type"], res.body)
    assert json.loads(parts[0][1])["_attachments"]["a.txt"]["stub"] is True
    assert [data for _, data in parts[1:]] == [b"\x00second"]
    res = client.get(f'/{fresh_db}/d?atts_since=["{rev2}"]',
                     headers={"Accept": "multipart/related"})
    assert res.content_type == "application/json"  # nothing follows: plain JSON, as CouchDB
    assert client.get(f"/{fresh_db}/d?attachments=true", headers=JSON_ONLY).content_type == \
        "application/json"


def test_open_revs_multipart_mixed_nests_documents_with_attachments(client: Client,
                                                                    fresh_db: str) -> None:
    rev1, rev2 = _two_revs(client, fresh_db)
    client.put_json(f"/{fresh_db}/plain", {"v": 1})
    missing = "9-" + "f" * 32
    res = client.get(f'/{fresh_db}/d?open_revs=["{rev2}","{missing}"]&revs=true&latest=true'
                     f'&atts_since=["{rev1}"]', headers={"Accept": "multipart/mixed"})
    assert res.headers["Content-Type"].startswith("multipart/mixed; boundary=")
    assert int(res.headers["Content-Length"]) == len(res.body)
    outer = parse_multipart(res.headers["Content-Type"], res.body)
    assert len(outer) == 2
    inner = parse_multipart(outer[0][0]["content-type"], outer[0][1])
    doc = json.loads(inner[0][1])
    assert doc["_rev"] == rev2 and doc["_revisions"]["start"] == 2
    assert doc["_attachments"]["a.txt"]["stub"] is True
    assert doc["_attachments"]["b.bin"]["follows"] is True
    assert [data for _, data in inner[1:]] == [b"\x00second"]
    assert outer[1][0] == {"content-type": 'application/json; error="true"'}
    assert json.loads(outer[1][1]) == {"missing": missing}
    res = client.get(f"/{fresh_db}/plain?open_revs=all")  # no Accept: multipart, as CouchDB
    outer = parse_multipart(res.headers["Content-Type"], res.body)
    assert outer[0][0] == {"content-type": "application/json"}
    assert json.loads(outer[0][1])["v"] == 1
    res = client.get(f"/{fresh_db}/d?open_revs=all")
    inner = parse_multipart(parse_multipart(res.headers["Content-Type"], res.body)[0][0][
        "content-type"], parse_multipart(res.headers["Content-Type"], res.body)[0][1])
    assert [data for _, data in inner[1:]] == [b"first", b"\x00second"]
