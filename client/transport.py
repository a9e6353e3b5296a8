"""HTTP for the client: one urllib3 connection pool, CouchDB's URL and JSON conventions, errors.

Everything the other modules send goes through `Transport.request`, which builds the URL (database
names and document ids percent-encoded as CouchDB wants them, JSON-valued query parameters encoded
as JSON), adds credentials, retries only what is safe to retry, and turns any error answer into
the exception `errors.error_for` chooses.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, BinaryIO
from urllib.parse import quote, unquote, urlencode

import urllib3
from urllib3.util import Retry, Timeout, make_headers, parse_url

from .errors import TransportError, error_for

Doc = dict[str, Any]

# Query parameters whose values CouchDB reads as JSON (`?key="abc"`, `?keys=[1,2]`).
JSON_PARAMS = frozenset({"key", "keys", "startkey", "endkey", "start_key", "end_key",
                         "doc_ids", "open_revs", "atts_since"})
USER_AGENT = "settee.client/0.1 (urllib3)"


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON; NaN and infinities are refused here rather than by the server."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"),
                      allow_nan=False).encode("utf-8")


def loads(data: bytes) -> Any:
    """JSON bytes to Python; integers of any size stay exact."""
    return json.loads(data)


def db_path(name: str) -> str:
    """`/{db}` with `/` and every other reserved character percent-encoded."""
    return "/" + quote(name, safe="")


def doc_path(db: str, docid: str) -> str:
    """`/{db}/{docid}`; the slash after `_design` and `_local` stays a slash, as CouchDB routes."""
    for prefix in ("_design/", "_local/"):
        if docid.startswith(prefix):
            return f"{db_path(db)}/{prefix}{quote(docid[len(prefix):], safe='')}"
    return f"{db_path(db)}/{quote(docid, safe='')}"


def encode_params(params: Mapping[str, Any]) -> str:
    """A query string: booleans as `true`/`false`, `JSON_PARAMS` as JSON (None is the key
    `null` there), other None values dropped."""
    pairs = []
    for name, value in params.items():
        if name == "open_revs" and value == "all":
            text = "all"  # the one bare word among the JSON parameters
        elif name in JSON_PARAMS:
            text = dumps(value).decode("utf-8")
        elif value is None:
            continue
        elif isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (dict, list)):
            text = dumps(value).decode("utf-8")
        else:
            text = str(value)
        pairs.append((name, text))
    return urlencode(pairs, quote_via=quote)


def _timeout(value: float | Timeout | None) -> Timeout | None:
    if value is None or isinstance(value, Timeout):
        return value
    return Timeout(connect=value, read=value)


class Transport:
    """A base URL, credentials and a pool of keep-alive connections shared by every call.

    Retries: a connection that could not be made is retried for any method (nothing was sent);
    a request whose answer was lost is retried only for GET and HEAD, or when the caller says the
    request is `idempotent` (a read sent as POST, such as `_bulk_get`). Writes are never resent
    blindly: a lost answer to a PUT raises `TransportError`, since the write may have happened.
    """

    def __init__(self, url: str, *, auth: tuple[str, str] | None = None,
                 timeout: float | Timeout = 30.0, pool_size: int = 10, retries: int = 2) -> None:
        parsed = parse_url(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"not an http(s) URL: {url!r}")
        if parsed.auth and auth is None:
            user, _, password = parsed.auth.partition(":")
            auth = (unquote(user), unquote(password))  # URL userinfo is percent-encoded
        port = f":{parsed.port}" if parsed.port else ""
        self.url = f"{parsed.scheme}://{parsed.host}{port}{(parsed.path or '').rstrip('/')}"
        self.headers: dict[str, str] = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if auth is not None:
            self.headers.update(make_headers(basic_auth=f"{auth[0]}:{auth[1]}"))
        self.timeout = _timeout(timeout)
        self.retries = retries
        # Retry objects are immutable (each retry makes a new one): two policies, made once
        self._retry_reads, self._retry_any = (
            Retry(total=retries, connect=retries, read=retries, status=0, other=0,
                  redirect=False, raise_on_status=False, allowed_methods=methods)
            for methods in (frozenset({"GET", "HEAD"}), None))
        self.pool = urllib3.PoolManager(num_pools=4, maxsize=pool_size, block=False,
                                        retries=False, timeout=self.timeout)

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                json_body: Any = None, body: bytes | BinaryIO | None = None,
                headers: Mapping[str, str] | None = None, stream: bool = False,
                timeout: float | Timeout | None = None,
                idempotent: bool = False) -> urllib3.BaseHTTPResponse:
        """Send one request; an error status raises, a success returns the response.

        With `stream=True` the body is left unread: the caller reads it and must `close()` or
        `release_conn()` the response. `json_body` is encoded and labelled as JSON; `body` is
        sent as given (bytes, or a file object streamed in blocks).
        """
        url = self.url + path
        if params:
            query = encode_params(params)
            if query:
                url += "?" + query
        all_headers = dict(self.headers)
        data: bytes | BinaryIO | None = body
        if json_body is not None:
            data = dumps(json_body)
            all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})
        try:
            response = self.pool.request(
                method, url, body=data, headers=all_headers, preload_content=not stream,
                redirect=False, retries=self._retry_any if idempotent else self._retry_reads,
                timeout=_timeout(timeout) or self.timeout)
        except urllib3.exceptions.HTTPError as exc:
            raise TransportError(f"{method} {path}: {exc}") from exc
        if response.status >= 400:
            raise self._error(response, method, path)
        return response

    def _error(self, response: urllib3.BaseHTTPResponse, method: str, path: str) -> Exception:
        try:
            raw = response.data if method != "HEAD" else b""
        except urllib3.exceptions.HTTPError as exc:
            return TransportError(f"{method} {path}: {exc}")
        finally:
            response.release_conn()
        try:
            body = loads(raw) if raw else None
        except ValueError:
            body = None
        return error_for(response.status, body, method=method, path=path)

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """`request` and decode the JSON answer."""
        response = self.request(method, path, **kwargs)
        try:
            return loads(response.data)
        except ValueError as exc:
            raise TransportError(f"{method} {path}: the answer is not JSON ({exc})") from exc

    def close(self) -> None:
        """Close every pooled connection."""
        self.pool.clear()
