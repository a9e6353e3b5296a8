"""The one route table, in CouchDB's order: server, database, document, design document.

Paths are matched on raw-URI segments (see `wrappers.raw_segments`), so a `%2F` inside a
segment never splits it: `/db/a%2Fb` is document `a/b`, `/db/a/b` is attachment `b` of `a`.
Endpoint names are `<handler module>.<function>`.
"""

from __future__ import annotations

from werkzeug.routing import Map, Rule

GET, HEAD, PUT, POST, DELETE, COPY = "GET", "HEAD", "PUT", "POST", "DELETE", "COPY"


def _r(path: str, endpoint: str, *methods: str) -> Rule:
    return Rule(path, endpoint=endpoint, methods=list(methods), strict_slashes=False,
                merge_slashes=False)


RULES = [
    # -- server ------------------------------------------------------------------------
    _r("/", "root.welcome", GET, HEAD),
    _r("/_up", "root.up", GET, HEAD),
    _r("/_session", "session.session", GET, HEAD, POST, DELETE),
    _r("/_all_dbs", "root.all_dbs", GET, HEAD),
    _r("/_dbs_info", "root.dbs_info", GET, HEAD, POST),
    _r("/_uuids", "root.uuids", GET, HEAD),
    _r("/_db_updates", "changes.db_updates", GET, HEAD),
    _r("/_replicate", "replicate.replicate", POST),
    _r("/_scheduler/jobs", "replicate.scheduler_jobs", GET, HEAD),
    _r("/_active_tasks", "node.active_tasks", GET, HEAD),
    _r("/_node/<node>/_prometheus", "node.prometheus", GET, HEAD),
    _r("/_node/<node>/_stats", "node.stats", GET, HEAD),
    _r("/_node/<node>/_stats/<path:path>", "node.stats", GET, HEAD),
    _r("/_node/<node>/_system", "node.system", GET, HEAD),
    # -- database ----------------------------------------------------------------------
    _r("/<db>", "databases.db", GET, HEAD, PUT, POST, DELETE),
    _r("/<db>/_all_docs", "all_docs.all_docs", GET, HEAD, POST),
    _r("/<db>/_all_docs/queries", "all_docs.all_docs_queries", POST),
    _r("/<db>/_design_docs", "all_docs.design_docs", GET, HEAD, POST),
    _r("/<db>/_design_docs/queries", "all_docs.design_docs_queries", POST),
    _r("/<db>/_local_docs", "all_docs.local_docs", GET, HEAD, POST),
    _r("/<db>/_local_docs/queries", "all_docs.local_docs_queries", POST),
    _r("/<db>/_changes", "changes.changes", GET, HEAD, POST),
    _r("/<db>/_bulk_docs", "bulk.bulk_docs", POST),
    _r("/<db>/_bulk_get", "bulk.bulk_get", POST),
    _r("/<db>/_revs_diff", "bulk.revs_diff", POST),
    _r("/<db>/_missing_revs", "bulk.missing_revs", POST),
    _r("/<db>/_revs_limit", "databases.revs_limit", GET, HEAD, PUT),
    _r("/<db>/_security", "databases.security", GET, HEAD, PUT),
    _r("/<db>/_compact", "databases.compact", POST),
    _r("/<db>/_purge", "databases.purge", POST),
    _r("/<db>/_ensure_full_commit", "databases.ensure_full_commit", POST),
    _r("/<db>/_find", "find.find", POST),
    _r("/<db>/_explain", "find.explain", POST),
    _r("/<db>/_index", "find.indexes", GET, HEAD, POST),
    _r("/<db>/_index/_bulk_delete", "find.bulk_delete", POST),
    _r("/<db>/_index/<path:rest>", "find.delete_index", DELETE),
    _r("/<db>/_view_cleanup", "views.view_cleanup", POST),
    _r("/<db>/_compact/<ddoc>", "views.compact_views", POST),
    # -- design documents and views ------------------------------------------------------
    _r("/<db>/_design/<ddoc>/_info", "views.design_info", GET, HEAD),
    _r("/<db>/_design/<ddoc>/_view/<view>", "views.view", GET, HEAD, POST),
    _r("/<db>/_design/<ddoc>/_view/<view>/queries", "views.view_queries", POST),
    # -- documents ---------------------------------------------------------------------
    _r("/<db>/_local/<docid>", "documents.local_doc", GET, HEAD, PUT, DELETE, COPY),
    _r("/<db>/_local/<docid>/<path:rest>", "documents.local_attachment",
       GET, HEAD, PUT, POST, DELETE, COPY),
    _r("/<db>/_design/<docid>", "documents.design_doc", GET, HEAD, PUT, DELETE, COPY),
    _r("/<db>/<docid>", "documents.doc", GET, HEAD, PUT, POST, DELETE, COPY),
    # -- attachments -------------------------------------------------------------------
    _r("/<db>/_design/<docid>/<path:att>", "attachments.design_attachment",
       GET, HEAD, PUT, DELETE),
    _r("/<db>/<docid>/<path:att>", "attachments.attachment", GET, HEAD, PUT, DELETE),
]

# The rules whose path names a database or document by a variable; any other rule names a
# reserved resource (`/_all_dbs`, `/{db}/_bulk_docs`, ...), which must answer 405 for a method it
# does not take instead of falling through to "a database (or document) called `_bulk_docs`".
CATCH_ALL = frozenset({"databases.db", "documents.doc", "attachments.attachment",
                       "attachments.design_attachment"})

url_map = Map(RULES)
reserved_map = Map([Rule(r.rule, endpoint=r.endpoint, methods=list(r.methods or ()),
                         strict_slashes=False, merge_slashes=False)
                    for r in RULES if r.endpoint not in CATCH_ALL])
