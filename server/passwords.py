"""Password hashes in CouchDB's formats: PBKDF2 user-doc fields and `-pbkdf2-` admin strings.

A user document keeps `password_scheme: "pbkdf2"`, `pbkdf2_prf` (`sha256` or `sha` for
SHA-1), `iterations`, `salt` (32 hex characters, used as its ASCII bytes, as CouchDB does) and
`derived_key` (hex). A server admin's hash is one string, `-pbkdf2:sha256-<key>,<salt>,<n>` (or
`-pbkdf2-<key>,<salt>,<n>` for SHA-1). Comparisons are constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

PRFS = {"sha256": "sha256", "sha": "sha1", "sha1": "sha1"}


class BadHash(ValueError):
    """A stored hash that cannot be checked (unknown scheme, malformed, too many iterations)."""


@dataclass(frozen=True, slots=True)
class Hash:
    """One PBKDF2 password hash."""

    derived_key: str
    salt: str
    iterations: int
    prf: str = "sha256"

    def verify(self, password: str) -> bool:
        """True when `password` derives this key (constant-time comparison)."""
        return hmac.compare_digest(derive(password, self.salt, self.iterations, self.prf),
                                   self.derived_key)

    def user_fields(self) -> dict[str, Any]:
        """The fields a `_users` document stores instead of `password`."""
        return {"password_scheme": "pbkdf2", "pbkdf2_prf": self.prf,
                "iterations": self.iterations, "salt": self.salt,
                "derived_key": self.derived_key}

    def admin_string(self) -> str:
        """The `-pbkdf2:<prf>-key,salt,iterations` form CouchDB keeps admins in."""
        scheme = "-pbkdf2-" if self.prf == "sha" else f"-pbkdf2:{self.prf}-"
        return f"{scheme}{self.derived_key},{self.salt},{self.iterations}"


def derive(password: str, salt: str, iterations: int, prf: str = "sha256") -> str:
    """The hex PBKDF2 key of a password, with the salt used as its UTF-8 bytes."""
    try:
        name = PRFS[prf]
    except KeyError:
        raise BadHash(f"unknown pbkdf2_prf {prf!r}") from None
    return hashlib.pbkdf2_hmac(name, password.encode(), salt.encode(), iterations).hex()


def hash_password(password: str, iterations: int, prf: str = "sha256") -> Hash:
    """A new hash with a fresh random salt."""
    salt = secrets.token_hex(16)
    return Hash(derive(password, salt, iterations, prf), salt, iterations, prf)


def from_user_doc(doc: dict[str, Any], max_iterations: int) -> Hash:
    """The hash a `_users` document stores; BadHash if it has none or an unusable one."""
    if doc.get("password_scheme") != "pbkdf2":
        raise BadHash("unsupported password_scheme")
    key, salt, iterations = doc.get("derived_key"), doc.get("salt"), doc.get("iterations")
    prf = doc.get("pbkdf2_prf", "sha")
    if not (isinstance(key, str) and isinstance(salt, str) and isinstance(prf, str)):
        raise BadHash("derived_key, salt and pbkdf2_prf must be strings")
    return Hash(key.lower(), salt, _iterations(iterations, max_iterations), prf)


def from_admin_string(text: str, max_iterations: int) -> Hash:
    """Parse `-pbkdf2-key,salt,n` or `-pbkdf2:sha256-key,salt,n`; BadHash otherwise."""
    if text.startswith("-pbkdf2-"):
        prf, rest = "sha", text[len("-pbkdf2-"):]
    elif text.startswith("-pbkdf2:") and "-" in text[len("-pbkdf2:"):]:
        prf, _, rest = text[len("-pbkdf2:"):].partition("-")
    else:
        raise BadHash("not a -pbkdf2- hash")
    parts = rest.split(",")
    if len(parts) != 3:
        raise BadHash("a -pbkdf2- hash is key,salt,iterations")
    key, salt, iterations = parts
    try:
        count = int(iterations)
    except ValueError:
        raise BadHash("iterations must be an integer") from None
    return Hash(key.lower(), salt, _iterations(count, max_iterations), prf)


def _iterations(value: Any, maximum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise BadHash("iterations must be a positive integer")
    if value > maximum:
        raise BadHash("iterations above auth_max_iterations")
    return value
