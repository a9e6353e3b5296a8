"""Hostile attachment names on a live gunicorn (reliability.md section 4, test 28).

`../../etc/passwd`, `a/../b`, `..%2f` and `☃.txt` are stored and served byte-exact (sent with
every special byte percent-encoded, as a client library does); `_foo.txt` is refused with
CouchDB's 400 text; no file appears anywhere under the server's directory except its own
(attachments live in the store's blob tables); a `Content-Disposition`, if sent, is Latin-1-safe.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import reliability
from live import LiveServer
from reliability import BACKENDS, figure

pytest_plugins = ["reliability_report"]

pytestmark = pytest.mark.live

NAMES = ["../../etc/passwd", "a/../b", "..%2f", "☃.txt", "..", "./x", "a//b", "%2e%2e"]


@pytest.fixture(params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, LiveServer,
                                                                             Path]]:
    with reliability.live_store(request.param, request, tmp_path, workers=2,
                                clean_exit=True) as live:
        yield live.backend, live.server, tmp_path


def files_under(root: Path) -> set[str]:
    return {str(Path(d, f).relative_to(root)) for d, _, fs in os.walk(root) for f in fs}


def enc(name: str) -> str:
    return quote(name, safe="")


def test_attachment_names(server: tuple[str, LiveServer, Path]) -> None:
    backend, live, workdir = server
    db = "att_" + uuid.uuid4().hex[:8]
    assert live.request("PUT", f"/{db}").status == 201
    reply = live.request("PUT", f"/{db}/doc", "{}")
    assert reply.status == 201
    rev = reply.json()["rev"]
    before = files_under(workdir)
    etc_before = set(os.listdir("/etc"))
    checked = 0
    for n, name in enumerate(NAMES):
        data = f"payload {n} {name}\n".encode() + bytes(range(256))
        reply = live.request("PUT", f"/{db}/doc/{enc(name)}?rev={rev}", data,
                             headers={"Content-Type": "application/octet-stream"})
        assert reply.status == 201, (name, reply.status, reply.body)
        rev = reply.json()["rev"]
        got = live.request("GET", f"/{db}/doc/{enc(name)}")
        assert got.status == 200, (name, got.status, got.body)
        assert got.body == data, name
        disposition = got.headers.get("Content-Disposition")
        if disposition is not None:
            disposition.encode("latin-1")  # what gunicorn can send
        checked += 1
    doc = live.request("GET", f"/{db}/doc").json()
    assert sorted(doc["_attachments"]) == sorted(NAMES)
    for name in NAMES:  # the stubs are exact too
        got = doc["_attachments"][name]
        assert got["length"] == len(f"payload {NAMES.index(name)} {name}\n".encode()) + 256

    refused = live.request("PUT", f"/{db}/doc/_foo.txt?rev={rev}", b"x",
                           headers={"Content-Type": "text/plain"})
    assert refused.status == 400, refused.body
    assert refused.json() == {"error": "bad_request", "reason":
                              "Attachment name '_foo.txt' starts with prohibited character '_'"}
    assert "_foo.txt" not in live.request("GET", f"/{db}/doc").json()["_attachments"]

    new_files = {f for f in files_under(workdir) - before if not f.endswith(".log")
                 and not f.startswith("data/settee.sqlite")}
    assert new_files == set(), new_files
    assert set(os.listdir("/etc")) == etc_before
    figure(backend, "hostile attachment names checked", checked + 1)
