"""The two documents a validation function is shown: the edit (`newDoc`) and what it replaces.

`new_doc` renders an edit as `couch_doc:to_json_obj(Doc, [revs])` does before the write: `_id`,
the `_rev` the edit names (for an interactive edit, the revision it replaces: the new rev is
computed only after validation; none for a creation) with its `_revisions`, the body,
`_deleted: true` for a deletion and `_attachments` as stubs. `targets` reads, before the write
lock is taken, the stored revision each edit replaces (CouchDB's
`prep_and_validate_update` and `prep_and_validate_replicated_updates`): the leaf an interactive
edit names, nothing for a creation or a recreation over a deleted document, and for a replicated
revision the nearest ancestor on its path that still has a body. An edit that will conflict is
marked so (it is answered 409 without calling any function), and a replicated revision the
database already has, or a design or `_local/` document, is skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from ..store import reads, revtree, sql
from ..store.attachments import AttIn
from ..store.render import doc_bytes, revisions, stub
from ..store.writes import Edit

if TYPE_CHECKING:
    from .app import Settee

DESIGN = "_design/"


@dataclass(slots=True)
class Target:
    """What one edit is checked against: the old doc (None: creation), or an outcome that
    needs no function: skip (a replayed replication, a design or local doc) or a conflict."""

    old: dict[str, Any] | None = None
    skip: bool = False
    conflict: bool = False


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


def _att_stub(att: AttIn) -> dict[str, Any]:
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


def targets(app: Settee, dbid: int, edits: Sequence[Edit], new_edits: bool) -> list[Target]:
    """Which stored revision each edit replaces, read before the write lock is taken."""
    checked = [e for e in edits if not e.id.startswith((DESIGN, "_local/"))]
    plans: dict[int, tuple[Target, list[str]]] = {}
    # Statements of their own (no BEGIN/COMMIT): what they read is re-checked by the write,
    # which refuses an edit whose parent is no longer a leaf.
    with app.store.engine.transaction(snapshot=False) as conn:
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
            out.append(Target(skip=True))
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
          ) -> tuple[Target, list[str]]:
    """The edit's target and the revs whose body may be its old doc, nearest first (CouchDB's
    `prep_and_validate_update` and `prep_and_validate_replicated_updates`)."""
    if info is None:
        return Target(conflict=new_edits and edit.rev is not None), []
    tree = info.tree
    if new_edits:
        if edit.rev is None:
            return (Target(), []) if info.deleted else (Target(conflict=True), [])
        if not revtree.is_leaf(tree, edit.rev):
            return Target(conflict=True), []
        return Target(), [edit.rev]
    path = edit.revisions or ([edit.rev] if edit.rev else [])
    if not path or path[0] in tree:
        return Target(skip=True), []  # a revision the database already has
    for rev in path[1:]:
        if rev in tree:  # the nearest ancestor on disk (`make_first_doc_on_disk`)
            return Target(), revtree.ancestry(tree, rev)
    return Target(), []
