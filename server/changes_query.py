"""`_changes` and `_db_updates` query strings parsed into typed dataclasses, with CouchDB's errors.

Both feeds take their parameters from the query string only (a POSTed `_changes` body carries
`doc_ids`, `selector` and `fields`, read by the filters). `timeout` is capped at the server's
changes timeout (CouchDB's `changes_timeout`, 60 s) and a `heartbeat` (`true` = 60 s) replaces
the timeout altogether: the feed then stays open, kept alive by heartbeats, as CouchDB's does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import BadRequest
from .params import boolean, integer

CHANGES_TIMEOUT_MS = 60_000
"""Default and ceiling of `timeout`, and the interval `heartbeat=true` means."""

FEEDS = ("normal", "longpoll", "continuous", "eventsource")
NOW = "now"

_FEED_ERROR = "Supported `feed` types: normal, continuous, live, longpoll, eventsource"
_UPDATES_FEED_ERROR = "Supported `feed` types: normal, continuous, longpoll, eventsource"
_SINCE_ERROR = "Malformed sequence supplied in 'since' parameter."


@dataclass(frozen=True)
class FeedTiming:
    """How long a waiting feed waits, and how often it sends a heartbeat (milliseconds)."""

    timeout_ms: int | None  # None: no timeout (a heartbeat keeps the feed open)
    heartbeat_ms: int | None


@dataclass(frozen=True)
class ChangesQuery:
    """`GET/POST /{db}/_changes` parameters."""

    feed: str = "normal"
    since: int | str = 0  # a seq, or NOW
    limit: int | None = None
    descending: bool = False
    include_docs: bool = False
    conflicts: bool = False
    attachments: bool = False
    style: str = "main_only"
    timing: FeedTiming = FeedTiming(CHANGES_TIMEOUT_MS, None)
    seq_interval: int | None = None
    filter: str = ""
    view: str = ""
    include_previous: bool = False


@dataclass(frozen=True)
class UpdatesQuery:
    """`GET /_db_updates` parameters."""

    feed: str = "normal"
    since: int | str = 0
    limit: int | None = None
    descending: bool = False
    timing: FeedTiming = FeedTiming(CHANGES_TIMEOUT_MS, None)


def changes_query(args: Mapping[str, Any], last_event_id: str | None = None) -> ChangesQuery:
    """Parse `_changes` parameters; a `Last-Event-ID` header overrides `since` (eventsource)."""
    feed = args.get("feed", "normal")
    feed = "continuous" if feed == "live" else feed
    if feed not in FEEDS:
        raise BadRequest(_FEED_ERROR)
    since_text = args.get("since", "0")
    if feed == "eventsource":
        since_text = last_event_id or args.get("last-event-id") or since_text
    style = args.get("style", "main_only")
    if style not in ("main_only", "all_docs"):
        raise BadRequest(f"Invalid `style` parameter: \"{style}\"; use main_only or all_docs")
    seq_interval = None
    if "seq_interval" in args:
        seq_interval = _positive(args["seq_interval"], "invalid_seq_interval")
    return ChangesQuery(
        feed=feed,
        since=parse_since(since_text),
        limit=integer(args, "limit", message="`limit` must be a positive integer."),
        descending=boolean(args, "descending"),
        include_docs=boolean(args, "include_docs"),
        conflicts=boolean(args, "conflicts"),
        attachments=boolean(args, "attachments"),
        style=style,
        timing=_timing(args),
        seq_interval=seq_interval,
        filter=args.get("filter", ""),
        view=args.get("view", ""),
        include_previous=boolean(args, "include_previous"),
    )


def updates_query(args: Mapping[str, Any]) -> UpdatesQuery:
    """Parse `_db_updates` parameters (`live` is not an alias here, as in CouchDB)."""
    feed = args.get("feed", "normal")
    if feed not in FEEDS:
        raise BadRequest(_UPDATES_FEED_ERROR)
    limit = None
    if "limit" in args:
        limit = _non_negative(args["limit"])
    args = {k: v for k, v in args.items() if not (k == "heartbeat" and v == "false")}
    return UpdatesQuery(feed=feed, since=parse_since(args.get("since", "0")), limit=limit,
                        descending=boolean(args, "descending"), timing=_timing(args))


def parse_since(text: Any) -> int | str:
    """`now`, a seq settee gave out (an integer, bare or JSON-quoted), else 400."""
    value = str(text).strip()
    if value == NOW:
        return NOW
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        raise BadRequest(_SINCE_ERROR)
    return int(value)


def _timing(args: Mapping[str, Any]) -> FeedTiming:
    heartbeat: int | None = None
    if "heartbeat" in args:
        raw = args["heartbeat"]
        if raw == "true":
            heartbeat = CHANGES_TIMEOUT_MS
        else:
            try:
                heartbeat = int(raw)
            except (TypeError, ValueError):
                raise BadRequest("Invalid heartbeat value. Expecting a positive integer value "
                                 "(in milliseconds).") from None
            if heartbeat <= 0:
                raise BadRequest("The heartbeat value should be a positive integer "
                                 "(in milliseconds).")
            heartbeat = min(heartbeat, CHANGES_TIMEOUT_MS)
    if heartbeat is not None:
        return FeedTiming(None, heartbeat)
    timeout = integer(args, "timeout", CHANGES_TIMEOUT_MS,
                      message="`timeout` must be a non-negative integer (milliseconds).")
    return FeedTiming(min(timeout or 0, CHANGES_TIMEOUT_MS), None)


def _positive(raw: Any, reason: str) -> int:
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise BadRequest(reason) from None
    if value <= 0:
        raise BadRequest(reason)
    return value


def _non_negative(raw: Any) -> int:
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise BadRequest("invalid_integer") from None
    if value < 0:
        raise BadRequest("invalid_integer")
    return value
