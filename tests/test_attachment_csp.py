"""Reliability test 39: every attachment answer carries `Content-Security-Policy: sandbox` and
`X-Content-Type-Options: nosniff` (CVE-2021-38295): HTML, SVG and JavaScript attachments, of
documents and design documents, inline and `?rev=`, HEAD, single and multiple ranges, 304 and
errors; the stored `Content-Type` is served unchanged."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import Client

PAYLOADS = {
    "page.html": ("text/html", b"<html><script>alert(document.cookie)</script></html>"),
    "image.svg": ("image/svg+xml",
                  b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'),
    "code.js": ("application/javascript", b"fetch('/_session').then(r => r.text())"),
}


def secured(resp: Any) -> None:
    assert resp.headers["Content-Security-Policy"] == "sandbox"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("doc_path", ["doc", "_design/app"])
def test_every_attachment_answer_is_sandboxed(module_client: Client, doc_path: str) -> None:
    c = module_client
    db = "csp_" + doc_path.replace("/", "_")
    c.put(f"/{db}", status="*")
    rev = None
    for name, (ctype, data) in PAYLOADS.items():
        url = f"/{db}/{doc_path}/{name}" + (f"?rev={rev}" if rev else "")
        put = c.put(url, data, content_type=ctype, status=201)
        secured(put)
        rev = put.json["rev"]
    first = c.get(f"/{db}/{doc_path}").json["_rev"]
    for name, (ctype, data) in PAYLOADS.items():
        url = f"/{db}/{doc_path}/{name}"
        got = c.get(url)
        secured(got)
        assert got.headers["Content-Type"] == ctype and got.body == data
        secured(c.get(f"{url}?rev={first}"))
        head = c.head(url)
        secured(head)
        assert head.headers["Content-Type"] == ctype
        one = c.get(url, headers={"Range": "bytes=1-4"}, status=206)
        secured(one)
        assert one.body == data[1:5]
        many = c.get(url, headers={"Range": "bytes=0-1,3-5"}, status=206)
        secured(many)
        assert many.headers["Content-Type"].startswith("multipart/byteranges")
        secured(c.get(url, headers={"If-None-Match": got.headers["ETag"]}, status=304))
        secured(c.get(url, headers={"Range": "bytes=999-"}, status=416))
    secured(c.get(f"/{db}/{doc_path}/nope.html", status=404))
    secured(c.get(f"/{db}/{doc_path}/page.html?rev=1-{'0' * 32}", status=404))
    deleted = c.delete(f"/{db}/{doc_path}/page.html?rev={rev}", status=200)
    secured(deleted)
