"""Active tasks: where indexers and replications report progress, for `GET /_active_tasks`.

A task is started with its CouchDB fields, updated as it goes and finished (or used as a context
manager). The registry lives in the process and is thread-safe. Under `settee serve` each worker
also publishes its tasks to `tasks-<pid>.json` in the runtime directory (`publish_to`), so
whichever worker answers `/_active_tasks` lists the tasks of every worker of the node; files of
processes that are gone are skipped and removed. Nodes sharing PostgreSQL each list their own.

    with TASKS.start("indexer", database="db", design_document="_design/app",
                     total_changes=5000) as task:
        ...
        task.update(changes_done=1200)
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

PUBLISH_EVERY = 0.5  # seconds between two publications of mere progress updates
FILE_PREFIX = "tasks-"


class Task:
    """One running task; `update` its fields, `finish` it when done."""

    def __init__(self, registry: TaskRegistry, task_id: int, kind: str,
                 fields: dict[str, Any]) -> None:
        now = int(time.time())
        self.registry = registry
        self.id = task_id
        self.fields: dict[str, Any] = {
            "pid": f"<0.{os.getpid()}.{task_id}>", "node": registry.node, "type": kind,
            "started_on": now, "updated_on": now, **fields}
        self._set_progress()

    def update(self, **fields: Any) -> None:
        """Change some fields (`changes_done`, `docs_written`, ...); progress follows."""
        with self.registry.lock:
            self.fields.update(fields)
            self.fields["updated_on"] = int(time.time())
            self._set_progress()
        self.registry.changed(force=False)

    def finish(self) -> None:
        """Remove the task from the registry."""
        self.registry.remove(self)

    def as_json(self) -> dict[str, Any]:
        with self.registry.lock:
            return dict(self.fields)

    def _set_progress(self) -> None:
        done, total = self.fields.get("changes_done"), self.fields.get("total_changes")
        if isinstance(done, int) and isinstance(total, int) and total > 0:
            self.fields["progress"] = min(100, done * 100 // total)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.finish()


class TaskRegistry:
    """The tasks of this process, optionally published for the other workers of the node."""

    def __init__(self, node: str = "nonode@nohost") -> None:
        self.node = node
        self.lock = threading.RLock()
        self.directory: Path | None = None
        self._tasks: dict[int, Task] = {}
        self._ids = itertools.count(1)
        self._pid = os.getpid()
        self._published = 0.0

    def publish_to(self, directory: str | os.PathLike[str] | None) -> None:
        """Publish this process's tasks into `directory` (None: keep them in-process only)."""
        self.directory = Path(directory) if directory else None
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
        self.changed(force=True)

    def start(self, kind: str, **fields: Any) -> Task:
        """Register a running task of `kind` (`indexer`, `replication`, ...)."""
        with self.lock:
            self._forget_parent()
            task = Task(self, next(self._ids), kind, fields)
            self._tasks[task.id] = task
        self.changed(force=True)
        return task

    def remove(self, task: Task) -> None:
        with self.lock:
            self._tasks.pop(task.id, None)
        self.changed(force=True)

    def local(self) -> list[dict[str, Any]]:
        """This process's tasks, oldest first."""
        with self.lock:
            self._forget_parent()
            return [task.as_json() for task in self._tasks.values()]

    def active(self) -> list[dict[str, Any]]:
        """Every task of this process and, when publishing, of the node's other processes."""
        tasks = self.local()
        if self.directory is None:
            return tasks
        for path in sorted(self.directory.glob(f"{FILE_PREFIX}*.json")):
            pid = _pid_of(path)
            if pid is None or pid == os.getpid():
                continue
            if not _alive(pid):
                path.unlink(missing_ok=True)
                continue
            try:
                tasks.extend(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue  # being replaced right now, or gone: next call sees it
        return sorted(tasks, key=lambda t: (t.get("started_on", 0), t.get("pid", "")))

    def changed(self, *, force: bool) -> None:
        """Publish this process's tasks (progress-only changes at most every PUBLISH_EVERY s)."""
        if self.directory is None:
            return
        now = time.monotonic()
        if not force and now - self._published < PUBLISH_EVERY:
            return
        self._published = now
        path = self.directory / f"{FILE_PREFIX}{os.getpid()}.json"
        tasks = self.local()
        if not tasks:
            path.unlink(missing_ok=True)
            return
        partial = path.with_suffix(".tmp")
        partial.write_text(json.dumps(tasks))
        os.replace(partial, path)  # readers see the old file or the new one, never half of one

    def _forget_parent(self) -> None:
        """After a fork the parent's tasks are not ours."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._tasks.clear()


def _pid_of(path: Path) -> int | None:
    try:
        return int(path.stem[len(FILE_PREFIX):])
    except ValueError:
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


TASKS = TaskRegistry()
