"""The changes feeds: `GET/POST /{db}/_changes` and `GET /_db_updates`, in every feed type.

Everything that can fail with a CouchDB error (parameters, the database, the filter, a POSTed
body) is checked before the response starts; the body is then a generator (`feeds.stream`) that
reads in short transactions and, for longpoll, continuous and eventsource feeds, waits on this
process's change notifier between reads. The normal feed carries an ETag derived from the
database's state and the request, so an unchanged feed answers `If-None-Match` with 304.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Response

from ...store import db_updates as updates_log
from ...store.changes import db_state
from ...store.engine import Engine
from ...store.notify import ANY, notifier_for
from ...store.serialize import dumps
from ..change_filters import build_filter
from ..changes_query import NOW, UpdatesQuery, changes_query, updates_query
from ..changes_source import TOP, ChangesSource
from ..errors import BadContentType
from ..feeds import Batch, Format, Waiting, client_gone_check, slots_for, stream
from ..wrappers import JSON, SetteeRequest

if TYPE_CHECKING:
    from ..app import Settee

RECORD_INTERVAL = 0.1  # seconds between two recordings of database events by one feed


def changes(app: Settee, request: SetteeRequest, db: str) -> Response:
    """`GET/POST /{db}/_changes`."""
    query = changes_query(request.args, request.headers.get("Last-Event-ID"))
    body = _posted(request)
    with app.store.engine.transaction() as conn:
        start = db_state(conn, db)
    source = ChangesSource(app, db, query, build_filter(app, request, db, query, body), start)
    headers: dict[str, str] = {}
    waiting = None
    if query.feed == "normal":
        etag = _etag(f"{start.instance}:{start.update_seq}", request)
        request.not_modified_if_none_match(etag)
        headers["ETag"] = etag
    else:
        waiting = _waiting(app, request)
    rows = stream(source, Format(query.feed), limit=query.limit, timing=query.timing,
                  waiting=waiting)
    return _response(rows, query.feed, headers)


def db_updates(app: Settee, request: SetteeRequest) -> Response:
    """`GET /_db_updates`: databases created, updated and deleted, server-wide."""
    query = updates_query(request.args)
    _ensure_log(app.store.engine)
    updates_log.record(app.store.engine)
    source = UpdatesSource(app.store.engine, query)
    headers: dict[str, str] = {}
    waiting = None
    if query.feed == "normal":
        etag = _etag(f"db_updates:{source.last_seq()}", request)
        request.not_modified_if_none_match(etag)
        headers["ETag"] = etag
    else:
        waiting = _waiting(app, request)
    rows = stream(source, Format(query.feed, with_pending=False), limit=query.limit,
                  timing=query.timing, waiting=waiting)
    return _response(rows, query.feed, headers)


class UpdatesSource:
    """`_db_updates` rows from the event log, recording new events before each read."""

    def __init__(self, engine: Engine, query: UpdatesQuery) -> None:
        self.key: str | None = ANY
        self.gone = False
        self.engine = engine
        self.descending = query.descending and query.feed == "normal"
        with engine.transaction() as conn:
            latest = updates_log.last_seq(conn)
        jump = query.since == NOW or (query.descending and not self.descending)
        self.since = latest if jump else int(query.since)
        self.cursor, self.reported = TOP, latest
        self.recorded = time.monotonic()

    def read(self, max_rows: int) -> Batch:
        if not self.descending:  # a woken feed records what woke it, at most every 100 ms
            wait = self.recorded + RECORD_INTERVAL - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            updates_log.record(self.engine)
            self.recorded = time.monotonic()
        with self.engine.transaction() as conn:
            found = updates_log.read(conn, after=self.cursor if self.descending else self.since,
                                     limit=max_rows, descending=self.descending)
            latest = updates_log.last_seq(conn)
        rows = [(dumps({"db_name": e.name, "type": e.type, "seq": e.seq}), e.seq) for e in found]
        exhausted = len(found) < max_rows
        if self.descending:
            if found:
                self.cursor = self.reported = found[-1].seq
        elif exhausted:
            self.since = max(self.since, latest)
        else:
            self.since = found[-1].seq
        return Batch(rows, exhausted, None)

    def last_seq(self) -> int:
        return self.reported if self.descending else self.since

    def pending(self) -> int | None:
        return None


def _posted(request: SetteeRequest) -> dict[str, Any]:
    """A POSTed `_changes` body (`doc_ids`, `selector`, `fields`); JSON only, may be empty."""
    if request.method != "POST":
        return {}
    if request.mimetype != JSON:
        raise BadContentType()
    if not request.body_bytes():
        return {}
    return request.json_object()


def _etag(state: str, request: SetteeRequest) -> str:
    seed = f"{state}\n{request.query_string.decode('latin-1')}\n".encode()
    return '"' + hashlib.md5(seed + request.body_bytes()).hexdigest() + '"'


def _waiting(app: Settee, request: SetteeRequest) -> Waiting:
    return Waiting(notifier_for(app.store.engine), slots_for(app, app.settings.threads),
                   client_gone_check(request.environ))


def _response(rows: Iterator[bytes], feed: str, headers: dict[str, str]) -> Response:
    if feed == "eventsource":
        response = Response(rows, content_type="text/event-stream", direct_passthrough=True)
        response.headers["Cache-Control"] = "no-cache"
    else:
        response = Response(rows, content_type=JSON, direct_passthrough=True)
        response.headers["Cache-Control"] = "must-revalidate"
    for name, value in headers.items():
        response.headers[name] = value
    return response


_log_ready: weakref.WeakKeyDictionary[Engine, int] = weakref.WeakKeyDictionary()
_log_lock = threading.Lock()


def _ensure_log(engine: Engine) -> None:
    """Create the event log's tables once per engine and process."""
    with _log_lock:
        if _log_ready.get(engine) == os.getpid():
            return
        updates_log.create(engine)
        _log_ready[engine] = os.getpid()
