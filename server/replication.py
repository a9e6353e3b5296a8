"""One replication from a source database to a target, run as CouchDB's replication protocol."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from email.utils import formatdate
from typing import Any
from urllib.parse import quote

from .errors import HttpError
from .replication_log import (
    REPLICATION_ID_VERSION,
    checkpoint_doc,
    put_checkpoint,
    read_checkpoint,
    start_seq,
)
from .replication_peers import LocalPeer, Peer, PeerError, RemotePeer, Reply

log = logging.getLogger("settee.replication")

BATCH_SIZE = 100  # changes per batch, as PouchDB reads them
LONGPOLL_MS = 2000  # how long a caught-up continuous replication waits for a change


class DbNotFound(HttpError):
    """A source or target database that does not exist (404 `db_not_found`, as CouchDB)."""

    status, error = 404, "db_not_found"


@dataclass(frozen=True)
class Options:
    """What `POST /_replicate` asked for, apart from the two ends."""

    continuous: bool = False
    create_target: bool = False
    doc_ids: list[str] | None = None
    filter: str | None = None
    selector: dict[str, Any] | None = None
    query_params: dict[str, Any] | None = None
    since_seq: Any = None
    batch_size: int = BATCH_SIZE


@dataclass
class Stats:
    """CouchDB's replication counters."""

    missing_checked: int = 0
    missing_found: int = 0
    docs_read: int = 0
    docs_written: int = 0
    doc_write_failures: int = 0


def replication_id(source: Peer, target: Peer, options: Options) -> str:
    """md5 of both ends and every option that changes which documents are replicated."""
    parts = [source.identity(), target.identity(), options.filter, options.query_params,
             options.doc_ids, options.selector, options.since_seq]
    return hashlib.md5(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _now() -> str:
    return formatdate(usegmt=True)


def _doc_path(doc_id: str) -> str:
    if doc_id.startswith("_design/"):
        return "/_design/" + quote(doc_id[len("_design/"):], safe="")
    return "/" + quote(doc_id, safe="")


@dataclass
class Replication:
    """One replication run; `run()` for one-shot, `run_continuous()` until `stop` is set.

    The loop (`couchdb-api.md` section 4): check both ends, find the start seq in the
    `_local/<repid>` checkpoints both hold, then per batch of `_changes?style=all_docs`: ask the
    target which revs it lacks (`_revs_diff`), fetch them with history and attachments
    (`_bulk_get?revs=true&latest=true&attachments=true`, or `open_revs` where `_bulk_get` is
    missing), write them with `_bulk_docs` `new_edits=false`, and checkpoint on both sides.
    Checkpoints carry PouchDB's members (`session_id`, `history`, `last_seq`, `replicator`,
    `version`) and CouchDB's (`source_last_seq`, `replication_id_version`, history statistics),
    so either kind of replicator can resume from them.
    """

    source: LocalPeer | RemotePeer
    target: LocalPeer | RemotePeer
    options: Options
    stop: threading.Event = field(default_factory=threading.Event)
    on_event: Callable[[str, str | None], None] = lambda kind, reason: None
    stats: Stats = field(default_factory=Stats)

    def __post_init__(self) -> None:
        self.rep_id = replication_id(self.source, self.target, self.options)
        self.session_id = uuid.uuid4().hex
        self.start_time = _now()
        self.checkpoints: dict[int, dict[str, Any] | None] = {}
        self.start_last_seq: Any = 0
        self.through_seq: Any = 0
        self.source_seq: Any = None
        self.prepared = False

    # -- setup ---------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Check both ends (creating the target when asked) and read the checkpoints."""
        info = self._open(self.source)
        if info.status == 404:
            raise DbNotFound(f"could not open {self.source.label}")
        self._expect(info, self.source)
        self.source_seq = info.body.get("update_seq")
        target = self._open(self.target)
        if target.status == 404 and self.options.create_target:
            created = self.target.call("PUT")
            if created.status not in (201, 202, 412):
                self._expect(created, self.target)
        elif target.status == 404:
            raise DbNotFound(f"could not open {self.target.label}")
        else:
            self._expect(target, self.target)
        for side, peer in enumerate((self.source, self.target)):
            self.checkpoints[side] = read_checkpoint(peer, self.rep_id)
        if self.options.since_seq is not None:
            self.start_last_seq = self.options.since_seq
        else:
            self.start_last_seq = start_seq(self.checkpoints[0], self.checkpoints[1])
        self.through_seq = self.start_last_seq
        self.prepared = True

    @staticmethod
    def _open(peer: Peer) -> Reply:
        try:
            return peer.call("GET")
        except PeerError as exc:  # unreachable: CouchDB says it could not open the database
            raise DbNotFound(f"could not open {peer.label}") from exc

    @staticmethod
    def _expect(reply: Reply, peer: Peer) -> None:
        if not reply.ok or not isinstance(reply.body, (dict, list)):
            raise PeerError(peer, reply.status, reply.body)

    # -- the loop ------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """A one-shot replication: every change up to now; CouchDB's `_replicate` answer."""
        self.prepare()
        read_any = False
        while not self.stop.is_set():
            count = self.step(longpoll=False)
            read_any = read_any or count > 0
            if count < self.options.batch_size:
                break
        if not read_any and self.through_seq == self.start_last_seq:
            return {"ok": True, "no_changes": True}
        saved = self.checkpoints.get(1) or self.checkpoints.get(0) or {}
        history = saved.get("history") if saved.get("session_id") == self.session_id \
            else [self._entry()]
        return {"ok": True, "session_id": self.session_id, "source_last_seq": self.through_seq,
                "replication_id_version": REPLICATION_ID_VERSION, "history": history}

    def run_continuous(self) -> None:
        """Replicate until `stop` is set, long-polling the source once caught up; a failing
        peer is retried with backoff (as CouchDB's scheduler does) instead of ending the job."""
        backoff = 1.0
        while not self.stop.is_set():
            try:
                if not self.prepared:
                    self.prepare()
                self.on_event("started", None)
                caught_up = False
                while not self.stop.is_set():
                    caught_up = self.step(longpoll=caught_up) < self.options.batch_size
                    backoff = 1.0
            except Exception as exc:  # a background job reports and retries, never dies silently
                log.warning("replication %s crashed: %s", self.rep_id, exc, exc_info=True)
                self.prepared = False  # start over from the checkpoints
                self.on_event("crashed", str(exc))
                if self.stop.wait(backoff):
                    break
                backoff = min(backoff * 2, 30.0)

    def step(self, *, longpoll: bool) -> int:
        """One batch of changes replicated and checkpointed; the number of changes read."""
        results, last_seq = self._changes(self.through_seq, longpoll)
        if results:
            self._replicate(results)
        if last_seq is not None and last_seq != self.through_seq:
            self.through_seq = last_seq
            self._checkpoint()
        return len(results)

    def _changes(self, since: Any, longpoll: bool) -> tuple[list[dict[str, Any]], Any]:
        opts = self.options
        query: dict[str, Any] = {"style": "all_docs", "since": since, "limit": opts.batch_size}
        body: dict[str, Any] | None = None
        if opts.doc_ids is not None:
            query["filter"], body = "_doc_ids", {"doc_ids": opts.doc_ids}
        elif opts.selector is not None:
            query["filter"], body = "_selector", {"selector": opts.selector}
        elif opts.filter:
            query = {**(opts.query_params or {}), **query, "filter": opts.filter}
        if longpoll:
            query.update(feed="longpoll", timeout=LONGPOLL_MS)
        reply = self.source.call("POST" if body is not None else "GET", "/_changes",
                                 query=query, body=body)
        self._expect(reply, self.source)
        results = [r for r in reply.body.get("results") or [] if isinstance(r, dict)]
        last_seq = reply.body.get("last_seq", results[-1]["seq"] if results else None)
        return results, last_seq

    def _replicate(self, results: list[dict[str, Any]]) -> None:
        revs = {r["id"]: [c["rev"] for c in r.get("changes") or []] for r in results}
        self.stats.missing_checked += sum(len(v) for v in revs.values())
        diff = self.target.call("POST", "/_revs_diff", body=revs)
        self._expect(diff, self.target)
        missing = {doc_id: entry.get("missing") or [] for doc_id, entry in diff.body.items()}
        ancestors = {doc_id: entry.get("possible_ancestors") or []
                     for doc_id, entry in diff.body.items()}
        self.stats.missing_found += sum(len(v) for v in missing.values())
        if not any(missing.values()):
            return
        docs = self._fetch(missing, ancestors)
        self.stats.docs_read += len(docs)
        if not docs:
            return
        written = self.target.call("POST", "/_bulk_docs", body={"docs": docs,
                                                                "new_edits": False})
        self._expect(written, self.target)
        failures = [e for e in written.body if isinstance(e, dict) and "error" in e]
        self.stats.doc_write_failures += len(failures)
        self.stats.docs_written += len(docs) - len(failures)

    def _fetch(self, missing: dict[str, list[str]], ancestors: dict[str, list[str]]
               ) -> list[dict[str, Any]]:
        """The missing revisions with `_revisions` and inline attachments; those the target
        already has in an ancestor (`possible_ancestors` as `atts_since`) come as stubs."""
        wanted = [{"id": doc_id, "rev": rev, **({"atts_since": ancestors[doc_id]}
                                                 if ancestors.get(doc_id) else {})}
                  for doc_id, revs in missing.items() for rev in revs]
        reply = self.source.call("POST", "/_bulk_get", query={
            "revs": True, "latest": True, "attachments": True}, body={"docs": wanted})
        if reply.ok and isinstance(reply.body, dict):
            found = [entry["ok"] for result in reply.body.get("results") or []
                     for entry in result.get("docs") or [] if "ok" in entry]
        else:  # a server without `_bulk_get`: one `open_revs` read per document
            found = []
            for doc_id, revs in missing.items():
                one = self.source.call("GET", _doc_path(doc_id), query={
                    "revs": True, "latest": True, "attachments": True, "open_revs": revs,
                    "atts_since": ancestors.get(doc_id) or None})
                self._expect(one, self.source)
                found.extend(entry["ok"] for entry in one.body if "ok" in entry)
        unique: dict[tuple[str, str], dict[str, Any]] = {}
        for doc in found:  # `latest` can lead two asked revs to the same leaf
            unique[(doc["_id"], doc["_rev"])] = doc
        return list(unique.values())

    # -- checkpoints ---------------------------------------------------------------------------

    def _entry(self) -> dict[str, Any]:
        return {"session_id": self.session_id, "start_time": self.start_time,
                "end_time": _now(), "start_last_seq": self.start_last_seq,
                "end_last_seq": self.through_seq, "recorded_seq": self.through_seq,
                "last_seq": self.through_seq, **asdict(self.stats)}

    def _checkpoint(self) -> None:
        """Record `through_seq` on the target, then on the source (which may refuse)."""
        entry = self._entry()
        for side, peer in ((1, self.target), (0, self.source)):
            old = self.checkpoints.get(side)
            doc = checkpoint_doc(self.session_id, self.through_seq, entry, old)
            reply = put_checkpoint(peer, self.rep_id, doc, (old or {}).get("_rev"))
            if reply.ok:
                self.checkpoints[side] = {**doc, "_rev": reply.body.get("rev")}
            elif side == 1:  # losing the source's copy costs a rescan; the target's is required
                raise PeerError(peer, reply.status, reply.body)
