"""Parent side of one JavaScript child process: spawn, one request with a deadline, kill.

Both pipe ends are driven with `poll` and non-blocking writes, so neither a child that stops
reading nor one that never answers can hold the caller past its deadline; the caller then kills
the process (SIGKILL, then reaps it so no zombie or pinned core is left behind).
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections import OrderedDict
from typing import Any

import orjson

CHUNK = 1 << 20


class Deadline(Exception):
    """The child did not answer in time."""


class Died(Exception):
    """The child closed its pipe or exited."""


class JsProcess:
    """A running child; `known` remembers (LRU) which context keys were sent their design doc."""

    def __init__(self, time_limit: float, memory_limit: int, max_contexts: int) -> None:
        argv = [sys.executable, "-m", "settee.views.js.child",
                str(os.getpid()), repr(time_limit), str(memory_limit), str(max_contexts)]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     bufsize=0, close_fds=True)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in = self.proc.stdin.fileno()
        self._out = self.proc.stdout.fileno()
        os.set_blocking(self._in, False)
        self._buffer = bytearray()
        self.known: OrderedDict[str, None] = OrderedDict()
        self.max_known = max_contexts

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def remember(self, key: str) -> None:
        self.known[key] = None
        self.known.move_to_end(key)
        while len(self.known) > self.max_known:
            self.known.popitem(last=False)

    def request(self, header: dict[str, Any], ddoc: bytes, payload: bytes,
                deadline: float) -> Any:
        """Send one request and return the child's decoded answer, or raise Deadline/Died."""
        header = {**header, "d": len(ddoc), "n": len(payload)}
        self._write(b"".join((orjson.dumps(header), b"\n", ddoc, payload)), deadline)
        line = self._read_line(deadline)
        try:
            return orjson.loads(line)
        except orjson.JSONDecodeError:
            import json  # QuickJS may escape lone surrogates, which orjson refuses

            try:
                return json.loads(line)
            except ValueError as exc:
                raise Died(f"unreadable answer: {exc}") from None

    def kill(self) -> None:
        """SIGKILL the child and reap it; safe to call more than once."""
        try:
            self.proc.kill()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL is not ignorable
            pass
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass

    def forget(self) -> None:
        """Drop our pipe ends without signalling: used in a forked copy of the parent."""
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass

    def _write(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        poller = select.poll()
        poller.register(self._in, select.POLLOUT)
        while view:
            try:
                sent = os.write(self._in, view)
                view = view[sent:]
                continue
            except BlockingIOError:
                pass
            except (BrokenPipeError, OSError) as exc:
                raise Died(str(exc)) from None
            self._wait(poller, deadline)

    def _read_line(self, deadline: float) -> bytes:
        buffer = self._buffer
        scanned = 0
        poller = select.poll()
        poller.register(self._out, select.POLLIN)
        while True:
            end = buffer.find(b"\n", scanned)
            if end >= 0:
                line = bytes(buffer[:end])
                del buffer[: end + 1]
                return line
            scanned = len(buffer)
            self._wait(poller, deadline)
            chunk = os.read(self._out, CHUNK)
            if not chunk:
                raise Died(f"exit status {self.proc.poll()}")
            buffer += chunk

    @staticmethod
    def _wait(poller: select.poll, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not poller.poll(remaining * 1000):
            raise Deadline()
