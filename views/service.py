"""Per-store view runtime: settings, the Python registry, the JS pool, locks, caches, warming.

One `ViewService` exists per `Store` (and process), made lazily by `service_for`, so engines and
JS processes are never shared across `fork()`. It reads design docs (caching their parsed form by
rev), runs the indexer under one lock per design doc (other processes are kept out by the
compare-and-set in `storage.apply`), and optionally keeps indexes warm from a background thread:
views consume the changes feed and never hook the write path.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..store import Store, reads
from ..store.errors import NotFound
from . import design, indexer, mapper, schema
from .builtin_reduce import builtin
from .design import DesignDoc, DesignError, ViewDef
from .python_fn import Registry
from .reduce import Guarded, JsReduce, PythonReduce, loads

log = logging.getLogger("settee.views")


@dataclass(frozen=True)
class ViewSettings:
    """What views read from the server's settings (names as declared there, `view_` prefixed)."""

    python_functions: str = ""
    js_pool_size: int = 2
    js_time_limit_ms: int = 5000
    js_memory_limit_mb: int = 64
    js_max_contexts: int = 64
    background_indexing: bool = False
    background_interval_ms: int = 1000
    batch_size: int = 1000

    @classmethod
    def from_settings(cls, settings: Any) -> ViewSettings:
        """Read the server's declared settings (`python_views`, `js_pool_size`, `js_time_limit`,
        `js_memory_limit`, `background_indexing`); a `view_<field>` value, as tests set, wins."""
        declared: dict[str, Any] = {}
        python_views = getattr(settings, "python_views", None)
        if python_views:
            declared["python_functions"] = " ".join(python_views)
        for field, name, convert in (
            ("js_pool_size", "js_pool_size", int),
            ("js_time_limit_ms", "js_time_limit", lambda v: int(float(v) * 1000)),
            ("js_memory_limit_mb", "js_memory_limit", lambda v: max(1, int(v) >> 20)),
            ("background_indexing", "background_indexing", bool),
        ):
            value = getattr(settings, name, None)
            if value is not None:
                declared[field] = convert(value)
        values = {}
        for name, default in VIEW_SETTINGS.__dict__.items():
            override = getattr(settings, "view_" + name, None)
            values[name] = override if override is not None else declared.get(name, default)
        return cls(**values)


VIEW_SETTINGS = ViewSettings()


class ViewService:
    """Everything views keep per store and process."""

    def __init__(self, store: Store, settings: ViewSettings) -> None:
        self.store = store
        self.settings = settings
        self.registry = Registry(settings.python_functions)
        self._pool: Any = None
        self._js: Any = None
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._guard = threading.Lock()
        self._ddocs: OrderedDict[tuple[str, str, str], DesignDoc] = OrderedDict()
        self._totals: OrderedDict[tuple[int, int], Any] = OrderedDict()
        self._executor: ThreadPoolExecutor | None = None
        self._watched: set[tuple[str, str]] = set()
        self._warmer: threading.Thread | None = None
        self._stop = threading.Event()
        self.lag_listener: Callable[[str, str, int], None] | None = None
        store.setup()  # the store's tables first: the view tables reference them
        schema.create(store.engine)

    # -- design documents ---------------------------------------------------------------------

    def design(self, db_name: str, ddoc_id: str) -> DesignDoc:
        """The current design doc (`NotFound` missing/deleted, `DbNotFound`), parsed."""
        with self.store.engine.transaction() as conn:
            info, packed = reads.doc_with_winner(conn, db_name, ddoc_id)
        if info is None or packed is None:
            raise NotFound("missing")
        if info.deleted:
            raise NotFound("deleted")
        key = (db_name, ddoc_id, info.winner)
        with self._guard:
            found = self._ddocs.get(key)
            if found is not None:
                self._ddocs.move_to_end(key)
                return found
        body = loads(self.store.layer.body_of(packed))
        parsed = design.parse(ddoc_id, info.winner, body)
        with self._guard:
            self._ddocs[key] = parsed
            while len(self._ddocs) > 256:
                self._ddocs.popitem(last=False)
        return parsed

    # -- indexing -----------------------------------------------------------------------------

    def refresh(self, db_name: str, ddoc: DesignDoc) -> indexer.Snapshot:
        """Bring every view of the ddoc up to the database's seq; index states by signature."""
        mapper.check_language(ddoc)
        with self._lock(db_name, ddoc.id):
            snap = indexer.refresh(self, db_name, ddoc, list(ddoc.views.values()))
        self._report_lag(db_name, ddoc, snap)
        return snap

    def current(self, db_name: str, ddoc: DesignDoc) -> indexer.Snapshot:
        """The index states as they are (creating missing empty indexes), without updating."""
        snap = indexer.current(self, db_name, list(ddoc.views.values()))
        self._report_lag(db_name, ddoc, snap)
        return snap

    def _report_lag(self, db_name: str, ddoc: DesignDoc, snap: indexer.Snapshot) -> None:
        """Tell `lag_listener` (the server's metrics) how many seqs the ddoc's most behind index
        trails its database by, as this refresh or query saw it."""
        if self.lag_listener is not None and snap.states:
            behind = snap.db_seq - min(state.seq for state in snap.states.values())
            self.lag_listener(db_name, ddoc.id.removeprefix("_design/"), max(0, behind))

    def _lock(self, db_name: str, ddoc_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault((db_name, ddoc_id), threading.Lock())

    def map_batch(self, ddoc: DesignDoc, views: Sequence[ViewDef], docs: Sequence[Any],
                  db_name: str) -> list[mapper.Emits]:
        """Run the views' map functions over a batch of documents."""
        if ddoc.language == "python":
            return mapper.run_python(ddoc, views, docs, self.registry.resolve)
        if ddoc.language == "query":
            return mapper.run_query(views, docs)
        pool, _ = self.js()
        return mapper.run_js(ddoc, views, docs, pool, _ctx_key(db_name, ddoc))

    def reducer(self, ddoc: DesignDoc, view: ViewDef, db_name: str) -> Guarded:
        """The view's reduce function, ready for the indexer and the query."""
        assert view.reduce is not None
        found = builtin(view.reduce) if view.reduce.startswith("_") else None
        if found is not None:
            return Guarded(found)
        if view.reduce.startswith("_"):
            raise DesignError(400, "invalid_design_doc",
                              f"Unknown built-in reduce function: {view.reduce}")
        if ddoc.language == "python":
            return Guarded(PythonReduce(view.reduce, self.registry.resolve(view.reduce)))
        pool, js = self.js()
        return Guarded(JsReduce(pool, _ctx_key(db_name, ddoc), ddoc.body, view.reduce,
                                js.ReduceOverflow))

    def js(self) -> tuple[Any, Any]:
        """The JS pool of this process (started on first use) and the `views.js` module."""
        with self._guard:
            if self._pool is None:
                try:
                    from . import js  # owned by the JS runner; absent in builds without it
                except ImportError:
                    raise DesignError(501, "not_implemented", "JavaScript views are not "
                                      "available in this build") from None
                s = self.settings
                self._pool = js.JsPool(s.js_pool_size, s.js_time_limit_ms / 1000,
                                       s.js_memory_limit_mb * 1024 * 1024, s.js_max_contexts)
                self._js = js
            return self._pool, self._js

    def cached_total(self, index_id: int, seq: int) -> Any:
        """A whole-view reduction computed earlier for this index at this seq, or None."""
        with self._guard:
            return self._totals.get((index_id, seq))

    def remember_total(self, index_id: int, seq: int, total: Any) -> None:
        """Keep a whole-view reduction that had to be computed (its index keeps none exact)."""
        with self._guard:
            self._totals[(index_id, seq)] = total
            while len(self._totals) > 128:
                self._totals.popitem(last=False)

    # -- background work ----------------------------------------------------------------------

    def later(self, db_name: str, ddoc_id: str) -> None:
        """Refresh a design doc's indexes in the background (`update=lazy`)."""
        with self._guard:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="settee-views")
            executor = self._executor
        executor.submit(self._quiet_refresh, db_name, ddoc_id)

    def watch(self, db_name: str, ddoc_id: str) -> None:
        """Keep this design doc warm from now on, if background indexing is on."""
        if not self.settings.background_indexing:
            return
        with self._guard:
            self._watched.add((db_name, ddoc_id))
            if self._warmer is None:
                self._warmer = threading.Thread(target=self._warm, name="settee-views-warmer",
                                                daemon=True)
                self._warmer.start()

    def _warm(self) -> None:
        while not self._stop.wait(self.settings.background_interval_ms / 1000):
            with self._guard:
                watched = sorted(self._watched)
            for db_name, ddoc_id in watched:
                if not self._quiet_refresh(db_name, ddoc_id):
                    with self._guard:
                        self._watched.discard((db_name, ddoc_id))

    def _quiet_refresh(self, db_name: str, ddoc_id: str) -> bool:
        try:
            self.refresh(db_name, self.design(db_name, ddoc_id))
            return True
        except Exception as exc:  # noqa: BLE001  a background refresh logs, never raises
            log.warning("background refresh of %s/%s failed: %s", db_name, ddoc_id, exc)
            return False

    def close(self) -> None:
        """Stop background threads and JS processes."""
        self._stop.set()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        if self._pool is not None and hasattr(self._pool, "close"):
            self._pool.close()


def _ctx_key(db_name: str, ddoc: DesignDoc) -> str:
    """The JS context of a design doc: per database, ddoc id and rev, so an edit starts afresh
    and two databases never share globals (CVE-2023-26268)."""
    return f"{db_name}\t{ddoc.id}\t{ddoc.rev}"


_services: weakref.WeakKeyDictionary[Store, tuple[int, ViewService]] = weakref.WeakKeyDictionary()
_services_lock = threading.Lock()


def service_for(store: Store, settings: ViewSettings | None = None) -> ViewService:
    """The view service of this store in this process (made on first use)."""
    with _services_lock:
        found = _services.get(store)
        if found is not None and found[0] == os.getpid():
            return found[1]
        service = ViewService(store, settings or VIEW_SETTINGS)
        _services[store] = (os.getpid(), service)
        return service
