"""Hostile input on the wire against a live gunicorn (reliability.md section 4, 19, 20, 26, 29)."""

# Bodies over the limits with and without Content-Length, ids that must survive headers, and
# request lines and headers beyond what gunicorn or CouchDB accept.
#
# webtest would hide what gunicorn does (chunked framing, Latin-1 headers, its own limits), so
# these requests go over a socket exactly as written.

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import reliability
from live import HOST, LiveServer
from reliability import BACKENDS, error_shape_problem

pytest_plugins = ["reliability_report"]

pytestmark = pytest.mark.live

REQUEST_LIMIT = 1_000_000
DOC_LIMIT = 100_000


@pytest.fixture(scope="module", params=BACKENDS)
def wire(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[LiveServer]:
    """`settee serve` with small body limits (1 MB request, 100 KB document)."""
    workdir = tmp_path_factory.mktemp(f"wire-{request.param}")
    with reliability.live_store(request.param, request, workdir, workers=2, clean_exit=True,
                                args=["--max-http-request-size", str(REQUEST_LIMIT),
                                      "--max-document-size", str(DOC_LIMIT)]) as live:
        yield live.server


def new_db(server: LiveServer) -> str:
    name = "wire_" + uuid.uuid4().hex[:8]
    assert server.request("PUT", f"/{name}").status == 201
    return name


class Raw:
    """A response read from a raw socket: status, header lines, body."""

    def __init__(self, data: bytes) -> None:
        head, _, self.body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1]) if lines and lines[0].startswith("HTTP/") else 0
        self.headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip()] = value.strip()

    def json(self) -> Any:
        return json.loads(self.body)


def raw_exchange(port: int, head: bytes, body_parts: Sequence[bytes] = (), timeout: float = 10.0
                 ) -> tuple[Raw, float]:
    """Send `head` and the body parts (stopping quietly if the server closes), read the answer
    until the server closes or its Content-Length is in; (answer, seconds to the first byte)."""
    sock = socket.create_connection((HOST, port), timeout=timeout)
    started = time.monotonic()
    first = 0.0
    try:
        sock.sendall(head)
        for part in body_parts:
            try:
                sock.sendall(part)
            except OSError:
                break  # the server answered and closed without reading everything
        if not body_parts:
            sock.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            if not data:
                first = time.monotonic() - started
            data += chunk
            answer = Raw(data)
            length = answer.headers.get("Content-Length")
            if length is not None and len(answer.body) >= int(length):
                break
        return Raw(data), first
    finally:
        sock.close()


def http_head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunked(data: bytes, size: int = 65536) -> list[bytes]:
    parts = [b"%x\r\n" % len(data[i:i + size]) + data[i:i + size] + b"\r\n"
             for i in range(0, len(data), size)]
    return parts + [b"0\r\n\r\n"]


def doc_of(size: int) -> bytes:
    return b'{"pad":"' + b"x" * (size - 10) + b'"}'


def bulk_of(size: int) -> bytes:
    one = b'{"_id":"%d","pad":"' + b"y" * 990 + b'"}'
    count = size // len(one)
    return b'{"docs":[' + b",".join(one.replace(b"%d", str(i).encode()) for i in range(count)) \
        + b"]}"


# -- 19 and 20: bodies over the limit ------------------------------------------------------

def assert_nothing_stored(server: LiveServer, db: str) -> None:
    info = server.request("GET", f"/{db}").json()
    assert (info["update_seq"], info["doc_count"]) == (0, 0), info


def test_content_length_over_the_limit_is_413_without_reading(wire: LiveServer) -> None:
    db = new_db(wire)
    head = http_head("PUT", f"/{db}/big", {"Content-Type": "application/json",
                                           "Content-Length": str(100 * 1024 * 1024)})
    answer, first = raw_exchange(wire.port, head, [b'{"pad":"' + b"x" * 65536])
    assert answer.status == 413, answer.body
    assert answer.json()["error"] == "too_large"
    assert first < 1.0, f"413 after {first:.2f} s"
    assert_nothing_stored(wire, db)


@pytest.mark.parametrize("framing", ["length", "chunked"])
@pytest.mark.parametrize("route,body,error", [
    ("/big", doc_of(2 * REQUEST_LIMIT), "too_large"),
    ("/_bulk_docs", bulk_of(2 * REQUEST_LIMIT), "too_large"),
    ("/big", doc_of(2 * DOC_LIMIT), "document_too_large"),
])
def test_bodies_over_the_limits_are_413_and_store_nothing(
        wire: LiveServer, framing: str, route: str, body: bytes, error: str) -> None:
    db = new_db(wire)
    method = "POST" if route == "/_bulk_docs" else "PUT"
    headers = {"Content-Type": "application/json"}
    if framing == "length":
        headers["Content-Length"] = str(len(body))
        parts = [body]
    else:
        headers["Transfer-Encoding"] = "chunked"
        parts = chunked(body)
    answer, _ = raw_exchange(wire.port, http_head(method, f"/{db}{route}", headers), parts)
    assert answer.status == 413, (answer.status, answer.body[:300])
    assert answer.json()["error"] == error
    assert_nothing_stored(wire, db)


@pytest.mark.parametrize("route,body", [("/fits", doc_of(DOC_LIMIT - 100)),
                                        ("/_bulk_docs", bulk_of(REQUEST_LIMIT - 2000))])
def test_chunked_bodies_under_the_limits_are_stored_whole(wire: LiveServer, route: str,
                                                          body: bytes) -> None:
    db = new_db(wire)
    method = "POST" if route == "/_bulk_docs" else "PUT"
    head = http_head(method, f"/{db}{route}", {"Content-Type": "application/json",
                                               "Transfer-Encoding": "chunked"})
    answer, _ = raw_exchange(wire.port, head, chunked(body, 4096))
    assert answer.status == 201, answer.body[:300]
    if route == "/fits":
        got = wire.request("GET", f"/{db}/fits").json()
        assert len(got["pad"]) == DOC_LIMIT - 110
    else:
        count = body.count(b'"_id"')
        assert wire.request("GET", f"/{db}").json()["doc_count"] == count


# -- 26: ids on the wire -------------------------------------------------------------------------

@pytest.mark.parametrize("raw,status,doc_id", [
    ("_foo", 400, None),
    ("_design%2F", 400, None),
    ("_local%2F", 400, None),
    ("a%00b", 400, None),
    ("%E2%98%83%2F..", 201, "\u2603/.."),
    ("a%2Fb", 201, "a/b"),
    ("%C3%A9t%C3%A9%20%E2%82%AC", 201, "\u00e9t\u00e9 \u20ac"),
    ("x%0D%0ASet-Cookie:%20x=1", 201, "x\r\nSet-Cookie: x=1"),
    ("%F0%9F%98%80", 201, "\U0001f600"),
])
def test_ids_on_the_wire(wire: LiveServer, raw: str, status: int, doc_id: str | None) -> None:
    db = new_db(wire)
    put = wire.request("PUT", f"/{db}/{raw}", '{"v": 1}')
    assert put.status == status, put.body
    assert put.headers.get_all("Set-Cookie") is None
    if status != 201:
        assert error_shape_problem(put) is None
        assert put.json()["error"] in ("bad_request", "illegal_docid")
        assert_nothing_stored(wire, db)
        return
    location = put.headers["Location"]
    assert location.isascii() and "\r" not in location and "\n" not in location
    assert doc_id is not None and put.json()["id"] == doc_id
    got = wire.request("GET", f"/{db}/{raw}")
    assert got.status == 200 and got.json()["_id"] == doc_id
    # the same id through a body and back through Location
    post = wire.request("POST", f"/{db}", json.dumps({"_id": doc_id + "-2"}))
    assert post.status == 201, post.body
    path = post.headers["Location"].split(str(wire.port), 1)[1]
    assert wire.request("GET", path).json()["_id"] == doc_id + "-2"


def test_a_10kb_id_and_attachment_paths(wire: LiveServer) -> None:
    db = new_db(wire)
    long_id = "k" * 10_240
    post = wire.request("POST", f"/{db}", json.dumps({"_id": long_id}))
    assert post.status == 201, post.body
    assert post.headers["Location"].endswith("/" + long_id)
    keyed = wire.request("POST", f"/{db}/_all_docs", json.dumps({"keys": [long_id]})).json()
    assert keyed["rows"][0]["id"] == long_id
    assert wire.request("GET", f"/{db}/{long_id}").status == 414  # the URL is too long
    # `a%2Fb` is a document; `a/b` is an attachment path, never that document
    rev = wire.request("PUT", f"/{db}/a%2Fb", "{}").json()["rev"]
    attachment = wire.request("PUT", f"/{db}/a/b", "{}")
    assert attachment.status < 500 or attachment.status == 501, attachment.body
    assert wire.request("GET", f"/{db}/a%2Fb").json()["_rev"] == rev


def test_nul_in_a_body_id_is_refused(wire: LiveServer) -> None:
    db = new_db(wire)
    answer = wire.request("POST", f"/{db}", json.dumps({"_id": "a\u0000b"}))
    assert answer.status == 400 and answer.json()["error"] == "illegal_docid"
    assert_nothing_stored(wire, db)


# -- 29: request lines and headers -----------------------------------------------------------------

def test_long_urls_and_many_or_long_headers(wire: LiveServer) -> None:
    db = new_db(wire)
    url_8k = f"/{db}/_all_docs?startkey=%22" + "a" * (8100 - len(db) - 30) + "%22"
    answer, _ = raw_exchange(wire.port, http_head("GET", url_8k, {"Connection": "close"}))
    assert answer.status == 414 and answer.json()["error"] == "too_long", answer.body[:200]
    url_9k = f"/{db}/" + "a" * 9216
    answer, _ = raw_exchange(wire.port, http_head("GET", url_9k, {"Connection": "close"}))
    assert answer.status in (400, 414), answer.body[:200]  # gunicorn's own 400 beyond 8190
    many = {f"X-H{i}": "v" for i in range(101)} | {"Connection": "close"}
    answer, _ = raw_exchange(wire.port, http_head("GET", "/_up", many))
    assert answer.status in (400, 431), answer.body[:200]
    big = {"X-Big": "v" * 16384, "Connection": "close"}
    answer, _ = raw_exchange(wire.port, http_head("GET", "/_up", big))
    assert answer.status in (400, 431), answer.body[:200]
    assert wire.request("GET", "/_up").status == 200
