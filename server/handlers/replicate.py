"""Replication endpoints: `POST /_replicate` (one-shot, continuous, cancel), `_scheduler/jobs`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Response

from ..errors import BadRequest, HttpError, NotFoundError
from ..params import integer
from ..replication import Options, Replication
from ..replication_jobs import jobs_of
from ..replication_peers import PeerError, open_peer
from ..wrappers import SetteeRequest, json_response

if TYPE_CHECKING:
    from ..app import Settee


class ReplicationFailed(HttpError):
    """A peer failed mid-replication (500, as CouchDB answers a crashed one-shot job)."""

    status, error = 500, "replication_failed"


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise BadRequest(f"`{name}` must be a boolean")
    return value


def _options(body: dict[str, Any]) -> Options:
    """The options of a `_replicate` body, each checked for its type."""
    doc_ids = body.get("doc_ids")
    if doc_ids is not None and (not isinstance(doc_ids, list)
                                or not all(isinstance(d, str) for d in doc_ids)):
        raise BadRequest("`doc_ids` must be an array of strings")
    selector = body.get("selector")
    if selector is not None and not isinstance(selector, dict):
        raise BadRequest("`selector` must be a JSON object")
    filter_name = body.get("filter")
    if filter_name is not None and not isinstance(filter_name, str):
        raise BadRequest("`filter` must be a string")
    query_params = body.get("query_params")
    if query_params is not None and not isinstance(query_params, dict):
        raise BadRequest("`query_params` must be a JSON object")
    if sum(x is not None for x in (doc_ids, selector, filter_name)) > 1:
        raise BadRequest("`doc_ids`, `filter` and `selector` are mutually exclusive")
    batch = integer(body, "worker_batch_size", 100, minimum=1) or 100
    return Options(continuous=_flag(body, "continuous"),
                   create_target=_flag(body, "create_target"), doc_ids=doc_ids,
                   filter=filter_name, selector=selector, query_params=query_params,
                   since_seq=body.get("since_seq"), batch_size=batch)


def _replication(app: Settee, body: dict[str, Any], user_ctx: Any) -> Replication:
    for member in ("source", "target"):
        if body.get(member) in (None, ""):
            raise BadRequest(f"Missing `{member}` in the replication request")
    ends = []
    for member in ("source", "target"):
        try:
            ends.append(open_peer(app, body[member], user_ctx))
        except TypeError as exc:
            raise BadRequest(f"Invalid `{member}`: {exc}") from exc
    return Replication(ends[0], ends[1], _options(body))


def replicate(app: Settee, request: SetteeRequest) -> Response:
    """`POST /_replicate`: a one-shot replication answers when done; a continuous one is started
    in this worker and answers `_local_id` at once; `cancel` stops a continuous one."""
    body = request.json_object(require_type=True)
    jobs = jobs_of(app)
    if body.get("cancel") is True:
        job_id = body.get("replication_id") or body.get("_local_id") or body.get("id")
        if job_id is None:
            job_id = _replication(app, body, request.user_ctx).rep_id
        if not isinstance(job_id, str) or not jobs.cancel(job_id):
            raise NotFoundError(f"Replication `{job_id}` is not running")
        return json_response({"ok": True, "_local_id": job_id.split("+", 1)[0] + "+continuous"})
    rep = _replication(app, body, request.user_ctx)
    try:
        if rep.options.continuous:
            return json_response({"ok": True, "_local_id": jobs.start_continuous(rep)}, 202)
        return json_response(jobs.run_once(rep))
    except PeerError as exc:
        raise ReplicationFailed(str(exc)) from exc


def scheduler_jobs(app: Settee, request: SetteeRequest) -> Response:
    """`GET /_scheduler/jobs`: the replications running in this worker, CouchDB's shape."""
    rows = jobs_of(app).rows()
    skip = integer(request.args, "skip", 0) or 0
    limit = integer(request.args, "limit")
    shown = rows[skip:] if limit is None else rows[skip:skip + limit]
    return json_response({"total_rows": len(rows), "offset": skip, "jobs": shown})
