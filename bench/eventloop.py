"""One client process's connections, driven by a single thread on a selector (epoll on Linux).

Threads would cost a GIL hand-off per response (about twice the CPU per request, measured here);
one thread waiting on all its sockets at once costs a `select` and a `recv` per response and little
Python. Each connection ("flow") has one request in flight, no pipelining: send, read the whole
response, record the latency, let the session judge it, send the next, until the flow's count or
the common deadline is reached or its session runs out of work.
"""

from __future__ import annotations

import selectors
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Protocol

from http1 import (
    RECV_SIZE,
    Connection,
    Dropped,
    HTTPError,
    Request,
    Response,
    ResponseParser,
    Target,
)

SAMPLES = 5  # error messages kept per flow
GIVE_UP_AFTER = 100  # failed requests in a row before a flow stops


@dataclass(frozen=True)
class Outcome:
    """What one request achieved: items done, and whether it fully succeeded."""

    items: int
    ok: bool = True
    error: str = ""


class Session(Protocol):
    """One connection's share of a workload; it may keep state between requests."""

    def request(self) -> Request | None:
        """The next (method, path, body), or None when this session has nothing left to do."""
        ...

    def outcome(self, response: Response) -> Outcome:
        """Judge the response to the last request."""
        ...

    def keys(self) -> list[str]:
        """Ids this session wrote successfully (empty for read workloads)."""
        ...


@dataclass
class FlowResult:
    """What one connection did after the start."""

    items: int = 0
    requests: int = 0
    errors: int = 0
    latencies_ns: list[int] = field(default_factory=list)
    finished: float = 0.0
    samples: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    exhausted: bool = False


class Flow:
    """One keep-alive connection with at most one request in flight."""

    def __init__(self, session: Session, target: Target, quota: int, timeout: float) -> None:
        self.session = session
        self.target = target
        self.quota = quota
        self.timeout = timeout
        self.encoder = target.encoder()
        self.result = FlowResult()
        self.parser = ResponseParser()
        self.sock: socket.socket | None = None
        self.data = b""  # the request in flight
        self.unsent = memoryview(b"")
        self.began = 0  # perf_counter_ns at send
        self.reused = False  # the socket has answered a request before
        self.retried = False
        self.failures_in_a_row = 0
        self.done = False

    def warm_up(self) -> None:
        """Connect, and check with GET / that the server answers, before the clock starts."""
        conn = Connection(self.target, self.timeout)
        response = conn.request("GET", "/")
        if response.status >= 500:
            raise HTTPError(f"GET / -> {response.status} {response.body[:200]!r}")
        self.sock = conn.detach() or self.target.connect(self.timeout)
        self.sock.setblocking(False)
        self.reused = True

    # The loop calls these.

    def next(self, loop: Loop) -> None:
        """Send the next request, or finish."""
        if self.result.items >= self.quota or time.time() >= loop.deadline:
            return self.finish(loop)
        request = self.session.request()
        if request is None:
            self.result.exhausted = True
            return self.finish(loop)
        self.data = self.encoder.encode(*request)
        self.retried = False
        self.send(loop)

    def send(self, loop: Loop) -> None:
        if self.sock is None:
            try:
                self.sock = self.target.connect(self.timeout)
            except OSError as exc:
                return self.failed(loop, f"connect: {type(exc).__name__}: {exc}")
            self.sock.setblocking(False)
            self.reused = False
        self.unsent = memoryview(self.data)
        self.began = time.perf_counter_ns()
        self.writable(loop)

    def writable(self, loop: Loop) -> None:
        assert self.sock is not None
        try:
            while self.unsent:
                sent = self.sock.send(self.unsent)
                self.unsent = self.unsent[sent:]
        except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            loop.watch(self, write=True)  # called again when the socket can take more
            return
        except OSError as exc:
            return self.broken(loop, exc, idle=True)
        loop.watch(self, write=False)  # no system call unless it was watched for writing

    def readable(self, loop: Loop) -> None:
        assert self.sock is not None
        try:
            chunk = self.sock.recv(RECV_SIZE)
            if isinstance(self.sock, ssl.SSLSocket):
                while pending := self.sock.pending():
                    chunk += self.sock.recv(pending)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return
        except OSError as exc:
            return self.broken(loop, exc, idle=not self.parser.started)
        try:
            if not chunk:
                response: Response | None = self.parser.eof()
            else:
                self.parser.feed(chunk)
                response = self.parser.next()
        except Dropped as exc:
            return self.broken(loop, exc, idle=exc.idle)
        except HTTPError as exc:
            return self.broken(loop, exc, idle=False)
        if response is None:
            return
        elapsed = time.perf_counter_ns() - self.began
        self.reused = True
        if not response.keep_alive:
            self.close(loop)
        try:
            outcome = self.session.outcome(response)
        except (ValueError, LookupError, TypeError) as exc:  # a body that is not what CouchDB sends
            body = response.body[:160]
            outcome = Outcome(0, False, f"{response.status} {body!r}: {type(exc).__name__}: {exc}")
        self.record(elapsed, outcome)
        self.next(loop)

    def expired(self, loop: Loop) -> None:
        """The request has waited longer than the timeout."""
        self.close(loop)
        self.failed(loop, f"no response in {self.timeout:g}s")

    # Bookkeeping.

    def broken(self, loop: Loop, exc: BaseException, *, idle: bool) -> None:
        was_reused = self.reused
        self.close(loop)
        # A keep-alive connection the server dropped while idle fails before any byte of the
        # response arrives; only then is it safe to send the same request again.
        if idle and was_reused and not self.retried:
            self.retried = True
            return self.send(loop)
        self.failed(loop, f"{type(exc).__name__}: {exc}")

    def failed(self, loop: Loop, message: str) -> None:
        self.record(time.perf_counter_ns() - self.began, Outcome(0, False, message))
        if self.failures_in_a_row >= GIVE_UP_AFTER:
            return self.finish(loop)
        self.next(loop)

    def record(self, elapsed_ns: int, outcome: Outcome) -> None:
        result = self.result
        result.latencies_ns.append(elapsed_ns)
        result.requests += 1
        result.items += outcome.items
        if outcome.ok:
            self.failures_in_a_row = 0
            return
        result.errors += 1
        self.failures_in_a_row += 1
        if len(result.samples) < SAMPLES:
            result.samples.append(outcome.error)

    def close(self, loop: Loop) -> None:
        if self.sock is not None:
            loop.forget(self)
            self.sock.close()
            self.sock = None
        self.parser.reset()

    def finish(self, loop: Loop) -> None:
        self.close(loop)
        self.done = True
        self.result.finished = time.time()
        self.result.keys = self.session.keys()


class Loop:
    """The selector the flows of one process share."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.selector = selectors.DefaultSelector()
        self.registered: dict[Flow, int] = {}

    def watch(self, flow: Flow, *, write: bool) -> None:
        """Wake `flow` when its socket is readable (and writable, while it has bytes to send)."""
        assert flow.sock is not None
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if write else 0)
        current = self.registered.get(flow)
        if current == events:
            return
        if current is None:
            self.selector.register(flow.sock, events, flow)
        else:
            self.selector.modify(flow.sock, events, flow)
        self.registered[flow] = events

    def forget(self, flow: Flow) -> None:
        if self.registered.pop(flow, None) is not None:
            assert flow.sock is not None
            self.selector.unregister(flow.sock)

    def run(self, flows: list[Flow]) -> None:
        """Drive every flow until all are done."""
        for flow in flows:
            flow.next(self)
        checked = time.perf_counter_ns()
        while not all(flow.done for flow in flows):
            for key, mask in self.selector.select(timeout=0.5):
                flow = key.data
                if mask & selectors.EVENT_WRITE and flow.sock is not None:
                    flow.writable(self)
                if mask & selectors.EVENT_READ and flow.sock is not None:
                    flow.readable(self)
            now = time.perf_counter_ns()
            if now - checked > 500_000_000:  # look for hung requests twice a second
                checked = now
                for flow in flows:
                    late = now - flow.began > flow.timeout * 1e9
                    if late and not flow.done and flow.sock is not None:
                        flow.expired(self)
        self.selector.close()
