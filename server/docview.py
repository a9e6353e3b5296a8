"""A document as a response: the requested rev, its meta members, and `open_revs` listings."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Response

from ..store import revtree
from ..store.errors import NotFound
from ..store.reads import DocInfo
from ..store.render import doc_bytes, revisions, revs_info
from ..store.revisions import parse_rev
from ..store.serialize import dumps
from .params import DocQuery
from .wrappers import SetteeRequest, json_response

if TYPE_CHECKING:
    from .app import Settee


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
    """One revision of a document as JSON bytes, the rev it is, and whether it carries meta."""

    data: bytes
    rev: str
    has_meta: bool


def render_doc(app: Settee, db: str, docid: str, query: DocQuery) -> RenderedDoc:
    """The JSON of the requested revision of a document.

    `latest=true` with a plain `rev` opens the winning revision, as CouchDB 3.x does
    (`chttpd_db:db_doc_req/3` drops the rev); a deleted winner is then 404 `deleted`.
    """
    database = app.store.db(db)
    info, body = database.open(docid)
    if info is None:
        raise NotFound("missing")
    wanted = None if query.latest else query.rev
    rev = wanted or info.winner
    if wanted is None and info.deleted:
        raise NotFound("deleted")
    if wanted is not None and wanted not in info.tree:
        raise NotFound("missing")
    available: set[str] | None = None
    if rev != info.winner or query.revs_info:
        _, bodies = database.revisions(docid, None if query.revs_info else [rev])
        available = set(bodies)
        body = bodies.get(rev)
    if body is None:
        raise NotFound("missing")
    deleted = info.tree[rev][1]
    extra = meta_members(info, rev, query, available)
    has_meta = any(name in META_MEMBERS for name, _ in extra)
    return RenderedDoc(doc_bytes(docid, rev, body, deleted=deleted, extra=extra), rev, has_meta)


def open_revs_response(app: Settee, request: SetteeRequest, db: str, docid: str,
                       query: DocQuery) -> Response:
    """`GET /{db}/{docid}?open_revs=all|[...]`: a JSON array, or multipart/mixed if asked."""
    info, bodies = app.store.db(db).revisions(docid, None)
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
    parts: list[bytes] = []
    for rev in wanted:
        if info is None or rev not in info.tree or rev not in bodies:
            parts.append(b'{"missing":' + dumps(rev) + b"}")
            continue
        plain = DocQuery(revs=query.revs)
        doc = doc_bytes(docid, rev, bodies[rev], deleted=info.tree[rev][1],
                        extra=meta_members(info, rev, plain))
        parts.append(b'{"ok":' + doc + b"}")
    if accepts_multipart(request):
        return _multipart(parts)
    return json_response(b"[" + b",".join(parts) + b"]")


def accepts_multipart(request: SetteeRequest) -> bool:
    """Whether the client takes `multipart/mixed`: CouchDB (mochiweb) reads a missing `Accept`
    as `*/*`, so only an `Accept` that leaves it out (e.g. `application/json`) gets JSON."""
    if not request.headers.get("Accept"):
        return True
    return request.accept_mimetypes["multipart/mixed"] > 0


def _multipart(parts: list[bytes]) -> Response:
    """One `application/json` part per rev, as CouchDB sends `open_revs` to its replicator."""
    boundary = os.urandom(16).hex()
    chunks = []
    for part in parts:
        if part.startswith(b'{"ok":'):
            head = b"Content-Type: application/json\r\n\r\n"
            payload = part[len(b'{"ok":'):-1]
        else:
            head = b'Content-Type: application/json; error="true"\r\n\r\n'
            payload = part
        chunks.append(b"--" + boundary.encode() + b"\r\n" + head + payload + b"\r\n")
    chunks.append(b"--" + boundary.encode() + b"--")
    return Response(b"".join(chunks), status=200,
                    content_type=f'multipart/mixed; boundary="{boundary}"')
