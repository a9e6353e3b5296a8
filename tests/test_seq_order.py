"""Concurrent writers never make a change appear behind a seq a changes reader has passed."""

from __future__ import annotations

import threading
import time
from typing import Any

from settee.store import Store, make_edit
from settee.store.reads import changes_since, db_id

WRITERS = 4
DOCS_PER_WRITER = 6
WRITE_SECONDS = 1.5
JOIN_SECONDS = 20.0


def _writer(store: Store, name: str, me: int, stop: threading.Event,
            acked: dict[str, str], failures: list[BaseException]) -> None:
    """Create and update this writer's own docs (so no conflicts) until told to stop."""
    db = store.db(name)
    revs: dict[str, str] = {}
    n = 0
    try:
        while not stop.is_set():
            batch = [f"w{me}-{(n + k) % DOCS_PER_WRITER}" for k in range(1 + n % 3)]
            batch = list(dict.fromkeys(batch))
            edits = []
            for doc_id in batch:
                doc: dict[str, Any] = {"n": n, "by": me}
                if doc_id in revs:
                    doc["_rev"] = revs[doc_id]
                edits.append(make_edit(doc_id, doc))
            for result in db.write(edits):
                assert result.error is None, result.error
                assert result.rev is not None
                revs[result.id] = result.rev
                acked[result.id] = result.rev  # acknowledged: the write call has returned
            n += 1
    except BaseException as exc:  # noqa: BLE001 - reported by the main thread
        failures.append(exc)


def _read(store: Store, dbid: int, since: int) -> tuple[list[Any], list[Any]]:
    """In one transaction: the changes after `since` and the whole feed from 0."""
    with store.engine.transaction() as tx:
        new = changes_since(tx, dbid, since, limit=None)
        full = changes_since(tx, dbid, 0, limit=None)
    return new, full


def _reader(store: Store, dbid: int, stop: threading.Event, seen: dict[str, tuple[int, str]],
            state: dict[str, Any], failures: list[BaseException]) -> None:
    """Follow the feed; fail if a change at or below the seq already passed shows up later."""
    since = 0
    try:
        while True:
            finished = stop.is_set()  # read once more after the writers are done
            new, full = _read(store, dbid, since)
            seqs = [row.seq for row in new]
            assert all(seq > since for seq in seqs), (since, seqs)
            assert seqs == sorted(set(seqs)), seqs
            for row in full:
                if row.seq <= since:
                    # Anything at or below `since` must be a change this reader already saw.
                    assert seen.get(row.id) == (row.seq, row.winner), (
                        f"late change {row.id}@{row.seq} behind passed seq {since}")
            for row in new:
                seen[row.id] = (row.seq, row.winner)
            if seqs:
                since = seqs[-1]
            state["reads"] += 1
            if finished:
                state["since"] = since
                return
    except BaseException as exc:  # noqa: BLE001 - reported by the main thread
        failures.append(exc)


def test_changes_reader_never_sees_a_seq_behind_one_it_passed(store: Store) -> None:
    store.create_db("seqs")
    with store.engine.transaction() as tx:
        dbid = db_id(tx, "seqs")
    stop_writers, stop_reader = threading.Event(), threading.Event()
    acked: dict[str, str] = {}
    seen: dict[str, tuple[int, str]] = {}
    state: dict[str, Any] = {"reads": 0, "since": None}
    failures: list[BaseException] = []
    writers = [threading.Thread(target=_writer, daemon=True,
                                args=(store, "seqs", me, stop_writers, acked, failures))
               for me in range(WRITERS)]
    reader = threading.Thread(target=_reader, daemon=True,
                              args=(store, dbid, stop_reader, seen, state, failures))
    reader.start()
    for thread in writers:
        thread.start()
    time.sleep(WRITE_SECONDS)
    stop_writers.set()
    for thread in writers:
        thread.join(JOIN_SECONDS)
    stop_reader.set()
    reader.join(JOIN_SECONDS)
    assert not any(t.is_alive() for t in [*writers, reader]), "a thread hung"
    if failures:
        raise failures[0]

    assert state["reads"] > 1
    assert len(acked) == WRITERS * DOCS_PER_WRITER
    # Every acknowledged write reached the reader, at its latest rev, with nothing left over.
    assert {doc_id: rev for doc_id, (_, rev) in seen.items()} == acked
    info = store.db_info("seqs")
    assert state["since"] == info.update_seq == max(seq for seq, _ in seen.values())
