"""Streaming a feed: CouchDB's four wire formats and the loop that reads, waits and heartbeats.

A feed source (`_changes` or `_db_updates`) hands out batches of ready-made JSON rows, each read
in its own short transaction; this module writes them in the requested format and, for the
waiting feeds, sleeps on the process's change notifier between batches. Nothing here holds a
database transaction while it writes to the client or waits.

Wire formats, byte for byte as CouchDB's `chttpd_db:changes_callback/2`:

    normal, longpoll  {"results":[\\n<row>,\\r\\n<row>\\n],\\n"last_seq":<seq>,"pending":<n>}\\n
    continuous        <row>\\n ... {"last_seq":<seq>,"pending":<n>}\\n
    eventsource       data: <row>\\nid: <seq>\\n\\n ...
                      (heartbeat: event: heartbeat\\ndata: \\n\\n)

Heartbeats are a lone newline elsewhere; a longpoll or continuous feed that starts waiting
before it has sent anything sends one newline at once, as CouchDB does, so clients see the
response start. `_db_updates` rows and tails have no `pending`.

gthread workers never time out a request thread (reliability.md 3.3), so every wait here is
bounded: by the feed's timeout, by its heartbeat, and by a one-second check that the client is
still connected. A process runs at most `FeedSlots.size` waiting feeds; a feed that finds no
free slot ends at once with what it has, instead of taking a thread from other requests.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..store.errors import DbNotFound
from ..store.notify import Notifier, State
from ..store.serialize import dumps
from .changes_query import FeedTiming

log = logging.getLogger("settee.feeds")

PAGE = 1000  # rows read per transaction
CLIENT_CHECK = 1.0  # seconds between checks that a waiting feed's client is still there
MAX_FEEDS = 64


@dataclass(slots=True)
class Batch:
    """Rows read in one transaction: (row JSON, its seq for eventsource ids)."""

    rows: list[tuple[bytes, Any]] = field(default_factory=list)
    exhausted: bool = True  # nothing more to read right now
    state: State = None  # what the read saw, the baseline to wait from


class FeedSource(Protocol):
    """What the loop needs from a feed: batches, a position, and how much is left."""

    key: str | None  # what to watch in the notifier (a db name, or ANY)
    gone: bool  # set when the database disappeared under the feed

    def read(self, max_rows: int) -> Batch:
        """The next rows (at most `max_rows`), advancing the source's position."""
        ...

    def last_seq(self) -> Any:
        """The position to report as `last_seq`."""
        ...

    def pending(self) -> int | None:
        """How many changes lie beyond `last_seq` (None: the feed has no `pending`)."""
        ...


class Format:
    """One wire format: head, rows, heartbeat and tail bytes."""

    def __init__(self, feed: str, *, with_pending: bool = True) -> None:
        self.feed = feed
        self.with_pending = with_pending
        self.first = True

    def head(self) -> bytes:
        return b'{"results":[\n' if self.feed in ("normal", "longpoll") else b""

    def rows(self, rows: list[tuple[bytes, Any]]) -> bytes:
        if self.feed == "continuous":
            return b"".join(row + b"\n" for row, _ in rows)
        if self.feed == "eventsource":
            return b"".join(b"data: " + row + b"\nid: " + dumps(seq) + b"\n\n"
                            for row, seq in rows)
        body = b",\r\n".join(row for row, _ in rows)
        if not self.first:
            body = b",\r\n" + body
        self.first = False
        return body

    def heartbeat(self) -> bytes:
        return b"event: heartbeat\ndata: \n\n" if self.feed == "eventsource" else b"\n"

    def tail(self, last_seq: Any, pending: int | None) -> bytes:
        end = b'"last_seq":' + dumps(last_seq)
        if self.with_pending and pending is not None:
            end += b',"pending":' + dumps(pending)
        if self.feed in ("normal", "longpoll"):
            return b"\n],\n" + end + b"}\n"
        if self.feed == "continuous":
            return b"{" + end + b"}\n"
        return b""


class FeedSlots:
    """How many feeds may wait at once in this process; beyond it they end instead of waiting."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._sem = threading.BoundedSemaphore(size)

    def try_acquire(self) -> bool:
        return self._sem.acquire(blocking=False)

    def release(self) -> None:
        self._sem.release()


_slots: weakref.WeakKeyDictionary[Any, FeedSlots] = weakref.WeakKeyDictionary()
_slots_lock = threading.Lock()


def slots_for(app: Any, threads: int) -> FeedSlots:
    """The app's feed slots: most of its threads, so a few always serve other requests."""
    with _slots_lock:
        found = _slots.get(app)
        if found is None:
            size = max(1, min(MAX_FEEDS, threads - max(2, threads // 4)))
            found = _slots[app] = FeedSlots(size)
        return found


def client_gone_check(environ: dict[str, Any]) -> Callable[[], bool]:
    """A cheap test that the client hung up (gunicorn gives us its socket); False if unknown."""
    sock = environ.get("gunicorn.socket")
    if sock is None:
        return lambda: False

    def gone() -> bool:
        try:
            return bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"")
        except BlockingIOError:
            return False
        except ValueError:  # TLS sockets refuse flags: we cannot tell
            return False
        except OSError:
            return True
    return gone


@dataclass
class Waiting:
    """What a waiting feed needs from its process: the notifier, the slots, the client."""

    notifier: Notifier
    slots: FeedSlots
    client_gone: Callable[[], bool] = lambda: False


def stream(source: FeedSource, fmt: Format, *, limit: int | None, timing: FeedTiming,
           waiting: Waiting | None) -> Iterator[bytes]:
    """The response body of a feed; `waiting` None reads once and ends (the normal feed)."""
    try:
        yield from _stream(source, fmt, limit, timing, waiting)
    except GeneratorExit:
        raise
    except Exception:  # headers are out: all we can do is log and cut the stream short
        log.exception("changes feed failed while streaming")


def _stream(source: FeedSource, fmt: Format, limit: int | None, timing: FeedTiming,
            waiting: Waiting | None) -> Iterator[bytes]:
    pending_head = fmt.head()
    sent_any = emitted = False
    remaining = limit
    start = time.monotonic()
    deadline = None if timing.timeout_ms is None else start + timing.timeout_ms / 1000
    beat = None if timing.heartbeat_ms is None else timing.heartbeat_ms / 1000
    next_beat = start + beat if beat else None
    with ExitStack() as stack:
        watch, ticket = None, 0
        while remaining is None or remaining > 0:
            if watch is not None:
                ticket = watch.ticket()
            try:
                batch = source.read(PAGE if remaining is None else min(PAGE, remaining))
            except DbNotFound:  # deleted while we followed it: the feed ends, as CouchDB's
                source.gone = True
                break
            if batch.rows:
                yield pending_head + fmt.rows(batch.rows)
                pending_head, sent_any, emitted = b"", True, True
                if remaining is not None:
                    remaining -= len(batch.rows)
                if beat:
                    next_beat = time.monotonic() + beat
            if not batch.exhausted:
                if next_beat is not None and time.monotonic() >= next_beat:
                    yield pending_head + fmt.heartbeat()  # a long filtered scan: stay alive
                    pending_head, sent_any = b"", True
                    next_beat = time.monotonic() + (beat or 0)
                continue
            if waiting is None or (fmt.feed == "longpoll" and emitted) or remaining == 0:
                break
            if watch is None:
                if not waiting.slots.try_acquire():
                    break  # too many feeds wait in this process: answer now, do not wait
                stack.callback(waiting.slots.release)
                watch = stack.enter_context(waiting.notifier.watching(source.key, batch.state))
                ticket = watch.ticket()
                if not sent_any:
                    yield pending_head + b"\n"
                    pending_head, sent_any = b"", True
            while True:
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    break
                if next_beat is not None and now >= next_beat:
                    yield fmt.heartbeat()
                    next_beat = now + (beat or 0)
                if waiting.client_gone():
                    return
                until = min(t for t in (deadline, next_beat, now + CLIENT_CHECK) if t is not None)
                if watch.wait(ticket, until - now):
                    break
            if deadline is not None and time.monotonic() >= deadline:
                break
    pending = 0 if source.gone else source.pending()
    yield pending_head + fmt.tail(source.last_seq(), pending)
