"""`Database`: one database as a mapping of document ids to documents, plus its queries and feeds.

>>> db = Server("http://127.0.0.1:5984").create("notes")  # doctest: +SKIP
>>> db["a"] = {"text": "hello"}       # PUT; the dict gets its _id and _rev
>>> doc = db["a"]; doc["text"] = "hi"
>>> db["a"] = doc                      # an update, because doc carries its _rev
>>> db.update("a", lambda d: d.update(n=d.get("n", 0) + 1))  # re-read and retry on conflict
>>> "a" in db, len(db), list(db)
(True, 1, ['a'])
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, BinaryIO

from . import attachments
from .batch import DEFAULT_CHUNK, Batch, Result, get_many
from .changes import ChangeStream, changes
from .errors import Conflict, NotFound, PreconditionFailed
from .transport import Doc, Transport, db_path, doc_path
from .views import DEFAULT_PAGE, UNSET, FindResult, ViewRows, view_params


class Database:
    """Documents by id (`db["id"]`, `db.get`, `in`, `del`), counted and iterated from the server.

    A missing document raises `NotFound`, which is a `KeyError`. Writing a document whose `_rev`
    is not the current one raises `Conflict` with the current rev in `current_rev`.
    """

    def __init__(self, transport: Transport, name: str) -> None:
        self.transport = transport
        self.name = name
        self.path = db_path(name)

    def __repr__(self) -> str:
        return f"Database({self.transport.url!r}, {self.name!r})"

    # -- the database -------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """`GET /{db}`: `doc_count`, `update_seq`, sizes, ..."""
        result: dict[str, Any] = self.transport.json("GET", self.path)
        return result

    def exists(self) -> bool:
        try:
            self.transport.request("HEAD", self.path)
        except NotFound:
            return False
        return True

    def create(self, *, exist_ok: bool = False) -> Database:
        """`PUT /{db}`; an existing database raises `PreconditionFailed` unless `exist_ok`."""
        try:
            self.transport.request("PUT", self.path)
        except PreconditionFailed:
            if not exist_ok:
                raise
        return self

    def __len__(self) -> int:
        """`doc_count`: live documents, design documents included (as CouchDB counts)."""
        return int(self.info()["doc_count"])

    # -- documents ----------------------------------------------------------------------------

    def __getitem__(self, docid: str) -> Doc:
        result: Doc = self.transport.json("GET", doc_path(self.name, docid))
        return result

    def get(self, docid: str, default: Any = None, **params: Any) -> Any:
        """The document, or `default` when it is missing or deleted; `params` are CouchDB's
        (`rev`, `conflicts`, `revs`, ...)."""
        try:
            return self.transport.json("GET", doc_path(self.name, docid), params=params)
        except NotFound:
            return default

    def __contains__(self, docid: object) -> bool:
        return isinstance(docid, str) and self.rev(docid) is not None

    def rev(self, docid: str) -> str | None:
        """The current (winning) rev from `HEAD /{db}/{docid}`; None when missing or deleted."""
        try:
            response = self.transport.request("HEAD", doc_path(self.name, docid))
        except NotFound:
            return None
        etag = response.headers.get("ETag")
        return etag.strip('"') if etag else None

    def put(self, docid: str, doc: Doc, **params: Any) -> str:
        """`PUT /{db}/{docid}`: create, or update the `_rev` the document carries; the new rev.

        A stale or missing `_rev` on an existing document raises `Conflict` with `current_rev`.
        """
        try:
            answer = self.transport.json("PUT", doc_path(self.name, docid), json_body=doc,
                                         params=params or None)
        except Conflict as exc:
            exc.current_rev = self.rev(docid)
            raise
        rev: str = answer["rev"]
        return rev

    def __setitem__(self, docid: str, doc: Doc) -> None:
        """Write `doc` as `docid`, then set its `_id` and `_rev` to what was written."""
        rev = self.put(docid, doc)
        doc["_id"], doc["_rev"] = docid, rev

    def save(self, doc: Doc) -> tuple[str, str]:
        """Write `doc` under its `_id`, or under an id the server chooses (`POST /{db}`);
        sets `_id` and `_rev` in `doc` and returns them."""
        if "_id" in doc:
            self[doc["_id"]] = doc
        else:
            answer = self.transport.json("POST", self.path, json_body=doc)
            doc["_id"], doc["_rev"] = answer["id"], answer["rev"]
        return doc["_id"], doc["_rev"]

    def delete(self, docid: str, rev: str | None = None) -> str:
        """Delete `docid` at `rev` (by default its current rev); returns the tombstone's rev."""
        if rev is None:
            rev = self.rev(docid)
            if rev is None:
                raise NotFound("missing", status=404, error="not_found", method="DELETE",
                               path=doc_path(self.name, docid))
        try:
            answer = self.transport.json("DELETE", doc_path(self.name, docid),
                                         params={"rev": rev})
        except Conflict as exc:
            exc.current_rev = self.rev(docid)
            raise
        new_rev: str = answer["rev"]
        return new_rev

    def __delitem__(self, docid: str) -> None:
        """Delete the current revision of `docid`."""
        self.delete(docid)

    def update(self, docid: str, fn: Callable[[Doc], Doc | None], *, retries: int = 10,
               default: Any = UNSET) -> Doc:
        """Read `docid`, apply `fn` (which edits the document in place or returns a new one) and
        write it; on a conflict read again and retry, at most `retries` times.

        A missing document raises `NotFound`, unless a `default` document is given: `fn` then
        edits a copy of it. Returns the document as written, with its new `_rev`.
        """
        for attempt in range(retries + 1):
            try:
                doc = self[docid]
            except NotFound:
                if default is UNSET:
                    raise
                doc = copy.deepcopy(default)
                doc.pop("_rev", None)
            changed = fn(doc)
            if changed is not None:
                doc = changed
            try:
                answer = self.transport.json("PUT", doc_path(self.name, docid), json_body=doc)
            except Conflict:
                if attempt == retries:
                    raise
                time.sleep(random.uniform(0, 0.002 * (attempt + 1)))  # de-synchronise writers
                continue
            doc["_id"], doc["_rev"] = docid, answer["rev"]
            return doc
        raise AssertionError("unreachable")  # pragma: no cover

    def __iter__(self) -> Iterator[str]:
        """Every document id in `_all_docs` order, design documents included, paged."""
        return (row["id"] for row in self.all_docs())

    # -- queries ------------------------------------------------------------------------------

    def all_docs(self, *, key: Any = UNSET, keys: Any = UNSET, startkey: Any = UNSET,
                 endkey: Any = UNSET, limit: int | None = None, page_size: int = DEFAULT_PAGE,
                 **options: Any) -> ViewRows:
        """`_all_docs` rows (`id`, `key`, `value`, `doc` with `include_docs=True`), paged."""
        params, key_list = view_params(key, keys, startkey, endkey, options)
        return ViewRows(self.transport, f"{self.path}/_all_docs", params, keys=key_list,
                        limit=limit, page_size=page_size, tiebreak=False)

    def view(self, name: str, *, key: Any = UNSET, keys: Any = UNSET, startkey: Any = UNSET,
             endkey: Any = UNSET, limit: int | None = None, page_size: int = DEFAULT_PAGE,
             **options: Any) -> ViewRows:
        """Rows of view `"ddoc/view"`, paged with `startkey`/`startkey_docid`.

        Keys are any JSON values; other options are CouchDB's (`group`, `group_level`,
        `reduce`, `descending`, `include_docs`, `inclusive_end`, `startkey_docid`, `update`...).
        """
        ddoc, sep, view = name.partition("/")
        if not sep or not ddoc or not view:
            raise ValueError(f"a view is named 'ddoc/view', not {name!r}")
        params, key_list = view_params(key, keys, startkey, endkey, options)
        path = f"{doc_path(self.name, '_design/' + ddoc)}/_view/{view}"
        return ViewRows(self.transport, path, params, keys=key_list, limit=limit,
                        page_size=page_size)

    def find(self, selector: Doc, *, fields: list[str] | None = None,
             sort: list[Any] | None = None, limit: int | None = None,
             page_size: int = DEFAULT_PAGE, **options: Any) -> FindResult:
        """Documents matching a Mango `selector` (`POST /{db}/_find`), paged by bookmark.

        Raises `Unsupported` when the server has no `_find`.
        """
        query: Doc = {"selector": selector}
        if fields is not None:
            query["fields"] = fields
        if sort is not None:
            query["sort"] = sort
        query.update({name: value for name, value in options.items() if value is not None})
        return FindResult(self.transport, f"{self.path}/_find", query, limit=limit,
                          page_size=page_size)

    # -- changes ------------------------------------------------------------------------------

    def changes(self, **params: Any) -> dict[str, Any]:
        """One `feed=normal` answer of `_changes` (`since`, `limit`, `include_docs`, ...)."""
        return changes(self.transport, self.name, **params)

    def stream(self, since: Any = "trim_horizon", *, include_docs: bool = False,
               include_previous: bool = False, **options: Any) -> ChangeStream:
        """Change events from `since` (`"trim_horizon"`, `"latest"` or a saved `token`)."""
        return ChangeStream(self.transport, self.name, since, include_docs=include_docs,
                            include_previous=include_previous, **options)

    # -- batches ------------------------------------------------------------------------------

    def batch(self, chunk_size: int = DEFAULT_CHUNK) -> Batch:
        """Queued puts and deletes sent as `_bulk_docs`, each with a result of its own."""
        return Batch(self.transport, self.name, chunk_size)

    def get_many(self, items: Iterable[str | tuple[str, str]],
                 chunk_size: int = DEFAULT_CHUNK) -> list[Result]:
        """Documents by id or `(id, rev)` through `_bulk_get`, one resolved result each."""
        return get_many(self.transport, self.name, items, chunk_size)

    # -- attachments --------------------------------------------------------------------------

    def put_attachment(self, docid: str, name: str, data: bytes | BinaryIO,
                       content_type: str = "application/octet-stream",
                       rev: str | None = None) -> str:
        """Upload an attachment, streamed from a file object; returns the document's new rev.

        Without `rev`, the document's current rev is used (or it is created).
        """
        if rev is None:
            rev = self.rev(docid)
        try:
            return attachments.put(self.transport, self.name, docid, name, data, content_type,
                                   rev)
        except Conflict as exc:
            exc.current_rev = self.rev(docid)
            raise

    def open_attachment(self, docid: str, name: str,
                        rev: str | None = None) -> attachments.AttachmentReader:
        """A read-only binary file streaming the attachment (use it in a `with` block)."""
        return attachments.open_(self.transport, self.name, docid, name, rev)

    def delete_attachment(self, docid: str, name: str, rev: str | None = None) -> str:
        """Remove an attachment (at `rev`, by default the current one); the new rev."""
        if rev is None:
            rev = self.rev(docid)
            if rev is None:
                raise NotFound("missing", status=404, error="not_found", method="DELETE",
                               path=doc_path(self.name, docid))
        return attachments.delete(self.transport, self.name, docid, name, rev)
