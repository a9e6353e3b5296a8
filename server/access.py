"""What a user may do: one policy table keyed by endpoint and method, checked before any handler.

Levels, as CouchDB 3 decides them:

- `PUBLIC`: anyone (`/`, `/_up`, `/_uuids`, `/_session`, `/_replicate`, whose local databases
  are opened as the caller).
- `SERVER_ADMIN`: the `_admin` role; anyone else gets 401 "You are not a server admin." (CouchDB
  answers 401 here even to a logged-in user).
- `LIST_DBS`: `SERVER_ADMIN` while `admin_only_all_dbs` is true, else `PUBLIC`.
- `MEMBER`: a member of the database by its `_security` (by name or role; no members at all
  makes the database public); db admins and server admins are members. Else 401 "You are not
  authorized to access this db." for anonymous, 403 "You are not allowed to access this db." for
  a user.
- `WRITE`: `MEMBER`, and writing a design document (named in the path, the body or the COPY
  destination) needs `DB_ADMIN`.
- `DB_ADMIN`: a member first (else the member errors), then an admin of the database by its
  `_security` or a server admin; else 401/403 "You are not a db or server admin.".
- `DB_ADMIN_401`: the same for `_compact` and `_view_cleanup`, refused with 401 "You are not a
  server or db admin." to anyone (CouchDB's `require_db_admin`).

`_users` adds CouchDB's rules: its `_security` is not editable (unless
`users_db_security_editable`); its `_all_docs` and `_changes` (and `_replicator`'s) are for
server admins; other non-admins may not list it (`_design_docs`, views, `_find`, ...) nor read
its design documents, and may read only their own user document (any other answers 404, as if it
did not exist). `require_valid_user` turns every level but the
`/_up` and `/_session` endpoints into "a user is required" first; no setting opens anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from ..store import catalog
from .errors import BadContentType, HttpError, NotFoundError
from .principals import USER_PREFIX, USERS_DB
from .routes import RULES
from .userctx import ADMIN_ROLE, UserCtx
from .wrappers import SetteeRequest

if TYPE_CHECKING:
    from .app import Settee

PUBLIC, SERVER_ADMIN, LIST_DBS = "public", "server_admin", "list_dbs"
MEMBER, WRITE, DB_ADMIN, DB_ADMIN_401 = "member", "write", "db_admin", "db_admin_401"
READS = frozenset({"GET", "HEAD"})
SYSTEM_DBS = frozenset({USERS_DB, "_replicator", "_global_changes"})
# On `_users` and `_replicator` these are for server admins only (`chttpd_auth_request`).
SYSTEM_DB_ADMIN_ONLY = frozenset({"all_docs.all_docs", "all_docs.all_docs_queries",
                                  "changes.changes"})
# What a cross-site HTML form can send without a CORS preflight (the CSRF vector).
FORM_TYPES = frozenset({"", "application/x-www-form-urlencoded", "multipart/form-data",
                        "text/plain"})


def _all(level: str) -> dict[str, str]:
    return {"*": level}


def _split(read: str, write: str) -> dict[str, str]:
    return {"GET": read, "HEAD": read, "*": write}


POLICY: dict[str, dict[str, str]] = {
    # -- server --------------------------------------------------------------------------------
    "root.welcome": _all(PUBLIC),
    "root.up": _all(PUBLIC),
    "session.session": _all(PUBLIC),
    "root.all_dbs": _all(LIST_DBS),
    "root.dbs_info": _all(LIST_DBS),
    "root.uuids": _all(PUBLIC),
    "changes.db_updates": _all(SERVER_ADMIN),
    "replicate.replicate": _all(PUBLIC),
    "replicate.scheduler_jobs": _all(SERVER_ADMIN),
    "node.active_tasks": _all(SERVER_ADMIN),
    "node.prometheus": _all(SERVER_ADMIN),
    "node.stats": _all(SERVER_ADMIN),
    "node.system": _all(SERVER_ADMIN),
    # -- database ------------------------------------------------------------------------------
    "databases.db": {"GET": MEMBER, "HEAD": MEMBER, "POST": WRITE, "*": SERVER_ADMIN},
    "all_docs.all_docs": _all(MEMBER),
    "all_docs.all_docs_queries": _all(MEMBER),
    "all_docs.design_docs": _all(MEMBER),
    "all_docs.design_docs_queries": _all(MEMBER),
    "all_docs.local_docs": _all(MEMBER),
    "all_docs.local_docs_queries": _all(MEMBER),
    "changes.changes": _all(MEMBER),
    "bulk.bulk_docs": _all(WRITE),
    "bulk.bulk_get": _all(MEMBER),
    "bulk.revs_diff": _all(MEMBER),
    "bulk.missing_revs": _all(MEMBER),
    "databases.revs_limit": _split(MEMBER, DB_ADMIN),
    "databases.security": _split(MEMBER, DB_ADMIN),
    "databases.compact": _all(DB_ADMIN_401),
    "databases.purge": _all(DB_ADMIN),
    "databases.ensure_full_commit": _all(MEMBER),
    "find.find": _all(MEMBER),
    "find.explain": _all(MEMBER),
    "find.indexes": _split(MEMBER, DB_ADMIN),
    "find.bulk_delete": _all(DB_ADMIN),
    "find.delete_index": _all(DB_ADMIN),
    "views.view_cleanup": _all(DB_ADMIN_401),
    "views.compact_views": _all(DB_ADMIN_401),
    # -- design documents and views --------------------------------------------------------------
    "views.design_info": _all(MEMBER),
    "views.view": _all(MEMBER),
    "views.view_queries": _all(MEMBER),
    # -- documents and attachments ---------------------------------------------------------------
    "documents.local_doc": _all(MEMBER),
    "documents.local_attachment": _all(MEMBER),
    "documents.design_doc": {"GET": MEMBER, "HEAD": MEMBER, "COPY": WRITE, "*": DB_ADMIN},
    "documents.doc": _split(MEMBER, WRITE),
    "attachments.design_attachment": _split(MEMBER, DB_ADMIN),
    "attachments.attachment": _split(MEMBER, WRITE),
}

missing = {rule.endpoint for rule in RULES} - POLICY.keys()
assert not missing, f"endpoints without an access policy: {sorted(missing)}"

# `_users` endpoints that only its admins may use, with CouchDB's reason where it has one.
USERS_ADMIN_ONLY = {
    "all_docs.design_docs": "Only admins can access _all_docs of system databases.",
    "all_docs.design_docs_queries": "Only admins can access _all_docs of system databases.",
    "all_docs.local_docs": "Only admins can access _all_docs of system databases.",
    "all_docs.local_docs_queries": "Only admins can access _all_docs of system databases.",
    "documents.design_doc": "Only administrators can view design docs in the users database.",
    "attachments.design_attachment":
        "Only administrators can view design docs in the users database.",
}
USERS_ADMIN_ONLY_OTHER = "Only admins can read the users database in bulk."


class Forbidden(HttpError):
    """An authenticated user without the right (403 `forbidden`)."""

    status, error, reason = 403, "forbidden", "You are not allowed to access this db."


class AuthRequired(HttpError):
    """An anonymous request for something that needs a user (401 `unauthorized`)."""

    status, error, reason = 401, "unauthorized", "You are not authorized to access this db."


def refuse(user: UserCtx, reason: str | None = None) -> HttpError:
    """CouchDB's security error: 401 for anonymous, 403 for a user."""
    return AuthRequired(reason) if user.name is None else Forbidden(reason)


def level_of(app: Settee, endpoint: str, method: str) -> str:
    """The policy level of one endpoint and method."""
    methods = POLICY[endpoint]
    level = methods.get(method, methods["*"])
    if level == LIST_DBS:
        return SERVER_ADMIN if app.settings.admin_only_all_dbs else PUBLIC
    return level


def authorize(app: Settee, request: SetteeRequest, endpoint: str, args: dict[str, str]) -> None:
    """Raise 401/403 (or 404, 415) unless the request's user may call `endpoint`.

    The order is CouchDB's (`chttpd_auth_request`, then the handler): server-admin resources
    first; then membership of the database; then what needs a db admin.
    """
    user = request.user_ctx
    if app.settings.require_valid_user and user.name is None and not user.is_admin \
            and endpoint not in ("root.up", "session.session"):
        raise AuthRequired("Authentication required.")
    if user.handler == "cookie" and request.method == "POST" \
            and endpoint != "session.session" and request.mimetype in FORM_TYPES:
        raise BadContentType()  # CSRF: a cookie alone may not carry a form-encoded write
    db = args.get("db")
    if db == USERS_DB:
        _ensure_users_db(app, request, endpoint)
    if user.is_admin:
        _users_security_locked(app, request, endpoint, db)
        return
    level = level_of(app, endpoint, request.method)
    if db is not None and db.startswith("_") and (
            db not in SYSTEM_DBS or endpoint in SYSTEM_DB_ADMIN_ONLY):
        level = SERVER_ADMIN  # `/_config`, `/_node/x/_config/...`; `_users/_changes`
    if level == PUBLIC:
        return
    if level == SERVER_ADMIN or db is None:
        raise AuthRequired("You are not a server admin.")
    security = security_object(app, db)
    if not is_member(user, security):
        raise refuse(user)
    _users_security_locked(app, request, endpoint, db)
    if level == WRITE and _writes_design_doc(request, endpoint, args):
        level = DB_ADMIN
    if level == DB_ADMIN_401:
        if not is_db_admin(user, security):
            raise AuthRequired("You are not a server or db admin.")
    elif level == DB_ADMIN:
        if not is_db_admin(user, security):
            raise refuse(user, "You are not a db or server admin.")
    elif db == USERS_DB and not is_db_admin(user, security):
        _users_member_rules(request, endpoint, args)


def security_object(app: Settee, db: str) -> dict[str, Any]:
    """The database's `_security` object (`DbNotFound` when it does not exist)."""
    with app.store.engine.transaction(snapshot=False) as conn:
        text = catalog.get_security(conn, db)
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = None
    # Something unreadable must not open the database: treat it as admins only.
    return value if isinstance(value, dict) else {"members": {"roles": [ADMIN_ROLE]}}


def _section(security: dict[str, Any], name: str) -> dict[str, Any] | None:
    value = security.get(name)
    if value is None and name == "members":
        value = security.get("readers", {})  # CouchDB's older name for members
    if value is None:
        return {}
    return value if isinstance(value, dict) else None


def _listed(user: UserCtx, section: dict[str, Any]) -> bool:
    names, roles = section.get("names", []), section.get("roles", [])
    if not isinstance(names, list) or not isinstance(roles, list):
        return False
    if ADMIN_ROLE in user.roles or any(r in roles for r in user.roles):
        return True
    return user.name is not None and user.name in names


def is_db_admin(user: UserCtx, security: dict[str, Any]) -> bool:
    """An admin of the database: a server admin or listed in `admins` by name or role."""
    section = _section(security, "admins")
    return user.is_admin or (section is not None and _listed(user, section))


def is_member(user: UserCtx, security: dict[str, Any]) -> bool:
    """A member: a db admin, anyone when `members` lists nobody, or listed by name or role."""
    if is_db_admin(user, security):
        return True
    section = _section(security, "members")
    if section is None:
        return False
    if not section.get("names") and not section.get("roles"):
        return True
    return _listed(user, section)


def _writes_design_doc(request: SetteeRequest, endpoint: str, args: dict[str, str]) -> bool:
    """Whether a member-level write touches a design document (which needs a db admin)."""
    docid = args.get("docid", "")
    if docid.startswith("_design/"):
        return True
    destination = request.headers.get("Destination", "")
    if request.method == "COPY" and destination.lstrip("/").startswith("_design"):
        return True
    if endpoint not in ("databases.db", "bulk.bulk_docs"):
        return False
    try:
        body = request.json_body()
    except Exception:  # the handler answers a bad body with its own 4xx
        return False
    docs = body.get("docs") if endpoint == "bulk.bulk_docs" and isinstance(body, dict) \
        else [body]
    return isinstance(docs, list) and any(
        isinstance(doc, dict) and isinstance(doc.get("_id"), str)
        and doc["_id"].startswith("_design/") for doc in docs)


def _ensure_users_db(app: Settee, request: SetteeRequest, endpoint: str) -> None:
    """`_users` exists whenever it is used (but `PUT /_users` still creates it)."""
    if endpoint != "databases.db" or request.method in READS or request.method == "POST":
        from . import auth
        auth.state(app).directory.ensure_users_db()


def _users_security_locked(app: Settee, request: SetteeRequest, endpoint: str,
                           db: str | None) -> None:
    """`_users`' `_security` is not editable, not even by the server admin (CouchDB 3)."""
    if db == USERS_DB and endpoint == "databases.security" and request.method not in READS \
            and not app.settings.users_db_security_editable:
        raise Forbidden("You can't edit the security object of the user database.")


def _users_member_rules(request: SetteeRequest, endpoint: str, args: dict[str, str]) -> None:
    """A non-admin member of `_users` reads only their own user document."""
    user = request.user_ctx
    if endpoint in ("documents.design_doc", "attachments.design_attachment"):
        raise Forbidden(USERS_ADMIN_ONLY[endpoint])  # CouchDB's `after_doc_read`: always 403
    if endpoint in USERS_ADMIN_ONLY:
        raise refuse(user, USERS_ADMIN_ONLY[endpoint])
    if endpoint in ("documents.doc", "attachments.attachment"):
        own = user.name is not None and args.get("docid") == USER_PREFIX + user.name
        if not own and (request.method in READS or request.method == "COPY"
                        or user.name is not None):
            raise NotFoundError("missing")  # CouchDB: another user's document is not there
        return
    if endpoint in ("databases.db", "bulk.bulk_docs", "databases.ensure_full_commit",
                    "documents.local_doc", "documents.local_attachment"):
        return
    if level_is_read(endpoint):
        raise refuse(user, USERS_ADMIN_ONLY_OTHER)


def level_is_read(endpoint: str) -> bool:
    """Whether an endpoint reads many documents at once (listings, views, queries)."""
    return endpoint.split(".")[0] in ("all_docs", "changes", "bulk", "views", "find")
