"""Document endpoints: GET/HEAD/PUT/DELETE/COPY of normal, `_design/` and `_local/` docs."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from werkzeug.wrappers import Response

from ...store import make_edit
from ...store.errors import Conflict, NotFound
from ...store.render import doc_bytes
from ...store.revisions import parse_rev
from ...store.serialize import canonical_body
from ...store.validate import validate_doc_id
from ..docview import open_revs_response, render_doc
from ..errors import BadContentType, BadRequest, DocumentTooLarge, HttpError
from ..params import boolean, doc_query, is_set
from ..wrappers import SetteeRequest, json_response, location, quoted
from .root import new_doc_id

if TYPE_CHECKING:
    from ..app import Settee


class AttachmentsUnsupported(HttpError):
    """Attachments are not stored yet: refuse them rather than drop them."""

    status, error = 501, "not_implemented"
    reason = "Attachments are not supported by this settee version yet."


def doc(app: Settee, request: SetteeRequest, db: str, docid: str) -> Response:
    """`/{db}/{docid}`: dispatch on method; `_local/` ids go to the local-doc handler.

    A GET of `/{db}/_design%2Fx` is redirected (301) to `/{db}/_design/x`, as CouchDB does
    (`chttpd_db:db_req/2`); other methods act on the design document directly.
    """
    if docid == "_local" or docid.startswith("_local/"):
        return local_doc(app, request, db, docid[len("_local/"):])
    if docid.startswith("_design/") and request.method in ("GET", "HEAD"):
        return _design_redirect(request, db, docid[len("_design/"):])
    return _doc(app, request, db, docid)


def design_doc(app: Settee, request: SetteeRequest, db: str, docid: str) -> Response:
    """`/{db}/_design/{ddoc}`: a document whose id carries the prefix."""
    return _doc(app, request, db, "_design/" + docid)


def _doc(app: Settee, request: SetteeRequest, db: str, docid: str) -> Response:
    validate_doc_id(docid, allow_local=False)
    if request.method in ("GET", "HEAD"):
        return get_doc(app, request, db, docid)
    if request.method == "PUT":
        return put_doc(app, request, db, docid)
    if request.method == "DELETE":
        return delete_doc(app, request, db, docid)
    if request.method == "COPY":
        return copy_doc(app, request, db, docid)
    # POST: CouchDB's HTML-form attachment upload (`chttpd_db:db_doc_req/3`)
    if request.mimetype != "multipart/form-data":
        raise BadContentType("Content-Type must be multipart/form-data")
    raise AttachmentsUnsupported()


def _design_redirect(request: SetteeRequest, db: str, name: str) -> Response:
    """301 to the unencoded-slash form of a design document's URL, query string kept."""
    target = location(request, db) + "/_design/" + quote(name, safe="")
    query = request.query_string.decode("latin-1")
    if query:
        target += "?" + query
    return Response(b"", status=301, headers={"Location": target})


# -- reading ---------------------------------------------------------------------------------

def get_doc(app: Settee, request: SetteeRequest, db: str, docid: str) -> Response:
    """`GET /{db}/{docid}` with CouchDB's rev and meta parameters."""
    query = doc_query(request.args)
    if is_set(query.open_revs):
        return open_revs_response(app, request, db, docid, query)
    if query.rev is not None:
        parse_rev(query.rev)
    found = render_doc(app, db, docid, query)
    if found.has_meta:
        return json_response(found.data)
    etag = quoted(found.rev)
    request.if_none_match(etag)
    return json_response(found.data, headers={"ETag": etag})


# -- writing ---------------------------------------------------------------------------------

def _doc_body(app: Settee, request: SetteeRequest, docid: str) -> dict[str, Any]:
    data = request.body_bytes()
    if len(data) > app.settings.max_document_size:
        raise DocumentTooLarge(docid)
    body = request.json_body()
    if not isinstance(body, dict):
        raise BadRequest("Document must be a JSON object")
    if body.get("_attachments"):
        raise AttachmentsUnsupported()
    return body


def _rev_from(request: SetteeRequest, body: dict[str, Any] | None) -> str | None:
    """The rev a write replaces: body `_rev`, `?rev=` or `If-Match`, which must agree.

    As `chttpd_db:couch_doc_from_req/4`: the body is checked against the query string first,
    then whichever of them was given against the `If-Match` header.
    """
    query_rev = request.args.get("rev") or None
    header_rev = request.if_match_rev() or None
    body_rev = body.get("_rev") if body is not None else None
    if body_rev is not None and query_rev is not None and body_rev != query_rev:
        raise BadRequest("Document rev from request body and query string have different values")
    explicit = body_rev if body_rev is not None else query_rev
    if explicit is not None and header_rev is not None and explicit != header_rev:
        raise BadRequest("Document rev and etag have different values")
    rev = explicit if explicit is not None else header_rev
    if rev is not None and not isinstance(rev, str):
        raise BadRequest("Invalid rev format")
    return rev


def _written(request: SetteeRequest, db: str, docid: str, rev: str, deleted: bool, *,
             with_location: bool = True) -> Response:
    """CouchDB's answer to a write: 202 for `batch=ok`, 200 for a deletion, else 201."""
    if request.args.get("batch") == "ok":
        return json_response({"ok": True, "id": docid}, 202)
    status = 200 if deleted else 201
    headers = {"ETag": quoted(rev)}
    if with_location:
        headers["Location"] = location(request, db, docid)
    return json_response({"ok": True, "id": docid, "rev": rev}, status, headers)


def _save(app: Settee, db: str, docid: str, body: dict[str, Any], new_edits: bool) -> str:
    edit = make_edit(docid, body, new_edits=new_edits)
    result = app.store.db(db).write([edit], new_edits=new_edits)[0]
    if result.error is not None:
        raise result.error
    assert result.rev is not None
    return result.rev


def put_doc(app: Settee, request: SetteeRequest, db: str, docid: str) -> Response:
    """`PUT /{db}/{docid}`: create or update; `new_edits=false` stores a replicated rev."""
    body = _doc_body(app, request, docid)
    new_edits = boolean(request.args, "new_edits", True)
    rev = _rev_from(request, body)
    if rev is not None:
        body["_rev"] = rev
    new_rev = _save(app, db, docid, body, new_edits)
    return _written(request, db, docid, new_rev, bool(body.get("_deleted")))


def post_doc(app: Settee, request: SetteeRequest, db: str) -> Response:
    """`POST /{db}`: create a document, with a generated id unless `_id` is given."""
    if request.mimetype != "application/json":
        raise BadContentType()
    body = request.json_body()
    if not isinstance(body, dict):
        raise BadRequest("Document must be a JSON object")
    docid = body.get("_id")
    if docid is None:
        docid = new_doc_id()
    validate_doc_id(docid)
    if len(request.body_bytes()) > app.settings.max_document_size:
        raise DocumentTooLarge(docid)
    if docid.startswith("_local/"):
        rev = app.store.db(db).local_put(docid[len("_local/"):], body)
        return json_response({"ok": True, "id": docid, "rev": rev}, 201,
                             {"ETag": _local_etag(docid, rev, canonical_body(body)),
                              "Location": location(request, db, docid)})
    if body.get("_attachments"):
        raise AttachmentsUnsupported()
    new_rev = _save(app, db, docid, body, True)
    return _written(request, db, docid, new_rev, bool(body.get("_deleted")))


def delete_doc(app: Settee, request: SetteeRequest, db: str, docid: str) -> Response:
    """`DELETE /{db}/{docid}?rev=`: write a tombstone (200, not 201).

    CouchDB opens the winning revision first, so a deleted document is 404 `deleted` whatever
    rev is named.
    """
    info, _ = app.store.db(db).open(docid)
    if info is None:
        raise NotFound("missing")
    if info.deleted:
        raise NotFound("deleted")
    rev = _rev_from(request, None)
    body: dict[str, Any] = {"_deleted": True}
    if rev is not None:
        body["_rev"] = rev
    new_rev = _save(app, db, docid, body, True)
    return _written(request, db, docid, new_rev, True, with_location=False)


def copy_doc(app: Settee, request: SetteeRequest, db: str, docid: str) -> Response:
    """`COPY /{db}/{docid}` with `Destination: newid[?rev=…]`."""
    destination = request.headers.get("Destination")
    if not destination:
        raise BadRequest("Destination header is mandatory for COPY.")
    target, _, qs = destination.partition("?")
    target = unquote(target)
    target_rev = None
    for part in qs.split("&"):
        name, _, value = part.partition("=")
        if name == "rev" and value:
            target_rev = unquote(value)
    validate_doc_id(target)
    query = doc_query(request.args)
    if query.rev is None and request.if_match_rev():
        query = doc_query({**request.args, "rev": request.if_match_rev()})
    data = render_doc(app, db, docid, query).data
    from ..jsonbody import parse_json
    body = parse_json(data)
    body.pop("_id", None)
    body.pop("_rev", None)
    if target_rev is not None:
        body["_rev"] = target_rev
    new_rev = _save(app, db, target, body, True)
    return json_response({"ok": True, "id": target, "rev": new_rev}, 201,
                         {"ETag": quoted(new_rev), "Location": location(request, db, target)})


# -- local documents -------------------------------------------------------------------------

def _local_etag(full_id: str, rev: str, body: bytes) -> str:
    """A local document's ETag: a hash of id, rev and body (`couch_httpd:doc_etag/3`)."""
    digest = hashlib.md5(full_id.encode("utf-8") + b"\x00" + rev.encode("ascii") + b"\x00" + body)
    return quoted(digest.hexdigest())


def local_doc(app: Settee, request: SetteeRequest, db: str, docid: str) -> Response:
    """`/{db}/_local/{id}`: counter-rev documents that are never replicated."""
    if not docid:  # `/{db}/_local`, `/{db}/_local/`, `/{db}/_local%2F`
        raise BadRequest("Invalid _local document id.")
    full_id = "_local/" + docid
    store_db = app.store.db(db)
    if request.method in ("GET", "HEAD"):
        found = store_db.local_get(docid)
        current = f"0-{found.rev}"
        etag = _local_etag(full_id, current, found.body)
        request.if_none_match(etag)
        return json_response(doc_bytes(full_id, current, found.body), headers={"ETag": etag})
    if request.method == "PUT":
        body = _doc_body(app, request, full_id)
        rev = _rev_from(request, body)
        if rev is not None:
            body["_rev"] = rev
        new_rev = store_db.local_put(docid, body)
        return json_response({"ok": True, "id": full_id, "rev": new_rev}, 201,
                             {"ETag": _local_etag(full_id, new_rev, canonical_body(body)),
                              "Location": location(request, db, full_id)})
    if request.method == "DELETE":
        store_db.local_delete(docid, _rev_from(request, None))
        return json_response({"ok": True, "id": full_id, "rev": "0-0"})
    if request.method == "COPY":
        raise BadRequest("COPY of local documents is not supported")
    raise Conflict()


def local_attachment(app: Settee, request: SetteeRequest, db: str, docid: str,
                     rest: str) -> Response:
    """`/{db}/_local/{id}/{anything}`: local documents have no attachments."""
    raise BadRequest("_local documents do not accept attachments.")
