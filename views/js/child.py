"""The JavaScript child process: QuickJS contexts behind a pipe, one request at a time.

Run as `python -m settee.views.js.child PPID TIME_LIMIT MEMORY_LIMIT MAX_CONTEXTS` by `JsPool`.
Each request on stdin is a header line (JSON: `op`, `ctx`, `d` = bytes of design document that
follow, `n` = bytes of payload that follow, plus the operation's own fields), then those bytes.
Each answer on stdout is one JSON line. Contexts are keyed by the parent's context key (database,
design doc id and rev), each with its own QuickJS runtime, heap limit and CPU fuse, and kept in an
LRU of `MAX_CONTEXTS`; a context the child has not got (or has evicted) answers `{"need_ddoc":
true}` and the parent resends with the design document.

QuickJS's time limit counts process CPU time and cannot interrupt a backtracking regex, so it is
only a first fuse: the parent kills this process at a wall-clock deadline. The process exits on
EOF of stdin and, on Linux, by SIGKILL when the thread that spawned it dies (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import sys
from collections import OrderedDict
from typing import Any, BinaryIO

import orjson
import quickjs

from .driver import DRIVER_JS

STACK_LIMIT = 1 << 20  # about 1,700 frames of plain JS recursion


class Runtime:
    """One QuickJS context with the driver loaded; `run` returns the driver's JSON answer."""

    def __init__(self, ddoc: str, time_limit: float, memory_limit: int) -> None:
        self.context = quickjs.Context()
        self.context.set_memory_limit(memory_limit)
        self.context.set_max_stack_size(STACK_LIMIT)
        self.context.set_time_limit(time_limit)
        self.dispatch = self.context.eval(DRIVER_JS)
        self.run("setup", "", ddoc)

    def run(self, op: str, header: str, payload: str) -> str:
        answer = self.dispatch(op, header, payload)
        if not isinstance(answer, str):
            raise quickjs.JSException("Error: the driver answered a non-string")
        return answer


class Child:
    """The request loop and the LRU of runtimes."""

    def __init__(self, time_limit: float, memory_limit: int, max_contexts: int) -> None:
        self.time_limit = time_limit
        self.memory_limit = memory_limit
        self.max_contexts = max_contexts
        self.runtimes: OrderedDict[str, Runtime] = OrderedDict()

    def serve(self, stdin: BinaryIO, stdout: BinaryIO) -> None:
        while True:
            line = stdin.readline()
            if not line:
                return
            header = orjson.loads(line)
            ddoc = _read_exactly(stdin, header["d"])
            payload = _read_exactly(stdin, header["n"])
            if ddoc is None or payload is None:
                return
            answer = self.handle(header, line.decode(), ddoc, payload)
            stdout.write(answer + b"\n")
            stdout.flush()
            if answer.startswith(b'{"fatal"'):
                # A runtime that ran out of memory may be corrupt; freeing it can abort, so
                # leave without cleanup and let the parent reap us and spawn a fresh child.
                os._exit(0)

    def handle(self, header: dict[str, Any], line: str, ddoc: bytes, payload: bytes) -> bytes:
        key: str = header["ctx"]
        try:
            runtime = self.runtimes.get(key)
            if runtime is not None:
                self.runtimes.move_to_end(key)
            elif not ddoc:
                return b'{"need_ddoc":true}'
            else:
                runtime = Runtime(ddoc.decode(), self.time_limit, self.memory_limit)
                self.runtimes[key] = runtime
                while len(self.runtimes) > self.max_contexts:
                    self.runtimes.popitem(last=False)
            return runtime.run(header["op"], line, payload.decode()).encode()
        except quickjs.StackOverflow as exc:
            return _fatal("memory", _first_line(str(exc)))
        except quickjs.JSException as exc:
            message = _first_line(str(exc))
            if message == "InternalError: interrupted":
                return _fatal("timeout", message)
            if message in ("null", ""):  # QuickJS throws null when it cannot even allocate an Error
                return _fatal("memory", "InternalError: out of memory")
            if "out of memory" in message or "stack overflow" in message:
                return _fatal("memory", message)
            self.runtimes.pop(key, None)  # a driver-level failure: start this context afresh
            return orjson.dumps({"error": message})
        except (MemoryError, UnicodeError, ValueError) as exc:
            self.runtimes.pop(key, None)
            return orjson.dumps({"error": f"{type(exc).__name__}: {exc}"})


def _fatal(kind: str, reason: str) -> bytes:
    return orjson.dumps({"fatal": kind, "reason": reason})


def _first_line(message: str) -> str:
    return message.strip().split("\n", 1)[0]


def _read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    data = stream.read(size) if size else b""
    return data if len(data) == size else None


def _die_with_parent(ppid: int) -> None:
    """Ask Linux to SIGKILL us when our spawning thread dies; exit if it already has."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != ppid:
        os._exit(0)


def main(argv: list[str]) -> None:
    ppid, time_limit, memory_limit, max_contexts = argv
    _die_with_parent(int(ppid))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal ^C is the parent's to handle
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but answers may reach the pipe
    Child(float(time_limit), int(memory_limit), int(max_contexts)).serve(stdin, stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
