"""Helpers for the security tests: in-process requests with an address, users and credentials."""

from __future__ import annotations

import base64
import io
import json
from typing import Any
from urllib.parse import unquote_to_bytes

from reliability import Answer
from settee.server.passwords import hash_password

ADMIN, ADMIN_PASSWORD = "admin", "correct horse battery"
REMOTE = "10.1.2.3"  # not loopback: no admin party
ITERATIONS = 1000


def basic(name: str, password: str) -> dict[str, str]:
    """An `Authorization: Basic` header."""
    token = base64.b64encode(f"{name}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


ADMIN_AUTH = basic(ADMIN, ADMIN_PASSWORD)


def settings(**extra: Any) -> dict[str, Any]:
    """Settings of a secured app (fast hashes for tests)."""
    return {"admin_user": ADMIN, "admin_password": ADMIN_PASSWORD,
            "auth_iterations": ITERATIONS, **extra}


def req(app: Any, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
        remote: str | None = REMOTE, content_type: str | None = None) -> Answer:
    """Call the app in-process from `remote` (None: no REMOTE_ADDR, as an in-process caller)."""
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    data = body.encode() if isinstance(body, str) else (body or b"")
    raw, _, query = path.partition("?")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method, "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(raw).decode("latin-1"), "QUERY_STRING": query,
        "RAW_URI": path, "REQUEST_URI": path, "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "5984", "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "127.0.0.1:5984",
        "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(data),
        "wsgi.errors": io.StringIO(), "wsgi.multithread": True, "wsgi.multiprocess": False,
        "wsgi.run_once": False, "CONTENT_LENGTH": str(len(data)),
    }
    if remote is not None:
        environ["REMOTE_ADDR"] = remote
    if body is not None or content_type is not None:
        environ["CONTENT_TYPE"] = "application/json" if content_type is None else content_type
    for name, value in (headers or {}).items():
        key = name.upper().replace("-", "_")
        environ[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key] = value
    status: list[str] = []
    out: dict[str, str] = {}

    def start_response(line: str, pairs: list[tuple[str, str]], exc_info: Any = None) -> Any:
        status.append(line)
        out.update(pairs)
        return lambda chunk: None

    chunks = app(environ, start_response)
    try:
        payload = b"".join(chunks)
    finally:
        getattr(chunks, "close", lambda: None)()
    return Answer(int(status[0].split()[0]), out, payload)


def user_doc(name: str, password: str, roles: list[str] | None = None) -> dict[str, Any]:
    """A `_users` document with the hash fields already derived (as an admin may store it)."""
    return {"_id": f"org.couchdb.user:{name}", "name": name, "type": "user",
            "roles": roles or [], **hash_password(password, ITERATIONS).user_fields()}


def add_user(app: Any, name: str, password: str, roles: list[str] | None = None) -> str:
    """Create (or replace) a user as the server admin; returns the new rev."""
    path = f"/_users/org.couchdb.user:{name}"
    doc = user_doc(name, password, roles)
    current = req(app, "GET", path, headers=ADMIN_AUTH)
    if current.status == 200:
        doc["_rev"] = current.json()["_rev"]
    answer = req(app, "PUT", path, doc, ADMIN_AUTH)
    assert answer.status == 201, answer.body
    return str(answer.json()["rev"])


def cookie_of(answer: Answer) -> str:
    """The `AuthSession` value a response sets."""
    header = answer.headers.get("Set-Cookie", "")
    assert header.startswith("AuthSession="), header
    return header.split(";", 1)[0].split("=", 1)[1]


def with_cookie(value: str) -> dict[str, str]:
    """A `Cookie` header carrying an AuthSession value."""
    return {"Cookie": f"AuthSession={value}"}
