"""Batch endpoints: `_bulk_docs`, `_bulk_get`, `_revs_diff` and `_missing_revs`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Response

from ...store import make_edit, reads, revtree
from ...store.attread import doc_with_data, load_many, since_pos
from ...store.errors import StoreError
from ...store.render import doc_bytes
from ...store.revisions import InvalidRev, parse_rev
from ...store.serialize import dumps
from ...store.validate import validate_doc_id
from ...store.writes import Edit
from ..docview import meta_members
from ..errors import BadRequest, ExpectationFailed, RequestTooLarge, error_parts
from ..params import DocQuery, boolean
from ..uploads import check_sizes, close_blobs
from ..wrappers import SetteeRequest, json_response
from .attachments import save_edits
from .root import new_doc_id

if TYPE_CHECKING:
    from ..app import Settee


def _docs_list(app: Settee, body: dict[str, Any], member: str, missing: str,
               not_list: str | None = None) -> list[Any]:
    docs = body.get(member)
    if docs is None:
        raise BadRequest(missing)
    if not isinstance(docs, list):
        raise BadRequest(not_list or missing)
    if len(docs) > app.settings.max_bulk_docs:
        raise RequestTooLarge("Exceeded maximum number of documents.")
    return docs


def bulk_docs(app: Settee, request: SetteeRequest, db: str) -> Response:
    """`POST /{db}/_bulk_docs`: per-document results in input order; `new_edits=false` lists
    only failures. Every document is validated before anything is written."""
    body = request.json_object(require_type=True)
    docs = _docs_list(app, body, "docs", "POST body must include `docs` parameter.",
                      "`docs` parameter must be an array.")
    new_edits = body.get("new_edits", True)
    if not isinstance(new_edits, bool):
        raise BadRequest("`new_edits` parameter must be a boolean.")
    if body.get("all_or_nothing") is True:
        raise ExpectationFailed("all_or_nothing is not supported")
    # One slot per input doc, in order: an `Edit` for the rev-tree store, or a `_local/` doc.
    slots: list[Edit | tuple[str, dict[str, Any]]] = []
    for doc in docs:
        if not isinstance(doc, dict):
            raise BadRequest("Document must be a JSON object")
        doc_id = doc.get("_id")
        if doc_id is None:
            doc_id = new_doc_id()
        validate_doc_id(doc_id)
        if doc_id.startswith("_local/"):
            if doc.get("_attachments"):
                raise BadRequest("_local documents do not accept attachments.")
            slots.append((doc_id, doc))
            continue
        edit = make_edit(doc_id, doc, new_edits=new_edits)
        check_sizes(app.settings, edit)
        slots.append(edit)
    database = app.store.db(db)
    edits = [slot for slot in slots if isinstance(slot, Edit)]
    if edits:
        try:
            written = iter(save_edits(app, request, db, edits, new_edits))
        finally:
            close_blobs(edits)
    else:
        app.store.db_info(db)  # a missing database is a 404 even for an empty batch
        written = iter(())
    out: list[dict[str, Any]] = []
    for slot in slots:
        if isinstance(slot, Edit):
            result = next(written)
            doc_id, rev, failure = result.id, result.rev, result.error
        else:
            doc_id, doc = slot
            try:
                rev, failure = database.local_put(doc_id[len("_local/"):], doc), None
            except StoreError as exc:
                rev, failure = None, exc
        if failure is not None:
            _, error, reason = error_parts(failure)
            out.append({"id": doc_id, "error": error, "reason": reason})
        elif new_edits:
            out.append({"ok": True, "id": doc_id, "rev": rev})
    return json_response(out, 201)


def bulk_get(app: Settee, request: SetteeRequest, db: str) -> Response:
    """`POST /{db}/_bulk_get`: many docs at given (or all leaf) revs in one request.

    With `attachments=true`, or an entry's `atts_since`, attachments carry base64 `data`
    (those newer than `atts_since` only)."""
    body = request.json_object(require_type=True)
    wanted = _docs_list(app, body, "docs", "Missing JSON list of 'docs'.")
    query = DocQuery(revs=boolean(request.args, "revs"), latest=boolean(request.args, "latest"))
    with_data = boolean(request.args, "attachments")
    ids = [w["id"] for w in wanted if isinstance(w, dict) and isinstance(w.get("id"), str)]
    with app.store.engine.transaction() as conn:
        dbid = reads.db_id(conn, db)
        infos = reads.doc_infos(conn, dbid, ids)
        plan = [_plan(w, infos, query.latest) for w in wanted]
        pairs = [(step.doc_id, rev) for step in plan if step.doc_id is not None
                 for rev in step.revs]
        packed = reads.bodies_for(conn, dbid, pairs)
        content = _with_content(app, conn, dbid, plan, infos, packed, query, with_data)
    results = []
    for step in plan:
        entries: list[bytes] = []
        if step.error is not None:
            entries.append(b'{"error":' + dumps(step.error) + b"}")
        doc_id = step.doc_id
        for rev in step.revs:
            info = infos.get(doc_id) if doc_id is not None else None
            data = packed.get((doc_id, rev)) if doc_id is not None else None
            if doc_id is None or info is None or data is None:
                entries.append(_missing(doc_id, rev))
                continue
            doc = content.get((doc_id, rev)) or doc_bytes(
                doc_id, rev, app.store.layer.body_of(data), deleted=info.tree[rev][1],
                extra=meta_members(info, rev, query))
            entries.append(b'{"ok":' + doc + b"}")
        results.append(b'{"id":' + dumps(step.shown_id) + b',"docs":[' + b",".join(entries)
                       + b"]}")
    return json_response(b'{"results":[' + b",".join(results) + b"]}")


def _with_content(app: Settee, conn: Any, dbid: int, plan: list[_Step],
                  infos: dict[str, reads.DocInfo], packed: dict[tuple[str, str], bytes],
                  query: DocQuery, with_data: bool) -> dict[tuple[str, str], bytes]:
    """The documents whose attachments carry their bytes, rendered in the read transaction."""
    wanted = {(step.doc_id, rev): step.since for step in plan
              if step.doc_id is not None and (with_data or step.since is not None)
              for rev in step.revs if (step.doc_id, rev) in packed}
    if not wanted:
        return {}
    metas = load_many(conn, dbid, list(wanted))
    out = {}
    for (doc_id, rev), since in wanted.items():
        info = infos[doc_id]
        out[(doc_id, rev)] = doc_with_data(
            conn, doc_id, rev, app.store.layer.body_of(packed[(doc_id, rev)]),
            metas.get((doc_id, rev), []), deleted=info.tree[rev][1],
            extra=meta_members(info, rev, query), since=since_pos(info.tree, rev, since or ()))
    return out


def _missing(doc_id: str | None, rev: str | None) -> bytes:
    return b'{"error":' + dumps(_error(doc_id, rev, "not_found", "missing")) + b"}"


def _error(doc_id: Any, rev: Any, error: str, reason: str) -> dict[str, Any]:
    return {"id": doc_id, "rev": rev, "error": error, "reason": reason}


@dataclass(frozen=True, slots=True)
class _Step:
    """What to answer for one `_bulk_get` entry: the id to show, the doc to read (None when
    the entry is invalid), the revs to return, and an error entry if the request was bad."""

    shown_id: Any
    doc_id: str | None
    revs: list[str]
    error: dict[str, Any] | None = None
    since: tuple[str, ...] | None = None


def _plan(entry: Any, infos: dict[str, reads.DocInfo], latest: bool) -> _Step:
    """The step for one entry, with the errors of CouchDB's `bulk_get_parse_arg`."""
    if not isinstance(entry, dict):
        return _Step(None, None, [], _error(None, None, "bad_request",
                                             "document must be a JSON object"))
    if "id" not in entry or entry["id"] is None:
        return _Step(None, None, [], _error(None, None, "bad_request", "document id missed"))
    doc_id, rev = entry["id"], entry.get("rev")
    try:
        validate_doc_id(doc_id)
    except StoreError as exc:
        _, error, reason = error_parts(exc)
        return _Step(doc_id, None, [], _error(doc_id, None, error, reason))
    info = infos.get(doc_id)
    since = entry.get("atts_since")
    if since is not None:
        if not isinstance(since, list) or not all(_is_rev(r) for r in since):
            return _Step(doc_id, None, [], _error(doc_id, rev, "bad_request",
                                                  "att_since value must be array of revs."))
        since = tuple(since)
    if rev is None:
        if info is None:
            return _Step(doc_id, doc_id, [], _error(doc_id, "undefined", "not_found", "missing"))
        return _Step(doc_id, doc_id, revtree.leaves(info.tree), since=since)
    try:
        parse_rev(rev)
    except InvalidRev:
        return _Step(doc_id, None, [], _error(doc_id, rev, "bad_request", "Invalid rev format"))
    if latest and info is not None and rev in info.tree:
        below = set(revtree.descendant_leaves(info.tree, rev))
        return _Step(doc_id, doc_id, [leaf for leaf in revtree.leaves(info.tree)
                                      if leaf in below], since=since)
    return _Step(doc_id, doc_id, [rev], since=since)


def _is_rev(rev: Any) -> bool:
    try:
        parse_rev(rev)
    except InvalidRev:
        return False
    return True


def _rev_map(app: Settee, request: SetteeRequest) -> dict[str, list[str]]:
    body = request.json_object(require_type=True)
    if len(body) > app.settings.max_bulk_docs:
        raise RequestTooLarge("Exceeded maximum number of documents.")
    for revs in body.values():
        if not isinstance(revs, list) or not all(isinstance(r, str) for r in revs):
            raise BadRequest("Revisions must be a list of strings")
        for rev in revs:
            parse_rev(rev)
    return body


def _missing_of(app: Settee, db: str, request_map: dict[str, list[str]]
                ) -> dict[str, tuple[list[str], reads.DocInfo | None]]:
    with app.store.engine.transaction() as conn:
        infos = reads.doc_infos(conn, reads.db_id(conn, db), list(request_map))
    out = {}
    for doc_id, revs in request_map.items():
        info = infos.get(doc_id)
        missing = [r for r in dict.fromkeys(revs) if info is None or r not in info.tree]
        if missing:
            out[doc_id] = (missing, info)
    return out


def revs_diff(app: Settee, request: SetteeRequest, db: str) -> Response:
    """`POST /{db}/_revs_diff`: which revs the target lacks, and leaves that may be ancestors."""
    result: dict[str, Any] = {}
    for doc_id, (missing, info) in _missing_of(app, db, _rev_map(app, request)).items():
        entry: dict[str, Any] = {"missing": missing}
        if info is not None:
            top = max(revtree.pos(r) for r in missing)
            ancestors = [leaf for leaf in revtree.leaves(info.tree) if revtree.pos(leaf) < top]
            if ancestors:
                entry["possible_ancestors"] = sorted(ancestors)
        result[doc_id] = entry
    return json_response(result)


def missing_revs(app: Settee, request: SetteeRequest, db: str) -> Response:
    """`POST /{db}/_missing_revs`: the legacy form of `_revs_diff`."""
    found = _missing_of(app, db, _rev_map(app, request))
    return json_response({"missing_revs": {d: m for d, (m, _) in found.items()}})
