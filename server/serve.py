"""settee under gunicorn: an embedded `BaseApplication` whose workers each build their own app.

The master process only resolves settings and binds the socket. `load()` runs in every worker after
`fork()` (settee never preloads), so each worker creates its app, its store and, on first use, its
database engine: no connection or file lock ever crosses a fork. Workers are `gthread`, so
long-poll feeds hold a thread rather than a whole process (DESIGN section 7; reliability.md 3.3).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]

from .app import create_app
from .settings import SettingError, Settings

LOOPBACK_NAMES = frozenset({"localhost"})
DEFAULT_PORT = 5984

# gunicorn's own defaults that settee overrides, and why.
LIMIT_REQUEST_LINE = 8190  # gunicorn's maximum; CouchDB's max_uri_length (8000) must fit
GRACEFUL_TIMEOUT = 10  # seconds a worker gets to finish its requests on SIGTERM
MAX_REQUESTS = 10_000  # recycle workers now and then ...
MAX_REQUESTS_JITTER = 1_000  # ... but not all at once
NEWER_GUNICORN = frozenset({"control_socket_disable"})  # settings gunicorn 23 does not know


@dataclass(frozen=True)
class Bind:
    """A parsed `host:port` (IPv6 hosts in brackets: `[::1]:5984`)."""

    host: str
    port: int

    @property
    def address(self) -> str:
        """The bind string gunicorn takes."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        """Whether only this machine can connect (127.0.0.0/8, ::1 or `localhost`)."""
        if self.host.lower() in LOOPBACK_NAMES:
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False  # any other name may resolve to a public address


def parse_bind(text: str) -> Bind:
    """`host:port`, `[v6]:port` or a bare host (port 5984); `SettingError` otherwise."""
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise SettingError(f"bind: expected [ipv6]:port, got {text!r}")
        port_text = rest[1:]
    elif text.count(":") > 1:
        raise SettingError(f"bind: put an IPv6 address in brackets, e.g. [::1]:5984, got {text!r}")
    else:
        host, _, port_text = text.partition(":")
    if not host:
        raise SettingError(f"bind: missing host in {text!r} (use 0.0.0.0 for every interface)")
    try:
        port = int(port_text) if port_text else DEFAULT_PORT
    except ValueError:
        raise SettingError(f"bind: port must be a number, got {port_text!r}") from None
    if not 0 <= port <= 65535:
        raise SettingError(f"bind: port must be between 0 and 65535, got {port}")
    return Bind(host, port)


def gunicorn_options(settings: Settings) -> dict[str, Any]:
    """The gunicorn settings for resolved settee settings."""
    return {
        "bind": [parse_bind(settings.bind).address],
        "worker_class": "gthread",
        "workers": settings.workers_or_default,
        "threads": settings.threads,
        "limit_request_line": LIMIT_REQUEST_LINE,
        "graceful_timeout": GRACEFUL_TIMEOUT,
        "max_requests": MAX_REQUESTS,
        "max_requests_jitter": MAX_REQUESTS_JITTER,
        "accesslog": "-",
        "loglevel": str(settings.log_level).lower(),
        "preload_app": False,  # the app (and its engine) is built in each worker, after fork
        "proc_name": "settee",
        # gunicorn >= 25 opens a control socket at one per-user path shared by every instance
        # on the machine; a second server would replace the first one's. settee does not use it.
        "control_socket_disable": True,
    }


class SetteeServer(BaseApplication):  # type: ignore[misc]  # gunicorn ships no type hints
    """gunicorn embedded: configuration from `Settings`, one app per worker."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        super().__init__(usage="settee serve", prog="settee")

    def load_config(self) -> None:
        for name, value in gunicorn_options(self.settings).items():
            if name in NEWER_GUNICORN and name not in self.cfg.settings:
                continue  # an older gunicorn (pyproject allows >= 23) without this setting
            self.cfg.set(name, value)

    def load(self) -> Any:
        return create_app(self.settings)


def run(settings: Settings) -> None:
    """Serve until gunicorn's master exits (it calls `sys.exit` itself)."""
    SetteeServer(settings).run()
