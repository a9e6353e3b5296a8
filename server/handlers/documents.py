"""Document endpoints: GET/HEAD/PUT/DELETE/COPY of normal, `_design/` and `_local/` docs.

Documents carry attachments inline (`_attachments` with base64 `data` or stubs), or, for a PUT
with `Content-Type: multipart/related`, as raw parts after the JSON; a GET with
`attachments=true` answers `multipart/related` to a client that accepts it (see `docview`).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from werkzeug.wrappers import Response

from ...store import make_edit
from ...store.attachments import AttIn
from ...store.errors import Conflict, NotFound
from ...store.render import doc_bytes
from ...store.revisions import parse_rev
from ...store.serialize import canonical_body
from ...store.validate import validate_doc_id
from ...store.writes import Edit
from ..docview import accepts, att_query, open_revs_response, related_body, render_doc, rev_from
from ..errors import BadContentType, BadRequest, DocumentTooLarge, HttpError
from ..jsonbody import parse_json
from ..multipart import StreamResponse
from ..params import boolean, doc_query, is_set
from ..uploads import check_sizes, close_blobs, receive_follows, related_document
from ..wrappers import SetteeRequest, json_response, location, quoted
from .attachments import save_edits
from .root import new_doc_id

if TYPE_CHECKING:
    from ..app import Settee


class FormUploadUnsupported(HttpError):
    """CouchDB's legacy HTML-form attachment upload: refused rather than half done."""

    status, error = 501, "not_implemented"
    reason = "Attachment upload with multipart/form-data is not supported; PUT the attachment."


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
    raise FormUploadUnsupported()


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
    att = att_query(request.args)
    multipart = att.wants_data and accepts(request, "multipart/related")
    found = render_doc(app, db, docid, query, att, multipart)
    headers = {}
    if not found.has_meta:
        headers["ETag"] = quoted(found.rev)
        request.not_modified_if_none_match(headers["ETag"])
    if found.follows:
        content_type, length, chunks = related_body(app, db, found)
        return StreamResponse(chunks(), length, status=200, headers=headers,
                              content_type=content_type)
    return json_response(found.data, headers=headers)


# -- writing ---------------------------------------------------------------------------------

def _doc_body(app: Settee, request: SetteeRequest, docid: str) -> dict[str, Any]:
    """The JSON body of a document write; a body over `max_document_size` is refused before
    it is parsed unless it carries attachments (which do not count toward that limit)."""
    data = request.body_bytes()
    if len(data) > app.settings.max_document_size and b'"_attachments"' not in data:
        raise DocumentTooLarge(docid)
    body = request.json_body()
    if not isinstance(body, dict):
        raise BadRequest("Document must be a JSON object")
    return body


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


def _save_edit(app: Settee, request: SetteeRequest, db: str, edit: Edit,
               new_edits: bool) -> str:
    try:
        result = save_edits(app, request, db, [edit], new_edits)[0]
    finally:
        close_blobs([edit])
    if result.error is not None:
        raise result.error
    assert result.rev is not None
    return result.rev


def _save(app: Settee, request: SetteeRequest, db: str, docid: str, body: dict[str, Any],
          new_edits: bool) -> str:
    edit = make_edit(docid, body, new_edits=new_edits)
    check_sizes(app.settings, edit)
    return _save_edit(app, request, db, edit, new_edits)


def put_doc(app: Settee, request: SetteeRequest, db: str, docid: str) -> Response:
    """`PUT /{db}/{docid}`: create or update; `new_edits=false` stores a replicated rev.

    A `multipart/related` body (CouchDB's replicator) is read whole, its attachment parts
    spooled, before anything is written."""
    new_edits = boolean(request.args, "new_edits", True)
    reader = None
    if request.mimetype == "multipart/related":
        body, reader = related_document(request, app.settings)
    else:
        body = _doc_body(app, request, docid)
    rev = rev_from(request, body)
    if rev is not None:
        body["_rev"] = rev
    edit = make_edit(docid, body, new_edits=new_edits)
    check_sizes(app.settings, edit)
    if reader is not None:
        receive_follows(reader, edit, app.settings)
    new_rev = _save_edit(app, request, db, edit, new_edits)
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
    if len(request.body_bytes()) > app.settings.max_document_size \
            and "_attachments" not in body:
        raise DocumentTooLarge(docid)
    if docid.startswith("_local/"):
        _no_local_attachments(body)
        rev = app.store.db(db).local_put(docid[len("_local/"):], body)
        return json_response({"ok": True, "id": docid, "rev": rev}, 201,
                             {"ETag": _local_etag(docid, rev, canonical_body(body)),
                              "Location": location(request, db, docid)})
    new_rev = _save(app, request, db, docid, body, True)
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
    rev = rev_from(request, None)
    body: dict[str, Any] = {"_deleted": True}
    if rev is not None:
        body["_rev"] = rev
    new_rev = _save(app, request, db, docid, body, True)
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
    found = render_doc(app, db, docid, query)
    body = parse_json(found.data)
    for member in ("_id", "_rev", "_attachments"):
        body.pop(member, None)
    if target_rev is not None:
        body["_rev"] = target_rev
    edit = make_edit(target, body)
    metas = app.store.db(db).attachments_of(docid, [found.rev]).get(found.rev, [])
    if metas:  # the same bytes, revpos and all (`couch_db:set_new_att_revpos/1` keeps them)
        edit.atts = [AttIn(m.name, keep=m) for m in metas]
    new_rev = _save_edit(app, request, db, edit, True)
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
        request.not_modified_if_none_match(etag)
        return json_response(doc_bytes(full_id, current, found.body), headers={"ETag": etag})
    if request.method == "PUT":
        body = _doc_body(app, request, full_id)
        _no_local_attachments(body)
        if len(canonical_body(body)) > app.settings.max_document_size:
            raise DocumentTooLarge(full_id)
        rev = rev_from(request, body)
        if rev is not None:
            body["_rev"] = rev
        new_rev = store_db.local_put(docid, body)
        return json_response({"ok": True, "id": full_id, "rev": new_rev}, 201,
                             {"ETag": _local_etag(full_id, new_rev, canonical_body(body)),
                              "Location": location(request, db, full_id)})
    if request.method == "DELETE":
        store_db.local_delete(docid, rev_from(request, None))
        return json_response({"ok": True, "id": full_id, "rev": "0-0"})
    if request.method == "COPY":
        raise BadRequest("COPY of local documents is not supported")
    raise Conflict()


def _no_local_attachments(body: dict[str, Any]) -> None:
    """CouchDB drops a local document's attachments silently; settee says so instead."""
    if body.get("_attachments"):
        raise BadRequest("_local documents do not accept attachments.")


def local_attachment(app: Settee, request: SetteeRequest, db: str, docid: str,
                     rest: str) -> Response:
    """`/{db}/_local/{id}/{anything}`: local documents have no attachments."""
    raise BadRequest("_local documents do not accept attachments.")
