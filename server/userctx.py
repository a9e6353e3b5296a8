"""`UserCtx`: who is making a request, as CouchDB's `userCtx` object describes them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ADMIN_ROLE = "_admin"


@dataclass(frozen=True, slots=True)
class UserCtx:
    """A name (None for anonymous) and roles; `_admin` among the roles makes a server admin."""

    name: str | None = None
    roles: tuple[str, ...] = ()
    handler: str | None = None  # "cookie" or "default" (Basic); None when not authenticated

    @property
    def is_admin(self) -> bool:
        return ADMIN_ROLE in self.roles

    def json(self, db: str | None = None) -> dict[str, Any]:
        """CouchDB's `userCtx` object (`db` is set for the functions of a design document)."""
        return {"db": db, "name": self.name, "roles": list(self.roles)}


ANONYMOUS = UserCtx()
ADMIN_PARTY = UserCtx(None, (ADMIN_ROLE,))  # no admin configured, bound to loopback only
