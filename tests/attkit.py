"""Helpers for the attachment tests: raw requests, multipart bodies in and out, store tables.

Not a test module: the attachment test files `import attkit` (pytest puts `tests/` on `sys.path`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path
from typing import Any

from conftest import Client

DATA = Path(__file__).parent / "data"
REVS = {case["name"]: case for case in json.loads((DATA / "revs.json").read_text())["cases"]}
GOLDEN = REVS["multipart doc with two attachments"]
SECURITY = {"Content-Security-Policy": "sandbox", "X-Content-Type-Options": "nosniff"}
JSON_ONLY = {"Accept": "application/json"}


def digest(data: bytes) -> str:
    """CouchDB's digest of some bytes."""
    return "md5-" + base64.b64encode(hashlib.md5(data).digest()).decode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def inline(data: bytes, content_type: str = "text/plain", **extra: Any) -> dict[str, Any]:
    """An `_attachments` entry with inline base64 data."""
    return {"content_type": content_type, "data": b64(data), **extra}


def send(client: Client, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None, *, chunked: bool = False) -> Any:
    """A request with exactly these headers (no default Content-Type) and, if `chunked`, no
    Content-Length (the body read to its end, as gunicorn hands a chunked body over)."""
    raw_path, _, query = path.partition("?")
    environ = dict(client.extra_environ)
    environ["REQUEST_URI"] = path
    req = client.RequestClass.blank(raw_path + (f"?{query}" if query else ""), environ)
    req.method = method
    if body is not None:
        req.body = body
    req.environ.pop("CONTENT_TYPE", None)
    for name, value in (headers or {}).items():
        req.headers[name] = value
    if chunked:
        req.environ.pop("CONTENT_LENGTH", None)
        req.environ["wsgi.input_terminated"] = True
        req.environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    return client.do_request(req, status="*")


def related_body(doc: dict[str, Any], parts: list[bytes | tuple[dict[str, str], bytes]],
                 boundary: str = "abc123") -> tuple[bytes, str]:
    """A `multipart/related` document body: the JSON, then one raw part per attachment."""
    out = [f"--{boundary}\r\nContent-Type: application/json\r\n\r\n".encode(),
           json.dumps(doc).encode()]
    for part in parts:
        headers, data = part if isinstance(part, tuple) else ({}, part)
        out.append(f"\r\n--{boundary}\r\n".encode())
        out.append("".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode() + b"\r\n")
        out.append(data)
    out.append(f"\r\n--{boundary}--".encode())
    return b"".join(out), f'multipart/related; boundary="{boundary}"'


def parse_multipart(content_type: str, body: bytes) -> list[tuple[dict[str, str], bytes]]:
    """The parts of a multipart body: (headers with lower-case names, bytes)."""
    found = re.search(r'boundary="?([^";]+)"?', content_type)
    assert found, content_type
    delim = b"--" + found.group(1).encode()
    assert body.startswith(delim), body[:80]
    assert body.endswith(b"\r\n" + delim + b"--"), body[-80:]
    parts = []
    for chunk in body[len(delim):-len(delim) - 4].split(b"\r\n" + delim):
        assert chunk.startswith(b"\r\n"), chunk[:40]
        head, sep, data = chunk[2:].partition(b"\r\n\r\n")
        if not sep:  # no headers at all
            head, data = b"", chunk[4:]
        headers = {}
        for line in head.decode("utf-8").split("\r\n") if head else []:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        parts.append((headers, data))
    return parts


def table_count(app: Any, table: str, where: str = "", params: tuple[Any, ...] = ()) -> int:
    """Rows in one of the store's tables."""
    from settee.store import sql
    with app.store.engine.transaction() as conn:
        row = sql.fetchone(conn, f"SELECT count(*) FROM {table} {where}", params)
    return int(row[0]) if row else 0


def blob_count(app: Any, data: bytes) -> int:
    """How many blob rows hold these bytes (0 or 1)."""
    return table_count(app, "settee_blobs", "WHERE digest = ?", (digest(data),))
