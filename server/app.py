"""The WSGI application: `Settee` (route, call the handler, funnel errors) and `create_app`."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from importlib import import_module
from typing import Any

from werkzeug.exceptions import NotFound
from werkzeug.routing import MapAdapter
from werkzeug.wrappers import Response

from ..store import Store, StoreConfig
from . import access, auth, cors
from .errors import BadRequest, UriTooLong, error_response
from .passwords import Hash
from .routes import reserved_map, url_map
from .settings import Settings, resolve
from .wrappers import SEGMENT_SLASH, SetteeRequest, raw_segments, routing_path, unslash

Handler = Callable[..., Response]
Plan = tuple[str, tuple[tuple[str, str], ...]]  # a path shape's endpoint and argument templates
log = logging.getLogger("settee")

_STAND_IN = re.compile("\x01(\\d+)\x02")
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
            # PostgreSQL: workers x this must stay below max_connections
            pool_size=max(2, min(8, settings.threads)),
        ))
        self.admin_hash: Hash | None = auth.admin_hash(settings)
        self.adapter: MapAdapter = url_map.bind("settee", "/")
        self.reserved: MapAdapter = reserved_map.bind("settee", "/")
        self._static_words = frozenset(
            part for rule in url_map.iter_rules() for part in rule.rule.split("/")
            if part and "<" not in part)
        self._plans: dict[tuple[str, tuple[str | None, ...]], Plan] = {}
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
            response = cors.preflight(self.settings, request) or self.dispatch(request, environ)
        except Exception as exc:  # the one funnel: every error becomes CouchDB JSON
            response = error_response(exc)
        cors.decorate(self.settings, request, response)
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
        if any(SEGMENT_SLASH in segment for segment in segments):
            raise BadRequest("URL must not contain the NUL character")
        endpoint, args = self.match(segments, request.method)
        self.store.setup()
        request.user_ctx = auth.authenticate(self, request)
        access.authorize(self, request, endpoint, args)
        handler = self.handlers[endpoint]
        return auth.decorate(self, request, handler(self, request, **args))

    def match(self, segments: list[str], method: str) -> tuple[str, dict[str, str]]:
        """The endpoint and decoded arguments for a path, through the route table.

        Matching depends only on the path's shape: which segments are empty, start with `_` or
        are a fixed word of some rule (`queries`), and the others. So each shape is matched once
        through the `Map` on a stand-in path, and the result says which segments fill which
        argument.
        """
        static = self._static_words
        shape = tuple(s if not s or s[0] == "_" or s in static else None for s in segments)
        key = (method, shape)
        plan = self._plans.get(key)
        if plan is None:
            stand_in = [s if s is not None else f"\x01{i}\x02" for i, s in enumerate(shape)]
            endpoint, args = self._match_path(routing_path(stand_in), method)
            plan = (endpoint, tuple(args.items()))
            if len(self._plans) > 4096:
                self._plans.clear()  # shapes with literal `_x` segments are unbounded
            self._plans[key] = plan
        endpoint, template = plan
        def fill(found: re.Match[str]) -> str:
            return segments[int(found.group(1))].replace("/", SEGMENT_SLASH)

        args = {name: unslash(_STAND_IN.sub(fill, value)) for name, value in template}
        return endpoint, args

    def _match_path(self, path: str, method: str) -> tuple[str, dict[str, str]]:
        if path.startswith("/_") or path.partition("/")[2].partition("/")[2].startswith("_"):
            try:  # a reserved resource answers 405 for the wrong method, never "bad db name"
                endpoint, args = self.reserved.match(path, method)
                return str(endpoint), dict(args)
            except NotFound:
                pass
        endpoint, args = self.adapter.match(path, method)
        return str(endpoint), dict(args)


def create_app(settings: Settings | Mapping[str, Any] | None = None) -> Settee:
    """Build the app from settings (a `Settings`, a mapping of overrides, or the environment)."""
    if not isinstance(settings, Settings):
        settings = resolve(settings)
    logging.basicConfig(level=getattr(logging, str(settings.log_level).upper(), logging.INFO))
    return Settee(settings)
