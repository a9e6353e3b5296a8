"""Index housekeeping: `_info` figures, and `_view_cleanup` dropping indexes no design doc uses."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from ..store import reads
from . import design, storage
from .design import DesignDoc, DesignError
from .reduce import loads

if TYPE_CHECKING:
    from .service import ViewService


def info(service: ViewService, db_name: str, ddoc: DesignDoc) -> dict[str, Any]:
    """`GET /{db}/_design/{ddoc}/_info`'s `view_index` object (read only: builds nothing)."""
    sigs = sorted({v.signature for v in ddoc.views.values()})
    with service.store.engine.transaction() as conn:
        dbid, _ = storage.db_state(conn, db_name)
        states = storage.find_indexes(conn, dbid, sigs)
    seqs = [states[s].seq if s in states else 0 for s in sigs]
    size = sum(s.size for s in states.values())
    return {
        "signature": ddoc.signature,
        "language": ddoc.language,
        "update_seq": min(seqs) if seqs else 0,
        "purge_seq": 0,
        "sizes": {"active": size, "external": size, "file": size},
        "updater_running": False,
        "compact_running": False,
        "waiting_clients": 0,
        "waiting_commit": False,
    }


def used_signatures(service: ViewService, db_name: str) -> set[str]:
    """Signatures of every view of every live design doc of the database."""
    engine = service.store.engine
    used: set[str] = set()
    after: str | None = None
    while True:
        with engine.transaction() as conn:
            dbid, _ = storage.db_state(conn, db_name)
            fetched = reads.id_range(conn, dbid, start=after, end=None, inclusive_end=True,
                                     descending=False, limit=200, skip=0, prefix="_design/")
            rows = [r for r in fetched if r.id != after]
            bodies = reads.bodies_for(conn, dbid, [(r.id, r.winner) for r in rows])
        for row in rows:
            packed = bodies.get((row.id, row.winner))
            if packed is None:
                continue
            try:
                parsed = design.parse(row.id, row.winner,
                                      loads(service.store.layer.body_of(packed)))
            except (DesignError, ValueError):
                continue  # a broken design doc uses no index
            used.update(v.signature for v in parsed.views.values())
        if len(fetched) < 200 or not rows:
            return used
        after = rows[-1].id


def cleanup(service: ViewService, db_name: str) -> int:
    """Drop the database's indexes that no current design doc uses; how many were dropped."""
    engine = service.store.engine
    used = used_signatures(service, db_name)
    with engine.transaction() as conn:
        dbid, _ = storage.db_state(conn, db_name)
        unused = [s.id for s in storage.all_indexes(conn, dbid) if s.signature not in used]
    for index_id in unused:
        # Page by page, each its own short write, so the write lock is never held for long.
        while not engine.run(partial(storage.delete_index, index_id=index_id), write=True):
            pass
    return len(unused)
