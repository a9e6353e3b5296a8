"""What `validate_doc_update` costs a single-document PUT, in process (no HTTP server).

Usage: `.venv/bin/python bench/vdu.py [--docs 2000] [--rounds 10] [--url postgresql+psycopg://...]`.
Four databases take PUTs of new small documents in interleaved rounds (so disk and cache drift
hit them alike): one without design docs written with the validation step stubbed out (the
baseline: the write path as it was before validation existed), one without design docs through
the real path (the price of checking for validators: one small query in the write), one with a
JavaScript `validate_doc_update` and one with a Python one. Prints the median and p95 PUT time of
each and the difference to the baseline, the SQL statements each PUT sent and this process's CPU
time per PUT (figures that other load on the machine blurs less; a JavaScript function's own CPU is
spent in its child process and shows only in the wall times). Store defaults apply (SQLite
`synchronous=FULL`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from werkzeug.test import Client

sys.path.insert(0, str(Path(__file__).resolve().parent))

from settee.server import (
    create_app,  # noqa: E402
    validation,  # noqa: E402
)
from settee.store import sqlite_url  # noqa: E402
from settee.store.engine import Tx  # noqa: E402

STATEMENTS = [0]


class _Counting:
    """A driver cursor that counts the statements sent through it."""

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        STATEMENTS[0] += 1
        return self._cursor.execute(*args, **kwargs)

    def executemany(self, *args: Any, **kwargs: Any) -> Any:
        STATEMENTS[0] += 1
        return self._cursor.executemany(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)

JS_VDU = "function(n, o, u, s) { if (n.deny) throw({forbidden: 'no'}); }"
HEADERS = {"Content-Type": "application/json"}


def passes(new_doc: dict[str, Any], old_doc: Any, user_ctx: Any, sec_obj: Any) -> None:
    """A Python validation function that accepts everything but `deny`."""
    if new_doc.get("deny"):
        raise ValueError("no")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=2000, help="PUTs per database")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds")
    parser.add_argument("--url", default="", help="store URL (default: a temporary SQLite)")
    args = parser.parse_args()
    data = tempfile.mkdtemp(prefix="settee-vdu-")
    app = create_app({"database_url": args.url or sqlite_url(data), "data_dir": data,
                      "python_views": "vdu:passes"})
    client = Client(app)
    real_write = validation.write

    def unvalidated(app_: Any, user: Any, db: str, edits: Any, new: bool) -> Any:
        return app_.store.db(db).write(edits, new_edits=new)  # the path before validation
    cases = {"baseline (no check)": "b_plain", "no VDU": "b_none", "JS VDU": "b_js",
             "Python VDU": "b_py"}
    for db in cases.values():
        client.delete(f"/{db}")
        client.put(f"/{db}")
    client.put("/b_js/_design/v", data=json.dumps({"validate_doc_update": JS_VDU}),
               headers=HEADERS)
    client.put("/b_py/_design/v", data=json.dumps({"language": "python",
                                                   "validate_doc_update": "vdu:passes"}),
               headers=HEADERS)
    for db in cases.values():  # warm up: caches, the JS process, the connection pool
        for i in range(20):
            client.put(f"/{db}/warm{i}", data=b'{"n":1}', headers=HEADERS)
    times: dict[str, list[float]] = {name: [] for name in cases}
    statements: dict[str, int] = {name: 0 for name in cases}
    cpu: dict[str, float] = {name: 0.0 for name in cases}
    raw_cursor = Tx.cursor
    Tx.cursor = lambda self: _Counting(raw_cursor(self))  # type: ignore[method-assign]
    per_round = max(1, args.docs // args.rounds)
    for r in range(args.rounds):
        for name, db in cases.items():
            stub = name.startswith("baseline")
            validation.write = unvalidated if stub else real_write  # type: ignore[assignment]
            for i in range(per_round):
                body = json.dumps({"n": i, "text": "x" * 100}).encode()
                before = STATEMENTS[0]
                start, cpu_start = time.perf_counter(), time.process_time()
                resp = client.put(f"/{db}/r{r}-{i}", data=body, headers=HEADERS)
                times[name].append(time.perf_counter() - start)
                cpu[name] += time.process_time() - cpu_start
                statements[name] += STATEMENTS[0] - before
                assert resp.status_code == 201, resp.get_data()
    validation.write = real_write
    base = statistics.median(times["baseline (no check)"])
    backend = "PostgreSQL" if args.url else "SQLite (synchronous=FULL)"
    print(f"single-doc PUT, {per_round * args.rounds} per database, {backend}")
    print(f"{'case':22} {'median ms':>10} {'p95 ms':>8} {'vs baseline':>12} {'SQL/PUT':>8}"
          f" {'CPU us/PUT':>11}")
    for name, samples in times.items():
        med = statistics.median(samples)
        p95 = statistics.quantiles(samples, n=20)[-1]
        print(f"{name:22} {med * 1000:10.3f} {p95 * 1000:8.3f} {(med - base) * 1e6:+10.0f} us"
              f" {statements[name] / len(samples):8.2f} {cpu[name] / len(samples) * 1e6:11.0f}")
    app.store.close()


if __name__ == "__main__":
    main()
