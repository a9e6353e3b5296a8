"""settee under gunicorn: an embedded `BaseApplication` whose workers each build their own app.

The master process only resolves settings and binds the socket. `load()` runs in every worker after
`fork()` (settee never preloads), so each worker creates its app, its store and, on first use, its
database engine: no connection or file lock ever crosses a fork. Workers are `gthread`, so
long-poll feeds hold a thread rather than a whole process (DESIGN section 7; reliability.md 3.3).
Each worker's app is stacked here, in one place: handlers named, metrics, access log. The master
prepares the runtime directory the workers share (prometheus files, active tasks) before forking.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication

from . import accesslog
from .app import create_app
from .parsers import Bind, parse_bind
from .settings import SettingError, Settings, resolve

__all__ = ["Bind", "SetteeServer", "application", "gunicorn_options", "parse_bind", "run"]

# gunicorn's own defaults that settee overrides, and why.
LIMIT_REQUEST_LINE = 8190  # gunicorn's maximum; CouchDB's max_uri_length (8000) must fit
GRACEFUL_TIMEOUT = 10  # seconds a worker gets to finish its requests on SIGTERM
# Idle keep-alive connections are closed after this many seconds. gunicorn's 2 s is shorter than
# clients expect (node's fetch, i.e. undici, reuses an idle connection for up to 4 s): a request
# sent on a connection the server has just closed fails with "other side closed", and a POST is
# not retried. Seen as a flaky `fetch failed` from nano under load. Idle connections cost the
# gthread worker a file descriptor in its poller, no thread.
KEEPALIVE = 5
MAX_REQUESTS = 10_000  # recycle workers now and then ...
MAX_REQUESTS_JITTER = 1_000  # ... but not all at once
SHM = "/dev/shm"  # worker heartbeat files in memory: a container's /tmp may be a slow overlay
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # metrics.MULTIPROC_ENV, without importing metrics


def gunicorn_options(settings: Settings) -> dict[str, Any]:
    """The gunicorn settings for resolved settee settings."""
    return {
        "bind": [parse_bind(settings.bind).address],
        "worker_class": "settee.server.worker.SetteeWorker",  # gthread, slowloris-bounded
        "workers": settings.workers_or_default,
        "threads": settings.threads,
        "limit_request_line": LIMIT_REQUEST_LINE,
        "graceful_timeout": GRACEFUL_TIMEOUT,
        "keepalive": KEEPALIVE,
        "max_requests": MAX_REQUESTS,
        "max_requests_jitter": MAX_REQUESTS_JITTER,
        "accesslog": None,  # settee writes its own (accesslog.py), with the database and JSON
        "errorlog": "-",
        "loglevel": settings.log_level,
        "logconfig_dict": accesslog.logging_config(settings),
        "worker_tmp_dir": SHM if os.path.isdir(SHM) else None,
        "child_exit": _child_exit,
        "preload_app": False,  # the app (and its engine) is built in each worker, after fork
        "proc_name": "settee",
        # gunicorn >= 25 opens a control socket at one per-user path shared by every instance
        # on the machine; a second server would replace the first one's. settee does not use it.
        "control_socket_disable": True,
    }


def _child_exit(server: Any, worker: Any) -> None:
    """gunicorn's `child_exit` hook: a dead worker's live gauges no longer count."""
    from . import metrics  # imported in the worker-facing code only: see prepare_runtime_dir
    metrics.mark_process_dead(worker.pid)


def prepare_runtime_dir(settings: Settings, environ: Any = os.environ) -> Path:
    """Create the runtime directory and point prometheus-client's multiprocess mode into it.

    Must run before prometheus_client is imported in this process (it picks its mode on
    import) and before any worker forks. Stale metric and task files of an earlier server in
    the same directory are removed, as prometheus-client requires.
    """
    if settings.runtime_dir:
        root = Path(settings.runtime_dir)
        root.mkdir(parents=True, exist_ok=True)
    else:
        root = Path(tempfile.mkdtemp(prefix="settee-run-"))
        atexit.register(_remove_if_owner, root, os.getpid())
    for sub in ("metrics", "tasks"):
        shutil.rmtree(root / sub, ignore_errors=True)
        (root / sub).mkdir()
    environ[MULTIPROC_ENV] = str(root / "metrics")
    return root


def _remove_if_owner(root: Path, owner: int) -> None:
    """Remove the runtime directory when the master exits (forked workers run atexit too)."""
    if os.getpid() == owner:
        shutil.rmtree(root, ignore_errors=True)


def wrap_app(settings: Settings, runtime_dir: str | None = None) -> Any:
    """The app as `settee serve` runs it: handlers named, metrics, then the access log."""
    from . import metrics  # after prepare_runtime_dir, in the worker
    from .tasks import TASKS
    if runtime_dir:
        TASKS.publish_to(Path(runtime_dir) / "tasks")
    app = accesslog.name_requests(create_app(settings))
    return accesslog.wrap(metrics.wrap(app), settings)


class SetteeServer(BaseApplication):  # type: ignore[misc]  # gunicorn ships no type hints
    """gunicorn embedded: configuration from `Settings`, one app per worker."""

    def __init__(self, settings: Settings, runtime_dir: Path | None = None,
                 reresolve: Callable[[], Settings] | None = None) -> None:
        self.settings = settings
        self.runtime_dir = runtime_dir
        self.reresolve = reresolve
        self.loaded = False
        super().__init__(usage="settee serve", prog="settee")

    def load_config(self) -> None:
        if self.loaded and self.reresolve is not None:  # SIGHUP: read the config file again
            try:
                self.settings = self.reresolve()
            except SettingError as exc:
                logging.getLogger("gunicorn.error").error(
                    "settings not reloaded, keeping the running ones: %s", exc)
        self.loaded = True
        for name, value in gunicorn_options(self.settings).items():
            self.cfg.set(name, value)

    def load(self) -> Any:
        return wrap_app(self.settings, str(self.runtime_dir) if self.runtime_dir else None)


def run(settings: Settings, reresolve: Callable[[], Settings] | None = None) -> None:
    """Serve until gunicorn's master exits (it calls `sys.exit` itself).

    SIGTERM drains in-flight requests (up to GRACEFUL_TIMEOUT); SIGHUP calls `reresolve` (the
    config file and environment read again) and replaces every worker.
    """
    runtime_dir = prepare_runtime_dir(settings)
    SetteeServer(settings, runtime_dir, reresolve).run()


def application(settings: Mapping[str, Any] | None = None) -> Any:
    """For bare gunicorn with the access log and metrics: `gunicorn
    'settee.server.serve:application()'` (metrics per worker unless PROMETHEUS_MULTIPROC_DIR is
    set before gunicorn starts)."""
    resolved = resolve(settings)
    return wrap_app(resolved, resolved.runtime_dir or None)
