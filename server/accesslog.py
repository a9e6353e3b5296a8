"""The access log: one line per request (method, path, status, duration, database), text or JSON.

`name_requests` makes every handler note its endpoint name and database in the WSGI environ, so
the access log and the metrics name a request exactly as the route table does, without routing
it twice. `AccessLog` wraps the app (same WSGI shape) and writes the line when the response has
been sent, so the duration includes streaming the body. `logging_config` is the `dictConfig` that
`settee serve` gives gunicorn, so its own log and settee's share the level and format.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

import orjson

if TYPE_CHECKING:
    from .app import Settee
    from .settings import Settings

ENDPOINT_KEY = "settee.endpoint"
DB_KEY = "settee.db"

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def name_requests(app: Settee) -> Settee:
    """Wrap each handler of `app` so it records its endpoint and database in the environ."""
    for endpoint, handler in list(app.handlers.items()):
        app.handlers[endpoint] = _named(endpoint, handler)
    return app


def _named(endpoint: str, handler: Callable[..., Any]) -> Callable[..., Any]:
    def named(app: Any, request: Any, **args: Any) -> Any:
        request.environ[ENDPOINT_KEY] = endpoint
        if "db" in args:
            request.environ[DB_KEY] = args["db"]
        return handler(app, request, **args)
    named.__name__ = getattr(handler, "__name__", endpoint)
    named.__doc__ = handler.__doc__
    return named


class Finished:
    """A response body that calls `done` once, after the server has closed it (sent it all).

    Lighter than werkzeug's `ClosingIterator`, which costs more than the metrics it guards.
    """

    __slots__ = ("body", "done")

    def __init__(self, body: Iterable[bytes], done: Callable[[], None]) -> None:
        self.body = body
        self.done = done

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.body)

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            self.done()


class AccessLog:
    """A WSGI layer that writes each request's line once its response has been sent.

    Lines go straight to a stream (stdout), not through `logging`: a log record costs about
    15 us, half of this whole layer, on every request.
    """

    def __init__(self, app: WsgiApp, *, json_lines: bool = False,
                 stream: TextIO | None = None) -> None:
        self.app = app
        self.json_lines = json_lines
        self.stream = stream
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        started = time.perf_counter()
        seen: list[str] = []

        def recording_start(status: str, headers: list[tuple[str, str]],
                            exc_info: Any = None) -> Any:
            seen[:] = [status, next((v for k, v in headers if k.lower() == "content-length"),
                                    "")]
            return start_response(status, headers, exc_info)

        try:
            body = self.app(environ, recording_start)
        except BaseException:
            self.log(environ, seen or ["500", ""], started)
            raise
        return Finished(body, lambda: self.log(environ, seen or ["0", ""], started))

    def log(self, environ: dict[str, Any], seen: list[str], started: float) -> None:
        """Write the line for one finished request."""
        status, length = int(seen[0][:3]), seen[1]
        duration = time.perf_counter() - started
        if self.json_lines:
            line = orjson.dumps(entry_for(environ, status, duration, length)).decode()
        else:
            line = text_line(entry_for(environ, status, duration, length))
        stream = self.stream or sys.stdout
        with self.lock:
            stream.write(line + "\n")
            stream.flush()


def entry_for(environ: dict[str, Any], status: int, duration: float,
              length: str | None) -> dict[str, Any]:
    """The fields of one access-log line."""
    path = environ.get("RAW_URI") or environ.get("REQUEST_URI") or (
        environ.get("PATH_INFO", "") + ("?" + environ["QUERY_STRING"]
                                        if environ.get("QUERY_STRING") else ""))
    return {
        "time": _now(),
        "remote": environ.get("REMOTE_ADDR", "-"),
        "method": environ.get("REQUEST_METHOD", "-"),
        "path": path,
        "status": status,
        "duration_ms": round(duration * 1000, 2),
        "db": environ.get(DB_KEY),
        "endpoint": environ.get(ENDPOINT_KEY),
        "bytes": int(length) if length and length.isdigit() else None,
    }


_second: list[Any] = [0, ""]  # the last whole second formatted, and its text


def _now() -> str:
    """UTC now as `2026-01-31T12:00:00.123Z`, formatting the date once per second."""
    now = time.time()
    whole = int(now)
    if _second[0] != whole:
        _second[:] = [whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))]
    return f"{_second[1]}.{int((now - whole) * 1000):03d}Z"


def text_line(entry: dict[str, Any]) -> str:
    """`time remote METHOD path status duration_ms db=NAME endpoint=NAME`, one line, printable."""
    path = entry["path"]
    if not (path.isascii() and path.isprintable() and " " not in path):
        path = "".join(c if "!" <= c <= "~" else _percent(c) for c in path)
    return (f"{entry['time']} {entry['remote']} {entry['method']} {path} {entry['status']} "
            f"{entry['duration_ms']:.2f}ms db={entry['db'] or '-'} "
            f"endpoint={entry['endpoint'] or '-'}")


def _percent(char: str) -> str:
    """A character the log line must not carry raw, percent-encoded (a latin-1 char is the raw
    byte gunicorn decoded it from)."""
    data = char.encode("latin-1") if ord(char) < 256 else char.encode("utf-8")
    return "".join(f"%{byte:02X}" for byte in data)


class JsonFormatter(logging.Formatter):
    """Log records as one JSON object per line (`log_format = "json"`)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def logging_config(settings: Settings) -> dict[str, Any]:
    """The `logging.config.dictConfig` for gunicorn's and settee's loggers."""
    formatter = "json" if settings.log_format == "json" else "text"
    level = settings.log_level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "text": {"format": "%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s",
                     "datefmt": "%Y-%m-%d %H:%M:%S %z"},
            "json": {"()": JsonFormatter},
        },
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": formatter,
                        "stream": "ext://sys.stderr"},
            "null": {"class": "logging.NullHandler"},
        },
        "root": {"level": level, "handlers": ["console"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["console"], "propagate": False},
            "gunicorn.access": {"handlers": ["null"], "propagate": False},  # settee writes its own
        },
    }


def wrap(app: WsgiApp, settings: Settings) -> WsgiApp:
    """`app` with the access log, or `app` itself when `access_log` is off."""
    if not settings.access_log:
        return app
    return AccessLog(app, json_lines=settings.log_format == "json")
