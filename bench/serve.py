"""Run a WSGI app under gunicorn on a free loopback port for the length of a benchmark.

The hello-world ceiling and settee itself are started the same way, with the same worker class,
worker count and thread count, so the ratio between them compares apps, not server settings.
gunicorn comes from the running interpreter (`sys.executable -m gunicorn`), i.e. the venv's.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from http1 import Connection, Target
from ready_hook import READY_DIR

HOOK = Path(__file__).resolve().parent / "ready_hook.py"


class StartError(RuntimeError):
    """The server exited or never answered its readiness check."""


SETTEE_WORKER = "settee.server.worker.SetteeWorker"
"""What `settee serve` runs: gthread that gathers headers first and balances connections."""


@dataclass(frozen=True)
class GunicornSettings:
    """The gunicorn settings shared by every server a run starts."""

    worker_class: str = SETTEE_WORKER
    workers: int = 2
    threads: int = 4

    @property
    def display(self) -> str:
        """E.g. `SetteeWorker, 2 workers x 4 threads`."""
        name = self.worker_class.rsplit(".", 1)[-1]
        return f"{name}, {self.workers} workers x {self.threads} threads"


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Gunicorn:
    """A gunicorn process: started and checked on enter, stopped (TERM, then KILL) on exit."""

    def __init__(
        self,
        app: str,
        settings: GunicornSettings,
        *,
        log: Path,
        ready_path: str = "/",
        env: dict[str, str] | None = None,
        pythonpath: Path | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self.app = app
        self.settings = settings
        self.log = log
        self.ready_path = ready_path
        self.env = env or {}
        self.pythonpath = pythonpath
        self.startup_timeout = startup_timeout
        self.port = free_port()
        self.target = Target("127.0.0.1", self.port)
        self.ready_dir = log.with_suffix(".ready")
        self._proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        """The gunicorn command line."""
        cmd = [sys.executable, "-m", "gunicorn", self.app]
        cmd += ["--bind", f"127.0.0.1:{self.port}"]
        cmd += ["--worker-class", self.settings.worker_class]
        cmd += ["--workers", str(self.settings.workers), "--threads", str(self.settings.threads)]
        cmd += ["--graceful-timeout", "5", "--log-level", "warning", "--config", str(HOOK)]
        if self.pythonpath is not None:
            cmd += ["--pythonpath", str(self.pythonpath)]
        return cmd

    def __enter__(self) -> Gunicorn:
        self.ready_dir.mkdir()
        with self.log.open("wb") as log:
            self._proc = subprocess.Popen(
                self.command(),
                env={**os.environ, **self.env, READY_DIR: str(self.ready_dir)},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so a final KILL reaches workers
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _wait_ready(self) -> None:
        """Until every worker has loaded the app and the ready path answers 200."""
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                raise StartError(f"{self.app} exited with {code}:\n{self.log_tail()}")
            booted = len(list(self.ready_dir.iterdir()))
            conn = Connection(self.target, timeout=2.0)
            try:
                response = conn.request("GET", self.ready_path)
                if response.status == 200 and booted >= self.settings.workers:
                    return
                last = (f"{booted} of {self.settings.workers} workers booted; GET "
                        f"{self.ready_path} -> {response.status} {response.body[:200]!r}")
            except OSError as exc:
                last = f"GET {self.ready_path} -> {exc}"
            finally:
                conn.close()
            time.sleep(0.1)
        raise StartError(
            f"{self.app} not ready in {self.startup_timeout:g}s ({last}):\n{self.log_tail()}"
        )

    def stop(self) -> None:
        """Send SIGTERM; after 10 s, SIGKILL the whole process group."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def log_tail(self, lines: int = 30) -> str:
        """The last lines gunicorn wrote."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])
