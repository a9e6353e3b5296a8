"""Bringing indexes up to the database seq, one batch of changes at a time, without holding locks.

Each batch goes through four steps, and only the last holds the write lock:

1. a short read transaction: the changes after the index seq (one row per document, at its
   latest seq) with their winning bodies, documents purged in that range, and the changed
   documents' old rows through the back-index;
2. the map functions, outside any transaction (JavaScript in one pool call per batch);
3. the new reductions of the keys the batch touched (`delta`), reading stored reductions (and,
   where no exact delta exists, the key's rows) in short read transactions, reduce functions
   again outside any transaction;
4. one short write transaction (`storage.apply`) that first moves each index's seq from the old
   value to the new one with a compare-and-set and then writes rows, reductions and counters.
   If another worker moved the seq first, nothing is written: the batch is discarded and re-read.

Views of one design doc that stand at the same seq are mapped together; a view that is behind
(new in the ddoc) catches up alone, its batches capped at the next view's seq, until they merge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from . import delta, mapper, storage
from .design import DesignDoc, ViewDef
from .storage import IndexState, LostRace, Plan

if TYPE_CHECKING:
    from .service import ViewService

CACHE_KEYS = 50_000
"""Most per-key reductions a refresh keeps in memory per index."""


def _unique(views: Sequence[ViewDef]) -> dict[str, ViewDef]:
    """One view per signature: identical views share an index."""
    out: dict[str, ViewDef] = {}
    for view in views:
        out.setdefault(view.signature, view)
    return out


@dataclass(frozen=True)
class Snapshot:
    """Index states by signature, with the database id and seq read in the same transaction."""

    states: dict[str, IndexState]
    dbid: int
    db_seq: int


def current(service: ViewService, db_name: str, views: Sequence[ViewDef]) -> Snapshot:
    """The views' index states as stored, creating the missing ones empty."""
    engine = service.store.engine
    sigs = list(_unique(views))
    while True:
        with engine.transaction() as conn:
            dbid, db_seq = storage.db_state(conn, db_name)
            states = storage.find_indexes(conn, dbid, sigs)
        missing = [s for s in sigs if s not in states]
        if not missing:
            return Snapshot(states, dbid, db_seq)
        engine.run(partial(storage.create_indexes, dbid=dbid, signatures=missing))


@dataclass
class Track:
    """What one refresh knows of an index besides its row; valid while its seq is ours.

    `fresh_until`: when this refresh found the index without rows, the database seq then. A
    document whose latest change is at or below it is met once in the whole refresh, so it has
    no old rows and the back-index need not be read for it (the whole first build).
    `reductions`: stored per-key reductions as this refresh last wrote them (None: no such key),
    so a long build does not read back every key it wrote; while `complete` (a fresh index whose
    cache was never trimmed) a key missing from it is a key the index does not have. Another
    worker advancing the seq, or a lost compare-and-set, throws the track away.
    """

    state: IndexState
    fresh_until: int
    reductions: dict[bytes, storage.Reduction | None] = field(default_factory=dict)
    complete: bool = False

    def __post_init__(self) -> None:
        self.complete = self.fresh_until >= 0


def refresh(service: ViewService, db_name: str, ddoc: DesignDoc, views: Sequence[ViewDef]
            ) -> Snapshot:
    """Bring every view's index up to the seq of the database; return the index states."""
    engine = service.store.engine
    by_sig = _unique(views)
    tracks: dict[int, Track] = {}
    while True:
        with engine.transaction() as conn:
            dbid, db_seq = storage.db_state(conn, db_name)
            states = storage.find_indexes(conn, dbid, list(by_sig))
        if len(states) < len(by_sig):  # new, or dropped by a concurrent cleanup
            current(service, db_name, views)
            continue
        stale = [s for s in states.values() if s.seq < db_seq]
        if not stale:
            return Snapshot(states, dbid, db_seq)
        lowest = min(s.seq for s in stale)
        group = []
        for state in stale:
            if state.seq != lowest:
                continue
            track = tracks.get(state.id)
            if track is None or track.state.seq != state.seq:
                track = tracks[state.id] = Track(state, db_seq if state.row_count == 0 else -1)
            track.state = state
            group.append((by_sig[state.signature], track))
        upto = min([s.seq for s in stale if s.seq > lowest] or [db_seq])
        if not _batch(service, db_name, ddoc, dbid, group, lowest, upto):
            for _, track in group:  # lost the race: what we knew may be stale
                tracks.pop(track.state.id, None)


def _batch(service: ViewService, db_name: str, ddoc: DesignDoc, dbid: int,
           group: list[tuple[ViewDef, Track]], since: int, upto: int) -> bool:
    """Read, map, reduce and apply one batch for views standing at `since`; False if lost."""
    engine = service.store.engine
    size = service.settings.batch_size
    with engine.transaction() as conn:
        docs = storage.read_changes(conn, dbid, since, upto, size,
                                    service.store.layer.body_of)
        target = docs[-1].seq if len(docs) == size else upto
        purged = storage.purged_ids(conn, dbid, since, target)
        touched = list(dict.fromkeys([d.id for d in docs] + purged))
        old = {}
        for _, track in group:
            ids = list(dict.fromkeys([d.id for d in docs if d.seq > track.fresh_until] + purged))
            old[track.state.id] = storage.old_rows(conn, track.state.id, ids) if ids else []
    views = [view for view, _ in group]
    emits = service.map_batch(ddoc, views, docs, db_name) if docs else [[] for _ in views]
    plans = []
    touched_set = set(touched)
    for (view, track), view_emits in zip(group, emits):
        new = mapper.to_rows(view, docs, view_emits) if docs else []
        plans.append(_plan(service, db_name, ddoc, view, track, old[track.state.id], new,
                           touched_set, target))
    try:
        engine.run(lambda conn: storage.apply(conn, plans), write=True)
    except LostRace:
        return False  # another worker applied this range first; the caller re-reads
    for (_, track), plan in zip(group, plans):
        _remember(track, plan)
    return True


def _remember(track: Track, plan: Plan) -> None:
    """Update the track with what the batch wrote."""
    old = track.state
    track.state = IndexState(old.id, old.signature, plan.new_seq, old.row_count + plan.row_delta,
                             old.size + plan.bytes_delta, plan.total)
    cache = track.reductions
    if len(cache) > CACHE_KEYS:
        cache.clear()
        track.complete = False
    for _, kb, key_json, red, count, uniform in plan.red_upsert:
        cache[kb] = storage.Reduction(kb, key_json, red, count, uniform)
    for kb in plan.red_delete:
        cache[kb] = None
    for kb in plan.reread_first:
        cache.pop(kb, None)  # its shown key was re-read in the database
        track.complete = False


def _plan(service: ViewService, db_name: str, ddoc: DesignDoc, view: ViewDef,
          track: Track, old: list[storage.OldRow], new: list[mapper.Row],
          touched: set[str], target: int) -> Plan:
    state = track.state
    plan = Plan(state.id, state.seq, target)
    plan.delete_docs = sorted({o.doc_id for o in old})
    plan.insert = [(state.id, r.key_bytes, r.doc_id, r.dup, r.key_json, r.value_json)
                   for r in new]
    plan.row_delta = len(new) - len(old)
    plan.bytes_delta = (sum(len(r.key_json) + len(r.value_json) for r in new)
                        - sum(len(o.key_json) + len(o.value_json) for o in old))
    if view.reduce is None or (not old and not new):
        plan.total = state.total
        return plan
    reducer = service.reducer(ddoc, view, db_name)
    changes = delta.by_key(old, new)
    engine = service.store.engine
    stored = {}
    missing = []
    for kb in changes:
        if kb in track.reductions:
            found = track.reductions[kb]
            if found is not None:
                stored[kb] = found
        elif not track.complete:
            missing.append(kb)
    if missing:
        with engine.transaction() as conn:
            stored.update(storage.reductions(conn, state.id, missing))

    def read_rows(keys: list[bytes]) -> dict[bytes, delta.KeyRows]:
        with engine.transaction() as conn:
            return {kb: storage.key_rows(conn, state.id, kb) for kb in keys}

    keys = delta.plan_keys(reducer, changes, stored, touched, read_rows)
    plan.red_delete = keys.delete
    plan.red_upsert = [(state.id, *row) for row in keys.upsert]
    plan.reread_first = keys.reread_first
    plan.total = delta.plan_total(reducer, state.row_count, state.total, old, new,
                                  state.row_count + plan.row_delta)
    return plan
