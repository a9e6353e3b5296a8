"""Replications running in this worker process, for `_replicate` `cancel` and `_scheduler/jobs`."""

from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

from .replication import Replication

NODE = "nonode@nohost"
CONTINUOUS = "+continuous"
EVENTS_KEPT = 20


def _iso(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


@dataclass
class Job:
    """One running replication and what `_scheduler/jobs` shows of it."""

    replication: Replication
    job_id: str
    started: float = field(default_factory=time.time)
    thread: threading.Thread | None = None
    events: list[dict[str, Any]] = field(default_factory=list)

    def record(self, kind: str, reason: str | None = None) -> None:
        event: dict[str, Any] = {"timestamp": _iso(time.time()), "type": kind}
        if reason is not None:
            event["reason"] = reason
        self.events.insert(0, event)
        del self.events[EVENTS_KEPT:]

    def row(self) -> dict[str, Any]:
        rep = self.replication
        stats = rep.stats
        return {
            "database": None, "id": self.job_id,
            "pid": f"<0.{(self.thread.ident if self.thread else threading.get_ident()) or 0}.0>",
            "source": rep.source.label, "target": rep.target.label, "user": None,
            "doc_id": None, "history": list(self.events), "node": NODE,
            "start_time": _iso(self.started),
            "info": {"revisions_checked": stats.missing_checked,
                     "missing_revisions_found": stats.missing_found,
                     "docs_read": stats.docs_read, "docs_written": stats.docs_written,
                     "doc_write_failures": stats.doc_write_failures,
                     "changes_pending": None, "checkpointed_source_seq": rep.through_seq,
                     "source_seq": rep.source_seq, "through_seq": rep.through_seq},
        }


class Jobs:
    """This process's jobs for one app, keyed by the id `_replicate` answers with.

    Jobs live in the process that started them (a continuous one in a daemon thread), so with
    several gunicorn workers `_scheduler/jobs` and `cancel` see only the worker they reach.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}

    def run_once(self, rep: Replication) -> dict[str, Any]:
        """Run a one-shot replication to its end, listed while it runs."""
        job = Job(rep, rep.rep_id)
        job.record("started")
        with self._lock:
            key = f"{rep.rep_id}+{rep.session_id}"
            self._jobs[key] = job
        try:
            return rep.run()
        finally:
            with self._lock:
                self._jobs.pop(key, None)

    def start_continuous(self, rep: Replication) -> str:
        """Start a continuous replication in a thread, unless the same one already runs."""
        job_id = rep.rep_id + CONTINUOUS
        with self._lock:
            running = self._jobs.get(job_id)
            if running is not None:  # being prepared or running; a finished one removes itself
                return job_id
            job = Job(rep, job_id)
            rep.on_event = job.record
            job.thread = threading.Thread(target=self._run, args=(job,), daemon=True,
                                          name=f"replication-{rep.rep_id[:8]}")
            self._jobs[job_id] = job
        try:
            rep.prepare()  # fail fast (404, unreachable) in the request that started it
        except BaseException:
            with self._lock:
                self._jobs.pop(job_id, None)
            raise
        job.thread.start()
        return job_id

    def _run(self, job: Job) -> None:
        try:
            job.replication.run_continuous()
        finally:
            with self._lock:
                if self._jobs.get(job.job_id) is job:
                    del self._jobs[job.job_id]

    def cancel(self, job_id: str) -> bool:
        """Stop a continuous job by `<repid>` or `<repid>+continuous`; False when unknown."""
        base = job_id.split("+", 1)[0]
        with self._lock:
            job = self._jobs.pop(base + CONTINUOUS, None)
        if job is None:
            return False
        job.replication.stop.set()
        return True

    def rows(self) -> list[dict[str, Any]]:
        with self._lock:
            jobs = sorted(self._jobs.values(), key=lambda j: (j.started, j.job_id))
        return [job.row() for job in jobs]

    def stop_all(self) -> None:
        with self._lock:
            jobs, self._jobs = list(self._jobs.values()), {}
        for job in jobs:
            job.replication.stop.set()


_BY_APP: weakref.WeakKeyDictionary[Any, Jobs] = weakref.WeakKeyDictionary()
_BY_APP_LOCK = threading.Lock()


def jobs_of(app: Any) -> Jobs:
    """The job table of one app instance (created on first use)."""
    with _BY_APP_LOCK:
        jobs = _BY_APP.get(app)
        if jobs is None:
            jobs = _BY_APP[app] = Jobs()
        return jobs
