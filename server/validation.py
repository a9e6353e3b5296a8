"""`validate_doc_update`: the design documents' validation functions, run before every write.

Every document write that reaches `save_edits` (PUT, POST, DELETE, COPY, `_bulk_docs` with or
without `new_edits`, so replication into a local database too, and standalone attachment
PUT/DELETE) is checked here first, outside the store's write lock: JavaScript and hashing never
run while writers wait. As in CouchDB (`couch_db:validate_doc_update/3`), `_local/` documents and
design documents are not validated (design documents are the access policy's: db admins only),
and a replicated revision the database already has is skipped.

Each live design document with a `validate_doc_update` is called in id order with
`(newDoc, oldDoc, userCtx, secObj)`, as `couch_query_servers:validate_doc_update/5` passes them:

- `newDoc`: `_id`, the `_rev` the edit names (for an interactive edit, the revision it replaces:
  the new rev is computed only after validation; none for a creation), `_revisions` of that rev,
  the body, `_deleted: true` for a deletion, `_attachments` as stubs;
- `oldDoc`: the stored revision being replaced, with `_id`, `_rev`, `_revisions`, `_deleted`
  and attachment stubs, or `null` for a creation or a recreation over a deleted document; for a
  replicated revision, the nearest stored ancestor along its path;
- `userCtx`: `{"db", "name", "roles"}` of the requester; `secObj`: the database's `_security`.

JavaScript runs in the view service's QuickJS pool, in a context of its own per (database,
design doc id, rev): two databases never share globals (CVE-2023-26268). `throw({forbidden: m})`
answers 403 `forbidden` m and `throw({unauthorized: m})` 401 `unauthorized` m; any other thrown
value refuses the write with 500 `unknown_error`, a JavaScript `Error` or a runaway function with
500 (the JS runner's error name), a function that does not compile with 500 `compilation_error`.
In `_bulk_docs` each refusal is that document's error entry and the others are written.

Python validation functions are trusted code named in the `python_views` setting, like Python
views: a design doc with `"language": "python"` names one as
`"validate_doc_update": "package.module:function"`, called as

    function(new_doc: dict, old_doc: dict | None, user_ctx: dict, sec_obj: dict) -> None

with the same four values (fresh copies for each call). It accepts by returning, and refuses by
raising `Forbidden(reason)` or `Unauthorized(reason)` from this module (403 / 401); any other
exception refuses the write with 500 `unknown_error`. A name the operator did not allow refuses
every write to that database until the design document is fixed.

The database's validating design documents are found with one indexed query per write (the
winning revs of its live `_design/` docs, with its `_security`, in one round trip), so an edit on
another PostgreSQL node is seen by the very next write; parsed functions are cached by
(database, design doc id, rev). A database without any costs that one query.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from ..store import Store, reads, revtree, sql
from ..store.errors import Conflict, DbNotFound, StoreError
from ..store.render import doc_bytes, revisions, stub
from ..store.writes import Edit
from . import user_docs
from .errors import HttpError
from .userctx import UserCtx

if TYPE_CHECKING:
    from .app import Settee

DESIGN, DESIGN_END = "_design/", "_design0"
CACHE_SIZE = 1024


class Refused(HttpError, StoreError):
    """A write a validation function refused; status, error and reason are data (and it is a
    `StoreError`, so it can stand as one document's result in `_bulk_docs`)."""

    status, error, reason = 500, "unknown_error", "Document update refused"

    def __init__(self, reason: str | None = None, status: int | None = None,
                 error: str | None = None) -> None:
        super().__init__(reason)
        if status is not None:
            self.status = status
        if error is not None:
            self.error = error


class Forbidden(Refused):
    """`throw({forbidden: reason})`: 403 `forbidden`."""

    status, error, reason = 403, "forbidden", "forbidden"


class Unauthorized(Refused):
    """`throw({unauthorized: reason})`: 401 `unauthorized`."""

    status, error, reason = 401, "unauthorized", "unauthorized"


@dataclass(frozen=True, slots=True)
class Validator:
    """One design document's validation function: JavaScript source or a Python name."""

    ddoc_id: str
    rev: str
    language: str
    source: str
    ddoc: dict[str, Any]


@dataclass(slots=True)
class _Target:
    """What one edit is checked against: the old doc (None: creation), or an outcome that
    needs no function: skip (a replayed replication, a design or local doc) or a conflict."""

    old: dict[str, Any] | None = None
    skip: bool = False
    conflict: bool = False


class _Cache:
    """Parsed validators of one store by (db, ddoc id, rev); None for a ddoc without one."""

    def __init__(self) -> None:
        self.entries: OrderedDict[tuple[str, str, str], Validator | None] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple[str, str, str]) -> tuple[bool, Validator | None]:
        with self.lock:
            if key not in self.entries:
                return False, None
            self.entries.move_to_end(key)
            return True, self.entries[key]

    def put(self, key: tuple[str, str, str], value: Validator | None) -> None:
        with self.lock:
            self.entries[key] = value
            while len(self.entries) > CACHE_SIZE:
                self.entries.popitem(last=False)


_caches: weakref.WeakKeyDictionary[Store, _Cache] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def _cache_of(store: Store) -> _Cache:
    with _caches_lock:
        found = _caches.get(store)
        if found is None:
            found = _caches[store] = _Cache()
        return found


# -- the entry point ---------------------------------------------------------------------------

def check_edits(app: Settee, user: UserCtx, db: str, edits: Sequence[Edit],
                new_edits: bool) -> list[StoreError | None]:
    """For each edit, the error that refuses it, or None; `_users` edits may be rewritten
    (a clear password hashed). Raises `DbNotFound` for a missing database."""
    dbid, security, ddocs = _db_state(app, db)
    users = db == user_docs.USERS_DB
    validators = _validators(app, db, ddocs) if ddocs else []
    if not validators and not users:
        return [None] * len(edits)
    sec = _security(security)
    targets = _targets(app, dbid, edits, new_edits)
    ctx = user.json(db)
    out: list[StoreError | None] = []
    for edit, target in zip(edits, targets):
        if target.skip:
            out.append(None)
            continue
        if target.conflict:
            out.append(Conflict())
            continue
        try:
            if users:
                user_docs.before_update(edit, user, sec, app.settings.auth_iterations)
            new = new_doc(edit, new_edits)
            if users:
                user_docs.check(new, target.old, user, sec)
            for validator in validators:
                _run(app, db, validator, new, target.old, ctx, sec)
        except (Refused, user_docs.UserDocError) as exc:
            out.append(exc)
            continue
        out.append(None)
    return out


# -- the database's design documents -------------------------------------------------------------

def _db_state(app: Settee, db: str) -> tuple[int, str, list[tuple[str, str]]]:
    """The database's id, `_security` text and live design docs (id, winning rev), one query."""
    with app.store.engine.transaction(snapshot=False) as conn:
        rows = sql.fetchall(
            conn,
            "SELECT b.id, b.security, d.doc_id, d.winner FROM settee_dbs b "
            "LEFT JOIN settee_docs d ON d.db_id = b.id AND d.doc_id >= ? AND d.doc_id < ? "
            "AND d.deleted = ? WHERE b.name = ? ORDER BY d.doc_id",
            (DESIGN, DESIGN_END, False, db),
        )
    if not rows:
        raise DbNotFound()
    ddocs = [(str(doc_id), str(rev)) for _, _, doc_id, rev in rows if doc_id is not None]
    return int(rows[0][0]), str(rows[0][1] or "{}"), ddocs


def _validators(app: Settee, db: str, ddocs: list[tuple[str, str]]) -> list[Validator]:
    cache = _cache_of(app.store)
    found: dict[tuple[str, str], Validator | None] = {}
    missing = []
    for doc_id, rev in ddocs:
        hit, value = cache.get((db, doc_id, rev))
        if hit:
            found[(doc_id, rev)] = value
        else:
            missing.append((doc_id, rev))
    if missing:
        with app.store.engine.transaction() as conn:
            packed = reads.bodies_for(conn, reads.db_id(conn, db), missing)
        for doc_id, rev in missing:
            data = packed.get((doc_id, rev))
            if data is None:
                continue  # replaced since the first query: the next write sees the new one
            value = _parse(doc_id, rev, orjson.loads(app.store.layer.body_of(data)))
            cache.put((db, doc_id, rev), value)
            found[(doc_id, rev)] = value
    return [v for key in ddocs if (v := found.get(key)) is not None]


def _parse(doc_id: str, rev: str, body: Any) -> Validator | None:
    """The validator of a design doc body, or None when it has none."""
    if not isinstance(body, dict):
        return None
    source = body.get("validate_doc_update")
    if not isinstance(source, str) or not source.strip():
        return None
    language = body.get("language", "javascript")
    if language not in ("javascript", "python"):
        return None  # `query` (Mango) design docs have no validation functions
    ddoc = {"_id": doc_id, "_rev": rev, **body}
    return Validator(doc_id, rev, language, source, ddoc)


def _security(text: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


# -- the documents a function sees ----------------------------------------------------------------

def new_doc(edit: Edit, new_edits: bool) -> dict[str, Any]:
    """The edit as CouchDB shows it to a validation function (`couch_doc:to_json_obj/2`)."""
    doc: dict[str, Any] = {"_id": edit.id}
    path = edit.revisions if not new_edits and edit.revisions else (
        [edit.rev] if edit.rev is not None else [])
    if path:
        doc["_rev"] = path[0]
    doc.update(edit.fields)
    if edit.deleted:
        doc["_deleted"] = True
    if path:
        doc["_revisions"] = {"start": revtree.pos(path[0]),
                             "ids": [r.partition("-")[2] for r in path]}
    if edit.atts:
        doc["_attachments"] = {att.name: _att_stub(att) for att in edit.atts}
    return doc


def _att_stub(att: Any) -> dict[str, Any]:
    if att.keep is not None:
        return stub(att.keep)
    out: dict[str, Any] = {"content_type": att.content_type}
    if att.revpos is not None:
        out["revpos"] = att.revpos
    if att.blob is not None:
        out["digest"], out["length"] = att.blob.digest, att.blob.length
    else:
        if att.digest is not None:
            out["digest"] = att.digest
        if att.length is not None:
            out["length"] = att.length
    if att.follows:
        out["follows"] = True
    else:
        out["stub"] = True
    return out


def _targets(app: Settee, dbid: int, edits: Sequence[Edit], new_edits: bool) -> list[_Target]:
    """Which stored revision each edit replaces, read in one snapshot before the write."""
    checked = [e for e in edits if not e.id.startswith((DESIGN, "_local/"))]
    plans: dict[int, tuple[_Target, list[str]]] = {}
    with app.store.engine.transaction() as conn:
        infos = reads.doc_infos(conn, dbid, [e.id for e in checked]) if checked else {}
        for edit in checked:
            plans[id(edit)] = _plan(edit, infos.get(edit.id), new_edits)
        wanted = [(e.id, revs[0]) for e in checked if (revs := plans[id(e)][1])]
        packed = reads.bodies_for(conn, dbid, wanted) if wanted else {}
        for edit in checked:  # a replicated edit whose parent lost its body: look further up
            revs = plans[id(edit)][1]
            if len(revs) > 1 and (edit.id, revs[0]) not in packed:
                kept = {row[0] for row in sql.fetchall(
                    conn, "SELECT rev FROM settee_revs WHERE db_id = ? AND doc_id = ?",
                    (dbid, edit.id))}
                nearest = next((r for r in revs if r in kept), None)
                if nearest is not None:
                    plans[id(edit)] = (plans[id(edit)][0], [nearest])
                    packed.update(reads.bodies_for(conn, dbid, [(edit.id, nearest)]))
    out = []
    for edit in edits:
        if id(edit) not in plans:
            out.append(_Target(skip=True))
            continue
        target, revs = plans[id(edit)]
        info = infos.get(edit.id)
        rev = revs[0] if revs else None
        if rev is not None and info is not None and (edit.id, rev) in packed:
            body = app.store.layer.body_of(packed[(edit.id, rev)])
            extra = [("_revisions", revisions(info.tree, rev))]
            target.old = orjson.loads(doc_bytes(edit.id, rev, body, deleted=info.tree[rev][1],
                                                extra=extra))
        out.append(target)
    return out


def _plan(edit: Edit, info: reads.DocInfo | None, new_edits: bool
          ) -> tuple[_Target, list[str]]:
    """The edit's target and the revs whose body may be its old doc, nearest first (CouchDB's
    `prep_and_validate_update` and `prep_and_validate_replicated_updates`)."""
    if info is None:
        return _Target(conflict=new_edits and edit.rev is not None), []
    tree = info.tree
    if new_edits:
        if edit.rev is None:
            return (_Target(), []) if info.deleted else (_Target(conflict=True), [])
        if not revtree.is_leaf(tree, edit.rev):
            return _Target(conflict=True), []
        return _Target(), [edit.rev]
    path = edit.revisions or ([edit.rev] if edit.rev else [])
    if not path or path[0] in tree:
        return _Target(skip=True), []  # a revision the database already has
    for rev in path[1:]:
        if rev in tree:  # the nearest ancestor on disk (`make_first_doc_on_disk`)
            return _Target(), revtree.ancestry(tree, rev)
    return _Target(), []


# -- calling a function ----------------------------------------------------------------------------

def _run(app: Settee, db: str, validator: Validator, new: dict[str, Any],
         old: dict[str, Any] | None, ctx: dict[str, Any], sec: dict[str, Any]) -> None:
    from ..views.design import DesignError
    from ..views.service import ViewSettings, service_for

    service = service_for(app.store, ViewSettings.from_settings(app.settings))
    if validator.language == "python":
        try:
            fn = service.registry.resolve(validator.source)
        except DesignError as exc:
            raise Refused(exc.reason, 500, exc.error) from None
        copies = orjson.loads(orjson.dumps([new, old, ctx, sec]))
        try:
            fn(*copies)
        except Refused:
            raise
        except Exception as exc:  # noqa: BLE001 - operator code: any failure refuses the write
            raise Refused(f"{type(exc).__name__}: {exc}") from None
        return
    try:
        pool, js = service.js()
    except DesignError as exc:
        raise Refused(exc.reason, 500, exc.error) from None
    key = f"{db}\t{validator.ddoc_id}\t{validator.rev}\tvalidate_doc_update"
    try:
        pool.call(key, validator.ddoc, ["validate_doc_update"], [new, old, ctx, sec])
    except js.JsThrow as exc:
        raise _thrown(exc.value) from None
    except js.JsFailure as exc:
        raise Refused(exc.reason, 500, exc.error) from None


def _thrown(value: Any) -> Refused:
    """The refusal for a value a JavaScript function threw (`{forbidden: m}` and so on)."""
    if isinstance(value, dict) and len(value) == 1:
        (name, message), = value.items()
        reason = message if isinstance(message, str) else orjson.dumps(message).decode()
        if name == "forbidden":
            return Forbidden(reason)
        if name == "unauthorized":
            return Unauthorized(reason)
        return Refused(reason)
    if isinstance(value, str):
        return Refused(value)
    return Refused(orjson.dumps(value).decode() if value is not None else "null")
