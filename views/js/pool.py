"""`JsPool`: a few QuickJS child processes that run design-document JavaScript for many threads.

Each call takes a free child (waiting a bounded time), sends one batch and waits for one answer
until a wall-clock deadline of `time_limit` plus a short grace; a child that overruns it, exhausts
its memory or dies is killed and its slot refilled on the next call, and the call raises a
`JsFailure`. Children are spawned lazily, from one long-lived thread (so Linux's parent-death
signal, which follows the spawning thread, fires only when this process dies), and a pool copied
into a forked process starts afresh instead of sharing its parent's pipes.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Self

import orjson

from .errors import (
    JsBusy,
    JsCompileError,
    JsCrash,
    JsError,
    JsFailure,
    JsMemory,
    JsMissingFunction,
    JsThrow,
    JsTimeout,
    ReduceOverflow,
)
from .process import Deadline, Died, JsProcess

log = logging.getLogger("settee.views.js")

GRACE = 0.5  # seconds past the QuickJS fuse before the parent's SIGKILL
TIMEOUT_REASON = "OS process timed out."  # CouchDB's text for os_process_error


class JsPool:
    """Thread-safe pool of JavaScript processes; see the module docstring."""

    def __init__(self, size: int = 2, time_limit: float = 5.0, memory_limit: int = 64 << 20,
                 max_contexts: int = 64, *, wait_limit: float = 30.0,
                 reduce_limit: bool = True) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self.size = size
        self.time_limit = time_limit
        self.memory_limit = memory_limit
        self.max_contexts = max_contexts
        self.wait_limit = wait_limit
        self.reduce_limit = reduce_limit
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._cond = threading.Condition()
        self._idle: list[JsProcess] = []
        self._all: set[JsProcess] = set()
        self._slots = 0  # children running or being spawned
        self._closed = False
        self._spawner = ThreadPoolExecutor(1, thread_name_prefix="settee-js-spawn")

    # -- public API ---------------------------------------------------------------------------

    def map_docs(self, ctx_key: str, ddoc: dict[str, Any], functions: list[str],
                 docs: list[dict[str, Any]]) -> list[list[list[tuple[Any, Any]]]]:
        """For each doc, for each map function, the `(key, value)` pairs it emitted."""
        if not docs:
            return []
        reply = self._run(ctx_key, ddoc, {"op": "map", "fns": functions}, _dumps(docs))
        try:
            result = [[[(key, value) for key, value in rows] for rows in per_doc]
                      for per_doc in reply["rows"]]
        except (KeyError, TypeError, ValueError):
            raise JsError("malformed map output") from None
        if len(result) != len(docs) or any(len(per_doc) != len(functions) for per_doc in result):
            raise JsError("malformed map output")
        return result

    def reduce(self, ctx_key: str, ddoc: dict[str, Any], source: str, keys: list[Any] | None,
               values: list[Any], rereduce: bool) -> Any:
        """CouchDB's `reduce(keys, values, rereduce)`; keys are `[key, docid]` pairs or None."""
        header = {"op": "reduce", "src": source, "rereduce": rereduce, "limit": self.reduce_limit}
        reply = self._run(ctx_key, ddoc, header, _dumps([keys, values]))
        if "overflow" in reply:
            size_in, size_out = reply["overflow"]
            raise ReduceOverflow("Reduce output must shrink more rapidly: "
                                 f"input size: {size_in} output size: {size_out}")
        return _single(reply)

    def call(self, ctx_key: str, ddoc: dict[str, Any], path: list[str], args: list[Any]) -> Any:
        """Call the function at `ddoc[path...]` with `args` and `this` = ddoc; return its result."""
        reply = self._run(ctx_key, ddoc, {"op": "call", "path": path}, _dumps(args))
        if "thrown" in reply:
            raise JsThrow(reply["thrown"])
        if "missing" in reply:
            raise JsMissingFunction(str(reply["missing"]))
        return _single(reply)

    def pids(self) -> list[int]:
        """Process ids of the running children (for monitoring and tests)."""
        with self._cond:
            return sorted(p.pid for p in self._all)

    def close(self) -> None:
        """Kill every child; calls in flight fail with JsCrash, later calls with JsFailure."""
        with self._cond:
            self._closed = True
            doomed = list(self._all)
            self._idle.clear()
            self._cond.notify_all()
        for proc in doomed:
            proc.kill()
        self._spawner.shutdown(wait=False)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one exchange -------------------------------------------------------------------------

    def _run(self, ctx_key: str, ddoc: dict[str, Any], header: dict[str, Any],
             payload: bytes) -> dict[str, Any]:
        proc = self._acquire(ctx_key)
        healthy = False
        try:
            reply = self._exchange(proc, ctx_key, ddoc, {**header, "ctx": ctx_key}, payload)
            healthy = True
        finally:
            self._release(proc, healthy)
        for line in reply.get("logs", ()):
            log.info("%s: %s", ctx_key, line)
        for line in reply.get("errors", ()):
            log.warning("%s: %s", ctx_key, line)
        if "compile_error" in reply:
            raise JsCompileError(str(reply["compile_error"]))
        if "error" in reply:
            raise JsError(str(reply["error"]))
        return reply

    def _exchange(self, proc: JsProcess, ctx_key: str, ddoc: dict[str, Any],
                  header: dict[str, Any], payload: bytes) -> dict[str, Any]:
        ddoc_json = b"" if ctx_key in proc.known else _dumps(ddoc)
        for _ in range(2):
            deadline = time.monotonic() + self.time_limit + GRACE
            try:
                reply = proc.request(header, ddoc_json, payload, deadline)
            except Deadline:
                raise JsTimeout(TIMEOUT_REASON) from None
            except Died as exc:
                raise JsCrash(f"JavaScript process died ({exc})") from None
            if not isinstance(reply, dict):
                raise JsCrash("JavaScript process answered garbage")
            if reply.get("need_ddoc") and not ddoc_json:
                ddoc_json = _dumps(ddoc)
                continue
            fatal = reply.get("fatal")
            if fatal == "timeout":
                raise JsTimeout(TIMEOUT_REASON)
            if fatal is not None:
                raise JsMemory(str(reply.get("reason", "out of memory")))
            proc.remember(ctx_key)
            return reply
        raise JsCrash("JavaScript process keeps asking for the design document")

    # -- checkout -----------------------------------------------------------------------------

    def _acquire(self, ctx_key: str) -> JsProcess:
        if os.getpid() != self._pid:
            self._after_fork()
        deadline = time.monotonic() + self.wait_limit
        with self._cond:
            while True:
                if self._closed:
                    raise JsFailure("the JavaScript pool is closed")
                while self._idle:
                    proc = self._pick(ctx_key)
                    if proc.alive():
                        return proc
                    self._discard(proc)
                if self._slots < self.size:
                    self._slots += 1
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise JsBusy(f"no JavaScript process came free within {self.wait_limit} s")
                self._cond.wait(remaining)
        try:
            proc = self._spawner.submit(JsProcess, self.time_limit, self.memory_limit,
                                        self.max_contexts).result()
        except BaseException as exc:
            with self._cond:
                self._slots -= 1
                self._cond.notify()
            if isinstance(exc, OSError):
                raise JsCrash(f"cannot start a JavaScript process: {exc}") from exc
            raise
        with self._cond:
            self._all.add(proc)
            if self._closed:
                self._discard(proc)
                raise JsFailure("the JavaScript pool is closed")
        return proc

    def _pick(self, ctx_key: str) -> JsProcess:
        """Prefer an idle child that already holds this context (newest first)."""
        for i in range(len(self._idle) - 1, -1, -1):
            if ctx_key in self._idle[i].known:
                return self._idle.pop(i)
        return self._idle.pop()

    def _release(self, proc: JsProcess, healthy: bool) -> None:
        with self._cond:
            if healthy and not self._closed:
                self._idle.append(proc)
                self._cond.notify()
                return
            self._all.discard(proc)
            self._slots -= 1
            self._cond.notify()
        proc.kill()  # outside the lock: reaping must not stall other callers

    def _discard(self, proc: JsProcess) -> None:
        """Kill a child and free its slot; the caller holds the lock."""
        self._all.discard(proc)
        self._slots -= 1
        proc.kill()

    def _after_fork(self) -> None:
        for proc in list(self._all):
            proc.forget()
        self._reset()


def _dumps(value: Any) -> bytes:
    """JSON for the child; what orjson refuses (integers beyond 64 bits, lone surrogates) goes
    through the standard library, and JavaScript reads big integers as doubles, as CouchDB does."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":")).encode()  # ASCII: lone surrogates pass


def _single(reply: dict[str, Any]) -> Any:
    try:
        (value,) = reply["result"]
    except (KeyError, TypeError, ValueError):
        raise JsError("malformed output") from None
    return value
