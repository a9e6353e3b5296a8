"""`AuthSession` cookies in CouchDB's format, and the secret that signs them.

A cookie is base64url (no padding) of `name:TIMESTAMP:MAC`, where TIMESTAMP is the issue time in
seconds as upper-case hex and MAC is the raw HMAC-SHA256 of `name:TIMESTAMP` keyed with the
server secret followed by the user's password salt. The salt in the key makes a password change
void every cookie issued before it. A cookie is good for `auth_timeout` seconds from its
timestamp; once a tenth of that has passed, the next response carries a fresh one (CouchDB's
refresh rule).

The secret is `auth_secret` when set, otherwise a random value created once and kept in the
store, so every worker and every node on one PostgreSQL signs with the same key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from email.utils import formatdate

from ..store import catalog
from ..store.engine import Tx
from .settings import Settings

COOKIE = "AuthSession"

# Secrets printed in CouchDB's documentation and examples, and in settee's: never sign with them.
SAMPLE_SECRETS = frozenset({
    "92de07df7e7a3fe14808cef90a7cc0d91", "secret", "changeme", "change-me", "monster",
    "your-secret", "mysecret", "example", "settee", "couchdb", "please-change-me",
})
MIN_SECRET_LENGTH = 16


def sample_secret_problem(secret: str) -> str | None:
    """Why `secret` may not sign cookies (a documented sample, or too short), or None."""
    if not secret:
        return None
    if secret.lower() in SAMPLE_SECRETS:
        return "auth_secret is a documented sample value; set a random one (or leave it empty)"
    if len(secret) < MIN_SECRET_LENGTH:
        return f"auth_secret must be at least {MIN_SECRET_LENGTH} characters (or empty)"
    return None


def stored_secret(conn: Tx) -> str:
    """The installation's random secret, created on first use and kept in the store."""
    return catalog.meta_value(conn, "auth_secret", secrets.token_hex(32))


@dataclass(frozen=True, slots=True)
class Cookie:
    """A decoded `AuthSession` value: who, when issued, and the MAC it carries."""

    name: str
    issued: int
    mac: bytes

    @property
    def signed_part(self) -> str:
        return f"{self.name}:{self.issued:X}"


def mac(secret: str, salt: str, signed_part: str) -> bytes:
    """The HMAC-SHA256 of a cookie's `name:TIMESTAMP` under secret + user salt."""
    return hmac.new((secret + salt).encode(), signed_part.encode(), hashlib.sha256).digest()


def encode(name: str, issued: int, secret: str, salt: str) -> str:
    """A new cookie value for `name` issued at `issued` (seconds)."""
    signed = f"{name}:{issued:X}"
    raw = signed.encode() + b":" + mac(secret, salt, signed)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode(value: str) -> Cookie | None:
    """The parts of a cookie value, or None when it is not one."""
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return None
    name_b, sep1, rest = raw.partition(b":")
    stamp_b, sep2, digest = rest.partition(b":")
    if not (sep1 and sep2 and digest):
        return None
    try:
        name, issued = name_b.decode(), int(stamp_b.decode("ascii"), 16)
    except (UnicodeDecodeError, ValueError):
        return None
    if not name or issued < 0:
        return None
    return Cookie(name, issued, digest)


def verify(cookie: Cookie, secret: str, salt: str, now: float, timeout: float) -> bool:
    """True when the MAC is right (constant-time) and the cookie has not expired."""
    if not hmac.compare_digest(cookie.mac, mac(secret, salt, cookie.signed_part)):
        return False
    return now < cookie.issued + timeout


def needs_refresh(cookie: Cookie, now: float, timeout: float) -> bool:
    """CouchDB re-issues a cookie once less than 90% of its lifetime is left."""
    return cookie.issued + timeout - now < timeout * 0.9


def set_cookie_header(value: str, settings: Settings, now: float) -> str:
    """The `Set-Cookie` value for a new cookie (persistent for `auth_timeout`, HttpOnly)."""
    timeout = int(settings.auth_timeout)
    parts = [f"{COOKIE}={value}", "Version=1", "Path=/",
             f"Expires={formatdate(now + timeout, usegmt=True)}", f"Max-Age={timeout}"]
    return "; ".join(parts + _flags(settings))


def clear_cookie_header(settings: Settings) -> str:
    """The `Set-Cookie` value that removes the cookie (`DELETE /_session`)."""
    parts = [f"{COOKIE}=", "Version=1", "Path=/", "Expires=Thu, 01 Jan 1970 00:00:00 GMT",
             "Max-Age=0"]
    return "; ".join(parts + _flags(settings))


def _flags(settings: Settings) -> list[str]:
    flags = ["HttpOnly"]
    if settings.cookie_same_site:
        flags.append(f"SameSite={settings.cookie_same_site.capitalize()}")
    if settings.cookie_secure:
        flags.append("Secure")
    return flags
