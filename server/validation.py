"""`validate_doc_update`: the design documents' validation functions, run before every write.

Every document write that reaches `save_edits` (PUT, POST, DELETE, COPY, `_bulk_docs` with or
without `new_edits`, so replication into a local database too, and standalone attachment
PUT/DELETE) is checked here first, outside the store's write lock: JavaScript and hashing never
run while writers wait. As in CouchDB (`couch_db:validate_doc_update/3`), `_local/` documents and
design documents are not validated (design documents are the access policy's: db admins only),
and a replicated revision the database already has is skipped. In the `_users` database the
built-in rules of `user_docs` run first (a clear password is hashed before any function sees it).

Each live design document with a `validate_doc_update` is called in id order with
`(newDoc, oldDoc, userCtx, secObj)`, as `couch_query_servers:validate_doc_update/5` passes them:

- `newDoc`: `_id`, the `_rev` the edit names (for an interactive edit, the revision it replaces:
  the new rev is computed only after validation; none for a creation), `_revisions` of that rev,
  the body, `_deleted: true` for a deletion, `_attachments` as stubs;
- `oldDoc`: the stored revision being replaced, with `_id`, `_rev`, `_revisions`, `_deleted`
  and attachment stubs, or `null` for a creation or a recreation over a deleted document; for a
  replicated revision, the nearest stored ancestor along its path;
- `userCtx`: `{"db", "name", "roles"}` of the requester; `secObj`: the database's `_security`
(`validation_docs` builds the two documents).

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

What validation depends on (the winning revs of the database's live `_design/` docs and its
`_security`, one indexed query) is remembered per process, and functions run against that. The
write reads it again once it holds the database's lock (the row lock every writer of that
database takes on PostgreSQL, a design doc write included; BEGIN IMMEDIATE on SQLite), and
writes only if nothing changed; otherwise it writes nothing and the edits are validated again
with the new state. On PostgreSQL the write is usually one call of a server-side function
(`store.direct`) that makes this check inside PostgreSQL once it holds the lock, and stores
nothing if it fails (the write then runs in a transaction, which raises `Stale`). So a design
doc edited on another PostgreSQL node applies from the very next write, with no window in which
an old function could let a write through, and a database without validation functions pays
one small query inside its write transaction. Parsed functions are cached by (database, design
doc id, rev).
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from ..store import Store, direct, reads
from ..store.engine import Tx
from ..store.errors import Conflict, StoreBusy, StoreError
from ..store.writes import (
    DbRow,
    Edit,
    Prepared,
    WriteResult,
    db_with_design,
    join_prepared,
    plan_revs,
    prepare,
    worth_preparing,
    write_edits,
)
from . import user_docs, validation_docs
from .errors import HttpError
from .userctx import UserCtx

if TYPE_CHECKING:
    from .app import Settee

CACHE_SIZE = 1024
ATTEMPTS = 5


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


@dataclass(frozen=True, slots=True)
class DbState:
    """What validation depends on: the database's id, `_security` text and live design docs
    (id, winning rev) in id order. A write commits only if this is still what it reads."""

    dbid: int
    security: str
    ddocs: tuple[tuple[str, str], ...]


class Stale(StoreError):
    """Inside the write: the database's state is not the one its edits were validated
    against (a design doc or `_security` changed, maybe on another node); try again."""

    def __init__(self, state: DbState) -> None:
        super().__init__("validation state changed")
        self.state = state


class _Cache:
    """Per store and process: the last `DbState` seen of each database, and parsed validators
    by (db, ddoc id, rev), None for a design doc without one."""

    def __init__(self) -> None:
        self.service: tuple[Any, int, Any] | None = None  # (settings, pid, view service)
        self.states: OrderedDict[str, DbState] = OrderedDict()
        self.validators: OrderedDict[tuple[str, str, str], Validator | None] = OrderedDict()
        self.lock = threading.Lock()

    def state(self, db: str) -> DbState | None:
        with self.lock:
            return self.states.get(db)

    def remember(self, db: str, state: DbState) -> None:
        with self.lock:
            self.states[db] = state
            self.states.move_to_end(db)
            while len(self.states) > CACHE_SIZE:
                self.states.popitem(last=False)

    def validator(self, key: tuple[str, str, str]) -> tuple[bool, Validator | None]:
        with self.lock:
            if key not in self.validators:
                return False, None
            self.validators.move_to_end(key)
            return True, self.validators[key]

    def put(self, key: tuple[str, str, str], value: Validator | None) -> None:
        with self.lock:
            self.validators[key] = value
            while len(self.validators) > CACHE_SIZE:
                self.validators.popitem(last=False)


_caches: weakref.WeakKeyDictionary[Store, _Cache] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def _cache_of(store: Store) -> _Cache:
    with _caches_lock:
        found = _caches.get(store)
        if found is None:
            found = _caches[store] = _Cache()
        return found


# -- the entry point ---------------------------------------------------------------------------

def write(app: Settee, user: UserCtx, db: str, edits: Sequence[Edit],
          new_edits: bool) -> list[WriteResult]:
    """Validate `edits` as `user`, write those that pass, one result per edit in order.

    Functions run before the write lock is taken, against the database's state as this process
    last saw it; the write transaction re-reads that state once it holds the database's lock
    and commits only if it is unchanged, else the edits are validated again."""
    cache = _cache_of(app.store)
    state = cache.state(db) or _read_state(app, db)
    for _ in range(ATTEMPTS):
        cache.remember(db, state)
        refusals = check_edits(app, user, db, edits, new_edits, state)
        passed = [edit for edit, refused in zip(edits, refusals) if refused is None]
        try:
            written = iter(_commit(app, db, state, passed, new_edits))
        except Stale as exc:
            state = exc.state
            continue
        return [next(written) if refused is None else WriteResult(edit.id, error=refused)
                for edit, refused in zip(edits, refusals)]
    raise StoreBusy("The design documents of this database keep changing; try again.")


def _commit(app: Settee, db: str, state: DbState, edits: list[Edit],
            new_edits: bool) -> list[WriteResult]:
    write = _Write(app, db, state, edits, new_edits)
    return app.store.commits.submit(db, write.run, write)


class _Write:
    """One request's validated edits, joinable with its neighbours in the commit queue that
    write the same database with the same `new_edits` against the same state."""

    def __init__(self, app: Settee, db: str, state: DbState, edits: list[Edit],
                 new_edits: bool) -> None:
        self.app, self.db, self.state, self.edits, self.new_edits = app, db, state, edits, new_edits
        self._locked: tuple[Tx, DbRow, DbState] | None = None
        if new_edits:
            plan_revs(edits)
        self.prepared: Prepared | None = None
        if worth_preparing(edits):  # before a connection is taken for it
            with app.store.engine.transaction(snapshot=False) as conn:
                self.prepared = prepare(conn, state.dbid, edits, new_edits=new_edits,
                                        layer=app.store.layer)

    @property
    def kind(self) -> object:
        """Joinable writes share the database, the `new_edits` mode and the validated state."""
        return (self.db, self.new_edits, self.state)

    def begin(self, tx: Tx) -> None:
        """Lock the database's row and read its state (the write's first statement)."""
        self._locked = (tx, *_db_state(tx, self.db, lock=True))

    def run(self, tx: Tx) -> list[WriteResult]:
        """This write alone."""
        return self.run_joined(tx, [self])[0]

    def run_direct(self, parts: Sequence[Any]) -> list[list[WriteResult]] | None:
        """PostgreSQL: `parts` (this write first) worked out before the lock and stored by one
        statement that checks this write's validated state and everything it read (`direct`);
        None if they must run in a transaction instead (SQLite, attachments, every edit
        refused, or anything changed since), having stored nothing."""
        store = self.app.store
        if store.engine.is_sqlite:
            return None
        edits = [edit for part in parts for edit in part.edits]
        if not edits or any(edit.atts for edit in edits):
            return None
        with store.engine.transaction(write=True, snapshot=False) as conn:
            prepared = join_prepared([part.prepared for part in parts]) or prepare(
                conn, self.state.dbid, edits, new_edits=self.new_edits, layer=store.layer)
            if prepared is None:
                return None
            results = direct.write(conn, self.db, prepared, self.state.security,
                                   self.state.ddocs)
        if results is None:
            return None
        return _split(results, parts)

    def run_joined(self, tx: Tx, parts: Sequence[Any]) -> list[list[WriteResult]]:
        """`parts` (this write first) as one `write_edits` call; their results split back.

        The lock is taken (or was, by `begin`) before the state is read, as every writer of the
        database does, a design doc write included, so the state is the one this transaction
        commits on; a stale one is refused before anything is written."""
        locked, self._locked = self._locked, None
        if locked is not None and locked[0] is tx:
            _, row, current = locked
        else:
            row, current = _db_state(tx, self.db, lock=True)
        if current != self.state:
            raise Stale(current)
        edits = [edit for part in parts for edit in part.edits]
        if not edits:
            return [[] for _ in parts]
        prepared = join_prepared([part.prepared for part in parts])
        results = write_edits(tx, self.db, edits, new_edits=self.new_edits,
                              layer=self.app.store.layer, locked=row, prepared=prepared)
        return _split(results, parts)


def _split(results: list[WriteResult], parts: Sequence[_Write]) -> list[list[WriteResult]]:
    """The results of joined writes' edits, back to one list per write."""
    out, at = [], 0
    for part in parts:
        out.append(results[at:at + len(part.edits)])
        at += len(part.edits)
    return out


def check_edits(app: Settee, user: UserCtx, db: str, edits: Sequence[Edit],
                new_edits: bool, state: DbState) -> list[StoreError | None]:
    """For each edit, the error that refuses it, or None; `_users` edits may be rewritten
    (a clear password hashed)."""
    users = db == user_docs.USERS_DB
    validators = _validators(app, db, state) if state.ddocs else []
    if not validators and not users:
        return [None] * len(edits)
    sec = _security(state.security)
    targets = validation_docs.targets(app, state.dbid, edits, new_edits)
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
            new = validation_docs.new_doc(edit, new_edits)
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

def _read_state(app: Settee, db: str) -> DbState:
    """The database's `DbState` in one query, without a lock (`DbNotFound` if it is gone)."""
    with app.store.engine.transaction(snapshot=False) as conn:
        return _db_state(conn, db, lock=False)[1]


def _db_state(conn: Tx, db: str, *, lock: bool) -> tuple[DbRow, DbState]:
    """The database's counter row and its `DbState`, in one statement (`db_with_design`)."""
    row, design = db_with_design(conn, db, lock=lock)
    return row, DbState(row.id, design.security, design.ddocs)


def _validators(app: Settee, db: str, state: DbState) -> list[Validator]:
    cache = _cache_of(app.store)
    found: dict[tuple[str, str], Validator | None] = {}
    missing = []
    for doc_id, rev in state.ddocs:
        hit, value = cache.validator((db, doc_id, rev))
        if hit:
            found[(doc_id, rev)] = value
        else:
            missing.append((doc_id, rev))
    if missing:
        with app.store.engine.transaction() as conn:
            packed = reads.bodies_for(conn, state.dbid, missing)
        for doc_id, rev in missing:
            data = packed.get((doc_id, rev))
            if data is None:
                continue  # replaced since: the write will find its state stale and retry
            value = _parse(doc_id, rev, orjson.loads(app.store.layer.body_of(data)))
            cache.put((db, doc_id, rev), value)
            found[(doc_id, rev)] = value
    return [v for key in state.ddocs if (v := found.get(key)) is not None]


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


# -- calling a function ----------------------------------------------------------------------------

def _run(app: Settee, db: str, validator: Validator, new: dict[str, Any],
         old: dict[str, Any] | None, ctx: dict[str, Any], sec: dict[str, Any]) -> None:
    from ..views.design import DesignError

    service = _service(app)
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


def _service(app: Settee) -> Any:
    """This process's view service (its JS pool and Python registry), looked up once per
    settings object rather than on every write."""
    from ..views.service import ViewSettings, service_for

    cache = _cache_of(app.store)
    found = cache.service
    if found is not None and found[0] is app.settings and found[1] == os.getpid():
        return found[2]
    service = service_for(app.store, ViewSettings.from_settings(app.settings))
    cache.service = (app.settings, os.getpid(), service)
    return service


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
