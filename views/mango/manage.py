"""Creating, listing and deleting json indexes: edits of `language: query` design documents.

An index is added to its design doc (created if missing) unless the same view is already there
(`exists`); deleting one removes its view, and the design doc too once nothing but its language
is left, as `mango_idx:delete` does. Writes go through the store like any document write, so the
changes feed, replication and the view indexer see them. A conflicting concurrent edit of the
same design doc is retried a few times.
"""

from __future__ import annotations

from typing import Any

from ...store import Store
from ...store.errors import Conflict, NotFound
from .errors import MangoError, bad
from .indexes import ALL_DOCS, IndexRequest, MangoIndex, list_for

RETRIES = 5


def list_indexes(store: Store, db_name: str) -> list[MangoIndex]:
    """`_all_docs` then the json indexes, in CouchDB's order (`DbNotFound` for a missing db)."""
    with store.engine.transaction(snapshot=False) as conn:  # one statement (two on a miss)
        return [ALL_DOCS, *list_for(conn, db_name, store.layer.body_of)]


def create_index(store: Store, db_name: str, req: IndexRequest) -> str:
    """Add the index; `created` or `exists`."""
    db = store.db(db_name)
    for _ in range(RETRIES):
        current = db.get(req.ddoc_id)
        if current is None:
            body: dict[str, Any] = {"language": "query", "views": {}}
        else:
            body = {k: v for k, v in current.items() if k != "_id"}
            if body.get("language", "javascript") != "query":
                raise bad("invalid_ddoc_lang", "Existing design doc has an invalid language: "
                          f'<<"{body.get("language", "javascript")}">>')
        views: dict[str, Any] = body["views"] if isinstance(body.get("views"), dict) else {}
        if views.get(req.name) == req.view:
            return "exists"
        body["views"] = {**views, req.name: req.view}
        try:
            db.save(req.ddoc_id, body)
            return "created"
        except Conflict:
            continue
    raise MangoError(500, "error_saving_ddoc",
                     "Encountered a conflict while saving the design document.")


def delete_index(store: Store, db_name: str, ddoc_id: str, kind: str | None,
                 name: str | None) -> bool:
    """Remove the named index (or, with no name, every json index of the ddoc); False when
    there is no such index."""
    db = store.db(db_name)
    for _ in range(RETRIES):
        found = [i for i in list_indexes(store, db_name) if i.ddoc == ddoc_id
                 and (kind is None or i.type == kind) and (name is None or i.name == name)]
        if not found:
            return False
        current = db.get(ddoc_id)
        if current is None:
            return False
        body = {k: v for k, v in current.items() if k != "_id"}
        views = dict(body.get("views") or {})
        for index in found:
            views.pop(index.name, None)
        if views:
            body["views"] = views
        else:
            body.pop("views", None)
        rest = {k: v for k, v in body.items() if k != "_rev"}
        try:
            if rest == {"language": "query"}:
                db.delete(ddoc_id, body["_rev"])
            else:
                db.save(ddoc_id, body)
            return True
        except (Conflict, NotFound):
            continue
    raise MangoError(500, "error_saving_ddoc",
                     "Encountered a conflict while saving the design document.")
