"""JavaScript for design documents: QuickJS in child processes, reached through `JsPool`."""

from __future__ import annotations

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
from .pool import JsPool

__all__ = [
    "JsBusy", "JsCompileError", "JsCrash", "JsError", "JsFailure", "JsMemory",
    "JsMissingFunction", "JsPool", "JsThrow", "JsTimeout", "ReduceOverflow",
]
