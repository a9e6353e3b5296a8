"""What a user may do: the route-by-route policy, checked before any handler runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import HttpError
from .wrappers import SetteeRequest

if TYPE_CHECKING:
    from .app import Settee


class Forbidden(HttpError):
    """An authenticated user without the right (403 `forbidden`)."""

    status, error, reason = 403, "forbidden", "You are not allowed to access this db."


class AuthRequired(HttpError):
    """An anonymous request for something that needs a user (401 `unauthorized`)."""

    status, error, reason = 401, "unauthorized", "You are not authorized to access this db."


def authorize(app: Settee, request: SetteeRequest, endpoint: str, args: dict[str, str]) -> None:
    """Raise 401/403 unless the request's user may call `endpoint` (interim: admins only)."""
    user = request.user_ctx
    if user.is_admin or endpoint == "root.up":
        return
    if user.name is None:
        raise AuthRequired()
    raise Forbidden()
