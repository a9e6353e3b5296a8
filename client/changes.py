"""Change streams over `_changes`: events, a head-of-feed `None`, reconnects and a resumable token.

The design follows bloop's streams. A `ChangeStream` catches up with `feed=normal` pages of
`batch_size` rows; once the server reports nothing pending it yields `None` (the head of the feed)
and from then on waits with `feed=longpoll`, heartbeats and a server `timeout`, yielding `None`
again whenever a wait ends without a change. CouchDB holds a long poll open for as long as
heartbeats flow (`heartbeat` overrides `timeout` there), so the client also ends a wait itself
once `poll_timeout` has passed and nothing but the response's opening and heartbeats has arrived:
nothing was consumed, so nothing is lost. A connection that fails, stalls past a few heartbeats or
answers 5xx is retried from the same seq with jittered exponential backoff, yielding `None`
between attempts.

The `token` is `{"db": name, "since": seq}` where seq is that of the last event delivered (or the
`last_seq` of a fully delivered page), so `db.stream(since=token)` continues right after it: no
gap, no repeat.
"""

from __future__ import annotations

import random
import re
import time
from collections import deque
from typing import Any

import urllib3
from urllib3.util import Timeout

from .errors import ServerError, TransportError
from .transport import Doc, Transport, db_path, loads

PREVIOUS = "previous"  # settee's member with the previous winning body (`include_previous=true`)
_OPENING = b'{"results":['
_SPACE = re.compile(rb"\s+")


def event_for(row: Doc, *, include_previous: bool) -> Doc:
    """An event `{"type", "id", "seq", "rev", "new", "old"}` for one `_changes` row.

    The previous winning body tells INSERT (none, or a tombstone) from MODIFY. Without it (not
    asked for, or a server that does not send it) a first-generation rev is an INSERT and any
    other a MODIFY, so a document re-created after a deletion counts as modified.
    """
    deleted = bool(row.get("deleted"))
    changes = row.get("changes") or [{}]
    rev = changes[0].get("rev")
    doc = row.get("doc")
    has_previous = include_previous and PREVIOUS in row
    previous = row.get(PREVIOUS) if has_previous else None
    if isinstance(previous, dict) and previous.get("_deleted"):
        previous = None
    if deleted:
        kind = "DELETE"
    elif has_previous:
        kind = "INSERT" if previous is None else "MODIFY"
    else:
        kind = "INSERT" if isinstance(rev, str) and rev.startswith("1-") else "MODIFY"
    return {"type": kind, "id": row.get("id"), "seq": row.get("seq"), "rev": rev,
            "new": None if deleted else doc, "old": previous}


def changes(transport: Transport, db: str, **params: Any) -> dict[str, Any]:
    """One `feed=normal` request to `/{db}/_changes`: `{"results", "last_seq", "pending"?}`."""
    result: dict[str, Any] = transport.json("GET", f"{db_path(db)}/_changes", params=params)
    return result


class ChangeStream:
    """An endless iterator of change events of one database, `None` when there is nothing new.

    >>> for event in db.stream(since="latest"):  # doctest: +SKIP
    ...     if event is None:
    ...         do_other_work()
    ...         continue
    ...     print(event["type"], event["id"])
    """

    def __init__(self, transport: Transport, db: str, since: Any = "trim_horizon", *,
                 include_docs: bool = False, include_previous: bool = False,
                 batch_size: int = 500, poll_timeout: float = 10.0, heartbeat: float = 5.0,
                 max_backoff: float = 10.0, give_up_after: float | None = None) -> None:
        self._transport = transport
        self.db = db
        self._path = f"{db_path(db)}/_changes"
        self.include_docs = include_docs
        self.include_previous = include_previous
        self.batch_size = batch_size
        self.poll_timeout = poll_timeout
        # a server that holds the poll until a change writes heartbeats; the client must see one
        # before its own deadline for the deadline to be checked, so keep them well inside it
        self.heartbeat = min(heartbeat, max(poll_timeout / 2, 0.05))
        self.max_backoff = max_backoff
        self.give_up_after = give_up_after
        self._buffer: deque[Doc] = deque()
        self._page_end: Any = None  # last_seq of the page in the buffer
        self._at_head = False
        self._head_reported = False
        self._failures = 0
        self._failing_since: float | None = None
        self._response: urllib3.BaseHTTPResponse | None = None
        self._since = self._start(since)

    @property
    def token(self) -> dict[str, Any]:
        """Where this stream is: pass it as `since=` to continue after the last event."""
        return {"db": self.db, "since": self._since}

    def _start(self, since: Any) -> Any:
        if since == "trim_horizon":
            return 0
        if since == "latest":
            return changes(self._transport, self.db, since="now")["last_seq"]
        if isinstance(since, dict):
            if since.get("db") != self.db:
                raise ValueError(f"token of database {since.get('db')!r}, not {self.db!r}")
            return since["since"]
        if isinstance(since, (str, int)) and not isinstance(since, bool):
            return since  # a seq, e.g. `update_seq` or a `last_seq` kept by the caller
        raise ValueError(f"since must be 'trim_horizon', 'latest', a token or a seq: {since!r}")

    def __iter__(self) -> ChangeStream:
        return self

    def __next__(self) -> Doc | None:
        while not self._buffer:
            if self._at_head and not self._head_reported:
                self._head_reported = True
                return None
            try:
                answer = self._fetch(wait=self._at_head)
            except (TransportError, ServerError):
                self._backoff()
                return None
            self._failures, self._failing_since = 0, None
            if answer is None:  # the wait ended without a change
                return None
            self._take(answer)
        row = self._buffer.popleft()
        self._since = row.get("seq", self._since) if self._buffer else self._page_end
        return event_for(row, include_previous=self.include_previous)

    def _take(self, answer: dict[str, Any]) -> None:
        rows = answer.get("results") or []
        self._buffer.extend(rows)
        self._page_end = answer.get("last_seq", rows[-1].get("seq") if rows else self._since)
        if not rows:
            self._since = self._page_end
        pending = answer.get("pending")
        self._at_head = pending == 0 if isinstance(pending, int) else len(rows) < self.batch_size
        if rows:  # after these events, report the head (if this is it) before waiting again
            self._head_reported = False

    def _params(self, wait: bool) -> dict[str, Any]:
        params: dict[str, Any] = {"feed": "longpoll" if wait else "normal", "since": self._since,
                                  "limit": self.batch_size}
        if self.include_docs:
            params["include_docs"] = True
        if self.include_previous:
            params["include_previous"] = True
        if wait:
            params["heartbeat"] = max(int(self.heartbeat * 1000), 1)
            params["timeout"] = max(int(self.poll_timeout * 1000), 1)
        return params

    def _fetch(self, wait: bool) -> dict[str, Any] | None:
        """One page; None when a long poll ended (by either side) with nothing to deliver."""
        stall = self.heartbeat * 3 + 5.0 if wait else None
        timeout = Timeout(connect=10.0, read=stall) if stall else None
        response = self._transport.request("GET", self._path, params=self._params(wait),
                                           stream=True, timeout=timeout)
        self._response = response
        started = time.monotonic()
        deadline = started + self.poll_timeout if wait else None
        try:
            data = self._read(response, deadline)
        except urllib3.exceptions.HTTPError as exc:
            response.close()
            raise TransportError(f"GET {self._path}: {exc}") from exc
        finally:
            response.release_conn()
            self._response = None
        if data is None:
            return None
        try:
            answer: dict[str, Any] = loads(data)
        except ValueError as exc:
            raise TransportError(f"GET {self._path}: broken changes answer ({exc})") from exc
        if wait and not answer.get("results"):
            self._since = answer.get("last_seq", self._since)
            early = self.poll_timeout / 2 - (time.monotonic() - started)
            if early > 0:  # a server too busy to wait (settee caps waiting feeds) answered at
                time.sleep(min(early, 1.0) * random.uniform(0.5, 1.0))  # once: do not spin
            return None
        return answer

    @staticmethod
    def _read(response: urllib3.BaseHTTPResponse, deadline: float | None) -> bytes | None:
        """The whole body, or None when `deadline` passed before any change began to arrive."""
        chunks: list[bytes] = []
        while True:
            chunk = response.read1(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            if deadline is not None and time.monotonic() > deadline:
                seen = _SPACE.sub(b"", b"".join(chunks))
                if _OPENING.startswith(seen):
                    response.close()  # nothing consumed; the server drops the poll on write
                    return None

    def _backoff(self) -> None:
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        elif self.give_up_after is not None and now - self._failing_since > self.give_up_after:
            raise TransportError(f"{self._path}: no answer for {self.give_up_after} s")
        self._failures += 1
        delay = min(self.max_backoff, 0.1 * 2 ** (self._failures - 1))
        time.sleep(delay * random.uniform(0.5, 1.0))

    def close(self) -> None:
        """Drop the connection of a poll in progress (from another thread, or after use)."""
        response = self._response
        if response is not None:
            response.close()
