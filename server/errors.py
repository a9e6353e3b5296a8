"""The one error table: every exception a request can raise becomes CouchDB's status and body.

Store errors are raised deep down with CouchDB's reason text; HTTP-only errors are small classes
here that carry their status and error name as data. `error_response` is the one funnel that
turns any of them (and werkzeug's routing errors) into `{"error": …, "reason": …}` JSON.
"""

from __future__ import annotations

import logging
from typing import Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.wrappers import Response

from ..store import errors as store_errors
from ..store.attachments import MissingStub
from ..store.revisions import InvalidRev
from ..store.serialize import dumps
from .jsonbody import BadJson

log = logging.getLogger("settee.errors")


class HttpError(Exception):
    """An error that is only meaningful at the HTTP edge; status and error name are data."""

    status = 400
    error = "bad_request"
    reason = "Bad request"

    def __init__(self, reason: str | None = None, headers: dict[str, str] | None = None) -> None:
        if reason is not None:
            self.reason = reason
        self.headers = headers or {}
        super().__init__(self.reason)


class BadRequest(HttpError):
    """A malformed request (400 `bad_request`)."""


class QueryParseError(HttpError):
    """A query-string parameter of the wrong type or value (400 `query_parse_error`)."""

    error = "query_parse_error"


class NotFoundError(HttpError):
    """A resource that does not exist (404 `not_found`)."""

    status, error, reason = 404, "not_found", "missing"


class RequestTooLarge(HttpError):
    """A body over `max_http_request_size` (413 `too_large`)."""

    status, error, reason = 413, "too_large", "the request entity is too large"


class DocumentTooLarge(HttpError):
    """A document over `max_document_size` (413 `document_too_large`, reason = the doc id)."""

    status, error = 413, "document_too_large"


class UriTooLong(HttpError):
    """A request line over `max_uri_length` (414 `too_long`)."""

    status, error, reason = 414, "too_long", "the request uri is too long"


class BadContentType(HttpError):
    """A body that must be JSON but says otherwise (415 `bad_content_type`)."""

    status, error, reason = 415, "bad_content_type", "Content-Type must be application/json"


class ExpectationFailed(HttpError):
    """`all_or_nothing` and other refused expectations (417)."""

    status, error = 417, "expectation_failed"


class NotModified(HttpError):
    """`If-None-Match` matched: 304 with no body."""

    status, error, reason = 304, "not_modified", ""


# Store errors -> (status, CouchDB error name). Reasons come from the exception.
STORE_ERRORS: dict[type[Exception], tuple[int, str]] = {
    store_errors.NotFound: (404, "not_found"),
    store_errors.DbNotFound: (404, "not_found"),
    store_errors.DbExists: (412, "file_exists"),
    store_errors.Conflict: (409, "conflict"),
    store_errors.MissingRev: (409, "not_found"),
    store_errors.BadRequest: (400, "bad_request"),
    store_errors.IllegalDbName: (400, "illegal_database_name"),
    store_errors.IllegalDocId: (400, "illegal_docid"),
    store_errors.DocValidation: (400, "doc_validation"),
    store_errors.StoreFull: (507, "insufficient_storage"),
    store_errors.StoreBusy: (503, "service_unavailable"),
    MissingStub: (412, "missing_stub"),
    InvalidRev: (400, "bad_request"),
    BadJson: (400, "bad_request"),
}


def error_parts(exc: BaseException) -> tuple[int, str, str]:
    """(status, error, reason) for an exception, following the table."""
    if isinstance(exc, HttpError):
        return exc.status, exc.error, exc.reason
    for cls in type(exc).__mro__:
        if cls in STORE_ERRORS:
            status, error = STORE_ERRORS[cls]
            reason = getattr(exc, "reason", None) or str(exc)
            if cls is InvalidRev:
                reason = "Invalid rev format"
            return status, error, reason
    if isinstance(exc, MethodNotAllowed):
        allowed = ",".join(sorted(exc.valid_methods or ()))
        return 405, "method_not_allowed", f"Only {allowed} allowed"
    if isinstance(exc, HTTPException):
        code = exc.code or 500
        if code == 404:
            return 404, "not_found", "missing"
        if code == 413:
            return 413, "too_large", "the request entity is too large"
        return code, "bad_request" if code < 500 else "unknown_error", exc.description or ""
    log.exception("unhandled error", exc_info=exc)
    return 500, "unknown_error", "Internal server error"


def error_body(error: str, reason: str) -> bytes:
    """CouchDB's error JSON."""
    return dumps({"error": error, "reason": reason})


def error_response(exc: BaseException) -> Response:
    """The one funnel from an exception to a JSON response (never werkzeug's HTML)."""
    status, error, reason = error_parts(exc)
    headers: dict[str, Any] = dict(getattr(exc, "headers", None) or {})
    if isinstance(exc, MethodNotAllowed):
        headers["Allow"] = ", ".join(sorted(exc.valid_methods or ()))
    if status == 304:
        return Response(b"", status=304, headers=headers)
    return Response(error_body(error, reason), status=status, headers=headers,
                    content_type="application/json")
