"""The WSGI application: `Settee` (route, call the handler, funnel errors) and `create_app`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from importlib import import_module
from typing import Any

from werkzeug.exceptions import NotFound
from werkzeug.routing import MapAdapter
from werkzeug.wrappers import Response

from ..store import Store, StoreConfig
from .errors import BadRequest, UriTooLong, error_response
from .routes import reserved_map, url_map
from .settings import Settings, resolve
from .wrappers import SetteeRequest, raw_segments, routing_path, unslash

Handler = Callable[..., Response]
log = logging.getLogger("settee")

SERVER_HEADER = "settee/0.1.0 (CouchDB/3.4.2 compatible)"


class Settee:
    """The app: one store, one route adapter, handlers looked up by endpoint name."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = Store(StoreConfig(
            url=settings.store_url,
            synchronous=settings.sqlite_synchronous,
            busy_timeout_ms=settings.busy_timeout_ms,
            compress_threshold=settings.compress_threshold or None,
            pool_size=max(4, min(32, settings.threads)),
        ))
        self.adapter: MapAdapter = url_map.bind("settee", "/")
        self.reserved: MapAdapter = reserved_map.bind("settee", "/")
        self.handlers: dict[str, Handler] = {}
        for rule in url_map.iter_rules():
            module, _, name = rule.endpoint.partition(".")
            handler_module = import_module(f"{__package__}.handlers.{module}")
            self.handlers[rule.endpoint] = getattr(handler_module, name)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        request = SetteeRequest(environ)
        request.settings = self.settings
        try:
            response = self.dispatch(request, environ)
        except Exception as exc:  # the one funnel: every error becomes CouchDB JSON
            response = error_response(exc)
        response.headers["Server"] = SERVER_HEADER
        if request.method == "HEAD":
            response.headers["Content-Length"] = str(response.calculate_content_length() or 0)
            response.response = []
        return response(environ, start_response)

    def dispatch(self, request: SetteeRequest, environ: dict[str, Any]) -> Response:
        """Route on the raw path and call the handler with decoded arguments."""
        uri = environ.get("RAW_URI") or environ.get("REQUEST_URI") or ""
        if len(uri) > self.settings.max_uri_length:
            raise UriTooLong()
        segments = raw_segments(environ)
        if segments is None:
            raise BadRequest("URL must be valid UTF-8 after percent-decoding")
        path = routing_path(segments)
        if any(s.startswith("_") for s in segments[:2]):
            try:  # a reserved resource answers 405 for the wrong method, never "bad db name"
                endpoint, args = self.reserved.match(path, request.method)
            except NotFound:
                endpoint, args = self.adapter.match(path, request.method)
        else:
            endpoint, args = self.adapter.match(path, request.method)
        self.store.setup()
        handler = self.handlers[endpoint]
        return handler(self, request, **{k: unslash(v) for k, v in args.items()})


def create_app(settings: Settings | Mapping[str, Any] | None = None) -> Settee:
    """Build the app from settings (a `Settings`, a mapping of overrides, or the environment)."""
    if not isinstance(settings, Settings):
        settings = resolve(settings)
    logging.basicConfig(level=getattr(logging, str(settings.log_level).upper(), logging.INFO))
    return Settee(settings)
