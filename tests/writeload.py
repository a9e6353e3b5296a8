"""The kill -9 test's write load: clients that each own their documents and know their state."""

# Each client is the only writer of its documents, so it knows what each must hold: the last
# acknowledged rev and body. A request that got no answer leaves its documents "uncertain" (an
# `Attempt`) until the next check reads them back and decides which outcome happened: absent, or
# whole (and then a `_bulk_docs` must be whole for every one of its documents).

from __future__ import annotations

import http.client
import json
import os
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from live import HOST, LiveServer

DOCS_PER_CLIENT = 30
BULK = 10
REQUEST_TIMEOUT = 60.0
PAUSE_TIMEOUT = 90.0


@dataclass
class Attempt:
    """A write whose answer never came: what the document holds if it happened."""

    parent: str | None
    body: dict[str, Any] | None  # None: a deletion
    batch: str  # the request it was part of (a `_bulk_docs` is all or nothing)


@dataclass
class Doc:
    """What one client knows about one of its documents."""

    rev: str | None = None  # the last acknowledged (or resolved) rev
    body: dict[str, Any] | None = None
    deleted: bool = False
    pending: Attempt | None = None  # an unanswered write, until resolved


@dataclass
class Tally:
    """Counts shared by every client and the checker."""

    acked: int = 0
    unknown: int = 0
    resolved_absent: int = 0
    resolved_whole: int = 0
    five_xx: int = 0
    violations: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name: str, n: int = 1) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + n)

    def violation(self, text: str) -> None:
        with self.lock:
            self.violations.append(text)


class Harness:
    """The server under test, the pause switch and the clients' shared state."""

    def __init__(self, server: LiveServer, db: str) -> None:
        self.server = server
        self.db = db
        self.port = server.port
        self.go = threading.Event()
        self.stop = False
        self.busy = 0
        self.busy_lock = threading.Condition()
        self.tally = Tally()

    def pause(self) -> None:
        """Stop the clients and wait for every request in flight to end."""
        self.go.clear()
        deadline = time.monotonic() + PAUSE_TIMEOUT
        with self.busy_lock:
            while self.busy:
                left = deadline - time.monotonic()
                assert left > 0, "a client request did not end after the kill"
                self.busy_lock.wait(left)


class Client(threading.Thread):
    """Loops PUT / DELETE / `_bulk_docs` over its own documents."""

    def __init__(self, harness: Harness, number: int) -> None:
        super().__init__(daemon=True)
        self.h = harness
        self.number = number
        self.rng = random.Random(number * 7919 + os.getpid())
        self.ids = [f"c{number}-{k:02d}" for k in range(DOCS_PER_CLIENT)]
        self.docs = {doc_id: Doc() for doc_id in self.ids}
        self.conn: http.client.HTTPConnection | None = None
        self.conn_port = 0
        self.writes = 0

    # -- HTTP -------------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any] | None:
        """One request on a kept-alive connection; None when no answer came."""
        try:
            if self.conn is None or self.conn_port != self.h.port:
                if self.conn is not None:
                    self.conn.close()
                self.conn_port = self.h.port
                self.conn = http.client.HTTPConnection(HOST, self.conn_port,
                                                       timeout=REQUEST_TIMEOUT)
            data = None if body is None else json.dumps(body).encode()
            headers = {"Content-Type": "application/json"} if data is not None else {}
            self.conn.request(method, path, body=data, headers=headers)
            reply = self.conn.getresponse()
            payload = reply.read()
        except (OSError, http.client.HTTPException):
            if self.conn is not None:
                self.conn.close()
            self.conn = None
            return None
        if reply.status >= 500:
            self.h.tally.add("five_xx")
            if reply.status != 503:
                self.h.tally.violation(f"{method} {path}: {reply.status} {payload[:200]!r}")
        return reply.status, json.loads(payload) if payload else None

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> None:
        while not self.h.stop:
            if not self.h.go.wait(0.05):
                continue
            with self.h.busy_lock:
                if not self.h.go.is_set():
                    continue
                self.h.busy += 1
            try:
                self.step()
            finally:
                with self.h.busy_lock:
                    self.h.busy -= 1
                    self.h.busy_lock.notify_all()

    def step(self) -> None:
        roll = self.rng.random()
        if roll < 0.35:
            self.bulk()
            return
        doc_id = self.rng.choice(self.ids)
        doc = self.docs[doc_id]
        if doc.pending is not None:
            return  # resolved at the next check
        if roll < 0.5 and doc.rev is not None and not doc.deleted:
            self.delete(doc_id, doc)
        else:
            self.put(doc_id, doc)

    def new_body(self, doc_id: str) -> dict[str, Any]:
        self.writes += 1
        return {"owner": self.number, "doc": doc_id, "write": self.writes,
                "pad": "x" * self.rng.randrange(0, 2000)}

    def put(self, doc_id: str, doc: Doc) -> None:
        body = self.new_body(doc_id)
        sent = dict(body)
        if doc.rev is not None and not doc.deleted:
            sent["_rev"] = doc.rev
        answer = self.request("PUT", f"/{self.h.db}/{doc_id}", sent)
        self.settle(doc_id, doc, body, answer, 201)

    def delete(self, doc_id: str, doc: Doc) -> None:
        answer = self.request("DELETE", f"/{self.h.db}/{doc_id}?rev={doc.rev}")
        self.settle(doc_id, doc, None, answer, 200)

    def settle(self, doc_id: str, doc: Doc, body: dict[str, Any] | None,
               answer: tuple[int, Any] | None, ok_status: int) -> None:
        if answer is not None and answer[0] == ok_status:
            self.ack(doc, answer[1]["rev"], body)
        elif answer is None or answer[0] >= 500:
            doc.pending = Attempt(doc.rev, body, uuid.uuid4().hex)
            self.h.tally.add("unknown")
        else:
            self.h.tally.violation(f"{doc_id}: answered {answer} to its only writer")

    def ack(self, doc: Doc, rev: str, body: dict[str, Any] | None) -> None:
        doc.rev, doc.body, doc.deleted = rev, body, body is None
        self.h.tally.add("acked")

    def bulk(self) -> None:
        chosen = [d for d in self.rng.sample(self.ids, BULK) if self.docs[d].pending is None]
        if not chosen:
            return
        bodies, sent = {}, []
        for doc_id in chosen:
            doc = self.docs[doc_id]
            bodies[doc_id] = self.new_body(doc_id)
            entry = {"_id": doc_id, **bodies[doc_id]}
            if doc.rev is not None and not doc.deleted:
                entry["_rev"] = doc.rev
            sent.append(entry)
        answer = self.request("POST", f"/{self.h.db}/_bulk_docs", {"docs": sent})
        if answer is None or answer[0] >= 500:
            batch = uuid.uuid4().hex
            for doc_id in chosen:
                self.docs[doc_id].pending = Attempt(self.docs[doc_id].rev, bodies[doc_id], batch)
            self.h.tally.add("unknown", len(chosen))
            return
        if answer[0] != 201:
            self.h.tally.violation(f"_bulk_docs answered {answer}")
            return
        for row in answer[1]:
            if row.get("ok"):
                self.ack(self.docs[row["id"]], row["rev"], bodies[row["id"]])
            else:
                self.h.tally.violation(f"_bulk_docs row {row} for its only writer")

    # -- the check --------------------------------------------------------------------------

    def check(self, leaves: dict[str, list[dict[str, Any]]]) -> None:
        """Compare every document with what this client knows; resolve the uncertain ones.

        A `_bulk_docs` that got no answer must be all absent or all whole."""
        batches: dict[str, set[str]] = {}
        for doc_id, doc in self.docs.items():
            found = leaves.get(doc_id, [])
            if len(found) > 1:
                self.h.tally.violation(f"{doc_id}: {len(found)} leaves, its writer made one")
                continue
            leaf = found[0] if found else None
            outcome = self.judge(doc_id, doc, leaf)
            if doc.pending is not None and outcome is not None:
                batches.setdefault(doc.pending.batch, set()).add(outcome)
                self.h.tally.add("resolved_" + outcome)
                if outcome == "whole":
                    assert leaf is not None
                    doc.rev, doc.body = leaf["_rev"], doc.pending.body
                    doc.deleted = doc.pending.body is None
                doc.pending = None
        for batch, outcomes in batches.items():
            if len(outcomes) > 1:
                self.h.tally.violation(f"an unanswered request {batch} was applied in part")

    def judge(self, doc_id: str, doc: Doc, leaf: dict[str, Any] | None) -> str | None:
        """'absent' / 'whole' for a pending write; None when the doc is as acknowledged."""
        if leaf is not None and leaf["_rev"] == doc.rev:
            if not self.same(doc.body, doc.deleted, leaf):
                self.h.tally.violation(f"{doc_id}: acked rev {doc.rev} holds another body")
            return "absent" if doc.pending is not None else None
        if leaf is None and doc.rev is None:
            return "absent" if doc.pending is not None else None
        attempt = doc.pending
        if attempt is not None and leaf is not None:
            history = leaf["_revisions"]
            parent = (f"{history['start'] - 1}-{history['ids'][1]}"
                      if len(history["ids"]) > 1 else None)
            if parent == attempt.parent and self.same(attempt.body, attempt.body is None, leaf):
                return "whole"
            self.h.tally.violation(f"{doc_id}: {leaf['_rev']} (parent {parent}) is neither the "
                                   f"acked {doc.rev} nor the whole unanswered write")
            return None
        self.h.tally.violation(f"LOST {doc_id}: acked {doc.rev}, found "
                               f"{leaf['_rev'] if leaf else 'nothing'}")
        return None

    @staticmethod
    def same(body: dict[str, Any] | None, deleted: bool, leaf: dict[str, Any]) -> bool:
        if deleted:
            return bool(leaf.get("_deleted"))
        shown = {k: v for k, v in leaf.items() if not k.startswith("_")}
        return not leaf.get("_deleted") and shown == body
