"""Who is asking: the `UserCtx` of a request, from Basic auth or the admin party."""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING

from .errors import HttpError
from .passwords import Hash, from_admin_string, hash_password
from .settings import Settings
from .userctx import ADMIN_PARTY, ADMIN_ROLE, ANONYMOUS, UserCtx
from .wrappers import SetteeRequest

if TYPE_CHECKING:
    from .app import Settee


class Unauthorized(HttpError):
    """Credentials that do not name a user with that password (401 `unauthorized`)."""

    status, error, reason = 401, "unauthorized", "Name or password is incorrect."


def admin_hash(settings: Settings) -> Hash | None:
    """The server admin's password hash: `admin_password` if it is one, else hashed now."""
    password = settings.admin_password
    if not password:
        return None
    if password.startswith("-pbkdf2"):
        return from_admin_string(password, settings.auth_max_iterations)
    return hash_password(password, settings.auth_iterations)


def authenticate(app: Settee, request: SetteeRequest) -> UserCtx:
    """The request's user: the admin party when no admin is configured, else by credentials."""
    if not app.settings.admin_password:
        return ADMIN_PARTY
    credentials = basic_credentials(request)
    if credentials is None:
        return ANONYMOUS
    name, password = credentials
    admin = app.admin_hash
    if name == app.settings.admin_user and admin is not None and admin.verify(password):
        return UserCtx(name, (ADMIN_ROLE,), "default")
    raise Unauthorized()


def basic_credentials(request: SetteeRequest) -> tuple[str, str] | None:
    """(name, password) from an `Authorization: Basic` header, or None without one."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthorized("Malformed Basic authorization header") from None
    name, sep, password = decoded.partition(":")
    if not sep:
        raise Unauthorized("Malformed Basic authorization header")
    return name, password
