"""The changes feed's filters: `_doc_ids`, `_selector`, `_design`, `_view` and design-doc filters.

A filter says what it can push down to SQL (`doc_ids`, an id `prefix`), which bodies its test
reads, and the test itself: given a change and the revs its `style` reports (the winner, or
every leaf for `style=all_docs`), which of them pass. A change none of whose revs pass is left
out, as `couch_changes:filter/3` does; the feed's `last_seq` still moves past it.

`_selector` matches CouchDB selectors (`views.selector`) against each rev's document;
`_view` runs the named view's map function on the fly and passes documents that emit anything
(its index is not used, as in CouchDB); `ddoc/name` calls a JavaScript `function(doc, req)` from
the design doc's `filters` in the JS pool, with a `req` carrying the query string.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from ..store import catalog
from ..store.changes import LEAVES, NO_BODIES, WINNER, Change
from ..store.errors import NotFound
from ..views.selector import SelectorError, compile_selector
from .changes_query import ChangesQuery
from .errors import BadRequest, HttpError, NotFoundError
from .params import json_value
from .wrappers import SetteeRequest

if TYPE_CHECKING:
    from .app import Settee

Test = Callable[[Change, list[str]], list[str]]
DESIGN = "_design/"


class FilterUnavailable(HttpError):
    """A filter kind this build cannot run (no JavaScript runtime, no view engine)."""


@dataclass
class ChangeFilter:
    """What a filter pushes down, which bodies it reads, and which revs pass."""

    doc_ids: list[str] | None = None
    prefix: str | None = None
    bodies: str = NO_BODIES
    test: Test | None = None
    fields: list[str] | None = None  # `_selector`'s projection of `include_docs` documents


def build_filter(app: Settee, request: SetteeRequest, db: str, query: ChangesQuery,
                 body: dict[str, Any]) -> ChangeFilter:
    """The filter `query.filter` names, checked now so that errors are answered before rows."""
    name = query.filter
    docs = LEAVES if query.style == "all_docs" else WINNER
    if name == "":
        return ChangeFilter()
    if name == "_doc_ids":
        return ChangeFilter(doc_ids=_doc_ids(request, body))
    if name == "_design":
        return ChangeFilter(prefix=DESIGN)
    if name == "_selector":
        if "selector" not in body:
            raise BadRequest("Selector must be specified in POST payload")
        return _selector_filter(body, docs)
    if name == "_view":
        return _view_filter(app, db, query.view, docs)
    if name.startswith("_"):
        raise BadRequest("unknown builtin filter name")
    parts = [p for p in name.split("/") if p]
    if len(parts) != 2:
        raise BadRequest("`filter` must be of the form `designname/filtername`")
    return _js_filter(app, request, db, parts[0], parts[1], docs, body)


def _doc_ids(request: SetteeRequest, body: dict[str, Any]) -> list[str]:
    ids = body.get("doc_ids") if request.method == "POST" else json_value(request.args, "doc_ids")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise BadRequest("`doc_ids` filter parameter is not a list of doc ids.")
    return [i for i in ids if "\x00" not in i]  # no stored id holds NUL (PostgreSQL cannot)


def _selector_filter(body: dict[str, Any], docs: str) -> ChangeFilter:
    selector, fields = body["selector"], body.get("fields")
    if not isinstance(selector, dict):
        raise BadRequest("Selector error: expected a JSON object")
    if fields is not None and (not isinstance(fields, list)
                               or not all(isinstance(f, str) for f in fields)):
        raise BadRequest("Selector error: fields must be JSON array")
    try:
        match = compile_selector(selector)
    except SelectorError as exc:
        raise BadRequest(exc.reason) from None

    def test(change: Change, revs: list[str]) -> list[str]:
        return [rev for rev in revs if _passes(change, rev, match)]
    return ChangeFilter(bodies=docs, test=test, fields=fields)


def _passes(change: Change, rev: str, check: Callable[[dict[str, Any]], Any]) -> bool:
    doc = doc_json(change, rev)
    return doc is not None and bool(check(doc))


def doc_json(change: Change, rev: str) -> dict[str, Any] | None:
    """A rev's document as a filter sees it: `_id`, `_rev`, body, `_deleted` if a tombstone."""
    body = change.bodies.get(rev)
    if body is None:
        return None
    doc: dict[str, Any] = {"_id": change.id, "_rev": rev}
    doc.update(orjson.loads(body))
    if _deleted(change, rev):
        doc["_deleted"] = True
    return doc


def _deleted(change: Change, rev: str) -> bool:
    return change.tree[rev][1] if change.tree is not None else change.deleted


def _views(app: Settee, what: str) -> Any:
    """This process's view service, or 400 when views are not part of this build."""
    try:
        from ..views.service import ViewSettings, service_for
    except ImportError:
        raise FilterUnavailable(f"{what} is not available yet") from None
    return service_for(app.store, ViewSettings.from_settings(app.settings))


def _design_doc(service: Any, db: str, name: str) -> Any:
    if "\x00" in name:  # no stored id holds NUL, and PostgreSQL text cannot carry one
        raise NotFoundError("missing")
    try:
        return service.design(db, DESIGN + name)
    except NotFound as exc:
        raise NotFoundError(exc.reason) from None


def _view_filter(app: Settee, db: str, view: str, docs: str) -> ChangeFilter:
    if not view:
        raise BadRequest("`view` filter parameter is not provided.")
    parts = [p for p in view.split("/") if p]
    if len(parts) != 2:
        raise BadRequest("`view` must be of the form `designname/viewname`")
    service = _views(app, "`_view` filter")
    ddoc = _design_doc(service, db, parts[0])
    if parts[1] not in ddoc.views:
        raise NotFoundError("missing")
    view_def = ddoc.views[parts[1]]
    from ..views.mapper import SourceDoc

    def test(change: Change, revs: list[str]) -> list[str]:
        sources = [SourceDoc(change.id, rev, _deleted(change, rev), change.seq,
                             change.bodies[rev], []) for rev in revs if rev in change.bodies]
        emits = service.map_batch(ddoc, [view_def], sources, db)[0] if sources else []
        return [src.rev for src, pairs in zip(sources, emits) if pairs]
    return ChangeFilter(bodies=docs, test=test)


def _js_filter(app: Settee, request: SetteeRequest, db: str, ddoc_name: str, fname: str,
               docs: str, body: dict[str, Any]) -> ChangeFilter:
    service = _views(app, "Filtering with design document filter functions")
    ddoc = _design_doc(service, db, ddoc_name)
    filters = ddoc.body.get("filters")
    if not isinstance(filters, dict) or fname not in filters:
        raise NotFoundError("missing")
    if ddoc.language != "javascript":
        raise FilterUnavailable(f"Filters in `{ddoc.language}` design documents are not "
                                "supported; write them in JavaScript")
    try:
        pool, js = service.js()
    except Exception:  # noqa: BLE001 - no JavaScript runtime in this build, whatever the cause
        raise FilterUnavailable("JavaScript filters are not available in this build") from None
    ctx_key = f"{db}\n{ddoc.id}\n{ddoc.rev}"  # one JS context per design doc revision
    req = _js_request(app, request, db, body)

    def check(doc: dict[str, Any]) -> bool:
        try:
            return bool(pool.call(ctx_key, ddoc.body, ["filters", fname], [doc, req]))
        except js.JsFailure:
            return False  # a filter that throws on a document leaves that document out

    def test(change: Change, revs: list[str]) -> list[str]:
        return [rev for rev in revs if _passes(change, rev, check)]
    return ChangeFilter(bodies=docs, test=test)


SCRUBBED_HEADERS = frozenset(("cookie", "authorization", "x-auth-couchdb-token"))
SCRUBBED_COOKIES = frozenset(("AuthSession",))


def _js_request(app: Settee, request: SetteeRequest, db: str,
                body: dict[str, Any]) -> dict[str, Any]:
    """The `req` a filter function receives (CouchDB's `chttpd_external:json_req_obj`), with the
    caller's credentials scrubbed: no `Cookie`, `Authorization` or `X-Auth-CouchDB-Token`
    header and no `AuthSession` cookie, so a design document cannot steal a session
    (CVE-2023-45725)."""
    path = [p for p in request.path.split("/") if p]
    headers = {k: v for k, v in request.headers.items() if k.lower() not in SCRUBBED_HEADERS}
    cookies = {k: v for k, v in request.cookies.items() if k not in SCRUBBED_COOKIES}
    return {
        "info": {"db_name": db}, "id": None, "uuid": uuid.uuid4().hex,
        "method": request.method, "requested_path": path, "path": path,
        "raw_path": request.full_path.rstrip("?"), "query": request.args.to_dict(),
        "headers": headers, "body": orjson.dumps(body).decode() if body else
        "undefined", "peer": request.remote_addr, "form": {}, "cookie": cookies,
        "userCtx": request.user_ctx.json(db), "secObj": _security(app, db),
    }


def _security(app: Settee, db: str) -> Any:
    with app.store.engine.transaction() as conn:
        text = catalog.get_security(conn, db)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return {}
