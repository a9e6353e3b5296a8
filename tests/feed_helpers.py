"""Helpers the changes-feed tests share: a fresh database, writes, feed reads, a delayed write.

Not a test module: test files `import feed_helpers` (pytest puts `tests/` on `sys.path`).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

from conftest import Client

JSON = "application/json"


def new_db(client: Client) -> str:
    """A new, empty database."""
    name = "db_" + uuid.uuid4().hex[:10]
    client.put(f"/{name}", status=201)
    return name


def put(client: Client, db: str, doc_id: str, body: dict[str, Any]) -> str:
    """PUT a document; its new rev."""
    return str(client.put(f"/{db}/{doc_id}", json.dumps(body), content_type=JSON).json["rev"])


def changes(client: Client, db: str, query: str = "", **kw: Any) -> Any:
    """GET `/{db}/_changes{query}`."""
    return client.get(f"/{db}/_changes{query}", **kw)


def rows(client: Client, db: str, query: str = "") -> list[dict[str, Any]]:
    """The `results` of a normal feed."""
    return list(changes(client, db, query).json["results"])


def later(seconds: float, fn: Any) -> threading.Thread:
    """Run `fn` on another thread after `seconds` (a write while a feed waits)."""
    def run() -> None:
        time.sleep(seconds)
        fn()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def conflicted(client: Client, db: str) -> None:
    """Doc `c` with leaves 1-bbb (the winner), 1-aaa and the tombstone 1-abc."""
    docs = [{"_id": "c", "_rev": "1-aaa", "v": "a"}, {"_id": "c", "_rev": "1-bbb", "v": "b"},
            {"_id": "c", "_rev": "1-abc", "_deleted": True}]
    client.post(f"/{db}/_bulk_docs", json.dumps({"docs": docs, "new_edits": False}),
                content_type=JSON, status=201)
