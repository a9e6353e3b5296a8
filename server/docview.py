"""A document as a response: the requested rev, its meta members, attachments, `open_revs`.

Stored bodies already end with their attachment stubs, so a plain read splices them through.
With `attachments=true` or `atts_since` the attachments newer than `atts_since` carry their bytes:
inline as base64 `data` in JSON, or, for a client that accepts `multipart/related`, as raw parts
after the JSON (`"follows":true`), which is how CouchDB answers its replicator. `open_revs` sent
as `multipart/mixed` always carries attachment bytes, each document with some as a nested
`multipart/related` part (`chttpd_db:send_docs_multipart/3`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Response

from ..store import revtree
from ..store.attachments import AttMeta
from ..store.attread import doc_with_data, since_pos
from ..store.errors import NotFound
from ..store.reads import DocInfo
from ..store.render import attachments_member, doc_bytes, revisions, revs_info, strip_attachments
from ..store.revisions import parse_rev
from ..store.serialize import dumps
from .errors import BadRequest
from .multipart import Body, StreamResponse, mixed, once, related
from .params import Args, DocQuery, boolean, json_value
from .wrappers import SetteeRequest, json_response

if TYPE_CHECKING:
    from .app import Settee


@dataclass(frozen=True)
class AttQuery:
    """What a read asks of attachments: their bytes (`attachments=true`), only those newer than
    some revs (`atts_since`, which implies bytes), and `att_encoding_info` (accepted; settee
    stores every attachment as sent, unencoded, so there is never encoding info to add)."""

    attachments: bool = False
    atts_since: tuple[str, ...] | None = None
    encoding_info: bool = False

    @property
    def wants_data(self) -> bool:
        return self.attachments or self.atts_since is not None


def att_query(args: Args) -> AttQuery:
    """Parse `attachments`, `atts_since` (a JSON array of revs) and `att_encoding_info`."""
    since = None
    if "atts_since" in args:
        value = json_value(args, "atts_since")
        if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
            raise BadRequest("Invalid list of revisions")
        for rev in value:
            parse_rev(rev)
        since = tuple(value)
    return AttQuery(boolean(args, "attachments"), since, boolean(args, "att_encoding_info"))


def rev_from(request: SetteeRequest, body: dict[str, Any] | None) -> str | None:
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


def accepts(request: SetteeRequest, mimetype: str) -> bool:
    """Whether the client takes `mimetype`: CouchDB (mochiweb) reads a missing `Accept` as
    `*/*`, so only an `Accept` that leaves it out (e.g. `application/json`) says no."""
    if not request.headers.get("Accept"):
        return True
    return request.accept_mimetypes[mimetype] > 0


def _latest(tree: revtree.RevTree, rev: str) -> list[str]:
    """The leaves that descend from `rev`, best first (`latest=true`)."""
    below = set(revtree.descendant_leaves(tree, rev))
    return [leaf for leaf in revtree.leaves(tree) if leaf in below]


def meta_members(info: DocInfo, rev: str, query: DocQuery,
                 available: set[str] | None = None) -> list[tuple[str, Any]]:
    """The `_revisions`, `_revs_info`, `_conflicts`, … members a query asks for."""
    extra: list[tuple[str, Any]] = []
    if query.revs:
        extra.append(("_revisions", revisions(info.tree, rev)))
    if query.revs_info and available is not None:
        extra.append(("_revs_info", revs_info(info.tree, rev, available)))
    if query.conflicts:
        found = revtree.conflicts(info.tree)
        if found:
            extra.append(("_conflicts", found))
    if query.deleted_conflicts:
        found = revtree.deleted_conflicts(info.tree)
        if found:
            extra.append(("_deleted_conflicts", found))
    if query.local_seq:
        extra.append(("_local_seq", info.seq))
    return extra


# Members that make a GET "meta": CouchDB sends no ETag when one of them is in the answer.
# `_revisions` is not among them (`couch_doc:to_json_revisions/3` is outside `#doc.meta`).
META_MEMBERS = frozenset({"_revs_info", "_conflicts", "_deleted_conflicts", "_local_seq"})


@dataclass(frozen=True)
class RenderedDoc:
    """One revision of a document as JSON bytes, the rev it is, whether it carries meta, and the
    attachments whose bytes follow it in a multipart body."""

    data: bytes
    rev: str
    has_meta: bool
    follows: list[AttMeta] = field(default_factory=list)


def render_doc(app: Settee, db: str, docid: str, query: DocQuery,
               att: AttQuery = AttQuery(), multipart: bool = False) -> RenderedDoc:
    """The JSON of the requested revision of a document.

    `latest=true` with a plain `rev` opens the winning revision, as CouchDB 3.x does
    (`chttpd_db:db_doc_req/3` drops the rev); a deleted winner is then 404 `deleted`.
    """
    database = app.store.db(db)
    wanted = None if query.latest else query.rev
    info, body = database.open(docid, wanted)  # the tree and the wanted body in one statement
    if info is None:
        raise NotFound("missing")
    rev = wanted or info.winner
    if wanted is None and info.deleted:
        raise NotFound("deleted")
    if wanted is not None and wanted not in info.tree:
        raise NotFound("missing")
    available: set[str] | None = None
    if query.revs_info:
        _, bodies = database.revisions(docid, None)
        available = set(bodies)
        body = bodies.get(rev)
    if body is None:
        raise NotFound("missing")
    deleted = info.tree[rev][1]
    extra = meta_members(info, rev, query, available)
    has_meta = any(name in META_MEMBERS for name, _ in extra)
    if att.wants_data:
        return _with_content(app, db, info, rev, body, extra, att, multipart, has_meta)
    return RenderedDoc(doc_bytes(docid, rev, body, deleted=deleted, extra=extra), rev, has_meta)


def _with_content(app: Settee, db: str, info: DocInfo, rev: str, body: bytes,
                  extra: list[tuple[str, Any]], att: AttQuery, multipart: bool,
                  has_meta: bool = False,
                  metas: list[AttMeta] | None = None) -> RenderedDoc:
    """A revision whose attachments newer than `atts_since` carry their bytes."""
    if metas is None:
        metas = app.store.db(db).attachments_of(info.id, [rev]).get(rev, [])
    since = since_pos(info.tree, rev, att.atts_since or ())
    deleted = info.tree[rev][1]
    if multipart:
        sending = [m for m in metas if m.revpos > since]
        member = attachments_member(metas, {}, since, follows=True)
        data = doc_bytes(info.id, rev, strip_attachments(body, metas), deleted=deleted,
                         extra=[*extra, ("_attachments", member)] if metas else extra)
        return RenderedDoc(data, rev, has_meta, sending)
    with app.store.engine.transaction() as conn:
        data = doc_with_data(conn, info.id, rev, body, metas, deleted=deleted, extra=extra,
                             since=since)
    return RenderedDoc(data, rev, has_meta)


def related_body(app: Settee, db: str, found: RenderedDoc) -> Body:
    """A rendered document and the bytes of the attachments that follow it."""
    database = app.store.db(db)
    return related(found.data, found.follows, database.attachment_bytes)


def open_revs_response(app: Settee, request: SetteeRequest, db: str, docid: str,
                       query: DocQuery) -> Response:
    """`GET /{db}/{docid}?open_revs=all|[...]`: a JSON array, or multipart/mixed if asked."""
    database = app.store.db(db)
    info, bodies = database.revisions(docid, None)
    if query.open_revs == "all":
        if info is None:
            raise NotFound("missing")
        wanted = revtree.leaves(info.tree)
    else:
        wanted = list(query.open_revs)
        for rev in wanted:
            parse_rev(rev)
    if query.latest and info is not None:
        expanded: list[str] = []
        for rev in wanted:
            for leaf in (_latest(info.tree, rev) if rev in info.tree else [rev]):
                if leaf not in expanded:
                    expanded.append(leaf)
        wanted = expanded
    multipart = accepts(request, "multipart/mixed")
    att = att_query(request.args)
    if multipart:
        att = AttQuery(True, att.atts_since, att.encoding_info)
    found = [rev for rev in wanted if info is not None and rev in bodies]
    metas = database.attachments_of(docid, found) if att.wants_data and found else {}
    docs: list[RenderedDoc | str] = []
    for rev in wanted:
        if info is None or rev not in info.tree or rev not in bodies:
            docs.append(rev)
            continue
        extra = meta_members(info, rev, DocQuery(revs=query.revs))
        if att.wants_data:
            docs.append(_with_content(app, db, info, rev, bodies[rev], extra, att, multipart,
                                      metas=metas.get(rev, [])))
        else:
            data = doc_bytes(docid, rev, bodies[rev], deleted=info.tree[rev][1], extra=extra)
            docs.append(RenderedDoc(data, rev, False))
    if multipart:
        return _mixed(app, db, docs)
    parts = [b'{"missing":' + dumps(d) + b"}" if isinstance(d, str) else b'{"ok":' + d.data + b"}"
             for d in docs]
    return json_response(b"[" + b",".join(parts) + b"]")


def _mixed(app: Settee, db: str, docs: list[RenderedDoc | str]) -> Response:
    """One part per rev, as CouchDB sends `open_revs` to its replicator."""
    parts: list[Body] = []
    for doc in docs:
        if isinstance(doc, str):
            missing = b'{"missing":' + dumps(doc) + b"}"
            parts.append(('application/json; error="true"', len(missing), once(missing)))
        else:
            parts.append(related_body(app, db, doc))
    content_type, length, chunks = mixed(parts)
    return StreamResponse(chunks(), length, status=200, content_type=content_type)
