"""Who can log in: the server admin from settings and the users of the `_users` database.

A user is the winning revision of `org.couchdb.user:<name>` in `_users` with `type: "user"`,
that name, `roles` (strings; names starting with `_` are system roles a user document may not
grant and are dropped) and a PBKDF2 hash (`server/passwords.py`). The server admin named
`admin_user` comes first: a `_users` document of the same name never shadows it.

Lookups are cached per worker. An entry is reused only while `_users`' update seq is unchanged:
reading that one row costs far less than the document, and any write to `_users` on any node
sharing the store (a password change, a deleted user) moves the seq, so the next request reads
the document again. The server admin needs no store read at all.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from threading import Lock
from typing import TYPE_CHECKING, Any

import orjson

from ..store import catalog, reads
from ..store.errors import DbExists
from .passwords import BadHash, Hash, from_user_doc
from .userctx import ADMIN_ROLE

if TYPE_CHECKING:
    from .app import Settee

USERS_DB = "_users"
USER_PREFIX = "org.couchdb.user:"
MAX_CACHED = 4096


@dataclass(frozen=True, slots=True)
class Principal:
    """Someone who may log in: a name, roles, and the password hash (None: cannot log in)."""

    name: str
    roles: tuple[str, ...]
    hash: Hash | None

    @property
    def salt(self) -> str:
        """The salt that keys this principal's cookies (a new password, a new salt)."""
        return self.hash.salt if self.hash is not None else ""


class Directory:
    """Finds principals by name, caching `_users` documents while `_users` is unchanged."""

    def __init__(self, app: Settee) -> None:
        self.app = app
        self._cache: OrderedDict[str, tuple[int, Principal | None]] = OrderedDict()
        self._lock = Lock()
        self._users_seen = False

    def admin(self) -> Principal | None:
        """The server admin from settings, if one is configured."""
        settings = self.app.settings
        if not settings.admin_password or self.app.admin_hash is None:
            return None
        return Principal(settings.admin_user, (ADMIN_ROLE,), self.app.admin_hash)

    def find(self, name: str) -> Principal | None:
        """The principal called `name`, or None when there is none (or `_users` is missing)."""
        admin = self.admin()
        if admin is not None and name == admin.name:
            return admin
        with self.app.store.engine.transaction(snapshot=False) as conn:
            seq = catalog.update_seq(conn, USERS_DB)
            if seq is None:
                return None
            with self._lock:
                cached = self._cache.get(name)
            if cached is not None and cached[0] == seq:
                return cached[1]
            info, packed = reads.doc_with_winner(conn, USERS_DB, USER_PREFIX + name)
        principal = None
        if info is not None and packed is not None and not info.deleted:
            principal = user_from_doc(name, orjson.loads(self.app.store.layer.body_of(packed)),
                                      self.app.settings.auth_max_iterations)
        with self._lock:
            self._cache[name] = (seq, principal)
            self._cache.move_to_end(name)
            while len(self._cache) > MAX_CACHED:
                self._cache.popitem(last=False)
        return principal

    def ensure_users_db(self) -> None:
        """Create `_users` (with the default admin-only `_security`) if it does not exist."""
        if self._users_seen and self.app.store.exists(USERS_DB):
            return
        try:
            self.app.store.create_db(USERS_DB)
        except DbExists:
            pass
        self._users_seen = True


def user_from_doc(name: str, doc: Any, max_iterations: int) -> Principal | None:
    """The principal a `_users` document describes, or None when it describes no user."""
    if not isinstance(doc, dict) or doc.get("type") != "user" or doc.get("name") != name:
        return None
    roles = doc.get("roles", [])
    if not isinstance(roles, list):
        return None
    kept = tuple(r for r in roles if isinstance(r, str) and not r.startswith("_"))
    try:
        password = from_user_doc(doc, max_iterations)
    except BadHash:
        password = None
    return Principal(name, kept, password)
