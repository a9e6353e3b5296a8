"""View benchmark: build, query and refresh a `_sum` view over 100,000 docs, Python and JavaScript.

Runs in one process against the WSGI app (no network, so the figures are the view engine's and
the HTTP layer's, not a client's): loads `--docs` documents `{"group": "g0042", "n": 42}` through
the store, defines the same view in Python (`emit(doc.group, doc.n)` as a registered function) and
in JavaScript (`function(doc) { emit(doc.group, doc.n); }`), both with `_sum`, and reports

- build docs/s: the first query's index build, per language;
- latency of a key lookup (`key=`, `reduce=false`, `limit=20`), of a reduced key lookup, of
  `group=true`, and of the whole-view reduce, at `--docs` and at a tenth of it (the whole-view
  reduce is read from the stored total, so it should not grow with the doc count);
- the time to refresh the index after `--updates` changed docs, per language;
- the resident memory of this process (one worker) and of each JavaScript child.

    .venv/bin/python bench/views.py                       # SQLite in a fresh temp dir
    .venv/bin/python bench/views.py --url postgresql://postgres@127.0.0.1/empty_db
    .venv/bin/python bench/views.py --docs 20000 --groups 1000 --skip-js

Results are printed, not committed. Targets (issue 4): JS build >= 15,000 docs/s, Python build
>= 40,000 docs/s, refresh after 1,000 updates <= 0.3 s, whole-view reduce <= 20 ms.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from settee.server import create_app
from settee.server.settings import Settings
from settee.store import make_edit, sqlite_url
from settee.views.service import ViewSettings, service_for

JS_MAP = "function(doc) { emit(doc.group, doc.n); }"
PY_MAP = "__main__:by_group"


def by_group(doc: dict[str, Any]) -> Iterator[tuple[Any, Any]]:
    """The Python map function: `emit(doc.group, doc.n)`."""
    yield doc["group"], doc["n"]


def rss_kb(pid: int | str = "self") -> int:
    """Resident set size of a process in KiB (Linux)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Bench:
    """One app (one worker) over one store."""

    def __init__(self, url: str, data_dir: str, batch: int) -> None:
        self.app = create_app({"database_url": url, "data_dir": data_dir})
        self.app.settings = Settings({**self.app.settings.as_dict(),
                                      "view_python_functions": PY_MAP})
        self.app.store.setup()
        self.service = service_for(self.app.store, ViewSettings(python_functions=PY_MAP,
                                                                batch_size=batch))

    def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        raw_path, _, query = path.partition("?")
        environ = {
            "REQUEST_METHOD": method, "PATH_INFO": raw_path, "QUERY_STRING": query,
            "REQUEST_URI": path, "RAW_URI": path, "SERVER_NAME": "bench", "SERVER_PORT": "80",
            "HTTP_HOST": "bench", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
            "CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": "application/json",
            "wsgi.errors": sys.stderr,
        }
        status: list[str] = []
        out = b"".join(self.app(environ, lambda s, h, e=None: status.append(s)))
        return int(status[0].split()[0]), out

    def load(self, db: str, docs: int, groups: int) -> float:
        """Create `db` with `docs` documents; docs/s."""
        store = self.app.store
        store.create_db(db)
        started = time.perf_counter()
        for start in range(0, docs, 1000):
            store.db(db).write([make_edit(f"d{i:07d}", {"group": f"g{i % groups:04d}", "n": i})
                                for i in range(start, min(docs, start + 1000))])
        elapsed = time.perf_counter() - started
        store.db(db).write([
            make_edit("_design/py", {"language": "python",
                                     "views": {"v": {"map": PY_MAP, "reduce": "_sum"}}}),
            make_edit("_design/js", {"views": {"v": {"map": JS_MAP, "reduce": "_sum"}}})])
        return docs / elapsed

    def refresh(self, db: str, ddoc: str) -> float:
        """Seconds to bring `_design/<ddoc>` up to date."""
        design = self.service.design(db, f"_design/{ddoc}")
        started = time.perf_counter()
        self.service.refresh(db, design)
        return time.perf_counter() - started

    def update(self, db: str, count: int, docs: int) -> None:
        """Change `count` random documents (`n` + 1)."""
        database = self.app.store.db(db)
        for doc_id in random.sample([f"d{i:07d}" for i in range(docs)], count):
            doc = database[doc_id]
            doc["n"] += 1
            database[doc_id] = doc

    def latency(self, path: str, repeat: int) -> tuple[float, float]:
        """(p50, p99) milliseconds of `repeat` GETs of `path`."""
        status, body = self.request("GET", path)
        if status != 200:
            raise SystemExit(f"GET {path} -> {status} {body[:200]!r}")
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            self.request("GET", path)
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.99))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--docs", type=int, default=100_000, help="documents in the big db")
    parser.add_argument("--groups", type=int, default=100, help="distinct keys (doc.group)")
    parser.add_argument("--updates", type=int, default=1000, help="docs changed before refresh")
    parser.add_argument("--batch", type=int, default=1000, help="indexer batch size")
    parser.add_argument("--repeat", type=int, default=200, help="requests per latency figure")
    parser.add_argument("--url", default="", help="store URL (default: SQLite in a temp dir)")
    parser.add_argument("--skip-js", action="store_true", help="Python views only")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    data_dir = tempfile.mkdtemp(prefix="settee-bench-views-")
    bench = Bench(args.url or sqlite_url(data_dir), data_dir, args.batch)
    tag = f"{os.getpid()}_{random.randrange(10**6)}"
    big, small = f"views_big_{tag}", f"views_small_{tag}"
    langs = ["py"] if args.skip_js else ["py", "js"]
    out: dict[str, Any] = {"docs": args.docs, "groups": args.groups,
                           "backend": bench.app.store.engine.dialect}
    out["load docs/s"] = round(bench.load(big, args.docs, args.groups))
    bench.load(small, args.docs // 10, args.groups)
    for lang in langs:
        out[f"{lang} build docs/s"] = round(args.docs / bench.refresh(big, lang))
        bench.refresh(small, lang)
    key = json.dumps(f"g{args.groups // 2:04d}")
    for label, db in (("", big), (" (1/10 docs)", small)):
        base = f"/{db}/_design/py/_view/v"
        queries = {"key lookup reduce=false limit=20": f"{base}?key={key}&reduce=false&limit=20",
                   "key lookup reduced": f"{base}?key={key}",
                   "group=true": f"{base}?group=true",
                   "whole-view reduce": base}
        for name, path in queries.items():
            p50, p99 = bench.latency(path, args.repeat)
            out[f"{name}{label} p50/p99 ms"] = [round(p50, 2), round(p99, 2)]
    bench.update(big, args.updates, args.docs)
    for lang in langs:
        out[f"{lang} refresh after {args.updates} updates s"] = round(bench.refresh(big, lang), 3)
    out["worker RSS MiB"] = round(rss_kb() / 1024, 1)
    if not args.skip_js:
        pool, _ = bench.service.js()
        out["JS child RSS MiB"] = [round(rss_kb(pid) / 1024, 1) for pid in pool.pids()]
    bench.service.close()
    if args.json:
        print(json.dumps(out, indent=2))
        return
    width = max(len(k) for k in out)
    for name, value in out.items():
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
