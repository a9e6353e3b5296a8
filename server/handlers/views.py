"""View endpoints: `_view` (GET/POST), `/queries`, `_info`, `_view_cleanup` and `_compact/{ddoc}`.

A view answer streams: everything that can fail (design doc, view, parameters, the index update)
happens before the response starts, then rows go out page by page. An error after the first
byte (a reduce failing mid-way) closes the JSON with `"error"` and `"reason"` members, so the body
stays parseable. Errors raised by `views` carry status, error and reason as data; `_http` turns
them into the HTTP layer's errors for the one funnel in `errors.py`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TypeVar

from werkzeug.wrappers import Response

from ...store.serialize import dumps
from ...views import answer, cleanup
from ...views.design import DesignError
from ...views.query import InvalidQuery, validate
from ...views.service import ViewService, ViewSettings, service_for
from .. import metrics, viewparams
from ..errors import BadContentType, HttpError, QueryParseError
from ..wrappers import JSON, SetteeRequest, json_response

if TYPE_CHECKING:
    from ..app import Settee

log = logging.getLogger("settee.views")
T = TypeVar("T")


class ViewError(HttpError):
    """An error from the views package, its status, error and reason copied over."""

    def __init__(self, status: int, error: str, reason: str) -> None:
        self.status, self.error = status, error
        super().__init__(reason)


def _service(app: Settee) -> ViewService:
    service = service_for(app.store, ViewSettings.from_settings(app.settings))
    service.lag_listener = metrics.record_view_lag  # the index lag gauge
    return service


def _http(run: Callable[[], T]) -> T:
    """Run `run`, turning views' errors (and the JS runner's) into HTTP errors."""
    try:
        return run()
    except DesignError as exc:
        raise ViewError(exc.status, exc.error, exc.reason) from None
    except InvalidQuery as exc:
        raise QueryParseError(exc.reason) from None
    except Exception as exc:
        parts = _js_error(exc)
        if parts is None:
            raise
        raise ViewError(*parts) from None


def _js_error(exc: BaseException) -> tuple[int, str, str] | None:
    """(status, error, reason) of a failure of the JS runner, or None for anything else."""
    try:
        from ...views import js
    except ImportError:
        return None
    if not isinstance(exc, js.JsFailure):
        return None
    reason = str(getattr(exc, "reason", None) or exc)
    status = 400 if isinstance(exc, js.JsCompileError) else 500
    return status, str(getattr(exc, "error", "os_process_error")), reason


def view(app: Settee, request: SetteeRequest, db: str, ddoc: str, view: str) -> Response:
    """`GET/POST /{db}/_design/{ddoc}/_view/{view}`."""
    if request.method == "POST":
        query = viewparams.from_body(request.json_object(require_type=True), request.args)
    else:
        query = viewparams.from_request_args(request.args)
    service = _service(app)
    prepared = _http(lambda: answer.prepare(service, db, ddoc, view, query))
    try:
        request.not_modified_if_none_match(prepared.etag)
    except HttpError:
        if prepared.after is not None:  # `update=lazy` refreshes even when nothing is sent
            prepared.after()
        raise
    return Response(_stream(prepared), content_type=JSON, headers={"ETag": prepared.etag})


def view_queries(app: Settee, request: SetteeRequest, db: str, ddoc: str, view: str
                 ) -> Response:
    """`POST /{db}/_design/{ddoc}/_view/{view}/queries`: `{"results": [...]}` in order."""
    queries = viewparams.queries(request.json_object(require_type=True), request.args)
    service = _service(app)

    def check() -> None:  # every query is valid before the response starts, as in CouchDB
        found = service.design(db, "_design/" + ddoc).view(view)
        for query in queries:
            validate(query, found)

    _http(check)

    def body() -> Iterator[bytes]:
        # Each answer is prepared when its turn comes, so only one is being read at a time.
        yield b'{"results":['
        for i, query in enumerate(queries):
            if i:
                yield b",\r\n"
            try:
                prepared = _http(functools.partial(answer.prepare, service, db, ddoc, view,
                                                   query))
            except HttpError as exc:  # the status line is gone: this result is the error
                yield dumps({"error": exc.error, "reason": exc.reason})
                continue
            yield from _stream(prepared, inner=True)
        yield b"\r\n]}\n"

    return Response(body(), content_type=JSON)


def _stream(prepared: answer.Prepared, *, inner: bool = False) -> Iterator[bytes]:
    """The prepared answer's chunks; a failure mid-way still closes the JSON, with the error."""
    chunks = prepared.chunks()
    try:
        for chunk in chunks:
            yield chunk.rstrip(b"\n") if inner else chunk
    except Exception as exc:  # the status line is gone: report inside the body
        log.exception("view stream failed", exc_info=exc)
        error, reason = "unknown_error", str(exc)
        if isinstance(exc, HttpError):
            error, reason = exc.error, exc.reason
        parts = _js_error(exc)
        if parts is not None:
            error, reason = parts[1], parts[2]
        yield (b'\r\n],"error":' + dumps(error) + b',"reason":' + dumps(reason) + b"}"
               + (b"" if inner else b"\n"))


def design_info(app: Settee, request: SetteeRequest, db: str, ddoc: str) -> Response:
    """`GET /{db}/_design/{ddoc}/_info`."""
    service = _service(app)
    found = _http(lambda: service.design(db, "_design/" + ddoc))
    return json_response({"name": ddoc, "view_index": cleanup.info(service, db, found)})


def view_cleanup(app: Settee, request: SetteeRequest, db: str) -> Response:
    """`POST /{db}/_view_cleanup`: drop indexes no current design doc uses (202)."""
    _require_json(request)
    service = _service(app)
    cleanup.cleanup(service, db)
    return json_response({"ok": True}, status=202)


def compact_views(app: Settee, request: SetteeRequest, db: str, ddoc: str) -> Response:
    """`POST /{db}/_compact/{ddoc}`: 202; SQL indexes keep no garbage to compact away."""
    _require_json(request)
    service = _service(app)
    _http(lambda: service.design(db, "_design/" + ddoc))
    return json_response({"ok": True}, status=202)


def _require_json(request: SetteeRequest) -> None:
    """CouchDB wants `Content-Type: application/json` here, even with no body (415)."""
    if request.mimetype != JSON:
        raise BadContentType()
