"""Mango: `_find`, `_explain` and `_index` (list, create, delete, bulk delete).

The work is done in `views.mango` (planning, execution, index design docs); this module reads
requests and writes answers. Mango's errors carry CouchDB's status, error and reason as data
and become `MangoHttpError`s for the one funnel in `errors.py`.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from werkzeug.wrappers import Response

from ...views.design import DesignError
from ...views.mango import cursor, manage, planner
from ...views.mango import explain as explaining
from ...views.mango.errors import MangoError, bad, invalid_key, missing_key
from ...views.mango.indexes import request_index
from ...views.mango.query import FindQuery, parse_find, parse_use_index
from ...views.selector_norm import erl
from ...views.service import ViewService, ViewSettings, service_for
from ..errors import HttpError, NotFoundError
from ..wrappers import JSON, SetteeRequest, json_response

if TYPE_CHECKING:
    from ..app import Settee

T = TypeVar("T")


class MangoHttpError(HttpError):
    """A Mango or views error, its status, error name and reason copied over."""

    def __init__(self, status: int, error: str, reason: str) -> None:
        self.status, self.error = status, error
        super().__init__(reason)


def _http(run: Callable[[], T]) -> T:
    try:
        return run()
    except (MangoError, DesignError) as exc:
        raise MangoHttpError(exc.status, exc.error, exc.reason) from None


_services: weakref.WeakKeyDictionary[Any, tuple[Any, ViewService]] = \
    weakref.WeakKeyDictionary()


def _service(app: Settee) -> ViewService:
    """The views service of the app's store (its settings read once per settings object)."""
    found = _services.get(app)
    if found is None or found[0] is not app.settings:
        found = (app.settings,
                 service_for(app.store, ViewSettings.from_settings(app.settings)))
        _services[app] = found
    return found[1]


def _plan(app: Settee, request: SetteeRequest, db: str) -> tuple[FindQuery, planner.Plan]:
    indexes = manage.list_indexes(app.store, db)  # a missing database is a 404 first
    body = request.json_object(require_type=True)
    query = _http(lambda: parse_find(body))
    plan = _http(lambda: planner.choose(query, indexes[1:]))
    return query, plan


def find(app: Settee, request: SetteeRequest, db: str) -> Response:
    """`POST /{db}/_find`."""
    query, plan = _plan(app, request, db)
    service = _service(app)
    result = _http(lambda: cursor.execute(service, db, query, plan))
    return Response(result.body(query.execution_stats), content_type=JSON)


def explain(app: Settee, request: SetteeRequest, db: str) -> Response:
    """`POST /{db}/_explain`."""
    query, plan = _plan(app, request, db)
    return json_response(explaining.explain(db, query, plan))


def indexes(app: Settee, request: SetteeRequest, db: str) -> Response:
    """`GET/POST /{db}/_index`."""
    if request.method == "POST":
        manage.list_indexes(app.store, db)  # a missing database is a 404 first
        body = request.json_object(require_type=True)
        req = _http(lambda: request_index(body))
        status = _http(lambda: manage.create_index(app.store, db, req))
        return json_response({"result": status, "id": req.ddoc_id, "name": req.name})
    listed = [i.to_json() for i in manage.list_indexes(app.store, db)]
    total = len(listed)
    limit = _list_param(request.args.get("limit"), total)
    skip = min(_list_param(request.args.get("skip"), 0), total)
    if limit < 1 or skip < 0:
        raise _bad_list_params()
    return json_response({"total_rows": total, "indexes": listed[skip:skip + limit]})


def _list_param(value: str | None, default: int) -> int:
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise _bad_list_params() from None


def _bad_list_params() -> HttpError:
    # CouchDB answers this with a 500; settee keeps bad input a 4xx.
    return MangoHttpError(400, "invalid_list_index_params",
                          "Index parameter ranges: limit > 1, skip > 0")


def bulk_delete(app: Settee, request: SetteeRequest, db: str) -> Response:
    """`POST /{db}/_index/_bulk_delete`: `{"docids": [...]}` -> `{"success", "fail"}`."""
    manage.list_indexes(app.store, db)
    body = request.json_object(require_type=True)
    ids = _http(lambda: _bulk_ids(body))
    success: list[dict[str, Any]] = []
    fail: list[dict[str, Any]] = []
    for given in ids:
        ddoc_id = given if given.startswith("_design/") else "_design/" + given
        if _http(partial(manage.delete_index, app.store, db, ddoc_id, None, None)):
            success.insert(0, {"id": ddoc_id, "ok": True})
        else:
            fail.insert(0, {"id": ddoc_id, "error": "not_found"})
    return json_response({"success": success, "fail": fail})


def _bulk_ids(body: dict[str, Any]) -> list[str]:
    if "docids" not in body:
        raise missing_key("docids")
    ids = body["docids"]
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise bad("invalid_bulk_docs",
                  f"Bulk Delete requires an array of non-null docids. Docids: {erl(ids)}")
    for given in ids:
        parse_use_index(given)
    w = body.get("w", 2)
    if not isinstance(w, int) or isinstance(w, bool) or w <= 0:
        raise bad("invalid_pos_integer", f"{erl(w)} is not an integer greater than zero")
    for key in body:
        if key not in ("docids", "w"):
            raise invalid_key(key)
    return ids


def delete_index(app: Settee, request: SetteeRequest, db: str, rest: str) -> Response:
    """`DELETE /{db}/_index/{ddoc}/json/{name}` (the ddoc with or without `_design/`)."""
    parts = rest.split("/")
    if parts[0] == "_design":
        parts = parts[1:]
    manage.list_indexes(app.store, db)
    if len(parts) != 3 or not all(parts):
        raise NotFoundError()
    ddoc, kind, name = parts
    if not _http(lambda: manage.delete_index(app.store, db, "_design/" + ddoc, kind, name)):
        raise NotFoundError()
    return json_response({"ok": True})
