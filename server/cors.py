"""CORS, as a setting: preflight answers and the `Access-Control-*` headers of responses."""

from __future__ import annotations

from werkzeug.wrappers import Response

from .settings import Settings
from .wrappers import SetteeRequest


def preflight(settings: Settings, request: SetteeRequest) -> Response | None:
    """The answer to a CORS preflight (`OPTIONS` with `Access-Control-Request-Method`), or None."""
    if not settings.cors_origins:
        return None
    return None


def decorate(settings: Settings, request: SetteeRequest, response: Response) -> None:
    """Add the CORS headers a response to an allowed origin needs (none when CORS is off)."""
    if not settings.cors_origins:
        return
