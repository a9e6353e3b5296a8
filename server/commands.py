"""`settee replicate` and `settee reindex`: replication and view indexing from the command line.

`replicate` runs one one-shot replication (`server/replication.py`) between two endpoints, each
a database of the configured store (called in-process through the app, as `POST /_replicate`
does) or an http(s) URL; progress goes to stderr, CouchDB's `_replicate` answer to stdout.
`reindex` brings every view index of a database (or of one design doc) up to the database's seq
through the view service, as a query with `update=true` would, showing how far each one is.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from typing import Any

from ..store import reads
from ..store.errors import NotFound
from ..views.design import DesignError
from ..views.service import ViewSettings, service_for
from .errors import HttpError
from .replication import Options, Replication
from .replication_peers import PeerError, open_peer
from .settings import Settings
from .transfer import Progress, open_store
from .userctx import ADMIN_ROLE, UserCtx


def _say(args: argparse.Namespace, text: str) -> None:
    if not getattr(args, "quiet", False):
        print(text, file=sys.stderr)


# -- replicate ----------------------------------------------------------------------------------

def replicate_command(settings: Settings, args: argparse.Namespace) -> int:
    from .app import create_app  # the app (routes, handlers) only when a command needs it

    app = create_app(settings)
    try:
        try:
            operator = UserCtx(settings.admin_user or None, (ADMIN_ROLE,))  # the operator
            source = open_peer(app, args.source, operator)
            target = open_peer(app, args.target, operator)
        except TypeError as exc:
            print(f"settee replicate: error: {exc}", file=sys.stderr)
            return 1
        job = Replication(source, target, Options(create_target=args.create_target,
                                                  batch_size=max(1, args.batch_size)))
        label = f"replicate {source.label} -> {target.label}"
        progress = Progress(label, None, "docs read", None if args.quiet else sys.stderr)
        one_step = job.step

        def step(*, longpoll: bool) -> int:
            count = one_step(longpoll=longpoll)
            stats = job.stats
            progress.unit = f"docs read, {stats.docs_written} written"
            progress.advance(0, stats.docs_read)
            return count
        job.step = step  # type: ignore[method-assign]
        try:
            result = job.run()
        except HttpError as exc:
            print(f"settee replicate: error: {exc.error}: {exc.reason}", file=sys.stderr)
            return 1
        except PeerError as exc:
            body = exc.body if isinstance(exc.body, dict) else {}
            reason = body.get("reason") or body.get("error") or exc.body
            print(f"settee replicate: error: {exc.peer.label} answered {exc.status}: {reason}",
                  file=sys.stderr)
            return 1
        stats = job.stats
        progress.finish(f"{stats.docs_read} docs read, {stats.docs_written} written, "
                        f"{stats.doc_write_failures} failed")
        print(json.dumps(result, indent=None, sort_keys=True))
        return 1 if stats.doc_write_failures else 0
    finally:
        app.store.close()


# -- reindex ------------------------------------------------------------------------------------

def _design_ids(store: Any, db_name: str) -> list[str]:
    with store.engine.transaction() as conn:
        rows = reads.id_range(conn, reads.db_id(conn, db_name), start=None, end=None,
                              inclusive_end=True, descending=False, limit=None, skip=0,
                              prefix="_design/")
    return [row.id for row in rows]


def reindex_command(settings: Settings, args: argparse.Namespace) -> int:
    store = open_store(settings)
    try:
        ddoc_ids = _design_ids(store, args.db)
        if args.ddoc:
            wanted = args.ddoc if args.ddoc.startswith("_design/") else f"_design/{args.ddoc}"
            if wanted not in ddoc_ids:
                print(f"settee reindex: error: {args.db} has no design document {wanted}",
                      file=sys.stderr)
                return 1
            ddoc_ids = [wanted]
        service = service_for(store, ViewSettings.from_settings(settings))
        failed = 0
        try:
            for ddoc_id in ddoc_ids:
                failed += not _reindex_one(service, args, ddoc_id)
        finally:
            service.close()
        _say(args, f"reindex {args.db}: {len(ddoc_ids) - failed} of {len(ddoc_ids)} "
                   "design documents up to date")
        return 1 if failed else 0
    finally:
        store.close()


def _reindex_one(service: Any, args: argparse.Namespace, ddoc_id: str) -> bool:
    """Refresh one design doc's indexes in a thread while showing how far they are."""
    label = f"reindex {args.db}/{ddoc_id}"
    try:
        ddoc = service.design(args.db, ddoc_id)
    except (NotFound, DesignError) as exc:
        print(f"{label}: skipped: {getattr(exc, 'reason', None) or exc}", file=sys.stderr)
        return False
    if not ddoc.views:
        _say(args, f"{label}: no views")
        return True
    before = service.current(args.db, ddoc)
    start = min(state.seq for state in before.states.values())
    progress = Progress(label, max(1, before.db_seq - start), "changes",
                        None if args.quiet else sys.stderr)
    failure: list[BaseException] = []

    def work() -> None:
        try:
            service.refresh(args.db, ddoc)
        except BaseException as exc:  # noqa: BLE001  reported by the main thread
            failure.append(exc)
    worker = threading.Thread(target=work, name="settee-reindex", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(progress.every)
        if worker.is_alive():
            now = service.current(args.db, ddoc)
            progress.advance(0, min(s.seq for s in now.states.values()) - start)
    if failure:
        error = failure[0]
        print(f"{label}: failed: {getattr(error, 'reason', None) or error}", file=sys.stderr)
        return False
    after = service.current(args.db, ddoc)
    rows = sum(state.row_count for state in after.states.values())
    if args.quiet:
        return True
    progress.finish(f"{len(ddoc.views)} views, seq {start} -> {after.db_seq}, {rows} rows"
                    if after.db_seq != start else
                    f"{len(ddoc.views)} views already at seq {start}, {rows} rows")
    return True
