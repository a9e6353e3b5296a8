"""settee.client: cached reads against HTTP reads, and `batch()` against single puts.

Usage: `.venv/bin/python bench/client_bench.py` (starts a settee on SQLite in a temporary
directory), or `--url http://host:5984` for a running server. Prints operations per second of
each side and their ratio; no assertion on times.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from settee.client import CachedDict, Database, Server


def rate(label: str, count: int, run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    per_second = count / (time.perf_counter() - started)
    print(f"  {label:<44} {per_second:>12,.0f} /s")
    return per_second


def reads(db: Database, keys: int, count: int) -> None:
    with db.batch() as batch:
        for i in range(keys):
            batch.put({"_id": f"k{i:05d}", "value": {"i": i, "tags": ["a", "b"], "n": i * 1.5}})
    rng = random.Random(1)
    picks = [f"k{rng.randrange(keys):05d}" for _ in range(count)]
    print(f"reads of {count} random keys among {keys}:")
    http = rate("HTTP GET (db[key])", count, lambda: [db[k] for k in picks] and None)
    manual = CachedDict(db, autosync=False)
    cached = rate("CachedDict, autosync=False", count, lambda: [manual[k] for k in picks] and None)
    auto = CachedDict(db, autosync=True, interval=1.0)
    synced = rate("CachedDict, autosync=True, interval=1 s", count,
                  lambda: [auto[k] for k in picks] and None)
    print(f"  ratio cached/HTTP: {cached / http:,.0f}x (autosync: {synced / http:,.0f}x)")


def writes(server: Server, count: int) -> None:
    print(f"writes of {count} new documents:")
    single = server.create("w_" + uuid.uuid4().hex[:8])

    def singles() -> None:
        for i in range(count):
            single[f"d{i:05d}"] = {"i": i}
    one = rate("single PUTs (db[id] = doc)", count, singles)
    batched = server.create("w_" + uuid.uuid4().hex[:8])

    def batch() -> None:
        with batched.batch(chunk_size=500) as b:
            for i in range(count):
                b.put({"_id": f"d{i:05d}", "i": i})
    many = rate("batch(chunk_size=500)", count, batch)
    print(f"  ratio batch/single: {many / one:,.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running server (default: start settee on SQLite)")
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--reads", type=int, default=5000)
    parser.add_argument("--writes", type=int, default=2000)
    args = parser.parse_args()
    live = None
    url = args.url
    if url is None:
        from live import LiveServer
        live = LiveServer.settee(Path(tempfile.mkdtemp(prefix="client-bench-"))).start()
        url = live.url
    try:
        server = Server(url)
        reads(server.create("r_" + uuid.uuid4().hex[:8]), args.keys, args.reads)
        writes(server, args.writes)
    finally:
        if live is not None:
            live.stop()


if __name__ == "__main__":
    main()
