"""Batches with one result per item: writes through `_bulk_docs`, reads through `_bulk_get`.

`_bulk_docs` answers 201 with one entry per document even when some failed, so a batch resolves
each queued write on its own: a new rev, or that item's error (a `Conflict`, a `Forbidden` from a
validation function, ...), never failing the other items. Only a failure of the whole request
(the server refused the batch, or the connection broke) reaches every item of that request.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import Any, Self

from .errors import BatchCancelled, Conflict, CouchError, NotFound, TransportError, item_error
from .transport import Doc, Transport, db_path

DEFAULT_CHUNK = 500


class Result:
    """A future-like result of one batch item: `result()` gives its value or raises its error.

    Asking for the result of an item not sent yet sends its batch first.
    """

    def __init__(self, batch: Batch | None, doc_id: str | None) -> None:
        self._batch = batch
        self.id = doc_id
        self._done = False
        self._value: Any = None
        self._error: BaseException | None = None

    def __repr__(self) -> str:
        state = "pending" if not self._done else ("error" if self._error else "ok")
        return f"<Result {self.id!r} {state}>"

    def done(self) -> bool:
        return self._done

    def result(self) -> Any:
        """The new rev of a write, the document of a read; raises the item's error."""
        self._settle()
        if self._error is not None:
            raise self._error
        return self._value

    def exception(self) -> BaseException | None:
        """The item's error, or None when it succeeded."""
        self._settle()
        return self._error

    @property
    def rev(self) -> str:
        """`result()` of a write: the rev it made."""
        rev: str = self.result()
        return rev

    def _settle(self) -> None:
        if not self._done and self._batch is not None:
            self._batch.flush()
        if not self._done:
            raise RuntimeError("this result was never resolved")

    def _set(self, value: Any) -> None:
        self._done, self._value = True, value

    def _fail(self, error: BaseException) -> None:
        self._done, self._error = True, error


class Batch:
    """Writes queued in memory and sent as `_bulk_docs` requests of `chunk_size` documents.

    >>> with db.batch() as batch:                  # doctest: +SKIP
    ...     a = batch.put({"_id": "a", "n": 1})
    ...     b = batch.delete("b")                  # rev looked up when sent
    >>> a.rev, b.exception()                       # doctest: +SKIP
    ('1-…', None)

    Documents are sent as they are when their chunk is sent, and a successful put sets their
    `_id` and `_rev`. Leaving the `with` block sends what is queued; leaving it by an exception
    sends nothing more and cancels the queued items (`BatchCancelled`).
    """

    def __init__(self, transport: Transport, db: str, chunk_size: int = DEFAULT_CHUNK) -> None:
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        self._transport = transport
        self._db = db
        self.chunk_size = chunk_size
        self._queue: list[tuple[Result, Doc, bool]] = []  # (result, doc, needs the current rev)
        self.results: list[Result] = []

    def put(self, doc: Doc) -> Result:
        """Queue a create (no `_rev`) or an update (with the `_rev` it replaces)."""
        return self._add(Result(self, doc.get("_id")), doc, False)

    def delete(self, doc_or_id: Doc | str, rev: str | None = None) -> Result:
        """Queue a deletion of a document (its `_id` and `_rev`) or of an id at `rev`; without a
        rev, the current one is looked up when the batch is sent."""
        if isinstance(doc_or_id, dict):
            doc_id, rev = doc_or_id["_id"], rev or doc_or_id.get("_rev")
        else:
            doc_id = doc_or_id
        tombstone: Doc = {"_id": doc_id, "_deleted": True}
        if rev is not None:
            tombstone["_rev"] = rev
        return self._add(Result(self, doc_id), tombstone, rev is None)

    def _add(self, result: Result, doc: Doc, needs_rev: bool) -> Result:
        self._queue.append((result, doc, needs_rev))
        self.results.append(result)
        if len(self._queue) >= self.chunk_size:
            self.flush()
        return result

    def flush(self) -> None:
        """Send everything queued, `chunk_size` documents per request."""
        while self._queue:
            chunk, self._queue = self._queue[:self.chunk_size], self._queue[self.chunk_size:]
            self._send(chunk)

    def _send(self, chunk: list[tuple[Result, Doc, bool]]) -> None:
        lookups = [doc["_id"] for _, doc, needs_rev in chunk if needs_rev]
        try:
            revs = current_revs(self._transport, self._db, lookups) if lookups else {}
        except (CouchError, TransportError) as exc:
            for result, _, _ in chunk:
                result._fail(exc)
            return
        sending: list[tuple[Result, Doc]] = []
        for result, doc, needs_rev in chunk:
            if needs_rev:
                rev = revs.get(doc["_id"])
                if rev is None:
                    result._fail(NotFound("missing", status=404, error="not_found",
                                          path=doc["_id"]))
                    continue
                doc["_rev"] = rev
            sending.append((result, doc))
        if not sending:
            return
        try:
            answer = self._transport.json("POST", f"{db_path(self._db)}/_bulk_docs",
                                          json_body={"docs": [doc for _, doc in sending]})
        except (CouchError, TransportError) as exc:
            for result, _ in sending:
                result._fail(exc)
            return
        conflicts: list[tuple[Result, Conflict]] = []
        for (result, doc), item in zip(sending, answer, strict=True):
            result.id = item.get("id", result.id)
            if "error" in item:
                error = item_error(item)
                if isinstance(error, Conflict):
                    conflicts.append((result, error))
                result._fail(error)
            else:
                if not doc.get("_deleted"):
                    doc["_id"], doc["_rev"] = item["id"], item["rev"]
                result._set(item["rev"])
        if conflicts:  # tell each conflict the rev it lost to, in one more request
            try:
                now = current_revs(self._transport, self._db, [r.id or "" for r, _ in conflicts])
            except (CouchError, TransportError):
                now = {}
            for result, error in conflicts:
                error.current_rev = now.get(result.id or "")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is None:
            self.flush()
            return
        for result, _, _ in self._queue:
            result._fail(BatchCancelled(f"not sent: the batch was left by {exc_type.__name__}"
                                        if exc_type else "not sent"))
        self._queue = []


def current_revs(transport: Transport, db: str, ids: list[str]) -> dict[str, str]:
    """The winning rev of each live document among `ids` (one `_all_docs` POST)."""
    answer = transport.json("POST", f"{db_path(db)}/_all_docs", json_body={"keys": ids},
                            idempotent=True)
    return {row["id"]: row["value"]["rev"] for row in answer["rows"]
            if "value" in row and not row["value"].get("deleted")}


def _winner(docs: list[Doc]) -> Doc | None:
    """CouchDB's winning leaf: live before deleted, then the longest branch, then the rev id."""
    def rank(doc: Doc) -> tuple[bool, int, str]:
        pos, _, digest = str(doc.get("_rev", "0-")).partition("-")
        return not doc.get("_deleted", False), int(pos), digest
    return max(docs, key=rank) if docs else None


def get_many(transport: Transport, db: str, items: Iterable[str | tuple[str, str]],
             chunk_size: int = DEFAULT_CHUNK) -> list[Result]:
    """Documents by id (their winning revision) or by `(id, rev)`, through `_bulk_get`, one
    resolved `Result` per item in order: the document, or `NotFound` (`missing`/`deleted`)."""
    wanted = [(item, None) if isinstance(item, str) else item for item in items]
    results = [Result(None, doc_id) for doc_id, _ in wanted]
    for start in range(0, len(wanted), chunk_size):
        part = wanted[start:start + chunk_size]
        body = {"docs": [{"id": i} if r is None else {"id": i, "rev": r} for i, r in part]}
        answer = transport.json("POST", f"{db_path(db)}/_bulk_get", json_body=body,
                                idempotent=True)
        for result, (doc_id, rev), entry in zip(results[start:], part, answer["results"],
                                                strict=False):
            found = [d["ok"] for d in entry.get("docs", []) if "ok" in d]
            errors = [d["error"] for d in entry.get("docs", []) if "error" in d]
            doc = found[0] if rev is not None and found else _winner(found)
            if doc is not None and (rev is not None or not doc.get("_deleted")):
                result._set(doc)
            elif doc is not None:
                result._fail(NotFound("deleted", status=404, error="not_found", path=doc_id))
            elif errors:
                result._fail(item_error({"id": doc_id, **errors[0]}))
            else:
                result._fail(NotFound("missing", status=404, error="not_found", path=doc_id))
    return results
