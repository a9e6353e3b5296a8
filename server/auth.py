"""Who is asking: the `UserCtx` of a request, from Basic auth, an AuthSession cookie, or neither.

Order, as CouchDB's handlers: an `Authorization: Basic` header must be right (a wrong one is
401 even on public resources, except during the admin party, where it changes nothing); else a valid
`AuthSession` cookie names the user (a cookie that is tampered with, expired or unreadable is
ignored: the request is anonymous); else the request is anonymous, except that while no server admin
is configured a request from a loopback address is the "admin party" (every caller an admin, for
development on one's own machine).

Password checks are PBKDF2 and deliberately slow, so three things keep them cheap and safe: a
(user, address) pair that failed too often is refused before hashing (`lockout.py`); a bounded
cache remembers recent successful checks (keyed by an HMAC of name, password and the stored
hash, so a changed password or salt never matches an old entry); and an unknown user costs the
same hash as a known one, so neither timing nor error text tells whether a user exists.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from threading import Lock
from typing import TYPE_CHECKING

from werkzeug.wrappers import Response

from . import sessions
from .errors import HttpError
from .lockout import Lockout
from .passwords import Hash, derive, from_admin_string
from .principals import Directory, Principal
from .settings import Settings
from .userctx import ADMIN_PARTY, ANONYMOUS, UserCtx
from .wrappers import SetteeRequest

if TYPE_CHECKING:
    from .app import Settee

LOOPBACK = ("127.", "::1", "::ffff:127.")
IN_PROCESS_USER = "settee.user_ctx"  # environ key set by in-process callers (local replication)
MAX_VERIFIED = 1024


class Unauthorized(HttpError):
    """Credentials that do not name a user with that password (401 `unauthorized`)."""

    status, error, reason = 401, "unauthorized", "Name or password is incorrect."


def admin_hash(settings: Settings) -> Hash | None:
    """The server admin's password hash: `admin_password` if it is one, else hashed now.

    A plain password gets a salt derived from itself, so every worker and node computes the
    same hash (cookies are keyed by the salt) and a new password gives a new salt.
    """
    password = settings.admin_password
    if not password:
        return None
    if password.startswith("-pbkdf2"):
        return from_admin_string(password, settings.auth_max_iterations)
    salt = hashlib.sha256(b"settee admin salt\x00" + password.encode()).hexdigest()[:32]
    return Hash(derive(password, salt, settings.auth_iterations), salt, settings.auth_iterations)


@dataclass
class AuthState:
    """One app's authentication state: clock, cookie secret, user directory, caches, lockout."""

    app: Settee
    clock: Callable[[], float] = time.time
    directory: Directory = field(init=False)
    lockout: Lockout = field(init=False)
    _secret: str | None = None
    _verified: OrderedDict[bytes, None] = field(default_factory=OrderedDict)
    _key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    _lock: Lock = field(default_factory=Lock)

    def __post_init__(self) -> None:
        settings = self.app.settings
        self.directory = Directory(self.app)
        self.lockout = Lockout(settings.auth_lockout_threshold, settings.auth_lockout_seconds,
                               lambda: self.clock())

    def secret(self) -> str:
        """The cookie-signing secret (the setting, else the store's random one), read once."""
        if self._secret is None:
            configured = self.app.settings.auth_secret
            if configured:
                self._secret = configured
            else:
                self.app.store.setup()
                self._secret = self.app.store.engine.run(sessions.stored_secret)
        return self._secret

    def check_password(self, principal: Principal | None, password: str) -> bool:
        """Whether `password` is the principal's; as slow for an unknown name as a known one."""
        if principal is None or principal.hash is None:
            iterations = self.app.settings.auth_iterations
            derive(password, "0" * 32, iterations)  # the same cost, the same answer time
            return False
        stored = principal.hash
        key = hmac.new(self._key, "\x00".join((principal.name, password, stored.salt,
                                               stored.derived_key)).encode(),
                       hashlib.sha256).digest()
        with self._lock:
            if key in self._verified:
                self._verified.move_to_end(key)
                return True
        if not stored.verify(password):
            return False
        with self._lock:
            self._verified[key] = None
            while len(self._verified) > MAX_VERIFIED:
                self._verified.popitem(last=False)
        return True

    def login(self, name: str, password: str, address: str) -> Principal:
        """The principal for a name and password, or `Unauthorized`/`LockedOut`."""
        self.lockout.check(name, address)
        principal = self.directory.find(name) if name else None
        if not self.check_password(principal, password):
            self.lockout.failed(name, address)
            raise Unauthorized()
        self.lockout.succeeded(name, address)
        assert principal is not None
        return principal


_STATE_LOCK = Lock()


def state(app: Settee) -> AuthState:
    """The app's `AuthState`, made on first use (once, even when threads race to it)."""
    found: AuthState | None = getattr(app, "auth_state", None)
    if found is None:
        with _STATE_LOCK:
            found = getattr(app, "auth_state", None)
            if found is None:
                found = AuthState(app)
                app.auth_state = found  # type: ignore[attr-defined]
    return found


def admin_party(app: Settee, request: SetteeRequest) -> bool:
    """No admin configured and the caller is on this machine (or in-process, no address)."""
    if app.settings.admin_password:
        return False
    address = request.environ.get("REMOTE_ADDR") or ""
    return not address or address.startswith(LOOPBACK) or address == "localhost"


def authenticate(app: Settee, request: SetteeRequest) -> UserCtx:
    """The request's user: Basic credentials, else a valid cookie, else anonymous/admin party."""
    environ = request.environ
    given = environ.get(IN_PROCESS_USER)
    if isinstance(given, UserCtx):
        return given
    if environ.get("HTTP_AUTHORIZATION"):
        credentials = basic_credentials(request)
        if credentials is not None:
            name, password = credentials
            try:
                principal = state(app).login(name, password, environ.get("REMOTE_ADDR") or "")
            except HttpError:
                if admin_party(app, request):
                    return ADMIN_PARTY  # nothing to guard yet: wrong credentials change nothing
                raise
            return UserCtx(principal.name, principal.roles, "default")
    if sessions.COOKIE in environ.get("HTTP_COOKIE", ""):
        value = request.cookies.get(sessions.COOKIE)
        if value:
            user = cookie_user(app, request, value)
            if user is not None:
                return user
    return ADMIN_PARTY if admin_party(app, request) else ANONYMOUS


def cookie_user(app: Settee, request: SetteeRequest, value: str) -> UserCtx | None:
    """The user a valid cookie names (and note whether to re-issue it), else None."""
    cookie = sessions.decode(value)
    if cookie is None:
        return None
    auth = state(app)
    principal = auth.directory.find(cookie.name)
    if principal is None or principal.hash is None:
        return None
    now, timeout = auth.clock(), app.settings.auth_timeout
    if not sessions.verify(cookie, auth.secret(), principal.salt, now, timeout):
        return None
    if sessions.needs_refresh(cookie, now, timeout):
        request.environ["settee.refresh_cookie"] = principal
    return UserCtx(principal.name, principal.roles, "cookie")


def issue_cookie(app: Settee, principal: Principal) -> str:
    """A `Set-Cookie` header value for a new session of `principal`."""
    auth = state(app)
    now = auth.clock()
    value = sessions.encode(principal.name, int(now), auth.secret(), principal.salt)
    return sessions.set_cookie_header(value, app.settings, now)


def decorate(app: Settee, request: SetteeRequest, response: Response) -> Response:
    """Add a refreshed cookie to the response of a cookie request past 10% of its life."""
    if request.user_ctx.handler != "cookie":
        return response
    principal = request.environ.get("settee.refresh_cookie")
    if isinstance(principal, Principal) and "Set-Cookie" not in response.headers:
        response.headers["Set-Cookie"] = issue_cookie(app, principal)
    return response


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
