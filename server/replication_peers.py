"""The two ends of a replication: a database of this app (called in-process) or at a URL."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, unquote, urlencode, urlsplit, urlunsplit

import urllib3
from werkzeug.test import Client

if TYPE_CHECKING:
    from .app import Settee

REMOTE_TIMEOUT = urllib3.Timeout(connect=10.0, read=90.0)
_POOL = urllib3.PoolManager(num_pools=16, maxsize=4, retries=urllib3.Retry(
    total=3, connect=3, read=0, status=0, backoff_factor=0.2, allowed_methods=None))


class PeerError(Exception):
    """A peer answered with an unexpected status, or could not be reached at all."""

    def __init__(self, peer: Peer, status: int, body: Any) -> None:
        self.peer, self.status, self.body = peer, status, body
        super().__init__(f"{peer.label}: {status} {body!r}")


@dataclass
class Reply:
    """A peer's answer: status and decoded JSON body (None when the body is not JSON)."""

    status: int
    body: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class Peer(Protocol):
    """One database, local or remote, spoken to through CouchDB's HTTP API.

    Both kinds speak the same API, so the replication loop has one code path: a local peer sends
    its requests through the WSGI app with werkzeug's test client (no socket, same handlers,
    same errors), a remote one with urllib3, basic auth taken from the URL.
    """

    label: str  # the database as shown to users (a URL never carries its password here)

    def identity(self) -> str:
        """What the replication id is made of: server uuid (when known) and database."""

    def call(self, method: str, path: str = "", *, query: dict[str, Any] | None = None,
             body: Any = None) -> Reply:
        """Send one request; `path` follows the database's own (`"/_changes"`, `""`)."""


def _query(query: dict[str, Any] | None) -> str:
    if not query:
        return ""
    pairs = {k: (json.dumps(v) if isinstance(v, (list, dict)) else
                 ("true" if v is True else "false" if v is False else v))
             for k, v in query.items() if v is not None}
    return "?" + urlencode(pairs)


def _decode(data: bytes) -> Any:
    try:
        return json.loads(data) if data else None
    except ValueError:
        return None


@dataclass
class LocalPeer:
    """A database of this app, called in-process through the WSGI app."""

    app: Settee
    db: str
    label: str = ""
    user_ctx: Any = None  # the caller's UserCtx: a local database is opened as the caller
    client: Client = field(init=False)

    def __post_init__(self) -> None:
        self.label = self.label or self.db
        self.client = Client(self.app)

    def identity(self) -> str:
        return f"{self.app.store.uuid}/{self.db}"

    def call(self, method: str, path: str = "", *, query: dict[str, Any] | None = None,
             body: Any = None) -> Reply:
        raw = "/" + quote(self.db, safe="") + path + _query(query)
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        environ: dict[str, Any] = {"REQUEST_URI": raw}
        if self.user_ctx is not None:
            environ["settee.user_ctx"] = self.user_ctx
        response = self.client.open(raw, method=method, data=data, headers=headers,
                                    environ_overrides=environ)
        try:
            return Reply(response.status_code, _decode(response.get_data()))
        finally:
            response.close()


@dataclass
class RemotePeer:
    """A database at an http(s) URL; credentials come from the URL, `auth` or `headers`."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    label: str = ""
    base: str = field(init=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        if parts.port:
            netloc += f":{parts.port}"
        self.base = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
        self.label = self.label or self.base + "/"
        if parts.username is not None and "Authorization" not in self.headers:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            self.headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()

    def identity(self) -> str:
        return self.label

    def call(self, method: str, path: str = "", *, query: dict[str, Any] | None = None,
             body: Any = None, timeout: urllib3.Timeout | None = None) -> Reply:
        headers = {"Accept": "application/json", **self.headers}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        url = self.base + path + _query(query)
        try:
            response = _POOL.request(method, url, body=data, headers=headers,
                                     timeout=timeout or REMOTE_TIMEOUT, redirect=False)
        except urllib3.exceptions.HTTPError as exc:
            raise PeerError(self, 0, str(exc)) from exc
        return Reply(response.status, _decode(response.data))


def open_peer(app: Settee, spec: Any, user_ctx: Any = None) -> LocalPeer | RemotePeer:
    """The peer a `source`/`target` member names: a db name, a URL, or `{"url", "headers",
    "auth": {"basic": {"username", "password"}}}`; raises TypeError for anything else."""
    headers: dict[str, str] = {}
    if isinstance(spec, dict):
        raw_headers = spec.get("headers") or {}
        if not isinstance(raw_headers, dict):
            raise TypeError("`headers` must be an object")
        headers = {str(k): str(v) for k, v in raw_headers.items()}
        basic = (spec.get("auth") or {}).get("basic") if isinstance(spec.get("auth"), dict) \
            else None
        if isinstance(basic, dict):
            pair = f"{basic.get('username', '')}:{basic.get('password', '')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        spec = spec.get("url")
    if not isinstance(spec, str) or not spec:
        raise TypeError("must be a database name, a URL or an object with `url`")
    if spec.startswith(("http://", "https://")):
        return RemotePeer(spec, headers)
    return LocalPeer(app, spec, user_ctx=user_ctx)
