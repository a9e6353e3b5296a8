"""Every setting declared once, as data: name, default, environment variable, parser and help.

Precedence: defaults < `SETTEE_*` environment < explicit values (command line or the mapping
given to `create_app`). The README's settings table is checked against `SETTINGS` by a test.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


class SettingError(ValueError):
    """A setting with a value its parser refuses; the message names the setting."""


def _bool(text: str) -> bool:
    lowered = str(text).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _size(text: str) -> int:
    value = int(str(text).replace("_", ""))
    if value <= 0:
        raise ValueError("must be a positive number of bytes")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


def _synchronous(text: str) -> str:
    value = str(text).upper()
    if value not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise ValueError("must be one of OFF, NORMAL, FULL, EXTRA")
    return value


def _default_workers() -> int:
    return max(2, min(8, (os.cpu_count() or 1)))


@dataclass(frozen=True)
class Setting:
    """One declared setting."""

    name: str
    default: Any
    parse: Callable[[str], Any]
    help: str

    @property
    def env(self) -> str:
        return "SETTEE_" + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


SETTINGS: tuple[Setting, ...] = (
    Setting("bind", "127.0.0.1:5984", str, "Address and port to listen on (host:port)."),
    Setting("data_dir", "./data", str, "Directory of the embedded SQLite store."),
    Setting("database_url", "", str,
            "SQLAlchemy URL of the store (e.g. postgresql://user@host/db); "
            "empty means SQLite in data_dir."),
    Setting("workers", None, _positive, "gunicorn worker processes (default: CPU count, 2-8)."),
    Setting("threads", 16, _positive, "Threads per worker (gthread)."),
    Setting("sqlite_synchronous", "FULL", _synchronous,
            "SQLite PRAGMA synchronous: FULL (a 201 is on disk) or NORMAL (faster; the last "
            "commits can be lost on power failure, never corrupted)."),
    Setting("busy_timeout_ms", 10_000, _positive, "How long a write waits for the store's lock."),
    Setting("max_http_request_size", 64 * 1024 * 1024, _size,
            "Largest request body in bytes (413 too_large beyond)."),
    Setting("max_document_size", 8_000_000, _size,
            "Largest JSON document in bytes (413 document_too_large beyond)."),
    Setting("max_json_depth", 64, _positive, "Deepest nesting of arrays and objects in a body."),
    Setting("max_uri_length", 8000, _positive, "Longest request URI (414 beyond)."),
    Setting("uuids_max_count", 1000, _positive, "Most uuids one GET /_uuids may ask for."),
    Setting("max_bulk_docs", 10_000, _positive,
            "Most documents in one _bulk_docs, _bulk_get or _revs_diff request."),
    Setting("compress_threshold", 4096, int,
            "Bodies at least this many bytes are stored zstd-compressed (0 turns it off)."),
    Setting("log_level", "info", str, "Log level: debug, info, warning or error."),
)

BY_NAME = {s.name: s for s in SETTINGS}


class Settings:
    """Resolved settings; attribute access by name (`settings.data_dir`)."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = dict(values)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def as_dict(self) -> dict[str, Any]:
        """Every setting and its value."""
        return dict(self._values)

    @property
    def store_url(self) -> str:
        """The store URL: `database_url`, or the SQLite file in `data_dir`."""
        if self._values.get("database_url"):
            return str(self._values["database_url"])
        from ..store import sqlite_url
        return sqlite_url(self._values["data_dir"])

    @property
    def workers_or_default(self) -> int:
        return self._values.get("workers") or _default_workers()


def resolve(overrides: Mapping[str, Any] | None = None,
            environ: Mapping[str, str] | None = None) -> Settings:
    """Defaults, then `SETTEE_*` variables, then `overrides`; each value parsed and checked."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        raw: Any = setting.default
        if setting.env in environ:
            raw = environ[setting.env]
        if overrides and overrides.get(setting.name) is not None:
            raw = overrides[setting.name]
        values[setting.name] = _parse(setting, raw)
    unknown = set(overrides or ()) - set(BY_NAME)
    if unknown:
        raise SettingError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    return Settings(values)


def _parse(setting: Setting, raw: Any) -> Any:
    if raw is None or (not isinstance(raw, str) and raw == setting.default):
        return raw
    if not isinstance(raw, str):
        raw = str(raw)
    try:
        return setting.parse(raw)
    except (TypeError, ValueError) as exc:
        raise SettingError(f"{setting.name} ({setting.env}): {exc}") from None
