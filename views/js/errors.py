"""Failures of the JavaScript runtime, each carrying CouchDB's error name and a reason string."""

from __future__ import annotations

from typing import Any


class JsFailure(Exception):
    """Base of every failure a JavaScript call reports; `error` is the CouchDB error name."""

    error: str = "os_process_error"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class JsTimeout(JsFailure):
    """The call ran past its wall-clock deadline (or QuickJS's CPU fuse); its process was killed."""


class JsMemory(JsFailure):
    """The call exhausted the context's heap or stack limit; its process was killed."""


class JsCrash(JsFailure):
    """The JavaScript process died or answered garbage; it has been replaced."""


class JsBusy(JsFailure):
    """No JavaScript process came free within the pool's bounded wait."""


class JsError(JsFailure):
    """JavaScript raised an `Error` (TypeError, ReferenceError, ...) out of a design function."""

    error = "javascript_error"


class JsCompileError(JsFailure):
    """A function's source does not evaluate to a function (CouchDB: `compilation_error`)."""

    error = "compilation_error"


class JsMissingFunction(JsFailure):
    """`call()` named a path that holds no function source in the design document."""

    error = "not_found"


class JsThrow(JsFailure):
    """The function threw a non-Error value, e.g. `throw({forbidden: "no"})`; `value` holds it."""

    error = "javascript_throw"

    def __init__(self, value: Any) -> None:
        self.value = value
        super().__init__(_describe(value))


class ReduceOverflow(JsFailure):
    """A JS reduce whose output does not shrink fast enough (CouchDB's `reduce_limit` check)."""

    error = "reduce_overflow_error"


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        for key in ("forbidden", "unauthorized"):
            reason = value.get(key)
            if isinstance(reason, str):
                return reason
    return repr(value)
