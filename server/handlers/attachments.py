"""Standalone attachments: `GET/HEAD/PUT/DELETE /{db}/{docid}/{name}`, design documents too.

As `chttpd_db:db_attachment_req/4`: a PUT names the revision it replaces with `?rev=` or `If-Match`
(none creates the document, or recreates a deleted one), keeps that revision's body and other
attachments and puts the new one first; a DELETE drops one. A GET streams the bytes of the
winning (or `?rev=`) revision with the stored `Content-Type`, `ETag: "<base64 md5>"`,
`If-None-Match` and single or multiple `Range`s. The body of a PUT is read whole before any
transaction opens.

Every answer here, errors included, carries `Content-Security-Policy: sandbox` and
`X-Content-Type-Options: nosniff`, so stored HTML or SVG can never run as the server's origin
(the CVE-2021-38295 class).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING

from werkzeug.wrappers import Response

from ...store.attachments import DEFAULT_CONTENT_TYPE, AttIn, AttMeta, MissingStub
from ...store.attparse import validate_name
from ...store.errors import Conflict, MissingRev, NotFound
from ...store.render import strip_attachments
from ...store.revisions import parse_rev
from ...store.validate import validate_doc_id
from ...store.writes import Edit, WriteResult
from .. import validation
from ..docview import rev_from
from ..errors import BadContentType, HttpError, error_response
from ..multipart import Part, StreamResponse, framed, safe_header
from ..uploads import Md5Mismatch, max_attachment_size, spool_body
from ..wrappers import SetteeRequest, json_response, location, quoted

if TYPE_CHECKING:
    from ...store.documents import Database
    from ..app import Settee

SECURITY_HEADERS = {"Content-Security-Policy": "sandbox", "X-Content-Type-Options": "nosniff"}
MAX_RANGES = 10  # CouchDB answers 10 or more ranges with the whole body


class MissingStubError(HttpError):
    """A stub that names no stored attachment (412 `missing_stub`)."""

    status, error = 412, "missing_stub"


class RangeNotSatisfiable(HttpError):
    """A `Range` that selects nothing of the attachment (416)."""

    status, error = 416, "requested_range_not_satisfiable"
    reason = "Requested range not satisfiable"


def save_edits(app: Settee, request: SetteeRequest, db: str, edits: Sequence[Edit],
               new_edits: bool) -> list[WriteResult]:
    """Validate edits as the request's user (`validation`, before any lock is taken), write
    those that pass, and answer one result per edit in order. An unresolvable stub fails the
    whole write with 412, as in CouchDB."""
    try:
        return validation.write(app, request.user_ctx, db, edits, new_edits)
    except MissingStub as exc:
        raise MissingStubError(exc.reason) from None


def attachment(app: Settee, request: SetteeRequest, db: str, docid: str, att: str) -> Response:
    """`/{db}/{docid}/{name}`."""
    return _guarded(lambda: _attachment(app, request, db, docid, att))


def design_attachment(app: Settee, request: SetteeRequest, db: str, docid: str,
                      att: str) -> Response:
    """`/{db}/_design/{ddoc}/{name}`."""
    return _guarded(lambda: _attachment(app, request, db, "_design/" + docid, att))


def _guarded(answer: Callable[[], Response]) -> Response:
    try:
        response = answer()
    except Exception as exc:  # noqa: BLE001 - the app's funnel, plus this module's headers
        response = error_response(exc)
    response.headers.update(SECURITY_HEADERS)
    return response


def _attachment(app: Settee, request: SetteeRequest, db: str, docid: str, att: str) -> Response:
    validate_doc_id(docid, allow_local=False)
    database = app.store.db(db)
    if request.method in ("GET", "HEAD"):
        return _get(request, database, docid, att)
    validate_name(att)
    if request.method == "PUT":
        return _put(app, request, database, db, docid, att)
    return _delete(app, request, database, db, docid, att)


# -- reading ---------------------------------------------------------------------------------

def etag(meta: AttMeta) -> str:
    """An attachment's ETag: its md5 in base64, quoted (`chttpd_db`)."""
    return quoted(base64.b64encode(meta.md5).decode("ascii"))


def _get(request: SetteeRequest, database: Database, docid: str, att: str) -> Response:
    rev = request.args.get("rev") or None
    if rev is not None:
        parse_rev(rev)
    meta = database.attachment(docid, att, rev)
    tag = etag(meta)
    request.not_modified_if_none_match(tag)
    headers = {"ETag": tag, "Cache-Control": "must-revalidate", "Accept-Ranges": "bytes"}
    content_type = safe_header(meta.content_type)
    ranges = byte_ranges(request.headers.get("Range"), meta.length)
    if ranges is None:
        headers["Content-MD5"] = base64.b64encode(meta.md5).decode("ascii")
        return StreamResponse(database.attachment_bytes(meta), meta.length, status=200,
                              headers=headers, content_type=content_type)
    if len(ranges) == 1:
        start, end = ranges[0]
        headers["Content-Range"] = f"bytes {start}-{end}/{meta.length}"
        return StreamResponse(database.attachment_bytes(meta, start, end + 1), end - start + 1,
                              status=206, headers=headers, content_type=content_type)
    return _multiple_ranges(database, meta, ranges, content_type, headers)


def _multiple_ranges(database: Database, meta: AttMeta, ranges: list[tuple[int, int]],
                     content_type: str, headers: dict[str, str]) -> Response:
    """`multipart/byteranges`, as `chttpd_db:send_ranges_multipart/5`."""
    parts: list[Part] = [
        (f"Content-Type: {content_type}\r\nContent-Range: bytes {start}-{end}/{meta.length}"
         .encode("ascii"), end - start + 1,
         partial(database.attachment_bytes, meta, start, end + 1))
        for start, end in ranges]
    ctype, length, chunks = framed("byteranges", parts)
    return StreamResponse(chunks(), length, status=206, headers=headers, content_type=ctype)


def byte_ranges(header: str | None, length: int) -> list[tuple[int, int]] | None:
    """The inclusive byte ranges a `Range` header asks for, or None for the whole body.

    As CouchDB (`chttpd_db:parse_ranges/3` over mochiweb's parser): a header it cannot read, a
    first range `0-`, or ten ranges or more mean the whole body; an end past the last byte is
    cut to it; `-N` is the last N bytes. A range that starts past the end, or ends before it
    starts, is a 416 (with `Content-Range: bytes */length`, as RFC 9110 asks).
    """
    if not header or not header.strip().lower().startswith("bytes="):
        return None
    specs: list[tuple[int | None, int | None]] = []
    for spec in header.strip()[6:].split(","):
        first, dash, last = spec.strip().partition("-")
        try:
            lo = int(first) if first.strip() else None
            hi = int(last) if last.strip() else None
        except ValueError:
            return None
        if not dash or (lo is None and hi is None) or (lo is not None and lo < 0) \
                or (hi is not None and hi < 0):
            return None
        specs.append((lo, hi))
    if specs[0] == (0, None) or len(specs) >= MAX_RANGES:
        return None
    out = []
    for lo, hi in specs:
        if lo is None:
            assert hi is not None
            lo, hi = max(0, length - hi), length - 1
            if length == 0 or lo > hi:
                raise _unsatisfiable(length)
        elif hi is not None and hi < lo:
            raise _unsatisfiable(length)
        else:
            hi = length - 1 if hi is None or hi >= length else hi
        if lo >= length:
            raise _unsatisfiable(length)
        out.append((lo, hi))
    return out


def _unsatisfiable(length: int) -> RangeNotSatisfiable:
    return RangeNotSatisfiable(headers={"Content-Range": f"bytes */{length}"})


# -- writing ---------------------------------------------------------------------------------

def _on_rev(database: Database, docid: str, rev: str) -> tuple[Edit, list[AttMeta]]:
    """An edit that rewrites revision `rev` as it is (body, deleted flag, attachments kept)."""
    info, bodies = database.revisions(docid, [rev])
    if info is None or rev not in bodies:
        raise MissingRev()
    metas = database.attachments_of(docid, [rev]).get(rev, [])
    body = strip_attachments(bodies[rev], metas)
    fields = json.loads(body)  # exact ints, floats and member order, for the rev hash
    edit = Edit(docid, fields, body, info.tree[rev][1], rev,
                atts=[AttIn(m.name, keep=m) for m in metas])
    return edit, metas


def _put(app: Settee, request: SetteeRequest, database: Database, db: str, docid: str,
         att: str) -> Response:
    rev = rev_from(request, None)
    if rev is not None:
        parse_rev(rev)
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip"):
        raise BadContentType("Only gzip and identity content-encodings are supported")
    blob = spool_body(request.stream, request.content_length, name=att,
                      max_request=app.settings.max_http_request_size,
                      max_attachment=max_attachment_size(app.settings),
                      gzip=encoding == "gzip")
    try:
        announced = request.headers.get("Content-MD5")
        if announced and encoding == "identity" and _b64(announced) != blob.md5:
            raise Md5Mismatch()
        content_type = request.headers.get("Content-Type") or DEFAULT_CONTENT_TYPE
        new = AttIn(att, content_type, blob=blob)
        if rev is None:
            edit = Edit(docid, {}, b"{}", atts=[new])
        else:
            edit, _ = _on_rev(database, docid, rev)
            assert edit.atts is not None
            edit.atts = [new] + [a for a in edit.atts if a.name != att]
        result = save_edits(app, request, db, [edit], True)[0]
    finally:
        blob.close()
    if result.error is not None:
        raise result.error
    assert result.rev is not None
    return json_response({"ok": True, "id": docid, "rev": result.rev}, 201,
                         {"ETag": quoted(result.rev),
                          "Location": location(request, db, docid, att)})


def _b64(value: str) -> bytes | None:
    try:
        return base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None


def _delete(app: Settee, request: SetteeRequest, database: Database, db: str, docid: str,
            att: str) -> Response:
    rev = rev_from(request, None)
    if rev is None:
        database.attachment(docid, att)  # 404 for a missing document or attachment first
        raise Conflict()
    parse_rev(rev)
    edit, metas = _on_rev(database, docid, rev)
    if all(m.name != att for m in metas):
        raise NotFound("Document is missing attachment")
    assert edit.atts is not None
    edit.atts = [a for a in edit.atts if a.name != att]
    result = save_edits(app, request, db, [edit], True)[0]
    if result.error is not None:
        raise result.error
    assert result.rev is not None
    return json_response({"ok": True, "id": docid, "rev": result.rev}, 200,
                         {"ETag": quoted(result.rev)})
