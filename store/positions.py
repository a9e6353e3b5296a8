"""Where an id stands among a database's live docs, remembered per database state.

`_all_docs` reports `offset`: how many rows sort before the first one it returns. CouchDB reads
that from its B-tree's reductions; a SQL index has no such counts, so it is a `count(*)` over
every id before the start key, which grows with the database. Paging clients ask for the next
page with `startkey=<last id>`, and the page before already told us where that id stands. So
each answer remembers its last row's position, keyed by everything that could move it (the
database's id and instance, its update and purge seqs, the id prefix and the direction), and the
next page's offset is a lookup. Any write changes the update seq, so a stale entry is never hit;
the cache is per process and bounded.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import NamedTuple

CAPACITY = 4096


class Where(NamedTuple):
    """An id in one state of one database, seen in one direction under one prefix."""

    db_id: int
    instance: str
    update_seq: int
    purge_seq: int
    prefix: str | None
    descending: bool
    doc_id: str


_known: OrderedDict[Where, int] = OrderedDict()
_lock = threading.Lock()


def before(where: Where) -> int | None:
    """How many live docs sort before `where.doc_id` in its direction, if remembered."""
    with _lock:
        count = _known.get(where)
        if count is not None:
            _known.move_to_end(where)
        return count


def remember(where: Where, count: int) -> None:
    """Remember that `count` live docs sort before `where.doc_id`."""
    with _lock:
        _known[where] = count
        _known.move_to_end(where)
        while len(_known) > CAPACITY:
            _known.popitem(last=False)


def forget_all() -> None:
    """Drop everything remembered (tests)."""
    with _lock:
        _known.clear()
