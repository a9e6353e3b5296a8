"""`CachedDict`: a dict kept in memory, brought up to date from `_changes` (durabledict's design).

Each key is a document id and its value is stored in the document through an `Encoding`. Reads
come from memory; `sync()` applies the changes after the last seq this cache saw (the first sync
starts at 0, so loading is the same operation as catching up, never a reload). Writes go to the
server first and then to memory. Why this stays equal to the server under concurrent writers:
the feed returns every document changed after the cache's seq at its latest revision, so a sync
overwrites anything older, including this cache's own writes that others have since replaced;
and one lock keeps a sync from running between a write and its update of memory, so a write
never puts back a revision older than one a sync has already applied.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

from .changes import changes
from .encodings import Encoding, JSONEncoding
from .errors import Conflict, NotFound
from .transport import Doc

if TYPE_CHECKING:
    from .database import Database

WRITE_ATTEMPTS = 10  # an assignment retries on conflict with the rev the conflict reported


class CachedDict(MutableMapping[str, Any]):
    """A mutable mapping over one database, read from memory.

    >>> prefs = CachedDict(server["prefs"], autosync=True, interval=5.0)  # doctest: +SKIP
    >>> prefs["theme"] = {"dark": True}      # written to the server, then cached
    >>> prefs["theme"]["dark"]               # from memory; synced first if 5 s have passed
    True

    `autosync=True` syncs before a read when `interval` seconds have passed since the last
    sync; `autosync=False` syncs only when `sync()` is called (and once, on creation).
    Assignment is last-writer-wins, as for a dict: a conflict is retried on the current rev.
    Design documents are not part of the mapping. One instance may be shared by threads.
    """

    def __init__(self, db: Database, *, autosync: bool = True, interval: float = 1.0,
                 encoding: Encoding | None = None, batch_size: int = 1000) -> None:
        self.db = db
        self.autosync = autosync
        self.interval = interval
        self.encoding: Encoding = encoding or JSONEncoding()
        self.batch_size = batch_size
        self._bodies: dict[str, tuple[str, Doc]] = {}  # id -> (rev, body without _id/_rev)
        self._seq: Any = 0
        self._synced_at = float("-inf")
        self._lock = threading.RLock()
        self.sync()

    @property
    def seq(self) -> Any:
        """The last seq of the changes feed this cache has applied."""
        return self._seq

    def rev(self, key: str) -> str | None:
        """The cached rev of `key` (None when absent)."""
        entry = self._bodies.get(key)
        return entry[0] if entry else None

    # -- keeping up -------------------------------------------------------------------------

    def sync(self) -> int:
        """Apply every change after `seq`, in pages; returns how many changes were applied."""
        with self._lock:
            applied = 0
            while True:
                answer = changes(self.db.transport, self.db.name, since=self._seq,
                                 include_docs=True, limit=self.batch_size)
                rows = answer.get("results") or []
                for row in rows:
                    self._apply(row)
                applied += len(rows)
                self._seq = answer.get("last_seq", self._seq)
                pending = answer.get("pending")
                if not rows or (pending == 0 if isinstance(pending, int)
                                else len(rows) < self.batch_size):
                    break
            self._synced_at = time.monotonic()
            return applied

    def _apply(self, row: Doc) -> None:
        key = row["id"]
        if key.startswith("_design/"):
            return
        doc = row.get("doc")
        if row.get("deleted") or not isinstance(doc, dict):
            self._bodies.pop(key, None)
            return
        body = {name: value for name, value in doc.items() if name not in ("_id", "_rev")}
        self._bodies[key] = (doc["_rev"], body)

    def _fresh(self) -> None:
        if self.autosync and time.monotonic() - self._synced_at >= self.interval:
            self.sync()

    # -- reading ----------------------------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        self._fresh()
        return self.encoding.decode(self._bodies[key][1])

    def __contains__(self, key: object) -> bool:
        self._fresh()
        return key in self._bodies

    def __iter__(self) -> Iterator[str]:
        self._fresh()
        return iter(list(self._bodies))

    def __len__(self) -> int:
        self._fresh()
        return len(self._bodies)

    def __repr__(self) -> str:
        return f"<CachedDict {self.db.name!r}: {len(self._bodies)} keys at seq {self._seq!r}>"

    # -- writing ----------------------------------------------------------------------------

    def __setitem__(self, key: str, value: Any) -> None:
        if key.startswith("_design/"):
            raise KeyError(f"{key!r}: design documents are not values")
        body = self.encoding.encode(value)
        with self._lock:
            rev = self.rev(key)
            for attempt in range(WRITE_ATTEMPTS):
                doc = dict(body)
                if rev is not None:
                    doc["_rev"] = rev
                try:
                    new_rev = self.db.put(key, doc)
                except Conflict as exc:
                    if attempt == WRITE_ATTEMPTS - 1:
                        raise
                    rev = exc.current_rev
                    continue
                self._bodies[key] = (new_rev, body)
                return

    def pop(self, key: str, *default: Any) -> Any:
        """Remove `key` and return its value (or `default`), atomically for this instance."""
        with self._lock:
            self._fresh()
            if key not in self._bodies:
                if default:
                    return default[0]
                raise KeyError(key)
            value = self.encoding.decode(self._bodies[key][1])
            del self[key]
            return value

    def setdefault(self, key: str, default: Any = None) -> Any:
        """The value of `key`, after storing `default` there if it had none (atomically for
        this instance)."""
        with self._lock:
            self._fresh()
            if key not in self._bodies:
                self[key] = default
            return self.encoding.decode(self._bodies[key][1])

    def __delitem__(self, key: str) -> None:
        with self._lock:
            if key not in self._bodies:
                raise KeyError(key)
            rev: str | None = self._bodies[key][0]
            for attempt in range(WRITE_ATTEMPTS):
                try:
                    if rev is not None:
                        self.db.delete(key, rev)
                    break
                except NotFound:
                    break  # deleted meanwhile by someone else: the key is gone either way
                except Conflict as exc:
                    if attempt == WRITE_ATTEMPTS - 1:
                        raise
                    rev = exc.current_rev
            self._bodies.pop(key, None)
