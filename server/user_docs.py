"""The `_users` database's write rules: CouchDB's `_design/_auth` validation, done in Python.

CouchDB guards `_users` twice. `couch_users_db:before_doc_update/3` runs first: a non-admin who
is signed in may write only their own `org.couchdb.user:<name>` document (any other is a 404
`not_found`, so nobody learns which users exist), anonymous requests may write (that is signup),
and a `password` member is replaced by a fresh PBKDF2 hash (`password_scheme`, `pbkdf2_prf`,
`iterations`, `salt`, `derived_key`), so the clear password is never stored. Then the `_auth`
design document's `validate_doc_update` checks the result (`check`, below, with CouchDB's
messages): `type: "user"`, a `name`, `roles` a list of strings, `_id` equal to
`org.couchdb.user:<name>`, a name that never changes, and for everyone but server and database
admins: create only with `roles: []`, update only their own doc, never change `roles`. Nobody
may give a user a system role (starting with `_`, except `_metrics`) or an underscore name.

Both run before the write, outside the store's write lock (see `validation`). The documents
checked are the ones parsed once from the request (duplicate keys are already a 400 there, the
lesson of CVE-2017-12635), so what is checked is exactly what is stored. Design documents are not
user documents: their writes are an admin matter (the access policy), as in CouchDB.
"""

from __future__ import annotations

from typing import Any

from ..store.errors import StoreError
from ..store.serialize import canonical_body
from ..store.writes import Edit
from .errors import HttpError
from .passwords import hash_password
from .userctx import UserCtx

USERS_DB = "_users"
USER_PREFIX = "org.couchdb.user:"
SCHEMES = ("simple", "pbkdf2", "simple+pbkdf2")


class UserDocError(HttpError, StoreError):
    """A refused `_users` write: CouchDB's status, error name and reason as data (a
    `StoreError` too, so it can stand as one document's result in `_bulk_docs`)."""

    def __init__(self, status: int, error: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.error = status, error


def forbidden(reason: str) -> UserDocError:
    """403 `forbidden`, as `throw({forbidden: reason})` in the `_auth` function."""
    return UserDocError(403, "forbidden", reason)


def is_db_admin(user: UserCtx, sec: dict[str, Any]) -> bool:
    """A server admin, or an admin of this database by name or role (`couch_db:is_admin/1`)."""
    if user.is_admin:
        return True
    admins = sec.get("admins") if isinstance(sec, dict) else None
    if not isinstance(admins, dict):
        return False
    names, roles = admins.get("names"), admins.get("roles")
    if user.name is not None and isinstance(names, list) and user.name in names:
        return True
    return isinstance(roles, list) and any(role in roles for role in user.roles)


def before_update(edit: Edit, user: UserCtx, sec: dict[str, Any], iterations: int) -> None:
    """Refuse another user's document (404), then hash a clear `password` into the edit."""
    if edit.id.startswith("_design/"):
        return
    if not is_db_admin(user, sec) and user.name is not None \
            and edit.id != USER_PREFIX + user.name:
        raise UserDocError(404, "not_found", "missing")
    if "password" not in edit.fields or edit.fields["password"] is None:
        return  # CouchDB leaves `password: null` alone (server admins have no user password)
    password = edit.fields["password"]
    if not isinstance(password, str):
        raise UserDocError(400, "bad_request", "password must be a string")
    fields = {k: v for k, v in edit.fields.items() if k != "password"}
    fields.update(hash_password(password, iterations).user_fields())
    edit.fields = fields
    edit.body = canonical_body(fields)


def check(new: dict[str, Any], old: dict[str, Any] | None, user: UserCtx,
          sec: dict[str, Any]) -> None:
    """The `_auth` design document's rules; raise `forbidden` with CouchDB's reason."""
    if new.get("_id", "").startswith("_design/"):
        return
    if new.get("_deleted") is True:
        if user.is_admin or (old is not None and user.name == old.get("name")):
            return
        raise forbidden("Only admins may delete other user docs.")
    if new.get("type") != "user":
        raise forbidden("doc.type must be user")
    name = new.get("name")
    if not name:
        raise forbidden("doc.name is required")
    roles = new.get("roles")
    if roles is None or roles is False or roles == "" or roles == 0:
        raise forbidden("doc.roles must exist")
    if not isinstance(roles, list):
        raise forbidden("doc.roles must be an array")
    if not all(isinstance(role, str) for role in roles):
        raise forbidden("doc.roles can only contain strings")
    if not isinstance(name, str) or new.get("_id") != USER_PREFIX + name:
        raise forbidden("Doc ID must be of the form org.couchdb.user:name")
    if old is not None and old.get("name") != name:
        raise forbidden("Usernames can not be changed.")
    _check_password_fields(new)
    if not is_db_admin(user, sec):
        if old is not None:
            if user.name != name:
                raise forbidden("You may only update your own user document.")
            old_roles = old.get("roles") or []
            if not isinstance(old_roles, list) or sorted(map(str, old_roles)) != sorted(roles):
                raise forbidden("Only _admin may edit roles")
        elif roles:
            raise forbidden("Only _admin may set roles")
    if any(role != "_metrics" and role.startswith("_") for role in roles):
        raise forbidden("No system roles (starting with underscore) in users db.")
    if name.startswith("_"):
        raise forbidden("Username may not start with underscore.")
    if ":" in name:
        raise forbidden("Character `:` is not allowed in usernames.")


def _check_password_fields(new: dict[str, Any]) -> None:
    if new.get("password_sha") and not new.get("salt"):
        raise forbidden("Users with password_sha must have a salt."
                        "See /_utils/script/couch.js for example code.")
    scheme = new.get("password_scheme")
    if scheme and scheme not in SCHEMES:
        raise forbidden(f"Password scheme `{scheme}` not supported.")
    if scheme == "pbkdf2":
        iterations = new.get("iterations")
        if isinstance(iterations, bool) or not isinstance(iterations, (int, float)):
            raise forbidden("iterations must be a number.")
        if not isinstance(new.get("derived_key"), str):
            raise forbidden("derived_key must be a string.")
