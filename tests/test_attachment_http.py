"""Standalone attachments: PUT/GET/HEAD/DELETE `/{db}/{docid}/{name}`, revs, ETags, ranges, names,
and the security headers on every answer; plus a live gunicorn check of Unicode names in headers.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from attkit import SECURITY, digest, parse_multipart, send
from conftest import Client
from live import LiveServer

HOST = "http://127.0.0.1:5984"
TEXT = b"hello, attachment world"  # 23 bytes


@pytest.fixture
def client(module_app: Any) -> Client:
    """This module's client (overrides conftest's, which builds a store per test)."""
    return Client(module_app, extra_environ={"HTTP_HOST": "127.0.0.1:5984"})


def _put(client: Client, path: str, data: bytes, content_type: str | None = "text/plain",
         status: int = 201, **headers: str) -> Any:
    if content_type is not None:
        headers["Content-Type"] = content_type
    res = send(client, "PUT", path, data, headers)
    assert res.status_int == status, res.body
    return res


def _secure(res: Any) -> None:
    for name, value in SECURITY.items():
        assert res.headers.get(name) == value, (res.status, name)


# -- PUT ------------------------------------------------------------------------------------------

def test_put_creates_the_document_and_answers_201(client: Client, fresh_db: str) -> None:
    res = _put(client, f"/{fresh_db}/doc/a.txt", TEXT)
    rev = res.json["rev"]
    assert res.json == {"ok": True, "id": "doc", "rev": rev} and rev.startswith("1-")
    assert res.headers["Location"] == f"{HOST}/{fresh_db}/doc/a.txt"
    _secure(res)
    assert client.get(f"/{fresh_db}/doc").json == {"_id": "doc", "_rev": rev, "_attachments": {
        "a.txt": {"content_type": "text/plain", "revpos": 1, "digest": digest(TEXT),
                  "length": len(TEXT), "stub": True}}}


def test_put_with_rev_or_if_match_keeps_the_body_and_puts_the_new_one_first(
        client: Client, fresh_db: str) -> None:
    rev1 = client.put_json(f"/{fresh_db}/doc", {"title": "t", "n": 1.0}).json["rev"]
    rev2 = _put(client, f"/{fresh_db}/doc/a?rev={rev1}", b"A").json["rev"]
    rev3 = _put(client, f"/{fresh_db}/doc/b", b"B", "image/png", status=201,
                **{"If-Match": f'"{rev2}"'}).json["rev"]
    doc = client.get(f"/{fresh_db}/doc").json
    assert doc["_rev"] == rev3 and doc["title"] == "t" and doc["n"] == 1.0
    assert list(doc["_attachments"]) == ["b", "a"]
    assert doc["_attachments"]["a"]["revpos"] == 2 and doc["_attachments"]["b"]["revpos"] == 3
    rev4 = _put(client, f"/{fresh_db}/doc/a?rev={rev3}", b"A2").json["rev"]
    assert list(client.get(f"/{fresh_db}/doc").json["_attachments"]) == ["a", "b"]
    assert rev4.startswith("4-")


def test_put_rev_errors_follow_couchdb(client: Client, fresh_db: str) -> None:
    rev = _put(client, f"/{fresh_db}/doc/a", b"A").json["rev"]
    res = _put(client, f"/{fresh_db}/doc/b", b"B", status=409)
    assert res.json == {"error": "conflict", "reason": "Document update conflict."}
    _secure(res)
    rev2 = _put(client, f"/{fresh_db}/doc/b?rev={rev}", b"B").json["rev"]
    _put(client, f"/{fresh_db}/doc/c?rev={rev}", b"C", status=409)  # stale
    res = _put(client, f"/{fresh_db}/doc/c?rev=1-{'0' * 32}", b"C", status=409)
    assert res.json == {"error": "not_found", "reason": "missing_rev"}
    res = _put(client, f"/{fresh_db}/doc/c?rev={rev2}", b"C", status=400,
               **{"If-Match": f'"{rev}"'})
    assert res.json["reason"] == "Document rev and etag have different values"
    _put(client, f"/{fresh_db}/doc/c?rev=bogus", b"C", status=400)
    res = _put(client, f"/{fresh_db}/doc/c", b"C", status=415, **{"Content-Encoding": "br"})
    assert res.json["reason"] == "Only gzip and identity content-encodings are supported"
    res = _put(client, f"/{fresh_db}/doc/_c?rev={rev2}", b"C", status=400)
    assert res.json["reason"] == "Attachment name '_c' starts with prohibited character '_'"


def test_put_without_content_type_is_octet_stream_and_content_md5_is_checked(
        client: Client, fresh_db: str) -> None:
    _put(client, f"/{fresh_db}/doc/raw", b"\x00\xff", content_type=None)
    got = client.get(f"/{fresh_db}/doc/raw")
    assert got.headers["Content-Type"] == "application/octet-stream"
    assert got.body == b"\x00\xff"
    res = _put(client, f"/{fresh_db}/other/x", b"abc", status=400,
               **{"Content-MD5": "AAAAAAAAAAAAAAAAAAAAAA=="})
    assert res.json == {"error": "content_md5_mismatch", "reason": "Possible message corruption."}
    client.get(f"/{fresh_db}/other", status=404)


def test_put_on_a_deleted_document_recreates_it(client: Client, fresh_db: str) -> None:
    rev = client.put_json(f"/{fresh_db}/doc", {"v": 1}).json["rev"]
    client.delete(f"/{fresh_db}/doc?rev={rev}")
    res = _put(client, f"/{fresh_db}/doc/a", b"A")
    assert res.json["rev"].startswith("3-")
    assert client.get(f"/{fresh_db}/doc").json["_attachments"]["a"]["revpos"] == 3


def test_gzip_encoded_upload_is_stored_decoded(client: Client, fresh_db: str) -> None:
    import gzip
    _put(client, f"/{fresh_db}/doc/z.txt", gzip.compress(TEXT * 100), status=201,
         **{"Content-Encoding": "gzip"})
    got = client.get(f"/{fresh_db}/doc/z.txt")
    assert got.body == TEXT * 100 and "Content-Encoding" not in got.headers
    _put(client, f"/{fresh_db}/doc2/z.txt", b"not gzip", status=400,
         **{"Content-Encoding": "gzip"})


# -- GET and HEAD ---------------------------------------------------------------------------------

def test_get_streams_bytes_with_couchdb_headers_and_head_has_them_too(client: Client,
                                                                      fresh_db: str) -> None:
    _put(client, f"/{fresh_db}/doc/a.txt", TEXT, "text/plain;charset=utf-8")
    for res in (client.get(f"/{fresh_db}/doc/a.txt"), client.head(f"/{fresh_db}/doc/a.txt")):
        assert res.status_int == 200
        assert res.headers["Content-Type"] == "text/plain;charset=utf-8"
        assert res.headers["ETag"] == '"' + digest(TEXT)[4:] + '"'
        assert res.headers["Accept-Ranges"] == "bytes"
        assert res.headers["Content-Length"] == str(len(TEXT))
        assert res.headers["Cache-Control"] == "must-revalidate"
        _secure(res)
    assert client.get(f"/{fresh_db}/doc/a.txt").body == TEXT
    assert client.head(f"/{fresh_db}/doc/a.txt").body == b""
    etag = '"' + digest(TEXT)[4:] + '"'
    res = client.get(f"/{fresh_db}/doc/a.txt", headers={"If-None-Match": etag}, status=304)
    assert res.body == b"" and res.headers["ETag"] == etag
    _secure(res)


def test_get_of_old_revisions_and_couchdb_404_reasons(client: Client, fresh_db: str) -> None:
    rev1 = _put(client, f"/{fresh_db}/doc/a", b"one").json["rev"]
    rev2 = _put(client, f"/{fresh_db}/doc/a?rev={rev1}", b"two").json["rev"]
    assert client.get(f"/{fresh_db}/doc/a?rev={rev1}").body == b"one"
    assert client.get(f"/{fresh_db}/doc/a").body == b"two"
    cases = [(f"/{fresh_db}/nodoc/a", "missing"),
             (f"/{fresh_db}/doc/b", "Document is missing attachment"),
             (f"/{fresh_db}/doc/a?rev=1-{'0' * 32}", "missing"),
             ("/no_such_db/doc/a", "Database does not exist.")]
    for path, reason in cases:
        res = client.get(path, status=404)
        assert res.json == {"error": "not_found", "reason": reason}
        _secure(res)
    client.delete(f"/{fresh_db}/doc?rev={rev2}")
    assert client.get(f"/{fresh_db}/doc/a", status=404).json["reason"] == "deleted"
    assert client.get(f"/{fresh_db}/doc/a?rev={rev2}").body == b"two"
    client.get(f"/{fresh_db}/doc/a?rev=garbage", status=400)


# -- DELETE ---------------------------------------------------------------------------------------

def test_delete_removes_one_attachment_with_a_new_rev(client: Client, fresh_db: str) -> None:
    rev = _put(client, f"/{fresh_db}/doc/a", b"A").json["rev"]
    rev = _put(client, f"/{fresh_db}/doc/b?rev={rev}", b"B").json["rev"]
    res = client.delete(f"/{fresh_db}/doc/a", status=409)
    assert res.json["error"] == "conflict"
    client.delete(f"/{fresh_db}/doc/zzz", status=404)
    res = client.delete(f"/{fresh_db}/doc/a?rev={rev}", status=200)
    _secure(res)
    assert res.json["ok"] is True and res.json["rev"].startswith("3-")
    assert list(client.get(f"/{fresh_db}/doc").json["_attachments"]) == ["b"]
    res = client.delete(f"/{fresh_db}/doc/a?rev={res.json['rev']}", status=404)
    assert res.json["reason"] == "Document is missing attachment"
    client.delete(f"/{fresh_db}/doc/b?rev={rev}", status=409)


# -- ranges ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("header", "status", "body", "content_range"), [
    ("bytes=0-0", 206, TEXT[:1], "bytes 0-0/23"),
    ("bytes=7-16", 206, TEXT[7:17], "bytes 7-16/23"),
    ("bytes=20-", 206, TEXT[20:], "bytes 20-22/23"),
    ("bytes=-3", 206, TEXT[-3:], "bytes 20-22/23"),
    ("bytes=-100", 206, TEXT, "bytes 0-22/23"),
    ("bytes=10-1000", 206, TEXT[10:], "bytes 10-22/23"),
    ("bytes=22-22", 206, TEXT[22:], "bytes 22-22/23"),
    ("bytes=0-", 200, TEXT, None),
    ("items=0-3", 200, TEXT, None),
    ("bytes=a-b", 200, TEXT, None),
    ("bytes=23-30", 416, None, "bytes */23"),
    ("bytes=5-2", 416, None, "bytes */23"),
    ("bytes=-0", 416, None, "bytes */23"),
])
def test_single_ranges(client: Client, fresh_db: str, header: str, status: int,
                       body: bytes | None, content_range: str | None) -> None:
    _put(client, f"/{fresh_db}/doc/a", TEXT)
    res = client.get(f"/{fresh_db}/doc/a", headers={"Range": header}, status=status)
    _secure(res)
    assert res.headers.get("Content-Range") == content_range
    if status == 416:
        assert res.json == {"error": "requested_range_not_satisfiable",
                            "reason": "Requested range not satisfiable"}
    else:
        assert res.body == body and res.headers["Content-Length"] == str(len(body or b""))


def test_multiple_ranges_are_multipart_byteranges(client: Client, fresh_db: str) -> None:
    _put(client, f"/{fresh_db}/doc/a", TEXT)
    res = client.get(f"/{fresh_db}/doc/a", headers={"Range": "bytes=0-4, -5"}, status=206)
    assert res.content_type == "multipart/byteranges"
    parts = parse_multipart(res.headers["Content-Type"], res.body)
    assert [(h["content-range"], data) for h, data in parts] == [
        ("bytes 0-4/23", TEXT[:5]), ("bytes 18-22/23", TEXT[-5:])]
    assert all(h["content-type"] == "text/plain" for h, _ in parts)
    assert int(res.headers["Content-Length"]) == len(res.body)
    many = ",".join(f"{i}-{i}" for i in range(10))
    assert client.get(f"/{fresh_db}/doc/a", headers={"Range": f"bytes={many}"}).status_int == 200


def test_ranges_across_chunk_boundaries(client: Client, fresh_db: str) -> None:
    data = bytes(i % 251 for i in range(300_000))
    _put(client, f"/{fresh_db}/doc/big", data, "application/octet-stream")
    assert client.get(f"/{fresh_db}/doc/big").body == data
    for lo, hi in [(65530, 65545), (0, 65535), (65536, 131071), (131000, 299_999),
                   (299_999, 299_999)]:
        res = client.get(f"/{fresh_db}/doc/big", headers={"Range": f"bytes={lo}-{hi}"})
        assert res.status_int == 206 and res.body == data[lo:hi + 1], (lo, hi)


def test_empty_attachments(client: Client, fresh_db: str) -> None:
    _put(client, f"/{fresh_db}/doc/e", b"")
    res = client.get(f"/{fresh_db}/doc/e")
    assert res.body == b"" and res.headers["Content-Length"] == "0"
    assert client.get(f"/{fresh_db}/doc").json["_attachments"]["e"]["length"] == 0
    client.get(f"/{fresh_db}/doc/e", headers={"Range": "bytes=0-0"}, status=416)


# -- names ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "name"), [
    ("dir/sub/file.txt", "dir/sub/file.txt"),
    ("../../etc/passwd", "../../etc/passwd"),
    ("..%2F..%2Fetc%2Fpasswd", "../../etc/passwd"),
    ("a%20b%3F%23", "a b?#"),
    ("%E2%98%83%20snow%C3%A9.txt", "\u2603 snow\u00e9.txt"),
    ("cafe%CC%81", "cafe\u0301"),
    ("%25", "%"),
])
def test_names_are_keys_kept_byte_for_byte(client: Client, fresh_db: str, raw: str,
                                           name: str) -> None:
    res = send(client, "PUT", f"/{fresh_db}/doc/{raw}", b"x", {"Content-Type": "text/plain"})
    assert res.status_int == 201, res.body
    assert res.headers["Location"] == f"{HOST}/{fresh_db}/doc/{quote(name, safe='')}"
    assert list(client.get(f"/{fresh_db}/doc").json["_attachments"]) == [name]
    assert send(client, "GET", f"/{fresh_db}/doc/{raw}").body == b"x"
    encoded = quote(name, safe="")
    assert send(client, "GET", f"/{fresh_db}/doc/{encoded}").body == b"x"


def test_nfc_and_nfd_names_are_two_attachments(client: Client, fresh_db: str) -> None:
    rev = _put(client, f"/{fresh_db}/doc/caf%C3%A9", b"nfc").json["rev"]
    _put(client, f"/{fresh_db}/doc/cafe%CC%81?rev={rev}", b"nfd")
    assert send(client, "GET", f"/{fresh_db}/doc/caf%C3%A9").body == b"nfc"
    assert send(client, "GET", f"/{fresh_db}/doc/cafe%CC%81").body == b"nfd"


def test_names_that_are_not_utf8_are_400(client: Client, fresh_db: str) -> None:
    res = send(client, "PUT", f"/{fresh_db}/doc/%FF", b"x", {"Content-Type": "text/plain"})
    assert res.status_int == 400 and res.json["error"] == "bad_request"


def test_design_document_attachments(client: Client, fresh_db: str) -> None:
    rev = _put(client, f"/{fresh_db}/_design/app/index.html", b"<h1>hi</h1>",
               "text/html").json["rev"]
    doc = client.get(f"/{fresh_db}/_design/app").json
    assert doc["_rev"] == rev and list(doc["_attachments"]) == ["index.html"]
    res = client.get(f"/{fresh_db}/_design/app/index.html")
    assert res.body == b"<h1>hi</h1>" and res.content_type == "text/html"
    _secure(res)  # stored HTML cannot run as the server's origin
    res = client.delete(f"/{fresh_db}/_design/app/index.html?rev={rev}", status=200)
    assert "_attachments" not in client.get(f"/{fresh_db}/_design/app").json
    client.get(f"/{fresh_db}/_local/x/y", status=400)


def test_unsafe_stored_content_types_are_not_sent_as_headers(client: Client,
                                                             fresh_db: str) -> None:
    client.put_json(f"/{fresh_db}/doc", {"_attachments": {
        "a": {"content_type": "text/html\r\nSet-Cookie: x=1", "data": "eA=="},
        "b": {"content_type": "text/plain; name=\u2603", "data": "eA=="}}})
    for name in ("a", "b"):
        res = client.get(f"/{fresh_db}/doc/{name}")
        assert res.headers["Content-Type"] == "application/octet-stream"
        assert "Set-Cookie" not in res.headers


# -- on the wire ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """`settee serve` on SQLite, 1 worker (its headers go through gunicorn's Latin-1 writer)."""
    server = LiveServer.settee(Path(tmp_path_factory.mktemp("live-att")))
    server.start()
    try:
        yield server
    finally:
        server.stop()
    assert "Traceback" not in server.stderr(), server.stderr()


@pytest.mark.live
def test_unicode_names_and_types_through_gunicorn(live_server: LiveServer) -> None:
    db = "db_" + uuid.uuid4().hex[:10]
    assert live_server.request("PUT", f"/{db}").status == 201
    raw = "%E2%98%83%0D%0AX-Injected%3A%201.txt"
    res = live_server.request("PUT", f"/{db}/doc/{raw}", b"snow",
                              headers={"Content-Type": "text/plain"})
    assert res.status == 201, res.body
    assert res.headers["Location"].endswith(f"/{db}/doc/{raw}")
    got = live_server.request("GET", f"/{db}/doc/{raw}")
    assert got.status == 200 and got.body == b"snow"
    assert got.headers["Content-Security-Policy"] == "sandbox"
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert "X-Injected" not in got.headers
    body = '{"_attachments": {"\u00e9": {"content_type": "text/\u2603", "data": "eA=="}}}'
    assert live_server.request("PUT", f"/{db}/other", body.encode()).status == 201
    got = live_server.request("GET", f"/{db}/other/%C3%A9")
    assert got.status == 200 and got.headers["Content-Type"] == "application/octet-stream"
    multi = live_server.request("GET", f"/{db}/doc?attachments=true",
                                headers={"Accept": "multipart/related"})
    assert multi.status == 200 and multi.headers["Content-Type"].startswith("multipart/related")
    assert live_server.request("DELETE", f"/{db}").status == 200
