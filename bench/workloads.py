"""The workloads: hello GET, single-doc PUT, _bulk_docs, GET by random id and _all_docs paging.

Each is a small frozen dataclass (picklable, so it can be sent to the client processes) whose
`session()` builds one connection's requests ahead of time, so that the timed loop only sends and
checks. Documents are small JSON objects padded to a chosen size; ids carry a per-run tag so that a
run against an existing database never collides with an earlier one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from urllib.parse import quote

import orjson
from eventloop import Outcome
from http1 import Request, Response


def doc_body(n: int, size: int, **fields: object) -> dict[str, object]:
    """A JSON object of about `size` bytes when serialised."""
    doc: dict[str, object] = {"kind": "bench", "n": n, **fields, "pad": ""}
    short = size - len(orjson.dumps(doc))
    doc["pad"] = "x" * max(0, short)
    return doc


def db_path(db: str) -> str:
    """The URL path of a database (a `/` in its name is escaped, as CouchDB wants)."""
    return "/" + quote(db, safe="")


def _failure(request: Request, response: Response) -> Outcome:
    method, path, _ = request
    return Outcome(0, False, f"{method} {path} -> {response.status} {response.body[:160]!r}")


@dataclass(frozen=True)
class HelloGet:
    """GET / in a loop: the ceiling, run against the hello-world app."""

    name: str = "hello GET"
    unit: str = "req/s"

    def session(self, slot: int, slots: int, quota: int) -> _HelloSession:
        return _HelloSession()


class _HelloSession:
    def request(self) -> Request:
        return ("GET", "/", None)

    def outcome(self, response: Response) -> Outcome:
        if response.status != 200:
            return _failure(self.request(), response)
        return Outcome(1)

    def keys(self) -> list[str]:
        return []


@dataclass(frozen=True)
class PutDocs:
    """PUT /db/<new id> of one small document per request."""

    db: str
    tag: str
    doc_bytes: int = 100
    name: str = "PUT single doc"
    unit: str = "docs/s"

    def session(self, slot: int, slots: int, quota: int) -> _PutSession:
        base = db_path(self.db)
        requests = [
            (f"{base}/p{self.tag}-{slot:03d}-{i:07d}",
             orjson.dumps(doc_body(i, self.doc_bytes, slot=slot)))
            for i in range(quota)
        ]
        return _PutSession(requests)


class _PutSession:
    def __init__(self, requests: list[tuple[str, bytes]]) -> None:
        self.requests = iter(requests)
        self.last: Request = ("PUT", "", None)

    def request(self) -> Request | None:
        request = next(self.requests, None)
        if request is None:
            return None
        self.last = ("PUT", *request)
        return self.last

    def outcome(self, response: Response) -> Outcome:
        if response.status not in (201, 202):
            return _failure(self.last, response)
        return Outcome(1)

    def keys(self) -> list[str]:
        return []


@dataclass(frozen=True)
class BulkDocs:
    """POST /db/_bulk_docs with `batch` new documents per request; loads the db the reads use."""

    db: str
    tag: str
    docs: int
    batch: int = 1000
    doc_bytes: int = 100
    unit: str = "docs/s"

    @property
    def name(self) -> str:
        return f"_bulk_docs x{self.batch}"

    def session(self, slot: int, slots: int, quota: int) -> _BulkSession:
        # Sequential ids in whole batches, dealt round-robin: slot s posts batches s, s + slots, ...
        batches = [
            [
                {"_id": f"b{self.tag}-{i:08d}", **doc_body(i, self.doc_bytes)}
                for i in range(start, min(start + self.batch, self.docs))
            ]
            for start in range(slot * self.batch, self.docs, slots * self.batch)
        ]
        path = db_path(self.db) + "/_bulk_docs"
        return _BulkSession(path, [orjson.dumps({"docs": docs}) for docs in batches])


class _BulkSession:
    def __init__(self, path: str, bodies: list[bytes]) -> None:
        self.path = path
        self.bodies = iter(bodies)
        self.written: list[str] = []

    def request(self) -> Request | None:
        body = next(self.bodies, None)
        return None if body is None else ("POST", self.path, body)

    def outcome(self, response: Response) -> Outcome:
        if response.status not in (201, 202):
            return _failure(("POST", self.path, None), response)
        results = orjson.loads(response.body)
        written = [r["id"] for r in results if "error" not in r]
        self.written += written
        if len(written) < len(results):
            bad = next(r for r in results if "error" in r)
            failed = len(results) - len(written)
            message = f"POST {self.path}: {failed} docs failed, e.g. {bad}"
            return Outcome(len(written), False, message)
        return Outcome(len(written))

    def keys(self) -> list[str]:
        return self.written


@dataclass(frozen=True)
class GetRandom:
    """GET /db/<id> of ids drawn at random (with replacement) from the loaded ones."""

    db: str
    ids: tuple[str, ...]
    seed: int = 0
    name: str = "GET random id"
    unit: str = "req/s"

    def session(self, slot: int, slots: int, quota: int) -> _GetSession:
        if not self.ids:
            raise ValueError("no documents were loaded to read")
        rng = random.Random(self.seed * 1000 + slot)
        base = db_path(self.db)
        # Draw ahead only as many paths as fit the quota; cycle if the deadline allows more.
        drawn = rng.choices(self.ids, k=min(quota, 100_000))
        paths = [f"{base}/{quote(i, safe='')}" for i in drawn]
        return _GetSession(paths)


class _GetSession:
    def __init__(self, paths: list[str]) -> None:
        self.paths = paths
        self.next = -1

    def request(self) -> Request:
        self.next = (self.next + 1) % len(self.paths)
        return ("GET", self.paths[self.next], None)

    def outcome(self, response: Response) -> Outcome:
        if response.status != 200:
            return _failure(("GET", self.paths[self.next], None), response)
        return Outcome(1)

    def keys(self) -> list[str]:
        return []


@dataclass(frozen=True)
class AllDocsPages:
    """GET /db/_all_docs?limit=N, then `startkey="<last id>"&skip=1` until a short page; repeat."""

    db: str
    limit: int = 1000
    unit: str = "rows/s"

    @property
    def name(self) -> str:
        return f"_all_docs limit={self.limit}"

    def session(self, slot: int, slots: int, quota: int) -> _PagesSession:
        return _PagesSession(f"{db_path(self.db)}/_all_docs?limit={self.limit}", self.limit)


class _PagesSession:
    def __init__(self, first: str, limit: int) -> None:
        self.first = first
        self.limit = limit
        self.path = first
        self.previous: set[str] = set()

    def request(self) -> Request:
        return ("GET", self.path, None)

    def outcome(self, response: Response) -> Outcome:
        request = self.request()
        self.path = self.first  # unless the page below is good and full
        previous, self.previous = self.previous, set()
        if response.status != 200:
            return _failure(request, response)
        ids = [row["id"] for row in orjson.loads(response.body)["rows"]]
        # A page must not repeat the page before it; a server that ignored startkey or skip
        # would otherwise post a fine rows/s figure by sending the same rows again.
        if not previous.isdisjoint(ids):
            return Outcome(0, False, f"GET {request[1]}: page repeats rows of the page before")
        if len(ids) == self.limit:
            self.previous = set(ids)
            startkey = quote(orjson.dumps(ids[-1]), safe="")
            self.path = f"{self.first}&startkey={startkey}&skip=1"
        return Outcome(len(ids))

    def keys(self) -> list[str]:
        return []
