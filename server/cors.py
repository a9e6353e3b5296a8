"""CORS, as a setting: preflight answers and the `Access-Control-*` headers of responses.

Follows CouchDB's `chttpd_cors.erl`. CORS is off unless `cors_origins` lists origins (or `*`);
while it is off, or for an origin not listed, no response carries any `Access-Control-*` header,
and an `OPTIONS` request is routed like any other (405). A preflight (`OPTIONS` with `Origin` and
`Access-Control-Request-Method`) from an allowed origin, for a method and request headers CouchDB
supports (plus `cors_headers`), is answered before authentication with 204 and
`Access-Control-Allow-Origin`, `-Allow-Methods`, `-Allow-Headers` (the ones asked for) and
`-Max-Age`; with an unsupported method or header it is routed as an ordinary `OPTIONS` (405,
no `-Allow-Methods`), so the browser refuses the request.

Every other response to an allowed origin gets `Access-Control-Allow-Origin` and
`Access-Control-Expose-Headers` (`content-type` and CouchDB's headers). The origin is echoed
only when it is one of those listed (with `Vary: Origin`); with `*`, the answer is `*`, which
browsers never pair with credentials. `Access-Control-Allow-Credentials: true` is sent only with
`cors_credentials` and an explicit list (the settings refuse `*` with credentials), so an
arbitrary origin is never echoed with credentials.
"""

from __future__ import annotations

from werkzeug.wrappers import Response

from .settings import Settings
from .wrappers import SetteeRequest

SUPPORTED_METHODS = ("CONNECT", "COPY", "DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT",
                     "TRACE")
SUPPORTED_HEADERS = frozenset((
    "accept", "accept-language", "authorization", "content-length", "content-range",
    "content-type", "destination", "expires", "if-match", "last-modified", "origin", "pragma",
    "x-couch-full-commit", "x-couch-id", "x-couch-persist", "x-couchdb-www-authenticate",
    "x-http-method-override", "x-requested-with", "x-couchdb-vhost-path"))
EXPOSED_HEADERS = ("content-type", "accept-ranges", "etag", "server", "x-couch-request-id",
                   "x-couch-update-newrev", "x-couchdb-body-time")
MAX_AGE = "600"


def _allowed_origin(settings: Settings, request: SetteeRequest) -> str | None:
    """The `Access-Control-Allow-Origin` value for this request, or None (CORS off, no
    `Origin`, or an origin that is not allowed)."""
    origins = settings.cors_origins
    origin = request.headers.get("Origin")
    if not origins or not origin:
        return None
    if "*" in origins:
        return "*"
    wanted = origin.strip().lower()
    if any(wanted == allowed.lower() for allowed in origins):
        return origin.strip()
    return None


def _credentials(settings: Settings, allow_origin: str) -> bool:
    return bool(settings.cors_credentials) and allow_origin != "*"


def preflight(settings: Settings, request: SetteeRequest) -> Response | None:
    """The answer to a CORS preflight (`OPTIONS` with `Access-Control-Request-Method`), or None."""
    if request.method != "OPTIONS" or not settings.cors_origins:
        return None
    allow_origin = _allowed_origin(settings, request)
    method = request.headers.get("Access-Control-Request-Method")
    if allow_origin is None or method is None or method.strip() not in SUPPORTED_METHODS:
        return None
    asked = request.headers.get("Access-Control-Request-Headers", "").strip()
    names = [h.strip().lower() for h in asked.split(",") if h.strip()]
    extra = {h.lower() for h in settings.cors_headers}
    if any(name not in SUPPORTED_HEADERS and name not in extra for name in names):
        return None
    headers = {"Access-Control-Allow-Origin": allow_origin,
               "Access-Control-Max-Age": MAX_AGE,
               "Access-Control-Allow-Methods": ", ".join(SUPPORTED_METHODS)}
    if names:
        headers["Access-Control-Allow-Headers"] = asked
    if _credentials(settings, allow_origin):
        headers["Access-Control-Allow-Credentials"] = "true"
    if allow_origin != "*":
        headers["Vary"] = "Origin"
    response = Response(b"", status=204, headers=headers)
    del response.headers["Content-Type"]
    return response


def decorate(settings: Settings, request: SetteeRequest, response: Response) -> None:
    """Add the CORS headers a response to an allowed origin needs (none when CORS is off)."""
    if not settings.cors_origins or "Access-Control-Allow-Origin" in response.headers:
        return  # CORS is off, or this is a preflight answer, complete as it is
    allow_origin = _allowed_origin(settings, request)
    if allow_origin is None:
        return
    response.headers["Access-Control-Allow-Origin"] = allow_origin
    if _credentials(settings, allow_origin):
        response.headers["Access-Control-Allow-Credentials"] = "true"
    response.headers["Access-Control-Expose-Headers"] = ", ".join(EXPOSED_HEADERS)
    if allow_origin != "*":
        response.vary.add("Origin")
