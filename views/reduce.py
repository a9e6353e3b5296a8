"""Reducers as the indexer and the query see them: reduce, rereduce, finalize, exact subtraction.

A reduction is kept per key as a *state*: for the built-ins and custom functions alike, the value
the function returned, which rereduce accepts again (for `_approx_count_distinct`, the sketch;
`finalize` turns it into the count a response shows). A reduction that failed in a way CouchDB
reports as a row (`reduce_overflow_error`, bad `_stats` input) is a `ReduceFailure` state: it
propagates through rereduce and becomes an error row when shown. Any other error of a custom
reduce (a JavaScript exception, a timeout, a Python exception) is raised, so the index batch is
not applied and the query answers the error, as CouchDB's updater fails.

States are stored as JSON; a failure as `!` followed by its JSON, which no JSON text starts with.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import orjson

from ..store.serialize import dumps
from .design import DesignError


class _Inexact:
    def __repr__(self) -> str:
        return "INEXACT"


INEXACT: Any = _Inexact()
"""What `subtract` returns when it cannot remove values exactly: recompute the key instead."""


class ReduceFailure(Exception):
    """A reduction CouchDB answers as an error row; also usable as a stored state."""

    def __init__(self, error: str, reason: str) -> None:
        super().__init__(reason)
        self.error, self.reason = error, reason

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, ReduceFailure)
                and (self.error, self.reason) == (other.error, other.reason))

    def __hash__(self) -> int:
        return hash((self.error, self.reason))


class Reducer(Protocol):
    """What every reduce function offers (built-ins in `builtin_reduce`, custom ones here)."""

    name: str

    def reduce(self, keys: Sequence[Any], values: Sequence[Any]) -> Any:
        """Reduce map rows: `keys` are `[key, doc id]` pairs, `values` the emitted values."""
        ...

    def rereduce(self, states: Sequence[Any]) -> Any:
        """Combine partial reductions."""
        ...

    def finalize(self, state: Any) -> Any:
        """The value a response shows for a state."""
        ...

    def subtract(self, state: Any, removed: Sequence[Any], added: Sequence[Any]) -> Any:
        """The state after removing and adding values, or `INEXACT`."""
        ...


class Guarded:
    """Wraps a reducer so failure states propagate and never reach the function itself."""

    def __init__(self, inner: Reducer) -> None:
        self.inner = inner
        self.name = inner.name
        # `_count` and integer `_sum` add by arithmetic: the hot path of every index build.
        self.fast_add = inner.name in ("_count", "_sum")

    def reduce(self, keys: Sequence[Any], values: Sequence[Any]) -> Any:
        try:
            return self.inner.reduce(keys, values)
        except ReduceFailure as failure:
            return failure

    def rereduce(self, states: Sequence[Any]) -> Any:
        for state in states:
            if isinstance(state, ReduceFailure):
                return state
        if len(states) == 1:
            return states[0]
        try:
            return self.inner.rereduce(states)
        except ReduceFailure as failure:
            return failure

    def finalize(self, state: Any) -> Any:
        if isinstance(state, ReduceFailure):
            return state
        return self.inner.finalize(state)

    def subtract(self, state: Any, removed: Sequence[Any], added: Sequence[Any]) -> Any:
        if isinstance(state, ReduceFailure):
            return INEXACT
        return self.inner.subtract(state, removed, added)

    def add(self, state: Any, values: Sequence[Any]) -> Any:
        """`state` with `values` added by arithmetic, or `INEXACT` (then rereduce instead)."""
        if isinstance(state, ReduceFailure) or not self.fast_add:
            return INEXACT
        return self.inner.subtract(state, (), values)


class PythonReduce:
    """An operator-registered `fn(keys, values, rereduce)`."""

    def __init__(self, name: str, fn: Callable[[Any, Sequence[Any], bool], Any]) -> None:
        self.name, self.fn = name, fn

    def reduce(self, keys: Sequence[Any], values: Sequence[Any]) -> Any:
        return self._call(list(keys), values, False)

    def rereduce(self, states: Sequence[Any]) -> Any:
        return self._call(None, states, True)

    def _call(self, keys: Any, values: Sequence[Any], rereduce: bool) -> Any:
        try:
            return self.fn(keys, list(values), rereduce)
        except Exception as exc:  # re-raised as data: the query reports it, the server goes on
            raise DesignError(500, "reduce_error", f"{self.name}: {exc!r}") from exc

    def finalize(self, state: Any) -> Any:
        return state

    def subtract(self, state: Any, removed: Sequence[Any], added: Sequence[Any]) -> Any:
        return INEXACT


class JsReduce:
    """A JavaScript reduce run by the JS pool; overflow becomes a `reduce_overflow_error` state."""

    def __init__(self, pool: Any, ctx_key: str, ddoc: dict[str, Any], source: str,
                 overflow: type[BaseException]) -> None:
        self.pool, self.ctx_key, self.ddoc, self.source = pool, ctx_key, ddoc, source
        self.name = source
        self.overflow = overflow

    def _call(self, keys: Any, values: Sequence[Any], rereduce: bool) -> Any:
        try:
            return self.pool.reduce(self.ctx_key, self.ddoc, self.source, keys, list(values),
                                    rereduce)
        except self.overflow as exc:
            reason = getattr(exc, "reason", None) or str(exc)
            raise ReduceFailure("reduce_overflow_error", reason) from None

    def reduce(self, keys: Sequence[Any], values: Sequence[Any]) -> Any:
        return self._call(list(keys), values, False)

    def rereduce(self, states: Sequence[Any]) -> Any:
        return self._call(None, states, True)

    def finalize(self, state: Any) -> Any:
        return state

    def subtract(self, state: Any, removed: Sequence[Any], added: Sequence[Any]) -> Any:
        return INEXACT


def encode_state(state: Any) -> bytes:
    """A state as stored bytes."""
    if isinstance(state, ReduceFailure):
        return b"!" + dumps({"error": state.error, "reason": state.reason})
    return dumps(state)


def decode_state(data: bytes) -> Any:
    """Stored bytes back to a state."""
    if data[:1] == b"!":
        obj = orjson.loads(data[1:])
        return ReduceFailure(obj["error"], obj["reason"])
    return loads(data)


def loads(data: bytes) -> Any:
    """Decode stored JSON, keeping integers beyond 64 bits exact (orjson would make them floats)."""
    # A run of 19+ digits is the only way a JSON text can hold an integer orjson cannot keep;
    # counting digits first (one C pass) spares the regex for almost every text.
    if (len(data) >= 19 and len(data) - len(data.translate(None, _DIGITS)) >= 19
            and _DIGIT_RUN.search(data)):
        return json.loads(data)
    return orjson.loads(data)


_DIGITS = b"0123456789"


_DIGIT_RUN = re.compile(rb"[0-9]{19}")
