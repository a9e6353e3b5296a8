"""`/_session`: who the request is (GET); cookie login and logout are being built."""

from __future__ import annotations

from typing import TYPE_CHECKING

from werkzeug.wrappers import Response

from ..errors import HttpError
from ..wrappers import SetteeRequest, json_response

if TYPE_CHECKING:
    from ..app import Settee


class NotBuilt(HttpError):
    """Cookie sessions are routed but not built yet (501)."""

    status, error, reason = 501, "not_implemented", "cookie sessions are not built yet"


def session(app: Settee, request: SetteeRequest) -> Response:
    """`GET/POST/DELETE /_session`."""
    if request.method in ("GET", "HEAD"):
        user = request.user_ctx
        return json_response({"ok": True, "userCtx": {"name": user.name, "roles": list(user.roles)},
                              "info": {"authentication_handlers": ["cookie", "default"],
                                       "authentication_db": "_users"}})
    raise NotBuilt()
