"""Python view functions: trusted code the server operator registers by dotted path in settings.

A design doc with `"language": "python"` names its functions, never sends their source:
`"map": "package.module:function"`, and optionally `"reduce": "package.module:function"` (or a
built-in such as `_sum`). Only paths the operator allowed are imported: the setting lists entries
separated by commas or whitespace, each `package.module:function` or `package.module:*` for every
function of a module. Anything else is refused, so a database admin cannot make the server import
arbitrary modules (the lesson of CVE-2017-12636).

A map function is `fn(doc) -> iterable of (key, value)`; a reduce function is
`fn(keys, values, rereduce) -> value`, called as CouchDB calls a JavaScript reduce.
"""

from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Callable
from typing import Any

from .design import DesignError

_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class Registry:
    """The allowed Python functions, imported on first use and cached."""

    def __init__(self, allowed: str | list[str] | tuple[str, ...] = "") -> None:
        entries = allowed.replace(",", " ").split() if isinstance(allowed, str) else allowed
        self.exact = {e for e in entries if not e.endswith(":*")}
        self.modules = {e[:-2] for e in entries if e.endswith(":*")}
        self._cache: dict[str, Callable[..., Any]] = {}
        self._lock = threading.Lock()

    def allows(self, path: str) -> bool:
        """Whether `path` may be imported."""
        if not _PATH.match(path):
            return False
        return path in self.exact or path.partition(":")[0] in self.modules

    def resolve(self, path: str) -> Callable[..., Any]:
        """The function at `path`, or a 400 `invalid_design_doc` if it is not registered."""
        found = self._cache.get(path)
        if found is not None:
            return found
        if not self.allows(path):
            raise DesignError(400, "invalid_design_doc",
                              f"Python view function {path!r} is not registered by the "
                              "server operator (setting python_views)")
        module_name, _, name = path.partition(":")
        with self._lock:
            try:
                fn = getattr(importlib.import_module(module_name), name)
            except (ImportError, AttributeError) as exc:
                raise DesignError(500, "invalid_design_doc",
                                  f"Python view function {path!r} cannot be loaded: {exc}"
                                  ) from None
            if not callable(fn):
                raise DesignError(500, "invalid_design_doc", f"{path!r} is not callable")
            self._cache[path] = fn
        loaded: Callable[..., Any] = fn
        return loaded
