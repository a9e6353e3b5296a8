"""Mango benchmark: `_find` queries/s over 100,000 docs with 8 connections, indexed and not.

Starts the hello-world ceiling and settee under gunicorn (as `bench/run.py` does, same worker
settings), loads `--docs` documents `{"group": "g0042", "n": 42, "group2": ..., "n2": ...}` through
`_bulk_docs`, creates json indexes on `group` and on `n` (the `...2` copies stay unindexed),
builds them with one query each (timed), then measures, each bracketed by hello-world runs:

- `find eq (index)`: `{"group": <random>}`, limit 25 (100 matching docs per group);
- `find range+sort (index)`: `{"n": {"$gte": x, "$lt": x + 1000}}`, sort `n`, limit 25;
- `find eq (no index)` and `find range (no index)`: the same selectors on `group2` and `n2`,
  which `_find` answers by scanning `_all_docs` (a sort needs an index, so the unindexed range
  query has none);

and prints the table of `bench/run.py` plus the indexed/unindexed ratios. Target (issue 8):
indexed `_find` >= 2,000 queries/s on this machine.

    .venv/bin/python bench/find.py
    .venv/bin/python bench/find.py --docs 20000 --duration 5
    SETTEE_DATABASE_URL=postgresql://postgres@127.0.0.1/empty_db .venv/bin/python bench/find.py
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from eventloop import Outcome
from http1 import Connection, Request, Response, Target
from loadgen import ClientSettings, Measurement, Workload, measure
from report import Result, RunInfo, table
from serve import SETTEE_WORKER, Gunicorn, GunicornSettings
from workloads import HelloGet

BENCH_DIR = Path(__file__).resolve().parent
DB = "find-bench"


@dataclass(frozen=True)
class FindQueries:
    """POST /db/_find with bodies drawn at random from a fixed list; each answer must hold docs."""

    name: str
    bodies: tuple[bytes, ...]
    seed: int = 0
    db: str = DB
    unit: str = "queries/s"

    def session(self, slot: int, slots: int, quota: int) -> _FindSession:
        rng = random.Random(self.seed * 1000 + slot)
        return _FindSession(f"/{self.db}/_find", [rng.choice(self.bodies) for _ in range(
            min(quota, 200_000))])


class _FindSession:
    def __init__(self, path: str, bodies: list[bytes]) -> None:
        self.path = path
        self.bodies = iter(bodies)
        self.last: Request = ("POST", path, None)

    def request(self) -> Request | None:
        body = next(self.bodies, None)
        if body is None:
            return None
        self.last = ("POST", self.path, body)
        return self.last

    def outcome(self, response: Response) -> Outcome:
        if response.status != 200 or b'"docs":[]' in response.body[:10]:
            return Outcome(0, False, f"{self.last[1]} {self.last[2]!r} -> {response.status} "
                           f"{response.body[:160]!r}")
        return Outcome(1)

    def keys(self) -> list[str]:
        return []


def _post(target: Target, path: str, body: object, method: str = "POST") -> dict[str, Any]:
    conn = Connection(target, timeout=600)
    try:
        response = conn.request(method, path, orjson.dumps(body) if body is not None else None)
    finally:
        conn.close()
    if response.status >= 300:
        raise RuntimeError(f"{method} {path} -> {response.status} {response.body[:300]!r}")
    answer: dict[str, Any] = orjson.loads(response.body)
    return answer


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--docs", type=int, default=100_000)
    p.add_argument("--duration", type=float, default=10.0, help="seconds per workload")
    p.add_argument("--hello-duration", type=float, default=3.0)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--client-procs", type=int, default=2)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--queries", type=int, default=500_000, help="count limit per workload")
    args = p.parse_args(argv)
    settings = GunicornSettings(SETTEE_WORKER, args.workers, args.threads)
    client = ClientSettings(procs=args.client_procs, timeout=120)
    groups = max(1, args.docs // 100)

    def timed(workload: Workload, target: Target, clients: int, count: int,
              duration: float) -> Measurement:
        _say(f"measuring {workload.name}: {clients} connections, {duration:g}s")
        m = measure(workload, target, clients=clients, count=count, duration=duration,
                    settings=client)
        _say(f"  {m.rate:,.0f} {m.unit} ({m.items:,} in {m.seconds:.2f}s, {m.errors} errors)")
        if m.errors:
            _say(f"  e.g. {m.samples[:2]}")
        return m

    with tempfile.TemporaryDirectory(prefix="settee-find-bench-") as tmpdir:
        tmp = Path(tmpdir)
        (tmp / "data").mkdir()
        hello = Gunicorn("hello:app", settings, log=tmp / "hello.log", pythonpath=BENCH_DIR)
        settee = Gunicorn("settee.server:create_app()", settings, log=tmp / "settee.log",
                          ready_path="/_up", env={"SETTEE_DATA_DIR": str(tmp / "data")})
        with hello, settee:
            target = settee.target
            _post(target, f"/{DB}", None, "PUT")
            _say(f"loading {args.docs:,} docs")
            started = time.perf_counter()
            batch = 1000
            for start in range(0, args.docs, batch):
                docs = [{"_id": f"d{i:08d}", "group": f"g{i % groups:05d}", "n": i,
                         "group2": f"g{i % groups:05d}", "n2": i, "pad": "x" * 40}
                        for i in range(start, min(start + batch, args.docs))]
                _post(target, f"/{DB}/_bulk_docs", {"docs": docs})
            _say(f"  loaded in {time.perf_counter() - started:.1f}s")
            builds = []
            for field in ("group", "n"):
                _post(target, f"/{DB}/_index", {"index": {"fields": [field]}, "ddoc": field,
                                                "name": field})
                started = time.perf_counter()
                _post(target, f"/{DB}/_find", {"selector": {field: {"$gt": None}}, "limit": 1})
                builds.append((field, time.perf_counter() - started))
                _say(f"  index on {field} built in {builds[-1][1]:.1f}s")
            rng = random.Random(1)
            eq = tuple(orjson.dumps({"selector": {"group": f"g{g:05d}"}, "limit": 25})
                       for g in rng.sample(range(groups), min(groups, 500)))
            span = max(1, args.docs - 1000)
            lows = [rng.randrange(span) for _ in range(500)]
            ranged = tuple(orjson.dumps({"selector": {"n": {"$gte": x, "$lt": x + 1000}},
                                         "sort": ["n"], "limit": 25}) for x in lows)
            eq2 = tuple(b.replace(b'"group"', b'"group2"') for b in eq)
            ranged2 = tuple(orjson.dumps({"selector": {"n2": {"$gte": x, "$lt": x + 1000}},
                                          "limit": 25}) for x in lows)
            hellos = [timed(HelloGet(), hello.target, args.clients, args.queries,
                            args.hello_duration)]
            results = []
            for name, bodies, duration in (
                ("find eq (index)", eq, args.duration),
                ("find range+sort (index)", ranged, args.duration),
                ("find eq (no index)", eq2, args.duration),
                ("find range (no index)", ranged2, args.duration),
            ):
                m = timed(FindQueries(name, bodies), target, args.clients, args.queries,
                          duration)
                hellos.append(timed(HelloGet(), hello.target, args.clients, args.queries,
                                    args.hello_duration))
                results.append(Result(m, hellos[-2], hellos[-1]))
    info = RunInfo(target.display, f"settee started here, {args.docs:,} docs",
                   settings.display, f"bench/http1.py, {args.client_procs} client processes",
                   DB, True)
    print(table(info, results))
    for field, seconds in builds:
        print(f"index build on {field}: {args.docs / seconds:,.0f} docs/s ({seconds:.1f}s)")
    rates = {r.measurement.name: r.measurement.rate for r in results}
    print(f"eq: index / no index = "
          f"{rates['find eq (index)'] / max(rates['find eq (no index)'], 1e-9):,.1f}x")
    print(f"range: index (sorted) / no index = "
          f"{rates['find range+sort (index)'] / max(rates['find range (no index)'], 1e-9):,.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
