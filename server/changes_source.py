"""`_changes` rows: store pages filtered by the request's filter and rendered as CouchDB's JSON.

A row is `{"seq","id","changes":[{"rev"}...],"deleted"?,"doc"?,"previous"?}`, with member order
as CouchDB writes it. `changes` lists the winner (`style=main_only`) or every leaf, winner first
(`style=all_docs`); `deleted` is the winner's. With `include_docs` the winning document follows
(a tombstone as `{"_id","_rev","_deleted":true}`, `_conflicts` with `conflicts=true`); with
`include_previous`, settee's addition, the previous winning document or null (see
`store.changes` for what "previous" can and cannot know). With `seq_interval=N` a row carries
its seq only when the rows left before the request's limit (10^15 without one) divide by N,
as CouchDB's `fabric_view_changes` decides it; `last_seq` is always given.

Position: ascending feeds resume after the last row read, or after the page's `upper` seq once a
page comes back short; a normal feed never reads above the `update_seq` it started from, so its
`last_seq` is that seq. A descending (normal) feed reports the last seq it went past.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..store.changes import NO_BODIES, WINNER, Change, DbState, Want, count_pending, read_page
from ..store.render import doc_bytes
from ..store.serialize import dumps
from ..views.selector import extract_fields
from .change_filters import ChangeFilter, doc_json
from .changes_query import NOW, ChangesQuery
from .feeds import Batch

if TYPE_CHECKING:
    from .app import Settee

__all__ = ["ChangesSource"]

DEFAULT_LIMIT = 10**15  # CouchDB's "no limit", which `seq_interval` counts down from
TOP = 2**62  # above any seq: where a descending scan starts


class ChangesSource:
    """The rows of one `_changes` request, read page by page."""

    def __init__(self, app: Settee, db: str, query: ChangesQuery, flt: ChangeFilter,
                 start: DbState) -> None:
        self.key: str | None = db
        self.gone = False
        self.store, self.db, self.query, self.filter = app.store, db, query, flt
        self.dbid = start.id
        self.descending = query.descending and query.feed == "normal"
        jump = query.since == NOW or (query.descending and not self.descending)
        self.since = start.update_seq if jump else int(query.since)
        self.cursor = TOP  # descending: the scan continues below this seq
        self.reported = start.update_seq  # descending: the last seq gone past
        self.until = start.update_seq if query.feed == "normal" else None
        self.emitted = 0
        self.countdown = query.limit if query.limit is not None else DEFAULT_LIMIT
        bodies = flt.bodies
        if query.include_docs and bodies == NO_BODIES:
            bodies = WINNER
        self.want = Want(tree=query.style == "all_docs" or query.include_previous
                         or (query.include_docs and query.conflicts),
                         bodies=bodies, previous=query.include_previous)

    def read(self, max_rows: int) -> Batch:
        scan = max_rows if self.filter.test is None else max(max_rows, 1000)
        with self.store.engine.transaction() as conn:
            page = read_page(conn, self.db, after=self.cursor if self.descending else self.since,
                             limit=scan, layer=self.store.layer, until=self.until,
                             descending=self.descending, doc_ids=self.filter.doc_ids,
                             prefix=self.filter.prefix, want=self.want)
        rows: list[tuple[bytes, Any]] = []
        passed = None
        for change in page.changes:
            passed = change.seq
            revs = change.leaves() if self.query.style == "all_docs" else [change.winner]
            if self.filter.test is not None:
                revs = self.filter.test(change, revs)
            if revs:
                rows.append(self._row(change, revs))
                if len(rows) == max_rows:
                    break
        cut = passed is not None and passed != page.last
        exhausted = page.exhausted and not cut
        if self.descending:
            if passed is not None:
                self.cursor = self.reported = passed
        elif exhausted:
            self.since = max(self.since, page.upper)
        elif passed is not None:
            self.since = passed
        return Batch(rows, exhausted, (page.state.instance, page.state.update_seq))

    def last_seq(self) -> int:
        return self.reported if self.descending else self.since

    def pending(self) -> int:
        with self.store.engine.transaction() as conn:
            return count_pending(conn, self.dbid, self.last_seq(), descending=self.descending)

    # -- rendering ----------------------------------------------------------------------------

    def _row(self, change: Change, revs: list[str]) -> tuple[bytes, Any]:
        interval, left = self.query.seq_interval, self.countdown - self.emitted
        self.emitted += 1
        seq = change.seq if interval is None or left % interval == 0 else None
        parts = [b'{"seq":', dumps(seq), b',"id":', dumps(change.id), b',"changes":[',
                 b",".join(b'{"rev":' + dumps(rev) + b"}" for rev in revs), b"]"]
        if change.deleted:
            parts.append(b',"deleted":true')
        if self.query.include_docs:
            parts += [b',"doc":', self._doc(change)]
        if self.query.include_previous:
            parts += [b',"previous":', self._previous(change)]
        parts.append(b"}")
        return b"".join(parts), seq

    def _doc(self, change: Change) -> bytes:
        body = change.bodies.get(change.winner)
        if body is None:
            return b"null"
        if self.filter.fields is not None:
            doc = doc_json(change, change.winner) or {}
            return dumps(extract_fields(doc, self.filter.fields))
        extra: list[tuple[str, Any]] = []
        if self.query.conflicts and change.tree is not None:
            conflicts = [r for r in change.leaves()[1:] if not change.tree[r][1]]
            if conflicts:
                extra.append(("_conflicts", conflicts))
        return doc_bytes(change.id, change.winner, body, deleted=change.deleted, extra=extra)

    def _previous(self, change: Change) -> bytes:
        rev = change.previous
        if rev is None or change.tree is None or rev not in change.bodies:
            return b"null"
        return doc_bytes(change.id, rev, change.bodies[rev], deleted=change.tree[rev][1])

