"""Map throughput of the JavaScript pool: `emit(doc.group, doc.n)` over small docs in batches.

Usage: python bench/js_map.py [--docs 100000] [--batch 1000] [--threads 1] [--size 2]
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

from settee.views.js import JsPool

MAP = "function(doc){ emit(doc.group, doc.n) }"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--size", type=int, default=2)
    args = parser.parse_args()
    docs = [{"_id": f"doc{i:07d}", "_rev": "1-967a00dff5e02add41819138abb3284d",
             "group": f"g{i % 10}", "n": i} for i in range(args.docs)]
    batches = [docs[i:i + args.batch] for i in range(0, len(docs), args.batch)]
    ddoc = {"_id": "_design/bench", "views": {"v": {"map": MAP}}}
    with JsPool(size=args.size) as pool:
        pool.map_docs("bench|_design/bench|1", ddoc, [MAP], batches[0])  # spawn, compile
        start = time.perf_counter()
        with ThreadPoolExecutor(args.threads) as workers:
            rows = sum(len(r) for r in workers.map(
                lambda b: pool.map_docs("bench|_design/bench|1", ddoc, [MAP], b), batches))
        elapsed = time.perf_counter() - start
    print(f"{rows} docs in {elapsed:.3f} s: {rows / elapsed:,.0f} docs/s "
          f"(batch {args.batch}, {args.threads} thread(s), pool size {args.size})")


if __name__ == "__main__":
    main()
