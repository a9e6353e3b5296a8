"""First requests racing in several workers on a fresh SQLite store (found by the live
reliability tests: 500 `unknown_error` from `store.setup()` while 4 workers took their first
requests at once)."""

from __future__ import annotations

import threading
from pathlib import Path

from reliability import figure
from settee.store import Store, StoreConfig

ROUNDS = 10
RACERS = 8

# Found by the live reliability tests (a 500 from store.setup() while 4 workers took their first
# requests at once): create_all on SQLite ran without the writers' lock. Fixed in
# store/engine.py create_schema; this test keeps it fixed. Live tests still create a fresh store's
# schema first (`reliability.create_schema_first`).


def test_concurrent_setup_of_a_fresh_sqlite_store(tmp_path: Path) -> None:
    errors: list[str] = []
    for n in range(ROUNDS):
        url = f"sqlite:///{tmp_path}/s{n}.sqlite"
        stores = [Store(StoreConfig(url=url)) for _ in range(RACERS)]
        barrier = threading.Barrier(RACERS)

        def setup(store: Store, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            try:
                store.setup()
            except Exception as exc:  # noqa: BLE001 - the defect, counted
                errors.append(repr(exc)[:200])

        threads = [threading.Thread(target=setup, args=(s,)) for s in stores]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        for s in stores:
            s.close()
    figure("sqlite", "concurrent fresh-store setups that failed (defect)", len(errors))
    assert errors == [], errors[:3]

