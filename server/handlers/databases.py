"""Database endpoints: create, describe, delete, POST a doc, and the per-db admin resources."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Response

from ...store import maintenance
from ...store.serialize import dumps
from ...store.validate import validate_db_name
from ..errors import BadContentType, BadRequest, QueryParseError
from ..wrappers import SetteeRequest, json_response, location

if TYPE_CHECKING:
    from ..app import Settee


def db_info_json(app: Settee, name: str) -> dict[str, Any]:
    """`GET /{db}`'s object."""
    info = app.store.db_info(name)
    return {
        "db_name": info.name,
        "purge_seq": info.purge_seq,
        "update_seq": info.update_seq,
        "sizes": {"file": max(info.body_bytes, 0), "external": max(info.body_bytes, 0),
                  "active": max(info.body_bytes, 0)},
        "props": {},
        "doc_del_count": info.doc_del_count,
        "doc_count": info.doc_count,
        "disk_format_version": 8,
        "compact_running": False,
        "cluster": {"q": 1, "n": 1, "w": 1, "r": 1},
        "instance_start_time": "0",
    }


def db(app: Settee, request: SetteeRequest, db: str) -> Response:
    """`GET/HEAD/PUT/POST/DELETE /{db}`."""
    if request.method == "PUT":
        validate_db_name(db)
        app.store.create_db(db)
        return json_response({"ok": True}, 201, {"Location": location(request, db)})
    if request.method == "DELETE":
        if "rev" in request.args:
            raise BadRequest("You tried to DELETE a database with a ?=rev parameter. "
                             "Did you mean to DELETE a document instead?")
        app.store.delete_db(db)
        return json_response({"ok": True})
    if request.method == "POST":
        from .documents import post_doc
        return post_doc(app, request, db)
    return json_response(db_info_json(app, db))


def revs_limit(app: Settee, request: SetteeRequest, db: str) -> Response:
    """`GET/PUT /{db}/_revs_limit`: a bare integer."""
    if request.method == "PUT":
        value = request.json_body()
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value < 2**31:
            raise BadRequest("`revs_limit` must be a positive integer")
        app.store.engine.run(lambda conn: _set(conn, db, "revs_limit", value))
        return json_response({"ok": True})
    return json_response(app.store.db_info(db).revs_limit)


def security(app: Settee, request: SetteeRequest, db: str) -> Response:
    """`GET/PUT /{db}/_security`: who may read and write (enforced by `server/access.py`)."""
    from ...store import catalog
    if request.method == "PUT":
        body = request.json_object()
        for section in ("admins", "members"):
            value = body.get(section, {})
            if not isinstance(value, dict):
                raise BadRequest(f"`{section}` must be an object with `names` and `roles` lists")
            for key in ("names", "roles"):
                items = value.get(key, [])
                if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                    raise BadRequest(f"{key} must be a JSON list of strings")
        app.store.engine.run(lambda conn: _set(conn, db, "security",
                                               dumps(body).decode()))
        return json_response({"ok": True})
    with app.store.engine.transaction() as conn:
        stored = catalog.get_security(conn, db)
    return json_response(stored.encode())


def _set(conn: Any, db: str, column: str, value: Any) -> None:
    from ...store import catalog
    catalog.set_field(conn, db, column, value)


def compact(app: Settee, request: SetteeRequest, db: str) -> Response:
    """`POST /{db}/_compact`: drop non-leaf bodies and stem trees (done before answering)."""
    if request.mimetype != "application/json":
        raise BadContentType()
    app.store.compact(db)
    return json_response({"ok": True}, 202)


def ensure_full_commit(app: Settee, request: SetteeRequest, db: str) -> Response:
    """`POST /{db}/_ensure_full_commit`: every 201 is already durable; kept for replicators."""
    if request.mimetype != "application/json":
        raise BadContentType()
    app.store.db_info(db)
    return json_response({"ok": True, "instance_start_time": "0"}, 201)


def purge(app: Settee, request: SetteeRequest, db: str) -> Response:
    """`POST /{db}/_purge`: forget leaf revisions entirely."""
    body = request.json_object(require_type=True)
    for revs in body.values():
        if not isinstance(revs, list) or not all(isinstance(r, str) for r in revs):
            raise BadRequest("Purge request revs must be a list of strings")
    if len(body) > app.settings.max_bulk_docs:
        raise QueryParseError("Exceeded maximum number of documents.")
    purged = app.store.engine.run(lambda conn: maintenance.purge(conn, db, body))
    return json_response({"purge_seq": None, "purged": purged}, 201)
