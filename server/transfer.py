"""`settee dump`, `load` and `compact`: whole-database work on the library API, with progress.

A dump is JSON lines: every live leaf revision of every document (the winner and its live
conflicts), each with `_revisions`, read in pages of short transactions. A load writes batches of
1000 lines; lines carrying a rev (`_rev` or `_revisions`) are written as replicated edits
(`new_edits=false`), so the target ends with the same revs, and a line whose rev the target
already has is skipped: an interrupted load is resumed by running it again. A line without a rev
is a new document; it is skipped when the target already has the rev that body would get.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO

import orjson

from ..store import Store, StoreConfig, make_edit, reads, render, revtree
from ..store.errors import DbExists, StoreError
from ..store.revisions import new_rev_id
from ..store.validate import validate_db_name
from ..store.writes import Edit
from .settings import Settings

BATCH = 1000
PAGE = 1000
TICK = 0.25  # seconds between two progress redraws


def open_store(settings: Settings) -> Store:
    """The store the server would open, set up."""
    store = Store(StoreConfig(url=settings.store_url, synchronous=settings.sqlite_synchronous,
                              busy_timeout_ms=settings.busy_timeout_ms,
                              compress_threshold=settings.compress_threshold or None))
    store.setup()
    return store


class Progress:
    """A one-line progress bar on a terminal; on anything else, a line now and then."""

    def __init__(self, label: str, total: int | None, unit: str, stream: IO[str] | None,
                 every: float = 5.0) -> None:
        self.label, self.total, self.unit, self.stream = label, total, unit, stream
        self.tty = bool(stream is not None and stream.isatty())
        self.every = TICK if self.tty else every
        self.done = 0
        self.started = self.shown = time.monotonic()

    def advance(self, amount: int, done: int | None = None) -> None:
        self.done = done if done is not None else self.done + amount
        now = time.monotonic()
        if self.stream is not None and now - self.shown >= self.every:
            self.shown = now
            self._show(end="\r" if self.tty else "\n")

    def finish(self, summary: str) -> None:
        if self.stream is None:
            return
        if self.tty:
            self.stream.write("\r\x1b[K")
        elapsed = time.monotonic() - self.started
        self.stream.write(f"{self.label}: {summary} in {elapsed:.1f} s\n")
        self.stream.flush()

    def _show(self, end: str) -> None:
        assert self.stream is not None
        if self.total:
            share = min(1.0, self.done / self.total)
            bar = "#" * int(share * 30)
            text = f"{self.label} [{bar:<30}] {share:4.0%} {self.done}/{self.total} {self.unit}"
        else:
            text = f"{self.label}: {self.done} {self.unit}"
        self.stream.write(text + end)
        self.stream.flush()


@contextmanager
def _opened(path: str, mode: str) -> Iterator[BinaryIO]:
    """The file at `path`, or stdin/stdout for `-` (flushed, never closed)."""
    if path != "-":
        with open(path, mode) as handle:
            yield handle  # type: ignore[misc]
        return
    std = sys.stdout.buffer if "w" in mode else sys.stdin.buffer
    yield std
    if "w" in mode:
        std.flush()


# -- dump -------------------------------------------------------------------------------------

def dump_lines(store: Store, db_name: str) -> Iterator[tuple[str, bytes]]:
    """(doc id, JSON line) for each live leaf revision, in document id order."""
    after: str | None = None
    while True:
        with store.engine.transaction() as conn:
            dbid = reads.db_id(conn, db_name)
            rows = reads.id_range(conn, dbid, start=after, end=None, inclusive_end=True,
                                  descending=False, limit=PAGE, skip=0)
            fetched = len(rows)
            if after is not None and rows and rows[0].id == after:
                rows = rows[1:]
            trees = {row.id: revtree.from_json(orjson.loads(row.tree_json)) for row in rows}
            pairs = [(row.id, rev) for row in rows for rev in _live_leaves(trees[row.id], row)]
            packed = reads.bodies_for(conn, dbid, pairs)
        for doc_id, rev in pairs:
            if (doc_id, rev) in packed:
                body = store.layer.body_of(packed[(doc_id, rev)])
                extra = [("_revisions", render.revisions(trees[doc_id], rev))]
                yield doc_id, render.doc_bytes(doc_id, rev, body, extra=extra) + b"\n"
        if fetched < PAGE or not rows:
            return
        after = rows[-1].id


def _live_leaves(tree: revtree.RevTree, row: reads.Row) -> list[str]:
    """The winner first, then the live conflicts."""
    return [row.winner, *(rev for rev in revtree.conflicts(tree) if rev != row.winner)]


def dump_command(settings: Settings, args: argparse.Namespace) -> int:
    store = open_store(settings)
    total = store.db_info(args.db).doc_count
    progress = Progress(f"dump {args.db}", total, "docs", None if args.quiet else sys.stderr)
    count, docs, last = 0, 0, ""
    with _opened(args.output, "wb") as out:
        for doc_id, line in dump_lines(store, args.db):
            out.write(line)
            count += 1
            if doc_id != last:
                docs, last = docs + 1, doc_id
            progress.advance(1, docs)
    progress.finish(f"{count} revisions of {total} documents")
    return 0


# -- load -------------------------------------------------------------------------------------

@dataclass
class LoadReport:
    """What a load did, line by line."""

    written: int = 0
    skipped: int = 0
    conflicts: list[str] = field(default_factory=list)  # refused: the doc exists, rev differs
    invalid: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)
    in_conflict: set[str] = field(default_factory=set)  # now holding conflicting leaves


def load_lines(store: Store, db_name: str, lines: Iterable[bytes], *, batch: int = BATCH,
               report: LoadReport | None = None) -> Iterator[LoadReport]:
    """Load JSON lines in batches; yields the running report after each batch."""
    report = report or LoadReport()
    pending: list[tuple[int, dict[str, Any]]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            report.invalid.append((number, f"not JSON: {exc}"))
            continue
        if not isinstance(doc, dict) or not isinstance(doc.get("_id"), str):
            report.invalid.append((number, "not a JSON object with a string _id"))
            continue
        pending.append((number, doc))
        if len(pending) >= batch:
            _load_batch(store, db_name, pending, report)
            pending = []
            yield report
    if pending:
        _load_batch(store, db_name, pending, report)
    yield report


def _load_batch(store: Store, db_name: str, lines: list[tuple[int, dict[str, Any]]],
                report: LoadReport) -> None:
    with store.engine.transaction() as conn:
        known = reads.doc_infos(conn, reads.db_id(conn, db_name), [d["_id"] for _, d in lines])
    replicated: list[Edit] = []
    interactive: list[Edit] = []
    for number, doc in lines:
        has_rev = "_rev" in doc or "_revisions" in doc
        try:
            edit = make_edit(doc["_id"], doc, new_edits=not has_rev)
            leaf = (edit.revisions[0] if edit.revisions else edit.rev) if has_rev else \
                new_rev_id(edit.fields, deleted=edit.deleted, parent=None)
        except (StoreError, TypeError, ValueError) as exc:
            report.invalid.append((number, f"{doc['_id']}: {exc}"))
            continue
        info = known.get(edit.id)
        if info is not None and leaf in info.tree:
            report.skipped += 1
        else:
            (replicated if has_rev else interactive).append(edit)
    db = store.db(db_name)
    for edits, new_edits in ((replicated, False), (interactive, True)):
        if not edits:
            continue
        for result in db.write(edits, new_edits=new_edits):
            if result.ok:
                report.written += 1
            else:
                report.conflicts.append(result.id)
    if replicated:
        with store.engine.transaction() as conn:
            after = reads.doc_infos(conn, reads.db_id(conn, db_name), [e.id for e in replicated])
        report.in_conflict.update(i for i, info in after.items() if revtree.conflicts(info.tree))


def load_command(settings: Settings, args: argparse.Namespace) -> int:
    store = open_store(settings)
    validate_db_name(args.db)
    try:
        store.create_db(args.db)
        print(f"load {args.db}: created the database", file=sys.stderr)
    except DbExists:
        pass
    report = LoadReport()
    with _opened(args.file, "rb") as source:
        size = os.fstat(source.fileno()).st_size if args.file != "-" else None
        progress = Progress(f"load {args.db}", size or None, "bytes",
                            None if args.quiet else sys.stderr)
        for report in load_lines(store, args.db, source, batch=max(1, args.batch_size)):
            progress.advance(0, source.tell() if size else report.written + report.skipped)
    for number, reason in report.invalid:
        print(f"line {number}: {reason}", file=sys.stderr)
    for doc_id in report.conflicts:
        print(f"conflict: {doc_id} exists with another revision; not loaded", file=sys.stderr)
    if report.in_conflict:
        print(f"{len(report.in_conflict)} documents now hold conflicting revisions "
              f"(GET /{args.db}/ID?conflicts=true): "
              + ", ".join(sorted(report.in_conflict)[:20]), file=sys.stderr)
    progress.finish(f"{report.written} written, {report.skipped} already there, "
                    f"{len(report.conflicts)} conflicts, {len(report.invalid)} invalid lines")
    return 1 if report.conflicts or report.invalid else 0


# -- compact ----------------------------------------------------------------------------------

def compact_command(settings: Settings, args: argparse.Namespace) -> int:
    store = open_store(settings)
    before = store.db_info(args.db).body_bytes
    started = time.monotonic()
    print(f"compact {args.db}: {before} bytes of bodies ...", file=sys.stderr)
    store.compact(args.db)
    after = store.db_info(args.db).body_bytes
    print(f"compact {args.db}: {before} -> {after} bytes in "
          f"{time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0
