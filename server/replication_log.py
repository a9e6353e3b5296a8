"""Replication checkpoints: the `_local/<repid>` documents both ends keep, read and written."""

from __future__ import annotations

from typing import Any

from .replication_peers import Peer, Reply

HISTORY_LIMIT = 50  # history entries kept per side, as CouchDB keeps them
REPLICATION_ID_VERSION = 4


def _seq_of(doc: dict[str, Any]) -> Any:
    return doc.get("last_seq", doc.get("source_last_seq"))


def start_seq(source_doc: dict[str, Any] | None, target_doc: dict[str, Any] | None) -> Any:
    """Where to resume, as PouchDB's `compareReplicationLogs`: the common session's seq, else 0.

    Works on checkpoints written by settee, PouchDB (`last_seq`) or CouchDB (`source_last_seq`,
    history entries with `recorded_seq`).
    """
    if not source_doc or not target_doc:
        return 0
    if source_doc.get("session_id") == target_doc.get("session_id"):
        return _seq_of(source_doc) or 0
    target_sessions = {h.get("session_id") for h in target_doc.get("history") or []
                       if isinstance(h, dict)}
    for entry in source_doc.get("history") or []:
        if isinstance(entry, dict) and entry.get("session_id") in target_sessions:
            return entry.get("last_seq", entry.get("recorded_seq")) or 0
    return 0


def checkpoint_doc(session_id: str, seq: Any, entry: dict[str, Any],
                   old: dict[str, Any] | None) -> dict[str, Any]:
    """The next checkpoint: PouchDB's members (`session_id`, `history`, `last_seq`,
    `replicator`, `version`) and CouchDB's (`source_last_seq`, `replication_id_version`,
    history entries with statistics), so either kind of replicator can resume from it."""
    earlier = [h for h in (old or {}).get("history") or []
               if isinstance(h, dict) and h.get("session_id") != session_id]
    return {"session_id": session_id, "source_last_seq": seq, "last_seq": seq,
            "replication_id_version": REPLICATION_ID_VERSION, "replicator": "settee",
            "version": 1, "history": [entry, *earlier[:HISTORY_LIMIT - 1]]}


def read_checkpoint(peer: Peer, rep_id: str) -> dict[str, Any] | None:
    """A peer's checkpoint, None when it has none (404) or answers something else."""
    reply = peer.call("GET", f"/_local/{rep_id}")
    return reply.body if reply.status == 200 and isinstance(reply.body, dict) else None


def put_checkpoint(peer: Peer, rep_id: str, doc: dict[str, Any], rev: str | None) -> Reply:
    """Write a checkpoint over `rev`; on 409 (written meanwhile) take the current rev, retry."""
    path = f"/_local/{rep_id}"
    reply = peer.call("PUT", path, body={**doc, "_rev": rev} if rev else doc)
    if reply.status == 409:
        current = read_checkpoint(peer, rep_id)
        rev = current.get("_rev") if current else None
        reply = peer.call("PUT", path, body={**doc, "_rev": rev} if rev else doc)
    return reply
