"""A gthread worker that slow clients cannot starve: headers are gathered before a thread is used.

Stock gthread hands a new connection to a pool thread as soon as a byte arrives and parses the
headers there on a blocking socket with no timeout, so a client trickling one header byte at a
time holds a thread forever, and a few dozen such clients hold them all (reliability.md section
3.3; the slowloris test). Here the event loop itself reads a new connection's bytes without
blocking until the request line and headers are complete, and only then gives it to a thread;
a connection whose headers do not arrive within `HEADER_TIMEOUT` is closed. In threads, every
read or write waits at most `SOCKET_TIMEOUT`, and the headers of a later request on a kept-alive
connection must arrive within `HEADER_TIMEOUT`. Large uploads and long feeds still work.

Workers also share out new connections: one holding more than another live worker leaves a new
connection to that one for a moment (`balance.py`).
"""

from __future__ import annotations

import errno
import selectors
import socket
import time
from functools import partial
from typing import Any, ClassVar

from gunicorn.workers.gthread import TConn, ThreadWorker

from .balance import ACCEPT_DEFER, SLOTS, Board

HEADER_TIMEOUT = 10.0  # seconds for the request line and headers
SOCKET_TIMEOUT = 60.0  # seconds any one read or write may block
MAX_HEADER_BYTES = 64 * 1024  # past this the parser takes over (and refuses what is too long)
HEADERS_END = (b"\r\n\r\n", b"\n\n")


class DeadlineSocket(socket.socket):
    """A socket whose blocking mode carries a timeout and, while headers arrive, a deadline."""

    deadline: float | None = None
    prefix: bytes = b""

    def gather(self) -> bool | None:
        """Read what has arrived without blocking: True once the headers are in, None on EOF."""
        try:
            data = socket.socket.recv(self, 65536)
        except (BlockingIOError, InterruptedError):
            return False
        if not data:
            return None
        self.prefix += data
        return len(self.prefix) > MAX_HEADER_BYTES or any(e in self.prefix for e in HEADERS_END)

    def setblocking(self, flag: bool) -> None:
        if flag:  # gthread switches to blocking when a thread takes the connection
            self.deadline = time.monotonic() + HEADER_TIMEOUT
            super().settimeout(SOCKET_TIMEOUT)
        else:
            super().setblocking(False)

    def _bound(self) -> None:
        if self.deadline is None or self.gettimeout() == 0.0:
            return
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("request headers took too long")
        super().settimeout(min(SOCKET_TIMEOUT, left))

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if self.prefix:
            data = self.prefix[:bufsize]
            if not flags & socket.MSG_PEEK:
                self.prefix = self.prefix[bufsize:]
            return data
        if flags & socket.MSG_DONTWAIT:  # a timeout would make Python wait despite the flag
            previous = self.gettimeout()
            super().settimeout(0.0)
            try:
                return super().recv(bufsize, flags)
            finally:
                super().settimeout(previous)
        self._bound()
        return super().recv(bufsize, flags)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        if self.prefix:
            view = memoryview(buffer)
            size = min(len(self.prefix), nbytes or len(view))
            view[:size] = self.prefix[:size]
            self.prefix = self.prefix[size:]
            return size
        self._bound()
        return super().recv_into(buffer, nbytes, flags)


class SetteeWorker(ThreadWorker):  # type: ignore[misc]  # gunicorn ships no type hints
    """gthread with `DeadlineSocket` connections, balanced across workers."""

    board: ClassVar[Board | None] = None  # created in the master, before any worker forks

    @classmethod
    def check_config(cls, cfg: Any, log: Any) -> None:
        """Called by the arbiter in the master: the shared table is made here, once."""
        super().check_config(cfg, log)
        if cls.board is None:
            cls.board = Board()

    def init_process(self) -> None:
        self._gathering: dict[Any, float] = {}
        self._slot = self.age % SLOTS
        self._defer_until: float | None = None
        super().init_process()

    def accept(self, listener: Any) -> None:
        """Take the new connection, unless another worker holds fewer: then leave it to that
        one for `ACCEPT_DEFER` and take it afterwards if it is still waiting."""
        if self._busier_than_another():
            self._defer_until = time.monotonic() + ACCEPT_DEFER
            self.set_accept_enabled(False)
            return
        self._take(listener)

    def _busier_than_another(self) -> bool:
        if self.board is None:
            return False
        fewest = self.board.fewest_elsewhere(self._slot)
        return fewest is not None and fewest < self.nr_conns

    def set_accept_enabled(self, enabled: bool) -> None:
        """gthread's switch, which stays off while a new connection is left to another."""
        if enabled and self._defer_until is not None:
            return
        super().set_accept_enabled(enabled)

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        """gthread's wait, which publishes this worker's load first and ends a deferral."""
        if self.board is not None:
            if self.alive:
                self.board.publish(self._slot, self.nr_conns)
            else:  # shutting down: no more connections for this worker
                self.board.clear(self._slot)
        if self._defer_until is not None:
            timeout = max(0.0, min(timeout, self._defer_until - time.monotonic()))
        super().wait_for_and_dispatch_events(timeout)
        if self._defer_until is not None and time.monotonic() >= self._defer_until:
            self._defer_until = None  # the run loop switches accepting back on
            if self.alive:
                for listener in self.sockets:  # what no other worker took, this one takes
                    self._take(listener)

    def _take(self, listener: Any) -> None:
        """gthread's accept, but the headers are gathered by the event loop first."""
        try:
            client, addr = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        if self.board is not None:
            self.board.publish(self._slot, self.nr_conns)
        sock = DeadlineSocket(client.family, client.type, client.proto, fileno=client.detach())
        conn = TConn(self.cfg, sock, addr, listener.getsockname())  # leaves it non-blocking
        if self.cfg.is_ssl:  # TLS bytes cannot be inspected here: gthread's own path
            sock.setblocking(True)
            self.enqueue_req(conn)
            return
        self._gathering[conn] = time.monotonic() + HEADER_TIMEOUT
        self.poller.register(sock, selectors.EVENT_READ, partial(self._on_header_bytes, conn))

    def _on_header_bytes(self, conn: Any, sock: DeadlineSocket) -> None:
        state = sock.gather()
        if state is False:
            return
        self.poller.unregister(sock)
        self._gathering.pop(conn, None)
        if state is None:
            self._drop(sock)
            return
        conn.data_ready = True
        self.enqueue_req(conn)

    def murder_pending(self) -> None:
        """gthread's sweep, plus connections whose headers are overdue."""
        super().murder_pending()
        now = time.monotonic()
        for conn, deadline in list(self._gathering.items()):
            if deadline < now:
                del self._gathering[conn]
                self.poller.unregister(conn.sock)
                self._drop(conn.sock)

    def _drop(self, sock: socket.socket) -> None:
        self.nr_conns -= 1
        try:
            sock.close()
        except OSError:
            pass

    def handle_request(self, req: Any, conn: Any) -> Any:
        """The headers are in: from here only the per-operation timeout applies."""
        if isinstance(conn.sock, DeadlineSocket):
            conn.sock.deadline = None
        return super().handle_request(req, conn)
