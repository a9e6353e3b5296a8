"""The client's errors: one small class per CouchDB error family, built from `{"error", "reason"}`.

Every answer a server gives as an error body becomes one of these, with the HTTP status, CouchDB's
error name and its reason kept as data (`error_for` is the one place that decides which class).
`NotFound` is also a `KeyError`, so `db["missing"]` behaves as a dict lookup; `Conflict` carries the
document's current rev when the client could learn it.
"""

from __future__ import annotations

from typing import Any


class CouchError(Exception):
    """An error answer from the server: `status`, CouchDB's `error` name and its `reason`."""

    def __init__(self, reason: str = "", *, status: int = 0, error: str = "",
                 method: str = "", path: str = "") -> None:
        super().__init__(reason)
        self.status = status
        self.error = error
        self.reason = reason
        self.method = method
        self.path = path

    def __str__(self) -> str:
        where = f"{self.method} {self.path}: " if self.method else ""
        return f"{where}{self.status} {self.error}: {self.reason}"


class BadRequest(CouchError):
    """400: a malformed request, bad parameter or invalid document (`bad_request`, ...)."""


class Unauthorized(CouchError):
    """401: credentials missing or wrong."""


class Forbidden(CouchError):
    """403: the credentials are known but not allowed (or a validation function said no)."""


class NotFound(CouchError, KeyError):
    """404: no such database, document, attachment or view; also a `KeyError`."""

    def __str__(self) -> str:  # KeyError's own __str__ would show repr(args)
        return CouchError.__str__(self)


class Conflict(CouchError):
    """409: the rev sent is not the document's current one.

    `current_rev` is the winning rev the client read after the conflict (None when the document
    is missing or deleted, or when it was not looked up, as in a batch).
    """

    def __init__(self, reason: str = "", *, current_rev: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(reason, **kwargs)
        self.current_rev = current_rev


class PreconditionFailed(CouchError):
    """412: e.g. creating a database that exists (`file_exists`)."""


class ServerError(CouchError):
    """5xx: the server failed (or is unavailable) rather than the request being wrong."""


class Unsupported(CouchError):
    """The server lacks an endpoint this call needs (an older settee, or a CouchDB without it)."""


class BatchCancelled(Exception):
    """A batch item that was never sent, because its `with` block ended with an exception."""


class TransportError(Exception):
    """The HTTP exchange itself failed: refused connection, reset, timeout, broken stream."""


_BY_STATUS: dict[int, type[CouchError]] = {
    400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict,
    412: PreconditionFailed,
}

# Error names that can appear per item (in `_bulk_docs` results) without an HTTP status.
_BY_NAME: dict[str, tuple[int, type[CouchError]]] = {
    "bad_request": (400, BadRequest), "doc_validation": (400, BadRequest),
    "illegal_docid": (400, BadRequest), "unauthorized": (401, Unauthorized),
    "forbidden": (403, Forbidden), "not_found": (404, NotFound), "conflict": (409, Conflict),
    "file_exists": (412, PreconditionFailed), "missing_stub": (412, PreconditionFailed),
}


def error_for(status: int, body: Any, *, method: str = "", path: str = "") -> CouchError:
    """The exception for an error answer with `status` and its decoded JSON `body` (or None).

    CouchDB answers a missing rev on an update as 409 with error `not_found`: the status decides
    the class, so that is a `Conflict`.
    """
    error, reason = _parts(body, status)
    if status >= 500:
        cls: type[CouchError] = ServerError
    else:
        cls = _BY_STATUS.get(status, CouchError)
    return cls(reason, status=status, error=error, method=method, path=path)


def item_error(item: dict[str, Any]) -> CouchError:
    """The exception for one failed item of a batch, e.g. `{"id", "error": "conflict", ...}`."""
    error, reason = _parts(item, 0)
    status, cls = _BY_NAME.get(error, (0, CouchError))  # 0: the item names no known status
    return cls(reason, status=status, error=error, path=str(item.get("id", "")))


def _parts(body: Any, status: int) -> tuple[str, str]:
    if isinstance(body, dict):
        error = body.get("error")
        reason = body.get("reason")
        return (str(error) if error is not None else f"http_{status}",
                str(reason) if reason is not None else "")
    return f"http_{status}", ""
